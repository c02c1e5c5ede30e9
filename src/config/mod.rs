//! Configuration: TOML parsed in two stages.
//!
//! 1. [`RawConfig`] mirrors the file with `deny_unknown_fields`, so a typo is a
//!    parse error naming the key.
//! 2. [`Config::validate`] resolves defaults (`DEFAULT_*`), `${ENV_VAR}`
//!    secrets, addresses, origins, certificates and cross-field rules, and
//!    reports *every* problem at once, each with its key path and what to do.
//!
//! Everything parses from `&str`, so tests need no files.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{StatusCode, Uri};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use serde::Deserialize;

use crate::auth::{Common, RawScheme, Verifier};
pub use crate::host::is_hostname;
use crate::keys::{KeySet, Secret};
use crate::problems::is_under;
pub use crate::problems::{usable_param_name, Ctx, Problem, MAX_SECRET_BYTES};

mod parse;

/// Default plain listener when none is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default admin listener (metrics, health).
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Seconds a client has to send a complete request head.
pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Seconds a client has to complete a TLS handshake.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// Largest request head (request line + headers) accepted, in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Smallest value hyper accepts for the HTTP/1 read buffer.
pub const MIN_MAX_HEADER_BYTES: usize = 8192;
/// Longest request URI (path + query) accepted, in bytes.
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
/// Most client connections served at once; further clients wait in the kernel backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Seconds a client connection may sit with no request in flight.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 60;
/// Seconds in-flight requests get to finish on shutdown.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;
/// Seconds to establish a TCP (and TLS) connection to the origin.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;
/// Seconds the origin has to send its response head.
pub const DEFAULT_RESPONSE_HEADER_TIMEOUT_SECS: u64 = 15;
/// Seconds an idle pooled origin connection is kept.
pub const DEFAULT_POOL_IDLE_TIMEOUT_SECS: u64 = 60;
/// Status for denied requests.
pub const DEFAULT_DENY_STATUS: u16 = 403;

// ---------------------------------------------------------------------------
// Stage 1: the file as written.

/// The config file as written.
/// Not `Debug`: it holds secrets as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `[server]`.
    #[serde(default)]
    pub server: RawServer,
    /// `[admin]`.
    #[serde(default)]
    pub admin: RawAdmin,
    /// `[[site]]`.
    #[serde(default)]
    pub site: Vec<RawSite>,
    /// `[[vendor]]`: accounts whose Describe APIs supply keys.
    #[serde(default)]
    pub vendor: Vec<RawVendor>,
    /// Where the last good synced keys are kept (mode 0600 files).
    pub state_dir: Option<PathBuf>,
}

/// `[[vendor]]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVendor {
    /// Account name, referenced by `site.vendor`.
    pub name: String,
    /// `tencent`, `volcengine`, `wangsu`, `aliyun` or `aliyun_vod`.
    pub kind: VendorKind,
    /// API version, for kinds that offer a choice (volcengine: `2023-01-01`,
    /// the default, or `2020-08-01`).
    pub api_version: Option<String>,
    /// SecretId / AccessKey / username. `${ENV}` allowed.
    pub access_key: String,
    /// SecretKey / api key. `${ENV}` allowed.
    pub secret_key: String,
    /// API endpoint override (tests, private endpoints).
    pub endpoint: Option<String>,
    /// Seconds between syncs. Default 300.
    pub sync_interval_secs: Option<u64>,
    /// Seconds one API request may take. Default 10.
    pub request_timeout_secs: Option<u64>,
}

/// Vendor API kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VendorKind {
    /// Tencent Cloud `DescribeLivePlayAuthKey`.
    Tencent,
    /// Volcengine Live `DescribeAuth`.
    Volcengine,
    /// Wangsu / ChinaNetCenter timestamp anti-hotlinking config
    /// (`/api/config/live-timestampvisitcontrol/{domain}`).
    Wangsu,
    /// Alibaba Cloud ApsaraVideo Live `DescribeLiveDomainConfigs` (aliauth).
    Aliyun,
    /// Alibaba Cloud ApsaraVideo VOD `DescribeVodDomainConfigs` (aliauth).
    AliyunVod,
}

impl VendorKind {
    /// The scheme its keys are for.
    pub fn scheme(self) -> &'static str {
        match self {
            VendorKind::Tencent => "tencent",
            VendorKind::Wangsu => "wangsu",
            VendorKind::Volcengine => "volcengine",
            VendorKind::Aliyun | VendorKind::AliyunVod => "aliyun",
        }
    }
}

/// The Volcengine `DescribeAuth` version used unless `api_version` says otherwise.
pub const VOLCENGINE_DEFAULT_API_VERSION: &str = "2023-01-01";
/// Every Volcengine `api_version` accepted (both have the same field names).
pub const VOLCENGINE_API_VERSIONS: &[&str] = &["2023-01-01", "2020-08-01"];

/// Default seconds between vendor syncs.
pub const DEFAULT_SYNC_INTERVAL_SECS: u64 = 300;
/// Default seconds a vendor API request may take.
pub const DEFAULT_VENDOR_TIMEOUT_SECS: u64 = 10;

/// A validated vendor account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorConfig {
    /// Account name.
    pub name: String,
    /// API kind.
    pub kind: VendorKind,
    /// Key id.
    pub access_key: Secret,
    /// Key secret.
    pub secret_key: Secret,
    /// Endpoint override.
    pub endpoint: Option<Uri>,
    /// Sync interval.
    pub sync_interval: Duration,
    /// Request timeout.
    pub request_timeout: Duration,
    /// API version, resolved to its default for kinds that have versions
    /// (volcengine); `None` for the others.
    pub api_version: Option<String>,
}

