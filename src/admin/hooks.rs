//! Media-server hooks: nginx `auth_request`, nginx-rtmp `on_play` /
//! `on_publish` / `on_update` and SRS `http_hooks` `on_play` / `on_publish`.
//!
//! Each hook turns the request shape its server sends into a
//! [`RequestView`] (host, path `/{app}/{stream}`, the player's query, the
//! client address) and answers from the one verdict,
//! [`crate::auth::authenticate`], after the proxy's own target checks
//! ([`crate::proxy::check_target`]), so a hook never allows what the proxy
//! would refuse. Players are decided with the site's keys, publishers with
//! its push keys ([`SiteAuth::push`]).
//!
//! Why no bearer token: media servers cannot always send one. The admin
//! listener must be bound to a private address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use tracing::{info, warn};

use super::{read_body, respond, AdminState};
use crate::auth::session::SESSION_PARAM;
use crate::auth::{
    authenticate, percent_decode, query_pairs, strip_params, DenyReason, RequestView, SiteAuth,
};
use crate::host::normalize_host;
use crate::metrics::outcome;
use crate::proxy::body::ProxyBody;
use crate::proxy::{check_target, client_ip, path, throttle, Site};

/// Seconds an allowed decision is reused for identical inputs (never past
/// the token's own expiry).
pub const HOOK_CACHE_TTL_SECS: u64 = 5;
/// Most decisions kept.
pub const HOOK_CACHE_MAX_ENTRIES: usize = 4096;

/// Which hook was called (the `hook` metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Hook {
    AuthRequest,
    RtmpPlay,
    RtmpPublish,
    RtmpUpdate,
    SrsPlay,
    SrsPublish,
}

impl Hook {
    /// The hook of `/hooks/…`, and the site it is pinned to when the path
    /// ends in `/site/{id}` (e.g. `/hooks/srs/on_play/site/live`).
    fn from_path(path: &str) -> Option<(Hook, Option<&str>)> {
        let (path, site) = match path.split_once("/site/") {
            Some((p, id)) if !id.is_empty() && !id.contains('/') => (p, Some(id)),
            Some(_) => return None,
            None => (path, None),
        };
        Self::exact(path).map(|h| (h, site))
    }

    fn exact(path: &str) -> Option<Hook> {
        Some(match path {
            "/hooks/auth_request" => Hook::AuthRequest,
            "/hooks/rtmp/on_play" => Hook::RtmpPlay,
            "/hooks/rtmp/on_publish" => Hook::RtmpPublish,
            "/hooks/rtmp/on_update" => Hook::RtmpUpdate,
            "/hooks/srs/on_play" => Hook::SrsPlay,
            "/hooks/srs/on_publish" => Hook::SrsPublish,
            _ => return None,
        })
    }

    /// The `hook` label: one of [`crate::metrics::HOOK_NAMES`].
    fn name(self) -> &'static str {
        match self {
            Hook::AuthRequest => "auth_request",
            Hook::RtmpPlay => "rtmp_on_play",
            Hook::RtmpPublish => "rtmp_on_publish",
            Hook::RtmpUpdate => "rtmp_on_update",
            Hook::SrsPlay => "srs_on_play",
            Hook::SrsPublish => "srs_on_publish",
        }
    }
}

/// Play (the site's keys) or publish (its push keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scene {
    /// A player.
    Play,
    /// A publisher.
    Publish,
}

/// Where the client address comes from.
#[derive(Debug)]
enum Client {
    /// The media server reported it (`addr`, `ip`).
    Reported(Option<IpAddr>),
    /// The hook's peer (nginx), resolved through `X-Forwarded-For` with the
    /// site's trusted proxies, as the proxy does.
    Forwarded(IpAddr),
}

