//! Hot-path costs per request: every scheme's verification with two keys
//! (matched by the first key, by the second, and a forged signature), the
//! full `auth::authenticate` decision, path validation, auth-param
//! stripping, the HLS playlist rewrite (per KiB) and the snapshot build.
//!
//! Run: `cargo bench --bench verify` (a filter works as usual:
//! `cargo bench --bench verify -- verify/tencent`). Compare runs on the same
//! machine only.
//!
//! Before any timing, the bench counts heap allocations per call of every
//! case with a counting global allocator, prints the table, and fails when a
//! case marked allocation-free allocates (`SG_BENCH_ALLOCS=report` prints
//! the table without failing, e.g. to measure an older commit).
//!
//! Profiling one case: `SG_PROFILE=verify/tencent/first_key SG_PROFILE_ITERS=100000`
//! runs just that case in a loop (in `profile_loop`) and exits, e.g. under
//! `valgrind --tool=callgrind --toggle-collect='*profile_loop*'` to count
//! instructions per call.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use streamguard::auth::akamai::{self, Akamai};
use streamguard::auth::aliyun::{Aliyun, Form};
use streamguard::auth::nginx;
use streamguard::auth::session::Scope as SessionScope;
use streamguard::auth::tencent::Tencent;
use streamguard::auth::volcengine::Volcengine;
use streamguard::auth::wangsu::{self, EffectiveTimeMode, WsTimeFormat};
use streamguard::auth::{
    authenticate, strip_params, AuthMode, Common, Grant, KeySource, RequestView, Sessions,
    SiteAuth, TimeFormat, Verifier,
};
use streamguard::config::Config;
use streamguard::keys::{KeySet, Secret};
use streamguard::proxy::{hls, path};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const C: Common = Common { clock_skew_secs: 0 };
/// Expiry written into every signed URL, and the `now` they are checked at.
const EXP: u64 = 1_700_000_300;
const NOW: u64 = 1_700_000_000;
const HOST: &str = "play.example.com";

/// One benchmarked call: what it does, and whether it must not allocate.
struct Case {
    name: String,
    alloc_free: bool,
    run: Box<dyn Fn() -> bool>,
}

/// A signed request, owned, viewed anew on every call.
struct Req {
    path: String,
    query: String,
    client_ip: Option<IpAddr>,
}

impl Req {
    fn view(&self) -> RequestView<'_> {
        RequestView {
            host: HOST,
            path: &self.path,
            query: Some(&self.query),
            client_ip: self.client_ip,
            headers: None,
        }
    }
}

fn keys(a: &str, b: &str) -> KeySet {
    KeySet::new(vec![Secret::new(a), Secret::new(b)])
}

/// `s` with the third-last character of the value of `name=` changed to
/// another hex (and base64url) digit: still well-formed, so the forgery
/// costs every key's hash.
fn forge(s: &str, name: &str) -> String {
    let start = s
        .find(&format!("{name}="))
        .unwrap_or_else(|| unreachable!())
        + name.len()
        + 1;
    let end = s[start..].find('&').map_or(s.len(), |i| start + i);
    let mut b = s.as_bytes().to_vec();
    b[end - 3] = if b[end - 3] == b'0' { b'1' } else { b'0' };
    String::from_utf8(b).unwrap_or_else(|_| unreachable!())
}

/// The three verify cases of one scheme: signed with the first key, with the
/// second, and forged; each must decide as expected once before timing.
fn scheme_cases(
    out: &mut Vec<Case>,
    name: &str,
    v: Arc<dyn Verifier>,
    keys: KeySet,
    path: &str,
    client_ip: Option<IpAddr>,
    forged_param: &str,
) {
    let all: Vec<Secret> = keys.iter().cloned().collect();
    let keys = Arc::new(keys);
    for (label, key, allowed) in [
        ("first_key", &all[0], true),
        ("second_key", &all[1], true),
        ("forged", &all[0], false),
    ] {
        let opts = streamguard::auth::SignOptions {
            client_ip,
            acl: None,
        };
        let s = v
            .sign_with(HOST, path, None, &opts, key, EXP)
            .unwrap_or_else(|e| unreachable!("{name}: {e}"));
        let (p, q) = if allowed {
            (s.path, s.query)
        } else if s.query.contains(forged_param) {
            (s.path, forge(&s.query, forged_param))
        } else {
            // In-path auth (Alibaba Cloud B/C): the hash is a path segment.
            (forge_path(&s.path), s.query)
        };
        let req = Req {
            path: p,
            query: q,
            client_ip,
        };
        let got = v.verify(&req.view(), &keys, NOW);
        assert_eq!(
            got.is_allowed(),
            allowed,
            "{name}/{label}: unexpected verdict {:?}",
            got.decision
        );
        if allowed {
            let want = usize::from(label == "second_key");
            assert_eq!(got.matched_key, Some(want), "{name}/{label}");
        }
        let (v, keys) = (v.clone(), keys.clone());
        out.push(Case {
            name: format!("verify/{name}/{label}"),
            alloc_free: true,
            run: Box::new(move || v.verify(black_box(&req.view()), &keys, NOW).is_allowed()),
        });
    }
}

