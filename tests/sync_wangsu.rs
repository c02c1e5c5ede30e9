//! Vendor key sync against a fake Wangsu / ChinaNetCenter API on loopback.
//! The fake checks every request's `Date` (format, weekday, freshness) and
//! recomputes its `Authorization: Basic base64(user ":" base64(HMAC-SHA1(apiKey,
//! Date)))` on its own, answering 401 with a `{code, message}` envelope when it
//! does not match, as the real API answers errors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::*;
use http::{Response, StatusCode};
use http_body_util::Full;
use md5::{Digest, Md5};
use serde_json::json;

const USERNAME: &str = "wangsu-user";
const API_KEY: &str = "wangsu-test-api-key";
const DOMAIN: &str = "play.example.com";
const PATH: &str = "/live/s.flv";
/// The fake's code for a bad signature or Date; the vendor does not document
/// its own, so this one is made up on purpose.
const FAKE_AUTH_CODE: &str = "FAKE_AUTH_FAILED";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    ServerError,
    Garbage,
}

struct VendorState {
    mode: Mode,
    /// The apiKey the fake checks signatures with (change it to force a 401).
    expect_api_key: String,
    /// `timestampVisitControlRules` as the fake answers them.
    rules: Vec<serde_json::Value>,
    requests: usize,
    bad_signatures: usize,
}

#[derive(Clone)]
struct FakeWangsu {
    addr: SocketAddr,
    state: Arc<Mutex<VendorState>>,
}

/// Group A: default param names, hex expiry (abstime), key+path+time; strings
/// for numbers, as in the vendor's own example.
fn group_a(data_id: &str, key: &str) -> serde_json::Value {
    json!({"dataId": data_id, "secretKey": key, "timeFormat": "hex",
           "effectiveTimeMode": "abstime", "tolerantTime": "0",
           "cipheCombination": "key+path+time"})
}

/// Group B: its own param names, decimal generation time valid 300 s,
/// time+key+path; JSON numbers.
fn group_b(key: &str) -> serde_json::Value {
    json!({"dataId": 102, "cipherParam": "sign", "timeParam": "t", "secretKey": key,
           "timeFormat": "UNIX timestamp", "effectiveTimeMode": "duration",
           "effectiveTime": 300, "tolerantTime": 5, "cipheCombination": "time+key+path"})
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// A URL query for group A: `wsSecret = md5(key + path + hexTime)`, `wsTime` = expiry.
fn query_a(key: &str, expires: u64) -> String {
    let t = format!("{expires:x}");
    format!(
        "wsSecret={}&wsTime={t}",
        md5_hex(&format!("{key}{PATH}{t}"))
    )
}

/// A URL query for group B: `sign = md5(time + key + path)`, `t` = generation time.
fn query_b(key: &str, generated: u64) -> String {
    let t = generated.to_string();
    format!("sign={}&t={t}", md5_hex(&format!("{t}{key}{PATH}")))
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        "application/json;charset=utf-8".parse().unwrap(),
    );
    r.headers_mut()
        .insert("x-cnc-request-id", "fake-req".parse().unwrap());
    r
}

fn error_envelope(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({"code": code, "message": message}))
}

impl FakeWangsu {
    async fn start(rules: Vec<serde_json::Value>) -> FakeWangsu {
        let state = VendorState {
            mode: Mode::Ok,
            expect_api_key: API_KEY.to_owned(),
            rules,
            requests: 0,
            bad_signatures: 0,
        };
        start_fake(
            |addr| FakeWangsu {
                addr,
                state: Arc::new(Mutex::new(state)),
            },
            FakeWangsu::answer,
        )
        .await
    }

