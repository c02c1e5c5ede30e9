//! The origin connection pool of one site: connects (TCP, TLS with ALPN),
//! hands out idle HTTP/1.1 connections last-in first-out, shares one
//! HTTP/2 connection when the origin chose h2, and takes an HTTP/1.1
//! connection back when the response body has been read to its end.
//!
//! Why our own pool rather than hyper-util's legacy client (which this
//! replaced): that client spawned a task per request to wait for the
//! connection to become idle again, cloned its connector per request, and
//! hashed a `(scheme, authority)` key per checkout — a pool per site needs
//! none of it. Here a connection goes back to the idle list from the
//! response body itself, when its last byte has been read; a body dropped
//! early takes its connection with it (HTTP/1.1 cannot reuse it).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::body::BoxError;
use super::upstream::UpstreamError;

/// Most idle HTTP/1.1 connections kept per pool; more are closed when
/// their response ends.
pub const MAX_IDLE: usize = 1024;

/// How a pool connects and speaks to its origin.
pub struct PoolConfig {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The origin's `host[:port]`.
    pub authority: Authority,
    /// TLS for https origins (ALPN set by the caller: `h2` offered or not).
    pub tls: Option<TlsConnector>,
    /// TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Idle connections older than this are closed.
    pub idle_timeout: Duration,
    /// Longest wait for the next frame of a response body.
    pub read_timeout: Duration,
    /// Largest read buffer per connection (HTTP/1.1), largest send buffer
    /// per stream (HTTP/2).
    pub max_buf: usize,
}

/// The pool; clones share it.
pub struct OriginPool<B> {
    inner: Arc<Inner<B>>,
}

impl<B> Clone for OriginPool<B> {
    fn clone(&self) -> Self {
        OriginPool {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<B> {
    config: PoolConfig,
    host: String,
    port: u16,
    server_name: Option<ServerName<'static>>,
    state: Mutex<State<B>>,
}

struct State<B> {
    /// Idle HTTP/1.1 connections, most recently used last.
    idle: VecDeque<Idle<B>>,
    /// Whether a task is pruning `idle`.
    reaper: bool,
    /// The shared HTTP/2 connection, once the origin chose h2.
    h2: Option<http2::SendRequest<B>>,
}

struct Idle<B> {
    tx: http1::SendRequest<B>,
    /// Its place in the origin connection budget, held while it is open.
    slot: OriginSlot,
    since: Instant,
}

/// A fresh connection.
enum Fresh<B> {
    H1(http1::SendRequest<B>, OriginSlot),
    H2(http2::SendRequest<B>),
}

impl<B> OriginPool<B>
where
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// A pool with no connections yet. `None` when the authority's host is
    /// not a valid TLS server name (https only).
    pub fn new(config: PoolConfig) -> Option<Self> {
        let raw = config.authority.host();
        // `[::1]` in a URI is `::1` on the wire.
        let host = raw.trim_start_matches('[').trim_end_matches(']').to_owned();
        let https = config.scheme == Scheme::HTTPS;
        let port = config
            .authority
            .port_u16()
            .unwrap_or(if https { 443 } else { 80 });
        let server_name = match config.tls {
            Some(_) => Some(ServerName::try_from(host.clone()).ok()?),
            None => None,
        };
        let inner = Arc::new(Inner {
            config,
            host,
            port,
            server_name,
            state: Mutex::new(State {
                idle: VecDeque::new(),
                reaper: false,
                h2: None,
            }),
        });
        register(&inner);
        Some(OriginPool { inner })
    }

    /// Sends `req` (its URI the origin-form path and query) to the origin:
    /// on the shared h2 connection, an idle HTTP/1.1 one, or a new one. A
    /// request that an idle connection closed before it was sent is tried
    /// again; one that reached the origin is not. The caller bounds the
    /// whole exchange with its own timeout (dropping the future closes the
    /// connection it was using).
    pub async fn send(
        &self,
        mut req: Request<B>,
    ) -> Result<Response<OriginBody<B>>, UpstreamError> {
        let read_timeout = self.inner.config.read_timeout;
        loop {
            let h2 = self.lock().h2.clone();
            if let Some(mut tx) = h2 {
                if tx.ready().await.is_ok() {
                    self.absolute(&mut req);
                    match tx.try_send_request(req).await {
                        Ok(resp) => return Ok(resp.map(|b| OriginBody::new(b, None, read_timeout))),
                        Err(mut e) => match e.take_message() {
                            Some(r) => req = r,
                            None => return Err(protocol(e.into_error())),
                        },
                    }
                }
                // Closed (or closing): the next request connects anew.
                self.lock().h2 = None;
                continue;
            }
            let Some((mut tx, slot)) = self.checkout() else {
                break;
            };
            if tx.ready().await.is_err() {
                continue;
            }
            origin_form(&mut req);
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.give_back_at_end(resp, tx, slot)),
                Err(mut e) => match e.take_message() {
                    // Closed before the request went out: not seen by the origin.
                    Some(r) => req = r,
                    None => return Err(protocol(e.into_error())),
                },
            }
        }
        // Boxed: connecting (TCP, TLS, h2 handshakes) is a big state
        // machine that every request's future would otherwise carry and move.
        match Box::pin(self.connect()).await? {
            Fresh::H1(mut tx, slot) => {
                tx.ready().await.map_err(protocol)?;
                origin_form(&mut req);
                let resp = tx.send_request(req).await.map_err(protocol)?;
                Ok(self.give_back_at_end(resp, tx, slot))
            }
            Fresh::H2(mut tx) => {
                self.lock().h2 = Some(tx.clone());
                tx.ready().await.map_err(protocol)?;
                self.absolute(&mut req);
                let resp = tx.send_request(req).await.map_err(protocol)?;
                Ok(resp.map(|b| OriginBody::new(b, None, read_timeout)))
            }
        }
    }

