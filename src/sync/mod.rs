//! Key sync from the vendors' "Describe" APIs.
//!
//! Each vendor account in the config gets one background [`SyncService`]:
//! it asks the vendor for the auth config of every domain that uses the
//! account (the [`Sink`] says which, so a reload can add domains), checks
//! that the answer reads as the API documents, saves it to the state
//! directory it owns, and hands it to the sink ([`Answer`]), which builds a
//! new snapshot. A failed sync never removes working keys: the last good
//! answer stays, and is also kept on disk (see [`state`], [`restore`]) so a
//! restart while the vendor is unreachable still serves.
//!
//! A vendor client is two pure functions ([`VendorApi`]): build the signed
//! request, parse the answer. The transport, timeouts, pacing and backoff
//! live here, once. Vendors whose keys can be rotated at the vendor also
//! implement [`KeyWriter`] (the write call, signed like their Describe);
//! [`rotate`] drives the rotation.

pub mod aliyun;
pub mod rotate;
pub mod state;
pub mod tencent;
pub mod volcengine;
pub mod wangsu;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::auth::{Common, Verifier};
use crate::config::VendorConfig;
use crate::keys::{KeySet, Secret};
use crate::metrics::Metrics;

/// Largest vendor response read, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// First retry delay after a failed sync; doubles up to the sync interval.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(2);

/// What a vendor says about one domain's play authentication.
#[derive(Debug, Clone)]
pub enum SyncedAuth {
    /// Auth is on: verify with this verifier and these keys.
    Enabled {
        /// The scheme with the vendor's parameters (AuthDelta, fields…).
        verifier: Arc<dyn Verifier>,
        /// Every key the vendor lists, primary first.
        keys: KeySet,
    },
    /// The vendor reports auth switched off for the domain; the site's
    /// `on_vendor_disabled` decides what that means.
    Disabled,
}

/// A good vendor answer for one domain, kept as the vendor sent it: the
/// snapshot builder reads it with each site's own settings (clock skew).
/// `Debug` shows the body's length only (it holds the keys).
#[derive(Clone)]
pub struct Answer {
    /// The response body.
    pub body: Bytes,
    /// Unix seconds it was received (or, restored, when it was saved).
    pub at: Option<u64>,
    /// True when read back from the state directory.
    pub restored: bool,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("at", &self.at)
            .field("restored", &self.restored)
            .finish()
    }
}

/// Where a [`SyncService`] sends its answers.
pub trait Sink: Send + Sync {
    /// The domains account `account` supplies keys for now (the config may
    /// change by reload; each sync round asks again).
    fn domains(&self, account: &str) -> Vec<String>;
    /// A good answer for (`account`, `domain`).
    fn accept(&self, account: &str, domain: &str, answer: Answer);
    /// A failed sync of (`account`, `domain`) at `at`; `kind` is the
    /// `key_sync_attempts_total` result label. The last good answer stays.
    fn failed(&self, account: &str, domain: &str, kind: &'static str, at: u64) {
        let _ = (account, domain, kind, at); // nothing to record by default
    }
}

/// Why a sync failed. Vendor error envelopes keep the vendor's code and message.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The request could not be built (bad endpoint, say).
    #[error("cannot build the request: {0}")]
    Request(String),
    /// No answer: connect failure, timeout, broken connection.
    #[error("transport: {0}")]
    Transport(String),
    /// The vendor answered with an error envelope.
    #[error("vendor error {code}: {message} (http {status})")]
    Vendor {
        /// HTTP status.
        status: u16,
        /// The vendor's error code, e.g. `AuthFailure.SignatureFailure`.
        code: String,
        /// The vendor's message.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer: {0}")]
    Malformed(String),
}

/// Shortest secret looked for in a vendor's text by [`SyncError::without`]:
/// shorter ones would match ordinary words.
const MIN_MASKED_SECRET_CHARS: usize = 4;