/// What a site does when its vendor reports auth switched off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnVendorDisabled {
    /// Deny every request with `auth_disabled` (default): a vendor-side
    /// switch never silently opens the site.
    #[default]
    Deny,
    /// Let every request through, as the vendor's edge would.
    Allow,
}

/// `[server]`: listeners, TLS certificates and limits.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Plain listeners (HTTP/1.1 and prior-knowledge h2c).
    pub listen: Option<Vec<String>>,
    /// TLS listeners (HTTP/1.1 and h2 via ALPN).
    #[serde(default)]
    pub tls_listen: Vec<String>,
    /// Certificates for the TLS listeners, chosen by SNI.
    #[serde(default)]
    pub certificate: Vec<RawCertificate>,
    /// See [`DEFAULT_HEADER_READ_TIMEOUT_SECS`].
    pub header_read_timeout_secs: Option<u64>,
    /// See [`DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS`].
    pub tls_handshake_timeout_secs: Option<u64>,
    /// See [`DEFAULT_MAX_HEADER_BYTES`].
    pub max_header_bytes: Option<usize>,
    /// See [`DEFAULT_MAX_URI_BYTES`].
    pub max_uri_bytes: Option<usize>,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: Option<usize>,
    /// See [`DEFAULT_SHUTDOWN_GRACE_SECS`].
    pub shutdown_grace_secs: Option<u64>,
    /// See [`DEFAULT_IDLE_TIMEOUT_SECS`].
    pub idle_timeout_secs: Option<u64>,
}

impl RawServer {
    /// The plain listeners: as written, or [`DEFAULT_LISTEN`] when neither
    /// `listen` nor `tls_listen` is given.
    fn plain_listen(&self) -> Vec<String> {
        match &self.listen {
            Some(l) => l.clone(),
            None if self.tls_listen.is_empty() => vec![DEFAULT_LISTEN.to_owned()],
            None => Vec::new(),
        }
    }
}

/// `[[server.certificate]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// SNI names this certificate serves (exact, or `*.example.com`).
    pub server_names: Vec<String>,
}

/// `[admin]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Admin listener address (`/metrics`, `/healthz`).
    pub listen: Option<String>,
}

/// `[[site]]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    /// Short id: metric label and log field. `[a-z0-9_-]`, 1–64 chars.
    pub id: String,
    /// Play domains matched on the Host header (port ignored, case-insensitive).
    pub domains: Vec<String>,
    /// Origin base URL, `http://` or `https://`, optionally with a path prefix.
    pub origin: String,
    /// PEM CA bundle to verify an https origin with, instead of the webpki roots.
    pub origin_ca_file: Option<PathBuf>,
    /// Host header sent to the origin: `origin` (default) or `client`.
    #[serde(default)]
    pub origin_host_header: OriginHost,
    /// See [`DEFAULT_CONNECT_TIMEOUT_SECS`].
    pub connect_timeout_secs: Option<u64>,
    /// See [`DEFAULT_RESPONSE_HEADER_TIMEOUT_SECS`].
    pub response_header_timeout_secs: Option<u64>,
    /// See [`DEFAULT_POOL_IDLE_TIMEOUT_SECS`].
    pub pool_idle_timeout_secs: Option<u64>,
    /// Remove the scheme's auth params from the query before forwarding. Default true.
    pub strip_auth_params: Option<bool>,
    /// Close a streaming response when its token expires (plus `cut_grace_secs`).
    #[serde(default)]
    pub cut_at_expiry: bool,
    /// Seconds a stream may run past its token's expiry with `cut_at_expiry`.
    #[serde(default)]
    pub cut_grace_secs: u64,
    /// `[site.cors]`: answer preflights and let pages on these origins read responses.
    pub cors: Option<RawCors>,
    /// Status for denied requests, 400–499. Default 403.
    pub deny_status: Option<u16>,
    /// Seconds of clock skew tolerated past a URL's expiry. Default 0.
    #[serde(default)]
    pub clock_skew_secs: u64,
    /// Proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed for IP-bound tokens.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// `[site.hls]`: playlist rewriting and child auth.
    #[serde(default)]
    pub hls: RawHls,
    /// `[site.auth]`: the signing scheme and its keys, parsed in stage 2 by
    /// [`RawScheme::from_table`] so errors name the key inside the table.
    /// Optional when `vendor` supplies the keys.
    pub auth: Option<toml::Table>,
    /// A `[[vendor]]` account whose API supplies this site's keys.
    pub vendor: Option<String>,
    /// The domain to ask the vendor about. Default: the first of `domains`.
    pub vendor_domain: Option<String>,
    /// `deny` (default) or `allow` when the vendor reports auth disabled.
    #[serde(default)]
    pub on_vendor_disabled: OnVendorDisabled,
}

/// `[site.cors]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// `["*"]` or origins like `https://player.example.com`.
    pub allow_origins: Vec<String>,
    /// Preflight cache time. Default 600.
    pub max_age_secs: Option<u64>,
}

/// Default preflight cache time.
pub const DEFAULT_CORS_MAX_AGE_SECS: u64 = 600;

/// Validated `[site.cors]`.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// `*` was given.
    pub any: bool,
    /// Allowed origins, lowercase.
    pub origins: Vec<String>,
    /// Preflight cache time.
    pub max_age_secs: u64,
}

