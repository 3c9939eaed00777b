//! The fast path for plain HTTP/1.1: the common request — no body, no upgrade, no
//! `Expect`, for an app that is up — is parsed with `httparse` and relayed over a
//! pooled dyno connection, with the same headers, timeouts, error codes, log line
//! and metrics as the hyper path in `proxy`.
//!
//! Why it exists: hyper's server and pooled client cost ~15 µs of CPU per proxied
//! request (header maps built twice, a channel and a task between the client handle
//! and its connection, pool checkout), against ~3.5 µs for nginx. Anything this path
//! does not handle is handed, with the bytes already read, to the hyper path, which
//! stays the reference for every unusual case (bodies, upgrades, HTTP/1.0, bad
//! requests, apps that are not up).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use http::{Method, StatusCode};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::backend::{connect, ConnectError, InFlight};
use crate::codes::{self, ErrorCode};
use crate::conn::Alarm;
use crate::forwarding::{self, Forwarded, FromClient};
use crate::metrics::AppMetrics;
use crate::pool::{IDLE_TIMEOUT, MAX_ATTEMPTS, MAX_IDLE_PER_DYNO};
use crate::proxy::{ClientIo, ConnInfo, Ctx, Outcome, Shared};
use crate::table::{normalize_host, AppRoute, RouteStatus};

/// A request head not complete within this many bytes goes to the hyper path,
/// which applies the configured limits and answers 431.
const HEAD_LIMIT: usize = 16 * 1024;
/// Headers the fast path parses; more go to the hyper path.
const MAX_HEADERS: usize = 64;
/// A dyno's response head must fit in this many bytes (H17 otherwise).
const RESP_HEAD_LIMIT: usize = 128 * 1024;
const RESP_MAX_HEADERS: usize = 100;
/// Read size for dyno responses.
const UPSTREAM_BUF: usize = 16 * 1024;

/// Idle keep-alive connections to dynos, per worker thread.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<Upstream>>>,
}

pub(crate) struct Upstream {
    stream: TcpStream,
    buf: BytesMut,
    since: Instant,
}

impl Pool {
    fn take(&self, addr: SocketAddr, now: Instant) -> Option<Upstream> {
        let mut idle = self.idle.lock();
        let list = idle.get_mut(&addr)?;
        // Most recently used last: it is the least likely to have been closed.
        while let Some(up) = list.pop() {
            if now.saturating_duration_since(up.since) < IDLE_TIMEOUT {
                return Some(up);
            }
        }
        None
    }

    fn put(&self, addr: SocketAddr, up: Upstream) {
        let mut idle = self.idle.lock();
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_DYNO {
            list.push(up);
        }
    }

    /// Closes connections idle longer than the dyno would keep them.
    pub(crate) fn sweep(&self) {
        let mut idle = self.idle.lock();
        idle.retain(|_, list| {
            list.retain(|up| up.since.elapsed() < IDLE_TIMEOUT);
            !list.is_empty()
        });
    }
}

/// What the connection does after the fast path.
pub(crate) enum Next {
    Close,
    /// Serve the rest through hyper; the unprocessed bytes are set as its prefix.
    Hyper(ClientIo),
}

