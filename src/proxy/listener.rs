//! Client listeners: accept loop, connection limit, TLS handshake, and
//! HTTP/1.1 + HTTP/2 (ALPN on TLS, prior knowledge on plain) via hyper-util's
//! auto builder.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::{handle, ConnInfo, Shared};
use crate::config::Limits;

/// Decrements a gauge when dropped.
struct GaugeGuard(prometheus::IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)));
    b
}

/// Accepts connections on `listener` until `shutdown` flips, then lets open
/// connections finish for `limits.shutdown_grace`.
///
/// `permits` is shared by every listener: at `max_connections` the loop stops
/// accepting, so further clients wait in the kernel backlog instead of
/// being accepted and starved.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    limits: Limits,
    permits: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let builder = builder(&limits);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    warn!(%error, "accept failed");
                    shared.metrics.connection_errors.with_label_values(&["accept"]).inc();
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%error, "set_nodelay failed");
        }
        let shared = shared.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            shared.metrics.active_connections.inc();
            let _gauge = GaugeGuard(shared.metrics.active_connections.clone());
            let conn = ConnInfo {
                remote,
                tls: tls.is_some(),
            };
            match tls {
                None => serve_io(stream, conn, shared, builder, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(
                        limits.tls_handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => serve_io(s, conn, shared, builder, watcher).await,
                        Ok(Err(error)) => {
                            debug!(%error, client = %remote, "tls handshake failed");
                            shared
                                .metrics
                                .connection_errors
                                .with_label_values(&["tls_handshake"])
                                .inc();
                        }
                        Err(_) => {
                            debug!(client = %remote, "tls handshake timed out");
                            shared
                                .metrics
                                .connection_errors
                                .with_label_values(&["tls_handshake_timeout"])
                                .inc();
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            warn!("shutdown grace period over; closing remaining connections");
        }
    }
}

async fn serve_io<I>(
    io: I,
    conn: ConnInfo,
    shared: Arc<Shared>,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_shared = shared.clone();
    let svc = service_fn(move |req| {
        let shared = svc_shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, conn, req).await) }
    });
    let connection = builder.serve_connection(TokioIo::new(io), svc).into_owned();
    if let Err(error) = watcher.watch(connection).await {
        debug!(%error, client = %conn.remote, "connection ended with an error");
        shared
            .metrics
            .connection_errors
            .with_label_values(&["http"])
            .inc();
    }
}
