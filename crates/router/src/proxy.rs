//! One request through the router: Host -> app -> dyno, with Heroku's headers,
//! timeouts, error codes and log line.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hoist_types::LogLine;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::time::Sleep;

use crate::backend::{Backends, ConnectError, ConnectTiming, Connector, InFlight};
use crate::codes::{self, ErrorCode};
use crate::conn::{ConnState, RequestGuard, Watched};
use crate::forwarding::{self, Forwarded, FromClient};
use crate::metrics::{AppMetrics, Metrics};
use crate::pool::{IDLE_TIMEOUT, MAX_ATTEMPTS, MAX_IDLE_PER_DYNO};
use crate::table::{normalize_host, RouteStatus, RoutingTable, Table};
use crate::{RouterConfig, RouterHooks};

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

pub(crate) struct Shared {
    pub(crate) cfg: RouterConfig,
    /// `cfg.domain`, normalized like hosts are.
    pub(crate) domain: String,
    pub(crate) table: Arc<RoutingTable>,
    pub(crate) hooks: Arc<dyn RouterHooks>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) backends: Backends,
}

/// The pooled client to dynos. One per worker thread, so a request and its backend
/// connection are driven by the same thread.
pub(crate) type DynoClient = Client<Connector, ReqBody>;

pub(crate) fn dyno_client(cfg: &RouterConfig) -> DynoClient {
    Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_max_idle_per_host(MAX_IDLE_PER_DYNO)
        .retry_canceled_requests(true)
        .set_host(false)
        .build(Connector {
            timeout: cfg.connect_timeout,
        })
}

/// What the router knows about the client connection a request arrived on.
pub(crate) struct ConnInfo {
    /// The client's address as the dyno sees it in `X-Forwarded-For`.
    pub(crate) peer_ip: String,
    pub(crate) local_port: u16,
    pub(crate) state: Arc<ConnState>,
    pub(crate) client: Arc<DynoClient>,
    /// Set by a handler that answered 101: the connection loop hands the client
    /// socket (and any bytes already read) to the tunnel.
    pub(crate) upgrade: Mutex<Option<oneshot::Sender<(ClientIo, Bytes)>>>,
    /// Arrived over the TLS listener: `https` in headers and log lines, and upgrades
    /// go through hyper's own upgrade mechanism.
    pub(crate) tls: bool,
}

impl ConnInfo {
    fn proto<'a>(&self, cfg: &'a RouterConfig) -> &'a str {
        if self.tls {
            "https"
        } else {
            &cfg.forwarded_proto
        }
    }
}

pub(crate) type ClientIo = Watched<tokio::net::TcpStream>;

// ---------------------------------------------------------------------------
// Request context and log line

/// The fields of the router log line that are known once the app is.
pub(crate) struct Ctx {
    pub(crate) shared: Arc<Shared>,
    pub(crate) app_id: String,
    pub(crate) app: Arc<AppMetrics>,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) host: String,
    pub(crate) request_id: String,
    pub(crate) fwd: String,
    pub(crate) start: Instant,
    /// `protocol=` of the log line.
    pub(crate) tls: bool,
    pub(crate) done: bool,
    /// Taken by a 101 response: the connection ends with the upgrade.
    pub(crate) guard: Option<RequestGuard>,
}

/// How a request ended, for the log line and metrics.
pub(crate) struct Outcome<'a> {
    pub(crate) code: Option<ErrorCode>,
    pub(crate) status: u16,
    pub(crate) dyno: Option<&'a str>,
    pub(crate) connect: Option<Duration>,
    pub(crate) service: Option<Duration>,
    pub(crate) bytes: Option<u64>,
    pub(crate) sock: Option<&'static str>,
}

impl Outcome<'_> {
    pub(crate) fn error(code: ErrorCode) -> Self {
        Outcome {
            code: Some(code),
            status: code.status().as_u16(),
            dyno: None,
            connect: None,
            service: None,
            bytes: None,
            sock: None,
        }
    }
}

impl Ctx {
    pub(crate) fn finish(&mut self, o: Outcome<'_>) {
        self.finish_at(o, Instant::now());
    }

