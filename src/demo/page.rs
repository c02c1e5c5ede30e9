//! The demo's player page: a small HTML page with hls.js and mpegts.js
//! (shipped in `demo/player/` with their licences, embedded here; no CDN),
//! served on a listener of its own. Its origin differs from the proxy's, so
//! the browser fetches the signed URLs through CORS, as a real player site
//! would.
//!
//! `/urls.json` hands the page freshly signed URLs on every load (the demo's
//! key never leaves the process): the HLS master, the FLV stream, and an HLS
//! URL that has already expired, to show a denial read from JavaScript.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::proxy::body::{full, ProxyBody};

/// The page's files: path, content type, bytes.
const FILES: [(&str, &str, &[u8]); 4] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../demo/player/index.html"),
    ),
    (
        "/player.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../demo/player/player.js"),
    ),
    (
        "/hls.light.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../demo/player/hls.light.min.js"),
    ),
    (
        "/mpegts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../demo/player/mpegts.js"),
    ),
];

/// The URLs the page plays, signed for one page load.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlayerUrls {
    /// The signed HLS master playlist.
    pub hls: String,
    /// The signed FLV stream.
    pub flv: String,
    /// The HLS master signed with an expiry in the past (denied: `expired`).
    pub expired_hls: String,
}

/// Signs fresh [`PlayerUrls`]; an error is shown to the page as text.
pub type Signer = Arc<dyn Fn() -> Result<PlayerUrls, String> + Send + Sync>;

/// The page's listener, bound before the demo config is written (the config's
/// CORS policy names the page's origin), served once the proxy is up.
pub struct PlayerPage {
    listener: TcpListener,
    addr: SocketAddr,
}

impl PlayerPage {
    /// Binds the page's listener.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<PlayerPage> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        Ok(PlayerPage { listener, addr })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The page's link as printed: a wildcard bind is reached on loopback.
    pub fn url(&self) -> String {
        let mut a = self.addr;
        if a.ip().is_unspecified() {
            a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{a}/")
    }

    /// The `Origin`s a browser sends for this page: reached on loopback by
    /// address or as `localhost`, or at the address it is bound to.
    pub fn origins(&self) -> Vec<String> {
        let port = self.addr.port();
        let mut origins = vec![
            format!("http://127.0.0.1:{port}"),
            format!("http://localhost:{port}"),
        ];
        let ip = self.addr.ip();
        if !ip.is_unspecified() && ip != std::net::Ipv4Addr::LOCALHOST {
            origins.push(format!("http://{}", self.addr));
        }
        origins
    }

    /// Serves the page until the process exits.
    pub fn serve(self, sign: Signer) {
        tokio::spawn(super::serve(self.listener, move |req| {
            let sign = sign.clone();
            async move { Ok::<_, Infallible>(page(&req, &sign)) }
        }));
    }
}

fn page(req: &Request<Incoming>, sign: &Signer) -> Response<ProxyBody> {
    let path = req.uri().path();
    let path = if path == "/index.html" { "/" } else { path };
    let (status, ctype, body) = if path == "/urls.json" {
        match sign().and_then(|u| serde_json::to_string(&u).map_err(|e| e.to_string())) {
            Ok(json) => (StatusCode::OK, "application/json", full(json)),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                full(format!("cannot sign the demo URLs: {e}\n")),
            ),
        }
    } else if let Some((_, ctype, bytes)) = FILES.iter().find(|(p, _, _)| *p == path) {
        (
            StatusCode::OK,
            *ctype,
            full(bytes::Bytes::from_static(bytes)),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            full("not found\n"),
        )
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    // Why: signed URLs are minted per load and must not be cached.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