impl SyncError {
    /// The error with every occurrence of one of `secrets` in the vendor's
    /// code or message, or in what an answer was found to hold, replaced by
    /// `***`: a vendor may echo a credential or key of any shape (a Wangsu
    /// username, a short letters-only key) that [`vendor_error`]'s scrub
    /// cannot tell from words.
    pub fn without(self, secrets: &[&Secret]) -> SyncError {
        let mask = |text: String| {
            secrets
                .iter()
                .map(|s| s.expose())
                .filter(|s| s.chars().count() >= MIN_MASKED_SECRET_CHARS)
                .fold(text, |t, s| t.replace(s, "***"))
        };
        match self {
            SyncError::Vendor {
                status,
                code,
                message,
            } => SyncError::Vendor {
                status,
                code: cut(&mask(code), MAX_VENDOR_CODE_CHARS),
                message: cut(&mask(message), MAX_VENDOR_MESSAGE_CHARS),
            },
            SyncError::Malformed(m) => SyncError::Malformed(mask(m)),
            other => other,
        }
    }

    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            SyncError::Request(_) => "request",
            SyncError::Transport(_) => "transport",
            SyncError::Vendor { .. } => "vendor_error",
            SyncError::Malformed(_) => "malformed",
        }
    }
}

/// The endpoint's `host[:port]` (config validation already demands one).
pub(crate) fn endpoint_authority(endpoint: &http::Uri) -> Result<&http::uri::Authority, SyncError> {
    endpoint
        .authority()
        .ok_or_else(|| SyncError::Request("endpoint has no host".into()))
}