/// What a media server asked, in the proxy's terms.
#[derive(Debug)]
struct Ask {
    scene: Scene,
    /// Lowercase, without port.
    host: String,
    /// `/{app}/{stream}` (or nginx's original path), as on the wire.
    path: String,
    query: Option<String>,
    client: Client,
    /// The original request's headers (cookies), for `auth_request`.
    headers: Option<HeaderMap>,
    /// A media server's stream (`/{app}/{stream}`, RTMP or SRS), not an
    /// HTTP path.
    media_stream: bool,
    /// The site the hook URL names (`…/site/{id}`): the host the media
    /// server reports (from its client: `tcUrl`, `Host`) must be one of
    /// its domains, so one tenant's tokens never pass on another's server.
    pinned: Option<String>,
}

/// Why a hook request could not even be asked.
#[derive(Debug, thiserror::Error)]
enum BadHook {
    #[error("{0}")]
    Shape(&'static str),
    #[error(transparent)]
    Body(#[from] super::BodyError),
}

/// A hook's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Denied(DenyReason),
    /// Refused before any token was looked at (unknown host, bad path,
    /// throttled), with the proxy's reason label.
    Rejected(&'static str),
}

/// Serves `/hooks/…`.
pub async fn handle(
    state: &AdminState,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Response<ProxyBody> {
    let Some((hook, pinned)) = Hook::from_path(req.uri().path()) else {
        return respond(StatusCode::NOT_FOUND, "text/plain", "not found\n");
    };
    let pinned = pinned.map(str::to_owned);
    let ask = match read_ask(hook, req, remote).await {
        Ok(a) => Ask { pinned, ..a },
        Err(error) => {
            warn!(hook = hook.name(), %error, "hook request not understood");
            count(state, hook, outcome::REJECTED);
            return respond(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("400 {error}\n"),
            );
        }
    };
    let now = crate::time::unix_now();
    let result = decide(state, &ask, now, Instant::now());
    let label = match result {
        Outcome::Allowed => outcome::ALLOWED,
        Outcome::Denied(_) => outcome::DENIED,
        Outcome::Rejected(_) => outcome::REJECTED,
    };
    count(state, hook, label);
    if result != Outcome::Allowed {
        let reason = match result {
            Outcome::Denied(r) => r.as_str(),
            Outcome::Rejected(r) => r,
            Outcome::Allowed => "",
        };
        // Why only these fields: the query holds the token.
        info!(hook = hook.name(), host = %ask.host, path = %path::for_log(&ask.path), reason, "hook denied");
    }
    answer(hook, result)
}

fn count(state: &AdminState, hook: Hook, result: &str) {
    state
        .shared
        .metrics
        .hook_decisions
        .with_label_values(&[hook.name(), result])
        .inc();
}

/// The response each server understands.
fn answer(hook: Hook, result: Outcome) -> Response<ProxyBody> {
    match (hook, result) {
        // SRS: HTTP 200 with the body `0` allows; anything else refuses.
        (Hook::SrsPlay | Hook::SrsPublish, Outcome::Allowed) => {
            respond(StatusCode::OK, "text/plain", "0")
        }
        (Hook::SrsPlay | Hook::SrsPublish, _) => {
            respond(StatusCode::FORBIDDEN, "text/plain", "403")
        }
        (_, Outcome::Allowed) => respond(StatusCode::OK, "text/plain", "ok\n"),
        // nginx `auth_request` passes 401 and 403 on (anything else becomes
        // a 500): 401 when no token was given, else 403. nginx-rtmp refuses
        // on any status but 2xx and 3xx (a redirect), so never send 3xx.
        (_, Outcome::Denied(DenyReason::MissingToken)) => respond(
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "401 missing_token\n",
        ),
        (_, Outcome::Denied(r)) => respond(
            StatusCode::FORBIDDEN,
            "text/plain",
            format!("403 {}\n", r.as_str()),
        ),
        (_, Outcome::Rejected(r)) => {
            respond(StatusCode::FORBIDDEN, "text/plain", format!("403 {r}\n"))
        }
    }
}

async fn read_ask(hook: Hook, req: Request<Incoming>, remote: SocketAddr) -> Result<Ask, BadHook> {
    match hook {
        Hook::AuthRequest => auth_request_ask(&req, remote.ip()),
        Hook::RtmpPlay | Hook::RtmpPublish | Hook::RtmpUpdate => {
            // `notify_method get` sends the fields as the query; POST (the
            // default) as a form body.
            let form = if req.method() == Method::GET {
                req.uri().query().unwrap_or_default().to_owned()
            } else {
                let body = read_body(req.into_body()).await?;
                String::from_utf8(body.to_vec())
                    .map_err(|_| BadHook::Shape("the form is not UTF-8"))?
            };
            rtmp_ask(hook, &form)
        }
        Hook::SrsPlay | Hook::SrsPublish => {
            let body = read_body(req.into_body()).await?;
            let scene = if hook == Hook::SrsPublish {
                Scene::Publish
            } else {
                Scene::Play
            };
            srs_ask(scene, &body)
        }
    }
}

/// nginx `auth_request`: the original target in `X-Original-URI`
/// (`$request_uri`: path and query as the client sent them), its host in
/// `X-Original-Host` (else the subrequest's `Host`).
fn auth_request_ask(req: &Request<Incoming>, peer: IpAddr) -> Result<Ask, BadHook> {
    let headers = req.headers();
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let uri = text("x-original-uri").ok_or(BadHook::Shape(
        "X-Original-URI is missing; add proxy_set_header X-Original-URI $request_uri",
    ))?;
    let host = text("x-original-host")
        .or_else(|| text("host"))
        .and_then(normalize_host)
        .ok_or(BadHook::Shape(
            "no usable X-Original-Host or Host; add proxy_set_header X-Original-Host $host",
        ))?;
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    Ok(Ask {
        scene: Scene::Play,
        host,
        path: path.to_owned(),
        query: query.map(str::to_owned),
        client: Client::Forwarded(peer.to_canonical()),
        headers: Some(headers.clone()),

        media_stream: false,
        pinned: None,
    })
}

/// Fields nginx-rtmp writes after `call=…` for each call, in order; the
/// player's args (the query of its stream name) follow them verbatim.
fn rtmp_fixed_fields(call: &str) -> Option<&'static [&'static str]> {
    Some(match call {
        "play" => &["name", "start", "duration", "reset"],
        "publish" => &["name", "type"],
        "update_play" | "update_publish" | "update" => &["time", "timestamp", "name"],
        _ => return None,
    })
}

/// nginx-rtmp's form (`ngx_rtmp_notify_module.c`): `app`, `flashver`,
/// `swfurl`, `tcurl`, `pageurl`, `addr`, `clientid`, `call`, the call's
/// own fields, then the player's args appended as they were sent
/// (`&txSecret=…&txTime=…`). The args are taken by position, after the
/// call's fields, so an arg named like a field (`name=`) cannot replace one.
fn rtmp_ask(hook: Hook, form: &str) -> Result<Ask, BadHook> {
    let pairs: Vec<(&str, &str)> = query_pairs(form)
        .filter(|p| !p.whole.is_empty())
        .map(|p| (p.key, p.value))
        .collect();
    let call_at = pairs
        .iter()
        .position(|(k, _)| *k == "call")
        .ok_or(BadHook::Shape(
            "no `call` field: not an nginx-rtmp notification",
        ))?;
    let session = &pairs[..call_at];
    let call = pairs[call_at].1;
    let fixed = rtmp_fixed_fields(call).ok_or(BadHook::Shape(
        "`call` is not play, publish or update: point only on_play, on_publish and on_update here",
    ))?;
    let scene = match (hook, call) {
        (Hook::RtmpPlay, "play") | (Hook::RtmpUpdate, "update_play") => Scene::Play,
        (Hook::RtmpPublish, "publish") | (Hook::RtmpUpdate, "update_publish") => Scene::Publish,
        _ => {
            return Err(BadHook::Shape(
                "`call` does not match this hook (on_play → /hooks/rtmp/on_play, on_publish → /hooks/rtmp/on_publish, on_update → /hooks/rtmp/on_update)",
            ))
        }
    };
    // The call's fields, in order; `name` may be absent from an update.
    let mut rest = &pairs[call_at + 1..];
    let mut name = None;
    for field in fixed {
        if let Some(((k, v), tail)) = rest.split_first() {
            if k == field {
                if *k == "name" {
                    name = Some(*v);
                }
                rest = tail;
            }
        }
    }
    let field = |n: &str| session.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let app = decoded(field("app").unwrap_or_default())?;
    let name = decoded(name.ok_or(BadHook::Shape("no stream `name`"))?)?;
    let tcurl = decoded(field("tcurl").unwrap_or_default())?;
    let host = host_of_tcurl(&tcurl).ok_or(BadHook::Shape(
        "no host in `tcurl` (rtmp://host[:port]/app)",
    ))?;
    let args: Vec<String> = rest.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let addr = decoded(field("addr").unwrap_or_default())?;
    Ok(Ask {
        scene,
        host,
        path: stream_path(&app, &name)?,
        query: stream_args(&args.join("&")),
        client: Client::Reported(addr.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())),
        headers: None,

        media_stream: true,
        pinned: None,
    })
}

/// A form value: `+` is a space, then strict percent-decoding, UTF-8.
fn decoded(v: &str) -> Result<String, BadHook> {
    let plus = v.replace('+', " ");
    percent_decode(&plus)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(BadHook::Shape("a field has a broken percent-escape"))
}

/// The host of `rtmp://host[:port]/app[?args]` (any scheme), lowercase.
fn host_of_tcurl(tcurl: &str) -> Option<String> {
    let (_, rest) = tcurl.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    normalize_host(authority)
}

/// `/{app}/{stream}` from decoded names. Names are used as written; one
/// that a URL path would have to escape is refused rather than re-encoded.
fn stream_path(app: &str, stream: &str) -> Result<String, BadHook> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'?' | b'#' | b'%' | b'\\'))
    };
    if !plain(app) || !plain(stream) {
        return Err(BadHook::Shape(
            "app and stream must be non-empty printable ASCII without ? # % or backslash",
        ));
    }
    Ok(format!("/{app}/{stream}"))
}

