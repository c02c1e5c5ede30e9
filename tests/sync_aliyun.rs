//! Vendor key sync against a fake Alibaba Cloud API (DescribeLiveDomainConfigs)
//! on loopback. The fake checks every request's RPC signature (HMAC-SHA1,
//! SignatureVersion 1.0) with its own percent-encoding and canonical query,
//! refuses a SignatureNonce it has seen, and answers with the vendor's real
//! success and error envelopes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use common::*;
use hmac::{Hmac, Mac};
use http::{Response, StatusCode};
use http_body_util::Full;
use md5::{Digest, Md5};
use sha1::Sha1;

const ACCESS_KEY_ID: &str = "LTAI5tTestAccessKeyId";
const ACCESS_KEY_SECRET: &str = "aliyun-test-secret";
const DOMAIN: &str = "play.example.com";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Ok,
    /// 503 with the vendor's error envelope.
    Unavailable,
    /// 502 HTML, as a gateway in front of the API would answer.
    BadGateway,
}

struct VendorState {
    mode: Mode,
    /// The secret the fake checks signatures with (change it to force
    /// `SignatureDoesNotMatch`).
    expect_secret: String,
    auth_type: String,
    auth_key1: String,
    auth_key2: String,
    requests: usize,
    bad_signatures: usize,
    reused_nonces: usize,
    nonces: HashSet<String>,
}

#[derive(Clone)]
struct FakeAliyun {
    addr: SocketAddr,
    state: Arc<Mutex<VendorState>>,
}

/// RFC 3986 percent-encoding with uppercase hex, written from the vendor doc.
fn pe(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Percent-decoding of one query component (`+` is not a space here).
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The server's string to sign and signature for the decoded `params`.
fn sign(secret: &str, params: &BTreeMap<String, String>) -> (String, String) {
    let canonical = params
        .iter()
        .filter(|(k, _)| k.as_str() != "Signature")
        .map(|(k, v)| format!("{}={}", pe(k), pe(v)))
        .collect::<Vec<_>>()
        .join("&");
    let sts = format!("GET&{}&{}", pe("/"), pe(&canonical));
    let mut m = Hmac::<Sha1>::new_from_slice(format!("{secret}&").as_bytes()).unwrap();
    m.update(sts.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes());
    (sts, sig)
}

/// `YYYY-MM-DDTHH:MM:SSZ` → unix seconds.
fn parse_timestamp(t: &str) -> Option<u64> {
    let b = t.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| t.get(r)?.parse::<u32>().ok();
    streamguard::time::from_civil(
        i64::from(n(0..4)?),
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    )
}

/// The vendor's error envelope.
fn error_envelope(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({
            "RequestId": "5E3E6B4F-ERR0-4A5B-9C6D-000000000000",
            "HostId": "live.aliyuncs.com",
            "Code": code,
            "Message": message,
            "Recommend": "https://api.aliyun.com/troubleshoot?q=".to_owned() + code,
        }),
    )
}

impl FakeAliyun {
    async fn start(auth_key1: &str) -> FakeAliyun {
        let state = VendorState {
            mode: Mode::Ok,
            expect_secret: ACCESS_KEY_SECRET.to_owned(),
            auth_type: "type_a".to_owned(),
            auth_key1: auth_key1.to_owned(),
            auth_key2: String::new(),
            requests: 0,
            bad_signatures: 0,
            reused_nonces: 0,
            nonces: HashSet::new(),
        };
        start_fake(
            |addr| FakeAliyun {
                addr,
                state: Arc::new(Mutex::new(state)),
            },
            FakeAliyun::answer,
        )
        .await
    }

