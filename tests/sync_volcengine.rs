//! Vendor key sync against a fake Volcengine OpenAPI (`DescribeAuth`) on
//! loopback that checks every request's HMAC-SHA256 signature on its own
//! (the canonical request is rebuilt by `common::volc_signature_ok` with the
//! hmac/sha2 crates, not with streamguard's signer) and answers with the
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

use bytes::Bytes;
use common::*;
use http::{Response, StatusCode};
use http_body_util::Full;
use md5::{Digest, Md5};

const ACCESS_KEY: &str = "AKLTtestaccesskey";
const SECRET_KEY: &str = "volc-test-secret==";
const DOMAIN: &str = "play.example.com";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    ServerError,
    Garbage,
}

struct VendorState {
    mode: Mode,
    /// The secret the fake checks signatures with (change it to force
    /// `SignatureDoesNotMatch`).
    expect_secret: String,
    auth_status: bool,
    /// The pull keys (AuthDetailList), in order.
    keys: Vec<String>,
    requests: usize,
    bad_signatures: usize,
    /// `Version` of the last request.
    last_version: String,
    /// Another pull entry of the domain (other parameters), if any.
    extra_entry: Option<serde_json::Value>,
}

#[derive(Clone)]
struct FakeVolcengine {
    addr: SocketAddr,
    state: Arc<Mutex<VendorState>>,
}

fn metadata(version: &str) -> serde_json::Value {
    serde_json::json!({
        "RequestId": "20230101000000010210039045250DAD6E",
        "Action": "DescribeAuth",
        "Version": version,
        "Service": "live",
        "Region": "cn-north-1",
    })
}

/// The vendor's error envelope: `ResponseMetadata.Error`, no `Result`.
fn error_envelope(
    status: StatusCode,
    version: &str,
    code: &str,
    code_n: u64,
    message: &str,
) -> Response<Full<Bytes>> {
    let mut meta = metadata(version);
    meta["Error"] = serde_json::json!({"CodeN": code_n, "Code": code, "Message": message});
    json(status, serde_json::json!({ "ResponseMetadata": meta }))
}

impl FakeVolcengine {
    async fn start(keys: &[&str]) -> FakeVolcengine {
        let state = VendorState {
            mode: Mode::Ok,
            expect_secret: SECRET_KEY.to_owned(),
            auth_status: true,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            requests: 0,
            bad_signatures: 0,
            last_version: String::new(),
            extra_entry: None,
        };
        start_fake(
            |addr| FakeVolcengine {
                addr,
                state: Arc::new(Mutex::new(state)),
            },
            FakeVolcengine::answer,
        )
        .await
    }