/// `[site.hls]`.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHls {
    /// Rewrite playlists so child URIs carry auth. Default true.
    pub rewrite_playlists: Option<bool>,
    /// `session` (default) or `propagate`.
    pub child_auth: Option<ChildAuth>,
    /// HMAC key for session tokens; `${ENV}` allowed. Default: random per process.
    pub session_secret: Option<String>,
    /// Session token lifetime when the playlist's own token never expires.
    pub session_ttl_secs: Option<u64>,
    /// Largest playlist read for rewriting; larger → 502.
    pub max_playlist_bytes: Option<usize>,
    /// Other hosts whose absolute URLs in playlists also get auth.
    #[serde(default)]
    pub rewrite_hosts: Vec<String>,
}

/// How children of a rewritten playlist are authorized.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildAuth {
    /// The proxy's own short token, scoped to the playlist's directory.
    #[default]
    Session,
    /// The playlist request's own auth params, copied.
    Propagate,
}

/// Session token lifetime when the playlist's token has no expiry.
pub const DEFAULT_SESSION_TTL_SECS: u64 = 6 * 3600;
/// Largest playlist rewritten, in bytes.
pub const DEFAULT_MAX_PLAYLIST_BYTES: usize = 1 << 20;

/// Validated `[site.hls]`.
#[derive(Debug, Clone)]
pub struct HlsConfig {
    /// Rewrite playlists.
    pub rewrite: bool,
    /// Child auth mode.
    pub child_auth: ChildAuth,
    /// Session token key.
    pub session_secret: Secret,
    /// True when `session_secret` was configured; false for the random
    /// per-process default (another process cannot check such tokens).
    pub session_secret_configured: bool,
    /// Session lifetime for tokens without expiry.
    pub session_ttl_secs: u64,
    /// Playlist size bound.
    pub max_playlist_bytes: usize,
    /// Hosts whose absolute URLs get auth: the site's domains and `rewrite_hosts`.
    pub hosts: Vec<String>,
}

/// One random session secret per process, so reloads keep tokens valid.
fn process_session_secret() -> Option<Secret> {
    static SECRET: std::sync::OnceLock<Option<Secret>> = std::sync::OnceLock::new();
    SECRET
        .get_or_init(|| {
            let mut b = [0u8; 32];
            // Why no fallback: a guessable secret would let anyone forge session tokens.
            getrandom::getrandom(&mut b).ok()?;
            Some(Secret::new(hex::encode(b)))
        })
        .clone()
}

/// Which Host header the origin receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginHost {
    /// The origin URL's authority (default).
    #[default]
    Origin,
    /// The Host the client sent.
    Client,
}

// ---------------------------------------------------------------------------
// Stage 2: validated.

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listeners, certificates, limits.
    pub server: ServerConfig,
    /// Admin listener address.
    pub admin_listen: SocketAddr,
    /// Sites, in file order.
    pub sites: Vec<SiteConfig>,
    /// Vendor accounts.
    pub vendors: Vec<VendorConfig>,
    /// State directory for synced keys.
    pub state_dir: Option<PathBuf>,
}

/// Validated `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Plain listeners.
    pub listen: Vec<SocketAddr>,
    /// TLS listeners.
    pub tls_listen: Vec<SocketAddr>,
    /// Loaded certificates; the first one also serves clients without a matching SNI.
    pub certificates: Vec<Certificate>,
    /// Connection limits and timeouts.
    pub limits: Limits,
}

/// A loaded certificate and the SNI names it serves (lowercase).
#[derive(Debug, Clone)]
pub struct Certificate {
    /// SNI names, exact or `*.suffix`.
    pub server_names: Vec<String>,
    /// Chain and signing key.
    pub key: Arc<CertifiedKey>,
}

/// Limits applied to client connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to receive a request head.
    pub header_read_timeout: Duration,
    /// Time to complete a TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Longest request URI.
    pub max_uri_bytes: usize,
    /// Most concurrent connections.
    pub max_connections: usize,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Longest time a connection may have no request in flight.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECS),
            tls_handshake_timeout: Duration::from_secs(DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECS),
        }
    }
}

/// A validated site.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// Site id.
    pub id: String,
    /// Lowercase play domains.
    pub domains: Vec<String>,
    /// Where requests go.
    pub origin: Origin,
    /// Host header policy.
    pub origin_host_header: OriginHost,
    /// Origin connect timeout (TCP + TLS).
    pub connect_timeout: Duration,
    /// Origin response-head timeout.
    pub response_header_timeout: Duration,
    /// Idle pooled connection lifetime.
    pub pool_idle_timeout: Duration,
    /// Strip auth params before forwarding.
    pub strip_auth_params: bool,
    /// Status for denials.
    pub deny_status: StatusCode,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Leeway on every validity window.
    pub clock_skew_secs: u64,
    /// The scheme, configured.
    pub verifier: Arc<dyn Verifier>,
    /// Keys from the config file.
    pub keys: KeySet,
    /// Playlist rewriting.
    pub hls: HlsConfig,
    /// Close streams at token expiry plus this grace, if set.
    pub cut_at_expiry: Option<Duration>,
    /// CORS, if configured.
    pub cors: Option<CorsConfig>,
    /// Vendor account and domain supplying keys, if any.
    pub vendor: Option<(String, String)>,
    /// What a vendor-side "auth disabled" means here.
    pub on_vendor_disabled: OnVendorDisabled,
}

