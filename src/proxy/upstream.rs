//! Forwarding to the origin: one origin connection pool per site and kind
//! of response, request header preparation, and origin failures.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use hyper::body::Incoming;
use rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::body::BoxError;
use super::pool::{OriginPool, PoolConfig};
use crate::config::{OriginHost, SiteConfig};

/// The origin pool of one site.
pub type OriginClient = OriginPool<Incoming>;

/// An origin response body as the proxy reads it.
pub type OriginBody = super::pool::OriginBody<Incoming>;

/// Why an origin client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// rustls refused the configuration.
    #[error("origin TLS setup failed")]
    Tls(#[from] rustls::Error),
    /// The origin's host cannot be a TLS server name.
    #[error("origin host is not a valid TLS server name")]
    ServerName,
}

/// Largest buffer of origin bytes read ahead of the client, per connection
/// (hyper's minimum). A stalled reader holds about three such buffers (this
/// one, the chunk handed over, the chunk queued for the client socket).
pub const ORIGIN_MAX_BUF_BYTES: usize = 8 * 1024;

/// Largest buffer of origin bytes read at once for finite responses
/// (playlists, segments, files): big reads mean few syscalls per body.
pub const ORIGIN_BULK_BUF_BYTES: usize = 64 * 1024;

/// True for paths of endless streams (HTTP-FLV), which go through the
/// small-buffer client: a viewer that stops reading then holds little.
pub fn is_stream_path(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() >= 4 && b[b.len() - 4..].eq_ignore_ascii_case(b".flv")
}

/// Builds the site's pools: TCP connect timeout, TLS verified against the
/// webpki roots or the site's CA file, HTTP/1.1 (and h2 via ALPN on
/// https). The bulk pool reads up to [`ORIGIN_BULK_BUF_BYTES`] at once;
/// `stream` builds the one for endless streams ([`ORIGIN_MAX_BUF_BYTES`]).
pub fn build_client(site: &SiteConfig, stream: bool) -> Result<OriginClient, ClientBuildError> {
    build_client_for(
        site,
        if stream {
            ORIGIN_MAX_BUF_BYTES
        } else {
            ORIGIN_BULK_BUF_BYTES
        },
    )
}

/// [`build_client`] for any request body type (the operator API's origin
/// probes send none) and read buffer bound.
pub fn build_client_for<B>(
    site: &SiteConfig,
    max_buf: usize,
) -> Result<OriginPool<B>, ClientBuildError>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let origin = &site.origin;
    let tls = if origin.tls {
        let roots = match &origin.ca_roots {
            Some(roots) => RootCertStore::clone(roots),
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let mut tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
        // Why HTTP/1.1 only when the client's Host is sent: in HTTP/2 the
        // request's :authority (the origin, which we connect to) and a
        // different Host header would contradict each other (RFC 9113
        // §8.3.1). HTTP/1.1 alone offers no ALPN at all.
        if site.origin_host_header == OriginHost::Origin {
            tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        Some(TlsConnector::from(Arc::new(tls)))
    } else {
        None
    };
    OriginPool::new(PoolConfig {
        scheme: if origin.tls {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        },
        authority: origin.authority.clone(),
        tls,
        connect_timeout: site.connect_timeout,
        idle_timeout: site.pool_idle_timeout,
        read_timeout: site.origin_read_timeout,
        // Why a small read buffer: a client that stops reading leaves what
        // the origin sent in this buffer; bounded, a stalled reader costs
        // little memory (hyper's default grows to ~400 KiB).
        max_buf,
    })
    .ok_or(ClientBuildError::ServerName)
}

/// How an origin exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP/TLS connection to the origin failed (refused, unreachable, bad certificate).
    #[error("origin connect failed: {0}")]
    Connect(BoxError),
    /// The origin did not connect or answer in time.
    #[error("origin timed out during {0}")]
    Timeout(&'static str),
    /// The connection broke or the origin spoke bad HTTP.
    #[error("origin exchange failed: {0}")]
    Protocol(BoxError),
    /// Every origin connection the descriptors allow is open.
    #[error("too many origin connections open")]
    Busy,
}

impl UpstreamError {
    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Protocol(_) => "protocol",
            UpstreamError::Busy => "busy",
        }
    }
}

/// The names one pass over a message's headers looks for: first the
/// headers that describe one hop, never forwarded (RFC 9110 §7.6.1), and
/// `Upgrade`; then the URL overrides some origin frameworks route by (IIS
/// URL Rewrite, older Symfony and Zend), never forwarded either: the
/// origin must serve the path that was verified; then the two a response
/// may point at the origin with.
static NAMES: [HeaderName; 13] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    header::LOCATION,
    header::CONTENT_LOCATION,
];

