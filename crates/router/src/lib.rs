//! Hoist's HTTP front door: Host header -> app -> one of its `up` web dynos.
//!
//! Invariants:
//! - The router never blocks on the store: it reads the [`RoutingTable`] the dyno
//!   manager publishes.
//! - Bodies are streamed frame by frame in both directions; nothing buffers a whole
//!   request or response.
//! - Every request that reached an app ends in exactly one router log line.

mod backend;
mod codes;
mod conn;
mod fast;
mod forwarding;
mod metrics;
mod pool;
mod proxy;
mod table;
pub mod tls;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hoist_types::LogLine;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

pub use codes::ErrorCode;
pub use metrics::Metrics;
pub use table::{normalize_host, AppRoute, Backend, RouteStatus, RoutingTable, Table};

use backend::Backends;
use conn::{ConnState, Watched};
use proxy::{ClientIo, ConnInfo, Shared};

#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Apps answer at `<app>.<domain>`.
    pub domain: String,
    /// TCP connect to a dyno (H19).
    pub connect_timeout: Duration,
    /// From sending the request to the dyno until its response head (H12).
    pub first_byte_timeout: Duration,
    /// Rolling idle window on streamed bodies and WebSockets (H15), and how long an
    /// idle keep-alive client connection is kept.
    pub idle_timeout: Duration,
    /// A request head must arrive completely within this time once it started
    /// (and a new connection must send one within it).
    pub header_read_timeout: Duration,
    /// Longest request line and longest header line (414 / 431).
    pub max_header_bytes: usize,
    /// Whole request head (431).
    pub max_head_bytes: usize,
    /// How long a request waits for an idle or starting app to come up (H20).
    pub wake_timeout: Duration,
    /// How long a dyno that refused or timed out a connect is skipped.
    pub quarantine: Duration,
    /// Value of `X-Forwarded-Proto` and `protocol=` in log lines.
    pub forwarded_proto: String,
    /// After the shutdown signal, how long open connections may finish.
    pub shutdown_grace: Duration,
    /// Worker threads serving connections; 0 means one per CPU.
    pub workers: usize,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            domain: "localhost".into(),
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(55),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 8192,
            max_head_bytes: 64 * 1024,
            wake_timeout: Duration::from_secs(75),
            quarantine: Duration::from_secs(5),
            forwarded_proto: "http".into(),
            shutdown_grace: Duration::from_secs(10),
            workers: 0,
        }
    }
}

/// The router's calls out to the rest of the platform. Called on the request path:
/// implementations must not block.
pub trait RouterHooks: Send + Sync + 'static {
    /// One `heroku[router]` line for the app's log stream.
    fn log(&self, app_id: &str, line: LogLine);
    /// Ask the dyno manager to wake an idle app; the router then waits for a publish
    /// with the app Up (bounded by `wake_timeout` -> H20).
    fn wake(&self, app_id: &str);
}

pub struct Router {
    shared: Arc<Shared>,
}

impl Router {
    pub fn new(cfg: RouterConfig, table: Arc<RoutingTable>, hooks: Arc<dyn RouterHooks>) -> Self {
        let domain = normalize_host(&cfg.domain).into_owned();
        Router {
            shared: Arc::new(Shared {
                domain,
                backends: Backends::new(cfg.quarantine),
                cfg,
                table,
                hooks,
                metrics: Arc::new(Metrics::default()),
            }),
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Accepts connections until `shutdown` resolves, then lets open connections
    /// finish their current request (bounded by `shutdown_grace`).
    ///
    /// Connections are handed round-robin to `workers` threads, each running its own
    /// single-threaded runtime and dyno connection pool: a request never hops between
    /// threads, which roughly doubles throughput over a work-stealing runtime.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let (stop_tx, stop_rx) = watch::channel(false);
        let pruner = tokio::spawn(prune_backends(shared.clone()));
        let workers = match shared.cfg.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let mut queues = Vec::with_capacity(workers);
        let mut finished = Vec::with_capacity(workers);
        for i in 0..workers {
            let (tx, rx) = mpsc::unbounded_channel();
            let (done_tx, done_rx) = oneshot::channel::<()>();
            let shared = shared.clone();
            let stop_rx = stop_rx.clone();
            std::thread::Builder::new()
                .name(format!("hoist-router-{i}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(worker(shared, rx, stop_rx)),
                        Err(e) => tracing::error!(error = %e, "router worker runtime failed"),
                    }
                    let _ = done_tx.send(());
                })?;
            queues.push(tx);
            finished.push(done_rx);
        }

        tokio::pin!(shutdown);
        let mut next = 0;
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "router accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Moves the socket to the worker's runtime.
            let Ok(stream) = stream.into_std() else {
                continue;
            };
            if queues[next % workers].send((stream, peer)).is_err() {
                tracing::error!("router worker gone");
            }
            next = next.wrapping_add(1);
        }
        drop(listener);
        let _ = stop_tx.send(true);
        drop(queues);
        for done in finished {
            let _ = done.await;
        }
        pruner.abort();
        Ok(())
    }
}

