//! Vendor key sync against a fake Tencent Cloud API on loopback that checks
//! every request's TC3-HMAC-SHA256 signature on its own and answers with the
//! vendor's real success and error envelopes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Response, StatusCode};
use http_body_util::Full;

const SECRET_ID: &str = "AKIDtestid";
const SECRET_KEY: &str = "tc3-test-secret";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    ServerError,
    Garbage,
    Hang,
}

struct VendorState {
    mode: Mode,
    /// The secret the fake checks signatures with (change it to force
    /// `AuthFailure.SignatureFailure`).
    expect_secret: String,
    enable: i64,
    auth_key: String,
    back_key: String,
    requests: usize,
    bad_signatures: usize,
}

#[derive(Clone)]
struct FakeTencent {
    addr: SocketAddr,
    state: Arc<Mutex<VendorState>>,
}

impl FakeTencent {
    async fn start(auth_key: &str) -> FakeTencent {
        let state = VendorState {
            mode: Mode::Ok,
            expect_secret: SECRET_KEY.to_owned(),
            enable: 1,
            auth_key: auth_key.to_owned(),
            back_key: String::new(),
            requests: 0,
            bad_signatures: 0,
        };
        start_fake(
            |addr| FakeTencent {
                addr,
                state: Arc::new(Mutex::new(state)),
            },
            FakeTencent::answer,
        )
        .await
    }

    async fn answer(self, req: FakeRequest) -> Response<Full<Bytes>> {
        let (mode, secret, reply) = {
            let mut s = self.state.lock().unwrap();
            s.requests += 1;
            (
                s.mode,
                s.expect_secret.clone(),
                (s.enable, s.auth_key.clone(), s.back_key.clone()),
            )
        };
        match mode {
            Mode::Hang => std::future::pending::<()>().await,
            Mode::ServerError => {
                return json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    serde_json::json!({"message": "upstream exploded"}),
                )
            }
            Mode::Garbage => {
                return json(StatusCode::OK, serde_json::json!("<html>not an api</html>"))
            }
            Mode::Ok => {}
        }
        if req.parts.method != http::Method::POST
            || req.header("x-tc-action") != "DescribeLivePlayAuthKey"
            || req.header("x-tc-version") != "2018-08-01"
        {
            return tencent_error("InvalidAction", "wrong action or version");
        }
        if !tc3_signature_ok(&req, SECRET_ID, &secret) {
            self.state.lock().unwrap().bad_signatures += 1;
            return tencent_error(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated.",
            );
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let domain = body["DomainName"].as_str().unwrap_or("").to_owned();
        let (enable, key, back) = reply;
        json(
            StatusCode::OK,
            serde_json::json!({"Response": {"PlayAuthKeyInfo": {"DomainName": domain, "Enable": enable, "AuthKey": key, "AuthDelta": 0, "AuthBackKey": back}, "RequestId": "fake-req"}}),
        )
    }

    fn set(&self, f: impl FnOnce(&mut VendorState)) {
        f(&mut self.state.lock().unwrap());
    }
}

fn config(
    vendor: &FakeTencent,
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
name = "tencent-main"
kind = "tencent"
access_key = "{SECRET_ID}"
secret_key = "${{FAKE_TENCENT_SECRET}}"
endpoint = "http://{}/"
sync_interval_secs = 1
request_timeout_secs = 1

[[site]]
id = "live"
domains = ["play.example.com"]
origin = "http://{origin}"
vendor = "tencent-main"
{site_extra}
"#,
        state_dir.display(),
        vendor.addr
    )
}

fn start(cfg: &str) -> Proxy {
    Proxy::start_env(cfg, &[("FAKE_TENCENT_SECRET", SECRET_KEY)])
}