    /// [`Ctx::finish`] for a request that ended at `end`.
    pub(crate) fn finish_at(&mut self, o: Outcome<'_>, end: Instant) {
        if self.done {
            return;
        }
        self.done = true;
        self.shared.metrics.end(
            &self.app,
            o.status,
            o.code,
            end.saturating_duration_since(self.start),
            o.bytes.unwrap_or(0),
        );
        let mut line = String::with_capacity(256);
        match o.code {
            Some(code) => {
                let at = if code.is_info() { "info" } else { "error" };
                let _ = write!(
                    line,
                    "at={at} code={} desc=\"{}\" ",
                    code.as_str(),
                    code.desc()
                );
            }
            None => line.push_str("at=info "),
        }
        let _ = write!(
            line,
            "method={} path=\"{}\" host={} request_id={} fwd=\"{}\" dyno={} connect=",
            self.method,
            self.path,
            self.host,
            self.request_id,
            self.fwd,
            o.dyno.unwrap_or("")
        );
        if let Some(c) = o.connect {
            let _ = write!(line, "{}ms", c.as_millis());
        }
        line.push_str(" service=");
        if let Some(s) = o.service {
            let _ = write!(line, "{}ms", s.as_millis());
        }
        let _ = write!(line, " status={} bytes=", o.status);
        if let Some(b) = o.bytes {
            let _ = write!(line, "{b}");
        }
        line.push_str(" protocol=");
        line.push_str(if self.tls {
            "https"
        } else {
            &self.shared.cfg.forwarded_proto
        });
        if let Some(sock) = o.sock {
            let _ = write!(line, " sock={sock}");
        }
        self.shared
            .hooks
            .log(&self.app_id, LogLine::heroku("router", line));
    }