type Accepted = (std::net::TcpStream, SocketAddr);

impl Router {
    /// Serves TLS connections (`tls` from [`tls::server_config`]) until `shutdown`
    /// resolves: HTTP/2 or HTTP/1.1 as the client's ALPN asks, the same routing,
    /// headers (`X-Forwarded-Proto: https`), timeouts and log lines as plain HTTP.
    /// Runs on the caller's runtime; TLS is the less travelled path, so it does not
    /// get the per-thread workers of [`Router::serve`].
    pub async fn serve_tls(
        &self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let shared = self.shared.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let client = Arc::new(proxy::dyno_client(&shared.cfg));
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "router TLS accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let info = Arc::new(ConnInfo {
                peer_ip: peer.ip().to_canonical().to_string(),
                local_port: stream.local_addr().map(|a| a.port()).unwrap_or(0),
                state: ConnState::new(),
                client: client.clone(),
                upgrade: parking_lot::Mutex::new(None),
                tls: true,
            });
            let (acceptor, shared, stop_rx, done_tx) = (
                acceptor.clone(),
                shared.clone(),
                stop_rx.clone(),
                done_tx.clone(),
            );
            tokio::spawn(async move {
                let _done = done_tx;
                shared.metrics.connection_opened();
                serve_tls_client(stream, acceptor, info, &shared, stop_rx).await;
                shared.metrics.connection_closed();
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        drop(done_tx);
        let _ = tokio::time::timeout(shared.cfg.shutdown_grace, done_rx.recv()).await;
        Ok(())
    }
}

async fn serve_tls_client(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    info: Arc<ConnInfo>,
    shared: &Arc<Shared>,
    mut stop_rx: watch::Receiver<bool>,
) {
    let cfg = &shared.cfg;
    let Ok(Ok(tls)) = tokio::time::timeout(cfg.header_read_timeout, acceptor.accept(stream)).await
    else {
        return;
    };
    let state = info.state.clone();
    let io = TokioIo::new(Watched::new(tls, state.clone()));
    let svc_shared = shared.clone();
    let svc = service_fn(move |req| Box::pin(proxy::handle(svc_shared.clone(), info.clone(), req)));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(cfg.max_head_bytes.max(64 * 1024));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_head_bytes).unwrap_or(u32::MAX));
    let conn = builder.serve_connection_with_upgrades(io, svc);
    tokio::pin!(conn);
    let idle = cfg.idle_timeout;
    tokio::select! {
        _ = conn.as_mut() => {}
        // HTTP/2 frames (pings, settings) arrive between requests: only the idle rule
        // applies here; hyper times out slow HTTP/1 heads itself.
        _ = state.watchdog(idle, idle) => {}
        _ = stop_rx.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(cfg.shutdown_grace, conn).await;
        }
    }
}

/// One worker thread: serves the connections it is handed until the queue closes,
/// then waits (bounded) for them to finish.
async fn worker(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<Accepted>,
    stop_rx: watch::Receiver<bool>,
) {
    let client = Arc::new(proxy::dyno_client(&shared.cfg));
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Our watchdog applies the header timeout only while a head is arriving,
        // and the idle timeout between requests.
        .header_read_timeout(None)
        .keep_alive(true)
        .max_header_size(shared.cfg.max_head_bytes)
        .max_buf_size(shared.cfg.max_head_bytes.max(64 * 1024));

    let builder = Arc::new(builder);
    let pool = Arc::new(fast::Pool::default());
    let trimmer = tokio::spawn(trim_heap_periodically(pool.clone()));
    while let Some((stream, peer)) = queue.recv().await {
        let Ok(stream) = TcpStream::from_std(stream) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local_port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
        let state = ConnState::new();
        let info = Arc::new(ConnInfo {
            peer_ip: peer.ip().to_canonical().to_string(),
            local_port,
            state: state.clone(),
            client: client.clone(),
            upgrade: parking_lot::Mutex::new(None),
            tls: false,
        });
        let io = Watched::new(stream, state);
        let done_tx = done_tx.clone();
        let shared = shared.clone();
        let builder = builder.clone();
        let pool = pool.clone();
        let stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            let _done = done_tx;
            shared.metrics.connection_opened();
            serve_client(io, info, &shared, &builder, &pool, stop_rx).await;
            shared.metrics.connection_closed();
        });
    }
    drop(done_tx);
    let _ = tokio::time::timeout(shared.cfg.shutdown_grace, done_rx.recv()).await;
    trimmer.abort();
}

