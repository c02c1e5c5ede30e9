//! Response bodies: the boxed type the proxy serves, and the counting wrapper
//! that streams an origin body through frame by frame.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use prometheus::{IntCounter, IntGauge};

/// Errors a body can produce.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the proxy sends.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A complete, in-memory body.
pub fn full(data: impl Into<Bytes>) -> ProxyBody {
    Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> ProxyBody {
    full(Bytes::new())
}

pin_project_lite::pin_project! {
    /// Passes an origin body through unchanged, one frame at a time, counting
    /// bytes as they pass and holding the active-streams gauge while alive.
    ///
    /// Why no buffering: HTTP-FLV bodies never end; each frame is handed to
    /// hyper as soon as the origin produced it, and hyper only polls for the
    /// next one when the client has taken the last, so backpressure reaches
    /// the origin. Dropping this body (client gone) drops the origin body,
    /// which closes the origin connection.
    pub struct Counted<B> {
        #[pin]
        inner: B,
        bytes: IntCounter,
        errors: IntCounter,
        active: [IntGauge; 2],
    }

    impl<B> PinnedDrop for Counted<B> {
        fn drop(this: Pin<&mut Self>) {
            for g in this.active.iter() {
                g.dec();
            }
        }
    }
}

impl<B> Counted<B> {
    /// Wraps `inner`, incrementing the `active` gauges (all streams, the
    /// site's) now and decrementing them on drop; `errors` counts an origin
    /// body that fails mid-stream.
    pub fn new(inner: B, bytes: IntCounter, errors: IntCounter, active: [IntGauge; 2]) -> Self {
        for g in &active {
            g.inc();
        }
        Counted {
            inner,
            bytes,
            errors,
            active,
        }
    }
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes.inc_by(data.len() as u64);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.errors.inc();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The fields of one access log line, known when the response head is sent.
#[derive(Debug)]
pub struct AccessEntry {
    /// Site id (or `unknown`).
    pub site: String,
    /// The peer address.
    pub client: std::net::IpAddr,
    /// Request method (`None`: the head did not parse, logged as `-`).
    pub method: Option<http::Method>,
    /// Request path, already redacted for logging.
    pub path: String,
    /// Response status.
    pub status: u16,
    /// Outcome label.
    pub outcome: &'static str,
    /// Reason label.
    pub reason: &'static str,
    /// When the request arrived.
    pub started: std::time::Instant,
    /// Milliseconds until the response head was ready.
    pub head_ms: f64,
}

pin_project_lite::pin_project! {
    /// Writes the access log line when the response body ends or is dropped,
    /// so a stream's line carries the bytes it sent and how long it ran.
    pub struct AccessLogged<B> {
        #[pin]
        inner: B,
        entry: Option<AccessEntry>,
        bytes: u64,
        complete: bool,
    }

    impl<B> PinnedDrop for AccessLogged<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(e) = this.entry.take() {
                e.write(*this.bytes, *this.complete);
            }
        }
    }
}

impl AccessEntry {
    /// Writes the line, with the body bytes sent and whether the body ended.
    pub fn write(self, bytes: u64, complete: bool) {
        tracing::info!(
            target: "streamguard::access",
            site = %self.site,
            client = %self.client,
            method = %self.method.as_ref().map_or("-", http::Method::as_str),
            path = %self.path,
            status = self.status,
            outcome = self.outcome,
            reason = self.reason,
            bytes,
            complete,
            head_ms = self.head_ms,
            ms = self.started.elapsed().as_secs_f64() * 1000.0,
        );
    }
}

impl<B> AccessLogged<B> {
    /// Wraps `inner`; the line is written when this body is dropped.
    pub fn new(inner: B, entry: AccessEntry) -> Self {
        AccessLogged {
            inner,
            entry: Some(entry),
            bytes: 0,
            complete: false,
        }
    }
}

impl<B> Body for AccessLogged<B>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let r = this.inner.as_mut().poll_frame(cx);
        match &r {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.len() as u64;
                }
                // hyper stops polling once the body says it has ended.
                if this.inner.is_end_stream() {
                    *this.complete = true;
                }
            }
            Poll::Ready(None) => *this.complete = true,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body fed from a channel: each `Bytes` sent becomes one frame; the body
/// ends when every sender is dropped. Used by the demo origin.
pub struct ChannelBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A body and the sender that feeds it; `capacity` frames are buffered.
    pub fn new(capacity: usize) -> (tokio::sync::mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity);
        (tx, ChannelBody { rx })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