/// A validated origin URL.
#[derive(Debug, Clone)]
pub struct Origin {
    /// True for `https://`.
    pub tls: bool,
    /// `host[:port]` as written.
    pub authority: http::uri::Authority,
    /// Path prefix without trailing `/` (empty for none).
    pub base_path: String,
    /// PEM CA bundle replacing the webpki roots, for https origins.
    pub ca_file: Option<PathBuf>,
    /// The roots loaded from `ca_file` (once, when the config is validated).
    pub ca_roots: Option<Arc<rustls::RootCertStore>>,
}

// ---------------------------------------------------------------------------
// Errors.

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The text is not TOML.
    ///
    /// Why not toml's own message: it quotes the offending line, which may
    /// hold a key.
    #[error("{} is not valid TOML: line {line}, column {column}: {message}", Subject(.file.as_deref()))]
    Parse {
        /// The file, when loaded from one.
        file: Option<PathBuf>,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Unknown or mistyped keys, or validation problems; all are listed.
    /// Messages name keys, never the values configured.
    #[error("config has {} problem(s):\n{}", .0.len(), ProblemList(.0))]
    Invalid(Vec<Problem>),
    /// [`ConfigError::Invalid`] for a config read from `path`.
    #[error("config file {} has {} problem(s):\n{}", .path.display(), .problems.len(), ProblemList(.problems))]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// Every problem.
        problems: Vec<Problem>,
    },
}

/// "config" or "config file PATH".
struct Subject<'a>(Option<&'a Path>);

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "config file {}", p.display()),
            None => f.write_str("config"),
        }
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Loading.

impl Config {
    /// Reads and validates a config file, resolving `${ENV}` from the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::from_toml(&text, base, &|name| std::env::var(name).ok()).map_err(|e| match e {
            ConfigError::Invalid(problems) => ConfigError::InvalidFile {
                path: path.to_owned(),
                problems,
            },
            ConfigError::Parse {
                file: None,
                line,
                column,
                message,
            } => ConfigError::Parse {
                file: Some(path.to_owned()),
                line,
                column,
                message,
            },
            e => e,
        })
    }

    /// Parses and validates TOML text, reporting every structural and
    /// validation problem together (see [`parse`]). Relative file paths are
    /// resolved against `base_dir`; `${ENV}` references are looked up with
    /// `env`. No message quotes a configured value.
    pub fn from_toml(
        text: &str,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let parsed = parse::parse(text, env)?;
        let mut problems = parsed.problems;
        let Some(raw) = parsed.raw else {
            return Err(ConfigError::Invalid(problems));
        };
        let stage2 = match Config::validate(&raw, base_dir, env) {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => Vec::new(),
            Err(ConfigError::Invalid(p)) => p,
            Err(e) => return Err(e),
        };
        let values = parse::scalars(text, env);
        let stage2: Vec<Problem> = stage2
            .into_iter()
            .filter(|p| !parsed.repaired.iter().any(|r| is_under(&p.path, r)))
            .filter(|p| !problems.contains(p))
            .map(|p| Problem {
                message: parse::redact(&p.message, &values),
                path: p.path,
            })
            .collect();
        problems.extend(stage2);
        Err(ConfigError::Invalid(problems))
    }

    /// Stage 2: turns a raw config into a validated one, reporting every problem.
    pub fn validate(
        raw: &RawConfig,
        base_dir: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut ctx = Ctx::new(env);
        let server = validate_server(&raw.server, base_dir, &mut ctx);
        let admin_listen = parse_addr(
            &mut ctx,
            "admin.listen",
            raw.admin.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN),
        );
        let mut seen_addrs: HashMap<SocketAddr, String> = HashMap::new();
        let mut note_addr = |ctx: &mut Ctx<'_>, addr: SocketAddr, path: String| {
            if addr.port() == 0 {
                return; // ephemeral ports never collide
            }
            if let Some(prev) = seen_addrs.insert(addr, path.clone()) {
                ctx.problem(
                    &path,
                    format!(
                        "address {addr} is also used by {prev}; give each listener its own address"
                    ),
                );
            }
        };
        // Checked on the raw lists so a clash is reported even when another
        // server problem made `server` None.
        let listen_raw = raw.server.plain_listen();
        for (kind, list) in [
            ("listen", &listen_raw),
            ("tls_listen", &raw.server.tls_listen),
        ] {
            for (i, a) in list.iter().enumerate() {
                if let Ok(a) = a.parse() {
                    note_addr(&mut ctx, a, format!("server.{kind}[{i}]"));
                }
            }
        }
        if let Some(a) = admin_listen {
            note_addr(&mut ctx, a, "admin.listen".to_owned());
        }

        if raw.site.is_empty() {
            ctx.problem("site", "no [[site]] is configured; add at least one");
        }
        let mut sites = Vec::new();
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut domains: HashMap<String, usize> = HashMap::new();
        for (i, s) in raw.site.iter().enumerate() {
            let path = format!("site[{i}]");
            if let Some(prev) = ids.insert(s.id.as_str(), i) {
                ctx.problem(
                    &format!("{path}.id"),
                    format!("is already the id of site[{prev}]; ids must be unique"),
                );
            }
            if let Some(v) = &s.vendor {
                if !raw.vendor.iter().any(|a| &a.name == v) {
                    ctx.problem(
                        &format!("{path}.vendor"),
                        "no [[vendor]] has this name".to_owned(),
                    );
                }
            }
            for (j, d) in s.domains.iter().enumerate() {
                let d = d.to_ascii_lowercase();
                if let Some(prev) = domains.insert(d.clone(), i) {
                    if prev != i {
                        ctx.problem(
                            &format!("{path}.domains[{j}]"),
                            format!(
                                "is already a domain of site[{prev}]; a domain belongs to one site"
                            ),
                        );
                    } else {
                        ctx.problem(
                            &format!("{path}.domains[{j}]"),
                            "is listed twice".to_owned(),
                        );
                    }
                }
            }
            if let Some(site) = validate_site(s, &path, base_dir, &mut ctx) {
                sites.push(site);
            }
        }

        let mut vendors = Vec::new();
        let mut names = HashSet::new();
        for (i, v) in raw.vendor.iter().enumerate() {
            let path = format!("vendor[{i}]");
            if !names.insert(v.name.as_str()) {
                ctx.problem(
                    &format!("{path}.name"),
                    "is already the name of another vendor".to_owned(),
                );
            }
            if let Some(vc) = validate_vendor(v, &path, &mut ctx) {
                vendors.push(vc);
            }
        }
        for (i, s) in sites.iter().enumerate() {
            if let Some((v, _)) = &s.vendor {
                if let Some(vc) = vendors.iter().find(|vc| &vc.name == v) {
                    if raw.site[i].auth.is_some() && s.verifier.scheme() != vc.kind.scheme() {
                        ctx.problem(&format!("site[{i}].auth.scheme"), format!("the site's vendor supplies {} keys; use that scheme or drop [site.auth]", vc.kind.scheme()));
                    }
                }
            }
        }
        match (server, admin_listen) {
            (Some(server), Some(admin_listen)) if ctx.problem_count() == 0 => Ok(Config {
                server,
                admin_listen,
                sites,
                vendors,
                state_dir: raw.state_dir.as_ref().map(|d| resolve(base_dir, d)),
            }),
            _ => Err(ConfigError::Invalid(ctx.into_problems())),
        }
    }

    /// The site serving `host` (already lowercase, without port).
    pub fn site_for_host(&self, host: &str) -> Option<&SiteConfig> {
        self.sites
            .iter()
            .find(|s| s.domains.iter().any(|d| d == host))
    }
}

