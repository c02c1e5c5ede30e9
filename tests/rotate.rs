//! Key rotation at the vendor (`streamguard keys rotate` and the running
//! server's rotation service) against stateful fake vendor APIs: each fake
//! checks every request's signature on its own, applies the write calls
//! (Tencent `ModifyLivePlayAuthKey`, Volcengine `UpdateAuthKey`, Wangsu's
//! config update) and returns the result on the next Describe.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Response, StatusCode};
use http_body_util::Full;
use md5::Digest;

const DOMAIN: &str = "play.example.com";
const OLD_KEY: &str = "oldkey0123456789";

// ---------------------------------------------------------------------------
// Fake Tencent: TC3-HMAC-SHA256 checked on Describe and Modify alike.

const TC_ID: &str = "AKIDrotate";
const TC_SECRET: &str = "tc3-rotate-secret";

struct TcState {
    /// The secret write calls are checked with (change it to make every
    /// write fail with `AuthFailure.SignatureFailure`).
    write_secret: String,
    auth_key: String,
    back_key: String,
    modifies: usize,
    bad_signatures: usize,
}

#[derive(Clone)]
struct FakeTencent {
    addr: SocketAddr,
    state: Arc<Mutex<TcState>>,
}

impl FakeTencent {
    async fn start() -> FakeTencent {
        let state = TcState {
            write_secret: TC_SECRET.into(),
            auth_key: OLD_KEY.into(),
            back_key: String::new(),
            modifies: 0,
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
        let action = req.header("x-tc-action");
        if req.parts.method != http::Method::POST || req.header("x-tc-version") != "2018-08-01" {
            return tencent_error("InvalidAction", "wrong method or version");
        }
        let secret = if action == "ModifyLivePlayAuthKey" {
            self.state.lock().unwrap().write_secret.clone()
        } else {
            TC_SECRET.to_owned()
        };
        if !tc3_signature_ok(&req, TC_ID, &secret) {
            self.state.lock().unwrap().bad_signatures += 1;
            return tencent_error(
                "AuthFailure.SignatureFailure",
                "The provided credentials could not be validated.",
            );
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        if body["DomainName"] != DOMAIN {
            return tencent_error(
                "ResourceNotFound.PlayDomainNoRecord",
                "The playback domain name does not exist.",
            );
        }
        let mut s = self.state.lock().unwrap();
        match action {
            "DescribeLivePlayAuthKey" => json(
                StatusCode::OK,
                serde_json::json!({"Response": {"PlayAuthKeyInfo": {"DomainName": DOMAIN, "Enable": 1, "AuthKey": s.auth_key, "AuthDelta": 0, "AuthBackKey": s.back_key}, "RequestId": "fake"}}),
            ),
            "ModifyLivePlayAuthKey" => {
                // Omitted fields stay as they are.
                if let Some(k) = body["AuthKey"].as_str() {
                    s.auth_key = k.to_owned();
                }
                if let Some(k) = body["AuthBackKey"].as_str() {
                    s.back_key = k.to_owned();
                }
                s.modifies += 1;
                json(
                    StatusCode::OK,
                    serde_json::json!({"Response": {"RequestId": "fake"}}),
                )
            }
            _ => tencent_error("InvalidAction", "unknown action"),
        }
    }

    fn keys(&self) -> (String, String) {
        let s = self.state.lock().unwrap();
        (s.auth_key.clone(), s.back_key.clone())
    }
}

/// A config with one vendor account (`kind`, named `name`, its secret read
/// from the environment variable `secret_env`, answering at `endpoint`) and
/// one site synced from it.
fn vendor_config(
    kind: &str,
    name: &str,
    access_key: &str,
    secret_env: &str,
    endpoint: &str,
    state_dir: &Path,
    origin: SocketAddr,
) -> String {
    format!(
        r#"
state_dir = "{}"

[server]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"

[[vendor]]
name = "{name}"
kind = "{kind}"
access_key = "{access_key}"
secret_key = "${{{secret_env}}}"
endpoint = "{endpoint}"
sync_interval_secs = 1
request_timeout_secs = 2
max_url_lifetime_secs = 3

[[site]]
id = "live"
domains = ["{DOMAIN}"]
origin = "http://{origin}"
vendor = "{name}"
"#,
        state_dir.display(),
    )
}

fn tencent_config(vendor: SocketAddr, state_dir: &Path, origin: SocketAddr) -> String {
    vendor_config(
        "tencent",
        "tencent-main",
        TC_ID,
        "FAKE_TENCENT_SECRET",
        &format!("http://{vendor}/"),
        state_dir,
        origin,
    )
}

const ENV: &[(&str, &str)] = &[
    ("FAKE_TENCENT_SECRET", TC_SECRET),
    ("FAKE_VOLC_SECRET", VOLC_SK),
    ("FAKE_WANGSU_KEY", WS_KEY),
];

fn start(config: &str) -> Proxy {
    Proxy::start_logged_env(config, ENV)
}

/// Writes `config` next to the test and runs `streamguard keys rotate` on it.
async fn keys_rotate(config: &str, vendor: &str, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamguard.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["keys", "rotate", "--config"])
        .arg(&path)
        .args(["--vendor", vendor, "--domain", DOMAIN])
        .args(extra)
        .env("RUST_LOG", "info");
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    cmd.output().await.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The rotation record's phase, read from the state directory.
fn phase(state: &Path, vendor: &str) -> String {
    let path = state
        .join(vendor)
        .join("rotations")
        .join(format!("{DOMAIN}.json"));
    std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["phase"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

async fn wait_long(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stream every rotation test fetches.
const STREAM: &str = "/live/s.flv";

/// The proxy's status for [`STREAM`] with `query`.
async fn status(proxy: &Proxy, query: &str) -> StatusCode {
    get(proxy.http_addr(), DOMAIN, &format!("{STREAM}?{query}"))
        .await
        .0
}

/// Fetches through the proxy every 100 ms until stopped, with URLs signed
/// with whatever key `signing_key` says the vendor signs with at that moment,
/// each valid for `lifetime` seconds; every URL is fetched again on every
/// round until its last two seconds. Returns the denials seen.
fn client_loop(
    proxy: SocketAddr,
    lifetime: u64,
    signing_key: impl Fn() -> String + Send + 'static,
    sign: impl Fn(&str, u64) -> String + Send + 'static,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let mut live: Vec<(u64, String)> = Vec::new();
        let mut fetched = 0;
        let mut denials = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let n = now();
            live.push((n + lifetime, sign(&signing_key(), n + lifetime)));
            live.retain(|(exp, _)| *exp >= n + 2);
            for (exp, q) in &live {
                // Under load a round can take seconds: a URL about to expire
                // is not fetched (its expiry is not the rotation's doing).
                if now() + 1 >= *exp {
                    continue;
                }
                let (s, h, _) = get(proxy, DOMAIN, &format!("{STREAM}?{q}")).await;
                fetched += 1;
                if s != StatusCode::OK {
                    denials.push(format!(
                        "{s} {:?} at {n}",
                        header_map_get(&h, "x-streamguard-deny")
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (fetched, denials)
    })
}

/// Runs `keys rotate --wait` for `vendor` to the end while [`client_loop`]
/// fetches URLs valid for 3 s, signed as `sign` with the vendor's key of the
/// moment, and 3 s beyond; asserts the rotation succeeded and not one URL
/// was denied. Returns the command's output.
async fn rotate_while_fetching(
    proxy: &Proxy,
    cfg: &str,
    vendor: &str,
    signing_key: impl Fn() -> String + Send + 'static,
    sign: impl Fn(&str, u64) -> String + Send + 'static,
) -> std::process::Output {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = client_loop(proxy.http_addr(), 3, signing_key, sign, stop.clone());
    let out = keys_rotate(cfg, vendor, &["--wait"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (fetched, denials) = client.await.unwrap();
    assert!(fetched > 30, "only {fetched} fetches");
    assert!(denials.is_empty(), "denied during rotation: {denials:?}");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn tencent_rotation_never_denies_a_url_signed_before_during_or_after() {
    let vendor = FakeTencent::start().await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = tencent_config(vendor.addr, state.path(), origin.addr);
    let proxy = start(&cfg);
    wait_for("the vendor key", async || {
        status(&proxy, &tencent_query(OLD_KEY, STREAM, now() + 60)).await == StatusCode::OK
    })
    .await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let v = vendor.clone();
    let client = client_loop(
        proxy.http_addr(),
        3,
        move || v.keys().0,
        |key, exp| tencent_query(key, STREAM, exp),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Stage now; the running server promotes and retires.
    let out = keys_rotate(&cfg, "tencent-main", &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    assert!(printed.contains("staged"), "{printed}");
    assert!(printed.contains("next: promote"), "{printed}");
    let (primary, back) = vendor.keys();
    assert_eq!(primary, OLD_KEY, "stage must not change the signing key");
    let new_key = back;
    assert_eq!(new_key.len(), 32);
    assert!(
        !text(&out.stderr).contains(&new_key) && !printed.contains(&new_key),
        "a key was printed"
    );
    // A second rotation of the domain is refused while this one runs.
    let again = keys_rotate(&cfg, "tencent-main", &[]).await;
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("under way"),
        "{}",
        text(&again.stderr)
    );

    wait_long("the rotation to finish", 40, async || {
        phase(state.path(), "tencent-main") == "retired"
    })
    .await;
    // Keep fetching past the retirement and the next syncs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (fetched, denials) = client.await.unwrap();
    assert!(fetched > 50, "only {fetched} fetches");
    assert!(denials.is_empty(), "denied during rotation: {denials:?}");

    // The old key is gone at the vendor and in the proxy.
    assert_eq!(vendor.keys(), (new_key.clone(), String::new()));
    assert_eq!(
        status(&proxy, &tencent_query(OLD_KEY, STREAM, now() + 60)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&proxy, &tencent_query(&new_key, STREAM, now() + 60)).await,
        StatusCode::OK
    );
    // `sign` signs with the new key, from the state directory.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("streamguard.toml");
    std::fs::write(&path, &cfg).unwrap();
    let exp = now() + 600;
    let signed = std::process::Command::new(BIN)
        .args(["sign", "--config"])
        .arg(&path)
        .args(["--expires-at", &exp.to_string()])
        .arg(format!("http://{DOMAIN}{STREAM}"))
        .env("FAKE_TENCENT_SECRET", TC_SECRET)
        .output()
        .unwrap();
    assert_eq!(
        text(&signed.stdout).trim(),
        format!(
            "http://{DOMAIN}{STREAM}?{}",
            tencent_query(&new_key, STREAM, exp)
        )
    );
    // The record no longer holds keys, and is private.
    let record = state
        .path()
        .join("tencent-main/rotations/play.example.com.json");
    let body = std::fs::read_to_string(&record).unwrap();
    assert!(
        !body.contains(&new_key) && !body.contains(OLD_KEY),
        "{body}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&record).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let m = proxy.metrics().await;
    for step in ["promote", "retire"] {
        assert_eq!(
            metric(
                &m,
                &format!(
                    r#"streamguard_key_rotation_steps_total{{result="ok",step="{step}",vendor="tencent-main"}}"#
                )
            ),
            1.0,
            "{step}"
        );
    }
    let log = proxy.log();
    assert!(log.contains("key rotation step done"), "{log}");
    assert!(!log.contains(&new_key), "a key was logged");
    let s = vendor.state.lock().unwrap();
    assert_eq!(s.bad_signatures, 0);
    assert_eq!(s.modifies, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_mid_rotation_resumes() {
    let vendor = FakeTencent::start().await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = tencent_config(vendor.addr, state.path(), origin.addr);
    let mut first = start(&cfg);
    wait_for("the vendor key", async || {
        status(&first, &tencent_query(OLD_KEY, STREAM, now() + 60)).await == StatusCode::OK
    })
    .await;
    let out = keys_rotate(&cfg, "tencent-main", &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let new_key = vendor.keys().1;
    // The server stops before promoting.
    first.sigterm();
    assert!(first.wait_exit(Duration::from_secs(10)).is_some());
    assert_eq!(phase(state.path(), "tencent-main"), "staged");
    assert_eq!(vendor.keys().0, OLD_KEY);

    let second = start(&cfg);
    wait_long("the resumed rotation to finish", 40, async || {
        phase(state.path(), "tencent-main") == "retired"
    })
    .await;
    assert_eq!(vendor.keys(), (new_key.clone(), String::new()));
    wait_for("the proxy to drop the old key", async || {
        status(&second, &tencent_query(OLD_KEY, STREAM, now() + 60)).await == StatusCode::FORBIDDEN
    })
    .await;
    assert_eq!(
        status(&second, &tencent_query(&new_key, STREAM, now() + 60)).await,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signature_mismatch_fails_the_step_and_loses_nothing() {
    let vendor = FakeTencent::start().await;
    vendor.state.lock().unwrap().write_secret = "not-the-configured-secret".into();
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = tencent_config(vendor.addr, state.path(), origin.addr);
    let proxy = start(&cfg);
    wait_for("the vendor key", async || {
        status(&proxy, &tencent_query(OLD_KEY, STREAM, now() + 60)).await == StatusCode::OK
    })
    .await;

    let out = keys_rotate(&cfg, "tencent-main", &[]).await;
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("AuthFailure.SignatureFailure"), "{err}");
    // Nothing changed at the vendor; the rotation waits, pending, and the
    // running server retries it: failed, logged and counted.
    assert_eq!(vendor.keys(), (OLD_KEY.to_owned(), String::new()));
    assert_eq!(phase(state.path(), "tencent-main"), "pending");
    wait_for("a counted failure in the server", async || {
        metric(
            &proxy.metrics().await,
            r#"streamguard_key_rotation_steps_total{result="failed",step="stage",vendor="tencent-main"}"#,
        ) >= 1.0
    })
    .await;
    assert!(proxy.log().contains("key rotation step failed"));
    assert_eq!(
        status(&proxy, &tencent_query(OLD_KEY, STREAM, now() + 60)).await,
        StatusCode::OK
    );
    assert_eq!(vendor.state.lock().unwrap().modifies, 0);

    // Once the vendor accepts the signature, the rotation goes on.
    vendor.state.lock().unwrap().write_secret = TC_SECRET.into();
    wait_long("the staged key", 20, async || {
        phase(state.path(), "tencent-main") == "staged"
    })
    .await;
    assert_eq!(vendor.keys().0, OLD_KEY);
    assert_eq!(vendor.keys().1.len(), 32);
}

#[tokio::test(flavor = "multi_thread")]
async fn retire_refuses_to_remove_the_last_working_key() {
    let vendor = FakeTencent::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = tencent_config(vendor.addr, state.path(), "127.0.0.1:9".parse().unwrap());
    let cli = {
        let cfg = cfg.clone();
        tokio::spawn(async move { keys_rotate(&cfg, "tencent-main", &["--wait"]).await })
    };
    wait_long("the promotion", 20, async || vendor.keys().0 != OLD_KEY).await;
    // Someone puts the old key back as the only key in the console.
    {
        let mut s = vendor.state.lock().unwrap();
        s.auth_key = OLD_KEY.into();
        s.back_key = String::new();
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cli)
        .await
        .unwrap()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("retire refused"), "{err}");
    assert!(err.contains("no working key"), "{err}");
    assert_eq!(vendor.keys(), (OLD_KEY.to_owned(), String::new()));
    assert_eq!(phase(state.path(), "tencent-main"), "promoted");
}

// ---------------------------------------------------------------------------
// Fake Volcengine: HMAC-SHA256 (SigV4-like) checked on DescribeAuth and
// UpdateAuthKey; UpdateAuthKey replaces the entry's whole config.

const VOLC_AK: &str = "AKLTrotate";
const VOLC_SK: &str = "volc-rotate-secret";

struct VolcState {
    details: Vec<serde_json::Value>,
    updates: usize,
    bad_signatures: usize,
    /// Refuse every UpdateAuthKey, echoing its body in the message (as
    /// vendors' parameter errors do).
    echo_refusal: bool,
}

#[derive(Clone)]
struct FakeVolc {
    addr: SocketAddr,
    state: Arc<Mutex<VolcState>>,
}

fn volc_error(status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    json(
        status,
        serde_json::json!({"ResponseMetadata": {"RequestId": "fake", "Error": {"Code": code, "Message": code}}}),
    )
}

impl FakeVolc {
    async fn start() -> FakeVolc {
        let state = VolcState {
            details: vec![serde_json::json!({
                "SecretKey": OLD_KEY,
                "EncryptionAlgorithm": "md5",
                "AuthField": {"volcSecret": "volcSecret", "volcTime": "volcTime"}
            })],
            updates: 0,
            bad_signatures: 0,
            echo_refusal: false,
        };
        start_fake(
            |addr| FakeVolc {
                addr,
                state: Arc::new(Mutex::new(state)),
            },
            FakeVolc::answer,
        )
        .await
    }

    async fn answer(self, req: FakeRequest) -> Response<Full<Bytes>> {
        if !volc_signature_ok(&req, VOLC_AK, VOLC_SK) {
            self.state.lock().unwrap().bad_signatures += 1;
            return volc_error(StatusCode::UNAUTHORIZED, "SignatureDoesNotMatch");
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let mut s = self.state.lock().unwrap();
        match req.query() {
            "Action=DescribeAuth&Version=2023-01-01" => json(
                StatusCode::OK,
                serde_json::json!({"ResponseMetadata": {"RequestId": "fake", "Action": "DescribeAuth"},
                    "Result": {"AuthList": [{"Domain": DOMAIN, "App": "", "SceneType": "pull",
                        "AuthStatus": true, "ValidDuration": 2, "AuthDetailList": s.details}]}}),
            ),
            "Action=UpdateAuthKey&Version=2023-01-01" => {
                if s.echo_refusal {
                    return json(
                        StatusCode::BAD_REQUEST,
                        serde_json::json!({"ResponseMetadata": {"RequestId": "fake", "Error": {
                            "Code": "InvalidParameter",
                            "Message": format!("cannot apply: {}", String::from_utf8_lossy(&req.body))}}}),
                    );
                }
                if body["Domain"] != DOMAIN
                    || body["SceneType"] != "pull"
                    || body["ValidDuration"] != 2
                    || body.get("PushPullEnable").is_some()
                {
                    return volc_error(StatusCode::BAD_REQUEST, "InvalidParam");
                }
                // A full overwrite, as documented.
                s.details = body["AuthDetailList"].as_array().unwrap().clone();
                s.updates += 1;
                json(
                    StatusCode::OK,
                    serde_json::json!({"ResponseMetadata": {"RequestId": "fake", "Action": "UpdateAuthKey"}}),
                )
            }
            _ => volc_error(StatusCode::BAD_REQUEST, "InvalidActionOrVersion"),
        }
    }

    fn keys(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .details
            .iter()
            .map(|d| d["SecretKey"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn volc_query(key: &str, path: &str, ts: u64) -> String {
    // md5: "/" App "/" Stream (no extension) + key + volcTime.
    let t = ts.to_string();
    let stream = path.trim_end_matches(".flv");
    let sig = hex::encode(md5::Md5::digest(format!("{stream}{key}{t}").as_bytes()));
    format!("volcSecret={sig}&volcTime={t}")
}

#[tokio::test(flavor = "multi_thread")]
async fn volcengine_rotation_rolls_the_key_through_update_auth_key() {
    let vendor = FakeVolc::start().await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = vendor_config(
        "volcengine",
        "volc",
        VOLC_AK,
        "FAKE_VOLC_SECRET",
        &format!("http://{}/", vendor.addr),
        state.path(),
        origin.addr,
    );
    let proxy = start(&cfg);
    let path = STREAM;
    let fetch = async |q: String| status(&proxy, &q).await;
    wait_for("the vendor key", async || {
        fetch(volc_query(OLD_KEY, path, now() + 2)).await == StatusCode::OK
    })
    .await;
    let v = vendor.clone();
    let out = rotate_while_fetching(
        &proxy,
        &cfg,
        "volc",
        move || v.keys()[0].clone(),
        // volcTime is the expiry here: ValidDuration is 2 s past it.
        move |key, exp| volc_query(key, path, exp - 2),
    )
    .await;
    assert!(text(&out.stdout).contains("done"), "{}", text(&out.stdout));

    let keys = vendor.keys();
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0], OLD_KEY);
    // The details kept their fields through three full overwrites.
    let d = vendor.state.lock().unwrap().details[0].clone();
    assert_eq!(d["EncryptionAlgorithm"], "md5");
    assert_eq!(d["AuthField"]["volcTime"], "volcTime");
    wait_for("the proxy to drop the old key", async || {
        fetch(volc_query(OLD_KEY, path, now() + 1)).await == StatusCode::FORBIDDEN
    })
    .await;
    assert_eq!(
        fetch(volc_query(&keys[0], path, now() + 1)).await,
        StatusCode::OK
    );
    let s = vendor.state.lock().unwrap();
    assert_eq!((s.updates, s.bad_signatures), (3, 0));
}

/// A vendor that refuses a write echoing its body (which carries every key
/// of the domain) gets none of those keys into the CLI's output, the
/// server's log or the operator-visible error, whatever they look like: a
/// short letters-only key is no run a heuristic could spot.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_write_echoing_its_body_shows_no_key() {
    const SHORT: &str = "letterskey";
    let vendor = FakeVolc::start().await;
    {
        let mut s = vendor.state.lock().unwrap();
        s.echo_refusal = true;
        s.details
            .push(serde_json::json!({"SecretKey": SHORT, "EncryptionAlgorithm": "md5"}));
    }
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = vendor_config(
        "volcengine",
        "volc",
        VOLC_AK,
        "FAKE_VOLC_SECRET",
        &format!("http://{}/", vendor.addr),
        state.path(),
        origin.addr,
    );
    let proxy = start(&cfg);
    wait_for("the vendor key", async || {
        status(&proxy, &volc_query(OLD_KEY, STREAM, now() + 2)).await == StatusCode::OK
    })
    .await;
    let out = keys_rotate(&cfg, "volc", &[]).await;
    assert!(!out.status.success());
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("InvalidParameter"), "{all}");
    let status_out = keys_rotate(&cfg, "volc", &["--status"]).await;
    let all = format!(
        "{all}{}{}",
        text(&status_out.stdout),
        text(&status_out.stderr)
    );
    wait_for("the server to retry the step", async || {
        proxy.log().contains("key rotation step failed")
    })
    .await;
    let all = format!("{all}{}", proxy.log());
    for key in [SHORT, OLD_KEY, VOLC_SK] {
        assert!(!all.contains(key), "{key} in:\n{all}");
    }
    assert!(all.contains(r#""SecretKey":"***""#), "{all}");
}

// ---------------------------------------------------------------------------
// Fake Wangsu: Basic auth over the Date header checked on GET and PUT; the
// PUT applies the documented dataId semantics.

const WS_USER: &str = "ws-user";
const WS_KEY: &str = "ws-api-key";

struct WsState {
    rules: Vec<serde_json::Value>,
    next_id: u64,
    puts: usize,
    bad_signatures: usize,
    /// Set when a PUT would have replaced the whole config.
    replaced_all: bool,
}

#[derive(Clone)]
struct FakeWangsu {
    addr: SocketAddr,
    state: Arc<Mutex<WsState>>,
}

fn ws_rule(id: u64, key: &str) -> serde_json::Value {
    serde_json::json!({"dataId": id.to_string(), "cipherParam": "wsSecret", "timeParam": "wsTime",
        "secretKey": key, "timeFormat": "UNIX timestamp", "effectiveTimeMode": "duration",
        "effectiveTime": "2", "tolerantTime": "1", "cipheCombination": "key+path+time"})
}

impl FakeWangsu {
    async fn start() -> FakeWangsu {
        let state = WsState {
            rules: vec![ws_rule(7, OLD_KEY)],
            next_id: 8,
            puts: 0,
            bad_signatures: 0,
            replaced_all: false,
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
        if !wangsu_signature_ok(&req, WS_USER, WS_KEY) {
            self.state.lock().unwrap().bad_signatures += 1;
            return json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"code": "AuthFailed", "message": "signature mismatch"}),
            );
        }
        if req.parts.uri.path() != format!("/api/config/live-timestampvisitcontrol/{DOMAIN}") {
            return json(
                StatusCode::NOT_FOUND,
                serde_json::json!({"code": "26932001", "message": "The specified domain does not exist."}),
            );
        }
        let mut s = self.state.lock().unwrap();
        if req.parts.method == http::Method::PUT {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let groups = body["timestampVisitControlRules"]
                .as_array()
                .unwrap()
                .clone();
            let has_id = |g: &serde_json::Value| g.get("dataId").is_some();
            if !groups.iter().any(has_id) {
                // (c): no dataId anywhere replaces the whole config.
                s.replaced_all = true;
                s.rules = groups;
            } else {
                for g in groups {
                    match g.get("dataId").cloned() {
                        // (e): a dataId alone clears that group.
                        Some(id) if g.as_object().unwrap().len() == 1 => {
                            s.rules.retain(|r| r["dataId"] != id)
                        }
                        // (a): modify that group only.
                        Some(id) => {
                            if let Some(r) = s.rules.iter_mut().find(|r| r["dataId"] == id) {
                                for (k, v) in g.as_object().unwrap() {
                                    r[k] = v.clone();
                                }
                            }
                        }
                        // (b): added.
                        None => {
                            let mut g = g.clone();
                            g["dataId"] = serde_json::json!(s.next_id.to_string());
                            s.next_id += 1;
                            s.rules.push(g);
                        }
                    }
                }
            }
            s.puts += 1;
            return json(
                StatusCode::OK,
                serde_json::json!({"code": "0", "message": "success"}),
            );
        }
        json(
            StatusCode::OK,
            serde_json::json!({"code": "0", "message": "success", "data": {"domainId": "1", "domainName": DOMAIN, "timestampVisitControlRules": s.rules}}),
        )
    }

    fn keys(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .rules
            .iter()
            .map(|r| r["secretKey"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn ws_query(key: &str, path: &str, t: u64) -> String {
    let sig = hex::encode(md5::Md5::digest(format!("{key}{path}{t}").as_bytes()));
    format!("wsSecret={sig}&wsTime={t}")
}

#[tokio::test(flavor = "multi_thread")]
async fn wangsu_rotation_uses_data_ids_and_never_replaces_the_config() {
    let vendor = FakeWangsu::start().await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = vendor_config(
        "wangsu",
        "ws",
        WS_USER,
        "FAKE_WANGSU_KEY",
        &format!("http://{}", vendor.addr),
        state.path(),
        origin.addr,
    );
    let proxy = start(&cfg);
    let path = STREAM;
    let fetch = async |q: String| status(&proxy, &q).await;
    wait_for("the vendor key", async || {
        fetch(ws_query(OLD_KEY, path, now())).await == StatusCode::OK
    })
    .await;
    let v = vendor.clone();
    rotate_while_fetching(
        &proxy,
        &cfg,
        "ws",
        move || v.keys()[0].clone(),
        // wsTime is the signing time; effectiveTime 2 + tolerantTime 1.
        move |key, exp| ws_query(key, path, exp - 3),
    )
    .await;

    let new_key = {
        let s = vendor.state.lock().unwrap();
        assert!(!s.replaced_all, "an update replaced the whole config");
        assert_eq!((s.puts, s.bad_signatures), (3, 0));
        assert_eq!(s.rules.len(), 1);
        // The signing group kept its dataId; only its key changed.
        assert_eq!(s.rules[0]["dataId"], "7");
        s.rules[0]["secretKey"].as_str().unwrap().to_owned()
    };
    assert_ne!(new_key, OLD_KEY);
    wait_for("the proxy to drop the old key", async || {
        fetch(ws_query(OLD_KEY, path, now())).await == StatusCode::FORBIDDEN
    })
    .await;
    assert_eq!(fetch(ws_query(&new_key, path, now())).await, StatusCode::OK);
}

/// `POST /v1/keys/rotate` on the operator API starts the same rotation
/// (stage at once, promote and retire by the server) and `GET` reports it.
#[tokio::test(flavor = "multi_thread")]
async fn the_operator_api_starts_and_reports_a_rotation() {
    let vendor = FakeTencent::start().await;
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = tencent_config(vendor.addr, state.path(), origin.addr).replace(
        "[admin]\nlisten = \"127.0.0.1:0\"",
        "[admin]\nlisten = \"127.0.0.1:0\"\napi_token = \"rotate-api-token-0123456789\"",
    );
    let proxy = start(&cfg);
    wait_for("the vendor key", async || {
        status(&proxy, &tencent_query(OLD_KEY, STREAM, now() + 60)).await == StatusCode::OK
    })
    .await;
    let api = |method: &'static str, path: String, body: Option<String>| {
        let admin = proxy.admin;
        async move {
            let mut cmd = tokio::process::Command::new("curl");
            cmd.args(["-s", "-w", "\n%{http_code}", "-X", method])
                .args(["-H", "Authorization: Bearer rotate-api-token-0123456789"])
                .arg(format!("http://{admin}{path}"));
            if let Some(b) = body {
                cmd.args(["-H", "content-type: application/json", "-d", &b]);
            }
            let out = cmd.output().await.unwrap();
            let text = text(&out.stdout);
            let (body, code) = text.rsplit_once('\n').unwrap();
            (
                code.parse::<u16>().unwrap(),
                serde_json::from_str::<serde_json::Value>(body).unwrap(),
            )
        }
    };
    let start_body = format!(r#"{{"vendor":"tencent-main","domain":"{DOMAIN}"}}"#);
    let (code, v) = api("POST", "/v1/keys/rotate".into(), Some(start_body.clone())).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["rotation"]["phase"], "staged", "{v}");
    let new_key = vendor.keys().1;
    assert!(
        !v.to_string().contains(&new_key) && !v.to_string().contains(OLD_KEY),
        "{v}"
    );
    let (code, v) = api("POST", "/v1/keys/rotate".into(), Some(start_body)).await;
    assert_eq!(
        (code, v["code"].as_str()),
        (409, Some("Conflict.RotationInProgress")),
        "{v}"
    );
    let (code, v) = api(
        "POST",
        "/v1/keys/rotate".into(),
        Some(r#"{"vendor":"nobody","domain":"x.example.com"}"#.into()),
    )
    .await;
    assert_eq!(
        (code, v["code"].as_str()),
        (404, Some("ResourceNotFound")),
        "{v}"
    );
    let status_path = format!("/v1/keys/rotate?vendor=tencent-main&domain={DOMAIN}");
    wait_long("the server to finish the rotation", 40, async || {
        api("GET", status_path.clone(), None).await.1["rotation"]["phase"] == "retired"
    })
    .await;
    assert_eq!(vendor.keys(), (new_key.clone(), String::new()));
    assert_eq!(
        status(&proxy, &tencent_query(&new_key, STREAM, now() + 60)).await,
        StatusCode::OK
    );
    assert!(!proxy.log().contains(&new_key));
}

/// Tencent holds two keys already: the stage is refused and the rotation
/// waits, pending. Asked again with `--replace-backup`, the same rotation
/// (its new key) goes on, without deleting any record by hand.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_stage_goes_on_when_asked_again_with_the_backup_replaced() {
    let vendor = FakeTencent::start().await;
    vendor.state.lock().unwrap().back_key = "ThirdKeyNobodyRetired".into();
    let origin = Origin::start().await;
    let state = tempfile::tempdir().unwrap();
    let cfg = tencent_config(vendor.addr, state.path(), origin.addr);
    let out = keys_rotate(&cfg, "tencent-main", &[]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("replace_backup"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(phase(state.path(), "tencent-main"), "pending");
    assert_eq!(vendor.keys().1, "ThirdKeyNobodyRetired");
    let out = keys_rotate(&cfg, "tencent-main", &["--replace-backup"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(phase(state.path(), "tencent-main"), "staged");
    let (auth, back) = vendor.keys();
    assert_eq!(auth, OLD_KEY);
    assert_eq!(back.len(), 32, "the new key is staged as the backup");
}
