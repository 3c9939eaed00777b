//! Client connection bookkeeping: an IO wrapper that records activity and a
//! watchdog that closes connections which are idle too long between requests
//! or too slow to send a request head (slowloris).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Waiting for the first byte of the next request.
const IDLE: u8 = 0;
/// Some bytes of a request head arrived; the rest must follow within the header timeout.
const HEAD: u8 = 1;
/// A request is being served; the proxy's own timeouts apply.
const BUSY: u8 = 2;
/// An upgraded connection: only the idle rule applies.
const TUNNEL: u8 = 3;

pub(crate) struct ConnState {
    epoch: Instant,
    phase: AtomicU8,
    /// Milliseconds after `epoch`.
    last_activity: AtomicU64,
    head_started: AtomicU64,
    in_flight: AtomicU32,
}

impl ConnState {
    /// A fresh connection must send its first request head within the header timeout.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(ConnState {
            epoch: Instant::now(),
            phase: AtomicU8::new(HEAD),
            last_activity: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn on_read(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = self.now_ms();
        self.last_activity.store(now, Relaxed);
        if self.phase.load(Relaxed) == IDLE && self.in_flight.load(Relaxed) == 0 {
            self.head_started.store(now, Relaxed);
            self.phase.store(HEAD, Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_activity.store(self.now_ms(), Relaxed);
    }

    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
        self.phase.store(BUSY, Relaxed);
    }

    pub(crate) fn request_finished(&self) {
        if self.in_flight.fetch_sub(1, Relaxed) == 1 {
            self.last_activity.store(self.now_ms(), Relaxed);
            self.phase.store(IDLE, Relaxed);
        }
    }

    /// A request head handed over by the fast path, which keeps no activity records
    /// of its own: the header timeout starts now.
    pub(crate) fn head_arrived(&self) {
        let now = self.now_ms();
        self.last_activity.store(now, Relaxed);
        self.head_started.store(now, Relaxed);
        self.phase.store(HEAD, Relaxed);
    }

    pub(crate) fn opened_at(&self) -> Instant {
        self.epoch
    }

    /// Switches to tunnel mode after an upgrade: only the idle rule applies.
    pub(crate) fn enter_tunnel(&self) {
        self.last_activity.store(self.now_ms(), Relaxed);
        self.phase.store(TUNNEL, Relaxed);
    }

    /// Resolves once the connection has been between requests for at least `d`.
    pub(crate) async fn idle_at_least(&self, d: Duration) {
        let d = d.as_millis() as u64;
        loop {
            let now = self.now_ms();
            let wait = if self.phase.load(Relaxed) == IDLE {
                let since = now.saturating_sub(self.last_activity.load(Relaxed));
                if since >= d {
                    return;
                }
                d - since
            } else {
                d
            };
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
    }

    /// Resolves when the connection broke one of the rules and should be closed.
    pub(crate) async fn watchdog(&self, idle: Duration, header: Duration) {
        let idle = idle.as_millis() as u64;
        let header = header.as_millis() as u64;
        loop {
            let now = self.now_ms();
            let deadline = match self.phase.load(Relaxed) {
                IDLE | TUNNEL => self.last_activity.load(Relaxed) + idle,
                HEAD => self.head_started.load(Relaxed) + header,
                _ => now + idle,
            };
            if now >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(deadline - now)).await;
        }
    }
}

/// A deadline that may move later at no cost: its timer is armed once and only
/// re-armed when it fires before the current deadline. Per-request deadlines that
/// only ever grow (idle, head, first byte) then cost no timer operations.
pub(crate) struct Alarm {
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Alarm {
    pub(crate) fn new() -> Self {
        Alarm {
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86_400))),
        }
    }

    /// Resolves once `deadline` has passed.
    pub(crate) async fn until(&mut self, deadline: Instant) {
        let deadline = tokio::time::Instant::from_std(deadline);
        loop {
            if self.sleep.deadline() > deadline {
                self.sleep.as_mut().reset(deadline);
            }
            self.sleep.as_mut().await;
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            // Fired for an earlier deadline: wait for this one.
            self.sleep.as_mut().reset(deadline);
        }
    }
}

/// Marks a request as over when dropped (with the response body).
pub(crate) struct RequestGuard(Arc<ConnState>);

impl RequestGuard {
    pub(crate) fn new(state: Arc<ConnState>) -> Self {
        state.request_started();
        RequestGuard(state)
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// Records reads and writes on a connection into its [`ConnState`], and replays
/// bytes a previous HTTP connection object had read but not used.
pub(crate) struct Watched<T> {
    inner: T,
    state: Arc<ConnState>,
    prefix: Bytes,
}

impl<T> Watched<T> {
    pub(crate) fn new(inner: T, state: Arc<ConnState>) -> Self {
        Watched {
            inner,
            state,
            prefix: Bytes::new(),
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The socket itself, bypassing activity records.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Bytes set by [`Watched::set_prefix`] and not read yet.
    pub(crate) fn take_prefix(&mut self) -> Bytes {
        std::mem::take(&mut self.prefix)
    }

    /// `bytes` are read before anything else from the socket.
    pub(crate) fn set_prefix(&mut self, bytes: Bytes) {
        self.prefix = bytes;
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            self.state.on_read(buf.filled().len() - before);
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(_)) = res {
            self.state.on_write();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(_)) = res {
            self.state.on_write();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