/// HMAC-SHA256 of `msg` under `key` (request signers).
pub(crate) fn hmac256(key: &[u8], msg: &str) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    // HMAC accepts keys of any length, so the error arm is unreachable.
    match Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut m) => {
            m.update(msg.as_bytes());
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Lowercase hex SHA-256 of `data` (request signers).
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A vendor answer's settings problems, already at their vendor paths, as
/// one [`SyncError::Malformed`]. No secret can show: settings hold no key.
pub(crate) fn unusable_settings(
    problems: impl IntoIterator<Item = crate::problems::Problem>,
) -> SyncError {
    let mut listed: Vec<String> = Vec::new();
    for p in problems {
        // Entries that share a setting report it once.
        let line = p.to_string();
        if !listed.contains(&line) {
            listed.push(line);
        }
    }
    SyncError::Malformed(format!("unusable settings: {}", listed.join("; ")))
}

/// A JSON failure without its text.
///
/// Why: serde_json messages quote the offending value (`invalid type: integer
/// 123`), and that value may be a key.
pub fn malformed(status: StatusCode, e: &serde_json::Error) -> SyncError {
    SyncError::Malformed(format!(
        "http {status}: not the documented JSON ({:?} error at line {} column {})",
        e.classify(),
        e.line(),
        e.column()
    ))
}

/// A vendor's error envelope as a [`SyncError::Vendor`], its code and
/// message made fit for a log line, a metric-free error field and the
/// operator API: cut short, and without what may be a credential.
///
/// Why: vendors echo the request they could not verify. Alibaba Cloud's
/// `SignatureDoesNotMatch` says "server string to sign is:GET&%2F&AccessKeyId%3D…",
/// which puts the account's AccessKeyId in every retry's log line.
pub fn vendor_error(status: StatusCode, code: String, message: String) -> SyncError {
    SyncError::Vendor {
        status: status.as_u16(),
        // Cut short only once [`SyncError::without`] has masked what it
        // knows (a secret cut in two would no longer match); a generous
        // bound until then.
        code: cut(&scrub(&code), 4 * MAX_VENDOR_CODE_CHARS),
        message: cut(&scrub(&message), 4 * MAX_VENDOR_MESSAGE_CHARS),
    }
}

/// `text` cut at `max` chars (an ellipsis marks the cut).
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// Longest vendor error code kept, in chars.
const MAX_VENDOR_CODE_CHARS: usize = 64;
/// Longest vendor error message kept, in chars.
const MAX_VENDOR_MESSAGE_CHARS: usize = 240;
/// Shortest run of token characters with a digit or `%` that is taken for
/// a credential, signature or echoed request and replaced.
const MIN_REDACTED_RUN: usize = 16;

/// `text` up to an echoed string to sign, with the value of every quoted
/// field whose name speaks of a key, secret, signature, token or password
/// replaced by `***` (an echoed request body: a write carries the domain's
/// keys), and every run of token characters (`A-Z a-z 0-9 % + / = _ - .`)
/// of [`MIN_REDACTED_RUN`] or more that holds a digit or a `%` replaced
/// too (words stay).
fn scrub(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let text = match lower.find("string to sign") {
        Some(i) => &text[..i],
        None => text,
    };
    let unfielded = redact_secret_fields(text);
    let text = unfielded.as_str();
    let token = |c: char| c.is_ascii_alphanumeric() || "%+/=_-.".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= MIN_REDACTED_RUN && run.chars().any(|c| c.is_ascii_digit() || c == '%') {
            out.push_str("***");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if token(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out.trim_end().to_owned()
}

/// Words in a field name that mark its value as a credential.
const SECRET_FIELD_WORDS: [&str; 5] = ["key", "secret", "signature", "token", "password"];

/// `text` with the value of each `"name": "value"` (or `\"name\":\"value\"`,
/// JSON inside a JSON string) whose name holds one of
/// [`SECRET_FIELD_WORDS`] replaced by `***`; an unterminated value is cut
/// there.
fn redact_secret_fields(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    // At each `:`, look back for a name and ahead for a quoted value.
    while let Some(colon) = rest.find(':') {
        let (head, tail) = rest.split_at(colon);
        out.push_str(head);
        out.push(':');
        let tail = &tail[1..];
        // The name: the run of name characters before the colon, past a
        // closing quote (and the backslash of an escaped one).
        let name_end = head
            .trim_end()
            .trim_end_matches(['"', '\''])
            .trim_end_matches('\\');
        let name_start = name_end
            .char_indices()
            .rev()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let name = name_end[name_start..].to_ascii_lowercase();
        let value = tail.trim_start();
        let (open, inner) = if let Some(v) = value.strip_prefix("\\\"") {
            ("\\\"", v)
        } else if let Some(v) = value.strip_prefix('"') {
            ("\"", v)
        } else if let Some(v) = value.strip_prefix('\'') {
            ("'", v)
        } else {
            ("", value)
        };
        if !open.is_empty()
            && !name.is_empty()
            && SECRET_FIELD_WORDS.iter().any(|w| name.contains(w))
        {
            out.push_str(&tail[..tail.len() - value.len()]);
            out.push_str(open);
            out.push_str("***");
            let end = if open == "\"" {
                unescaped_quote(inner)
            } else {
                inner.find(open)
            };
            match end {
                Some(e) => rest = &inner[e..],
                None => return out,
            }
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// The index of the first `"` in `s` not escaped by a backslash.
fn unescaped_quote(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// One vendor's API: how to ask, and how to read the answer. Pure functions.
pub trait VendorApi: Send + Sync {
    /// The vendor kind, e.g. `tencent` (metric label, state file names).
    fn kind(&self) -> &'static str;

    /// The most requests per second the vendor documents for this API.
    fn max_requests_per_sec(&self) -> u32;

    /// The signed request for `domain` at unix time `now`.
    fn request(&self, domain: &str, now: u64) -> Result<Request<Full<Bytes>>, SyncError>;

    /// Parses the vendor's answer (any status) for `domain`.
    fn parse(
        &self,
        domain: &str,
        status: StatusCode,
        body: &[u8],
        common: Common,
    ) -> Result<SyncedAuth, SyncError>;
}

/// One step of a key rotation, as a change to the vendor's key slots.
pub enum KeyChange<'a> {
    /// Add `new` as an accepted but not signing key; `old` keeps signing.
    Stage {
        /// The signing key now.
        old: &'a Secret,
        /// The key being rolled in.
        new: &'a Secret,
        /// Whether a vendor with a fixed number of key slots may overwrite
        /// a backup key other than `old` (Tencent's `AuthBackKey`).
        replace_backup: bool,
    },
    /// Make `new` the signing key; `old` stays accepted.
    Promote {
        /// The signing key until now.
        old: &'a Secret,
        /// The staged key.
        new: &'a Secret,
    },
    /// Remove `old`; `new` stays the signing key.
    Retire {
        /// The key going away.
        old: &'a Secret,
        /// The signing key.
        new: &'a Secret,
    },
}

impl KeyChange<'_> {
    /// The two keys the change names.
    pub fn keys(&self) -> [&Secret; 2] {
        match self {
            KeyChange::Stage { old, new, .. }
            | KeyChange::Promote { old, new }
            | KeyChange::Retire { old, new } => [old, new],
        }
    }

    /// The step's name: `stage`, `promote`, `retire` (metric label, logs).
    pub fn step(&self) -> &'static str {
        match self {
            KeyChange::Stage { .. } => "stage",
            KeyChange::Promote { .. } => "promote",
            KeyChange::Retire { .. } => "retire",
        }
    }
}

/// Why a write request was not built.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The change would drop a key that may still be in use.
    #[error("refused: {0}")]
    Refused(String),
    /// The current answer could not be read, or the request not built.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// The write side of a vendor's key config, for rotation. Pure functions,
/// like [`VendorApi`]; each write call is signed like the vendor's Describe.
pub trait KeyWriter: Send + Sync {
    /// The signed request applying `change` to `domain`'s config, given the
    /// vendor's current Describe answer `current` (vendors whose update
    /// replaces the whole config get it back with the change applied).
    fn write(
        &self,
        domain: &str,
        current: &[u8],
        change: &KeyChange<'_>,
        now: u64,
    ) -> Result<Request<Full<Bytes>>, WriteError>;

    /// Reads the write call's answer (any status).
    fn written(&self, status: StatusCode, body: &[u8]) -> Result<(), SyncError>;

    /// The longest window, in seconds, the vendor's settings in the Describe
    /// answer `current` grant a signed URL (AuthDelta, ValidDuration,
    /// effectiveTime + tolerantTime); 0 when they grant none.
    fn url_window_secs(&self, domain: &str, current: &[u8]) -> u64;
}

/// The rotation writer for a configured account, for vendors that have one
/// (Tencent, Volcengine, Wangsu).
pub fn writer_for(v: &VendorConfig) -> Option<Arc<dyn KeyWriter>> {
    match v.kind {
        crate::config::VendorKind::Tencent => Some(Arc::new(tencent::TencentApi::new(v))),
        crate::config::VendorKind::Volcengine => Some(Arc::new(volcengine::VolcengineApi::new(v))),
        crate::config::VendorKind::Wangsu => Some(Arc::new(wangsu::WangsuApi::new(v))),
        crate::config::VendorKind::Aliyun | crate::config::VendorKind::AliyunVod => None,
    }
}

/// Builds the client for a configured account.
pub fn api_for(v: &VendorConfig) -> Arc<dyn VendorApi> {
    match v.kind {
        crate::config::VendorKind::Tencent => Arc::new(tencent::TencentApi::new(v)),
        crate::config::VendorKind::Wangsu => Arc::new(wangsu::WangsuApi::new(v)),
        crate::config::VendorKind::Volcengine => Arc::new(volcengine::VolcengineApi::new(v)),
        crate::config::VendorKind::Aliyun => {
            Arc::new(aliyun::AliyunApi::new(v, aliyun::Product::Live))
        }
        crate::config::VendorKind::AliyunVod => {
            Arc::new(aliyun::AliyunApi::new(v, aliyun::Product::Vod))
        }
    }
}

pub(crate) type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

pub(crate) fn https_client() -> Result<HttpsClient, SyncError> {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| SyncError::Request(e.to_string()))?
    .with_root_certificates(rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    })
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// One request to the vendor: bounded in time and size.
pub(crate) async fn exchange(
    client: &HttpsClient,
    req: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<(StatusCode, Bytes), SyncError> {
    let fut = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| SyncError::Transport(crate::error_chain(&e)))?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| SyncError::Transport(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| SyncError::Transport(format!("no answer within {}s", timeout.as_secs())))?
}

/// The background sync of one vendor account.
pub struct SyncService {
    account: VendorConfig,
    api: Arc<dyn VendorApi>,
    metrics: Metrics,
    state: state::StateDir,
    sink: Arc<dyn Sink>,
}

impl SyncService {
    /// A service for `account`, saving answers in `state_dir` (if any) and
    /// sending them to `sink`.
    pub fn new(
        account: VendorConfig,
        metrics: Metrics,
        state_dir: Option<std::path::PathBuf>,
        sink: Arc<dyn Sink>,
    ) -> Self {
        SyncService {
            api: api_for(&account),
            account,
            metrics,
            state: state::StateDir::new(state_dir),
            sink,
        }
    }

    /// Creates the account's series at 0, so dashboards and alerts see them
    /// before the first sync ends; `last_success` is the time of the answer
    /// restored from the state directory, if any.
    pub fn init_metrics(&self, last_success: Option<u64>) {
        let name = self.account.name.as_str();
        for result in [
            "ok",
            "transport",
            "vendor_error",
            "http_5xx",
            "malformed",
            "request",
        ] {
            self.metrics
                .sync_attempts
                .with_label_values(&[name, result]);
        }
        if let Some(t) = last_success {
            self.metrics
                .sync_last_success
                .with_label_values(&[name])
                .set(i64::try_from(t).unwrap_or(i64::MAX));
        }
    }

    /// Syncs every domain once; true when all succeeded.
    pub async fn sync_once(&self, client: &HttpsClient) -> bool {
        let metrics = &self.metrics;
        let name = self.account.name.as_str();
        let pace = Duration::from_secs_f64(1.0 / f64::from(self.api.max_requests_per_sec().max(1)));
        let mut all_ok = true;
        for (i, domain) in self.sink.domains(name).iter().enumerate() {
            if i > 0 {
                // Never more requests than the vendor's documented rate limit.
                tokio::time::sleep(pace).await;
            }
            let mut status_seen = None;
            let result = match self.api.request(domain, crate::time::unix_now()) {
                Ok(req) => match exchange(client, req, self.account.request_timeout).await {
                    // Read once here so a bad answer is never saved or
                    // published; sites read it again with their own settings.
                    Ok((status, body)) => {
                        status_seen = Some(status);
                        self.api
                            .parse(domain, status, &body, Common::default())
                            .map(|auth| (auth, body))
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match result {
                Ok((auth, body)) => {
                    let now = crate::time::unix_now();
                    metrics.sync_attempts.with_label_values(&[name, "ok"]).inc();
                    metrics
                        .sync_last_success
                        .with_label_values(&[name])
                        .set(now as i64);
                    match &auth {
                        SyncedAuth::Disabled => warn!(vendor = name, domain, "vendor reports play auth disabled; the site's on_vendor_disabled applies"),
                        SyncedAuth::Enabled { keys, .. } => info!(vendor = name, domain, keys = keys.len(), "key sync succeeded"),
                    }
                    if let Err(error) = self.state.save(name, domain, &body) {
                        let file = self
                            .state
                            .path(name, domain)
                            .map(|p| p.display().to_string())
                            .unwrap_or_default();
                        warn!(vendor = name, domain, file, %error, "cannot save synced keys to the state directory");
                    }
                    self.sink.accept(
                        name,
                        domain,
                        Answer {
                            body,
                            at: Some(now),
                            restored: false,
                        },
                    );
                }
                Err(error) => {
                    let error =
                        error.without(&[&self.account.access_key, &self.account.secret_key]);
                    all_ok = false;
                    // A 5xx without the vendor's error envelope is the
                    // vendor (or a gateway) failing, not an answer we could
                    // not read: told apart for alerts.
                    let kind = match (&error, status_seen) {
                        (SyncError::Malformed(_), Some(s)) if s.is_server_error() => "http_5xx",
                        _ => error.kind(),
                    };
                    metrics.sync_attempts.with_label_values(&[name, kind]).inc();
                    warn!(vendor = name, domain, %error, "key sync failed; keeping the last good keys");
                    self.sink
                        .failed(name, domain, kind, crate::time::unix_now());
                }
            }
        }
        all_ok
    }

    /// Syncs at the account's interval (with jitter) until `shutdown`; after a
    /// failure retries with exponential backoff capped at the interval.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let client = match https_client() {
            Ok(c) => c,
            Err(error) => {
                warn!(vendor = %self.account.name, %error, "key sync disabled: no HTTPS client");
                return;
            }
        };
        let interval = self.account.sync_interval;
        let mut backoff = INITIAL_BACKOFF;
        loop {
            // A vendor request in flight is abandoned at shutdown.
            let ok = tokio::select! {
                ok = self.sync_once(&client) => ok,
                _ = shutdown.changed() => {
                    info!(vendor = %self.account.name, "key sync stopped");
                    return;
                }
            };
            let wait = if ok {
                backoff = INITIAL_BACKOFF;
                jitter(interval)
            } else {
                // Jittered too: replicas failing together must not retry
                // in lockstep.
                let w = jitter(backoff.min(interval));
                backoff = (backoff * 2).min(interval);
                w
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {
                    info!(vendor = %self.account.name, "key sync stopped");
                    return;
                }
            }
        }
    }
}

/// `d` ± 10%, so many proxies do not poll the vendor in lockstep.
pub(crate) fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let r = if getrandom::getrandom(&mut b).is_ok() {
        u16::from_le_bytes(b)
    } else {
        32_768
    };
    let frac = f64::from(r) / f64::from(u16::MAX); // 0..=1
    d.mul_f64(0.9 + 0.2 * frac)
}

/// The answer for (`account`, `domain`) saved in the state directory, if
/// any and if it still reads as the API documents (else it is ignored, with
/// a warning naming the file).
pub fn restore(
    account: &VendorConfig,
    domain: &str,
    state_dir: Option<&std::path::Path>,
) -> Option<Answer> {
    let state = state::StateDir::new(state_dir.map(std::path::Path::to_path_buf));
    let (body, saved) = state.load(&account.name, domain)?;
    let vendor = account.name.as_str();
    match api_for(account).parse(domain, StatusCode::OK, &body, Common::default()) {
        Ok(_) => Some(Answer {
            body: Bytes::from(body),
            at: saved,
            restored: true,
        }),
        Err(error) => {
            let file = state
                .path(vendor, domain)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            warn!(vendor, domain, file, %error, "ignoring unreadable saved keys");
            None
        }
    }
}

/// Reads a kept answer with a site's settings.
pub fn interpret(
    account: &VendorConfig,
    domain: &str,
    answer: &Answer,
    common: Common,
) -> Result<SyncedAuth, SyncError> {
    api_for(account).parse(domain, StatusCode::OK, &answer.body, common)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_an_answer_or_a_key_shows_no_key() {
        let answer = Answer {
            body: Bytes::from_static(br#"{"AuthKey":"sekrit-key"}"#),
            at: Some(1),
            restored: false,
        };
        assert!(!format!("{answer:?}").contains("sekrit"));
        let detail = crate::operator::Detail {
            secret_key: "sekrit-key".into(),
            algorithm: "md5".into(),
            auth_field: Default::default(),
            encrypt_field: Vec::new(),
        };
        assert!(!format!("{detail:?}").contains("sekrit"));
        let raw = crate::operator::RawDetail {
            secret_key: Some("sekrit-key".into()),
            ..Default::default()
        };
        assert!(!format!("{raw:?}").contains("sekrit"));
    }

    #[test]
    fn vendor_messages_lose_echoed_requests_and_credentials() {
        // Alibaba Cloud's answer to a wrong secret, as its SDKs report it.
        let aliyun = "Specified signature is not matched with our calculation. server string to sign is:GET&%2F&AccessKeyId%3DLTAIACCESSKEYID12345%26Action%3DDescribeLiveDomainConfigs";
        let e = vendor_error(
            StatusCode::BAD_REQUEST,
            "SignatureDoesNotMatch".into(),
            aliyun.into(),
        );
        let text = e.to_string();
        assert!(!text.contains("LTAI"), "{text}");
        assert!(text.starts_with("vendor error SignatureDoesNotMatch: Specified signature is not matched with our calculation. server"), "{text}");
        // A credential or signature quoted elsewhere in a message.
        let e = vendor_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAccessKey".into(),
            "The access key AKLTMjI2ODVlYzI3ZGY1NGU4 is not valid, nor signature 28eeabbbd726b87002e0fe58ad8c1c76".into(),
        );
        let text = e.to_string();
        assert!(
            !text.contains("AKLTMjI2") && !text.contains("28eeab"),
            "{text}"
        );
        assert!(text.contains("The access key *** is not valid"), "{text}");
        // Plain words stay, long messages are cut.
        let e = vendor_error(
            StatusCode::OK,
            "ResourceNotFound.PlayDomainNoRecord".into(),
            "x ".repeat(500),
        );
        let SyncError::Vendor { code, message, .. } = e.without(&[]) else {
            unreachable!()
        };
        assert_eq!(code, "ResourceNotFound.PlayDomainNoRecord");
        assert_eq!(message.chars().count(), MAX_VENDOR_MESSAGE_CHARS + 1);
    }

    /// A write the vendor refuses may echo its body, which carries the
    /// domain's keys under their field names, whatever the keys look like
    /// (short, letters only), also as JSON inside a JSON string.
    #[test]
    fn echoed_bodies_lose_the_values_of_key_fields() {
        for (message, gone) in [
            (
                r#"cannot apply: {"AuthDetailList":[{"AuthField":{},"EncryptField":[],"EncryptionAlgorithm":"md5","SecretKey":"VKEYMARKERVOLC"}],"SceneType":"pull"}"#,
                "VKEYMARKERVOLC",
            ),
            (
                r#"bad body {\"secretKey\":\"shortkey\",\"cipherParam\":\"wsSecret\"}"#,
                "shortkey",
            ),
            (r#"{"access_token": "letters", "x": 1}"#, "letters"),
            (r#"{"Password":"hunter"#, "hunter"),
            (r#"{"SecretKey":"abc\"TAIL","x":1}"#, "TAIL"),
            (r#"{'SecretKey': 'single'}"#, "single"),
            (r#"token: "bare-name""#, "bare-name"),
            ("参数错误\u{3000}SecretKey:\"widespace\"", "widespace"),
        ] {
            let e = vendor_error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter".into(),
                message.into(),
            );
            let text = e.to_string();
            assert!(!text.contains(gone), "{text}");
            assert!(text.contains("***"), "{text}");
        }
        let text = vendor_error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter".into(),
            r#"{"SceneType":"pull","EncryptionAlgorithm":"md5"} key: value"#.into(),
        )
        .to_string();
        assert!(
            text.contains(r#""SceneType":"pull""#) && text.contains("key: value"),
            "{text}"
        );
        // Any whitespace, multibyte included, before a colon (a vendor's
        // Chinese message): no panic, words kept.
        for m in [
            "参数错误\u{3000}原因: bad",
            "\u{a0}:",
            ":\u{3000}:",
            "a\u{2003}b:\"c\"",
        ] {
            let text = vendor_error(StatusCode::BAD_REQUEST, "X".into(), m.into()).to_string();
            assert!(text.starts_with("vendor error X: "), "{text}");
        }
        // A secret cut in two by the length bound is masked whole first.
        let key = "letterskeyatthecut";
        let message = format!("{}{key}", "x ".repeat(MAX_VENDOR_MESSAGE_CHARS / 2 - 4));
        let text = vendor_error(StatusCode::BAD_REQUEST, "X".into(), message)
            .without(&[&Secret::new(key)])
            .to_string();
        assert!(!text.contains("letterskey"), "{text}");
    }
}