/// Schemes that judge a stream by its last path segment without the
/// extension (Wangsu when `path_includes_extension = false`).
const STREAM_NAME_SCHEMES: [&str; 3] = ["tencent", "volcengine", "wangsu"];

/// Whether a media server's `/{app}/{stream}` is one app and one stream
/// name without a dot.
///
/// Why: a stream-name scheme (Tencent, Volcengine) judges the last path
/// segment without its extension, so `x/cam` or `cam.evil` would be judged
/// as `cam` while the media server serves another stream.
fn one_plain_stream(path: &str) -> bool {
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
    matches!(
        (segments.next(), segments.next(), segments.next()),
        (Some(_), Some(stream), None) if !stream.contains('.')
    )
}

/// A media server's stream args without the proxy's HLS session token:
/// those are for HLS children fetched through the proxy, never a stream.
fn stream_args(args: &str) -> Option<String> {
    match strip_params(args, &[SESSION_PARAM]) {
        Some(q) if !q.is_empty() => Some(q),
        _ => None,
    }
}

/// The body SRS posts (`http_hooks`, documented in SRS's `full.conf`):
/// `{"action": "on_play", "client_id": …, "ip": "192.168.1.10", "vhost":
/// "video.test.com", "app": "live", "stream": "livestream", "param":
/// "?token=xxx&salt=yyy", …}`; other fields are ignored.
#[derive(Deserialize)]
struct SrsBody {
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    #[serde(default)]
    vhost: Option<String>,
    #[serde(default, rename = "tcUrl")]
    tc_url: Option<String>,
    app: String,
    stream: String,
    #[serde(default)]
    param: Option<String>,
}

