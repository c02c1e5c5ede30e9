//! `[[site]]`: play domains, origin, auth scheme, HLS rewriting, CORS.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::{StatusCode, Uri};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;

use super::*;
use crate::auth::{Common, RawScheme, Verifier};
use crate::keys::{KeySet, Secret};

/// Seconds to establish a TCP (and TLS) connection to the origin.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 5;
/// Seconds the origin has to send its response head.
pub const DEFAULT_RESPONSE_HEADER_TIMEOUT_SECS: u64 = 15;
/// Longest wait for the next byte of an origin body (nginx's
/// `proxy_read_timeout`): an origin that stalls mid-body must not hold the
/// viewer and both connections forever.
pub const DEFAULT_ORIGIN_READ_TIMEOUT_SECS: u64 = 60;
/// Seconds an idle pooled origin connection is kept.
pub const DEFAULT_POOL_IDLE_TIMEOUT_SECS: u64 = 60;
/// Status for denied requests.
pub const DEFAULT_DENY_STATUS: u16 = 403;

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
    /// See [`DEFAULT_ORIGIN_READ_TIMEOUT_SECS`].
    pub origin_read_timeout_secs: Option<u64>,
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
    /// Status for genuine but expired URLs, 400–499 (nginx setups answer
    /// 410). Default: `deny_status`.
    pub expired_status: Option<u16>,
    /// Seconds of clock skew tolerated past a URL's expiry. Default 0.
    #[serde(default)]
    pub clock_skew_secs: u64,
    /// Proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed for IP-bound tokens.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Accept `;` path parameters (only for an origin that does not strip
    /// them). Default false: `bad_path`.
    #[serde(default)]
    pub allow_path_params: bool,
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
    /// `[site.push]`: the keys publishers sign with (media-server
    /// `on_publish` hooks), verified with the site's scheme.
    pub push: Option<RawPush>,
}

/// `[site.push]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPush {
    /// Push keys (Tencent's push key, Volcengine's `push` scene key),
    /// primary first; `${ENV}` allowed.
    pub keys: Vec<String>,
}

/// `[site.cors]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// `["*"]` or origins like `https://player.example.com`.
    pub allow_origins: Vec<String>,
    /// Preflight cache time. Default 600.
    pub max_age_secs: Option<u64>,
    /// Let pages send credentials (cookies carrying tokens). Not with `*`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Request headers pages may send (preflight answer). Default: `Range`,
    /// `If-None-Match`, `If-Modified-Since`.
    pub allow_headers: Option<Vec<String>>,
}

/// Request headers a page may send by default.
pub const DEFAULT_CORS_ALLOW_HEADERS: &[&str] = &["Range", "If-None-Match", "If-Modified-Since"];

/// Default preflight cache time.
pub const DEFAULT_CORS_MAX_AGE_SECS: u64 = 600;

/// Validated `[site.cors]`.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// `*` was given.
    pub any: bool,
    /// Allowed origins, canonical (lowercase, default port dropped).
    pub origins: Vec<String>,
    /// Preflight cache time.
    pub max_age_secs: u64,
    /// `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// The preflight's `Access-Control-Allow-Headers`.
    pub allow_headers: String,
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
    /// The proxy's own short tokens, one per child, each opening exactly the
    /// path the playlist referenced.
    #[default]
    Session,
    /// The proxy's own short tokens scoped to the playlist's directory
    /// (opt-in: one token opens every HLS file there; never `/`).
    SessionDirectory,
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
/// Shortest `hls.session_secret` accepted.
pub const MIN_SESSION_SECRET_CHARS: usize = 16;

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
    /// Longest gap between two reads of an origin body.
    pub origin_read_timeout: Duration,
    /// Idle pooled connection lifetime.
    pub pool_idle_timeout: Duration,
    /// Strip auth params before forwarding.
    pub strip_auth_params: bool,
    /// Status for denials.
    pub deny_status: StatusCode,
    /// Status for `expired` denials.
    pub expired_status: StatusCode,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `;` path parameters accepted.
    pub allow_path_params: bool,
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
    /// Keys publishers sign with (`[site.push]`); empty: publishing is
    /// never allowed by a hook.
    pub push_keys: KeySet,
}

/// A validated origin URL.
#[derive(Debug, Clone)]
pub struct Origin {
    /// True for `https://`.
    pub tls: bool,
    /// `host[:port]` as written.
    pub authority: http::uri::Authority,
    /// The same as a `Host` header value, built once (every request that
    /// sends the origin's Host clones it instead of copying the text).
    pub host_value: http::HeaderValue,
    /// Path prefix without trailing `/` (empty for none).
    pub base_path: String,
    /// PEM CA bundle replacing the webpki roots, for https origins.
    pub ca_file: Option<PathBuf>,
    /// The roots loaded from `ca_file` (once, when the config is validated).
    pub ca_roots: Option<Arc<rustls::RootCertStore>>,
}