/// Changes the last digit of the 32-hex segment of an in-path token.
fn forge_path(p: &str) -> String {
    let seg = p
        .split('/')
        .find(|s| s.len() == 32)
        .unwrap_or_else(|| unreachable!());
    let i = p.find(seg).unwrap_or_else(|| unreachable!()) + 31;
    let mut b = p.as_bytes().to_vec();
    b[i] = if b[i] == b'0' { b'1' } else { b'0' };
    String::from_utf8(b).unwrap_or_else(|_| unreachable!())
}

fn verify_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let md5_keys = || {
        keys(
            "e12c46f2612d5106e2034781ab261ca3",
            "backupbackupbackupbackupbackup12",
        )
    };
    let media = "/live/some-stream_name.flv";
    scheme_cases(
        &mut out,
        "tencent",
        Arc::new(Tencent::new(300, TimeFormat::Hex, C)),
        md5_keys(),
        media,
        None,
        "txSecret",
    );
    // The same with a stream name short enough that key, name and time
    // (32 + 3 + 8 bytes) fit one MD5 block; `some-stream_name` above makes
    // 56 bytes, past the 55 one block holds, so two blocks.
    scheme_cases(
        &mut out,
        "tencent_one_block",
        Arc::new(Tencent::new(300, TimeFormat::Hex, C)),
        md5_keys(),
        "/live/abc.flv",
        None,
        "txSecret",
    );
    scheme_cases(
        &mut out,
        "volcengine",
        Arc::new(Volcengine::md5(10, 0, C)),
        md5_keys(),
        media,
        None,
        "volcSecret",
    );
    // Wangsu: key i belongs to rule group i, so two keys are two groups.
    let group = |cipher: &str, time: &str| wangsu::RuleSettings {
        cipher_param: cipher.to_owned(),
        time_param: time.to_owned(),
        combination: "key+path+time".to_owned(),
        time_format: WsTimeFormat::Hex,
        mode: EffectiveTimeMode::AbsTime,
        effective_time_secs: None,
        tolerant_time_secs: 0,
    };
    let ws = wangsu::Settings {
        rules: vec![group("wsSecret", "wsTime"), group("wsSecret", "wsTime")],
        path_includes_extension: true,
    }
    .build(C)
    .unwrap_or_else(|e| unreachable!("{e:?}"));
    scheme_cases(
        &mut out,
        "wangsu",
        Arc::new(ws),
        md5_keys(),
        media,
        None,
        "wsSecret",
    );
    for (name, form, param) in [
        ("aliyun_a", Form::A("auth_key".into()), "auth_key"),
        ("aliyun_b", Form::B, "-"),
        ("aliyun_c", Form::CPath, "-"),
        (
            "aliyun_c_query",
            Form::CQuery(["KEY1".into(), "KEY2".into()]),
            "KEY1",
        ),
    ] {
        scheme_cases(
            &mut out,
            name,
            Arc::new(Aliyun::new(form, 0, C)),
            md5_keys(),
            "/live/some-stream_name/index-000123.ts",
            None,
            param,
        );
    }
    // The template of the nginx documentation, with the key in its place.
    let ngx = nginx::Settings {
        template: "$secure_link_expires$uri$remote_addr $key".to_owned(),
        md5_param: nginx::DEFAULT_MD5_PARAM.to_owned(),
        expires_param: None,
        expires: true,
    }
    .build(C)
    .unwrap_or_else(|e| unreachable!("{e:?}"));
    scheme_cases(
        &mut out,
        "nginx_secure_link",
        Arc::new(ngx),
        md5_keys(),
        "/live/some-stream_name/index-000123.ts",
        Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
        "md5",
    );
    let hex_keys = || {
        keys(
            "aabbccddeeff00112233445566778899",
            "00112233445566778899aabbccddeeff",
        )
    };
    scheme_cases(
        &mut out,
        "akamai_sha256_acl",
        Arc::new(Akamai::new(akamai::Algorithm::Sha256, akamai::Mode::Acl, C)),
        hex_keys(),
        "/live/some-stream_name/index-000123.ts",
        None,
        "__token__",
    );
    scheme_cases(
        &mut out,
        "akamai_sha256_url",
        Arc::new(Akamai::new(akamai::Algorithm::Sha256, akamai::Mode::Url, C)),
        hex_keys(),
        "/live/some-stream_name/index-000123.ts",
        None,
        "__token__",
    );
    out
}