/// SRS's default vhost name: the client asked by address, so the host is
/// taken from `tcUrl`.
const SRS_DEFAULT_VHOST: &str = "__defaultVhost__";

fn srs_ask(scene: Scene, body: &[u8]) -> Result<Ask, BadHook> {
    // Why no serde message: it could quote a value (the param holds the token).
    let b: SrsBody = serde_json::from_slice(body)
        .map_err(|_| BadHook::Shape("the body is not SRS's JSON (needs app and stream, text)"))?;
    let expected = match scene {
        Scene::Play => "on_play",
        Scene::Publish => "on_publish",
    };
    if b.action.as_deref().is_some_and(|a| a != expected) {
        return Err(BadHook::Shape(
            "`action` does not match this hook (on_play → /hooks/srs/on_play, on_publish → /hooks/srs/on_publish)",
        ));
    }
    let host = b
        .vhost
        .as_deref()
        .filter(|v| !v.is_empty() && *v != SRS_DEFAULT_VHOST)
        .and_then(normalize_host)
        .or_else(|| b.tc_url.as_deref().and_then(host_of_tcurl))
        .ok_or(BadHook::Shape("no host: neither a vhost nor a tcUrl"))?;
    let query = b
        .param
        .as_deref()
        .map(|p| p.strip_prefix('?').unwrap_or(p))
        .and_then(stream_args);
    Ok(Ask {
        scene,
        host,
        path: stream_path(&b.app, &b.stream)?,
        query,
        client: Client::Reported(
            b.ip.as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok())
                .map(|ip| ip.to_canonical()),
        ),
        headers: None,

        media_stream: true,
        pinned: None,
    })
}