    async fn answer(self, req: FakeRequest) -> Response<Full<Bytes>> {
        let mode = {
            let mut s = self.state.lock().unwrap();
            s.requests += 1;
            s.mode
        };
        match mode {
            Mode::Unavailable => {
                return error_envelope(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The request has failed due to a temporary failure of the server.",
                )
            }
            Mode::BadGateway => {
                let mut r = Response::new(Full::new(Bytes::from_static(
                    b"<html><body>502 Bad Gateway</body></html>",
                )));
                *r.status_mut() = StatusCode::BAD_GATEWAY;
                return r;
            }
            Mode::Ok => {}
        }
        if req.parts.method != http::Method::GET || req.parts.uri.path() != "/" {
            return error_envelope(
                StatusCode::BAD_REQUEST,
                "UnsupportedHTTPMethod",
                "Specified http method is not supported.",
            );
        }
        let mut params = BTreeMap::new();
        for pair in req.query().split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(k), Some(v)) = (decode(k), decode(v)) else {
                return error_envelope(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    "The query string is not well formed.",
                );
            };
            if params.insert(k.clone(), v).is_some() {
                return error_envelope(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    &format!("The parameter {k} appears more than once."),
                );
            }
        }
        for name in [
            "AccessKeyId",
            "Signature",
            "SignatureMethod",
            "SignatureVersion",
            "SignatureNonce",
            "Timestamp",
            "Action",
            "Version",
            "DomainName",
        ] {
            if !params.contains_key(name) {
                return error_envelope(
                    StatusCode::BAD_REQUEST,
                    &format!("Missing{name}"),
                    &format!("{name} is mandatory for this action."),
                );
            }
        }
        let p = |k: &str| params.get(k).map_or("", String::as_str);
        if p("AccessKeyId") != ACCESS_KEY_ID {
            return error_envelope(
                StatusCode::NOT_FOUND,
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.",
            );
        }
        if p("SignatureMethod") != "HMAC-SHA1" || p("SignatureVersion") != "1.0" {
            return error_envelope(
                StatusCode::BAD_REQUEST,
                "InvalidSignatureMethod",
                "Specified signature method or version is not supported.",
            );
        }
        if parse_timestamp(p("Timestamp")).is_none_or(|t| t.abs_diff(now()) > 900) {
            return error_envelope(
                StatusCode::BAD_REQUEST,
                "InvalidTimeStamp.Expired",
                "Specified time stamp or date value is expired.",
            );
        }
        let secret = self.state.lock().unwrap().expect_secret.clone();
        let (sts, want) = sign(&secret, &params);
        if p("Signature") != want {
            self.state.lock().unwrap().bad_signatures += 1;
            return error_envelope(
                StatusCode::BAD_REQUEST,
                "SignatureDoesNotMatch",
                &format!("Specified signature is not matched with our calculation. server string to sign is:{sts}"),
            );
        }
        // Only a validly signed request spends its nonce.
        {
            let mut s = self.state.lock().unwrap();
            if !s.nonces.insert(p("SignatureNonce").to_owned()) {
                s.reused_nonces += 1;
                return error_envelope(
                    StatusCode::BAD_REQUEST,
                    "SignatureNonceUsed",
                    "Specified signature nonce was used already.",
                );
            }
        }
        if p("Action") != "DescribeLiveDomainConfigs" || p("Version") != "2016-11-01" {
            return error_envelope(
                StatusCode::BAD_REQUEST,
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
            );
        }
        if p("Format") != "JSON" || p("FunctionNames") != "aliauth" {
            return error_envelope(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                "Expected Format=JSON and FunctionNames=aliauth.",
            );
        }
        if p("DomainName") != DOMAIN {
            return error_envelope(
                StatusCode::NOT_FOUND,
                "InvalidDomain.NotFound",
                "The domain provided does not belong to you.",
            );
        }
        let s = self.state.lock().unwrap();
        json(
            StatusCode::OK,
            serde_json::json!({
                "RequestId": "F4C3A8B0-1B2C-4D5E-8F90-A1B2C3D4E5F6",
                "DomainConfigs": {"DomainConfig": [{
                    "FunctionName": "aliauth",
                    "ConfigId": 5_003_576,
                    "Status": "success",
                    "FunctionArgs": {"FunctionArg": [
                        {"ArgName": "auth_type", "ArgValue": s.auth_type},
                        {"ArgName": "auth_key1", "ArgValue": s.auth_key1},
                        {"ArgName": "auth_key2", "ArgValue": s.auth_key2},
                        {"ArgName": "ali_auth_delta", "ArgValue": "1800"},
                    ]},
                }]},
            }),
        )
    }

    fn set(&self, f: impl FnOnce(&mut VendorState)) {
        f(&mut self.state.lock().unwrap());
    }

    fn get<T>(&self, f: impl FnOnce(&VendorState) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

fn config(vendor: &FakeAliyun, state_dir: &std::path::Path, origin: SocketAddr) -> String {
    format!(
        r#"
state_dir = "{}"

[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"

[[vendor]]
name = "aliyun-main"
kind = "aliyun"
access_key = "{ACCESS_KEY_ID}"
secret_key = "${{FAKE_ALIYUN_SECRET}}"
endpoint = "http://{}/"
sync_interval_secs = 1
request_timeout_secs = 1

[[site]]
id = "live"
domains = ["{DOMAIN}"]
origin = "http://{origin}"
vendor = "aliyun-main"
"#,
        state_dir.display(),
        vendor.addr
    )
}

fn start(cfg: &str) -> Proxy {
    Proxy::start_env(cfg, &[("FAKE_ALIYUN_SECRET", ACCESS_KEY_SECRET)])
}

/// A type A URL signed with `key`, computed here from the vendor's formula:
/// `auth_key={ts}-0-0-md5("{URI}-{ts}-0-0-{key}")`.
fn type_a_url(key: &str, uri: &str, ts: u64) -> String {
    let hash = hex::encode(Md5::digest(format!("{uri}-{ts}-0-0-{key}").as_bytes()));
    format!("{uri}?auth_key={ts}-0-0-{hash}")
}

async fn status_with(proxy: &Proxy, key: &str) -> (StatusCode, Option<String>) {
    let (s, h, _) = get(
        proxy.http_addr(),
        DOMAIN,
        &type_a_url(key, "/live/s.flv", now()),
    )
    .await;
    (
        s,
        header_map_get(&h, "x-streamguard-deny").map(str::to_owned),
    )
}

fn attempts(m: &str, result: &str) -> f64 {
    metric(
        m,
        &format!(
            r#"streamguard_key_sync_attempts_total{{result="{result}",vendor="aliyun-main"}}"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn aliyun_keys_are_picked_up_rotated_and_removed() {
    let vendor = FakeAliyun::start("key-one").await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(&vendor, state.path(), origin.addr));

    wait_for("/readyz", async || {
        get(proxy.admin, "admin", "/readyz").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(status_with(&proxy, "key-one").await.0, StatusCode::OK);
    // The origin never sees the auth param.
    assert_eq!(origin.last_seen().path_and_query, "/live/s.flv");
    assert_eq!(
        status_with(&proxy, "other").await,
        (StatusCode::FORBIDDEN, Some("bad_signature".into()))
    );

    // Rotation: the new key becomes auth_key1, the old one auth_key2; both verify.
    vendor.set(|s| {
        s.auth_key1 = "key-two".into();
        s.auth_key2 = "key-one".into();
    });
    wait_for("the new key", async || {
        status_with(&proxy, "key-two").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(status_with(&proxy, "key-one").await.0, StatusCode::OK);
    // The old key removed at the vendor stops verifying after the next sync.
    vendor.set(|s| s.auth_key2 = String::new());
    wait_for("the removed key to stop", async || {
        status_with(&proxy, "key-one").await
            == (StatusCode::FORBIDDEN, Some("bad_signature".into()))
    })
    .await;
    assert_eq!(status_with(&proxy, "key-two").await.0, StatusCode::OK);

    let m = proxy.metrics().await;
    assert!(attempts(&m, "ok") >= 3.0);
    assert_eq!(metric(&m, r#"streamguard_site_keys{site="live"}"#), 1.0);
    assert_eq!(
        vendor.get(|s| (s.bad_signatures, s.reused_nonces)),
        (0, 0),
        "the client's signatures or nonces did not pass the fake's checks"
    );
    assert!(vendor.get(|s| s.nonces.len()) >= 3);
    assert!(!m.contains("key-two"), "a key leaked into the metrics");
    assert!(
        !m.contains(ACCESS_KEY_SECRET),
        "the secret leaked into the metrics"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn aliyun_failures_keep_the_last_good_keys_and_are_counted() {
    let vendor = FakeAliyun::start("key-one").await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(&vendor, state.path(), origin.addr));
    wait_for("first sync", async || {
        status_with(&proxy, "key-one").await.0 == StatusCode::OK
    })
    .await;

    type Change = Box<dyn Fn(&mut VendorState)>;
    for (what, result, change) in [
        (
            "503 with the error envelope",
            "vendor_error",
            Box::new(|s: &mut VendorState| s.mode = Mode::Unavailable) as Change,
        ),
        (
            "502 without an envelope",
            "http_5xx",
            Box::new(|s: &mut VendorState| s.mode = Mode::BadGateway) as Change,
        ),
        (
            "SignatureDoesNotMatch",
            "vendor_error",
            Box::new(|s: &mut VendorState| {
                s.mode = Mode::Ok;
                s.expect_secret = "rotated-elsewhere".into();
            }) as Change,
        ),
    ] {
        let before = attempts(&proxy.metrics().await, result);
        vendor.set(|s| change(s));
        wait_for(what, async || {
            attempts(&proxy.metrics().await, result) > before
        })
        .await;
        assert_eq!(
            status_with(&proxy, "key-one").await.0,
            StatusCode::OK,
            "keys lost after {what}"
        );
    }
    assert!(vendor.get(|s| s.bad_signatures) >= 1);
    assert_eq!(get(proxy.admin, "admin", "/readyz").await.0, StatusCode::OK);

    // Once the vendor is healthy again, syncing resumes.
    let ok_before = attempts(&proxy.metrics().await, "ok");
    vendor.set(|s| s.expect_secret = ACCESS_KEY_SECRET.into());
    wait_for("recovery", async || {
        attempts(&proxy.metrics().await, "ok") > ok_before
    })
    .await;
    assert_eq!(vendor.get(|s| s.reused_nonces), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn aliyun_no_auth_denies_with_auth_disabled() {
    let vendor = FakeAliyun::start("key-one").await;
    vendor.set(|s| s.auth_type = "no_auth".into());
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&config(&vendor, state.path(), origin.addr));
    wait_for("the deny", async || {
        let (s, h, _) = get(proxy.http_addr(), DOMAIN, "/live/s.flv").await;
        s == StatusCode::FORBIDDEN
            && header_map_get(&h, "x-streamguard-deny") == Some("auth_disabled")
    })
    .await;
}

/// The fake's own checks work: a replayed nonce and a wrong signature are
/// refused with the vendor's envelopes (so the zero counts above mean something).
#[tokio::test(flavor = "multi_thread")]
async fn fake_aliyun_refuses_a_replayed_nonce_and_a_bad_signature() {
    let vendor = FakeAliyun::start("key-one").await;
    let mut params: BTreeMap<String, String> = [
        ("Action", "DescribeLiveDomainConfigs"),
        ("Version", "2016-11-01"),
        ("DomainName", DOMAIN),
        ("FunctionNames", "aliauth"),
        ("Format", "JSON"),
        ("AccessKeyId", ACCESS_KEY_ID),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", "test nonce*~1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    params.insert("Timestamp".into(), streamguard::time::rfc3339(now()));
    let (_, sig) = sign(ACCESS_KEY_SECRET, &params);
    params.insert("Signature".into(), sig);
    let url = |p: &BTreeMap<String, String>| {
        let q: Vec<String> = p
            .iter()
            .map(|(k, v)| format!("{}={}", pe(k), pe(v)))
            .collect();
        format!("/?{}", q.join("&"))
    };
    let code = |body: &Bytes| {
        serde_json::from_slice::<serde_json::Value>(body).unwrap()["Code"]
            .as_str()
            .map(str::to_owned)
    };

    let (s, _, b) = get(vendor.addr, "live.aliyuncs.com", &url(&params)).await;
    assert_eq!(s, StatusCode::OK, "{b:?}");
    let (s, _, b) = get(vendor.addr, "live.aliyuncs.com", &url(&params)).await;
    assert_eq!(
        (s, code(&b).as_deref()),
        (StatusCode::BAD_REQUEST, Some("SignatureNonceUsed"))
    );

    params.insert("SignatureNonce".into(), "another".into());
    let (s, _, b) = get(vendor.addr, "live.aliyuncs.com", &url(&params)).await;
    assert_eq!(
        (s, code(&b).as_deref()),
        (StatusCode::BAD_REQUEST, Some("SignatureDoesNotMatch"))
    );
    assert_eq!(vendor.get(|s| (s.bad_signatures, s.reused_nonces)), (1, 1));
}