/// Parked connections free their buffers, but glibc keeps freed pages that sit between
/// live allocations; trimming hands them back to the OS so thousands of idle
/// keep-alive connections stay cheap in RSS. Also closes stale pooled dyno
/// connections of the fast path.
async fn trim_heap_periodically(pool: Arc<fast::Pool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        pool.sweep();
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim has no preconditions; it only releases free memory.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// How long a keep-alive connection must sit between requests before it is parked.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// Serves one client connection: the fast path first, hyper for what it hands over.
/// Between requests a hyper connection that stays idle is "parked": the HTTP/1
/// state (two 8 KiB buffers in hyper) is dropped and the connection goes back to
/// the fast path, which holds only the socket until the client sends again, so
/// idle keep-alive connections cost little memory.
async fn serve_client(
    io: ClientIo,
    info: Arc<ConnInfo>,
    shared: &Arc<Shared>,
    builder: &http1::Builder,
    pool: &fast::Pool,
    mut stop_rx: watch::Receiver<bool>,
) {
    let state = info.state.clone();
    let idle = shared.cfg.idle_timeout;
    let header = shared.cfg.header_read_timeout;
    let park_after = PARK_AFTER.min(idle / 2);
    let mut io = io;
    let mut fresh = true;
    loop {
        io = match fast::serve(io, &info, shared, pool, &mut stop_rx, fresh).await {
            fast::Next::Close => return,
            fast::Next::Hyper(io) => io,
        };
        fresh = false;
        let svc_shared = shared.clone();
        let svc_info = info.clone();
        let svc = service_fn(move |req| {
            Box::pin(proxy::handle(svc_shared.clone(), svc_info.clone(), req))
        });
        // Boxed so a parked connection's task does not keep room for hyper's state.
        let mut conn = Box::new(builder.serve_connection(TokioIo::new(io), svc));
        let mut stopping = *stop_rx.borrow();
        let mut parking = false;
        if stopping {
            Pin::new(&mut *conn).graceful_shutdown();
        }
        let finished = loop {
            tokio::select! {
                res = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => break res.is_ok(),
                _ = state.watchdog(idle, header) => return,
                _ = state.idle_at_least(park_after), if !parking && !stopping => {
                    parking = true;
                    // Idle between requests: hyper finishes without touching the socket.
                    Pin::new(&mut *conn).graceful_shutdown();
                }
                _ = stop_rx.changed(), if !stopping => {
                    stopping = true;
                    Pin::new(&mut *conn).graceful_shutdown();
                }
            }
        };
        if !finished {
            return;
        }
        // Only the socket and unread bytes are kept: everything else of hyper's state
        // (service, buffers) is dropped here, before the connection parks.
        let http1::Parts {
            io: next, read_buf, ..
        } = conn.into_parts();
        let mut next = next.into_inner();
        if let Some(tx) = info.upgrade.lock().take() {
            let _ = tx.send((next, read_buf));
            return;
        }
        // Not parking means the client closed or we are shutting down.
        if stopping || !parking {
            return;
        }
        // An empty `read_buf` is still a view of hyper's whole read buffer: only a
        // non-empty one is kept (the fast path waits for the socket without one).
        if !read_buf.is_empty() {
            next.set_prefix(read_buf);
        }
        io = next;
    }
}

/// Keeps per-dyno state only for addresses still published (or still in use).
async fn prune_backends(shared: Arc<Shared>) {
    let mut changes = shared.table.subscribe();
    while changes.changed().await.is_ok() {
        let table = shared.table.load();
        let live: HashSet<_> = table
            .apps
            .values()
            .flat_map(|a| a.backends.iter().map(|b| b.addr))
            .collect();
        shared.backends.retain(&live);
    }
}

/// A [`RouterHooks`] that drops log lines and wake requests (benchmarks, tests).
pub struct NoHooks;

impl RouterHooks for NoHooks {
    fn log(&self, _app_id: &str, _line: LogLine) {}
    fn wake(&self, _app_id: &str) {}
}