/// Decides `ask` at `now` (unix seconds; `at` for the throttle's clock).
fn decide(state: &AdminState, ask: &Ask, now: u64, at: Instant) -> Outcome {
    let shared = &state.shared;
    let snapshot = shared.snapshot.load();
    let Some(site) = snapshot.site(&ask.host) else {
        return Outcome::Rejected("unknown_host");
    };
    if ask.pinned.as_ref().is_some_and(|id| *id != site.config.id) {
        return Outcome::Rejected("other_site");
    }
    let path_and_query = match &ask.query {
        Some(q) => format!("{}?{q}", ask.path),
        None => ask.path.clone(),
    };
    if let Err(stop) = check_target(&snapshot.limits, &site.config, &path_and_query, &ask.path) {
        return Outcome::Rejected(stop.labels().1);
    }
    if ask.media_stream
        && STREAM_NAME_SCHEMES.contains(&site.auth.verifier.scheme())
        && !one_plain_stream(&ask.path)
    {
        return Outcome::Rejected("bad_path");
    }
    // The address is the end client's when the media server reported it or
    // a trusted proxy named it; only then may it spend a failure budget
    // (nginx's own address stands for every client behind it).
    let (ip, own_address) = match ask.client {
        Client::Reported(ip) => (ip, ip.is_some()),
        Client::Forwarded(peer) => {
            let none = HeaderMap::new();
            let headers = ask.headers.as_ref().unwrap_or(&none);
            let ip = client_ip(peer, headers, &site.config.trusted_proxies);
            (Some(ip), ip != peer)
        }
    };
    let throttle = shared.throttle.as_ref().filter(|_| own_address);
    if let (Some(t), Some(ip)) = (throttle, ip) {
        if !t.allows(ip, at) {
            return Outcome::Rejected("throttled");
        }
    }
    let auth: &SiteAuth = match ask.scene {
        Scene::Play => &site.auth,
        Scene::Publish => match &site.auth.push {
            Some(p) => p,
            None => return Outcome::Denied(DenyReason::NoKeys),
        },
    };
    // Requests with headers are decided afresh: a scheme may read cookies.
    let key = ask.headers.is_none().then(|| CacheKey {
        scene: ask.scene,
        host: ask.host.clone(),
        path_and_query: path_and_query.clone(),
        ip,
    });
    if let Some(k) = &key {
        if cache().allowed(k, site, now) {
            return Outcome::Allowed;
        }
    }
    let view = RequestView {
        host: &ask.host,
        path: &ask.path,
        query: ask.query.as_deref(),
        client_ip: ip,
        headers: ask.headers.as_ref(),
    };
    let verdict = authenticate(auth, &view, now);
    match verdict.result {
        // Why the key check for publishers: a verifier combining a vendor's
        // key groups (`AnyOf`) also tries the play keys it holds; a
        // publisher must have signed with a push key.
        Ok(_) if ask.scene == Scene::Publish && verdict.matched_key.is_none() => {
            Outcome::Denied(DenyReason::BadSignature)
        }
        Ok(grant) => {
            if let Some(k) = key {
                let until = grant.expires_at().map_or(now + HOOK_CACHE_TTL_SECS, |e| {
                    e.min(now + HOOK_CACHE_TTL_SECS)
                });
                cache().insert(k, site, until, now);
            }
            Outcome::Allowed
        }
        Err(reason) => {
            if let (Some(t), Some(ip)) = (throttle, ip) {
                if !verdict.by_session && throttle::is_guess(reason) {
                    t.failed(ip, at);
                }
            }
            Outcome::Denied(reason)
        }
    }
}