    async fn answer(self, req: FakeRequest) -> Response<Full<Bytes>> {
        let param = |name: &str| {
            req.query()
                .split('&')
                .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
                .unwrap_or("")
                .to_owned()
        };
        let version = param("Version");
        let (mode, secret, auth_status, keys, extra_entry) = {
            let mut s = self.state.lock().unwrap();
            s.requests += 1;
            s.last_version = version.clone();
            (
                s.mode,
                s.expect_secret.clone(),
                s.auth_status,
                s.keys.clone(),
                s.extra_entry.clone(),
            )
        };
        match mode {
            Mode::ServerError => {
                return error_envelope(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &version,
                    "InternalError",
                    100_000,
                    "an internal error occurred, please contact the administrator.",
                )
            }
            Mode::Garbage => {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    b"<html><body>502 Bad Gateway</body></html>",
                )));
                *r.status_mut() = StatusCode::BAD_GATEWAY;
                return r;
            }
            Mode::Ok => {}
        }
        if req.parts.method != http::Method::POST
            || param("Action") != "DescribeAuth"
            || !["2023-01-01", "2020-08-01"].contains(&version.as_str())
        {
            return error_envelope(
                StatusCode::BAD_REQUEST,
                &version,
                "InvalidActionOrVersion",
                100_002,
                "wrong action or version",
            );
        }
        if !volc_signature_ok(&req, ACCESS_KEY, &secret) {
            self.state.lock().unwrap().bad_signatures += 1;
            return error_envelope(
                StatusCode::UNAUTHORIZED,
                &version,
                "SignatureDoesNotMatch",
                100_010,
                "The request signature we calculated does not match the signature you provided. Check your Secret Access Key and signing method. Consult the service documentation for details.",
            );
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
        if body["Domain"] != DOMAIN || body["SceneType"] != "pull" {
            return error_envelope(
                StatusCode::BAD_REQUEST,
                &version,
                "InvalidParam",
                100_013,
                "Request parameter error, please check input data",
            );
        }
        let details: Vec<serde_json::Value> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "AuthField": {}, "EncryptField": [], "EncryptionAlgorithm": "md5", "SecretKey": k,
                })
            })
            .collect();
        let mut list = vec![
            serde_json::json!({"Vhost": "vhost.example.com", "Domain": DOMAIN, "App": "", "SceneType": "pull",
             "AuthStatus": auth_status, "ValidDuration": 0, "AuthDetailList": details}),
            // Push auth of the same domain: not a play key.
            serde_json::json!({"Vhost": "vhost.example.com", "Domain": DOMAIN, "App": "", "SceneType": "push",
             "AuthStatus": true, "ValidDuration": 604800, "AuthDetailList": [
                {"AuthField": {}, "EncryptField": [], "EncryptionAlgorithm": "md5", "SecretKey": "push-key"}]}),
        ];
        list.extend(extra_entry);
        json(
            StatusCode::OK,
            serde_json::json!({
                "ResponseMetadata": metadata(&version),
                "Result": {"AuthList": list},
            }),
        )
    }

    fn set(&self, f: impl FnOnce(&mut VendorState)) {
        f(&mut self.state.lock().unwrap());
    }
}

fn config(
    vendor: &FakeVolcengine,
    state_dir: &std::path::Path,
    origin: SocketAddr,
    vendor_extra: &str,
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
name = "volc-main"
kind = "volcengine"
access_key = "{ACCESS_KEY}"
secret_key = "${{FAKE_VOLC_SECRET}}"
endpoint = "http://{}/"
sync_interval_secs = 1
request_timeout_secs = 1
{vendor_extra}

[[site]]
id = "live"
domains = ["{DOMAIN}"]
origin = "http://{origin}"
vendor = "volc-main"
{site_extra}
"#,
        state_dir.display(),
        vendor.addr
    )
}

fn start(cfg: &str) -> Proxy {
    Proxy::start_env(cfg, &[("FAKE_VOLC_SECRET", SECRET_KEY)])
}

/// A Volcengine md5 query, computed here: volcSecret =
/// lower_hex(MD5("/" + App + "/" + Stream + key + volcTime)), decimal volcTime.
fn volc_query(key: &str, app: &str, stream: &str, volc_time: u64) -> String {
    let t = volc_time.to_string();
    let secret = hex::encode(Md5::digest(format!("/{app}/{stream}{key}{t}").as_bytes()));
    format!("volcSecret={secret}&volcTime={t}")
}