    /// Logs the error and answers with its page.
    fn fail(mut self, o: Outcome<'_>) -> Response<RespBody> {
        let code = o.code.unwrap_or(ErrorCode::H99);
        let status = StatusCode::from_u16(o.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        self.finish(o);
        let page = if status == code.status() {
            Bytes::from_static(code.page().as_bytes())
        } else {
            Bytes::from(codes::plain_page(status))
        };
        html(status, page, None, status.is_client_error())
    }

    fn reject(self, status: StatusCode) -> Response<RespBody> {
        let mut o = Outcome::error(ErrorCode::H26);
        o.status = status.as_u16();
        self.fail(o)
    }
}

impl Drop for Ctx {
    /// The handler was dropped before answering: the client went away.
    fn drop(&mut self) {
        if !self.done {
            let mut o = Outcome::error(ErrorCode::H27);
            o.sock = Some("client");
            self.finish(o);
        }
    }
}

fn html(
    status: StatusCode,
    page: Bytes,
    guard: Option<RequestGuard>,
    close: bool,
) -> Response<RespBody> {
    let mut resp = Response::new(RespBody::full(page, guard));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

// ---------------------------------------------------------------------------
// The handler

pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let guard = RequestGuard::new(conn.state.clone());
    let start = Instant::now();

    // RFC 9112 3.2.2: an absolute-form target wins over Host.
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let first_host = hosts.next();
    let two_hosts = hosts.next().is_some();
    let host_raw = match req.uri().authority() {
        Some(a) => Some(a.host()),
        None => first_host.and_then(|v| v.to_str().ok()),
    };
    let Some(host_raw) = host_raw else {
        return Ok(bad_request(guard));
    };
    let host = normalize_host(host_raw).into_owned();
    let table = shared.table.load();
    let Some(route) = table.resolve(&host, &shared.domain) else {
        if two_hosts {
            return Ok(bad_request(guard));
        }
        return Ok(html(
            StatusCode::NOT_FOUND,
            Bytes::from_static(codes::NO_SUCH_APP_PAGE.as_bytes()),
            Some(guard),
            false,
        ));
    };
    let app_name = route.app_name.clone();
    let app = shared.metrics.app(&route.app_id);
    shared.metrics.begin(&app);

    let (fwd, request_id, via) = FromClient::from_headers(req.headers()).finish(&conn.peer_ip);
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .replace('"', "%22");

    let ctx = Ctx {
        shared: shared.clone(),
        app_id: route.app_id.clone(),
        app,
        method: req.method().clone(),
        path,
        host,
        request_id,
        fwd,
        start,
        tls: conn.tls,
        done: false,
        guard: Some(guard),
    };

    if two_hosts {
        return Ok(ctx.reject(StatusCode::BAD_REQUEST));
    }
    if let Some(status) = over_limits(&req, shared.cfg.max_header_bytes) {
        return Ok(ctx.reject(status));
    }
    if let Some(expect) = req.headers().get(header::EXPECT) {
        if !expect.as_bytes().eq_ignore_ascii_case(b"100-continue") {
            return Ok(ctx.reject(StatusCode::EXPECTATION_FAILED));
        }
    }
    if req.method() == Method::CONNECT {
        return Ok(ctx.reject(StatusCode::METHOD_NOT_ALLOWED));
    }

    let table = match wait_until_up(&shared, table, &app_name, &ctx.app_id).await {
        Ok(t) => t,
        Err(code) => return Ok(ctx.fail(Outcome::error(code))),
    };
    Ok(forward(shared, conn, ctx, table, &app_name, req, via).await)
}

/// Returns a table in which the app is up with at least one backend, holding the
/// request while an idle app wakes or a starting app boots.
async fn wait_until_up(
    shared: &Shared,
    mut table: Arc<Table>,
    app_name: &str,
    app_id: &str,
) -> Result<Arc<Table>, ErrorCode> {
    let deadline = tokio::time::Instant::now() + shared.cfg.wake_timeout;
    let mut changes = None;
    let mut woken = false;
    loop {
        let Some(route) = table.apps.get(app_name) else {
            // Deleted while we waited.
            return Err(ErrorCode::H99);
        };
        if route.maintenance {
            return Err(ErrorCode::H80);
        }
        match route.status {
            RouteStatus::Up if !route.backends.is_empty() => return Ok(table),
            RouteStatus::Up | RouteStatus::Crashed => return Err(ErrorCode::H10),
            RouteStatus::NotDeployed => return Err(ErrorCode::H81),
            RouteStatus::NoWebDynos => return Err(ErrorCode::H14),
            RouteStatus::Idle | RouteStatus::Starting => {
                let Some(rx) = changes.as_mut() else {
                    // Subscribe, then re-read, so a publish in between is not missed.
                    changes = Some(shared.table.subscribe());
                    table = shared.table.load();
                    continue;
                };
                if route.status == RouteStatus::Idle && !woken {
                    woken = true;
                    shared.hooks.wake(app_id);
                }
                match tokio::time::timeout_at(deadline, rx.changed()).await {
                    Ok(Ok(())) => table = shared.table.load(),
                    _ => return Err(ErrorCode::H20),
                }
            }
        }
    }
}

async fn forward(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    ctx: Ctx,
    table: Arc<Table>,
    app_name: &str,
    req: Request<Incoming>,
    via: Option<String>,
) -> Response<RespBody> {
    let Some(route) = table.apps.get(app_name) else {
        return ctx.fail(Outcome::error(ErrorCode::H99));
    };
    let upgrade = upgrade_protocol(req.headers());
    let (mut parts, body) = req.into_parts();
    // Over TLS the client side of an upgrade comes from hyper (HTTP/1.1 over TLS).
    let client_on_upgrade = if conn.tls {
        parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    } else {
        None
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // HTTP/2 carries the host as :authority; the dyno speaks HTTP/1.1 and needs Host.
    if !headers.contains_key(header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                headers.insert(header::HOST, v);
            }
        }
    }
    if let Some(proto) = &upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, proto.clone());
    }
    // The router answered the expectation itself: the dyno's first read of the body
    // is what makes hyper send `100 Continue` to the client.
    headers.remove(header::EXPECT);
    set_forwarding_headers(
        &mut headers,
        &Forwarded {
            fwd: &ctx.fwd,
            proto: conn.proto(&shared.cfg),
            port: conn.local_port,
            received: ctx.start,
            request_id: &ctx.request_id,
            via: via.as_deref(),
        },
    );

    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let slot = if body.is_end_stream() {
        None
    } else {
        Some(Arc::new(Mutex::new(Some(body))))
    };

    let mut tried: Vec<SocketAddr> = Vec::new();
    let max_attempts = MAX_ATTEMPTS.min(route.backends.len());
    let mut headers = Some(headers);
    loop {
        let Some((index, state)) = shared.backends.pick(&route.backends, &tried) else {
            return ctx.fail(Outcome::error(ErrorCode::H10));
        };
        let backend = &route.backends[index];
        tried.push(backend.addr);
        let in_flight = InFlight::new(state);
        let uri: Uri = match format!("http://{}{}", backend.addr, pq).parse() {
            Ok(u) => u,
            Err(_) => return ctx.reject(StatusCode::BAD_REQUEST),
        };
        let mut up = Request::new(ReqBody::new(slot.clone()));
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = uri;
        *up.version_mut() = Version::HTTP_11;
        // The last possible attempt takes the headers instead of copying them.
        *up.headers_mut() = if tried.len() >= max_attempts {
            headers.take().unwrap_or_default()
        } else {
            headers.clone().unwrap_or_default()
        };

        let sent_at = Instant::now();
        let res =
            tokio::time::timeout(shared.cfg.first_byte_timeout, conn.client.request(up)).await;
        let service = sent_at.elapsed();
        let mut resp = match res {
            Err(_) => {
                return ctx.fail(Outcome {
                    dyno: Some(&backend.dyno),
                    connect: Some(Duration::ZERO),
                    service: Some(service),
                    bytes: Some(0),
                    ..Outcome::error(ErrorCode::H12)
                });
            }
            Ok(Err(e)) => {
                let failure = classify(&e);
                if failure.connect {
                    shared.backends.quarantine(&in_flight.0);
                    let body_untouched = slot.as_ref().is_none_or(|s| s.lock().is_some());
                    // A failed connect means the dyno never saw the request, so any
                    // method may go to another dyno as long as we still hold the body.
                    if body_untouched && tried.len() < max_attempts && headers.is_some() {
                        tracing::debug!(dyno = %backend.dyno, error = %e, "retrying on another dyno");
                        continue;
                    }
                }
                let sock = (failure.code == ErrorCode::H13).then_some("backend");
                return ctx.fail(Outcome {
                    dyno: Some(&backend.dyno),
                    connect: (!failure.connect).then_some(Duration::ZERO),
                    service: Some(service),
                    bytes: Some(0),
                    sock,
                    ..Outcome::error(failure.code)
                });
            }
            Ok(Ok(resp)) => resp,
        };

        let connect = resp
            .extensions()
            .get::<ConnectTiming>()
            .map(|t| {
                if t.started >= sent_at {
                    t.took
                } else {
                    Duration::ZERO
                }
            })
            .unwrap_or_default();
        let status = resp.status();

        if status == StatusCode::SWITCHING_PROTOCOLS && upgrade.is_some() {
            let backend_upgrade = hyper::upgrade::on(&mut resp);
            let (mut rparts, _) = resp.into_parts();
            strip_hop_by_hop(&mut rparts.headers);
            rparts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(proto) = upgrade {
                rparts.headers.insert(header::UPGRADE, proto);
            }
            rparts.extensions = http::Extensions::new();
            let mut ctx = ctx;
            ctx.finish(Outcome {
                code: None,
                status: 101,
                dyno: Some(&backend.dyno),
                connect: Some(connect),
                service: Some(service),
                bytes: Some(0),
                sock: None,
            });
            let idle = shared.cfg.idle_timeout;
            let state = conn.state.clone();
            match client_on_upgrade {
                Some(client_upgrade) => {
                    tokio::spawn(async move {
                        let _in_flight = in_flight;
                        if let (Ok(c), Ok(b)) = tokio::join!(client_upgrade, backend_upgrade) {
                            tunnel(TokioIo::new(c), Bytes::new(), b, state, idle).await;
                        }
                    });
                }
                None => {
                    let (client_tx, client_upgrade) = oneshot::channel();
                    *conn.upgrade.lock() = Some(client_tx);
                    tokio::spawn(async move {
                        let _in_flight = in_flight;
                        if let (Ok((c, prefix)), Ok(b)) =
                            tokio::join!(client_upgrade, backend_upgrade)
                        {
                            tunnel(c, prefix, b, state, idle).await;
                        }
                    });
                }
            }
            let guard = ctx.guard.take();
            return Response::from_parts(rparts, RespBody::full(Bytes::new(), guard));
        }

        let (mut rparts, body) = resp.into_parts();
        strip_hop_by_hop(&mut rparts.headers);
        rparts.extensions = http::Extensions::new();
        // A proxy answers in its own HTTP version: an HTTP/1.0 dyno must not turn the
        // client's HTTP/1.1 keep-alive connection into a one-shot HTTP/1.0 exchange.
        rparts.version = parts.version;
        let completion = Completion {
            ctx,
            dyno: backend.dyno.clone(),
            connect,
            service,
            status: status.as_u16(),
            bytes: 0,
            failed: None,
            ended: false,
            _in_flight: in_flight,
        };
        return Response::from_parts(
            rparts,
            RespBody::proxied(body, shared.cfg.idle_timeout, completion),
        );
    }
}

