//! Connections to dynos: the connector behind the pooled client, per-backend
//! in-flight counts and quarantine, and power-of-two-choices selection.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use parking_lot::RwLock;
use rand::Rng;
use tokio::net::TcpStream;

use crate::table::Backend;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("backend connection refused")]
    Refused(#[source] io::Error),
    #[error("backend connect timed out")]
    Timeout,
    #[error("backend address {0:?} is not ip:port")]
    BadAddress(String),
    #[error("backend connect failed")]
    Io(#[source] io::Error),
}

/// When a pooled connection was opened and how long the connect took; attached to
/// every response received on it, so a request can tell a fresh connect from reuse.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectTiming {
    pub(crate) started: Instant,
    pub(crate) took: Duration,
}

#[derive(Clone)]
pub(crate) struct Connector {
    pub(crate) timeout: Duration,
}

impl tower::Service<Uri> for Connector {
    type Response = BackendConn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<BackendConn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let timeout = self.timeout;
        Box::pin(async move {
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or("");
            let addr: SocketAddr = authority
                .parse()
                .map_err(|_| ConnectError::BadAddress(authority.to_string()))?;
            let started = Instant::now();
            let stream = connect(addr, timeout).await?;
            Ok(BackendConn {
                io: TokioIo::new(stream),
                timing: ConnectTiming {
                    started,
                    took: started.elapsed(),
                },
            })
        })
    }
}

/// A TCP connection to a dyno, within `timeout`, without Nagle's delay.
pub(crate) async fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Err(_) => return Err(ConnectError::Timeout),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            return Err(ConnectError::Refused(e))
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::TimedOut => return Err(ConnectError::Timeout),
        Ok(Err(e)) => return Err(ConnectError::Io(e)),
        Ok(Ok(s)) => s,
    };
    // Small responses must not wait for Nagle.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

pub(crate) struct BackendConn {
    io: TokioIo<TcpStream>,
    timing: ConnectTiming,
}

impl Connection for BackendConn {
    fn connected(&self) -> Connected {
        Connected::new().extra(self.timing)
    }
}

impl Read for BackendConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for BackendConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Router-side state of one dyno address; survives table publishes.
#[derive(Default)]
pub(crate) struct BackendState {
    pub(crate) in_flight: AtomicU32,
    /// Milliseconds after `Backends::epoch`; 0 means not quarantined.
    quarantined_until: AtomicU64,
}

/// Counts a request against a backend while it lives.
pub(crate) struct InFlight(pub(crate) Arc<BackendState>);

impl InFlight {
    pub(crate) fn new(state: Arc<BackendState>) -> Self {
        state.in_flight.fetch_add(1, Relaxed);
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

pub(crate) struct Backends {
    epoch: Instant,
    states: RwLock<HashMap<SocketAddr, Arc<BackendState>>>,
    quarantine: Duration,
}

impl Backends {
    pub(crate) fn new(quarantine: Duration) -> Self {
        Backends {
            epoch: Instant::now(),
            states: RwLock::new(HashMap::new()),
            quarantine,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    pub(crate) fn state(&self, addr: SocketAddr) -> Arc<BackendState> {
        if let Some(s) = self.states.read().get(&addr) {
            return s.clone();
        }
        self.states.write().entry(addr).or_default().clone()
    }

    pub(crate) fn quarantine(&self, state: &BackendState) {
        let until = self.now_ms() + self.quarantine.as_millis() as u64;
        state.quarantined_until.store(until, Relaxed);
    }

    fn is_quarantined(&self, state: &BackendState, now: u64) -> bool {
        state.quarantined_until.load(Relaxed) > now
    }

    /// Power of two choices by in-flight count among backends not in `tried`,
    /// preferring ones not in quarantine. Returns an index into `backends`.
    pub(crate) fn pick(
        &self,
        backends: &[Backend],
        tried: &[SocketAddr],
    ) -> Option<(usize, Arc<BackendState>)> {
        let now = self.now_ms();
        let n = backends.len();
        let usable = |i: usize| !tried.contains(&backends[i].addr);
        let mut rng = rand::thread_rng();
        // Fast path: two distinct random candidates, both healthy and untried.
        if n >= 2 {
            let a = rng.gen_range(0..n);
            let mut b = rng.gen_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            if usable(a) && usable(b) {
                let sa = self.state(backends[a].addr);
                let sb = self.state(backends[b].addr);
                if !self.is_quarantined(&sa, now) && !self.is_quarantined(&sb, now) {
                    let (la, lb) = (sa.in_flight.load(Relaxed), sb.in_flight.load(Relaxed));
                    return Some(if lb < la { (b, sb) } else { (a, sa) });
                }
            }
        }
        // One dyno (the common small app): no candidate lists.
        if n == 1 {
            return usable(0).then(|| (0, self.state(backends[0].addr)));
        }
        let mut healthy: Vec<(usize, Arc<BackendState>)> = Vec::with_capacity(n);
        let mut quarantined = Vec::new();
        for i in (0..n).filter(|&i| usable(i)) {
            let s = self.state(backends[i].addr);
            if self.is_quarantined(&s, now) {
                quarantined.push((i, s));
            } else {
                healthy.push((i, s));
            }
        }
        // Every dyno quarantined: trying one beats failing without trying.
        let mut pool = if healthy.is_empty() {
            quarantined
        } else {
            healthy
        };
        match pool.len() {
            0 => None,
            1 => pool.pop(),
            n => {
                let a = rng.gen_range(0..n);
                let mut b = rng.gen_range(0..n - 1);
                if b >= a {
                    b += 1;
                }
                let la = pool[a].1.in_flight.load(Relaxed);
                let lb = pool[b].1.in_flight.load(Relaxed);
                Some(pool.swap_remove(if lb < la { b } else { a }))
            }
        }
    }

    /// Forgets addresses no longer published and not in use.
    pub(crate) fn retain(&self, live: &std::collections::HashSet<SocketAddr>) {
        self.states
            .write()
            .retain(|addr, s| live.contains(addr) || s.in_flight.load(Relaxed) > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: u16) -> Vec<Backend> {
        (0..n)
            .map(|i| Backend {
                dyno: format!("web.{}", i + 1),
                addr: SocketAddr::from(([127, 0, 0, 1], 10_000 + i)),
            })
            .collect()
    }

    #[test]
    fn prefers_less_loaded_and_skips_quarantined() {
        let b = backends(2);
        let set = Backends::new(Duration::from_secs(5));
        let busy = set.state(b[0].addr);
        busy.in_flight.store(10, Relaxed);
        for _ in 0..20 {
            assert_eq!(set.pick(&b, &[]).unwrap().0, 1);
        }
        set.quarantine(&set.state(b[1].addr));
        assert_eq!(set.pick(&b, &[]).unwrap().0, 0);
        assert_eq!(set.pick(&b, &[b[0].addr]).unwrap().0, 1);
        assert!(set.pick(&b, &[b[0].addr, b[1].addr]).is_none());
    }

    #[test]
    fn spreads_when_equal() {
        let b = backends(3);
        let set = Backends::new(Duration::from_secs(5));
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[set.pick(&b, &[]).unwrap().0] += 1;
        }
        assert!(seen.iter().all(|&n| n > 0), "{seen:?}");
    }
}