/// A Tencent site as the snapshot builds it, with HLS session tokens on
/// (the default).
fn tencent_site() -> SiteAuth {
    let keys = keys(
        "e12c46f2612d5106e2034781ab261ca3",
        "backupbackupbackupbackupbackup12",
    );
    SiteAuth {
        site_id: "live".to_owned(),
        verifier: Arc::new(Tencent::new(300, TimeFormat::Hex, C)),
        key_sources: vec![KeySource::Config; keys.len()],
        keys,
        mode: AuthMode::Verify,
        sessions: Some(Sessions {
            secret: Secret::new("session-secret-session-secret-00"),
            ttl_secs: 21_600,
            scope: SessionScope::Path,
        }),
        clock_skew_secs: 0,
        app_keys: Vec::new(),
        push: None,
    }
}

fn authenticate_cases() -> Vec<Case> {
    let site = Arc::new(tencent_site());
    let signed = site
        .verifier
        .sign(
            HOST,
            "/live/s/index.m3u8",
            None,
            &Secret::new("backupbackupbackupbackupbackup12"),
            EXP,
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
    let playlist = Req {
        path: "/live/s/index.m3u8".to_owned(),
        query: signed.query,
        client_ip: None,
    };
    assert!(authenticate(&site, &playlist.view(), NOW).result.is_ok());
    // A segment request carrying the session token the playlist rewrite issued.
    let grant = Grant::Scheme {
        expires_at: Some(EXP),
        forward_path: None,
        bound_ip: None,
    };
    let child = site
        .child_session(&grant, "/live/s/index.m3u8", "/live/s/seg-000123.ts", EXP)
        .unwrap_or_else(|| unreachable!());
    let segment = Req {
        path: "/live/s/seg-000123.ts".to_owned(),
        query: child,
        client_ip: None,
    };
    assert!(authenticate(&site, &segment.view(), NOW).result.is_ok());
    let s2 = site.clone();
    vec![
        Case {
            name: "authenticate/tencent_second_key".to_owned(),
            alloc_free: true,
            run: Box::new(move || {
                authenticate(&site, black_box(&playlist.view()), NOW)
                    .result
                    .is_ok()
            }),
        },
        Case {
            name: "authenticate/hls_session_child".to_owned(),
            alloc_free: true,
            run: Box::new(move || {
                authenticate(&s2, black_box(&segment.view()), NOW)
                    .result
                    .is_ok()
            }),
        },
    ]
}

fn misc_cases() -> Vec<Case> {
    let names: Vec<String> = vec!["txSecret".to_owned(), "txTime".to_owned()];
    let q = "a=1&txSecret=5b7e8a4c1d0e2f3a4b5c6d7e8f901234&txTime=6553F1AC&b=2".to_owned();
    vec![
        Case {
            name: "path/validate".to_owned(),
            alloc_free: true,
            run: Box::new(|| {
                path::validate(black_box("/live/some-stream_name/index-000123.ts")).is_ok()
            }),
        },
        Case {
            name: "path/strip_params".to_owned(),
            // Returns the kept query as a String: one allocation.
            alloc_free: false,
            run: Box::new(move || strip_params(black_box(&q), &names).is_some()),
        },
    ]
}

/// A live playlist of `segments` media segments.
fn playlist(segments: usize) -> String {
    let mut p = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:120\n",
    );
    for i in 0..segments {
        p.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:2026-12-03T10:00:{:02}.000Z\n#EXTINF:4.000,\nseg-{:06}.ts\n",
            i % 60,
            120 + i
        ));
    }
    p
}

fn snapshot_config(sites: usize) -> Config {
    let mut text = String::from("[server]\nlisten = [\"127.0.0.1:0\"]\n");
    for i in 0..sites {
        text.push_str(&format!(
            "[[site]]\nid = \"s{i}\"\ndomains = [\"s{i}.example.com\"]\n\
             origin = \"http://127.0.0.1:8000\"\n\
             [site.auth]\nscheme = \"tencent\"\n\
             key = \"e12c46f2612d5106e2034781ab261c{i:02}\"\n\
             backup_key = \"backupbackupbackupbackupbacku{i:03}\"\n"
        ));
    }
    Config::from_toml(&text, Path::new("."), &|_| None).unwrap_or_else(|e| unreachable!("{e}"))
}

