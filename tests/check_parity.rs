//! `streamguard check` and the running proxy give the same verdict for the
//! same URL: both decide with the one `authenticate` over the site as `run`
//! serves it (config keys, vendor keys restored from the state directory,
//! HLS session tokens, tokens in cookies).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use http::StatusCode;

const VOD_KEY: &str = "syncedkey0123456789";
const AKAMAI_KEY: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const SESSION_SECRET: &str = "parity-session-secret-0123456789";

fn config(origin: &str, state_dir: &Path) -> String {
    format!(
        r#"
state_dir = "{state}"

[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"

[[vendor]]
name = "tencent-main"
kind = "tencent"
access_key = "AKIDparity"
secret_key = "parity-secret"
endpoint = "http://127.0.0.1:9/"
sync_interval_secs = 3600
request_timeout_secs = 1

[[site]]
id = "live"
domains = ["play.example.com"]
origin = "{origin}"
[site.auth]
scheme = "tencent"
key = "{KEY}"
backup_key = "{BACKUP}"
[site.hls]
session_secret = "{SESSION_SECRET}"

[[site]]
id = "vod"
domains = ["vod.example.com"]
origin = "{origin}"
vendor = "tencent-main"

[[site]]
id = "edge"
domains = ["edge.example.com"]
origin = "{origin}"
[site.auth]
scheme = "akamai"
key = "{AKAMAI_KEY}"
mode = "url"
"#,
        state = state_dir.display()
    )
}

/// A Tencent DescribeLivePlayAuthKey answer as the sync saves it.
fn saved_answer(domain: &str, key: &str) -> String {
    format!(
        r#"{{"Response": {{"PlayAuthKeyInfo": {{"DomainName": "{domain}", "Enable": 1, "AuthKey": "{key}", "AuthDelta": 0, "AuthBackKey": ""}}, "RequestId": "saved"}}}}"#
    )
}

/// What `check` says: `Ok(())` for allow, `Err(reason)` for deny.
fn check_verdict(config: &Path, url: &str, extra: &[&str]) -> (Result<(), String>, String) {
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(config)
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("verdict:"))
        .unwrap_or_else(|| panic!("no verdict for {url}: {stdout} {:?}", out.stderr))
        .trim()
        .to_owned();
    let verdict = if line == "allow" {
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        Ok(())
    } else {
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        let reason = line
            .strip_prefix("deny (")
            .and_then(|r| r.split([';', ':', ')']).next())
            .unwrap_or_else(|| panic!("odd verdict line {line}"));
        Err(reason.to_owned())
    };
    (verdict, stdout)
}

/// What the proxy says: `Ok(())` for a 200 from the origin, `Err(reason)` from
/// its deny or error header.
async fn proxy_verdict(
    proxy: &Proxy,
    host: &str,
    pq: &str,
    headers: &[(&str, &str)],
) -> Result<(), String> {
    let resp = send_with(proxy.http_addr(), host, pq, http::Method::GET, headers).await;
    let reason = ["x-streamguard-deny", "x-streamguard-error"]
        .iter()
        .find_map(|h| header_map_get(resp.headers(), h).map(str::to_owned));
    match (resp.status(), reason) {
        (StatusCode::OK, None) => Ok(()),
        (status, Some(r)) => {
            assert!(status.is_client_error(), "{status} for {pq}");
            Err(r)
        }
        (status, None) => panic!("{status} without a reason for {pq}"),
    }
}

/// Host, path and query, request headers.
type Case = (&'static str, String, Vec<(&'static str, String)>);