/// The bits of [`scan_names`] for the names never forwarded.
const HOP_BY_HOP: u16 = (1 << 11) - 1;
const TRANSFER_ENCODING: u16 = 1 << 7;
const LOCATION: u16 = 1 << 11;
const CONTENT_LOCATION: u16 = 1 << 12;
/// Some `Access-Control-*` name is present.
const CORS: u16 = 1 << 13;

/// Which of [`NAMES`] are present (bit *i* for `NAMES[i]`), and [`CORS`].
fn scan_names(headers: &HeaderMap) -> u16 {
    let mut present = 0u16;
    for name in headers.keys() {
        let s = name.as_str();
        // Why a dispatch on the length first: most names of a typical
        // message (`date`, `content-type`, …) fail it at once, without a
        // single comparison.
        let candidates: &[usize] = match s.len() {
            2 => &[5],
            7 => &[6, 8],
            8 => &[11],
            10 => &[0, 1],
            13 => &[10],
            14 => &[9],
            16 => &[2, 12],
            17 => &[7],
            18 => &[3],
            19 => &[4],
            _ => &[],
        };
        for &i in candidates {
            if NAMES[i] == name {
                present |= 1 << i;
            }
        }
        if s.starts_with("access-control-") {
            present |= CORS;
        }
    }
    present
}

/// Removes the hop-by-hop headers and the names `Connection` lists.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    remove_hop_by_hop_found(headers, scan_names(headers));
}

/// [`remove_hop_by_hop`] once [`scan_names`] has said what is present.
fn remove_hop_by_hop_found(headers: &mut HeaderMap, present: u16) {
    // Why by the names present: most messages carry none or only
    // `Connection: keep-alive`, and comparing the names present costs less
    // than hashing each hop-by-hop name for a removal; nothing is
    // allocated unless `Connection` lists a name of its own.
    if present & HOP_BY_HOP == 0 {
        return;
    }
    let mut listed: Vec<HeaderName> = Vec::new();
    if present & 1 != 0 {
        for value in headers.get_all(header::CONNECTION) {
            for token in value.as_bytes().split(|&b| b == b',') {
                let token = token.trim_ascii();
                if token.is_empty()
                    || token.eq_ignore_ascii_case(b"keep-alive")
                    || token.eq_ignore_ascii_case(b"close")
                {
                    continue;
                }
                // A token that is no header name names nothing present.
                if let Ok(name) = HeaderName::from_bytes(token) {
                    listed.push(name);
                }
            }
        }
    }
    for (i, name) in NAMES.iter().enumerate().take(11) {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    for name in listed {
        headers.remove(name);
    }
}

/// What the forwarder needs to know about the client side.
#[derive(Debug, Clone, Copy)]
pub struct ClientSide<'a> {
    /// Client address.
    pub remote: SocketAddr,
    /// Whether the client connected over TLS.
    pub tls: bool,
    /// The Host the client asked for, as sent (may include a port).
    pub host_header: &'a HeaderValue,
    /// Whether the peer is one of the site's trusted proxies.
    pub peer_trusted: bool,
    /// The client address the verdict used (see `proxy::client_ip`).
    pub client_ip: IpAddr,
}

/// Turns the client's request into the origin request: origin-form URI
/// `path_and_query` (the origin's base path included; the pool adds scheme
/// and authority for HTTP/2), HTTP/1.1, hop-by-hop headers removed, Host per the
/// site's policy, and `X-Forwarded-For/-Proto/-Host` and `X-Real-IP` set.
pub fn prepare(
    mut req: Request<Incoming>,
    site: &SiteConfig,
    path_and_query: String,
    client: ClientSide<'_>,
) -> Result<Request<Incoming>, http::Error> {
    let origin = &site.origin;
    *req.uri_mut() = Uri::from(PathAndQuery::try_from(path_and_query)?);
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    // Why: a client can send any X-Forwarded-For; only a trusted proxy's
    // list is extended, anyone else's is replaced by the peer address. Read
    // before the hop-by-hop removal, which a `Connection` header naming it
    // would otherwise turn into erasing the chain.
    let ip = client.remote.ip().to_canonical();
    let prev: Vec<&str> = if client.peer_trusted {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    } else {
        Vec::new()
    };
    // Spelled once, shared by both headers when the client is the peer (a
    // clone shares the bytes).
    let peer_header = ip_value(ip).map_err(http::Error::from)?;
    let xff = if prev.is_empty() {
        peer_header.clone()
    } else {
        HeaderValue::from_str(&format!("{}, {ip}", prev.join(", "))).map_err(http::Error::from)?
    };
    remove_hop_by_hop(headers);
    // Only our own X-Forwarded-* reach the origin; RFC 7239 Forwarded from
    // the client is not passed on as if we had vouched for it.
    headers.remove(header::FORWARDED);
    let client_host = client.host_header.clone();
    let host = match site.origin_host_header {
        OriginHost::Origin => origin.host_value.clone(),
        OriginHost::Client => client_host.clone(),
    };
    headers.insert(header::HOST, host);
    headers.insert(HeaderName::from_static("x-forwarded-for"), xff);
    // Origins behind nginx often trust `X-Real-IP` (`real_ip_header`): it
    // is the client address the verdict used (the peer, or behind trusted
    // proxies the right-most untrusted X-Forwarded-For hop), never a value
    // a client or proxy sent.
    let real_ip = if client.client_ip == ip {
        peer_header
    } else {
        ip_value(client.client_ip).map_err(http::Error::from)?
    };
    headers.insert(HeaderName::from_static("x-real-ip"), real_ip);
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if client.tls { "https" } else { "http" }),
    );
    headers.insert(HeaderName::from_static("x-forwarded-host"), client_host);
    Ok(req)
}