    async fn answer(self, req: FakeRequest) -> Response<Full<Bytes>> {
        let (mode, api_key, rules) = {
            let mut s = self.state.lock().unwrap();
            s.requests += 1;
            (s.mode, s.expect_api_key.clone(), s.rules.clone())
        };
        match mode {
            Mode::ServerError => {
                return error_envelope(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "26939999",
                    "We encountered an internal error. Please try again.",
                )
            }
            Mode::Garbage => {
                return json_response(StatusCode::OK, &json!("<html>not an api</html>"))
            }
            Mode::Ok => {}
        }
        if !wangsu_signature_ok(&req, USERNAME, &api_key) {
            self.state.lock().unwrap().bad_signatures += 1;
            return error_envelope(
                StatusCode::UNAUTHORIZED,
                FAKE_AUTH_CODE,
                "Date or Authorization does not match",
            );
        }
        let domain = req
            .parts
            .uri
            .path()
            .strip_prefix("/api/config/live-timestampvisitcontrol/");
        if req.parts.method != http::Method::GET || domain != Some(DOMAIN) {
            return error_envelope(
                StatusCode::NOT_FOUND,
                "26932001",
                "The specified domain does not exist.",
            );
        }
        json_response(
            StatusCode::OK,
            &json!({"code": "0", "message": "success", "data": {
                "domainId": "123344", "domainName": DOMAIN,
                "timestampVisitControlRules": rules}}),
        )
    }

    fn set(&self, f: impl FnOnce(&mut VendorState)) {
        f(&mut self.state.lock().unwrap());
    }
}