async fn status_with(proxy: &Proxy, key: &str) -> (StatusCode, Option<String>) {
    let q = tencent_query(key, "/live/s.flv", now() + 60);
    let (s, h, _) = get(
        proxy.http_addr(),
        "play.example.com",
        &format!("/live/s.flv?{q}"),
    )
    .await;
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

#[tokio::test(flavor = "multi_thread")]
async fn keys_are_picked_up_rotated_and_removed() {
    let vendor = FakeTencent::start("key-one").await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(&vendor, state.path(), origin.addr, ""));

    wait_for("/readyz", async || {
        get(proxy.admin, "admin", "/readyz").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(status_with(&proxy, "key-one").await.0, StatusCode::OK);
    assert_eq!(
        status_with(&proxy, "other").await,
        (StatusCode::FORBIDDEN, Some("bad_signature".into()))
    );

    // Rotation: the new key becomes primary, the old one backup; both verify.
    vendor.set(|s| {
        s.auth_key = "key-two".into();
        s.back_key = "key-one".into();
    });
    wait_for("the new key", async || {
        status_with(&proxy, "key-two").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(status_with(&proxy, "key-one").await.0, StatusCode::OK);
    // The old key removed at the vendor stops verifying after the next sync.
    vendor.set(|s| s.back_key = String::new());
    wait_for("the removed key to stop", async || {
        status_with(&proxy, "key-one").await.0 == StatusCode::FORBIDDEN
    })
    .await;
    assert_eq!(status_with(&proxy, "key-two").await.0, StatusCode::OK);

    let m = proxy.metrics().await;
    assert!(
        metric(
            &m,
            r#"streamguard_key_sync_attempts_total{result="ok",vendor="tencent-main"}"#
        ) >= 3.0
    );
    assert_eq!(metric(&m, r#"streamguard_site_keys{site="live"}"#), 1.0);
    assert_eq!(
        vendor.state.lock().unwrap().bad_signatures,
        0,
        "the client's signatures did not verify"
    );
    // The state file holds the keys, readable by its owner only.
    let file = state.path().join("tencent-main/play.example.com.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&file).unwrap().contains("key-two"));
    assert!(!m.contains("key-two"), "a key leaked into the metrics");
}

#[tokio::test(flavor = "multi_thread")]
async fn vendor_failures_keep_the_last_good_keys_and_are_counted() {
    let vendor = FakeTencent::start("key-one").await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(&vendor, state.path(), origin.addr, ""));
    wait_for("first sync", async || {
        status_with(&proxy, "key-one").await.0 == StatusCode::OK
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
            "signature error",
            Box::new(|s: &mut VendorState| {
                s.mode = Mode::Ok;
                s.expect_secret = "rotated-elsewhere".into();
            }),
        ),
        ("hang", Box::new(|s: &mut VendorState| s.mode = Mode::Hang)),
    ] {
        let before = failures(&proxy.metrics().await);
        vendor.set(|s| change(s));
        wait_for(what, async || failures(&proxy.metrics().await) > before).await;
        assert_eq!(
            status_with(&proxy, "key-one").await.0,
            StatusCode::OK,
            "keys lost after {what}"
        );
    }
    let m = proxy.metrics().await;
    for result in ["transport", "http_5xx", "malformed", "vendor_error"] {
        assert!(
            metric(
                &m,
                &format!(
                    r#"streamguard_key_sync_attempts_total{{result="{result}",vendor="tencent-main"}}"#
                )
            ) >= 1.0,
            "{result}"
        );
    }
    assert!(vendor.state.lock().unwrap().bad_signatures >= 1);
    assert_eq!(get(proxy.admin, "admin", "/readyz").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_while_the_vendor_is_down_serves_from_the_state_file() {
    let vendor = FakeTencent::start("key-one").await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = config(&vendor, state.path(), origin.addr, "");
    {
        let first = start(&cfg);
        wait_for("first sync", async || {
            status_with(&first, "key-one").await.0 == StatusCode::OK
        })
        .await;
    }
    vendor.set(|s| s.mode = Mode::ServerError);
    let second = start(&cfg);
    // Served at once, before any sync could succeed.
    assert_eq!(status_with(&second, "key-one").await.0, StatusCode::OK);
    assert_eq!(
        get(second.admin, "admin", "/readyz").await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vendor_disabled_denies_by_default_and_allows_when_configured() {
    let vendor = FakeTencent::start("key-one").await;
    vendor.set(|s| s.enable = 0);
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let deny = start(&config(&vendor, state.path(), origin.addr, ""));
    wait_for("the deny", async || {
        let (s, h, _) = get(deny.http_addr(), "play.example.com", "/live/s.flv").await;
        s == StatusCode::FORBIDDEN
            && header_map_get(&h, "x-streamguard-deny") == Some("auth_disabled")
    })
    .await;
    let state2 = tempfile::tempdir().unwrap();
    let allow = start(&config(
        &vendor,
        state2.path(),
        origin.addr,
        "on_vendor_disabled = \"allow\"",
    ));
    wait_for("the allow", async || {
        get(allow.http_addr(), "play.example.com", "/live/s.flv")
            .await
            .0
            == StatusCode::OK
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vendor_disabled_allow_still_strips_the_auth_params() {
    let vendor = FakeTencent::start("key-one").await;
    vendor.set(|s| s.enable = 0);
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let allow = start(&config(
        &vendor,
        state.path(),
        origin.addr,
        "on_vendor_disabled = \"allow\"",
    ));
    let q = tencent_query("key-one", "/live/s.flv", now() + 60);
    let pq = format!("/live/s.flv?a=1&{q}");
    wait_for("the allow", async || {
        get(allow.http_addr(), "play.example.com", &pq).await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(origin.last_seen().path_and_query, "/live/s.flv?a=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_hanging_vendor_request_exits_within_the_grace_period() {
    let vendor = FakeTencent::start("key-one").await;
    vendor.set(|s| s.mode = Mode::Hang);
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = config(&vendor, state.path(), origin.addr, "")
        .replace("request_timeout_secs = 1", "request_timeout_secs = 300")
        .replace("[server]\n", "[server]\nshutdown_grace_secs = 2\n");
    assert!(cfg.contains("request_timeout_secs = 300") && cfg.contains("shutdown_grace_secs = 2"));
    let mut proxy = start(&cfg);
    wait_for("the hanging vendor request", async || {
        vendor.state.lock().unwrap().requests >= 1
    })
    .await;
    let started = std::time::Instant::now();
    proxy.sigterm();
    let status = proxy.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// Tencent's API reports no param names and no txTime format: a site that
/// names its own in `[site.auth]` keeps them with the vendor's keys.
#[tokio::test(flavor = "multi_thread")]
async fn synced_keys_keep_the_sites_own_param_names_and_time_format() {
    let vendor = FakeTencent::start("key-one").await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(
        &vendor,
        state.path(),
        origin.addr,
        "[site.auth]\nscheme = \"tencent\"\nkey = \"local-key\"\ntime_format = \"decimal\"\nsecret_param = \"sign\"\ntime_param = \"t\"\n",
    ));
    let query = |key: &str, t: u64| {
        let t = t.to_string();
        let secret = hex::encode(<md5::Md5 as md5::Digest>::digest(
            format!("{key}s{t}").as_bytes(),
        ));
        format!("/live/s.flv?a=1&sign={secret}&t={t}")
    };
    let exp = now() + 60;
    wait_for("the vendor key", async || {
        get(
            proxy.http_addr(),
            "play.example.com",
            &query("key-one", exp),
        )
        .await
        .0 == StatusCode::OK
    })
    .await;
    assert_eq!(origin.last_seen().path_and_query, "/live/s.flv?a=1");
    let (s, _, _) = get(
        proxy.http_addr(),
        "play.example.com",
        &query("local-key", exp),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "the site's own key, after the vendor's");
    let (s, h, _) = get(
        proxy.http_addr(),
        "play.example.com",
        &query("key-one", now() - 5),
    )
    .await;
    assert_eq!(
        (s, header_map_get(&h, "x-streamguard-deny")),
        (StatusCode::FORBIDDEN, Some("expired"))
    );
}