pin_project_lite::pin_project! {
    /// A body that holds `guard` until it is finished or dropped.
    pub struct WithGuard<B, G> {
        #[pin]
        inner: B,
        guard: Option<G>,
    }
}

impl<B, G> WithGuard<B, G> {
    /// Wraps `inner`, keeping `guard` alive as long as the body.
    pub fn new(inner: B, guard: G) -> Self {
        WithGuard {
            inner,
            guard: Some(guard),
        }
    }
}

/// Told how a response body is being consumed: when a frame was handed to
/// the connection (from then on the client has to take it), and when the
/// body is waiting on its source instead.
pub trait Progress {
    /// A frame was handed over; the next poll shows the client took it.
    fn handed_frame(&self);
    /// The body was polled and waits for (or finished with) its source.
    fn waiting_on_source(&self);
}

impl<B: Body, G: Progress> Body for WithGuard<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Some(g) = this.guard.as_ref() {
            match &polled {
                Poll::Ready(Some(Ok(_))) => g.handed_frame(),
                _ => g.waiting_on_source(),
            }
        }
        if let Poll::Ready(None) = polled {
            // Finished: release the guard now rather than when hyper drops us.
            this.guard.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// Ends a body with an error once `after` has passed (`cut_at_expiry`):
    /// the client's connection (HTTP/1.1) or stream (HTTP/2) is reset, so a
    /// player cannot mistake the cut for the end of the media.
    pub struct Deadline<B> {
        #[pin]
        inner: B,
        #[pin]
        sleep: tokio::time::Sleep,
        cut: IntCounter,
        fired: bool,
    }
}

impl<B> Deadline<B> {
    /// Wraps `inner`; `cut` counts bodies ended this way.
    pub fn new(inner: B, after: std::time::Duration, cut: IntCounter) -> Self {
        Deadline {
            inner,
            sleep: tokio::time::sleep(after),
            cut,
            fired: false,
        }
    }
}

/// The token behind a stream expired.
#[derive(Debug, thiserror::Error)]
#[error("stream cut: its token expired")]
pub struct TokenExpired;

impl<B> Body for Deadline<B>
where
    B: Body<Data = Bytes, Error = BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.fired {
            return Poll::Ready(None);
        }
        if this.sleep.poll(cx).is_ready() {
            *this.fired = true;
            this.cut.inc();
            return Poll::Ready(Some(Err(Box::new(TokenExpired))));
        }
        this.inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.fired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why [`read_bounded`] stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The body holds more than the bound.
    TooLarge,
    /// The body failed.
    Body(BoxError),
}

/// Reads a whole body into one buffer of at most `max` bytes, copying each
/// frame.
///
/// Why copy (not `collect`): a collected body keeps every frame, and each
/// frame pins the whole read buffer it was split from; an origin writing a
/// playlist a few bytes at a time made a 1 MiB playlist hold gigabytes.
pub async fn read_bounded<B>(body: B, max: usize) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let hint = body.size_hint();
    if hint.lower() > max as u64 {
        return Err(ReadError::TooLarge);
    }
    // Room for what the origin announced, within the bound.
    let start = hint.exact().map_or(0, |n| n.min(max as u64) as usize);
    let mut out = Vec::with_capacity(start);
    let mut body = std::pin::pin!(body);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Body(e.into()))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > max {
                return Err(ReadError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of the given frames, one per poll.
    struct Frames(std::collections::VecDeque<Bytes>);

    impl Body for Frames {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    fn frames(parts: Vec<Bytes>) -> Frames {
        Frames(parts.into())
    }

    /// Each frame a slice of its own 8 KiB read buffer, as hyper hands them
    /// over: the result is one copy, not views into those buffers.
    #[tokio::test]
    async fn a_bounded_read_copies_frames_into_one_buffer() {
        let buffers: Vec<Bytes> = (0..100u8).map(|i| Bytes::from(vec![i; 8192])).collect();
        let parts: Vec<Bytes> = buffers.iter().map(|b| b.slice(0..3)).collect();
        let out = read_bounded(frames(parts.clone()), 300).await.unwrap();
        assert_eq!(out.len(), 300);
        assert_eq!(&out[..6], &[0, 0, 0, 1, 1, 1]);
        let inside = |b: &Bytes| {
            let p = out.as_ptr() as usize;
            let start = b.as_ptr() as usize;
            p >= start && p < start + b.len()
        };
        assert!(!buffers.iter().any(inside));
        assert!(matches!(
            read_bounded(frames(parts), 299).await,
            Err(ReadError::TooLarge)
        ));
    }
}
