//! The admin listener: `/metrics` (Prometheus text), `/healthz`, `/readyz`,
//! the operator API under `/v1/` ([`api`]) and the media-server hooks under
//! `/hooks/`.
//!
//! Separate from the proxy listeners so it can be bound to a private address.

pub mod api;
pub mod hooks;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::proxy::body::{full, ProxyBody};
use crate::proxy::Shared;
use crate::publish::Publisher;

/// Seconds an admin client has to send its request head.
pub const ADMIN_HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// Largest admin request body (API JSON, hook forms).
pub const ADMIN_MAX_BODY_BYTES: usize = 256 * 1024;
/// Seconds an admin client has to send its request body.
pub const ADMIN_BODY_READ_TIMEOUT_SECS: u64 = 10;

/// What admin requests are answered from.
#[derive(Clone)]
pub struct AdminState {
    /// Snapshot and metrics.
    pub shared: Arc<Shared>,
    /// The config in force and the snapshot swap (operator keys go through it).
    pub publisher: Arc<Publisher>,
}

/// Longest an admin connection lives, requests included (scrapes, probes,
/// hooks and operator calls take seconds; their clients reconnect).
pub const ADMIN_CONNECTION_LIFETIME: Duration = Duration::from_secs(120);
/// How long a request in progress at [`ADMIN_CONNECTION_LIFETIME`] may
/// still take before the connection is dropped.
pub const ADMIN_CONNECTION_GRACE: Duration = Duration::from_secs(60);

/// Serves admin requests until `stop` flips. Once `draining` flips (the
/// proxy stopped accepting and drains), `/readyz` answers 503 so a load
/// balancer takes the instance out, while `/metrics` and `/healthz` keep
/// answering until the drain is over and `stop` flips.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
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
        let state = state.clone();
        let draining = draining.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                let draining = *draining.borrow();
                async move { Ok::<_, Infallible>(route(&state, req, draining, remote).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(ADMIN_HEADER_READ_TIMEOUT_SECS))
                .serve_connection(TokioIo::new(stream), svc);
            // Why a lifetime: hyper has no write timeout, so a client that
            // asks and never reads would hold its connection for ever. At
            // the lifetime the request in progress may finish (and the
            // connection then closes), within a grace.
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => Some(r),
                () = tokio::time::sleep(ADMIN_CONNECTION_LIFETIME) => {
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(ADMIN_CONNECTION_GRACE, conn.as_mut()).await.ok()
                }
            };
            match result {
                Some(Err(error)) => debug!(%error, client = %remote, "admin connection error"),
                None => debug!(client = %remote, "admin connection closed at its lifetime"),
                Some(Ok(())) => {}
            }
        });
    }
}

async fn route(
    state: &AdminState,
    req: Request<Incoming>,
    draining: bool,
    remote: std::net::SocketAddr,
) -> Response<ProxyBody> {
    let path = req.uri().path();
    if path == "/v1" || path.starts_with("/v1/") {
        return api::handle(state, req, remote).await;
    }
    if path.starts_with("/hooks/") {
        return hooks::handle(state, req, remote).await;
    }
    basic(state, &req, draining)
}

fn basic(state: &AdminState, req: &Request<Incoming>, draining: bool) -> Response<ProxyBody> {
    let shared = &state.shared;
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
    respond(status, content_type, body)
}

/// A response with a body and its content type.
pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<ProxyBody> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    resp
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than [`ADMIN_MAX_BODY_BYTES`].
    #[error("the request body is larger than {ADMIN_MAX_BODY_BYTES} bytes")]
    TooLarge,
    /// Not complete within [`ADMIN_BODY_READ_TIMEOUT_SECS`].
    #[error("the request body did not arrive within {ADMIN_BODY_READ_TIMEOUT_SECS} s")]
    Timeout,
    /// The connection failed while reading it.
    #[error("the request body could not be read")]
    Read,
}

/// Reads a whole request body, bounded in size and time.
pub async fn read_body(body: Incoming) -> Result<Bytes, BodyError> {
    let limited = Limited::new(body, ADMIN_MAX_BODY_BYTES);
    let collected = tokio::time::timeout(
        Duration::from_secs(ADMIN_BODY_READ_TIMEOUT_SECS),
        limited.collect(),
    )
    .await
    .map_err(|_| BodyError::Timeout)?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Read),
    }
}
