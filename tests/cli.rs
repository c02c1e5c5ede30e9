//! The operator commands: `check-config`, `check`, `sign`, and the built-in demo.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use http_body_util::BodyExt;

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let p = dir.path().join("c.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("TEST_KEY", KEY)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn check_config_accepts_the_examples_and_lists_every_problem() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/tencent.toml");
    let out = Command::new(BIN)
        .args(["check-config", example])
        .env("TENCENT_PLAY_KEY", "k1")
        .env("TENCENT_PLAY_BACKUP_KEY", "k2")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = write_config(
        &dir,
        "[[site]]\nid = \"x\"\ndomains = [\"a b\"]\norigin = \"ftp://o\"\n[site.auth]\nscheme = \"tencent\"\nkey = \"${UNSET_FOR_TEST}\"\n",
    );
    let (code, _, err) = run(&["check-config", &bad]);
    assert_eq!(code, 2);
    for needle in [
        "3 problem(s)",
        "site[0].domains[0]",
        "site[0].origin",
        "site[0].auth.key: environment variable UNSET_FOR_TEST",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
    let (code, _, err) = run(&["check-config", "/nonexistent.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read config file"), "{err}");
}

#[test]
fn sign_then_check_explains_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        &site_config("http://127.0.0.1:1", "", "auth_delta_secs = 30").replace(KEY, "${TEST_KEY}"),
    );

    // The vendor vector, signed by the CLI.
    let (code, out, err) = run(&[
        "sign",
        "--config",
        &cfg,
        "--expires-at",
        &(0x5C27_1099u64 + 30).to_string(),
        "--at",
        &0x5C27_1099u64.to_string(),
        "http://play.example.com/live/test.flv?a=1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "http://play.example.com/live/test.flv?a=1&txSecret=f85a2ab363fe4deaffef9754d79da6fe&txTime=5C271099");

    let url = out.trim();
    let at = |t: u64| t.to_string();
    let (code, out, _) = run(&[
        "check",
        "--config",
        &cfg,
        "--at",
        &at(0x5C27_1099 + 30),
        url,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("stream:   test"), "{out}");
    assert!(out.contains("key:      primary"), "{out}");
    assert!(out.contains("2018-12-29T06:14:15Z"), "{out}");
    assert!(out.contains("verdict:  allow"), "{out}");

    let (code, out, _) = run(&[
        "check",
        "--config",
        &cfg,
        "--at",
        &at(0x5C27_1099 + 31),
        url,
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("verdict:  deny (expired; the proxy answers 403)"),
        "{out}"
    );

    let forged = url.replace("f85a", "f85b");
    let (code, out, _) = run(&["check", "--config", &cfg, "--at", "0", &forged]);
    assert_eq!(code, 1);
    assert!(out.contains("bad_signature"), "{out}");

    let (code, out, _) = run(&[
        "check",
        "--config",
        &cfg,
        "http://unknown.example.com/live/test.flv",
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("unknown_host"), "{out}");

    // Signing with --expires-in gives a URL the proxy's own check accepts now.
    let (code, out, _) = run(&[
        "sign",
        "--config",
        &cfg,
        "--expires-in",
        "60",
        "http://play.example.com/live/abc.m3u8",
    ]);
    assert_eq!(code, 0);
    let (code, check_out, _) = run(&["check", "--config", &cfg, out.trim()]);
    assert_eq!(code, 0, "{check_out}");
}

#[test]
fn usage_and_config_errors_exit_2() {
    let (code, _, _) = run(&["check", "--config", "/nonexistent.toml", "http://a/b"]);
    assert_eq!(code, 2);
    let (code, _, _) = run(&["check"]);
    assert_eq!(code, 2);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        &site_config("http://127.0.0.1:1", "", "").replace(KEY, "${TEST_KEY}"),
    );
    let (code, _, err) = run(&["check", "--config", &cfg, "not a url"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&[
        "sign",
        "--config",
        &cfg,
        "http://play.example.com/live/x.flv",
    ]);
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_without_config_and_prints_working_urls() {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "run",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let proxy = Proxy::spawn(dir, &args);
    let urls: Vec<&str> = proxy
        .stdout
        .iter()
        .filter_map(|l| l.trim().strip_prefix("http://"))
        .filter(|u| u.contains("txSecret="))
        .collect();
    assert_eq!(urls.len(), 2, "demo printed: {:?}", proxy.stdout);
    let flv = urls.iter().find(|u| u.contains(".flv")).unwrap();
    let m3u8 = urls.iter().find(|u| u.contains(".m3u8")).unwrap();
    let pq = |u: &str| u[u.find('/').unwrap()..].to_owned();
    let addr = proxy.http_addr();

    // The endless FLV stream starts with an FLV header and keeps coming.
    let resp = send(addr, "127.0.0.1", &pq(flv)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while got.len() < 20_000 {
        let f = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        got.extend_from_slice(&f.into_data().unwrap());
    }
    assert_eq!(&got[..3], b"FLV");
    drop(body);

    // curl, a real client, fetches the signed playlist; unsigned is denied.
    let out = Command::new("curl")
        .args(["-s", "-f", &format!("http://{m3u8}")])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("#EXTM3U"));
    let (status, _, body) = get(addr, "127.0.0.1", "/live/demo.flv").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, Bytes::from("403 missing_token\n"));
}

#[test]
fn sign_refuses_a_past_expiry_and_signs_path_form_urls_without_a_trailing_question_mark() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        &site_config("http://127.0.0.1:1", "", "").replace(KEY, "${TEST_KEY}"),
    );
    let (code, _, err) = run(&[
        "sign",
        "--config",
        &cfg,
        "--expires-at",
        "1000",
        "http://play.example.com/live/x.flv",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("in the past"), "{err}");
    // Past 2106 no verifier reads the time: refused, not signed.
    let (code, _, err) = run(&[
        "sign",
        "--config",
        &cfg,
        "--expires-at",
        "4294967296",
        "http://play.example.com/live/x.flv",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("2106"), "{err}");

    // Alibaba Cloud type C carries everything in the path: nothing after it.
    let aliyun = r#"
[server]
listen = ["127.0.0.1:0"]
[[site]]
id = "ali"
domains = ["cdn.example.com"]
origin = "http://127.0.0.1:1"
[site.auth]
scheme = "aliyun"
type = "c"
key = "aliyuncdnexp1234"
auth_delta_secs = 0
"#;
    let dir2 = tempfile::tempdir().unwrap();
    let cfg2 = write_config(&dir2, aliyun);
    let (code, out, err) = run(&[
        "sign",
        "--config",
        &cfg2,
        "--at",
        "1439596000",
        "--expires-at",
        "1439596800",
        "http://cdn.example.com/test.flv",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "http://cdn.example.com/a37fa50a5fb8f71214b1e7c95ec7a1bd/55CE8100/test.flv"
    );
    // `check` shows the path as the access log does: the in-path signature
    // hidden; and input that is no URL is not repeated.
    let (code, out, err) = run(&[
        "check",
        "--config",
        &cfg2,
        "--at",
        "1439596000",
        "http://cdn.example.com/a37fa50a5fb8f71214b1e7c95ec7a1bd/55CE8100/test.flv",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("path:") && out.contains("test.flv"), "{out}");
    assert!(!out.contains("a37fa50a5fb8f71214b1e7c95ec7a1bd"), "{out}");
    let (code, out, err) = run(&[
        "check",
        "--config",
        &cfg2,
        "/test.flv?txSecret=0123456789abcdef0123456789abcdef",
    ]);
    assert_ne!(code, 0);
    assert!(
        !format!("{out}{err}").contains("0123456789abcdef"),
        "{out}{err}"
    );
}

#[test]
fn check_uses_the_sites_param_names_and_asks_for_the_client_of_bound_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        &dir,
        &site_config("http://127.0.0.1:1", "", "time_param = \"expire\"")
            .replace(KEY, "${TEST_KEY}"),
    );
    let (code, url, err) = run(&[
        "sign",
        "--config",
        &cfg,
        "--expires-in",
        "60",
        "http://play.example.com/live/x.flv",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(url.contains("&expire="), "{url}");
    let (code, out, _) = run(&["check", "--config", &cfg, url.trim()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\nexpire:"), "{out}");
    assert!(!out.contains("txTime"), "{out}");

    // A forged URL claims an expiry nobody vouches for: no "s left".
    let mut forged_bytes = url.trim().as_bytes().to_vec();
    let i = url.find("txSecret=").unwrap() + "txSecret=".len();
    forged_bytes[i] = if forged_bytes[i] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged_bytes).unwrap();
    let (code, out, _) = run(&["check", "--config", &cfg, &forged]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bad_signature"), "{out}");
    assert!(!out.contains("s left"), "{out}");

    // nginx secure_link hashing $remote_addr: check says to pass --client-ip.
    let nginx = r#"
[server]
listen = ["127.0.0.1:0"]
[[site]]
id = "n"
domains = ["n.example.com"]
origin = "http://127.0.0.1:1"
[site.auth]
scheme = "nginx_secure_link"
key = "secret"
template = "$secure_link_expires$uri$remote_addr $key"
"#;
    let dir2 = tempfile::tempdir().unwrap();
    let cfg2 = write_config(&dir2, nginx);
    let (code, url, err) = run(&[
        "sign",
        "--config",
        &cfg2,
        "--expires-in",
        "60",
        "--client-ip",
        "192.0.2.7",
        "http://n.example.com/s/a.ts",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(&["check", "--config", &cfg2, url.trim()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("--client-ip"), "{out}");
    let (code, out, _) = run(&[
        "check",
        "--config",
        &cfg2,
        "--client-ip",
        "192.0.2.7",
        url.trim(),
    ]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_probes_the_admin_listener() {
    let proxy = Proxy::start(&site_config("http://127.0.0.1:1", "", ""));
    let admin = proxy.admin.to_string();
    let (code, out, _) = run(&["healthcheck", "--admin-listen", &admin]);
    assert_eq!(code, 0, "{out}");
    let wildcard = format!("0.0.0.0:{}", proxy.admin.port());
    let out = Command::new(BIN)
        .arg("healthcheck")
        .env("STREAMGUARD_ADMIN_LISTEN", &wildcard)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    drop(proxy);
    let (code, out, _) = run(&["healthcheck", "--admin-listen", &admin]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unhealthy"), "{out}");
}
