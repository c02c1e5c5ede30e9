//! Client listeners: accept loop, connection limit, TLS handshake, and
//! HTTP/1.1 + HTTP/2 (ALPN on TLS, prior knowledge on plain) via hyper-util's
//! auto builder.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::body::WithGuard;
use super::per_ip::{Full, PerIp};
use super::{handle, ConnInfo, Shared};
use crate::config::Limits;
use http_body_util::BodyExt;

/// Decrements a gauge when dropped.
struct GaugeGuard(prometheus::IntGauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // Why no header read timeout of hyper's: the watchdog enforces
    // `header_read_timeout` (see `Activity::head_pending`); hyper's own
    // armed and dropped a timer for every request head, about 700
    // instructions per request.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        // Bytes queued per stream for a client that does not read.
        .max_send_buf_size(H2_MAX_SEND_BUF_BYTES)
        .keep_alive_interval(Some(H2_KEEPALIVE_INTERVAL))
        .keep_alive_timeout(H2_KEEPALIVE_INTERVAL);
    b
}

/// Largest response data queued per HTTP/2 stream ahead of the client.
const H2_MAX_SEND_BUF_BYTES: usize = 64 * 1024;
/// Most concurrent HTTP/2 streams per client connection. Why not more: each
/// stream may hold an origin connection and its buffers; a player needs a
/// handful.
const H2_MAX_CONCURRENT_STREAMS: u32 = 32;
/// HTTP/2 ping interval (and ping answer timeout) to detect dead peers.
const H2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// Requests in flight on one connection and when the last one ended.
///
/// Why: hyper-util's protocol sniffing read and idle HTTP/2 connections
/// have no timeout of their own, so a silent client could hold a
/// connection slot forever. A watchdog closes a connection that has had no
/// request in flight for too long: `header_read_timeout` before the first
/// request, `idle_timeout` afterwards, and `header_read_timeout` once an
/// HTTP/1 client has begun the next request head.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    requests: AtomicUsize,
    /// Milliseconds since the connection started when the last request ended.
    last_end_ms: AtomicU64,
    /// Bytes arrived while no request was in flight: the start of the next
    /// request head (cleared when a request begins). The watchdog times
    /// the head from the first tick that sees this, for HTTP/1 only (an
    /// idle HTTP/2 connection reads pings and window updates).
    head_pending: AtomicBool,
    /// The last request was HTTP/1.x.
    http1: AtomicBool,
    /// Milliseconds since the connection started (plus one; 0 = none) when a
    /// write began to wait for the client to read: the send timeout runs
    /// from here and any write progress clears it.
    write_blocked_ms: AtomicU64,
    /// Per HTTP/2 response in flight: when (ms since start, plus one; 0 = not
    /// waiting on the client) it handed a frame that the connection has not
    /// come back for. Catches what the socket cannot show: an HTTP/2 client
    /// that reads the socket but keeps a stream's window at zero.
    responses: std::sync::Mutex<Vec<Arc<AtomicU64>>>,
    /// Requests the client gave up before their response head (an HTTP/2
    /// stream reset, or a hang-up while waiting).
    cancelled: AtomicUsize,
    /// The peer is a trusted proxy of some site: it multiplexes many
    /// viewers, whose cancels add up, so it is never closed for them.
    trusted_peer: AtomicBool,
    /// Set by the listener's watchdog when the connection must close
    /// (a [`Watchdog`] as `u8`; 0 = not).
    verdict: AtomicU8,
    /// The connection's task, woken when `verdict` is set.
    waker: AtomicWaker,
}

