//! The proxy: routing snapshot, the request phases, listeners and forwarding.
//!
//! [`handle`] is the story of one request, one named function per phase over
//! one request context:
//! route → check request → authenticate → forward → filter response → log.

pub mod body;
pub mod cors;
pub mod hls;
pub mod listener;
pub mod path;
pub mod per_ip;
pub mod pool;
pub mod probe;
pub mod respond;
pub mod throttle;
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
use http::{HeaderName, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use prometheus::IntCounter;
use tracing::warn;

use crate::auth::session::SESSION_PARAM;
use crate::auth::{authenticate, push_kept_params, query_pairs, Grant, RequestView, SiteAuth};
use crate::config::{Config, Limits, SiteConfig};
use crate::metrics::{self, Metrics};
use body::{Counted, ProxyBody};
use http_body_util::BodyExt;
use respond::Stop;
use upstream::{ClientSide, OriginBody, OriginClient};

/// One site as served: its validated config, how it authenticates, and
/// its origin connection pools.
pub struct Site {
    /// Validated config.
    pub config: SiteConfig,
    /// The scheme and keys in force, as joined by `publish`; requests are
    /// decided by [`crate::auth::authenticate`] over it.
    pub auth: SiteAuth,
    /// `requests_total{site, allowed, none}` and its duration, resolved once.
    allowed: IntCounter,
    allowed_duration: prometheus::Histogram,
    client: OriginClient,
    /// The client for endless streams (`.flv`): small read buffers.
    stream_client: OriginClient,
    bytes: IntCounter,
    stream_errors: IntCounter,
    streams_cut: IntCounter,
    active_streams: prometheus::IntGauge,
    /// Query params removed before forwarding: the scheme's and the session token.
    strip_params: Vec<String>,
    /// The cookie (name as configured) and header a token may also come
    /// in, removed before forwarding when the site strips auth params
    /// (Akamai's `__token__`).
    strip_carrier: Option<(String, HeaderName)>,
}

impl Site {
    /// True once the site can decide requests (it has keys, or its vendor answered).
    pub fn ready(&self) -> bool {
        self.auth.ready()
    }
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
    /// Builds the snapshot from a config and its sites as served (one
    /// [`SiteAuth`] per site, in config order, from `publish`): one origin
    /// client per site, metric handles resolved.
    ///
    /// `same_config_as`: a snapshot built from this very config, whose origin
    /// clients (and their pooled connections) are reused — a key sync must
    /// not drop every origin connection.
    pub fn build(
        config: &Config,
        metrics: &Metrics,
        auths: Vec<SiteAuth>,
        same_config_as: Option<&Snapshot>,
    ) -> Result<Snapshot, SnapshotError> {
        let mut by_host = HashMap::new();
        let mut sites = Vec::new();
        // Every fallible step first: a snapshot that cannot be built leaves
        // the metrics of the one in force untouched.
        let clients = config
            .sites
            .iter()
            .map(|sc| {
                let reused = same_config_as
                    .and_then(|prev| prev.sites.iter().find(|s| s.config.id == sc.id))
                    .map(|s| (s.client.clone(), s.stream_client.clone()));
                match reused {
                    Some(c) => Ok(c),
                    None => {
                        let build = |stream| {
                            upstream::build_client(sc, stream).map_err(|source| SnapshotError {
                                site: sc.id.clone(),
                                source,
                            })
                        };
                        Ok((build(false)?, build(true)?))
                    }
                }
            })
            .collect::<Result<Vec<_>, SnapshotError>>()?;
        for ((sc, auth), (client, stream_client)) in config.sites.iter().zip(auths).zip(clients) {
            metrics
                .site_keys
                .with_label_values(&[&sc.id])
                .set(auth.keys.len() as i64);
            let (mut from_config, mut from_vendor, mut restored, mut from_operator) = (0, 0, 0, 0);
            let mut newest: Option<u64> = None;
            let app_only = auth.app_keys.iter().flat_map(|a| {
                a.key_sources
                    .iter()
                    .filter(|s| matches!(s, crate::auth::KeySource::Operator { app: Some(_), .. }))
            });
            for source in auth.key_sources.iter().chain(app_only) {
                match source {
                    crate::auth::KeySource::Config => from_config += 1,
                    crate::auth::KeySource::Operator { at, .. } => {
                        from_operator += 1;
                        newest = newest.max(Some(*at));
                    }
                    crate::auth::KeySource::Vendor {
                        at, restored: r, ..
                    } => {
                        if *r {
                            restored += 1;
                        } else {
                            from_vendor += 1;
                        }
                        newest = newest.max(*at);
                    }
                }
            }
            for (source, n) in [
                ("config", from_config),
                ("vendor", from_vendor),
                ("restored", restored),
                ("operator", from_operator),
            ] {
                metrics
                    .site_keys_by_source
                    .with_label_values(&[&sc.id, source])
                    .set(n);
            }
            // Config keys are as old as the config in force.
            let updated = match newest {
                Some(t) => Some(t),
                None if from_config > 0 => Some(config.loaded_at),
                None => None,
            };
            if let Some(t) = updated {
                metrics
                    .site_keys_updated
                    .with_label_values(&[&sc.id])
                    .set(i64::try_from(t).unwrap_or(i64::MAX));
            }
            // Every series a dashboard or alert reads exists from the start
            // (at 0), not only after the first error.
            for kind in ["connect", "timeout", "protocol", "busy", "stream"] {
                metrics.upstream_errors.with_label_values(&[&sc.id, kind]);
            }
            let site = Arc::new(Site {
                allowed: metrics.requests.with_label_values(&[
                    &sc.id,
                    metrics::outcome::ALLOWED,
                    "none",
                ]),
                allowed_duration: metrics
                    .request_duration
                    .with_label_values(&[&sc.id, metrics::outcome::ALLOWED]),
                strip_params: auth
                    .verifier
                    .auth_params()
                    .iter()
                    .cloned()
                    .chain(std::iter::once(SESSION_PARAM.to_owned()))
                    .collect(),
                strip_carrier: auth
                    .verifier
                    .token_carrier()
                    .filter(|_| sc.strip_auth_params)
                    .and_then(|n| Some((n.to_owned(), HeaderName::from_bytes(n.as_bytes()).ok()?))),
                auth,
                client,
                stream_client,
                bytes: metrics.site_bytes(&sc.id),
                stream_errors: metrics
                    .upstream_errors
                    .with_label_values(&[&sc.id, "stream"]),
                streams_cut: metrics.streams_cut.with_label_values(&[&sc.id]),
                active_streams: metrics.site_active_streams.with_label_values(&[&sc.id]),
                config: sc.clone(),
            });
            for d in &sc.domains {
                by_host.insert(d.clone(), site.clone());
            }
            sites.push(site);
        }
        // The certificates served now, and no others.
        metrics.tls_cert_expiry.reset();
        for c in &config.server.certificates {
            if let (Some(name), Some(t)) = (c.server_names.first(), c.not_after) {
                metrics.tls_cert_expiry.with_label_values(&[name]).set(t);
            }
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
    /// Failed-verification budgets by client address (`None`: off).
    pub throttle: Option<throttle::Throttle>,
}

/// Per-connection facts.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// Client address.
    pub remote: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

use crate::host::normalize_host;
use crate::time::unix_now;

/// The host a request is for: HTTP/2 `:authority` or absolute-form URI
/// first, else the Host header. Returns (as sent, normalized: lowercase, no port).
pub fn request_host<B>(req: &Request<B>) -> Option<(HeaderValue, String)> {
    let raw = match req.uri().authority() {
        Some(a) => HeaderValue::from_str(a.as_str()).ok()?,
        None => {
            // Two Host headers are a bad request (RFC 9112 §3.2): a front
            // proxy routing by the other one would disagree with us.
            let mut hosts = req.headers().get_all(HOST).iter();
            let host = hosts.next()?;
            if hosts.next().is_some() {
                return None;
            }
            host.clone()
        }
    };
    let norm = normalize_host(raw.to_str().ok()?)?;
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

/// One request's state through the phases: created at entry, the site
/// filled by [`route`], the grant by [`authenticate_request`], read by
/// [`forward`] and [`filter_response`], consumed by [`log()`].
struct RequestCtx {
    started: Instant,
    conn: ConnInfo,
    /// Unix seconds at entry: every decision of this request uses it.
    now: u64,
    /// The request target as sent.
    uri: http::Uri,
    /// The routed site.
    site: Option<Arc<Site>>,
    /// The Host (or `:authority`) as sent, once routed (a clone of the
    /// header shares its bytes).
    host_header: HeaderValue,
    /// The same, normalized (lowercase, no port): what routed the request.
    host: String,
    /// The client's address for IP-bound tokens (after trusted proxies).
    client_ip: IpAddr,
    /// Whether the peer is one of the site's trusted proxies.
    peer_trusted: bool,
    /// What authorized the request.
    grant: Option<Grant>,
    /// The CORS `Origin` of the request.
    cors_origin: Option<HeaderValue>,
    /// True for GET (playlists are rewritten only for GET).
    is_get: bool,
    /// Method and path, kept only when the access log is on.
    logged: Option<(Method, String)>,
}

/// Serves one request. Never fails: every refusal or failure becomes a
/// response in [`respond`], and is logged and counted here.
///
/// The phases, each a function whose result says whether to go on:
/// `route` → `check_request` → `authenticate_request` → `forward` →
/// `filter_response` → `log`.
pub async fn handle(
    shared: Arc<Shared>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let snapshot = shared.snapshot.load_full();
    // Only kept when the access log is on: no per-request copies otherwise.
    let access_log_on = tracing::enabled!(target: "streamguard::access", tracing::Level::INFO);
    // Counted and logged if the client gives up before the answer (this
    // future is then dropped mid-way). Built in place: the context is a few
    // hundred bytes, moved otherwise.
    let mut pending = Unanswered {
        shared: &shared,
        ctx: RequestCtx {
            started: Instant::now(),
            conn,
            now: unix_now(),
            uri: req.uri().clone(),
            site: None,
            host_header: HeaderValue::from_static(""),
            host: String::new(),
            client_ip: conn.remote.ip().to_canonical(),
            peer_trusted: false,
            grant: None,
            cors_origin: req.headers().get(http::header::ORIGIN).cloned(),
            is_get: req.method() == Method::GET,
            logged: access_log_on.then(|| (req.method().clone(), req.uri().path().to_owned())),
        },
        answered: false,
    };
    // Boxed: hyper keeps room for this future in every connection for as
    // long as the connection lives; the phases' state (origin exchange,
    // playlist rewrite) is needed only until the response head.
    let result = Box::pin(phases(&shared, &snapshot, &mut pending.ctx, req)).await;
    pending.answered = true;
    let ctx = &pending.ctx;
    let (response, outcome, reason) = respond(&shared, ctx, result);
    count(&shared, ctx, outcome, reason);
    access_log(ctx, response, outcome, reason)
}

/// A request on its way to an answer. Dropped unanswered (an HTTP/2 stream
/// reset, a client hanging up while the origin is asked), it is counted
/// and logged as `cancelled`/`client_closed` with status 499, as nginx
/// logs it.
struct Unanswered<'a> {
    shared: &'a Shared,
    ctx: RequestCtx,
    answered: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let (outcome, reason) = (metrics::outcome::CANCELLED, "client_closed");
        count(self.shared, &self.ctx, outcome, reason);
        if let Some(entry) = access_entry(&self.ctx, 499, outcome, reason) {
            entry.write(0, false);
        }
    }
}

async fn phases(
    shared: &Shared,
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Stop> {
    let site = route(snapshot, ctx, &req)?;
    if let Some(preflight) = check_request(&site, &snapshot.limits, &req)? {
        return Ok(preflight);
    }
    no_body(&mut req, snapshot.limits.header_read_timeout).await?;
    let grant = authenticate_request(shared, &site, ctx, &req)?;
    let resp = forward(&site, ctx, &grant, req).await?;
    let resp = filter_response(shared, &site, ctx, &grant, resp).await;
    ctx.grant = Some(grant);
    resp
}

/// Phase 1, route: the Host (or `:authority`) picks the site. `Err` when
/// the request names no host or a host no site serves.
fn route(
    snapshot: &Snapshot,
    ctx: &mut RequestCtx,
    req: &Request<Incoming>,
) -> Result<Arc<Site>, Stop> {
    let (host_header, host) = request_host(req).ok_or(Stop::MissingHost)?;
    let site = snapshot.site(&host).cloned().ok_or(Stop::NoSiteForHost)?;
    let peer = ctx.conn.remote.ip().to_canonical();
    ctx.peer_trusted = site
        .config
        .trusted_proxies
        .iter()
        .any(|n| n.contains(&peer));
    ctx.client_ip = client_ip(peer, req.headers(), &site.config.trusted_proxies);
    ctx.host_header = host_header;
    ctx.host = host;
    ctx.site = Some(site.clone());
    Ok(site)
}

/// Phase 2, check the request: a play method (or a CORS preflight, answered
/// here: `Ok(Some(response))`), a bounded and unambiguous target. `Ok(None)`
/// means go on; `Err` refuses the request before any token is looked at.
fn check_request(
    site: &Site,
    limits: &Limits,
    req: &Request<Incoming>,
) -> Result<Option<Response<ProxyBody>>, Stop> {
    let cfg = &site.config;
    if req.method() == Method::OPTIONS {
        if let Some(c) = cfg
            .cors
            .as_ref()
            .filter(|_| cors::is_preflight(req.headers()))
        {
            return Ok(Some(cors::preflight(c, req.headers())));
        }
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(Stop::MethodNotAllowed);
    }
    let pq = req.uri().path_and_query().map_or("", |pq| pq.as_str());
    check_target(limits, cfg, pq, req.uri().path())?;
    Ok(None)
}

/// Refuses a request that carries a body: no play request has one, and an
/// origin that does not read a GET's body would take it for its next
/// request on that connection (an unsigned request smuggled past the
/// verdict). A body that turns out empty (an HTTP/2 stream ended by an
/// empty DATA frame, `0\r\n\r\n` chunked) is read to its end within
/// `wait` and is no body.
async fn no_body(req: &mut Request<Incoming>, wait: std::time::Duration) -> Result<(), Stop> {
    use hyper::body::Body as _;
    let body = req.body_mut();
    match body.size_hint().exact() {
        _ if body.is_end_stream() => return Ok(()),
        Some(0) => return Ok(()),
        // A length announced: bytes will come; refused before any is asked
        // for (reading would answer `Expect: 100-continue`).
        Some(_) => return Err(Stop::RequestBody),
        None => {}
    }
    let read = async {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) if f.data_ref().is_some_and(|d| !d.is_empty()) => return false,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        true
    };
    match tokio::time::timeout(wait, read).await {
        Ok(true) => Ok(()),
        _ => Err(Stop::RequestBody),
    }
}

/// The request-target rules of `check_request` (also applied by
/// `streamguard check`): bounded length, unambiguous path (no `;`
/// parameters unless the site allows them).
pub fn check_target(
    limits: &Limits,
    site: &SiteConfig,
    path_and_query: &str,
    path: &str,
) -> Result<(), Stop> {
    if path_and_query.len() > limits.max_uri_bytes {
        return Err(Stop::UriTooLong);
    }
    path::validate_with(path, site.allow_path_params)?;
    Ok(())
}

/// Phase 3, authenticate: the one verdict ([`crate::auth::authenticate`])
/// over the site as served. `Ok` carries what authorized the request;
/// `Err` a denial with its reason.
///
/// An address that spent its failed-verification budget is answered 429
/// without being verified; each guess-like denial spends from it.
fn authenticate_request(
    shared: &Shared,
    site: &Site,
    ctx: &RequestCtx,
    req: &Request<Incoming>,
) -> Result<Grant, Stop> {
    if let Some(t) = &shared.throttle {
        if !t.allows(ctx.client_ip, ctx.started) {
            return Err(Stop::Throttled {
                retry_after_secs: t.retry_after_secs(),
            });
        }
    }
    let view = RequestView {
        host: &ctx.host,
        path: req.uri().path(),
        query: req.uri().query(),
        client_ip: Some(ctx.client_ip),
        headers: Some(req.headers()),
    };
    let verdict = authenticate(&site.auth, &view, ctx.now);
    // Session tokens are the proxy's own (128-bit MACs, not guessable);
    // their failures come from honest players (a restart, another replica)
    // and must not lock a NAT out.
    let by_session = verdict.by_session;
    verdict.result.map_err(|reason| {
        if let Some(t) = shared
            .throttle
            .as_ref()
            .filter(|_| !by_session && throttle::is_guess(reason))
        {
            t.failed(ctx.client_ip, ctx.started);
        }
        Stop::Denied(reason)
    })
}

/// Phase 4, forward: exactly the verified path (minus in-path auth for
/// schemes that carry it there) and the query minus auth params if asked,
/// to the site's origin connection pool. `Ok` is the origin's response head;
/// `Err` an origin failure (connect, timeout, protocol).
async fn forward(
    site: &Site,
    ctx: &RequestCtx,
    grant: &Grant,
    mut req: Request<Incoming>,
) -> Result<Response<OriginBody>, Stop> {
    let cfg = &site.config;
    let uri = &ctx.uri;
    let path = match grant {
        Grant::Scheme {
            forward_path: Some(p),
            ..
        } => {
            // A scheme-derived path obeys the same rules as a client's.
            path::validate_with(p, cfg.allow_path_params)?;
            p.as_str()
        }
        Grant::Scheme {
            forward_path: None, ..
        } => uri.path(),
        Grant::Session(_) => {
            let p = site.auth.origin_path(uri.path());
            path::validate_with(p, cfg.allow_path_params)?;
            p
        }
    };
    // The origin's path and query, built in one string: base path, path,
    // and the query minus auth params if asked.
    let base = cfg.origin.base_path.as_str();
    let query = uri.query();
    let mut path_and_query =
        String::with_capacity(base.len() + path.len() + 1 + query.map_or(0, str::len));
    path_and_query.push_str(base);
    path_and_query.push_str(path);
    if let Some(q) = query {
        let bare = path_and_query.len();
        path_and_query.push('?');
        let kept = if cfg.strip_auth_params {
            push_kept_params(&mut path_and_query, q, &site.strip_params)
        } else if site.auth.sessions.is_some() {
            push_kept_params(&mut path_and_query, q, &[SESSION_PARAM])
        } else {
            path_and_query.push_str(q);
            true
        };
        if !kept {
            path_and_query.truncate(bare);
        }
    }
    if cfg.hls.rewrite && hls::is_playlist(None, uri.path()) {
        // GET and HEAD alike (a HEAD answers as the GET would).
        // The body goes out rewritten (per viewer, validators dropped):
        // neither a byte range nor the origin's 304 of it would fit.
        for name in [
            RANGE,
            http::header::IF_NONE_MATCH,
            http::header::IF_MODIFIED_SINCE,
        ] {
            req.headers_mut().remove(name);
        }
    }
    if wants_rewrite(cfg, req.method()) {
        // Playlists are read whole and rewritten: ask for plain bytes (a
        // playlist may be recognised only by its Content-Type).
        req.headers_mut()
            .insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
    if let Some((cookie, header)) = &site.strip_carrier {
        upstream::remove_token_carriers(req.headers_mut(), cookie, header);
    }
    let client_side = ClientSide {
        remote: ctx.conn.remote,
        tls: ctx.conn.tls,
        host_header: &ctx.host_header,
        peer_trusted: ctx.peer_trusted,
        client_ip: ctx.client_ip,
    };
    let upstream_req =
        upstream::prepare(req, cfg, path_and_query, client_side).map_err(Stop::Internal)?;
    match tokio::time::timeout(
        cfg.response_header_timeout,
        if upstream::is_stream_path(path) {
            &site.stream_client
        } else {
            &site.client
        }
        .send(upstream_req),
    )
    .await
    {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(upstream::UpstreamError::Timeout("response head").into()),
    }
}

/// Headers a rewritten playlist goes out without: its length and
/// validators are the origin body's, and besides them the caching orders a
/// shared cache obeys before Cache-Control (RFC 9213 `CDN-Cache-Control`,
/// Surrogate-Control, nginx's X-Accel-Expires) and Expires: the body holds
/// one viewer's tokens.
const DROPPED_FROM_REWRITTEN: [HeaderName; 8] = [
    // First: a HEAD answer keeps it (skips the first).
    CONTENT_LENGTH,
    ETAG,
    LAST_MODIFIED,
    http::header::ACCEPT_RANGES,
    http::header::EXPIRES,
    HeaderName::from_static("cdn-cache-control"),
    HeaderName::from_static("surrogate-control"),
    HeaderName::from_static("x-accel-expires"),
];

fn wants_rewrite(cfg: &SiteConfig, method: &Method) -> bool {
    cfg.hls.rewrite && method == Method::GET
}

/// Phase 5, filter the response: playlists are rewritten so their children
/// carry auth; everything else streams through, counted, and (with
/// `cut_at_expiry`) ends when its token does. `Err` when a playlist cannot
/// be read or rewritten.
async fn filter_response(
    shared: &Shared,
    site: &Site,
    ctx: &RequestCtx,
    grant: &Grant,
    mut resp: Response<OriginBody>,
) -> Result<Response<ProxyBody>, Stop> {
    let cfg = &site.config;
    let now = ctx.now;
    upstream::filter_response(&mut resp, cfg, ctx.conn.tls, &ctx.host_header);
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // Only playlists are read; `propagate` with nothing to propagate leaves
    // them as they are (checked last: it allocates).
    if cfg.hls.rewrite
        && ctx.is_get
        && resp.status() == StatusCode::OK
        && hls::is_playlist(content_type, ctx.uri.path())
        && (site.auth.sessions.is_some() || !propagated_params(site, &ctx.uri).is_empty())
    {
        let expires_at = children_expiry(site, grant, now);
        let playlist_path = ctx.uri.path();
        return match site.auth.sessions {
            Some(_) => {
                let mut params = |child: &str| {
                    site.auth
                        .child_session(grant, playlist_path, child, expires_at)
                };
                rewrite_playlist(
                    shared,
                    site,
                    resp,
                    playlist_path,
                    &mut params,
                    expires_at,
                    now,
                )
                .await
            }
            None => {
                let copied = propagated_params(site, &ctx.uri);
                let mut params = |_: &str| Some(copied.clone());
                rewrite_playlist(
                    shared,
                    site,
                    resp,
                    playlist_path,
                    &mut params,
                    expires_at,
                    now,
                )
                .await
            }
        };
    }
    if cfg.hls.rewrite
        && !ctx.is_get
        && resp.status() == StatusCode::OK
        && hls::is_playlist(content_type, ctx.uri.path())
    {
        // HEAD: the GET would send a rewritten body, without validators,
        // private. (Its length is unknown without reading the playlist:
        // the origin's stays, as hyper would otherwise answer 0.)
        let h = resp.headers_mut();
        for name in DROPPED_FROM_REWRITTEN.into_iter().skip(1) {
            h.remove(name);
        }
        h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    }
    let active = [
        shared.metrics.active_streams.clone(),
        site.active_streams.clone(),
    ];
    let errors = site.stream_errors.clone();
    let resp = resp.map(|b| Counted::new(b, site.bytes.clone(), errors, active).boxed_unsync());
    match (cfg.cut_at_expiry, grant.expires_at()) {
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

/// Turns the phases' result into the response, in one place: a refusal or
/// failure becomes its status and reason (origin failures are counted and
/// logged here), and CORS headers are added. Returns the outcome labels.
fn respond(
    shared: &Shared,
    ctx: &RequestCtx,
    result: Result<Response<ProxyBody>, Stop>,
) -> (Response<ProxyBody>, &'static str, &'static str) {
    let site_id = ctx
        .site
        .as_ref()
        .map_or(metrics::UNKNOWN_SITE, |s| s.config.id.as_str());
    let (mut response, outcome, reason) = match result {
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
            let deny_status = ctx
                .site
                .as_ref()
                .map_or(StatusCode::FORBIDDEN, |s| match stop {
                    Stop::Denied(crate::auth::DenyReason::Expired) => s.config.expired_status,
                    _ => s.config.deny_status,
                });
            (stop.into_response(deny_status), outcome, reason)
        }
    };
    if let Some((site, c)) = ctx
        .site
        .as_ref()
        .and_then(|s| s.config.cors.as_ref().map(|c| (s, c)))
    {
        if let Some(o) = ctx.cors_origin.as_ref() {
            if cors::refuses(c, o) {
                shared
                    .metrics
                    .cors_refused
                    .with_label_values(&[&site.config.id])
                    .inc();
                tracing::info!(site = %site.config.id, origin = ?o, "CORS request from an origin the site does not allow");
            }
        }
        cors::decorate(c, ctx.cors_origin.as_ref(), &mut response);
    }
    (response, outcome, reason)
}

/// Phase 6, count: the request's outcome in the metrics.
fn count(shared: &Shared, ctx: &RequestCtx, outcome: &'static str, reason: &'static str) {
    let elapsed = ctx.started.elapsed();
    let site_id = ctx
        .site
        .as_ref()
        .map_or(metrics::UNKNOWN_SITE, |s| s.config.id.as_str());
    match (&ctx.site, outcome == metrics::outcome::ALLOWED) {
        // The common case uses handles resolved when the snapshot was built.
        (Some(s), true) => {
            s.allowed.inc();
            s.allowed_duration.observe(elapsed.as_secs_f64());
        }
        _ => shared
            .metrics
            .count_request(site_id, outcome, reason, elapsed.as_secs_f64()),
    }
}

/// Phase 6, log: when the access log is on, the response body carries the
/// request's line and writes it when the body ends or is dropped, with the
/// bytes sent and the duration (a stream is logged when it ends). Path only:
/// the query carries signatures, and anything signature-like in the path is
/// hidden too.
fn access_log(
    ctx: &RequestCtx,
    response: Response<ProxyBody>,
    outcome: &'static str,
    reason: &'static str,
) -> Response<ProxyBody> {
    match access_entry(ctx, response.status().as_u16(), outcome, reason) {
        Some(entry) => response.map(|b| body::AccessLogged::new(b, entry).boxed_unsync()),
        None => response,
    }
}

/// The request's access log line so far; `None` when the log is off.
fn access_entry(
    ctx: &RequestCtx,
    status: u16,
    outcome: &'static str,
    reason: &'static str,
) -> Option<body::AccessEntry> {
    let (method, path) = ctx.logged.as_ref()?;
    let site = ctx.site.as_ref();
    Some(body::AccessEntry {
        site: site
            .map_or(metrics::UNKNOWN_SITE, |s| s.config.id.as_str())
            .to_owned(),
        // The address tokens bind to (trusted proxies resolved).
        client: ctx.client_ip,
        method: Some(method.clone()),
        // Schemes with auth in the path (Alibaba Cloud B/C) log it without.
        path: path::for_log(site.map_or(path.as_str(), |s| s.auth.origin_path(path))).into_owned(),
        status,
        outcome,
        reason,
        started: ctx.started,
        head_ms: ctx.started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// Until when the children of a playlist work: never later than the
/// playlist's own grant, and at most `session_ttl_secs` from now.
fn children_expiry(site: &Site, grant: &Grant, now: u64) -> u64 {
    let cap = now.saturating_add(site.config.hls.session_ttl_secs);
    match grant {
        Grant::Session(g) => g.expires_at,
        Grant::Scheme { expires_at, .. } => expires_at.map_or(cap, |e| e.min(cap)),
    }
}

/// `child_auth = "propagate"`: the playlist request's own auth params.
fn propagated_params(site: &Site, uri: &http::Uri) -> String {
    let names = site.auth.verifier.auth_params();
    let mut out = String::new();
    for pair in query_pairs(uri.query().unwrap_or("")) {
        if names.iter().any(|n| n == pair.key) {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(pair.whole);
        }
    }
    out
}

/// Reads a playlist (bounded), rewrites its child URIs and answers with the
/// new body: Content-Length recomputed, validators dropped, and a
/// Cache-Control no longer than the children's auth lives.
async fn rewrite_playlist(
    shared: &Shared,
    site: &Site,
    resp: Response<OriginBody>,
    playlist_path: &str,
    params: &mut (dyn FnMut(&str) -> Option<String> + Send),
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
    let read = body::read_bounded(body, cfg.hls.max_playlist_bytes);
    let bytes = match tokio::time::timeout(cfg.response_header_timeout, read).await {
        Ok(Ok(b)) => b,
        Ok(Err(body::ReadError::TooLarge)) => return Err(Stop::PlaylistTooLarge),
        Ok(Err(body::ReadError::Body(e))) => {
            return Err(upstream::UpstreamError::Protocol(e).into())
        }
        Err(_) => return Err(upstream::UpstreamError::Timeout("playlist body").into()),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| Stop::PlaylistUnreadable("not utf-8"))?;
    if !hls::looks_like_playlist(text) {
        // Named like a playlist but is not one (an error page, say): pass it on as is.
        site.bytes.inc_by(bytes.len() as u64);
        return Ok(Response::from_parts(parts, body::full(bytes)));
    }
    // Why a bound: every URI line grows by the params; a playlist of very
    // short lines must not turn into an unbounded allocation (nor a token
    // for each of its lines: the rewrite stops at the bound).
    let Some(out) = hls::rewrite(
        text,
        hls::Scope {
            hosts: &cfg.hls.hosts,
        },
        playlist_path,
        params,
        cfg.hls.max_playlist_bytes.saturating_mul(4),
    ) else {
        return Err(Stop::PlaylistTooLarge);
    };
    let h = &mut parts.headers;
    for name in DROPPED_FROM_REWRITTEN {
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
