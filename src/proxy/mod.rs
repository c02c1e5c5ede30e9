//! The proxy: routing snapshot, the request phases, listeners and forwarding.
//!
//! [`handle`] is the story of one request:
//! route → check path → authenticate → forward → filter response → log.

pub mod body;
pub mod cors;
pub mod hls;
pub mod listener;
pub mod path;
pub mod respond;
pub mod tls;
pub mod upstream;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::header::{
    HeaderValue, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE,
    ETAG, HOST, LAST_MODIFIED, RANGE,
};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use prometheus::IntCounter;
use tracing::{info, warn};

use crate::auth::session::{self, SessionGrant, SESSION_PARAM};
use crate::auth::{query_param, strip_params, Decision, DenyReason, RequestView};
use crate::config::{ChildAuth, Config, Limits, SiteConfig};
use crate::keys::KeySet;
use crate::metrics::{self, Metrics};
use crate::sync::SyncedAuth;
use body::{Counted, ProxyBody};
use http_body_util::BodyExt;
use respond::Stop;
use upstream::{ClientSide, OriginClient};

/// One site as served: its validated config, keys and pooled origin client.
pub struct Site {
    /// Validated config (includes the verifier).
    pub config: SiteConfig,
    /// The scheme verifying this site now (configured, or from the vendor).
    pub verifier: Arc<dyn crate::auth::Verifier>,
    /// Keys currently valid for this site.
    pub keys: KeySet,
    /// True once the site can verify (it has keys, or its vendor answered).
    pub ready: bool,
    /// `requests_total{site, allowed, none}` and its duration, resolved once.
    allowed: IntCounter,
    allowed_duration: prometheus::Histogram,
    /// False while no key verifies or the vendor's "auth disabled" denies:
    /// HLS session tokens are refused then too.
    pub accepts_sessions: bool,
    client: OriginClient,
    bytes: IntCounter,
    stream_errors: IntCounter,
    streams_cut: IntCounter,
    /// Query params removed before forwarding: the scheme's and the session token.
    strip_params: Vec<String>,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site").field("id", &self.config.id).finish()
    }
}

/// Everything a request needs from the config, immutable. A request loads the
/// current snapshot once and uses it to the end; a reload stores a new one.
#[derive(Debug)]
pub struct Snapshot {
    by_host: HashMap<String, Arc<Site>>,
    sites: Vec<Arc<Site>>,
    /// Client connection limits.
    pub limits: Limits,
    /// TLS certificates by SNI.
    pub certs: tls::CertTable,
}

/// Why a snapshot could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
#[error("site {site}")]
pub struct SnapshotError {
    site: String,
    source: upstream::ClientBuildError,
}

impl Snapshot {
    /// Builds the snapshot: one origin client per site, metric handles resolved.
    ///
    /// Sites that take keys from a vendor use the last good `synced` answer
    /// (its keys first, then any static keys); before the first answer they
    /// verify with their static config, or deny with `no_keys`.
    ///
    /// `same_config_as`: a snapshot built from this very config, whose origin
    /// clients (and their pooled connections) are reused — a key sync must
    /// not drop every origin connection.
    pub fn build(
        config: &Config,
        metrics: &Metrics,
        synced: &crate::publish::Synced,
        same_config_as: Option<&Snapshot>,
    ) -> Result<Snapshot, SnapshotError> {
        let mut by_host = HashMap::new();
        let mut sites = Vec::new();
        for sc in &config.sites {
            let reused = same_config_as
                .and_then(|prev| prev.sites.iter().find(|s| s.config.id == sc.id))
                .map(|s| s.client.clone());
            let client = match reused {
                Some(c) => c,
                None => upstream::build_client(sc).map_err(|source| SnapshotError {
                    site: sc.id.clone(),
                    source,
                })?,
            };
            let (verifier, keys, ready) = match sc.vendor.as_ref().and_then(|k| synced.get(k)) {
                Some(SyncedAuth::Enabled { verifier, keys }) => {
                    let mut all: Vec<_> = keys.iter().cloned().collect();
                    all.extend(sc.keys.iter().cloned());
                    (verifier.clone(), KeySet::new(all), true)
                }
                Some(SyncedAuth::Disabled) => {
                    let allow = sc.on_vendor_disabled == crate::config::OnVendorDisabled::Allow;
                    (
                        Arc::new(crate::auth::VendorDisabled { allow })
                            as Arc<dyn crate::auth::Verifier>,
                        KeySet::default(),
                        true,
                    )
                }
                None => (sc.verifier.clone(), sc.keys.clone(), !sc.keys.is_empty()),
            };
            metrics
                .site_keys
                .with_label_values(&[&sc.id])
                .set(keys.len() as i64);
            let accepts_sessions = match sc.vendor.as_ref().and_then(|k| synced.get(k)) {
                Some(SyncedAuth::Disabled) => {
                    sc.on_vendor_disabled == crate::config::OnVendorDisabled::Allow
                }
                _ => !keys.is_empty(),
            };
            let site = Arc::new(Site {
                ready,
                accepts_sessions,
                allowed: metrics.requests.with_label_values(&[
                    &sc.id,
                    metrics::outcome::ALLOWED,
                    "none",
                ]),
                allowed_duration: metrics
                    .request_duration
                    .with_label_values(&[&sc.id, metrics::outcome::ALLOWED]),
                strip_params: verifier
                    .auth_params()
                    .iter()
                    .cloned()
                    .chain(std::iter::once(SESSION_PARAM.to_owned()))
                    .collect(),
                verifier,
                keys,
                client,
                bytes: metrics.site_bytes(&sc.id),
                stream_errors: metrics
                    .upstream_errors
                    .with_label_values(&[&sc.id, "stream"]),
                streams_cut: metrics.streams_cut.with_label_values(&[&sc.id]),
                config: sc.clone(),
            });
            for d in &sc.domains {
                by_host.insert(d.clone(), site.clone());
            }
            sites.push(site);
        }
        Ok(Snapshot {
            by_host,
            sites,
            limits: config.server.limits,
            certs: tls::CertTable::new(&config.server.certificates),
        })
    }