/// Removes the header `header` and every `cookie=…` cookie (cookie names
/// are case-sensitive, as the verifier reads them; the other cookies stay;
/// a `Cookie` header left empty goes).
pub fn remove_token_carriers(headers: &mut HeaderMap, cookie: &str, header: &HeaderName) {
    headers.remove(header);
    let name = cookie.as_bytes();
    let holds = |v: &HeaderValue| {
        v.as_bytes()
            .split(|&b| b == b';')
            .any(|p| cookie_name(p) == name)
    };
    if !headers.get_all(header::COOKIE).iter().any(holds) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| {
            let pairs: Vec<&[u8]> = v
                .as_bytes()
                .split(|&b| b == b';')
                .filter(|p| {
                    let n = cookie_name(p);
                    !n.is_empty() && n != name
                })
                .map(<[u8]>::trim_ascii)
                .collect();
            (!pairs.is_empty())
                .then(|| HeaderValue::from_bytes(&pairs.join(&b"; "[..])).ok())
                .flatten()
        })
        .collect();
    headers.remove(header::COOKIE);
    for v in kept {
        headers.append(header::COOKIE, v);
    }
}

/// The name of one `name=value` cookie pair, trimmed.
fn cookie_name(pair: &[u8]) -> &[u8] {
    let pair = pair.trim_ascii();
    pair.split(|&b| b == b'=')
        .next()
        .unwrap_or(pair)
        .trim_ascii()
}

/// `ip` as a header value (IPv4 without the formatting machinery: this
/// runs on every request).
fn ip_value(ip: IpAddr) -> Result<HeaderValue, http::header::InvalidHeaderValue> {
    match ip {
        IpAddr::V4(v4) => HeaderValue::from_str(crate::host::DottedQuad::of(v4).as_str()),
        IpAddr::V6(_) => HeaderValue::from_str(&ip.to_string()),
    }
}

/// Cleans an origin response for the client: hop-by-hop headers go; the
/// origin's own `Access-Control-*` headers go (the site's CORS policy alone
/// speaks to browsers); a `Location` or `Content-Location` pointing at the
/// origin is rewritten to the address the client used (`tls`, and the Host
/// it sent), like nginx's default `proxy_redirect`, so the origin's address
/// never reaches the client.
pub fn filter_response<B>(
    resp: &mut Response<B>,
    site: &SiteConfig,
    tls: bool,
    host: &HeaderValue,
) {
    let h = resp.headers_mut();
    // One pass over the names says which of the steps below have work.
    let present = scan_names(h);
    // Why: with both, the body was read by its chunked framing (RFC 9112
    // §6.3); the origin's Content-Length no longer describes it.
    if present & TRANSFER_ENCODING != 0 {
        h.remove(header::CONTENT_LENGTH);
    }
    remove_hop_by_hop_found(h, present);
    if present & CORS != 0 {
        let cors: Vec<HeaderName> = h
            .keys()
            .filter(|n| n.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for n in cors {
            h.remove(n);
        }
    }
    if present & (LOCATION | CONTENT_LOCATION) == 0 {
        return;
    }
    // Routed requests have a text Host (checked when routing).
    let Ok(host) = host.to_str() else {
        return;
    };
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = h.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(rewritten) = unproxied(v, &site.origin, tls, host) {
            if let Ok(v) = HeaderValue::from_str(&rewritten) {
                h.insert(name, v);
            }
        }
    }
}