impl Activity {
    /// Resolves once the watchdog has decided that the connection closes.
    fn closed_by_watchdog(&self) -> impl std::future::Future<Output = Watchdog> + '_ {
        std::future::poll_fn(|cx| {
            if let Some(why) = Watchdog::from_u8(self.verdict.load(Ordering::Acquire)) {
                return Poll::Ready(why);
            }
            self.waker.register(cx.waker());
            match Watchdog::from_u8(self.verdict.load(Ordering::Acquire)) {
                Some(why) => Poll::Ready(why),
                None => Poll::Pending,
            }
        })
    }

    fn responses(&self) -> std::sync::MutexGuard<'_, Vec<Arc<AtomicU64>>> {
        // Only timestamps inside: a poisoned list is still usable.
        self.responses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The oldest frame still waiting for the client, in ms since start.
    fn oldest_unconsumed_ms(&self) -> Option<u64> {
        self.responses()
            .iter()
            .map(|r| r.load(Ordering::SeqCst))
            .filter(|&t| t > 0)
            .min()
            .map(|t| t - 1)
    }
}

/// The client's socket, noting in [`Activity`] when writes stall and when
/// bytes arrive between requests.
///
/// Why at the socket: a client that stops reading stops hyper polling the
/// response body too, so nothing above the socket can see the stall.
struct WriteWatch<I> {
    io: I,
    activity: Arc<Activity>,
    started: Instant,
}

