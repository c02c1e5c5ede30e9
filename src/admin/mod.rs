//! The admin listener: `/metrics` (Prometheus text), `/healthz` and `/readyz`.
//!
//! Separate from the proxy listeners so it can be bound to a private address.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::proxy::body::{full, ProxyBody};
use crate::proxy::Shared;

/// Seconds an admin client has to send its request head.
pub const ADMIN_HEADER_READ_TIMEOUT_SECS: u64 = 10;

/// Serves admin requests until `stop` flips. Once `draining` flips (the
/// proxy stopped accepting and drains), `/readyz` answers 503 so a load
/// balancer takes the instance out, while `/metrics` and `/healthz` keep
/// answering until the drain is over and `stop` flips.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    draining: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(error) => {
                    warn!(%error, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let shared = shared.clone();
        let draining = draining.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shared = shared.clone();
                let draining = *draining.borrow();
                async move { Ok::<_, Infallible>(route(&shared, &req, draining)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(ADMIN_HEADER_READ_TIMEOUT_SECS))
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(error) = conn.await {
                debug!(%error, client = %remote, "admin connection error");
            }
        });
    }
}

fn route(shared: &Shared, req: &Request<Incoming>, draining: bool) -> Response<ProxyBody> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            shared.metrics.render(),
        ),
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", b"ok\n".to_vec()),
        (&Method::GET, "/readyz") if draining => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            b"shutting down\n".to_vec(),
        ),
        (&Method::GET, "/readyz") => {
            // Ready once every site can verify: it has keys, or its vendor answered.
            let snap = shared.snapshot.load();
            let waiting: Vec<&str> = snap
                .sites()
                .iter()
                .filter(|s| !s.ready())
                .map(|s| s.config.id.as_str())
                .collect();
            if waiting.is_empty() {
                (StatusCode::OK, "text/plain", b"ready\n".to_vec())
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("waiting for keys: {}\n", waiting.join(", ")).into_bytes(),
                )
            }
        }
        (&Method::GET, _) => (StatusCode::NOT_FOUND, "text/plain", b"not found\n".to_vec()),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            b"method not allowed\n".to_vec(),
        ),
    };
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}