fn parse_addr(ctx: &mut Ctx<'_>, path: &str, s: &str) -> Option<SocketAddr> {
    match s.parse() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.problem(
                path,
                "is not an IP:port address (e.g. 0.0.0.0:8080 or [::]:8443)".to_owned(),
            );
            None
        }
    }
}

fn secs(ctx: &mut Ctx<'_>, path: &str, value: Option<u64>, default: u64, max: u64) -> Duration {
    let v = value.unwrap_or(default);
    if v == 0 || v > max {
        ctx.problem(path, format!("must be between 1 and {max} seconds"));
    }
    Duration::from_secs(v)
}

fn bounded(
    ctx: &mut Ctx<'_>,
    path: &str,
    value: Option<usize>,
    default: usize,
    min: usize,
    max: usize,
) -> usize {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        ctx.problem(path, format!("must be between {min} and {max}"));
    }
    v
}

fn validate_server(raw: &RawServer, base_dir: &Path, ctx: &mut Ctx<'_>) -> Option<ServerConfig> {
    let before = ctx.problem_count();
    let listen_raw = raw.plain_listen();
    let listen: Vec<SocketAddr> = listen_raw
        .iter()
        .enumerate()
        .filter_map(|(i, a)| parse_addr(ctx, &format!("server.listen[{i}]"), a))
        .collect();
    let tls_listen: Vec<SocketAddr> = raw
        .tls_listen
        .iter()
        .enumerate()
        .filter_map(|(i, a)| parse_addr(ctx, &format!("server.tls_listen[{i}]"), a))
        .collect();
    if listen_raw.is_empty() && raw.tls_listen.is_empty() {
        ctx.problem(
            "server.listen",
            "no listener: give server.listen or server.tls_listen at least one address",
        );
    }
    if !raw.tls_listen.is_empty() && raw.certificate.is_empty() {
        ctx.problem(
            "server.certificate",
            "server.tls_listen needs at least one [[server.certificate]]",
        );
    }
    let mut certificates = Vec::new();
    for (i, c) in raw.certificate.iter().enumerate() {
        let path = format!("server.certificate[{i}]");
        if let Some(cert) = load_certificate(c, &path, base_dir, ctx) {
            certificates.push(cert);
        }
    }
    let limits = Limits {
        header_read_timeout: secs(
            ctx,
            "server.header_read_timeout_secs",
            raw.header_read_timeout_secs,
            DEFAULT_HEADER_READ_TIMEOUT_SECS,
            300,
        ),
        tls_handshake_timeout: secs(
            ctx,
            "server.tls_handshake_timeout_secs",
            raw.tls_handshake_timeout_secs,
            DEFAULT_TLS_HANDSHAKE_TIMEOUT_SECS,
            300,
        ),
        max_header_bytes: bounded(
            ctx,
            "server.max_header_bytes",
            raw.max_header_bytes,
            DEFAULT_MAX_HEADER_BYTES,
            MIN_MAX_HEADER_BYTES,
            1 << 20,
        ),
        max_uri_bytes: bounded(
            ctx,
            "server.max_uri_bytes",
            raw.max_uri_bytes,
            DEFAULT_MAX_URI_BYTES,
            256,
            64 * 1024,
        ),
        max_connections: bounded(
            ctx,
            "server.max_connections",
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            1,
            1_000_000,
        ),
        shutdown_grace: secs(
            ctx,
            "server.shutdown_grace_secs",
            raw.shutdown_grace_secs,
            DEFAULT_SHUTDOWN_GRACE_SECS,
            3600,
        ),
        idle_timeout: secs(
            ctx,
            "server.idle_timeout_secs",
            raw.idle_timeout_secs,
            DEFAULT_IDLE_TIMEOUT_SECS,
            86_400,
        ),
    };
    if ctx.problem_count() > before {
        return None;
    }
    Some(ServerConfig {
        listen,
        tls_listen,
        certificates,
        limits,
    })
}