pub(super) fn validate_site(
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
    let origin_read_timeout = secs(
        ctx,
        &format!("{path}.origin_read_timeout_secs"),
        raw.origin_read_timeout_secs,
        DEFAULT_ORIGIN_READ_TIMEOUT_SECS,
        3600,
    );
    let pool_idle_timeout = secs(
        ctx,
        &format!("{path}.pool_idle_timeout_secs"),
        raw.pool_idle_timeout_secs,
        DEFAULT_POOL_IDLE_TIMEOUT_SECS,
        3600,
    );
    let status_4xx = |ctx: &mut Ctx<'_>, field: &str, code: u16| match StatusCode::from_u16(code) {
        Ok(s) if s.is_client_error() => s,
        _ => {
            ctx.problem(&format!("{path}.{field}"), "must be a 4xx status");
            StatusCode::FORBIDDEN
        }
    };
    let deny_status = status_4xx(
        ctx,
        "deny_status",
        raw.deny_status.unwrap_or(DEFAULT_DENY_STATUS),
    );
    let expired_status = match raw.expired_status {
        Some(code) => status_4xx(ctx, "expired_status", code),
        None => deny_status,
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
            Ok(n) => {
                if n.prefix_len() == 0 {
                    // Valid, but then any client may name the address its
                    // tokens are checked against, and is exempt from the
                    // cancelled-requests close.
                    ctx.warn(
                        &format!("{path}.trusted_proxies[{i}]"),
                        "trusts every address: any client's X-Forwarded-For then names the address IP-bound tokens are checked against; list your proxies' own ranges",
                    );
                }
                trusted_proxies.push(n);
            }
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
    let push_keys = validate_push(raw.push.as_ref(), path, ctx)?;
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
        origin_read_timeout,
        pool_idle_timeout,
        strip_auth_params: raw.strip_auth_params.unwrap_or(true),
        deny_status,
        expired_status,
        trusted_proxies,
        allow_path_params: raw.allow_path_params,
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
        push_keys,
    })
}

/// `[site.push]`: at least one key, each a secret. Why a table of its own
/// rather than a key of `[site.auth]`: a vendor site has no `[site.auth]`,
/// and its push keys (Tencent's is not in any Describe answer) still come
/// from the config.
fn validate_push(raw: Option<&RawPush>, path: &str, ctx: &mut Ctx<'_>) -> Option<KeySet> {
    let Some(raw) = raw else {
        return Some(KeySet::default());
    };
    let before = ctx.problem_count();
    if raw.keys.is_empty() {
        ctx.problem(
            &format!("{path}.push.keys"),
            "list at least one push key, or drop [site.push]",
        );
    }
    let keys: Vec<Secret> = raw
        .keys
        .iter()
        .enumerate()
        .filter_map(|(i, k)| ctx.secret(&format!("{path}.push.keys[{i}]"), k))
        .collect();
    (ctx.problem_count() == before).then(|| KeySet::new(keys))
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
        match crate::host::canonical_origin(o) {
            Some(c) => origins.push(c),
            None => ctx.problem(
                &format!("{path}.cors.allow_origins[{i}]"),
                "is not an origin like https://player.example.com (scheme, host, optional port; no path)",
            ),
        }
    }
    if any && raw.allow_credentials {
        ctx.problem(
            &format!("{path}.cors.allow_credentials"),
            "cannot be used with \"*\" (browsers refuse it); list the origins",
        );
    }
    let mut allow_headers = Vec::new();
    for (i, h) in raw.allow_headers.iter().flatten().enumerate() {
        if http::HeaderName::from_bytes(h.as_bytes()).is_ok() {
            allow_headers.push(h.clone());
        } else {
            ctx.problem(
                &format!("{path}.cors.allow_headers[{i}]"),
                "is not a header name",
            );
        }
    }
    let allow_headers = if raw.allow_headers.is_some() {
        allow_headers.join(", ")
    } else {
        DEFAULT_CORS_ALLOW_HEADERS.join(", ")
    };
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
        allow_credentials: raw.allow_credentials,
        allow_headers,
    })
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
        Some(s) => {
            let at = format!("{path}.hls.session_secret");
            ctx.secret(&at, s).filter(|secret| {
                // Why: it keys every child token's MAC; a short one could
                // be searched for from one token.
                let long = secret.expose().chars().count() >= MIN_SESSION_SECRET_CHARS;
                if !long {
                    ctx.problem(&at, format!("must be at least {MIN_SESSION_SECRET_CHARS} characters (a random one: `openssl rand -hex 32`)"));
                }
                long
            })
        }
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
    // `http::Uri` takes `host:abc` (and `host:99999`) and gives no port:
    // it would be port 80. The text after the host must be a port.
    let after_host = authority
        .as_str()
        .rsplit_once(']')
        .map_or(authority.as_str(), |(_, rest)| rest);
    if let Some((_, port)) = after_host.rsplit_once(':') {
        if !port.bytes().all(|b| b.is_ascii_digit()) || !port.parse::<u16>().is_ok_and(|p| p > 0) {
            ctx.problem(&p, "has a port that is not a number from 1 to 65535");
            return None;
        }
    }
    // The origin pool needs the host as a TLS server name: found here, not
    // when the proxy starts.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if tls && rustls::pki_types::ServerName::try_from(host).is_err() {
        ctx.problem(&p, "has a host that is not a valid TLS server name");
        return None;
    }
    let Ok(host_value) = http::HeaderValue::from_str(authority.as_str()) else {
        ctx.problem(&p, "has a host that cannot be sent as a Host header");
        return None;
    };
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
                    format!("cannot load the CA file: {reason}"),
                ),
            }
        }
    }
    Some(Origin {
        tls,
        authority,
        host_value,
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