    /// The site serving `host` (lowercase, no port).
    pub fn site(&self, host: &str) -> Option<&Arc<Site>> {
        self.by_host.get(host)
    }

    /// All sites, in config order.
    pub fn sites(&self) -> &[Arc<Site>] {
        &self.sites
    }
}

/// State shared by every connection.
pub struct Shared {
    /// The current snapshot.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// Metrics registry and handles.
    pub metrics: Metrics,
}

/// Per-connection facts.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Client address.
    pub remote: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

pub use crate::host::normalize_host;
pub use crate::time::unix_now;

/// The host a request is for: HTTP/2 `:authority` or absolute-form URI
/// first, else the Host header. Returns (as sent, normalized: lowercase, no port).
pub fn request_host<B>(req: &Request<B>) -> Option<(String, String)> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str().to_owned(),
        None => req.headers().get(HOST)?.to_str().ok()?.to_owned(),
    };
    let norm = normalize_host(&raw)?;
    Some((raw, norm))
}

/// The client address used for IP-bound tokens: the peer, unless the peer is
/// a trusted proxy, in which case the right-most `X-Forwarded-For` entry that
/// is not itself a trusted proxy.
///
/// Why right-most: entries left of the last trusted hop were written by the
/// client and can be forged.
pub fn client_ip(peer: IpAddr, headers: &http::HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let mut current = peer.to_canonical();
    if !is_trusted(&current) {
        return current;
    }
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            return current;
        };
        current = ip.to_canonical();
        if !is_trusted(&current) {
            return current;
        }
    }
    current
}

/// Serves one request. Never fails: every refusal or failure becomes a
/// response in `respond`, and is logged and counted here.
pub async fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let snapshot = shared.snapshot.load_full();
    // Only kept when the access log is on: no per-request copies otherwise.
    let access_log = tracing::enabled!(target: "streamguard::access", tracing::Level::INFO);
    let logged = access_log.then(|| (req.method().clone(), req.uri().path().to_owned()));
    let origin = req.headers().get(http::header::ORIGIN).cloned();
    let (site, result) = serve(&shared, &snapshot, conn, req).await;
    let site_id = site
        .as_ref()
        .map_or(metrics::UNKNOWN_SITE, |s| s.config.id.as_str());
    let (response, outcome, reason) = match result {
        Ok(resp) => (resp, metrics::outcome::ALLOWED, "none"),
        Err(stop) => {
            let (outcome, reason) = stop.labels();
            if let Stop::Upstream(e) = &stop {
                shared
                    .metrics
                    .upstream_errors
                    .with_label_values(&[site_id, e.kind()])
                    .inc();
                warn!(site = site_id, error = %e, "origin request failed");
            }
            let deny_status = site
                .as_ref()
                .map_or(StatusCode::FORBIDDEN, |s| s.config.deny_status);
            (stop.into_response(deny_status), outcome, reason)
        }
    };
    let mut response = response;
    if let Some(c) = site.as_ref().and_then(|s| s.config.cors.as_ref()) {
        cors::decorate(c, origin.as_ref(), &mut response);
    }
    let elapsed = started.elapsed();
    match (&site, outcome == metrics::outcome::ALLOWED) {
        // The common case uses handles resolved when the snapshot was built.
        (Some(s), true) => {
            s.allowed.inc();
            s.allowed_duration.observe(elapsed.as_secs_f64());
        }
        _ => {
            let m = &shared.metrics;
            m.requests
                .with_label_values(&[site_id, outcome, reason])
                .inc();
            m.request_duration
                .with_label_values(&[site_id, outcome])
                .observe(elapsed.as_secs_f64());
        }
    }
    // Why only the path: the query carries signatures.
    if let Some((method, path)) = &logged {
        info!(
            target: "streamguard::access",
            site = site_id,
            client = %conn.remote.ip(),
            %method,
            // Schemes with auth in the path (Alibaba Cloud B/C) log it without.
            path = %site.as_ref().map_or(path.as_str(), |s| s.verifier.origin_path(path)),
            status = response.status().as_u16(),
            outcome,
            reason,
            ms = elapsed.as_secs_f64() * 1000.0,
        );
    }
    response
}