fn sign(config: &Path, url: &str) -> String {
    let out = Command::new(BIN)
        .args(["sign", "--config"])
        .arg(config)
        .args(["--expires-in", "600", url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn check_and_the_proxy_agree_on_every_url() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("tencent-main")).unwrap();
    std::fs::write(
        state.join("tencent-main").join("vod.example.com.json"),
        saved_answer("vod.example.com", VOD_KEY),
    )
    .unwrap();
    let cfg_text = config(&format!("http://{}", origin.addr), &state);
    let proxy = Proxy::start_in(dir, &cfg_text, &[]);
    let cfg = proxy.path("streamguard.toml");

    // A session child, as the proxy wrote it into a playlist it served.
    let list = format!(
        "/bigplaylist/index.m3u8?{}",
        tencent_query(KEY, "/bigplaylist/index.m3u8", now() + 600)
    );
    let (status, _, body) = get(proxy.http_addr(), "play.example.com", &list).await;
    assert_eq!(status, StatusCode::OK);
    let child = String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .find(|l| l.starts_with("segment-"))
        .unwrap()
        .to_owned();
    assert!(child.contains("sg_session="), "{child}");
    let token = child.split_once("sg_session=").unwrap().1.to_owned();
    let mut forged_token = token.clone().into_bytes();
    let last = forged_token.len() - 1;
    forged_token[last] = if forged_token[last] == b'0' {
        b'1'
    } else {
        b'0'
    };
    let forged_token = String::from_utf8(forged_token).unwrap();

    let edge_signed = sign(&cfg, "http://edge.example.com/live/e.m3u8");
    let edge_token = edge_signed.split_once("__token__=").unwrap().1.to_owned();
    let cookie = format!("__token__={edge_token}");

    let cases: Vec<Case> = vec![
        (
            "play.example.com",
            format!(
                "/live/a.flv?{}",
                tencent_query(KEY, "/live/a.flv", now() + 600)
            ),
            vec![],
        ),
        (
            "play.example.com",
            format!(
                "/live/a.flv?{}",
                tencent_query(BACKUP, "/live/a.flv", now() + 600)
            ),
            vec![],
        ),
        (
            "play.example.com",
            format!(
                "/live/a.flv?{}",
                tencent_query(KEY, "/live/a.flv", now() - 600)
            ),
            vec![],
        ),
        (
            "play.example.com",
            format!(
                "/live/a.flv?{}",
                tencent_query("forged", "/live/a.flv", now() + 600)
            ),
            vec![],
        ),
        ("play.example.com", "/live/a.flv".to_owned(), vec![]),
        (
            "play.example.com",
            "/live/a.flv?txSecret=zz&txTime=1".to_owned(),
            vec![],
        ),
        ("play.example.com", format!("/bigplaylist/{child}"), vec![]),
        (
            "play.example.com",
            format!("/bigplaylist/segment-00000.ts?sg_session={forged_token}"),
            vec![],
        ),
        (
            "play.example.com",
            format!("/elsewhere/x.ts?sg_session={token}"),
            vec![],
        ),
        (
            "vod.example.com",
            format!(
                "/vod/v.m3u8?{}",
                tencent_query(VOD_KEY, "/vod/v.m3u8", now() + 600)
            ),
            vec![],
        ),
        (
            "vod.example.com",
            format!(
                "/vod/v.flv?{}",
                tencent_query(VOD_KEY, "/vod/v.flv", now() - 600)
            ),
            vec![],
        ),
        (
            "vod.example.com",
            format!(
                "/vod/v.flv?{}",
                tencent_query(KEY, "/vod/v.flv", now() + 600)
            ),
            vec![],
        ),
        (
            "edge.example.com",
            format!("/live/e.m3u8?__token__={edge_token}"),
            vec![],
        ),
        (
            "edge.example.com",
            "/live/e.m3u8".to_owned(),
            vec![("cookie", cookie.clone())],
        ),
        (
            "edge.example.com",
            "/live/other.m3u8".to_owned(),
            vec![("cookie", cookie.clone())],
        ),
        ("edge.example.com", "/live/e.m3u8".to_owned(), vec![]),
        ("nobody.example.com", "/live/a.flv".to_owned(), vec![]),
        ("play.example.com", "/live//a.flv".to_owned(), vec![]),
    ];
    let mut allowed = 0;
    let mut reasons = std::collections::BTreeSet::new();
    for (host, pq, headers) in &cases {
        let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let from_proxy = proxy_verdict(&proxy, host, pq, &hdrs).await;
        let mut extra: Vec<String> = Vec::new();
        for (k, v) in headers {
            if *k == "cookie" {
                extra.push("--cookie".into());
                extra.push(v.clone());
            }
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let url = format!("http://{host}{pq}");
        let (from_check, out) = check_verdict(&cfg, &url, &extra);
        assert_eq!(
            from_proxy, from_check,
            "proxy and check disagree on {url}:\n{out}"
        );
        match from_proxy {
            Ok(()) => allowed += 1,
            Err(r) => {
                reasons.insert(r);
            }
        }
    }
    // The cases cover what they claim: allowed URLs of every kind, and
    // each denial reason.
    assert_eq!(allowed, 6, "{reasons:?}");
    for r in [
        "expired",
        "bad_signature",
        "missing_token",
        "malformed_token",
        "unknown_host",
        "bad_path",
    ] {
        assert!(reasons.contains(r), "no case denied with {r}: {reasons:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_names_where_each_key_came_from() {
    let origin = Origin::start().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("tencent-main")).unwrap();
    std::fs::write(
        state.join("tencent-main").join("vod.example.com.json"),
        saved_answer("vod.example.com", VOD_KEY),
    )
    .unwrap();
    let cfg = dir.path().join("streamguard.toml");
    std::fs::write(&cfg, config(&format!("http://{}", origin.addr), &state)).unwrap();

    let url = format!(
        "http://vod.example.com/vod/v.flv?{}",
        tencent_query(VOD_KEY, "/vod/v.flv", now() + 600)
    );
    let (verdict, out) = check_verdict(&cfg, &url, &[]);
    assert_eq!(verdict, Ok(()), "{out}");
    assert!(
        out.contains("restored from the state directory"),
        "no key source in:\n{out}"
    );
    assert!(!out.contains(VOD_KEY), "the key itself is printed:\n{out}");
    let url = format!(
        "http://play.example.com/live/a.flv?{}",
        tencent_query(BACKUP, "/live/a.flv", now() + 600)
    );
    let (verdict, out) = check_verdict(&cfg, &url, &[]);
    assert_eq!(verdict, Ok(()), "{out}");
    assert!(out.contains("backup (config file)"), "{out}");

    // sign uses the restored vendor key too, and check accepts what it signs.
    let signed = sign(&cfg, "http://vod.example.com/vod/v.flv");
    let (verdict, out) = check_verdict(&cfg, &signed, &[]);
    assert_eq!(verdict, Ok(()), "{out}");
}