fn resolve(base_dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        base_dir.join(p)
    }
}

fn load_certificate(
    raw: &RawCertificate,
    path: &str,
    base_dir: &Path,
    ctx: &mut Ctx<'_>,
) -> Option<Certificate> {
    let mut names = Vec::new();
    if raw.server_names.is_empty() {
        ctx.problem(
            &format!("{path}.server_names"),
            "list the SNI names this certificate serves",
        );
    }
    for (i, n) in raw.server_names.iter().enumerate() {
        let n = n.to_ascii_lowercase();
        let bare = n.strip_prefix("*.").unwrap_or(&n);
        if !is_hostname(bare) {
            ctx.problem(
                &format!("{path}.server_names[{i}]"),
                "is not a host name or *.suffix".to_owned(),
            );
        }
        names.push(n);
    }
    let cert_file = resolve(base_dir, &raw.cert_file);
    let key_file = resolve(base_dir, &raw.key_file);
    let chain: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_file_iter(&cert_file).and_then(|it| it.collect());
    let chain = match chain {
        Ok(c) if !c.is_empty() => Some(c),
        Ok(_) => {
            ctx.problem(
                &format!("{path}.cert_file"),
                format!("{} holds no PEM certificate", cert_file.display()),
            );
            None
        }
        Err(e) => {
            ctx.problem(
                &format!("{path}.cert_file"),
                format!(
                    "cannot read PEM certificates from {}: {e}",
                    cert_file.display()
                ),
            );
            None
        }
    };
    let key = match PrivateKeyDer::from_pem_file(&key_file) {
        Ok(k) => match rustls::crypto::ring::sign::any_supported_type(&k) {
            Ok(k) => Some(k),
            Err(e) => {
                ctx.problem(
                    &format!("{path}.key_file"),
                    format!("unsupported private key in {}: {e}", key_file.display()),
                );
                None
            }
        },
        Err(e) => {
            ctx.problem(
                &format!("{path}.key_file"),
                format!(
                    "cannot read a PEM private key from {}: {e}",
                    key_file.display()
                ),
            );
            None
        }
    };
    let certified = CertifiedKey::new(chain?, key?);
    if let Err(e) = certified.keys_match() {
        ctx.problem(path, format!("the key does not match the certificate: {e}"));
        return None;
    }
    Some(Certificate {
        server_names: names,
        key: Arc::new(certified),
    })
}

fn validate_site(
    raw: &RawSite,
    path: &str,
    base_dir: &Path,
    ctx: &mut Ctx<'_>,
) -> Option<SiteConfig> {
    let before = ctx.problem_count();
    let id_ok = !raw.id.is_empty()
        && raw.id.len() <= 64
        && raw
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && !raw.id.starts_with('_');
    if !id_ok {
        ctx.problem(
            &format!("{path}.id"),
            "is not a usable site id; use 1–64 of a-z 0-9 _ - (not starting with _)",
        );
    }
    if raw.domains.is_empty() {
        ctx.problem(&format!("{path}.domains"), "list at least one play domain");
    }
    let mut domains = Vec::new();
    let mut seen = HashSet::new();
    for (i, d) in raw.domains.iter().enumerate() {
        let d = d.to_ascii_lowercase();
        if !is_hostname(&d) {
            ctx.problem(
                &format!("{path}.domains[{i}]"),
                "is not a host name (no scheme, port or path)".to_owned(),
            );
        }
        if seen.insert(d.clone()) {
            domains.push(d);
        }
    }
    let origin = validate_origin(raw, path, base_dir, ctx);
    let connect_timeout = secs(
        ctx,
        &format!("{path}.connect_timeout_secs"),
        raw.connect_timeout_secs,
        DEFAULT_CONNECT_TIMEOUT_SECS,
        300,
    );
    let response_header_timeout = secs(
        ctx,
        &format!("{path}.response_header_timeout_secs"),
        raw.response_header_timeout_secs,
        DEFAULT_RESPONSE_HEADER_TIMEOUT_SECS,
        3600,
    );
    let pool_idle_timeout = secs(
        ctx,
        &format!("{path}.pool_idle_timeout_secs"),
        raw.pool_idle_timeout_secs,
        DEFAULT_POOL_IDLE_TIMEOUT_SECS,
        3600,
    );
    let deny = raw.deny_status.unwrap_or(DEFAULT_DENY_STATUS);
    let deny_status = match StatusCode::from_u16(deny) {
        Ok(s) if s.is_client_error() => s,
        _ => {
            ctx.problem(
                &format!("{path}.deny_status"),
                "must be a 4xx status".to_owned(),
            );
            StatusCode::FORBIDDEN
        }
    };
    if raw.clock_skew_secs > 3600 {
        ctx.problem(
            &format!("{path}.clock_skew_secs"),
            "must be at most 3600 seconds",
        );
    }
    let mut trusted_proxies = Vec::new();
    for (i, t) in raw.trusted_proxies.iter().enumerate() {
        let parsed = t
            .parse::<ipnet::IpNet>()
            .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(n) => trusted_proxies.push(n),
            Err(_) => ctx.problem(
                &format!("{path}.trusted_proxies[{i}]"),
                "is not an IP address or CIDR (e.g. 10.0.0.0/8)".to_owned(),
            ),
        }
    }
    let common = Common {
        clock_skew_secs: raw.clock_skew_secs,
    };
    let built = match (&raw.auth, &raw.vendor) {
        (Some(table), _) => match RawScheme::from_table(table.clone(), &format!("{path}.auth")) {
            Ok(scheme) => scheme.build(&format!("{path}.auth"), common, ctx),
            Err(problems) => {
                ctx.extend(problems, str::to_owned);
                None
            }
        },
        // Keys come from the vendor; until the first sync nothing verifies.
        (None, Some(_)) => Some((
            Box::new(crate::auth::Pending) as Box<dyn Verifier>,
            KeySet::default(),
        )),
        (None, None) => {
            ctx.problem(
                &format!("{path}.auth"),
                "add a [site.auth] table, or `vendor` to take keys from a vendor account",
            );
            None
        }
    };
    let vendor_domain = match (&raw.vendor_domain, &raw.vendor) {
        (Some(d), Some(_)) => Some(d.to_ascii_lowercase()),
        (Some(_), None) => {
            ctx.problem(
                &format!("{path}.vendor_domain"),
                "only applies with `vendor`",
            );
            None
        }
        (None, _) => domains.first().cloned(),
    };
    if ctx.problem_count() > before {
        return None;
    }
    let (verifier, keys) = built?;
    let hls = validate_hls(&raw.hls, &domains, verifier.as_ref(), path, ctx)?;
    let cors = match &raw.cors {
        Some(c) => Some(validate_cors(c, path, ctx)?),
        None => None,
    };
    if raw.cut_grace_secs > 0 && !raw.cut_at_expiry {
        ctx.problem(
            &format!("{path}.cut_grace_secs"),
            "only applies with cut_at_expiry = true",
        );
        return None;
    }
    Some(SiteConfig {
        id: raw.id.clone(),
        domains,
        origin: origin?,
        origin_host_header: raw.origin_host_header,
        connect_timeout,
        response_header_timeout,
        pool_idle_timeout,
        strip_auth_params: raw.strip_auth_params.unwrap_or(true),
        deny_status,
        trusted_proxies,
        clock_skew_secs: raw.clock_skew_secs,
        verifier: Arc::from(verifier),
        keys,
        hls,
        cut_at_expiry: raw
            .cut_at_expiry
            .then(|| Duration::from_secs(raw.cut_grace_secs)),
        cors,
        vendor: raw.vendor.clone().zip(vendor_domain),
        on_vendor_disabled: raw.on_vendor_disabled,
    })
}