/// Serves requests on a plain client connection until one needs the hyper path,
/// the client leaves, a timeout fires, or the router stops. `fresh`: nothing was
/// served on the connection yet (its first head is due within the header timeout).
pub(crate) async fn serve(
    mut io: ClientIo,
    info: &ConnInfo,
    shared: &Arc<Shared>,
    pool: &Pool,
    stop_rx: &mut watch::Receiver<bool>,
    fresh: bool,
) -> Next {
    let cfg = &shared.cfg;
    let mut alarms = Alarms::new();
    let prefix = io.take_prefix();
    let mut buf = Vec::new();
    buf.extend_from_slice(&prefix);
    let mut start = Instant::now();
    // The next head must start arriving by then.
    let mut wait_until = if fresh {
        info.state.opened_at() + cfg.header_read_timeout
    } else {
        start + cfg.idle_timeout
    };
    // The app of the previous request: a keep-alive connection mostly stays on one.
    let mut app_cache: Option<(String, Arc<AppMetrics>)> = None;
    loop {
        if *stop_rx.borrow() {
            return Next::Close;
        }
        // A complete request head in `buf`, or a reason to stop here.
        let mut head_until = start + cfg.header_read_timeout;
        let head = loop {
            if !buf.is_empty() {
                match parse_request(&buf, cfg.max_header_bytes) {
                    Parsed::Head(head) => break head,
                    Parsed::Partial if buf.len() < HEAD_LIMIT => {}
                    Parsed::Partial | Parsed::Decline => return hand_over(io, info, buf),
                }
            } else {
                // Idle between requests: hold no buffer while waiting.
                recycle(std::mem::take(&mut buf));
                tokio::select! {
                    biased;
                    ready = io.get_ref().readable() => if ready.is_err() { return Next::Close },
                    _ = alarms.idle.until(wait_until) => return Next::Close,
                    _ = stop_rx.changed() => return Next::Close,
                }
                start = Instant::now();
                head_until = start + cfg.header_read_timeout;
                buf = spare_buf();
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(CLIENT_BUF);
            }
            tokio::select! {
                biased;
                read = io.get_mut().read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return Next::Close,
                    Ok(_) => {}
                },
                // Slowloris: the head must be complete in time.
                _ = alarms.head.until(head_until) => return Next::Close,
            }
        };
        let table = shared.table.load();
        let route = match table.resolve(&head.host, &shared.domain) {
            Some(r) if r.status == RouteStatus::Up && !r.maintenance && !r.backends.is_empty() => r,
            // No such app, maintenance, waking, crashed...: the hyper path's business.
            _ => return hand_over(io, info, buf),
        };
        buf.drain(..head.len);
        let app = match &app_cache {
            Some((id, a)) if *id == route.app_id => a.clone(),
            _ => {
                let a = shared.metrics.app(&route.app_id);
                app_cache = Some((route.app_id.clone(), a.clone()));
                a
            }
        };
        let req = Request { head, start, app };
        let (keep, end) = relay(&mut io, info, shared, pool, &mut alarms, route, req).await;
        if !keep {
            let _ = io.get_mut().shutdown().await;
            return Next::Close;
        }
        wait_until = end + cfg.idle_timeout;
        // A pipelined request starts now.
        start = end;
    }
}

/// Serve the rest through hyper, starting with the bytes already read.
fn hand_over(mut io: ClientIo, info: &ConnInfo, buf: Vec<u8>) -> Next {
    info.state.head_arrived();
    io.set_prefix(buf.into());
    Next::Hyper(io)
}

const CLIENT_BUF: usize = 4096;

thread_local! {
    /// Client read buffers not in use on this worker: a connection holds one only
    /// while a request arrives, and allocating one per request showed in profiles.
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn spare_buf() -> Vec<u8> {
    SPARE
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(CLIENT_BUF))
}

fn recycle(mut buf: Vec<u8>) {
    // Buffers grown by a large head are let go.
    if buf.capacity() == CLIENT_BUF {
        buf.clear();
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < 64 {
                s.push(buf);
            }
        });
    }
}

/// The connection's timers, one per kind of deadline so each only ever moves later.
struct Alarms {
    idle: Alarm,
    head: Alarm,
    first_byte: Alarm,
}

impl Alarms {
    fn new() -> Self {
        Alarms {
            idle: Alarm::new(),
            head: Alarm::new(),
            first_byte: Alarm::new(),
        }
    }
}

struct Request {
    head: Head,
    start: Instant,
    app: Arc<AppMetrics>,
}

/// What the fast path learned from a request head it will serve.
struct Head {
    len: usize,
    method: Method,
    /// For the log line.
    path: String,
    host: String,
    close: bool,
    /// What the client sent of the headers the router sets.
    client: FromClient,
    /// Request line and end-to-end headers for the dyno, without the blank line.
    upstream: Vec<u8>,
}

enum Parsed {
    Head(Head),
    Partial,
    /// Valid or not, the hyper path handles it.
    Decline,
}

/// Request headers not passed to the dyno as sent: hop-by-hop ones and the ones the
/// router sets itself.
fn dropped(name: &str) -> bool {
    forwarding::is_hop_by_hop(name) || forwarding::is_router_set(name)
}