/// Allocations per call of every case; fails on an allocation-free case
/// that allocates (unless `SG_BENCH_ALLOCS=report`).
fn check_allocations(cases: &[Case]) {
    const CALLS: u64 = 64;
    let mut bad = Vec::new();
    eprintln!("{:<44} {:>12} {:>12}", "case", "allocs/call", "bytes/call");
    for case in cases {
        // Warm up first: anything cached on first use is not per call.
        black_box((case.run)());
        let region = Region::new(GLOBAL);
        for _ in 0..CALLS {
            black_box((case.run)());
        }
        let st = region.change();
        let allocs = (st.allocations + st.reallocations) as f64 / CALLS as f64;
        let bytes = st.bytes_allocated as f64 / CALLS as f64;
        let mark = if case.alloc_free && allocs > 0.0 {
            bad.push(case.name.clone());
            "  <- must be 0"
        } else {
            ""
        };
        eprintln!("{:<44} {allocs:>12.2} {bytes:>12.1}{mark}", case.name);
    }
    let report_only = std::env::var("SG_BENCH_ALLOCS").is_ok_and(|v| v == "report");
    assert!(
        bad.is_empty() || report_only,
        "heap allocation on an allocation-free path: {bad:?}"
    );
}

/// The loop a profiler looks at (see the module docs).
#[inline(never)]
fn profile_loop(case: &Case, iters: u64) -> u64 {
    let mut n = 0;
    for _ in 0..iters {
        n += u64::from(black_box((case.run)()));
    }
    n
}

fn main() {
    let mut cases = verify_cases();
    cases.extend(authenticate_cases());
    cases.extend(misc_cases());

    if let Ok(name) = std::env::var("SG_PROFILE") {
        let iters = std::env::var("SG_PROFILE_ITERS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(100_000);
        let case = cases
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| unreachable!("no case {name}"));
        black_box((case.run)());
        let allowed = profile_loop(case, iters);
        eprintln!("{name}: {iters} calls, {allowed} allowed");
        return;
    }
    check_allocations(&cases);

    let mut c = Criterion::default().configure_from_args();
    for case in &cases {
        c.bench_function(&case.name, |b| b.iter(|| black_box((case.run)())));
    }

    // Playlist rewrite with session tokens for every child, per KiB.
    let site = tencent_site();
    let grant = Grant::Scheme {
        expires_at: Some(EXP),
        forward_path: None,
        bound_ip: None,
    };
    let hosts: Vec<String> = vec![HOST.to_owned()];
    let mut g = c.benchmark_group("hls_rewrite");
    for segments in [6, 60] {
        let text = playlist(segments);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(format!("{segments}_segments_{}B", text.len()), |b| {
            b.iter(|| {
                hls::rewrite(
                    black_box(&text),
                    hls::Scope { hosts: &hosts },
                    "/live/s/index.m3u8",
                    &mut |target| site.child_session(&grant, "/live/s/index.m3u8", target, EXP),
                    usize::MAX,
                )
            })
        });
    }
    g.finish();

    // The snapshot a reload or key sync publishes: every site as served.
    let config = snapshot_config(20);
    let answers = streamguard::publish::Sources::default();
    let metrics = streamguard::metrics::Metrics::new().unwrap_or_else(|e| unreachable!("{e}"));
    let mut g = c.benchmark_group("snapshot");
    g.bench_function("site_auths_20_sites", |b| {
        b.iter(|| streamguard::publish::site_auths(black_box(&config), &answers))
    });
    let prev = streamguard::proxy::Snapshot::build(
        &config,
        &metrics,
        streamguard::publish::site_auths(&config, &answers),
        None,
    )
    .unwrap_or_else(|e| unreachable!("{e}"));
    g.bench_function("build_20_sites_key_sync", |b| {
        b.iter(|| {
            streamguard::proxy::Snapshot::build(
                &config,
                &metrics,
                streamguard::publish::site_auths(&config, &answers),
                Some(&prev),
            )
        })
    });
    g.bench_function("build_20_sites_reload", |b| {
        b.iter(|| {
            streamguard::proxy::Snapshot::build(
                &config,
                &metrics,
                streamguard::publish::site_auths(&config, &answers),
                None,
            )
        })
    });
    g.finish();
    c.final_summary();
}
