//! Every scheme through the running proxy: one proxy, one site per scheme,
//! URLs signed in the test independently of the crate's own signers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use bytes::Bytes;
use common::*;
use http::StatusCode;
use md5::{Digest, Md5};

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn hmac_sha256_hex(hex_key: &str, text: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(&hex::decode(hex_key).unwrap()).unwrap();
    m.update(text.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

fn config(origin: &str) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"

[[site]]
id = "volc"
domains = ["volc.example.com"]
origin = "{origin}"
[site.auth]
scheme = "volcengine"
keys = ["volc-old", "volc-new"]
valid_duration_secs = 0

[[site]]
id = "wangsu"
domains = ["ws.example.com"]
origin = "{origin}"
[site.auth]
scheme = "wangsu"
[[site.auth.rule]]
key = "ws-group-1"
time_format = "hex"
effective_time_mode = "abstime"
[[site.auth.rule]]
key = "ws-group-2"
cipher_param = "sign"
time_param = "t"
cipher_combination = "path+time+key"
time_format = "unix"
effective_time_mode = "duration"
effective_time_secs = 120

[[site]]
id = "ali-a"
domains = ["a.example.com"]
origin = "{origin}"
[site.auth]
scheme = "aliyun"
type = "a"
key = "ali-a-key"

[[site]]
id = "ali-b"
domains = ["b.example.com"]
origin = "{origin}"
[site.auth]
scheme = "aliyun"
type = "b"
key = "ali-b-key"

[[site]]
id = "ali-c"
domains = ["c.example.com"]
origin = "{origin}"
[site.auth]
scheme = "aliyun"
type = "c"
key = "ali-c-key"

[[site]]
id = "ali-cq"
domains = ["cq.example.com"]
origin = "{origin}"
[site.auth]
scheme = "aliyun"
type = "c"
c_form = "query"
hash_param = "sig"
time_param = "ts"
key = "ali-cq-key"

[[site]]
id = "akamai"
domains = ["ak.example.com"]
origin = "{origin}"
trusted_proxies = ["127.0.0.1"]
[site.auth]
scheme = "akamai"
key = "aabbccddeeff00112233445566778899"
"#
    )
}

async fn expect(proxy: &Proxy, origin: &Origin, host: &str, pq: &str, saw: &str) {
    let (status, headers, body) = get(proxy.http_addr(), host, pq).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{host}{pq}: {:?}",
        headers.get("x-streamguard-deny")
    );
    assert_eq!(body, Bytes::from(format!("origin saw {saw}")));
    assert_eq!(origin.last_seen().path_and_query, saw);
}