/// Whether a `Connection` header named `name` (and so it is dropped).
fn demoted(named: &[&str], name: &str) -> bool {
    forwarding::demotable(name) && named.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// `name: value` and CRLF.
fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn parse_request(buf: &[u8], max_line: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Decline,
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Parsed::Decline;
    };
    // Origin-form targets of plain visible ASCII only; `"` is escaped in log lines.
    if !path.starts_with('/')
        || !path.bytes().all(|b| (0x21..0x7f).contains(&b))
        || method.len() + path.len() + 10 > max_line
        || method == "CONNECT"
    {
        return Parsed::Decline;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Decline;
    };
    let mut host = None;
    let mut close = false;
    let mut client = FromClient::default();
    // Headers the Connection header names (hop-by-hop by declaration).
    let mut named: Vec<&str> = Vec::new();
    for h in req.headers.iter() {
        if h.name.len() + h.value.len() + 2 > max_line {
            return Parsed::Decline;
        }
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Parsed::Decline;
            }
            match std::str::from_utf8(h.value) {
                Ok(v) => host = Some(v),
                Err(_) => return Parsed::Decline,
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if h.value != b"0" {
                return Parsed::Decline;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("upgrade")
            || name.eq_ignore_ascii_case("expect")
        {
            return Parsed::Decline;
        } else if name.eq_ignore_ascii_case("connection") {
            let Ok(v) = std::str::from_utf8(h.value) else {
                return Parsed::Decline;
            };
            for token in forwarding::connection_tokens(v) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case("keep-alive") {
                    named.push(token);
                }
            }
        } else {
            client.note(name, h.value);
        }
    }
    let Some(host) = host else {
        return Parsed::Decline;
    };
    let mut upstream = Vec::with_capacity(len + 256);
    upstream.extend_from_slice(method.as_str().as_bytes());
    upstream.push(b' ');
    upstream.extend_from_slice(path.as_bytes());
    upstream.extend_from_slice(b" HTTP/1.1\r\n");
    for h in req.headers.iter() {
        if !demoted(&named, h.name) && !dropped(h.name) {
            push_header(&mut upstream, h.name, h.value);
        }
    }
    Parsed::Head(Head {
        len,
        method,
        path: path.replace('"', "%22"),
        host: normalize_host(host).into_owned(),
        close,
        client,
        upstream,
    })
}