fn config(
    vendor: &FakeWangsu,
    state_dir: &std::path::Path,
    origin: SocketAddr,
    site_extra: &str,
) -> String {
    format!(
        r#"
state_dir = "{}"

[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"

[[vendor]]
name = "wangsu-main"
kind = "wangsu"
access_key = "${{FAKE_WANGSU_USER}}"
secret_key = "${{FAKE_WANGSU_API_KEY}}"
endpoint = "http://{}"
sync_interval_secs = 1
request_timeout_secs = 1

[[site]]
id = "live"
domains = ["{DOMAIN}"]
origin = "http://{origin}"
vendor = "wangsu-main"
{site_extra}
"#,
        state_dir.display(),
        vendor.addr
    )
}

fn start(cfg: &str) -> Proxy {
    Proxy::start_env(
        cfg,
        &[
            ("FAKE_WANGSU_USER", USERNAME),
            ("FAKE_WANGSU_API_KEY", API_KEY),
        ],
    )
}

/// Status and deny reason of a request for [`PATH`] with `query`.
async fn status_of(proxy: &Proxy, query: &str) -> (StatusCode, Option<String>) {
    let (s, h, _) = get(proxy.http_addr(), DOMAIN, &format!("{PATH}?{query}")).await;
    (
        s,
        header_map_get(&h, "x-streamguard-deny").map(str::to_owned),
    )
}

fn failures(m: &str) -> f64 {
    m.lines()
        .filter(|l| {
            l.starts_with("streamguard_key_sync_attempts_total{") && !l.contains("result=\"ok\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn attempts(m: &str, result: &str) -> f64 {
    metric(
        m,
        &format!(
            r#"streamguard_key_sync_attempts_total{{result="{result}",vendor="wangsu-main"}}"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn rule_groups_are_picked_up_added_and_removed() {
    let vendor = FakeWangsu::start(vec![group_a("101", "group-a-key")]).await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(&vendor, state.path(), origin.addr, ""));

    wait_for("/readyz", async || {
        get(proxy.admin, "admin", "/readyz").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(
        status_of(&proxy, &query_a("group-a-key", now() + 60))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&proxy, &query_a("not-the-key", now() + 60)).await,
        (StatusCode::FORBIDDEN, Some("bad_signature".into()))
    );
    // Group B's URL means nothing until the vendor lists group B.
    assert_eq!(
        status_of(&proxy, &query_b("group-b-key", now())).await.0,
        StatusCode::FORBIDDEN
    );

    // A second rule group added at the vendor is accepted after the next sync.
    vendor.set(|s| s.rules.push(group_b("group-b-key")));
    wait_for("group B", async || {
        status_of(&proxy, &query_b("group-b-key", now())).await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(
        status_of(&proxy, &query_a("group-a-key", now() + 60))
            .await
            .0,
        StatusCode::OK
    );

    // Group A removed (a new group of the same shape, with another key, takes
    // its place): A's key is rejected after the next sync.
    vendor.set(|s| s.rules = vec![group_b("group-b-key"), group_a("103", "group-a2-key")]);
    wait_for("group A's key to stop", async || {
        status_of(&proxy, &query_a("group-a-key", now() + 60)).await
            == (StatusCode::FORBIDDEN, Some("bad_signature".into()))
    })
    .await;
    assert_eq!(
        status_of(&proxy, &query_a("group-a2-key", now() + 60))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        status_of(&proxy, &query_b("group-b-key", now())).await.0,
        StatusCode::OK
    );
    // Group B's time window holds: generated 306 s ago is past 300 + 5.
    assert_eq!(
        status_of(&proxy, &query_b("group-b-key", now() - 306)).await,
        (StatusCode::FORBIDDEN, Some("expired".into()))
    );
    // The origin gets the path without the auth params.
    let seen = origin.last_seen().path_and_query;
    assert!(
        seen.starts_with(PATH) && !seen.contains("sign=") && !seen.contains("wsSecret="),
        "auth params forwarded: {seen}"
    );

    let m = proxy.metrics().await;
    assert!(attempts(&m, "ok") >= 3.0);
    assert_eq!(metric(&m, r#"streamguard_site_keys{site="live"}"#), 2.0);
    assert!(!m.contains("group-a2-key") && !m.contains("group-b-key"));
    let st = vendor.state.lock().unwrap();
    assert!(st.requests >= 3);
    assert_eq!(
        st.bad_signatures, 0,
        "the client's signatures did not verify"
    );
    drop(st);
    let file = state.path().join("wangsu-main/play.example.com.json");
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("group-a2-key"));
}

#[tokio::test(flavor = "multi_thread")]
async fn vendor_failures_keep_the_last_good_keys_and_are_counted() {
    let vendor = FakeWangsu::start(vec![group_a("101", "group-a-key")]).await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(&vendor, state.path(), origin.addr, ""));
    wait_for("first sync", async || {
        status_of(&proxy, &query_a("group-a-key", now() + 60))
            .await
            .0
            == StatusCode::OK
    })
    .await;

    for (what, change) in [
        (
            "5xx",
            Box::new(|s: &mut VendorState| s.mode = Mode::ServerError)
                as Box<dyn Fn(&mut VendorState)>,
        ),
        (
            "garbage",
            Box::new(|s: &mut VendorState| s.mode = Mode::Garbage),
        ),
        (
            "signature mismatch",
            Box::new(|s: &mut VendorState| {
                s.mode = Mode::Ok;
                s.expect_api_key = "rotated-elsewhere".into();
            }),
        ),
    ] {
        let before = failures(&proxy.metrics().await);
        vendor.set(|s| change(s));
        wait_for(what, async || failures(&proxy.metrics().await) > before).await;
        assert_eq!(
            status_of(&proxy, &query_a("group-a-key", now() + 60))
                .await
                .0,
            StatusCode::OK,
            "keys lost after {what}"
        );
    }
    let m = proxy.metrics().await;
    assert!(attempts(&m, "vendor_error") >= 2.0, "5xx and 401 envelopes");
    assert!(attempts(&m, "malformed") >= 1.0);
    assert!(vendor.state.lock().unwrap().bad_signatures >= 1);
    assert_eq!(get(proxy.admin, "admin", "/readyz").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_domain_is_a_counted_vendor_error_and_nothing_verifies() {
    let vendor = FakeWangsu::start(vec![group_a("101", "group-a-key")]).await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(
        &vendor,
        state.path(),
        origin.addr,
        "vendor_domain = \"missing.example.com\"",
    ));
    wait_for("the 404", async || {
        attempts(&proxy.metrics().await, "vendor_error") >= 1.0
    })
    .await;
    assert_eq!(
        status_of(&proxy, &query_a("group-a-key", now() + 60))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(vendor.state.lock().unwrap().bad_signatures, 0);
}
