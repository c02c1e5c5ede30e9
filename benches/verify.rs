//! Hot-path costs per request: Tencent verification (allow and deny), path
//! validation, and auth-param stripping.
//!
//! Run: `cargo bench --bench verify`. Compare runs on the same machine only.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use streamguard::auth::tencent::Tencent;
use streamguard::auth::{strip_params, Common, RequestView, TimeFormat, Verifier};
use streamguard::keys::{KeySet, Secret};
use streamguard::proxy::path;

fn bench(c: &mut Criterion) {
    let v = Tencent::new(300, TimeFormat::Hex, Common { clock_skew_secs: 0 });
    let keys = KeySet::new(vec![
        Secret::new("e12c46f2612d5106e2034781ab261ca3"),
        Secret::new("backupbackupbackupbackupbackup12"),
    ]);
    let signed = v
        .sign(
            "play.example.com",
            "/live/test.flv",
            None,
            &Secret::new("e12c46f2612d5106e2034781ab261ca3"),
            4_000_000_000,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
    let good = RequestView {
        host: "play.example.com",
        path: "/live/test.flv",
        query: Some(&signed.query),
        client_ip: None,
        headers: None,
    };
    // One extra hex digit: malformed, rejected before any hashing.
    let forged_q = signed.query.replace("txSecret=", "txSecret=0");
    let forged = RequestView {
        query: Some(&forged_q),
        ..good
    };
    c.bench_function("tencent_verify_allow_2_keys", |b| {
        b.iter(|| black_box(v.verify(black_box(&good), &keys, 1_700_000_000)))
    });
    c.bench_function("tencent_verify_deny_malformed", |b| {
        b.iter(|| black_box(v.verify(black_box(&forged), &keys, 1_700_000_000)))
    });
    c.bench_function("path_validate", |b| {
        b.iter(|| {
            black_box(path::validate(black_box(
                "/live/some-stream_name/index-000123.ts",
            )))
        })
    });
    let names = v.auth_params().to_vec();
    let q = format!("a=1&{}&b=2", signed.query);
    c.bench_function("strip_auth_params", |b| {
        b.iter(|| black_box(strip_params(black_box(&q), &names)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
