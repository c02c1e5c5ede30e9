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
}

impl UpstreamError {
    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect(_) => "connect",
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Protocol(_) => "protocol",
        }
    }
}

/// True for the headers that describe one hop, never forwarded (RFC 9110
/// §7.6.1), and `Upgrade`.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Why scans over the names present: most messages carry none or one
    // (`Connection: keep-alive`), and comparing names costs less than
    // hashing each hop-by-hop name for a removal. Any `Connection` header
    // is itself hop-by-hop, so the names it lists are never skipped.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    // The names `Connection` lists beyond the usual `keep-alive`/`close`
    // (an empty list allocates nothing).
    let listed: Vec<&str> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
        .collect();
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n) || listed.iter().any(|t| t.eq_ignore_ascii_case(n.as_str())))
        .cloned()
        .collect();
    for name in doomed {
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
    pub host_header: &'a str,
    /// Whether the peer is one of the site's trusted proxies.
    pub peer_trusted: bool,
}

/// Turns the client's request into the origin request: origin-form URI
/// `path_and_query` (the origin's base path included; the pool adds scheme
/// and authority for HTTP/2), HTTP/1.1, hop-by-hop headers removed, Host per the
/// site's policy, and `X-Forwarded-For/-Proto/-Host` set.
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
    remove_hop_by_hop(headers);
    // Only our own X-Forwarded-* reach the origin; RFC 7239 Forwarded from
    // the client is not passed on as if we had vouched for it.
    headers.remove(header::FORWARDED);
    let host = match site.origin_host_header {
        OriginHost::Origin => HeaderValue::from_str(origin.authority.as_str()),
        OriginHost::Client => HeaderValue::from_str(client.host_header),
    };
    headers.insert(header::HOST, host.map_err(http::Error::from)?);
    // Why: a client can send any X-Forwarded-For; only a trusted proxy's
    // list is extended, anyone else's is replaced by the peer address.
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
    let xff = if prev.is_empty() {
        ip_value(ip)
    } else {
        HeaderValue::from_str(&format!("{}, {ip}", prev.join(", ")))
    };
    headers.insert(
        HeaderName::from_static("x-forwarded-for"),
        xff.map_err(http::Error::from)?,
    );
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if client.tls { "https" } else { "http" }),
    );
    headers.insert(
        HeaderName::from_static("x-forwarded-host"),
        HeaderValue::from_str(client.host_header).map_err(http::Error::from)?,
    );
    Ok(req)
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
pub fn filter_response<B>(resp: &mut Response<B>, site: &SiteConfig, tls: bool, host: &str) {
    let h = resp.headers_mut();
    remove_hop_by_hop(h);
    let cors: Vec<HeaderName> = h
        .keys()
        .filter(|n| n.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for n in cors {
        h.remove(n);
    }
    let located = h
        .keys()
        .any(|n| n == header::LOCATION || n == header::CONTENT_LOCATION);
    if !located {
        return;
    }
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
    use super::{ip_value, is_stream_path, remove_hop_by_hop};
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