fn validate_vendor(raw: &RawVendor, path: &str, ctx: &mut Ctx<'_>) -> Option<VendorConfig> {
    let before = ctx.problem_count();
    if raw.name.is_empty()
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        ctx.problem(&format!("{path}.name"), "use 1 or more of A-Z a-z 0-9 - _");
    }
    let access_key = ctx.secret(&format!("{path}.access_key"), &raw.access_key);
    let secret_key = ctx.secret(&format!("{path}.secret_key"), &raw.secret_key);
    let endpoint = match &raw.endpoint {
        None => None,
        Some(e) => match e.parse::<Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some() =>
            {
                Some(u)
            }
            _ => {
                ctx.problem(
                    &format!("{path}.endpoint"),
                    "is not an http(s) URL".to_owned(),
                );
                None
            }
        },
    };
    let sync_interval = secs(
        ctx,
        &format!("{path}.sync_interval_secs"),
        raw.sync_interval_secs,
        DEFAULT_SYNC_INTERVAL_SECS,
        86_400,
    );
    let request_timeout = secs(
        ctx,
        &format!("{path}.request_timeout_secs"),
        raw.request_timeout_secs,
        DEFAULT_VENDOR_TIMEOUT_SECS,
        300,
    );
    let api_version = match (raw.kind, raw.api_version.as_deref()) {
        (VendorKind::Volcengine, v) => {
            let v = v.unwrap_or(VOLCENGINE_DEFAULT_API_VERSION);
            if !VOLCENGINE_API_VERSIONS.contains(&v) {
                ctx.problem(
                    &format!("{path}.api_version"),
                    format!(
                        "is not a DescribeAuth version; use one of {VOLCENGINE_API_VERSIONS:?}"
                    ),
                );
            }
            Some(v.to_owned())
        }
        // Kinds with a single API version.
        (_, None) => None,
        (_, Some(_)) => {
            ctx.problem(
                &format!("{path}.api_version"),
                "only applies to kind = \"volcengine\"; remove it",
            );
            None
        }
    };
    if ctx.problem_count() > before {
        return None;
    }
    Some(VendorConfig {
        api_version,
        name: raw.name.clone(),
        kind: raw.kind,
        access_key: access_key?,
        secret_key: secret_key?,
        endpoint,
        sync_interval,
        request_timeout,
    })
}