    /// Idle HTTP/1.1 connections held now.
    pub fn idle(&self) -> usize {
        self.lock().idle.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<B>> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// HTTP/2 needs `:scheme` and `:authority`: the absolute URI.
    fn absolute(&self, req: &mut Request<B>) {
        if req.uri().scheme().is_some() {
            return;
        }
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.inner.config.scheme.clone());
        parts.authority = Some(self.inner.config.authority.clone());
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }

    /// The most recently used idle connection that is still open and not
    /// past the idle timeout; the stale ones met on the way are closed.
    fn checkout(&self) -> Option<(http1::SendRequest<B>, OriginSlot)> {
        let timeout = self.inner.config.idle_timeout;
        let mut state = self.lock();
        while let Some(idle) = state.idle.pop_back() {
            if !idle.tx.is_closed() && idle.since.elapsed() < timeout {
                return Some((idle.tx, idle.slot));
            }
        }
        None
    }

    fn give_back_at_end(
        &self,
        resp: Response<Incoming>,
        tx: http1::SendRequest<B>,
        slot: OriginSlot,
    ) -> Response<OriginBody<B>> {
        let read_timeout = self.inner.config.read_timeout;
        if resp.body().is_end_stream() {
            // No body (HEAD, 204, 304, empty): idle as soon as hyper sees it.
            give_back(&self.inner, tx, slot);
            return resp.map(|b| OriginBody::new(b, None, read_timeout));
        }
        let pool = Arc::downgrade(&self.inner);
        resp.map(|b| OriginBody::new(b, Some(GiveBack { tx, slot, pool }), read_timeout))
    }