/// `location` with the origin's `scheme://authority/base_path` prefix
/// replaced by the client's `scheme://host`; `None` when it does not point
/// at the origin.
fn unproxied(
    location: &str,
    origin: &crate::config::Origin,
    tls: bool,
    host: &str,
) -> Option<String> {
    let scheme = if origin.tls { "https://" } else { "http://" };
    let rest = strip_prefix_ignore_case(location, scheme)?;
    let authority = origin.authority.as_str();
    let rest = strip_prefix_ignore_case(rest, authority)?;
    // The authority must end here (not `origin:80xyz`).
    if !(rest.is_empty() || rest.starts_with(['/', '?', '#'])) {
        return None;
    }
    let rest = match rest.strip_prefix(origin.base_path.as_str()) {
        Some(r)
            if !origin.base_path.is_empty() && (r.is_empty() || r.starts_with(['/', '?', '#'])) =>
        {
            r
        }
        _ => rest,
    };
    let rest = if rest.starts_with('/') {
        rest.to_owned()
    } else {
        format!("/{rest}")
    };
    let scheme = if tls { "https" } else { "http" };
    Some(format!("{scheme}://{host}{rest}"))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::{
        ip_value, is_stream_path, remove_hop_by_hop, remove_token_carriers, scan_names, CORS, NAMES,
    };
    use http::header::{self, HeaderName};
    use http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn ip_values_are_spelled_as_display_does() {
        for ip in [
            "0.0.0.0",
            "1.2.3.4",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "10.200.30.249",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let addr: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(ip_value(addr).unwrap(), addr.to_string().as_str());
        }
        for n in (0..=u32::MAX).step_by(7_919_993) {
            let addr = std::net::IpAddr::V4(n.into());
            assert_eq!(ip_value(addr).unwrap(), addr.to_string().as_str());
        }
    }

    #[test]
    fn token_carriers_go_and_other_cookies_stay() {
        let name = HeaderName::from_static("authtoken");
        let mut h = HeaderMap::new();
        h.insert("AuthToken", HeaderValue::from_static("exp=1~hmac=ab"));
        let cookie = |v| HeaderValue::from_static(v);
        h.append(header::COOKIE, cookie("a=1; AuthToken=exp=1~hmac=ab; b=2"));
        h.append(header::COOKIE, cookie("AuthToken=x"));
        h.append(header::COOKIE, cookie("AuthTokenx=kept"));
        h.append(header::COOKIE, cookie("authtoken=another"));
        remove_token_carriers(&mut h, "AuthToken", &name);
        assert!(h.get("authtoken").is_none());
        let cookies: Vec<_> = h.get_all(header::COOKIE).iter().collect();
        assert_eq!(
            cookies,
            ["a=1; b=2", "AuthTokenx=kept", "authtoken=another"]
        );
        let mut untouched = HeaderMap::new();
        untouched.insert(header::COOKIE, cookie("a=1;b=2"));
        remove_token_carriers(&mut untouched, "AuthToken", &name);
        assert_eq!(untouched.get(header::COOKIE).unwrap(), "a=1;b=2");
    }

    #[test]
    fn each_scanned_name_is_found_by_its_length() {
        for (i, name) in NAMES.iter().enumerate() {
            let mut h = headers(&[("date", "x"), ("content-type", "y")]);
            h.insert(name.clone(), HeaderValue::from_static("1"));
            assert_eq!(scan_names(&h), 1 << i, "{name}");
        }
        // Same lengths, other names; CORS by prefix only.
        let h = headers(&[("x-abcdefg", "1"), ("ab", "2"), ("abcdefghij", "3")]);
        assert_eq!(scan_names(&h), 0);
        let h = headers(&[("access-control-max-age", "1")]);
        assert_eq!(scan_names(&h), CORS);
        let h = headers(&[("access-controlx", "1"), ("access-control", "1")]);
        assert_eq!(scan_names(&h), 0);
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, X-Secret-Hop , upgrade"),
            ("connection", "x-second"),
            ("keep-alive", "timeout=5"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("trailer", "x-t"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic eA=="),
            ("proxy-authenticate", "Basic"),
            ("x-secret-hop", "1"),
            ("x-second", "2"),
            ("content-type", "video/mp2t"),
            ("x-end-to-end", "3"),
        ]);
        remove_hop_by_hop(&mut h);
        let mut left: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "x-end-to-end"]);

        // Nothing hop-by-hop: untouched, values and order kept.
        let mut h = headers(&[("content-type", "a"), ("x-a", "1"), ("x-a", "2")]);
        let before = h.clone();
        remove_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn flv_paths_take_the_small_buffer_client() {
        assert!(is_stream_path("/live/s.flv"));
        assert!(is_stream_path("/live/S.FLV"));
        assert!(!is_stream_path("/live/s.m3u8"));
        assert!(!is_stream_path("/live/seg.ts"));
        assert!(!is_stream_path("flv"));
        assert!(!is_stream_path(""));
    }
}