async fn tunnel<C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut client: C,
    prefix: Bytes,
    backend: Upgraded,
    state: Arc<ConnState>,
    idle: Duration,
) {
    let mut backend = TokioIo::new(backend);
    // Bytes the client sent right behind its upgrade request.
    if !prefix.is_empty() && backend.write_all(&prefix).await.is_err() {
        return;
    }
    state.enter_tunnel();
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut backend) => {}
        _ = state.watchdog(idle, idle) => {}
    }
}

fn bad_request(guard: RequestGuard) -> Response<RespBody> {
    html(
        StatusCode::BAD_REQUEST,
        Bytes::from(codes::plain_page(StatusCode::BAD_REQUEST)),
        Some(guard),
        true,
    )
}

/// vegur's limits: request line and each header line within `max_line` bytes.
fn over_limits<B>(req: &Request<B>, max_line: usize) -> Option<StatusCode> {
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().len())
        .unwrap_or(1);
    if req.method().as_str().len() + target + 10 > max_line {
        return Some(StatusCode::URI_TOO_LONG);
    }
    for (name, value) in req.headers() {
        if name.as_str().len() + value.len() + 2 > max_line {
            return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        }
    }
    None
}

/// `Some(protocol)` when the client asks to switch protocols (WebSocket).
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let proto = headers.get(header::UPGRADE)?;
    let asks = headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
            .unwrap_or(false)
    });
    asks.then(|| proto.clone())
}