    async fn connect(&self) -> Result<Fresh<B>, UpstreamError> {
        // Past the budget, idle connections of any pool make room (another
        // request may take the place one frees: then the next one).
        let slot = loop {
            if let Some(slot) = OriginSlot::take() {
                break slot;
            }
            if !evict_one_idle() {
                return Err(UpstreamError::Busy);
            }
        };
        let cfg = &self.inner.config;
        let deadline = tokio::time::Instant::now() + cfg.connect_timeout;
        let tcp = tokio::time::timeout_at(
            deadline,
            TcpStream::connect((self.inner.host.as_str(), self.inner.port)),
        )
        .await
        .map_err(|_| UpstreamError::Timeout("connect"))?
        .map_err(|e| UpstreamError::Connect(e.into()))?;
        tcp.set_nodelay(true)
            .map_err(|e| UpstreamError::Connect(e.into()))?;
        let (Some(tls), Some(name)) = (&cfg.tls, &self.inner.server_name) else {
            return self.handshake_h1(TokioIo::new(tcp), slot).await;
        };
        let stream = tokio::time::timeout_at(deadline, tls.connect(name.clone(), tcp))
            .await
            .map_err(|_| UpstreamError::Timeout("connect"))?
            .map_err(|e| UpstreamError::Connect(crate::error_chain(&e).into()))?;
        if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
            let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_send_buf_size(cfg.max_buf)
                .handshake(TokioIo::new(stream))
                .await
                .map_err(|e| UpstreamError::Connect(crate::error_chain(&e).into()))?;
            tokio::spawn(async move {
                // The descriptor is counted until the connection ends.
                let _slot = slot;
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "origin h2 connection ended");
                }
            });
            return Ok(Fresh::H2(tx));
        }
        self.handshake_h1(TokioIo::new(stream), slot).await
    }

    async fn handshake_h1<T>(&self, io: T, slot: OriginSlot) -> Result<Fresh<B>, UpstreamError>
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (tx, conn) = http1::Builder::new()
            .max_buf_size(self.inner.config.max_buf)
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Connect(crate::error_chain(&e).into()))?;
        // The slot goes with the sender: in the pool while idle, with the
        // response while in use, released when the connection is dropped.
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "origin connection ended");
            }
        });
        Ok(Fresh::H1(tx, slot))
    }
}

/// A pool whose idle connections can make room in the budget.
trait EvictIdle: Send + Sync {
    /// Closes the oldest idle connection; false when there is none.
    fn evict_oldest(&self) -> bool;
}

impl<B: Send + 'static> EvictIdle for Inner<B> {
    fn evict_oldest(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.idle.pop_front().is_some()
    }
}

/// Every pool (weakly), for [`evict_one_idle`].
static POOLS: Mutex<Vec<Weak<dyn EvictIdle>>> = Mutex::new(Vec::new());

fn register<B: Send + 'static>(inner: &Arc<Inner<B>>) {
    let weak: Weak<dyn EvictIdle> = Arc::downgrade(inner) as Weak<dyn EvictIdle>;
    let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    pools.retain(|p| p.strong_count() > 0);
    pools.push(weak);
}

/// Closes one idle connection of some pool (its slot comes free at once);
/// false when no pool holds one.
fn evict_one_idle() -> bool {
    let pools: Vec<Arc<dyn EvictIdle>> = POOLS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    pools.iter().any(|p| p.evict_oldest())
}

/// Origin connections open now, in every pool.
static ORIGIN_OPEN: AtomicUsize = AtomicUsize::new(0);
/// Most origin connections open at once ([`set_origin_budget`]).
static ORIGIN_BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Bounds the origin connections of every pool together: the server sets it
/// to its client connection cap, so that clients and origins together stay
/// within the descriptors (see `fds`).
///
/// Why: an HTTP/2 client connection may hold an origin connection per
/// stream; without a bound, a few such clients took every descriptor, and
/// accepts then failed for everyone.
pub fn set_origin_budget(n: usize) {
    ORIGIN_BUDGET.store(n.max(1), Ordering::Relaxed);
}

/// One origin connection's place in the budget, given back when dropped.
struct OriginSlot(());

impl OriginSlot {
    fn take() -> Option<OriginSlot> {
        let budget = ORIGIN_BUDGET.load(Ordering::Relaxed);
        ORIGIN_OPEN
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < budget).then_some(n + 1)
            })
            .ok()
            .map(|_| OriginSlot(()))
    }
}