/// The phases. Returns the site (once routed) and the response or why there is none.
async fn serve(
    shared: &Shared,
    snapshot: &Snapshot,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> (Option<Arc<Site>>, Result<Response<ProxyBody>, Stop>) {
    // 1. Route: Host → site.
    let Some((host_header, host)) = request_host(&req) else {
        return (None, Err(Stop::MissingHost));
    };
    let Some(site) = snapshot.site(&host).cloned() else {
        return (None, Err(Stop::NoSiteForHost));
    };
    let result = forward_for_site(shared, snapshot, &site, conn, req, &host_header, &host).await;
    (Some(site), result)
}

/// What authorized a request.
enum Grant {
    /// The site's scheme accepted the URL.
    Scheme {
        expires_at: Option<u64>,
        forward_path: Option<String>,
        bound_ip: Option<IpAddr>,
    },
    /// An HLS session token issued by this proxy accepted it.
    Session(SessionGrant),
}

async fn forward_for_site(
    shared: &Shared,
    snapshot: &Snapshot,
    site: &Site,
    conn: ConnInfo,
    mut req: Request<Incoming>,
    host_header: &str,
    host: &str,
) -> Result<Response<ProxyBody>, Stop> {
    // 2. Check the request: a play method (or a CORS preflight), a bounded
    //    and unambiguous target.
    let cfg = &site.config;
    if req.method() == Method::OPTIONS {
        if let Some(c) = cfg
            .cors
            .as_ref()
            .filter(|_| cors::is_preflight(req.headers()))
        {
            return Ok(cors::preflight(c, req.headers()));
        }
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(Stop::MethodNotAllowed);
    }
    let pq_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if pq_len > snapshot.limits.max_uri_bytes {
        return Err(Stop::UriTooLong);
    }
    path::validate(req.uri().path())?;

    // 3. Authenticate: an HLS session token, or the site's scheme — each a
    //    pure decision over (request, keys, now).
    let now = unix_now();
    let peer = conn.remote.ip().to_canonical();
    let peer_trusted = cfg.trusted_proxies.iter().any(|n| n.contains(&peer));
    let session_mode = cfg.hls.rewrite && cfg.hls.child_auth == ChildAuth::Session;
    let session_token = if session_mode {
        query_param(req.uri().query(), SESSION_PARAM)
            .map_err(|_| Stop::Denied(DenyReason::MalformedToken))?
    } else {
        None
    };
    let grant = match session_token {
        Some(token) => {
            // A site that cannot verify right now (no keys yet, or its vendor
            // switched auth off and the site denies) honours no session either.
            if !site.accepts_sessions {
                return Err(Stop::Denied(if site.ready {
                    DenyReason::AuthDisabled
                } else {
                    DenyReason::NoKeys
                }));
            }
            // Scopes are origin paths: for schemes with auth in the path a
            // child may be addressed with or without those segments.
            let g = session::verify(
                &cfg.hls.session_secret,
                &cfg.id,
                token,
                site.verifier.origin_path(req.uri().path()),
                Some(client_ip(peer, req.headers(), &cfg.trusted_proxies)),
                now,
                cfg.clock_skew_secs,
            )
            .map_err(Stop::Denied)?;
            Grant::Session(g)
        }
        None => {
            let view = RequestView {
                host,
                path: req.uri().path(),
                query: req.uri().query(),
                client_ip: Some(client_ip(peer, req.headers(), &cfg.trusted_proxies)),
                headers: Some(req.headers()),
            };
            let verdict = site.verifier.verify(&view, &site.keys, now);
            if let Decision::Deny(reason) = verdict.decision {
                return Err(Stop::Denied(reason));
            }
            Grant::Scheme {
                expires_at: verdict.expires_at,
                forward_path: verdict.forward_path,
                bound_ip: verdict.bound_ip,
            }
        }
    };

    // 4. Forward: exactly the verified path (minus in-path auth for schemes
    //    that carry it there); the query minus auth params if asked.
    let uri = req.uri().clone();
    let query = match uri.query() {
        Some(q) if cfg.strip_auth_params => strip_params(q, &site.strip_params),
        Some(q) if session_mode => strip_params(q, &[SESSION_PARAM]),
        Some(q) => Some(q.to_owned()),
        None => None,
    };
    let path = match &grant {
        Grant::Scheme {
            forward_path: Some(p),
            ..
        } => {
            // A scheme-derived path obeys the same rules as a client's.
            path::validate(p)?;
            p.as_str()
        }
        Grant::Scheme {
            forward_path: None, ..
        } => uri.path(),
        Grant::Session(_) => {
            let p = site.verifier.origin_path(uri.path());
            path::validate(p)?;
            p
        }
    };
    let path_and_query = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let wants_rewrite = cfg.hls.rewrite && req.method() == Method::GET;
    if wants_rewrite {
        // Playlists are read whole and rewritten: ask for plain bytes (a
        // playlist may be recognised only by its Content-Type), and all of
        // them when the path says playlist.
        req.headers_mut()
            .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        if hls::is_playlist(None, uri.path()) {
            req.headers_mut().remove(RANGE);
        }
    }
    let client_side = ClientSide {
        remote: conn.remote,
        tls: conn.tls,
        host_header,
        peer_trusted,
    };
    let upstream_req =
        upstream::prepare(req, cfg, &path_and_query, client_side).map_err(Stop::Internal)?;
    let mut resp = match tokio::time::timeout(
        cfg.response_header_timeout,
        site.client.request(upstream_req),
    )
    .await
    {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => return Err(upstream::classify(e).into()),
        Err(_) => return Err(upstream::UpstreamError::Timeout("response head").into()),
    };

    // 5. Filter the response: playlists are rewritten so their children
    //    carry auth; everything else streams through, counted.
    upstream::filter_response(&mut resp);
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if wants_rewrite
        && resp.status() == StatusCode::OK
        && hls::is_playlist(content_type, uri.path())
    {
        let (params, expires_at) = child_auth(site, &grant, &uri, now)?;
        return rewrite_playlist(shared, site, resp, &params, expires_at, now).await;
    }
    let active = shared.metrics.active_streams.clone();
    let errors = site.stream_errors.clone();
    let resp = resp.map(|b| Counted::new(b, site.bytes.clone(), errors, active).boxed_unsync());
    // 6. Optionally end long-lived responses when their token expires.
    let token_expiry = match &grant {
        Grant::Scheme { expires_at, .. } => *expires_at,
        Grant::Session(g) => Some(g.expires_at),
    };
    match (cfg.cut_at_expiry, token_expiry) {
        (Some(grace), Some(exp)) => {
            let left =
                Duration::from_secs(exp.saturating_add(cfg.clock_skew_secs).saturating_sub(now))
                    + grace;
            let cut = site.streams_cut.clone();
            Ok(resp.map(|b| body::Deadline::new(b, left, cut).boxed_unsync()))
        }
        _ => Ok(resp),
    }
}

/// The query params children of a playlist get, and until when they work:
/// never later than the playlist's own token, and at most
/// `session_ttl_secs` from now.
fn child_auth(
    site: &Site,
    grant: &Grant,
    uri: &http::Uri,
    now: u64,
) -> Result<(String, u64), Stop> {
    let hls = &site.config.hls;
    let cap = now.saturating_add(hls.session_ttl_secs);
    let expires_at = match grant {
        Grant::Session(g) => g.expires_at,
        Grant::Scheme { expires_at, .. } => expires_at.map_or(cap, |e| e.min(cap)),
    };
    let params = match hls.child_auth {
        ChildAuth::Session => {
            let (scope, bound_ip) = match grant {
                Grant::Session(g) => (g.scope.clone(), g.bound_ip),
                Grant::Scheme { bound_ip, .. } => (
                    session::scope_of(site.verifier.origin_path(uri.path())).to_owned(),
                    *bound_ip,
                ),
            };
            let token = session::issue(
                &hls.session_secret,
                &site.config.id,
                &scope,
                bound_ip,
                expires_at,
            )
            .ok_or(Stop::PlaylistUnreadable(
                "directory too long for a session token",
            ))?;
            format!("{SESSION_PARAM}={token}")
        }
        ChildAuth::Propagate => {
            let names = site.verifier.auth_params();
            uri.query()
                .unwrap_or("")
                .split('&')
                .filter(|pair| {
                    names
                        .iter()
                        .any(|n| pair.split('=').next() == Some(n.as_str()))
                })
                .collect::<Vec<_>>()
                .join("&")
        }
    };
    Ok((params, expires_at))
}

/// Reads a playlist (bounded), rewrites its child URIs and answers with the
/// new body: Content-Length recomputed, validators dropped, and a
/// Cache-Control no longer than the children's auth lives.
async fn rewrite_playlist(
    shared: &Shared,
    site: &Site,
    resp: Response<Incoming>,
    params: &str,
    expires_at: u64,
    now: u64,
) -> Result<Response<ProxyBody>, Stop> {
    let cfg = &site.config;
    if resp
        .headers()
        .get(CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
    {
        return Err(Stop::PlaylistUnreadable("content-encoded"));
    }
    let (mut parts, body) = resp.into_parts();
    let limited = http_body_util::Limited::new(body, cfg.hls.max_playlist_bytes);
    let bytes = match tokio::time::timeout(cfg.response_header_timeout, limited.collect()).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Stop::PlaylistTooLarge)
        }
        Ok(Err(e)) => return Err(upstream::UpstreamError::Protocol(e).into()),
        Err(_) => return Err(upstream::UpstreamError::Timeout("playlist body").into()),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| Stop::PlaylistUnreadable("not utf-8"))?;
    if !hls::looks_like_playlist(text) {
        // Named like a playlist but is not one (an error page, say): pass it on as is.
        site.bytes.inc_by(bytes.len() as u64);
        return Ok(Response::from_parts(parts, body::full(bytes)));
    }
    if params.is_empty() {
        // `propagate` with nothing to propagate: children stay as they are.
        site.bytes.inc_by(bytes.len() as u64);
        return Ok(Response::from_parts(parts, body::full(bytes)));
    }
    let out = hls::rewrite(
        text,
        hls::Scope {
            hosts: &cfg.hls.hosts,
        },
        params,
    );
    // Why a bound: every URI line grows by the params; a playlist of very
    // short lines must not turn into an unbounded allocation.
    if out.len() > cfg.hls.max_playlist_bytes.saturating_mul(4) {
        return Err(Stop::PlaylistTooLarge);
    }
    let h = &mut parts.headers;
    for name in [
        CONTENT_LENGTH,
        ETAG,
        LAST_MODIFIED,
        http::header::ACCEPT_RANGES,
    ] {
        h.remove(name);
    }
    h.insert(CONTENT_LENGTH, HeaderValue::from(out.len()));
    let ttl = expires_at.saturating_sub(now);
    let origin_cc = h
        .get(CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    // Why private: the body now holds tokens; a shared cache must not hand
    // one viewer's playlist to another.
    let cc = if origin_cc.contains("no-store") {
        "no-store".to_owned()
    } else {
        let origin_max = origin_cc.split(',').find_map(|d| {
            d.trim()
                .strip_prefix("max-age=")
                .and_then(|v| v.parse::<u64>().ok())
        });
        // Only ever lower the origin's max-age: a live playlist the origin
        // did not let be cached must not become cacheable here.
        match origin_max {
            Some(m) => format!("private, max-age={}", m.min(ttl)),
            None => "private, no-cache".to_owned(),
        }
    };
    if let Ok(v) = HeaderValue::from_str(&cc) {
        h.insert(CACHE_CONTROL, v);
    }
    site.bytes.inc_by(out.len() as u64);
    shared
        .metrics
        .playlists_rewritten
        .with_label_values(&[&cfg.id])
        .inc();
    Ok(Response::from_parts(parts, body::full(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_trusted_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "6.6.6.6, 1.2.3.4, 10.0.0.7".parse().unwrap(),
        );
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &h, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        let outsider: IpAddr = "5.5.5.5".parse().unwrap();
        assert_eq!(client_ip(outsider, &h, &trusted), outsider);
        assert_eq!(client_ip(peer, &http::HeaderMap::new(), &trusted), peer);
        h.insert("x-forwarded-for", "garbage, 10.0.0.9".parse().unwrap());
        assert_eq!(
            client_ip(peer, &h, &trusted),
            "10.0.0.9".parse::<IpAddr>().unwrap()
        );
    }
}