/// Removes hop-by-hop headers, including any the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(forwarding::connection_tokens)
        .filter(|t| forwarding::demotable(t))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in forwarding::hop_by_hop() {
        headers.remove(name);
    }
}

/// Replaces whatever the client sent of the headers the router sets.
fn set_forwarding_headers(headers: &mut HeaderMap, forwarded: &Forwarded<'_>) {
    forwarded.each(|name, value| {
        let name = HeaderName::from_static(name);
        headers.remove(&name);
        if let Ok(v) = HeaderValue::try_from(value.to_string()) {
            headers.insert(name, v);
        }
    });
}

struct Failure {
    code: ErrorCode,
    /// The dyno never saw the request.
    connect: bool,
}

fn classify(e: &hyper_util::client::legacy::Error) -> Failure {
    let mut src: Option<&(dyn StdError + 'static)> = e.source();
    while let Some(s) = src {
        if let Some(ce) = s.downcast_ref::<ConnectError>() {
            let code = match ce {
                ConnectError::Timeout => ErrorCode::H19,
                ConnectError::Refused(_) | ConnectError::Io(_) => ErrorCode::H21,
                ConnectError::BadAddress(_) => ErrorCode::H99,
            };
            return Failure {
                code,
                connect: true,
            };
        }
        if let Some(he) = s.downcast_ref::<hyper::Error>() {
            let code = if he.is_parse() || he.is_parse_status() || he.is_parse_too_large() {
                ErrorCode::H17
            } else if he.is_user() {
                // Our request body failed: the client stopped sending.
                ErrorCode::H27
            } else {
                ErrorCode::H13
            };
            return Failure {
                code,
                connect: false,
            };
        }
        src = s.source();
    }
    Failure {
        code: if e.is_connect() {
            ErrorCode::H21
        } else {
            ErrorCode::H13
        },
        connect: e.is_connect(),
    }
}

// ---------------------------------------------------------------------------
// Bodies

/// The request body sent to a dyno. Until first polled it stays in a shared slot,
/// so a request whose connect failed can be sent again to another dyno.
pub(crate) struct ReqBody {
    state: ReqState,
    hint: SizeHint,
}

enum ReqState {
    Empty,
    Waiting(Arc<Mutex<Option<Incoming>>>),
    Streaming(Incoming),
}

impl ReqBody {
    fn new(slot: Option<Arc<Mutex<Option<Incoming>>>>) -> Self {
        match slot {
            None => ReqBody {
                state: ReqState::Empty,
                hint: SizeHint::with_exact(0),
            },
            Some(slot) => {
                let hint = slot
                    .lock()
                    .as_ref()
                    .map(|b| b.size_hint())
                    .unwrap_or_default();
                ReqBody {
                    state: ReqState::Waiting(slot),
                    hint,
                }
            }
        }
    }
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        loop {
            match &mut self.state {
                ReqState::Empty => return Poll::Ready(None),
                ReqState::Waiting(slot) => {
                    let taken = slot.lock().take();
                    self.state = match taken {
                        Some(body) => ReqState::Streaming(body),
                        // Only one attempt ever polls: retries happen only while the
                        // slot is still full.
                        None => ReqState::Empty,
                    };
                }
                ReqState::Streaming(body) => return Pin::new(body).poll_frame(cx),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            ReqState::Empty => true,
            ReqState::Waiting(_) => self.hint.exact() == Some(0),
            ReqState::Streaming(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            ReqState::Streaming(b) => b.size_hint(),
            _ => self.hint,
        }
    }
}

/// A proxied response in progress: logs its line when it ends.
struct Completion {
    ctx: Ctx,
    dyno: String,
    connect: Duration,
    service: Duration,
    status: u16,
    bytes: u64,
    failed: Option<ErrorCode>,
    /// The dyno's body ended and was passed on completely.
    ended: bool,
    _in_flight: InFlight,
}

impl Completion {
    fn finish(mut self: Box<Self>, complete: bool) {
        let (code, sock) = match self.failed {
            Some(code) => (Some(code), Some("backend")),
            None if complete => (None, None),
            None => (Some(ErrorCode::H27), Some("client")),
        };
        let status = if code == Some(ErrorCode::H27) {
            499
        } else {
            self.status
        };
        let o = Outcome {
            code,
            status,
            dyno: Some(&self.dyno),
            connect: Some(self.connect),
            service: Some(self.service),
            bytes: Some(self.bytes),
            sock,
        };
        self.ctx.finish(o);
    }
}

pub(crate) struct RespBody {
    kind: Kind,
    completion: Option<Box<Completion>>,
    _guard: Option<RequestGuard>,
}

enum Kind {
    Full(Option<Bytes>),
    Proxied {
        inner: Incoming,
        /// Armed only once the dyno makes us wait: most bodies arrive with the head.
        idle: Option<Pin<Box<Sleep>>>,
        idle_for: Duration,
    },
}

impl RespBody {
    fn full(bytes: Bytes, guard: Option<RequestGuard>) -> Self {
        RespBody {
            kind: Kind::Full((!bytes.is_empty()).then_some(bytes)),
            completion: None,
            _guard: guard,
        }
    }

    fn proxied(inner: Incoming, idle_for: Duration, completion: Completion) -> Self {
        RespBody {
            kind: Kind::Proxied {
                inner,
                idle: None,
                idle_for,
            },
            completion: Some(Box::new(completion)),
            _guard: None,
        }
    }

    fn fail(&mut self, code: ErrorCode) {
        if let Some(c) = self.completion.as_mut() {
            c.failed = Some(code);
        }
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Proxied {
                inner,
                idle,
                idle_for,
            } => match Pin::new(&mut *inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let end = inner.is_end_stream();
                    if let Some(c) = this.completion.as_mut() {
                        if let Some(data) = frame.data_ref() {
                            c.bytes += data.len() as u64;
                        }
                        c.ended = end;
                    }
                    if let Some(idle) = idle.as_mut() {
                        idle.as_mut().reset(tokio::time::Instant::now() + *idle_for);
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => {
                    this.fail(ErrorCode::H18);
                    Poll::Ready(Some(Err(e.into())))
                }
                Poll::Ready(None) => {
                    if let Some(c) = this.completion.as_mut() {
                        c.ended = true;
                    }
                    Poll::Ready(None)
                }
                Poll::Pending => {
                    let idle = idle.get_or_insert_with(|| Box::pin(tokio::time::sleep(*idle_for)));
                    if idle.as_mut().poll(cx).is_ready() {
                        this.fail(ErrorCode::H15);
                        return Poll::Ready(Some(Err("dyno idle too long".into())));
                    }
                    Poll::Pending
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Proxied { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Proxied { inner, .. } => inner.size_hint(),
        }
    }
}

impl Drop for RespBody {
    fn drop(&mut self) {
        if let Some(c) = self.completion.take() {
            let complete = c.ended || self.is_end_stream();
            c.finish(complete);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_named() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret, host"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(header::HOST, HeaderValue::from_static("a"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(h.contains_key("x-kept") && h.contains_key(header::HOST));
    }
}