impl Drop for OriginSlot {
    fn drop(&mut self) {
        ORIGIN_OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

/// HTTP/1.1 to an origin sends the path and query alone.
fn origin_form<B>(req: &mut Request<B>) {
    if req.uri().scheme().is_some() {
        let pq = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
    }
}

fn protocol(e: hyper::Error) -> UpstreamError {
    UpstreamError::Protocol(crate::error_chain(&e).into())
}

/// Puts an HTTP/1.1 connection whose response has ended back in the idle
/// list (unless it closed or the list is full), and starts the task that
/// closes idle connections past the idle timeout if none runs.
fn give_back<B: Send + 'static>(
    inner: &Arc<Inner<B>>,
    tx: http1::SendRequest<B>,
    slot: OriginSlot,
) {
    if tx.is_closed() {
        return;
    }
    let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
    if state.idle.len() >= MAX_IDLE {
        return;
    }
    state.idle.push_back(Idle {
        tx,
        slot,
        since: Instant::now(),
    });
    if !state.reaper {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            state.reaper = true;
            rt.spawn(reap(Arc::downgrade(inner)));
        }
    }
}

/// Closes idle connections past the idle timeout, every half timeout,
/// until the list is empty or the pool is gone.
async fn reap<B>(pool: Weak<Inner<B>>) {
    loop {
        let Some(period) = pool.upgrade().map(|p| p.config.idle_timeout / 2) else {
            return;
        };
        tokio::time::sleep(period.max(Duration::from_millis(100))).await;
        let Some(inner) = pool.upgrade() else {
            return;
        };
        let timeout = inner.config.idle_timeout;
        let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .idle
            .retain(|i| !i.tx.is_closed() && i.since.elapsed() < timeout);
        if state.idle.is_empty() {
            state.reaper = false;
            return;
        }
    }
}

struct GiveBack<B> {
    tx: http1::SendRequest<B>,
    slot: OriginSlot,
    pool: Weak<Inner<B>>,
}

impl<B: Send + 'static> GiveBack<B> {
    fn now(self) {
        if let Some(inner) = self.pool.upgrade() {
            give_back(&inner, self.tx, self.slot);
        }
    }
}

pin_project_lite::pin_project! {
    /// An origin response body; an HTTP/1.1 connection goes back to its
    /// pool when this body has yielded its last byte. A body that yields
    /// nothing for the pool's `read_timeout` fails (`OriginReadTimeout`),
    /// which ends the response and closes the origin connection.
    pub struct OriginBody<B> {
        #[pin]
        inner: Incoming,
        back: Option<GiveBack<B>>,
        read_timeout: Duration,
        // Made at the first wait only: a body that arrives with its head
        // (most segments) never arms a timer.
        idle: Option<Pin<Box<tokio::time::Sleep>>>,
        // A frame came since the timer was last armed.
        progressed: bool,
    }
}

/// An origin sent no body bytes within `origin_read_timeout_secs`.
#[derive(Debug, thiserror::Error)]
#[error("the origin sent nothing for {0:?}")]
pub struct OriginReadTimeout(pub Duration);

impl<B> OriginBody<B> {
    fn new(inner: Incoming, back: Option<GiveBack<B>>, read_timeout: Duration) -> Self {
        OriginBody {
            inner,
            back,
            read_timeout,
            idle: None,
            progressed: false,
        }
    }
}

impl<B: Send + 'static> Body for OriginBody<B> {
    type Data = Bytes;
    type Error = crate::proxy::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Pending => {
                let timeout = *this.read_timeout;
                let idle = match this.idle {
                    Some(sleep) => {
                        if *this.progressed {
                            sleep.as_mut().reset(tokio::time::Instant::now() + timeout);
                        }
                        sleep
                    }
                    None => this.idle.insert(Box::pin(tokio::time::sleep(timeout))),
                };
                *this.progressed = false;
                if std::future::Future::poll(idle.as_mut(), cx).is_ready() {
                    return Poll::Ready(Some(Err(Box::new(OriginReadTimeout(timeout)))));
                }
                return Poll::Pending;
            }
            Poll::Ready(None) => {
                if let Some(back) = this.back.take() {
                    back.now();
                }
            }
            Poll::Ready(Some(Ok(_))) => {
                *this.progressed = true;
                if this.inner.is_end_stream() {
                    if let Some(back) = this.back.take() {
                        back.now();
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {}
        }
        polled.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