/// Relays one request. Returns whether the client connection stays open, and when
/// the request ended.
async fn relay(
    io: &mut ClientIo,
    info: &ConnInfo,
    shared: &Arc<Shared>,
    pool: &Pool,
    alarms: &mut Alarms,
    route: &AppRoute,
    req: Request,
) -> (bool, Instant) {
    let cfg = &shared.cfg;
    let Request { head, start, app } = req;
    shared.metrics.begin_at(&app, start);
    let (fwd, request_id, via) = head.client.finish(&info.peer_ip);
    let idempotent = matches!(
        head.method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    );
    let head_only = head.method == Method::HEAD;
    let client_close = head.close;
    let mut ctx = Ctx {
        shared: shared.clone(),
        app_id: route.app_id.clone(),
        app,
        method: head.method,
        path: head.path,
        host: head.host,
        request_id,
        fwd,
        start,
        tls: false,
        done: false,
        guard: None,
    };

    let mut up_req = head.upstream;
    Forwarded {
        fwd: &ctx.fwd,
        proto: &cfg.forwarded_proto,
        port: info.local_port,
        received: start,
        request_id: &ctx.request_id,
        via: via.as_deref(),
    }
    .each(|name, value| {
        let _ = write!(up_req, "{name}: {value}\r\n");
    });
    up_req.extend_from_slice(b"\r\n");

    // Pick a dyno and get its response head, retrying connects like the hyper path.
    let mut tried = [SocketAddr::from(([0, 0, 0, 0], 0)); MAX_ATTEMPTS];
    let mut n_tried = 0;
    let max_attempts = MAX_ATTEMPTS.min(route.backends.len());
    let first_byte_until = start + cfg.first_byte_timeout;
    let (backend, in_flight, mut up, resp, connect_took, service_end, sent_at) = loop {
        let Some((index, bstate)) = shared.backends.pick(&route.backends, &tried[..n_tried]) else {
            return answer_error(io, ctx, Outcome::error(ErrorCode::H10), client_close).await;
        };
        let backend = &route.backends[index];
        tried[n_tried] = backend.addr;
        n_tried += 1;
        let in_flight = InFlight::new(bstate);
        let mut reused = pool.take(backend.addr, start);
        // A non-idempotent request is not sent on a connection the dyno may have
        // closed meanwhile: it could not be retried.
        if !idempotent {
            reused = reused.filter(|up| alive(&up.stream));
        }
        let mut fresh = reused.is_none();
        let (mut up, sent_at) = match reused {
            Some(up) => (up, start),
            None => match connect(backend.addr, cfg.connect_timeout).await {
                Ok(stream) => (
                    Upstream {
                        stream,
                        buf: BytesMut::with_capacity(UPSTREAM_BUF),
                        since: start,
                    },
                    Instant::now(),
                ),
                Err(e) => {
                    shared.backends.quarantine(&in_flight.0);
                    if n_tried < max_attempts {
                        continue;
                    }
                    let o = Outcome {
                        dyno: Some(&backend.dyno),
                        service: Some(start.elapsed()),
                        bytes: Some(0),
                        ..Outcome::error(connect_code(&e))
                    };
                    return answer_error(io, ctx, o, client_close).await;
                }
            },
        };
        let connect_took = sent_at.saturating_duration_since(start);
        let res = loop {
            let res = tokio::select! {
                biased;
                r = exchange(&mut up, &up_req, head_only) => Some(r),
                _ = alarms.first_byte.until(first_byte_until) => None,
            };
            match res {
                // A reused connection the dyno had closed: nothing reached the app.
                Some(Err(Failed::Closed { partial: false })) if !fresh && idempotent => {
                    match connect(backend.addr, cfg.connect_timeout).await {
                        Ok(stream) => {
                            up.stream = stream;
                            up.buf.clear();
                            fresh = true;
                        }
                        Err(e) => break Err(connect_code(&e)),
                    }
                }
                Some(Ok(resp)) => break Ok(resp),
                Some(Err(Failed::Closed { .. })) => break Err(ErrorCode::H13),
                Some(Err(Failed::Bad)) => break Err(ErrorCode::H17),
                None => break Err(ErrorCode::H12),
            }
        };
        let service_end = Instant::now();
        match res {
            Ok(resp) => {
                break (
                    backend,
                    in_flight,
                    up,
                    resp,
                    connect_took,
                    service_end,
                    sent_at,
                )
            }
            Err(code) => {
                let o = Outcome {
                    dyno: Some(&backend.dyno),
                    connect: Some(connect_took),
                    service: Some(service_end.saturating_duration_since(sent_at)),
                    bytes: Some(0),
                    sock: (code == ErrorCode::H13).then_some("backend"),
                    ..Outcome::error(code)
                };
                return answer_error(io, ctx, o, client_close).await;
            }
        }
    };

    // Relay the head and the body.
    let mut out = resp.client_head;
    if client_close || resp.framing == Framing::Close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let mut body_bytes: u64 = 0;
    let mut failed: Option<(ErrorCode, &'static str)> = None;
    let mut reusable = resp.reusable;
    let mut chunks = ChunkScanner::default();
    let mut remaining = match resp.framing {
        Framing::Length(n) => n,
        _ => 0,
    };
    let _ = up.buf.split_to(resp.head_len);
    // Bytes that came with the head go out with it, in one write.
    let mut pending = std::mem::take(&mut up.buf);
    let mut first = true;
    let mut end = service_end;
    loop {
        let (take, done) = match resp.framing {
            Framing::None => (0, true),
            Framing::Length(_) => {
                let take = (pending.len() as u64).min(remaining) as usize;
                remaining -= take as u64;
                (take, remaining == 0)
            }
            Framing::Chunked => match chunks.feed(&pending) {
                Ok(Some(n)) => (n, true),
                Ok(None) => (pending.len(), false),
                Err(()) => {
                    failed = Some((ErrorCode::H17, "backend"));
                    (0, true)
                }
            },
            Framing::Close => (pending.len(), false),
        };
        if resp.framing != Framing::Chunked {
            body_bytes += take as u64;
        }
        if done && pending.len() > take {
            // The dyno sent more than the response: the connection is not reusable.
            reusable = false;
        }
        let wrote = if first {
            out.extend_from_slice(&pending[..take]);
            io.get_mut().write_all(&out).await
        } else if take > 0 {
            io.get_mut().write_all(&pending[..take]).await
        } else {
            Ok(())
        };
        first = false;
        if wrote.is_err() {
            failed = Some((ErrorCode::H27, "client"));
            reusable = false;
            break;
        }
        if done || failed.is_some() {
            break;
        }
        pending.clear();
        match tokio::time::timeout(cfg.idle_timeout, up.stream.read_buf(&mut pending)).await {
            Ok(Ok(0)) if resp.framing == Framing::Close => break,
            Ok(Ok(0)) | Ok(Err(_)) => {
                failed = Some((ErrorCode::H18, "backend"));
                break;
            }
            Ok(Ok(_)) => end = Instant::now(),
            Err(_) => {
                failed = Some((ErrorCode::H15, "backend"));
                break;
            }
        }
    }
    if !first && pending.len() > 4096 {
        // A long body passed through: let the next response start small.
        end = Instant::now();
    }
    if resp.framing == Framing::Chunked {
        body_bytes = chunks.data_bytes;
    }
    let (code, sock) = match failed {
        Some((code, sock)) => (Some(code), Some(sock)),
        None => (None, None),
    };
    let status = if code == Some(ErrorCode::H27) {
        499
    } else {
        resp.status
    };
    ctx.finish_at(
        Outcome {
            code,
            status,
            dyno: Some(&backend.dyno),
            connect: Some(connect_took),
            service: Some(service_end.saturating_duration_since(sent_at)),
            bytes: Some(body_bytes),
            sock,
        },
        end,
    );
    drop(ctx);
    if reusable && failed.is_none() && pending.capacity() <= 4 * UPSTREAM_BUF {
        pending.clear();
        up.buf = pending;
        up.since = end;
        pool.put(backend.addr, up);
    }
    drop(in_flight);
    let keep = failed.is_none() && !client_close && resp.framing != Framing::Close;
    (keep, end)
}

/// An idle pooled connection the dyno has not closed: reading it would block.
fn alive(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    matches!(stream.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

fn connect_code(e: &ConnectError) -> ErrorCode {
    match e {
        ConnectError::Timeout => ErrorCode::H19,
        ConnectError::Refused(_) | ConnectError::Io(_) => ErrorCode::H21,
        ConnectError::BadAddress(_) => ErrorCode::H99,
    }
}

/// Answers with the error's page (like `Ctx::fail`) and logs it.
async fn answer_error(
    io: &mut ClientIo,
    mut ctx: Ctx,
    o: Outcome<'_>,
    client_close: bool,
) -> (bool, Instant) {
    let code = o.code.unwrap_or(ErrorCode::H99);
    let status = StatusCode::from_u16(o.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    ctx.finish(o);
    let plain;
    let page = if status == code.status() {
        code.page()
    } else {
        plain = codes::plain_page(status);
        &plain
    };
    let close = client_close || status.is_client_error();
    let mut out = Vec::with_capacity(page.len() + 200);
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\ncontent-type: text/html; charset=utf-8\r\ncache-control: no-cache, no-store\r\ncontent-length: {}\r\n{}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        page.len(),
        if close { "connection: close\r\n" } else { "" },
    );
    out.extend_from_slice(page.as_bytes());
    drop(ctx);
    let ok = io.get_mut().write_all(&out).await.is_ok();
    (ok && !close, Instant::now())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// HEAD, 204, 304.
    None,
    Length(u64),
    Chunked,
    /// Until the dyno closes.
    Close,
}

struct RespHead {
    status: u16,
    head_len: usize,
    framing: Framing,
    /// The dyno connection can serve another request once the body is read.
    reusable: bool,
    /// Status line and end-to-end headers for the client, without the blank line.
    client_head: Vec<u8>,
}

enum Failed {
    /// The dyno closed or reset the connection; `partial` when some of a response
    /// had arrived.
    Closed { partial: bool },
    /// Not an HTTP/1 response (H17).
    Bad,
}

/// Sends the request and reads the dyno's response head (skipping 1xx heads).
async fn exchange(up: &mut Upstream, req: &[u8], head_only: bool) -> Result<RespHead, Failed> {
    if up.stream.write_all(req).await.is_err() {
        return Err(Failed::Closed { partial: false });
    }
    up.buf.clear();
    loop {
        if !up.buf.is_empty() {
            match parse_response(&up.buf, head_only) {
                Ok(Some(Resp::Informational(n))) => {
                    let _ = up.buf.split_to(n);
                    continue;
                }
                Ok(Some(Resp::Final(head))) => return Ok(head),
                Ok(None) if up.buf.len() < RESP_HEAD_LIMIT => {}
                Ok(None) | Err(()) => return Err(Failed::Bad),
            }
        }
        if up.buf.capacity() - up.buf.len() < 1024 {
            up.buf.reserve(UPSTREAM_BUF);
        }
        match up.stream.read_buf(&mut up.buf).await {
            Ok(0) | Err(_) => {
                return Err(Failed::Closed {
                    partial: !up.buf.is_empty(),
                })
            }
            Ok(_) => {}
        }
    }
}

enum Resp {
    /// A 1xx head of this many bytes, not passed on (as hyper's client does).
    Informational(usize),
    Final(RespHead),
}

fn parse_response(buf: &[u8], head_only: bool) -> Result<Option<Resp>, ()> {
    let mut headers = [httparse::EMPTY_HEADER; RESP_MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(()),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(());
    };
    if (100..200).contains(&status) {
        // 101 only follows an upgrade request, which this path never sends.
        return if status == 101 {
            Err(())
        } else {
            Ok(Some(Resp::Informational(head_len)))
        };
    }
    let mut close = version == 0;
    let mut named: Vec<&str> = Vec::new();
    let mut length: Option<u64> = None;
    let mut chunked = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = std::str::from_utf8(h.value).map_err(|_| ())?;
            for token in forwarding::connection_tokens(v) {
                if token.eq_ignore_ascii_case("close") {
                    close = true;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    if version == 0 {
                        close = false;
                    }
                } else {
                    named.push(token);
                }
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value).map_err(|_| ())?;
            let n: u64 = v.trim().parse().map_err(|_| ())?;
            if length.is_some_and(|l| l != n) {
                return Err(());
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = std::str::from_utf8(h.value).map_err(|_| ())?;
            let last = v.rsplit(',').next().map(str::trim).unwrap_or("");
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        }
    }
    let no_body = head_only || status == 204 || status == 304;
    let framing = if no_body {
        Framing::None
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    let mut client_head = Vec::with_capacity(head_len + 64);
    let reason = match resp.reason {
        Some(r) if !r.is_empty() => r,
        _ => StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or(""),
    };
    let _ = write!(client_head, "HTTP/1.1 {status} {reason}\r\n");
    let mut wrote_length = false;
    for h in resp.headers.iter() {
        let name = h.name;
        if demoted(&named, name) || forwarding::is_hop_by_hop(name) {
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            // Framing by chunks wins; duplicates were checked equal above.
            if chunked.is_some() || wrote_length {
                continue;
            }
            wrote_length = true;
        }
        push_header(&mut client_head, name, h.value);
    }
    if framing == Framing::Chunked {
        client_head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    Ok(Some(Resp::Final(RespHead {
        status,
        head_len,
        framing,
        reusable: !close && framing != Framing::Close,
        client_head,
    })))
}

/// Follows a chunked body as it passes through, to find where it ends.
#[derive(Default)]
struct ChunkScanner {
    state: ChunkState,
    size: u64,
    digits: u32,
    data_bytes: u64,
}

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
enum ChunkState {
    #[default]
    Size,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final blank line).
    TrailerStart,
    Trailer,
    FinalLf,
}

impl ChunkScanner {
    /// Feeds the next bytes; `Ok(Some(n))` when the body ends after `n` of them.
    fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, ()> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                ChunkState::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let d = (b as char).to_digit(16).ok_or(())?;
                        self.digits += 1;
                        if self.digits > 15 {
                            return Err(());
                        }
                        self.size = self.size * 16 + u64::from(d);
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => self.state = ChunkState::Ext,
                    b'\r' if self.digits > 0 => self.state = ChunkState::SizeLf,
                    _ => return Err(()),
                },
                ChunkState::Ext => {
                    if b == b'\r' {
                        self.state = ChunkState::SizeLf;
                    } else if b == b'\n' {
                        return Err(());
                    }
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.digits = 0;
                    self.state = if self.size == 0 {
                        ChunkState::TrailerStart
                    } else {
                        ChunkState::Data
                    };
                }
                ChunkState::Data => {
                    let n = (self.size.min((bytes.len() - i) as u64)) as usize;
                    self.size -= n as u64;
                    self.data_bytes += n as u64;
                    i += n;
                    if self.size == 0 {
                        self.state = ChunkState::DataCr;
                    }
                    continue;
                }
                ChunkState::DataCr => {
                    if b != b'\r' {
                        return Err(());
                    }
                    self.state = ChunkState::DataLf;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    self.state = ChunkState::Size;
                }
                ChunkState::TrailerStart => {
                    self.state = match b {
                        b'\r' => ChunkState::FinalLf,
                        b'\n' => return Err(()),
                        _ => ChunkState::Trailer,
                    };
                }
                ChunkState::Trailer => {
                    if b == b'\n' {
                        self.state = ChunkState::TrailerStart;
                    }
                }
                ChunkState::FinalLf => {
                    if b != b'\n' {
                        return Err(());
                    }
                    return Ok(Some(i + 1));
                }
            }
            i += 1;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        match parse_request(raw.as_bytes(), 8192) {
            Parsed::Head(h) => h,
            Parsed::Partial => panic!("partial: {raw:?}"),
            Parsed::Decline => panic!("declined: {raw:?}"),
        }
    }

    fn declined(raw: &str) -> bool {
        matches!(parse_request(raw.as_bytes(), 8192), Parsed::Decline)
    }

    #[test]
    fn request_head_for_the_dyno_drops_hop_by_hop_and_router_headers() {
        let h = head(
            "GET /a?b=\"c\" HTTP/1.1\r\nHost: App.Localhost:80\r\nConnection: keep-alive, X-Secret\r\n\
             X-Secret: 1\r\nKeep-Alive: 5\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n\
             X-Request-Id: abcdefghijklmnopqrstuvwxyz\r\nVia: 1.0 other\r\nAccept: */*\r\n\r\n",
        );
        let up = String::from_utf8(h.upstream).unwrap();
        assert_eq!(
            up,
            "GET /a?b=\"c\" HTTP/1.1\r\nHost: App.Localhost:80\r\nAccept: */*\r\n"
        );
        assert_eq!(h.host, "app.localhost");
        assert_eq!(h.path, "/a?b=%22c%22");
        assert!(!h.close);
        let (fwd, request_id, via) = h.client.finish("127.0.0.1");
        assert_eq!(fwd, "10.0.0.1, 127.0.0.1");
        assert_eq!(via.as_deref(), Some("1.0 other"));
        assert_eq!(request_id, "abcdefghijklmnopqrstuvwxyz");
        assert!(head("GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n").close);
    }

    #[test]
    fn unusual_requests_go_to_the_hyper_path() {
        for raw in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET /\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n",
            "garbage\r\n\r\n",
        ] {
            assert!(declined(raw), "{raw:?}");
        }
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nHost: a\r\n", 8192),
            Parsed::Partial
        ));
        let long = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
            "a".repeat(9000)
        );
        assert!(declined(&long));
    }

    fn final_head(raw: &str, head_only: bool) -> RespHead {
        match parse_response(raw.as_bytes(), head_only) {
            Ok(Some(Resp::Final(h))) => h,
            _ => panic!("not a final head: {raw:?}"),
        }
    }

    #[test]
    fn response_framing_and_reuse() {
        let h = final_head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false);
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.reusable);
        let h = final_head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
        assert_eq!(h.framing, Framing::None);
        let h = final_head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\nKeep-Alive: 5\r\n\r\n",
            false,
        );
        assert_eq!(h.framing, Framing::Chunked);
        assert_eq!(
            String::from_utf8(h.client_head).unwrap(),
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n"
        );
        let h = final_head("HTTP/1.0 200 OK\r\n\r\n", false);
        assert_eq!(h.framing, Framing::Close);
        assert!(!h.reusable);
        let h = final_head(
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            false,
        );
        assert_eq!(h.framing, Framing::None);
        assert!(!h.reusable);
        assert!(matches!(
            parse_response(
                b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\n",
                false
            ),
            Ok(Some(Resp::Informational(37)))
        ));
        assert!(parse_response(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            false
        )
        .is_err());
        assert!(parse_response(b"garbage\r\n\r\n", false).is_err());
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\n", false),
            Ok(None)
        ));
    }

    #[test]
    fn chunk_scanner_finds_the_end_across_splits() {
        let body = b"5;ext=1\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..body.len() {
            let mut s = ChunkScanner::default();
            let (a, b) = body.split_at(split);
            let got = match s.feed(a).unwrap() {
                Some(n) => n,
                None => split + s.feed(b).unwrap().expect("end in second part"),
            };
            assert_eq!(got, end, "split at {split}");
            assert_eq!(s.data_bytes, 21);
        }
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX",
            b"\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            assert!(ChunkScanner::default().feed(bad).is_err(), "{bad:?}");
        }
    }
}