impl<I> WriteWatch<I> {
    fn note<T>(&self, r: &std::task::Poll<std::io::Result<T>>) {
        match r {
            std::task::Poll::Pending => {
                let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
                // Only the first stall counts: keep the earliest time.
                let _ = self.activity.write_blocked_ms.compare_exchange(
                    0,
                    now.saturating_add(1),
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
            }
            std::task::Poll::Ready(_) => self.activity.write_blocked_ms.store(0, Ordering::SeqCst),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for WriteWatch<I> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before && self.activity.in_flight.load(Ordering::Relaxed) == 0 {
            self.activity.head_pending.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for WriteWatch<I> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write(cx, buf);
        self.note(&r);
        r
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.note(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Why a watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Watchdog {
    /// No request in flight for too long.
    Idle = 1,
    /// A write made no progress for `send_timeout`.
    SendTimeout = 2,
    /// The client gave up most of its requests before their response head.
    Cancels = 3,
}

impl Watchdog {
    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Watchdog::Idle),
            2 => Some(Watchdog::SendTimeout),
            3 => Some(Watchdog::Cancels),
            _ => None,
        }
    }
}

/// Requests a connection may give up before their response head, once they
/// are also more than a tenth of its requests, before it is closed (a
/// ratio, so that cheap requests mixed in do not hide a flood).
///
/// Why: each such request may have cost an origin connection (one that was
/// sent a request is not reused), and an HTTP/2 client can open and reset
/// streams as fast as it can write (the "rapid reset" attack); a player
/// that abandons a segment now and then never comes near.
const MAX_CANCELLED_REQUESTS: usize = 100;

/// Held by a request (and its response body) while it is in flight.
struct InFlight {
    activity: Arc<Activity>,
    started: Instant,
    /// This response's entry in `Activity::responses`: HTTP/2 only. An
    /// HTTP/1 response is the only one on its connection, and a client that
    /// stops reading it shows at the socket (`WriteWatch`), so per-frame
    /// bookkeeping (a clock read per frame, a lock per request) would buy
    /// nothing there.
    handed: Option<Arc<AtomicU64>>,
    /// The response head was handed to hyper.
    answered: bool,
}

impl InFlight {
    fn new(activity: Arc<Activity>, started: Instant, version: http::Version) -> Self {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        activity.requests.fetch_add(1, Ordering::SeqCst);
        activity.head_pending.store(false, Ordering::Relaxed);
        activity
            .http1
            .store(version < http::Version::HTTP_2, Ordering::Relaxed);
        let handed = (version == http::Version::HTTP_2).then(|| {
            let handed = Arc::new(AtomicU64::new(0));
            activity.responses().push(handed.clone());
            handed
        });
        InFlight {
            activity,
            started,
            handed,
            answered: false,
        }
    }

    /// The request has its response head; dropping this now is no cancel.
    fn answered(mut self) -> Self {
        self.answered = true;
        self
    }
}

impl super::body::Progress for InFlight {
    fn handed_frame(&self) {
        if let Some(handed) = &self.handed {
            let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            handed.store(now.saturating_add(1), Ordering::SeqCst);
        }
    }

    fn waiting_on_source(&self) {
        if let Some(handed) = &self.handed {
            handed.store(0, Ordering::SeqCst);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.answered {
            let a = &self.activity;
            let cancelled = a.cancelled.fetch_add(1, Ordering::SeqCst) + 1;
            if cancelled > MAX_CANCELLED_REQUESTS
                && !a.trusted_peer.load(Ordering::Relaxed)
                && cancelled * 10 > a.requests.load(Ordering::SeqCst)
                && a.verdict.load(Ordering::Acquire) == 0
            {
                a.verdict.store(Watchdog::Cancels as u8, Ordering::Release);
                a.waker.wake();
            }
        }
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.last_end_ms.store(ms, Ordering::SeqCst);
        self.activity.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(handed) = &self.handed {
            self.activity
                .responses()
                .retain(|r| !Arc::ptr_eq(r, handed));
        }
    }
}

/// The connections one listener's watchdog looks after: one task for all
/// of them, every `tick`, rather than a timer per connection (a timer in
/// the connection's future was polled on every wake-up of the connection,
/// some 500 instructions per request).
///
/// It closes a connection idle past its limit, or whose writes to the
/// client have made no progress for `send_timeout` (streams included: a
/// viewer who reads slowly makes progress and is never cut), by setting
/// the connection's verdict and waking its task.
struct Watchdogs {
    /// Connections accepted since the last tick.
    incoming: std::sync::Mutex<Vec<Watch>>,
    limits: Limits,
}

/// One connection under watch.
struct Watch {
    activity: Weak<Activity>,
    started: Instant,
    /// The request count and time (since start) at which a tick first saw
    /// a request head begun; a different count is a new head.
    head_seen: Option<(usize, Duration)>,
}

impl Watchdogs {
    fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Watchdogs {
            incoming: std::sync::Mutex::new(Vec::new()),
            limits,
        })
    }

    fn watch(&self, activity: &Arc<Activity>, started: Instant) {
        self.incoming
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Watch {
                activity: Arc::downgrade(activity),
                started,
                head_seen: None,
            });
    }

    /// Looks at every connection each tick, for as long as the listener
    /// lives (the caller aborts it).
    async fn run(self: Arc<Self>) {
        let tick = Duration::from_millis(250)
            .min(self.limits.header_read_timeout)
            .min(self.limits.send_timeout);
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watched: Vec<Watch> = Vec::new();
        loop {
            ticks.tick().await;
            watched.append(
                &mut self
                    .incoming
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            watched.retain_mut(|w| {
                let Some(activity) = w.activity.upgrade() else {
                    return false;
                };
                match self.verdict(w, &activity) {
                    Some(why) => {
                        activity.verdict.store(why as u8, Ordering::Release);
                        activity.waker.wake();
                        false
                    }
                    None => true,
                }
            });
        }
    }

    /// Whether the connection must close now, and why.
    fn verdict(&self, w: &mut Watch, activity: &Activity) -> Option<Watchdog> {
        let limits = &self.limits;
        let elapsed = w.started.elapsed();
        let blocked = activity.write_blocked_ms.load(Ordering::SeqCst);
        let stalled_since = [
            (blocked > 0).then(|| blocked - 1),
            activity.oldest_unconsumed_ms(),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(since) = stalled_since {
            if elapsed.saturating_sub(Duration::from_millis(since)) >= limits.send_timeout {
                return Some(Watchdog::SendTimeout);
            }
        }
        if activity.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let requests = activity.requests.load(Ordering::SeqCst);
        if requests > 0
            && activity.http1.load(Ordering::Relaxed)
            && activity.head_pending.load(Ordering::Relaxed)
        {
            let since = match w.head_seen {
                Some((n, since)) if n == requests => since,
                _ => {
                    w.head_seen = Some((requests, elapsed));
                    elapsed
                }
            };
            if elapsed.saturating_sub(since) >= limits.header_read_timeout {
                return Some(Watchdog::Idle);
            }
        } else {
            w.head_seen = None;
        }
        let (since, limit) = if requests == 0 {
            (Duration::ZERO, limits.header_read_timeout)
        } else {
            (
                Duration::from_millis(activity.last_end_ms.load(Ordering::SeqCst)),
                limits.idle_timeout,
            )
        };
        (elapsed.saturating_sub(since) >= limit).then_some(Watchdog::Idle)
    }
}

/// Accepts connections on `listener` until `shutdown` flips, then lets open
/// connections finish for `limits.shutdown_grace`.
///
/// `permits` is shared by every listener: at `max_connections` the loop stops
/// accepting, so further clients wait in the kernel backlog instead of
/// being accepted and starved. `per_ip` (shared too) closes a connection
/// from an address that has `max_connections_per_ip` open already, unless
/// it is a trusted proxy of a site.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    limits: Limits,
    permits: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let builder = builder(&limits);
    let mut connections = tokio::task::JoinSet::new();
    let watchdogs = Watchdogs::new(limits);
    let watchdog_task = AbortOnDrop(tokio::spawn(watchdogs.clone().run()));
    loop {
        // Reap finished connection tasks so the set stays small.
        while connections.try_join_next().is_some() {}
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
                    count_connection_error(&shared, "accept");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let shared = shared.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let conn = ConnInfo {
            remote,
            tls: tls.is_some(),
        };
        let watched = Watched {
            activity: Arc::new(Activity::default()),
            started: Instant::now(),
        };
        let peer = remote.ip().to_canonical();
        let trusted = shared
            .snapshot
            .load()
            .sites()
            .iter()
            .any(|s| s.config.trusted_proxies.iter().any(|n| n.contains(&peer)));
        let ip_slot = if trusted {
            watched.activity.trusted_peer.store(true, Ordering::Relaxed);
            None
        } else {
            match per_ip.admit(peer) {
                Ok(slot) => slot,
                Err(Full) => {
                    // Closed unanswered (the permit goes back with it): an
                    // HTTP answer would cost what the limit is there to save.
                    debug!(client = %remote, "connection closed: max_connections_per_ip open from this address");
                    count_connection_error(&shared, "per_ip_limit");
                    continue;
                }
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            debug!(%error, "set_nodelay failed");
        }
        watchdogs.watch(&watched.activity, watched.started);
        let stream = WriteWatch {
            io: stream,
            activity: watched.activity.clone(),
            started: watched.started,
        };
        shared.metrics.active_connections.inc();
        let gauge = GaugeGuard(shared.metrics.active_connections.clone());
        // Why two spawns: a task is as big as its future's largest state;
        // one future for both would give every plain connection the room
        // of a TLS handshake and a TLS stream (10 KiB instead of 3).
        match tls {
            None => {
                connections.spawn(async move {
                    let _held = (permit, gauge, ip_slot);
                    serve_io(stream, conn, shared, builder, watcher, watched).await;
                });
            }
            Some(acceptor) => {
                connections.spawn(async move {
                    let _held = (permit, gauge, ip_slot);
                    let handshake =
                        tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream));
                    // Boxed: the handshake's state is not kept while serving.
                    match Box::pin(handshake).await {
                        Ok(Ok(s)) => {
                            serve_io(s, conn, shared, builder, watcher, watched).await;
                        }
                        Ok(Err(error)) => {
                            debug!(%error, client = %remote, "tls handshake failed");
                            count_connection_error(&shared, "tls_handshake");
                        }
                        Err(_) => {
                            debug!(client = %remote, "tls handshake timed out");
                            count_connection_error(&shared, "tls_handshake_timeout");
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            warn!(open = connections.len(), "shutdown grace period over; closing remaining connections");
        }
    }
    // Endless streams never finish on their own: end them now.
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    drop(watchdog_task);
}

/// Counts a connection ended (or refused) for `kind`, one of the labels
/// `connection_errors_total` is created with.
fn count_connection_error(shared: &Shared, kind: &'static str) {
    shared
        .metrics
        .connection_errors
        .with_label_values(&[kind])
        .inc();
}

/// Aborts its task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// True when a connection error only says the client hung up (reset, broken
/// pipe, closed mid-message).
fn client_went_away(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(error);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof
            ) {
                return true;
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

/// A connection's activity record, shared by its socket wrapper, its
/// requests and its watchdog.
struct Watched {
    activity: Arc<Activity>,
    started: Instant,
}

async fn serve_io<I>(
    io: I,
    conn: ConnInfo,
    shared: Arc<Shared>,
    builder: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    watched: Watched,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Watched { activity, started } = watched;
    let watched_activity = activity.clone();
    let svc_shared = shared.clone();
    let svc_activity = activity.clone();
    let svc = service_fn(move |req| {
        let shared = svc_shared.clone();
        let in_flight = InFlight::new(svc_activity.clone(), started, req.version());
        async move {
            let resp = handle(shared, conn, req).await;
            // The request stays in flight until its body is done or dropped.
            let in_flight = in_flight.answered();
            Ok::<_, Infallible>(resp.map(|b| WithGuard::new(b, in_flight).boxed_unsync()))
        }
    });
    let connection = watcher.watch(builder.serve_connection(TokioIo::new(io), svc).into_owned());
    tokio::select! {
        // The connection first: nearly every wake-up is for it.
        biased;
        result = connection => {
            if let Err(error) = result {
                // A viewer leaving a stream is not a protocol error.
                let kind = if client_went_away(error.as_ref()) { "client_abort" } else { "http" };
                debug!(%error, client = %conn.remote, kind, "connection ended with an error");
                count_connection_error(&shared, kind);
                if let Some((status, reason)) = automatic_answer(error.as_ref()) {
                    log_automatic_answer(&shared, &conn, status, reason);
                }
            }
        }
        why = watched_activity.closed_by_watchdog() => {
            let kind = match why {
                Watchdog::Idle => "idle_timeout",
                Watchdog::SendTimeout => "send_timeout",
                Watchdog::Cancels => "cancelled_requests",
            };
            debug!(client = %conn.remote, kind, "closing connection");
            count_connection_error(&shared, kind);
        }
    }
}

/// The answer hyper gave on its own to an HTTP/1 request head it could not
/// take (the request never reached [`handle`]): `(status, reason)`. hyper
/// answers 431 to a head over `max_header_bytes` or with more than 100
/// headers, 414 to a URI over its own 64 KiB bound (reached only when
/// `max_header_bytes` is larger) and 400 to a malformed head; other errors
/// (a client gone, a timeout, an h2 preface, hyper's own internal error)
/// got no answer. (HTTP/2 answers a bad head on its stream, and the
/// connection goes on.)
fn automatic_answer(error: &(dyn std::error::Error + 'static)) -> Option<(u16, &'static str)> {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            // hyper names these kinds in its message only.
            let text = h.to_string();
            return if h.is_parse_too_large() {
                Some(if text.contains("URI too long") {
                    (414, "uri_too_long")
                } else {
                    (431, "header_too_large")
                })
            } else if h.is_parse() && !h.is_parse_version_h2() && !text.contains("internal error") {
                Some((400, "bad_request"))
            } else {
                None
            };
        }
        cause = e.source();
    }
    None
}

/// Counts a request hyper answered on its own, as `rejected` for the
/// unknown site (answered at once), and writes its access log line (method
/// and path `-`: the head did not parse).
fn log_automatic_answer(shared: &Shared, conn: &ConnInfo, status: u16, reason: &'static str) {
    use crate::metrics::{outcome, UNKNOWN_SITE};
    shared
        .metrics
        .count_request(UNKNOWN_SITE, outcome::REJECTED, reason, 0.0);
    if tracing::enabled!(target: "streamguard::access", tracing::Level::INFO) {
        super::body::AccessEntry {
            site: UNKNOWN_SITE.to_owned(),
            client: conn.remote.ip().to_canonical(),
            method: None,
            path: "-".to_owned(),
            status,
            outcome: outcome::REJECTED,
            reason,
            started: Instant::now(),
            head_ms: 0.0,
        }
        .write(0, true);
    }
}