fn validate_cors(raw: &RawCors, path: &str, ctx: &mut Ctx<'_>) -> Option<CorsConfig> {
    let before = ctx.problem_count();
    if raw.allow_origins.is_empty() {
        ctx.problem(
            &format!("{path}.cors.allow_origins"),
            "list origins (https://player.example.com) or \"*\"",
        );
    }
    let mut any = false;
    let mut origins = Vec::new();
    for (i, o) in raw.allow_origins.iter().enumerate() {
        if o == "*" {
            any = true;
            continue;
        }
        let lower = o.to_ascii_lowercase();
        let ok = lower
            .strip_prefix("https://")
            .or_else(|| lower.strip_prefix("http://"))
            .is_some_and(|rest| {
                !rest.is_empty() && !rest.contains('/') && normalize_authority(rest)
            });
        if ok {
            origins.push(lower);
        } else {
            ctx.problem(&format!("{path}.cors.allow_origins[{i}]"), "is not an origin like https://player.example.com (scheme, host, optional port; no path)".to_owned());
        }
    }
    let max_age_secs = raw.max_age_secs.unwrap_or(DEFAULT_CORS_MAX_AGE_SECS);
    if max_age_secs > 86_400 {
        ctx.problem(
            &format!("{path}.cors.max_age_secs"),
            "must be at most 86400",
        );
    }
    (ctx.problem_count() == before).then_some(CorsConfig {
        any,
        origins,
        max_age_secs,
    })
}

/// True for `host[:port]` with a valid host.
fn normalize_authority(a: &str) -> bool {
    crate::host::normalize_host(a).is_some_and(|h| is_hostname(&h))
}

fn validate_hls(
    raw: &RawHls,
    domains: &[String],
    verifier: &dyn Verifier,
    path: &str,
    ctx: &mut Ctx<'_>,
) -> Option<HlsConfig> {
    let before = ctx.problem_count();
    let child_auth = raw.child_auth.unwrap_or_default();
    // A vendor-only site has no scheme until the first sync (`pending`): the
    // rewriter then copies whatever params the synced scheme names.
    if child_auth == ChildAuth::Propagate
        && verifier.auth_params().is_empty()
        && verifier.scheme() != "pending"
    {
        ctx.problem(&format!("{path}.hls.child_auth"), format!("`propagate` needs a scheme with auth in the query; {} carries it in the path: use `session`", verifier.scheme()));
    }
    let session_secret = match &raw.session_secret {
        Some(s) => ctx.secret(&format!("{path}.hls.session_secret"), s),
        None => {
            let secret = process_session_secret();
            if secret.is_none() {
                ctx.problem(
                    &format!("{path}.hls.session_secret"),
                    "the OS gave no randomness for a session secret; set session_secret",
                );
            }
            secret
        }
    };
    let ttl = raw.session_ttl_secs.unwrap_or(DEFAULT_SESSION_TTL_SECS);
    if ttl == 0 || ttl > 30 * 86_400 {
        ctx.problem(
            &format!("{path}.hls.session_ttl_secs"),
            "must be between 1 and 2592000 seconds",
        );
    }
    let max = raw.max_playlist_bytes.unwrap_or(DEFAULT_MAX_PLAYLIST_BYTES);
    if !(1024..=64 << 20).contains(&max) {
        ctx.problem(
            &format!("{path}.hls.max_playlist_bytes"),
            "must be between 1024 and 67108864",
        );
    }
    let mut hosts = domains.to_vec();
    for (i, h) in raw.rewrite_hosts.iter().enumerate() {
        let h = h.to_ascii_lowercase();
        if is_hostname(&h) {
            hosts.push(h);
        } else {
            ctx.problem(
                &format!("{path}.hls.rewrite_hosts[{i}]"),
                "is not a host name".to_owned(),
            );
        }
    }
    if ctx.problem_count() > before {
        return None;
    }
    Some(HlsConfig {
        rewrite: raw.rewrite_playlists.unwrap_or(true),
        child_auth,
        session_secret: session_secret?,
        session_secret_configured: raw.session_secret.is_some(),
        session_ttl_secs: ttl,
        max_playlist_bytes: max,
        hosts,
    })
}

fn validate_origin(
    raw: &RawSite,
    path: &str,
    base_dir: &Path,
    ctx: &mut Ctx<'_>,
) -> Option<Origin> {
    let p = format!("{path}.origin");
    let uri: Uri = match raw.origin.parse() {
        Ok(u) => u,
        Err(e) => {
            ctx.problem(&p, format!("is not a URL: {e}"));
            return None;
        }
    };
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            ctx.problem(&p, "must start with http:// or https://".to_owned());
            return None;
        }
    };
    let Some(authority) = uri.authority().cloned() else {
        ctx.problem(&p, "has no host".to_owned());
        return None;
    };
    if authority.as_str().contains('@') {
        ctx.problem(&p, "must not contain user info (user:pass@)");
        return None;
    }
    if uri.query().is_some() {
        ctx.problem(&p, "must not have a query string");
        return None;
    }
    let base_path = uri.path().trim_end_matches('/').to_owned();
    let ca_file = raw.origin_ca_file.as_ref().map(|f| resolve(base_dir, f));
    let mut ca_roots = None;
    if let Some(f) = &ca_file {
        if !tls {
            ctx.problem(
                &format!("{path}.origin_ca_file"),
                "only applies to https:// origins; remove it or use https",
            );
        } else {
            match load_ca_file(f) {
                Ok(roots) => ca_roots = Some(Arc::new(roots)),
                Err(reason) => ctx.problem(
                    &format!("{path}.origin_ca_file"),
                    format!("cannot load origin CA file {}: {reason}", f.display()),
                ),
            }
        }
    }
    Some(Origin {
        tls,
        authority,
        base_path,
        ca_file,
        ca_roots,
    })
}

/// Loads a PEM CA bundle; every certificate in it must be usable as a root.
fn load_ca_file(path: &Path) -> Result<rustls::RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if added == 0 || ignored > 0 {
        return Err(format!("{added} usable and {ignored} unusable certificate(s); it must hold only CA certificates in PEM"));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests;