async fn expect_denied(proxy: &Proxy, host: &str, pq: &str, reason: &str) {
    let (status, headers, _) = get(proxy.http_addr(), host, pq).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{host}{pq}");
    assert_eq!(
        header_map_get(&headers, "x-streamguard-deny"),
        Some(reason),
        "{host}{pq}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn each_scheme_allows_its_signed_urls_and_denies_forgeries() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config(&format!("http://{}", origin.addr)));
    let t = now() + 60;

    // Volcengine md5: "/App/Stream" + key + volcTime; any of the keys.
    let s = md5_hex(&format!("/live/s1volc-new{t}"));
    expect(
        &proxy,
        &origin,
        "volc.example.com",
        &format!("/live/s1.flv?volcSecret={s}&volcTime={t}"),
        "/live/s1.flv",
    )
    .await;
    let s = md5_hex(&format!("/live/s1volc-x{t}"));
    expect_denied(
        &proxy,
        "volc.example.com",
        &format!("/live/s1.flv?volcSecret={s}&volcTime={t}"),
        "bad_signature",
    )
    .await;

    // Wangsu group 1 (key+path+time, hex abstime) and group 2 (custom names, duration).
    let s = md5_hex(&format!("ws-group-1/live/s2.flv{t:x}"));
    expect(
        &proxy,
        &origin,
        "ws.example.com",
        &format!("/live/s2.flv?wsSecret={s}&wsTime={t:x}"),
        "/live/s2.flv",
    )
    .await;
    let gen = now();
    let s = md5_hex(&format!("/live/s2.flv{gen}ws-group-2"));
    expect(
        &proxy,
        &origin,
        "ws.example.com",
        &format!("/live/s2.flv?sign={s}&t={gen}&x=1"),
        "/live/s2.flv?x=1",
    )
    .await;
    let old = now() - 200;
    let s = md5_hex(&format!("/live/s2.flv{old}ws-group-2"));
    expect_denied(
        &proxy,
        "ws.example.com",
        &format!("/live/s2.flv?sign={s}&t={old}"),
        "expired",
    )
    .await;

    // Alibaba Cloud type A: "{URI}-{ts}-{rand}-{uid}-{key}", ts + 1800.
    let ts = now();
    let h = md5_hex(&format!("/video/a.m3u8-{ts}-0-0-ali-a-key"));
    expect(
        &proxy,
        &origin,
        "a.example.com",
        &format!("/video/a.m3u8?auth_key={ts}-0-0-{h}"),
        "/video/a.m3u8",
    )
    .await;
    let h = md5_hex(&format!("/video/b.m3u8-{ts}-0-0-ali-a-key"));
    expect_denied(
        &proxy,
        "a.example.com",
        &format!("/video/a.m3u8?auth_key={ts}-0-0-{h}"),
        "bad_signature",
    )
    .await;

    // Type B: /YYYYMMDDHHMM(UTC+8)/hash/path; the origin gets /path.
    let (y, mo, d, hh, mi, _) = streamguard::time::civil(now() + 8 * 3600);
    let tb = format!("{y:04}{mo:02}{d:02}{hh:02}{mi:02}");
    let h = md5_hex(&format!("ali-b-key{tb}/4/44/x.ts"));
    expect(
        &proxy,
        &origin,
        "b.example.com",
        &format!("/{tb}/{h}/4/44/x.ts"),
        "/4/44/x.ts",
    )
    .await;
    expect_denied(
        &proxy,
        "b.example.com",
        &format!("/{tb}/{h}/4/44/y.ts"),
        "bad_signature",
    )
    .await;

    // Type C path form: /hash/hexts/path; the origin gets /path.
    let hx = format!("{:X}", now());
    let h = md5_hex(&format!("ali-c-key/4/44/x.ts{hx}"));
    expect(
        &proxy,
        &origin,
        "c.example.com",
        &format!("/{h}/{hx}/4/44/x.ts?q=1"),
        "/4/44/x.ts?q=1",
    )
    .await;

    // Type C query form with renamed params, stripped before forwarding.
    let h = md5_hex(&format!("ali-cq-key/4/44/x.ts{hx}"));
    expect(
        &proxy,
        &origin,
        "cq.example.com",
        &format!("/4/44/x.ts?sig={h}&ts={hx}"),
        "/4/44/x.ts",
    )
    .await;
    expect_denied(&proxy, "cq.example.com", "/4/44/x.ts", "missing_token").await;

    // Akamai EdgeAuth: HMAC-SHA256(hex key) over the fields; token in query or cookie;
    // an ip= binding checked against X-Forwarded-For from the trusted peer.
    let fields = format!("ip=203.0.113.7~exp={t}~acl=/vod/*");
    let token = format!(
        "{fields}~hmac={}",
        hmac_sha256_hex("aabbccddeeff00112233445566778899", &fields)
    );
    let resp = send_with(
        proxy.http_addr(),
        "ak.example.com",
        "/vod/a/b.ts",
        http::Method::GET,
        &[
            ("cookie", &format!("x=1; __token__={token}")),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(origin.last_seen().path_and_query, "/vod/a/b.ts");
    // The token's cookie is stripped like its query param; others stay.
    assert_eq!(
        header_map_get(&origin.last_seen().headers, "cookie"),
        Some("x=1")
    );
    // ... and so is the token's header.
    let resp = send_with(
        proxy.http_addr(),
        "ak.example.com",
        "/vod/a/b.ts",
        http::Method::GET,
        &[("__token__", &token), ("x-forwarded-for", "203.0.113.7")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(origin.last_seen().headers.get("__token__").is_none());
    let resp = send_with(
        proxy.http_addr(),
        "ak.example.com",
        &format!("/vod/a/b.ts?__token__={token}"),
        http::Method::GET,
        &[("x-forwarded-for", "198.51.100.1")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        header_map_get(resp.headers(), "x-streamguard-deny"),
        Some("wrong_client")
    );
    expect_denied(
        &proxy,
        "ak.example.com",
        &format!("/other/b.ts?__token__={token}"),
        "outside_acl",
    )
    .await;

    let m = proxy.metrics().await;
    for site in [
        "volc", "wangsu", "ali-a", "ali-b", "ali-c", "ali-cq", "akamai",
    ] {
        assert!(
            metric(
                &m,
                &format!(
                    r#"streamguard_requests_total{{outcome="allowed",reason="none",site="{site}"}}"#
                )
            ) >= 1.0,
            "{site}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn in_path_auth_cannot_smuggle_an_ambiguous_origin_path() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config(&format!("http://{}", origin.addr)));
    let hx = format!("{:X}", now());
    // A genuine signature over "/../secret" would still be refused: the path
    // is checked before auth, and the derived origin path is checked again.
    let h = md5_hex(&format!("ali-c-key/../secret{hx}"));
    let (status, headers, _) = get(
        proxy.http_addr(),
        "c.example.com",
        &format!("/{h}/{hx}/../secret"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        header_map_get(&headers, "x-streamguard-error"),
        Some("bad_path")
    );
    assert_eq!(origin.count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn aliyun_type_b_playlist_children_work_with_and_without_the_auth_segments() {
    let origin = Origin::start().await;
    let proxy = Proxy::start(&config(&format!("http://{}", origin.addr)));
    let (y, mo, d, hh, mi, _) = streamguard::time::civil(now() + 8 * 3600);
    let tb = format!("{y:04}{mo:02}{d:02}{hh:02}{mi:02}");
    let h = md5_hex(&format!("ali-b-key{tb}/bigplaylist/index.m3u8"));
    let (status, _, body) = get(
        proxy.http_addr(),
        "b.example.com",
        &format!("/{tb}/{h}/bigplaylist/index.m3u8"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(origin.last_seen().path_and_query, "/bigplaylist/index.m3u8");
    let text = String::from_utf8(body.to_vec()).unwrap();
    let token_of = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split("sg_session=").nth(1))
            .unwrap()
            .to_owned()
    };
    // Resolved against the signed URL, a relative child keeps the auth segments…
    let token = token_of("segment-00001.ts");
    let (s, _, _) = get(
        proxy.http_addr(),
        "b.example.com",
        &format!("/{tb}/{h}/bigplaylist/segment-00001.ts?sg_session={token}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        origin.last_seen().path_and_query,
        "/bigplaylist/segment-00001.ts"
    );
    // …and an absolute-path child has none; the token is bound to the
    // origin path, which both forms name.
    let token = token_of("segment-00002.ts");
    let (s, _, _) = get(
        proxy.http_addr(),
        "b.example.com",
        &format!("/bigplaylist/segment-00002.ts?sg_session={token}"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        origin.last_seen().path_and_query,
        "/bigplaylist/segment-00002.ts"
    );
    let (s, _, _) = get(
        proxy.http_addr(),
        "b.example.com",
        &format!("/other/segment-00002.ts?sg_session={token}"),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

/// The shipped Akamai example (acl mode, `child_auth = "propagate"`): a
/// playlist URL that `streamguard sign --acl` made opens its segments through
/// the proxy; one signed for the exact path does not (`outside_acl`).
#[tokio::test(flavor = "multi_thread")]
async fn akamai_acl_signed_by_the_cli_opens_the_playlists_children() {
    let origin = Origin::start().await;
    let key = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let cfg = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"

[[site]]
id = "edge"
domains = ["media.example.com"]
origin = "http://{}"
[site.auth]
scheme = "akamai"
key = "{key}"
mode = "acl"
[site.hls]
child_auth = "propagate"
"#,
        origin.addr
    );
    let proxy = Proxy::start(&cfg);
    let cfg_path = proxy.path("streamguard.toml");
    let sign = |extra: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(["sign", "--config"])
            .arg(&cfg_path)
            .args(["--expires-in", "600"])
            .args(extra)
            .arg("http://media.example.com/bigplaylist/index.m3u8")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let url = String::from_utf8(out.stdout).unwrap();
        url.trim()
            .strip_prefix("http://media.example.com")
            .unwrap()
            .to_owned()
    };
    let first_child = async |pq: &str| {
        let (status, _, body) = get(proxy.http_addr(), "media.example.com", pq).await;
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8(body.to_vec()).unwrap();
        let child = text
            .lines()
            .find(|l| l.starts_with("segment-"))
            .unwrap()
            .to_owned();
        assert!(child.contains("__token__="), "{child}");
        format!("/bigplaylist/{child}")
    };

    let child = first_child(&sign(&["--acl", "/bigplaylist/*"])).await;
    let (status, headers, _) = get(proxy.http_addr(), "media.example.com", &child).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{:?}",
        headers.get("x-streamguard-deny")
    );
    assert_eq!(
        origin.last_seen().path_and_query,
        "/bigplaylist/segment-00000.ts"
    );

    let child = first_child(&sign(&[])).await;
    expect_denied(&proxy, "media.example.com", &child, "outside_acl").await;
}