async fn status_with(proxy: &Proxy, key: &str) -> (StatusCode, Option<String>) {
    // ValidDuration is 0 at the fake: volcTime is the expiry.
    let q = volc_query(key, "live", "s", now() + 60);
    let (s, h, _) = get(proxy.http_addr(), DOMAIN, &format!("/live/s.flv?{q}")).await;
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
async fn volcengine_keys_are_picked_up_rotated_and_removed() {
    let vendor = FakeVolcengine::start(&["key-one"]).await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(&vendor, state.path(), origin.addr, "", ""));

    wait_for("/readyz", async || {
        get(proxy.admin, "admin", "/readyz").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(status_with(&proxy, "key-one").await.0, StatusCode::OK);
    // The auth params were checked, then stripped before the origin.
    assert_eq!(origin.last_seen().path_and_query, "/live/s.flv");
    assert_eq!(
        status_with(&proxy, "other").await,
        (StatusCode::FORBIDDEN, Some("bad_signature".into()))
    );
    assert_eq!(
        status_with(&proxy, "push-key").await.0,
        StatusCode::FORBIDDEN,
        "a push key verified a play URL"
    );

    // A key added at the vendor verifies within an interval, next to the old one.
    vendor.set(|s| s.keys = vec!["key-two".into(), "key-one".into()]);
    wait_for("the new key", async || {
        status_with(&proxy, "key-two").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(status_with(&proxy, "key-one").await.0, StatusCode::OK);
    // The old key removed at the vendor stops verifying after the next sync.
    vendor.set(|s| s.keys = vec!["key-two".into()]);
    wait_for("the removed key to stop", async || {
        status_with(&proxy, "key-one").await
            == (StatusCode::FORBIDDEN, Some("bad_signature".into()))
    })
    .await;
    assert_eq!(status_with(&proxy, "key-two").await.0, StatusCode::OK);

    let m = proxy.metrics().await;
    assert!(
        metric(
            &m,
            r#"streamguard_key_sync_attempts_total{result="ok",vendor="volc-main"}"#
        ) >= 3.0
    );
    assert_eq!(metric(&m, r#"streamguard_site_keys{site="live"}"#), 1.0);
    {
        let s = vendor.state.lock().unwrap();
        assert_eq!(
            s.bad_signatures, 0,
            "the client's signatures did not verify"
        );
        assert_eq!(s.last_version, "2023-01-01");
    }
    // The state file holds the keys, readable by its owner only.
    let file = state.path().join("volc-main/play.example.com.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&file).unwrap().contains("key-two"));
    assert!(!m.contains("key-two"), "a key leaked into the metrics");
}

#[tokio::test(flavor = "multi_thread")]
async fn volcengine_failures_keep_the_last_good_keys_and_are_counted() {
    let vendor = FakeVolcengine::start(&["key-one"]).await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(&vendor, state.path(), origin.addr, "", ""));
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
            "502 html",
            Box::new(|s: &mut VendorState| s.mode = Mode::Garbage),
        ),
        (
            "signature error",
            Box::new(|s: &mut VendorState| {
                s.mode = Mode::Ok;
                s.expect_secret = "rotated-elsewhere".into();
            }),
        ),
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
    for result in ["vendor_error", "http_5xx"] {
        assert!(
            metric(
                &m,
                &format!(
                    r#"streamguard_key_sync_attempts_total{{result="{result}",vendor="volc-main"}}"#
                )
            ) >= 1.0,
            "{result}"
        );
    }
    assert!(vendor.state.lock().unwrap().bad_signatures >= 1);
    assert_eq!(get(proxy.admin, "admin", "/readyz").await.0, StatusCode::OK);

    // Fixed at the vendor: syncing resumes.
    vendor.set(|s| {
        s.expect_secret = SECRET_KEY.into();
        s.keys = vec!["key-two".into()];
    });
    wait_for("recovery", async || {
        status_with(&proxy, "key-two").await.0 == StatusCode::OK
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn volcengine_auth_status_false_denies_by_default_with_api_version_2020() {
    let vendor = FakeVolcengine::start(&["key-one"]).await;
    vendor.set(|s| s.auth_status = false);
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(
        &vendor,
        state.path(),
        origin.addr,
        "api_version = \"2020-08-01\"",
        "",
    ));
    wait_for("the deny", async || {
        status_with(&proxy, "key-one").await
            == (StatusCode::FORBIDDEN, Some("auth_disabled".into()))
    })
    .await;
    {
        let s = vendor.state.lock().unwrap();
        assert_eq!(s.last_version, "2020-08-01");
        assert_eq!(s.bad_signatures, 0);
    }
    // Switched back on at the vendor: keys verify again.
    vendor.set(|s| s.auth_status = true);
    wait_for("auth back on", async || {
        status_with(&proxy, "key-one").await.0 == StatusCode::OK
    })
    .await;
}

/// POSTs an SRS `on_publish` hook for `/live/{stream}?{query}` to the admin
/// listener; true when SRS would be told to go on (HTTP 200, body `0`).
async fn srs_publish_allowed(proxy: &Proxy, stream: &str, query: &str) -> bool {
    use http_body_util::BodyExt;
    let body = serde_json::json!({
        "action": "on_publish", "client_id": "9308h583", "ip": "192.168.1.10",
        "vhost": DOMAIN, "app": "live", "stream": stream, "param": format!("?{query}"),
        "server_id": "vid-werty", "stream_url": format!("{DOMAIN}/live/{stream}"),
        "stream_id": "vid-124q9y3"
    })
    .to_string();
    let stream = tokio::net::TcpStream::connect(proxy.admin).await.unwrap();
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("/hooks/srs/on_publish")
        .header("host", "admin")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    status == StatusCode::OK && &body[..] == b"0"
}

/// Publishers of a vendor site are checked with its push keys alone, with
/// decimal push times, even when the synced play side combines entries of
/// other parameters (here an App-scoped entry with TimeStampBase 16).
#[tokio::test(flavor = "multi_thread")]
async fn volcengine_publishers_need_push_keys_and_decimal_times_whatever_the_play_entries() {
    let vendor = FakeVolcengine::start(&["key-one"]).await;
    vendor.set(|s| {
        s.extra_entry = Some(serde_json::json!(
            {"Vhost": "vhost.example.com", "Domain": DOMAIN, "App": "live", "SceneType": "pull",
             "AuthStatus": true, "ValidDuration": 0, "TimeStampBase": 16, "AuthDetailList": [
                {"AuthField": {}, "EncryptField": [], "EncryptionAlgorithm": "md5", "SecretKey": "key-hex"}]}
        ));
    });
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(
        &vendor,
        state.path(),
        origin.addr,
        "",
        "[site.push]\nkeys = [\"my-push\"]\n",
    ));
    let exp = now() + 60;
    // Both play entries are in force: the hex one signs hex times.
    let hex_time = format!("{exp:x}");
    let hex_secret = hex::encode(Md5::digest(format!("/live/skey-hex{hex_time}").as_bytes()));
    let hex_q = format!("volcSecret={hex_secret}&volcTime={hex_time}");
    wait_for("the hex entry", async || {
        get(proxy.http_addr(), DOMAIN, &format!("/live/s.flv?{hex_q}"))
            .await
            .0
            == StatusCode::OK
    })
    .await;
    assert_eq!(status_with(&proxy, "key-one").await.0, StatusCode::OK);
    // Publishing: the push key with a decimal time, nothing else.
    assert!(srs_publish_allowed(&proxy, "s", &volc_query("my-push", "live", "s", exp)).await);
    for play_key in ["key-one", "key-hex"] {
        assert!(
            !srs_publish_allowed(&proxy, "s", &volc_query(play_key, "live", "s", exp)).await,
            "play key {play_key} published"
        );
    }
    let push_hex = hex::encode(Md5::digest(format!("/live/smy-push{hex_time}").as_bytes()));
    assert!(
        !srs_publish_allowed(
            &proxy,
            "s",
            &format!("volcSecret={push_hex}&volcTime={hex_time}")
        )
        .await,
        "a push time in base 16 was taken"
    );
    // An expired decimal push time stays expired (in base 16 it would
    // have been an expiry far away).
    assert!(
        !srs_publish_allowed(&proxy, "s", &volc_query("my-push", "live", "s", now() - 5)).await
    );
}