/// The exact inputs of a decision.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    scene: Scene,
    host: String,
    path_and_query: String,
    ip: Option<IpAddr>,
}

struct Entry {
    /// The site as served when decided: a reload or key sync (a new
    /// `Site`) makes the entry useless.
    site: Weak<Site>,
    /// Unix seconds; the entry answers while `now < until`.
    until: u64,
}

/// Allowed decisions for identical inputs, each until the earlier of
/// [`HOOK_CACHE_TTL_SECS`] and its token's expiry, at most
/// [`HOOK_CACHE_MAX_ENTRIES`].
#[derive(Default)]
struct Cache {
    entries: Mutex<HashMap<CacheKey, Entry>>,
}

/// Why process-wide: hooks are stateless requests on the admin listener;
/// entries are bound to the exact `Site` they were decided for (compared
/// by pointer, kept alive by the `Weak`), so they never answer for another
/// server in the process or another snapshot.
fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Entry>> {
        // Entries are inserted whole; a poisoned map is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn allowed(&self, key: &CacheKey, site: &Arc<Site>, now: u64) -> bool {
        let map = self.lock();
        map.get(key).is_some_and(|e| {
            now < e.until && e.site.upgrade().is_some_and(|s| Arc::ptr_eq(&s, site))
        })
    }

    fn insert(&self, key: CacheKey, site: &Arc<Site>, until: u64, now: u64) {
        if now >= until {
            return;
        }
        let mut map = self.lock();
        if map.len() >= HOOK_CACHE_MAX_ENTRIES {
            map.retain(|_, e| now < e.until && e.site.strong_count() > 0);
            if map.len() >= HOOK_CACHE_MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(
            key,
            Entry {
                site: Arc::downgrade(site),
                until,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_that_a_scheme_would_judge_as_another_are_refused() {
        assert!(one_plain_stream("/live/cam"));
        for path in ["/live/cam.evil", "/live/x/cam", "/li/ve/cam", "/live"] {
            assert!(!one_plain_stream(path), "{path}");
        }
        // HLS session tokens are for children fetched through the proxy.
        assert_eq!(stream_args("sg_session=abc"), None);
        assert_eq!(
            stream_args("txSecret=a&sg_session=abc&txTime=1").as_deref(),
            Some("txSecret=a&txTime=1")
        );
        let srs = br#"{"action":"on_play","app":"live","stream":"cam","vhost":"play.example.com","param":"?sg_session=abc"}"#;
        assert_eq!(srs_ask(Scene::Play, srs).unwrap().query, None);
    }

    const RTMP_PUBLISH: &str = "app=live&flashver=FMLE%2F3.0&swfurl=&tcurl=rtmp%3A%2F%2FPush.Example.com%3A1935%2Flive&pageurl=&addr=192.168.1.10&clientid=7&call=publish&name=stream1&type=live&txSecret=abc&txTime=5F5E0FF";

    #[test]
    fn every_hook_label_is_in_the_fixed_set() {
        let hooks = [
            Hook::AuthRequest,
            Hook::RtmpPlay,
            Hook::RtmpPublish,
            Hook::RtmpUpdate,
            Hook::SrsPlay,
            Hook::SrsPublish,
        ];
        let names: Vec<&str> = hooks.iter().map(|h| h.name()).collect();
        assert_eq!(names, crate::metrics::HOOK_NAMES);
    }

    #[test]
    fn rtmp_form_is_read_by_position() {
        let a = rtmp_ask(Hook::RtmpPublish, RTMP_PUBLISH).unwrap();
        assert_eq!(a.scene, Scene::Publish);
        assert_eq!(a.host, "push.example.com");
        assert_eq!(a.path, "/live/stream1");
        assert_eq!(a.query.as_deref(), Some("txSecret=abc&txTime=5F5E0FF"));
        assert!(matches!(a.client, Client::Reported(Some(ip)) if ip.to_string() == "192.168.1.10"));
    }

    #[test]
    fn an_rtmp_arg_named_like_a_field_stays_an_arg() {
        let form = "app=live&flashver=&swfurl=&tcurl=rtmp%3A%2F%2Fa.example.com%2Flive&pageurl=&addr=10.0.0.1&clientid=1&call=play&name=s&start=4294966296&duration=0&reset=0&name=other&txTime=1";
        let a = rtmp_ask(Hook::RtmpPlay, form).unwrap();
        assert_eq!(a.path, "/live/s");
        assert_eq!(a.query.as_deref(), Some("name=other&txTime=1"));
    }

    #[test]
    fn rtmp_update_follows_the_session_scene() {
        let form = "app=live&flashver=&swfurl=&tcurl=rtmp%3A%2F%2Fa.example.com%2Flive&pageurl=&addr=10.0.0.1&clientid=1&call=update_publish&time=10&timestamp=9000&name=s&txSecret=x&txTime=1";
        let a = rtmp_ask(Hook::RtmpUpdate, form).unwrap();
        assert_eq!(a.scene, Scene::Publish);
        assert_eq!(a.query.as_deref(), Some("txSecret=x&txTime=1"));
        // A publish notification sent to the play hook is a config mistake.
        assert!(rtmp_ask(Hook::RtmpPlay, RTMP_PUBLISH).is_err());
    }

    #[test]
    fn rtmp_names_that_a_path_would_escape_are_refused() {
        let form = RTMP_PUBLISH.replace("name=stream1", "name=a%3Fb");
        assert!(rtmp_ask(Hook::RtmpPublish, &form).is_err());
    }

    #[test]
    fn srs_body_is_read_from_the_documented_shape() {
        let body = br#"{"action": "on_play", "client_id": 1985, "ip": "192.168.1.10", "vhost": "video.test.com", "app": "live", "stream": "livestream", "param": "?token=xxx&salt=yyy", "pageUrl": "http://www.test.com/live.html"}"#;
        let a = srs_ask(Scene::Play, body).unwrap();
        assert_eq!(a.host, "video.test.com");
        assert_eq!(a.path, "/live/livestream");
        assert_eq!(a.query.as_deref(), Some("token=xxx&salt=yyy"));
        let default_vhost = br#"{"action": "on_publish", "client_id": "9308h583", "ip": "192.168.1.10", "vhost": "__defaultVhost__", "app": "live", "tcUrl": "rtmp://push.test.com/live", "stream": "s", "param": ""}"#;
        let a = srs_ask(Scene::Publish, default_vhost).unwrap();
        assert_eq!(a.host, "push.test.com");
        assert_eq!(a.query, None);
        assert!(srs_ask(Scene::Publish, body).is_err());
    }

    #[test]
    fn tcurl_host_drops_port_user_and_app() {
        assert_eq!(
            host_of_tcurl("rtmp://u@A.example.com:1935/live?x=1").as_deref(),
            Some("a.example.com")
        );
        assert_eq!(
            host_of_tcurl("rtmp://[::1]:1935/live").as_deref(),
            Some("::1")
        );
        assert_eq!(host_of_tcurl("live"), None);
    }
}
