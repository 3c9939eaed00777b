//! End-to-end tests: a real router on 127.0.0.1 in front of small hyper/tokio
//! backends started by each test. Timeouts are shortened in the config; no test
//! asserts wall-clock durations.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hoist_router::{
    AppRoute, Backend, RouteStatus, Router, RouterConfig, RouterHooks, RoutingTable, Table,
};
use hoist_types::LogLine;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type RespBody = BoxBody<Bytes, BoxError>;

/// Upper bound for anything a test waits for, so a broken router fails instead of hanging.
const LIMIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Harness

#[derive(Default)]
struct Hooks {
    lines: Mutex<Vec<(String, String)>>,
    wakes: Mutex<Vec<String>>,
    on_wake: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl RouterHooks for Hooks {
    fn log(&self, app_id: &str, line: LogLine) {
        assert_eq!(line.ps, "router");
        self.lines.lock().push((app_id.to_string(), line.message));
    }
    fn wake(&self, app_id: &str) {
        self.wakes.lock().push(app_id.to_string());
        if let Some(f) = self.on_wake.lock().as_ref() {
            f();
        }
    }
}

impl Hooks {
    /// Waits for a log line containing every needle (lines are written when a
    /// response ends, which may be just after the client saw it).
    async fn wait_line(&self, needles: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            if let Some((_, l)) = self
                .lines
                .lock()
                .iter()
                .find(|(_, l)| needles.iter().all(|n| l.contains(n)))
            {
                return l.clone();
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "no log line with {needles:?}; lines: {:#?}",
                    self.lines.lock()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

struct Harness {
    addr: SocketAddr,
    table: Arc<RoutingTable>,
    hooks: Arc<Hooks>,
    router: Arc<Router>,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

fn test_config() -> RouterConfig {
    RouterConfig {
        connect_timeout: Duration::from_millis(300),
        first_byte_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(2),
        header_read_timeout: Duration::from_millis(500),
        wake_timeout: Duration::from_millis(500),
        ..RouterConfig::default()
    }
}

async fn start(cfg: RouterConfig) -> Harness {
    let table = RoutingTable::new();
    let hooks = Arc::new(Hooks::default());
    let router = Arc::new(Router::new(cfg, table.clone(), hooks.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let r = router.clone();
    let served = tokio::spawn(async move {
        r.serve(listener, async move {
            let _ = stopped.await;
        })
        .await
    });
    Harness {
        addr,
        table,
        hooks,
        router,
        stop: Some(stop),
        served: Some(served),
    }
}

impl Harness {
    fn publish(&self, routes: Vec<AppRoute>, custom: &[(&str, &str)]) {
        self.table.publish(table_of(routes, custom));
    }

    async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let served = self.served.take().unwrap();
        tokio::time::timeout(LIMIT, served)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

fn table_of(routes: Vec<AppRoute>, custom: &[(&str, &str)]) -> Table {
    let mut t = Table::default();
    for r in routes {
        t.apps.insert(r.app_name.clone(), r);
    }
    for (host, app) in custom {
        t.custom_domains.insert(host.to_string(), app.to_string());
    }
    t
}

fn app(name: &str, status: RouteStatus, backends: &[(&str, SocketAddr)]) -> AppRoute {
    AppRoute {
        app_id: format!("id-{name}"),
        app_name: name.to_string(),
        maintenance: false,
        status,
        backends: backends
            .iter()
            .map(|(dyno, addr)| Backend {
                dyno: dyno.to_string(),
                addr: *addr,
            })
            .collect(),
    }
}

fn full(s: impl Into<Bytes>) -> RespBody {
    Full::new(s.into()).map_err(|e| match e {}).boxed()
}

/// A hyper backend; `handler` gets each request.
async fn backend<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<RespBody>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// A backend that answers with its name, the method/path and the headers it got.
async fn echo_backend(name: &'static str) -> SocketAddr {
    backend(move |req: Request<Incoming>| async move {
        let mut out = format!("dyno={name}\n{} {}\n", req.method(), req.uri());
        for (k, v) in req.headers() {
            out.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
        }
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        out.push_str(&format!("body={}\n", String::from_utf8_lossy(&body)));
        Response::builder()
            .header("x-backend", name)
            .header("keep-alive", "timeout=5")
            .body(full(out))
            .unwrap()
    })
    .await
}

/// A raw TCP backend: `f` gets every accepted connection.
async fn raw_backend<F, Fut>(f: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(f(s));
        }
    });
    addr
}

/// Reads a request head from a raw connection.
async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut b).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&b[..n]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// An address nothing listens on.
async fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

struct Reply {
    status: StatusCode,
    headers: hyper::HeaderMap,
    body: String,
}

/// One request over a fresh connection through the router.
async fn send(addr: SocketAddr, req: Request<RespBody>) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = tokio::time::timeout(LIMIT, sender.send_request(req))
        .await
        .expect("router answered in time")
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(LIMIT, resp.into_body().collect())
        .await
        .unwrap()
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_else(|e| format!("<body error: {e}>"));
    Reply {
        status,
        headers,
        body,
    }
}

/// A client connection to the router kept open across requests.
async fn keep_alive_sender(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<RespBody> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// A response body as UTF-8.
async fn body_text(resp: Response<Incoming>) -> String {
    String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    send(
        addr,
        Request::get(path)
            .header("host", host)
            .body(full(""))
            .unwrap(),
    )
    .await
}

/// Writes raw bytes and reads until the router closes the connection.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------
// Routing

#[tokio::test]
async fn routes_by_host_in_any_form_and_custom_domains() {
    let h = start(test_config()).await;
    let web = echo_backend("a").await;
    let other = echo_backend("b").await;
    h.publish(
        vec![
            app("myapp", RouteStatus::Up, &[("web.1", web)]),
            app("other", RouteStatus::Up, &[("web.1", other)]),
        ],
        &[("www.example.com", "other")],
    );
    for host in [
        "myapp.localhost",
        "MyApp.LOCALHOST:8080",
        "myapp.localhost.",
    ] {
        let r = get(h.addr, host, "/x?y=1").await;
        assert_eq!(r.status, 200, "{host}");
        assert!(
            r.body.contains("dyno=a\nGET /x?y=1\n"),
            "{host}: {}",
            r.body
        );
    }
    let r = get(h.addr, "WWW.Example.com:80", "/").await;
    assert!(r.body.contains("dyno=b"), "{}", r.body);

    let r = get(h.addr, "nope.localhost", "/").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("no such app"));
    assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
    h.shutdown().await;
}

#[tokio::test]
async fn adds_forwarding_headers_and_strips_hop_by_hop() {
    let h = start(test_config()).await;
    let web = echo_backend("a").await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);
    let r = send(
        h.addr,
        Request::get("/")
            .header("host", "myapp.localhost")
            .header("x-forwarded-for", "10.1.2.3")
            .header("x-forwarded-proto", "https")
            .header("connection", "x-hop")
            .header("x-hop", "secret")
            .header("keep-alive", "timeout=1")
            .header("via", "1.0 corp")
            .body(full(""))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let headers: HashMap<&str, &str> = r.body.lines().filter_map(|l| l.split_once(": ")).collect();
    assert_eq!(headers["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-port"], h.addr.port().to_string());
    assert_eq!(headers["via"], "1.0 corp, 1.1 hoist");
    assert_eq!(headers["host"], "myapp.localhost");
    let start: u64 = headers["x-request-start"].parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(start <= now && start > now - 60_000, "epoch ms: {start}");
    assert!(!headers.contains_key("x-hop"));
    assert!(!headers.contains_key("keep-alive"));
    assert!(!headers.contains_key("connection"));
    // Hop-by-hop headers from the dyno do not reach the client; `Server` is not forced.
    assert!(r.headers.get("keep-alive").is_none());
    assert!(r.headers.get("server").is_none());
    assert_eq!(r.headers["x-backend"], "a");

    let id = headers["x-request-id"];
    let line = h.hooks.wait_line(&[id]).await;
    let expected_prefix = format!(
        "at=info method=GET path=\"/\" host=myapp.localhost request_id={id} fwd=\"10.1.2.3, 127.0.0.1\" dyno=web.1 connect="
    );
    assert!(line.starts_with(&expected_prefix), "{line}");
    assert!(line.contains(" status=200 bytes="), "{line}");
    assert!(line.ends_with(" protocol=http"), "{line}");
    assert_eq!(h.hooks.lines.lock()[0].0, "id-myapp");
    h.shutdown().await;
}

#[tokio::test]
async fn keeps_valid_request_ids_and_replaces_others() {
    let h = start(test_config()).await;
    let web = echo_backend("a").await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);
    let valid = "abcdefghij0123456789+/=-";
    for (given, kept) in [
        (valid, true),
        ("short", false),
        ("has spaces but is long enough", false),
    ] {
        let r = send(
            h.addr,
            Request::get("/")
                .header("host", "myapp.localhost")
                .header("x-request-id", given)
                .body(full(""))
                .unwrap(),
        )
        .await;
        let id = r
            .body
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap()
            .to_string();
        if kept {
            assert_eq!(id, given);
        } else {
            assert_ne!(id, given);
            assert_eq!(id.len(), 36, "uuid: {id}");
        }
        h.hooks.wait_line(&[&format!("request_id={id} ")]).await;
    }
    h.shutdown().await;
}

/// The fast path declines an absolute-form target, so the same request goes once
/// through each path; the dyno must see the same headers from both.
#[tokio::test]
async fn both_paths_forward_the_same_headers() {
    let h = start(test_config()).await;
    let web = echo_backend("a").await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);
    let headers = "Host: myapp.localhost\r\nX-Forwarded-For: 10.1.2.3\r\n\
        X-Forwarded-For: 10.4.5.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 1\r\n\
        X-Request-Start: 5\r\nX-Request-Id: short\r\nX-Request-Id: abcdefghij0123456789\r\n\
        Via: 1.0 corp\r\nVia: 1.1 edge\r\nConnection: close, X-Hop\r\nX-Hop: secret\r\n\
        Keep-Alive: timeout=1\r\nAccept: */*\r\n\r\n";
    let mut seen = Vec::new();
    for target in ["/", "http://myapp.localhost/"] {
        let reply = raw(
            h.addr,
            format!("GET {target} HTTP/1.1\r\n{headers}").as_bytes(),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{target}: {reply}");
        let body = &reply[reply.find("dyno=a").expect("echo body")..];
        let mut lines: Vec<&str> = body
            .lines()
            .filter(|l| l.contains(": "))
            .filter(|l| !l.starts_with("x-request-start: "))
            .collect();
        lines.sort_unstable();
        let start = body
            .lines()
            .find_map(|l| l.strip_prefix("x-request-start: "))
            .expect("x-request-start");
        assert!(start.parse::<u64>().unwrap() > 5, "{start}");
        seen.push(lines.join("\n"));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(
        seen[0],
        [
            "accept: */*",
            "host: myapp.localhost",
            "via: 1.0 corp, 1.1 edge, 1.1 hoist",
            "x-forwarded-for: 10.1.2.3, 10.4.5.6, 127.0.0.1",
            "x-forwarded-port: PORT",
            "x-forwarded-proto: http",
            "x-request-id: abcdefghij0123456789",
        ]
        .join("\n")
        .replace("PORT", &h.addr.port().to_string())
    );
    h.shutdown().await;
}

// ---------------------------------------------------------------------------
// Error codes

async fn expect_error(h: &Harness, status: u16, code: &str) -> (Reply, String) {
    let r = get(h.addr, "myapp.localhost", "/").await;
    assert_eq!(r.status.as_u16(), status, "{code}: {}", r.body);
    assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
    let line = h.hooks.wait_line(&[&format!("code={code} ")]).await;
    (r, line)
}

#[tokio::test]
async fn platform_states_h10_h14_h80_h81() {
    let h = start(test_config()).await;
    let web = echo_backend("a").await;

    h.publish(vec![app("myapp", RouteStatus::Crashed, &[])], &[]);
    let (_, line) = expect_error(&h, 503, "H10").await;
    assert!(line.starts_with("at=error code=H10 desc=\"App crashed\" method=GET path=\"/\" host=myapp.localhost request_id="), "{line}");
    assert!(
        line.contains(" dyno= connect= service= status=503 bytes= protocol=http"),
        "{line}"
    );

    h.publish(vec![app("myapp", RouteStatus::NoWebDynos, &[])], &[]);
    expect_error(&h, 503, "H14").await;

    h.publish(vec![app("myapp", RouteStatus::NotDeployed, &[])], &[]);
    expect_error(&h, 502, "H81").await;

    let mut m = app("myapp", RouteStatus::Up, &[("web.1", web)]);
    m.maintenance = true;
    h.publish(vec![m], &[]);
    let (r, line) = expect_error(&h, 503, "H80").await;
    assert!(r.body.contains("Maintenance"));
    assert!(
        line.starts_with("at=info code=H80 desc=\"Maintenance mode\""),
        "{line}"
    );

    let s = h.router.metrics().app_summary("id-myapp");
    assert_eq!(s["requests"], 4);
    assert_eq!(s["status"]["5xx"], 4);
    assert_eq!(s["errors"]["H81"], 1);
    assert_eq!(s["in_flight"], 0);
    h.shutdown().await;
}

#[tokio::test]
async fn h21_refused_h19_connect_timeout() {
    let h = start(test_config()).await;
    let dead = dead_addr().await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", dead)])], &[]);
    let (_, line) = expect_error(&h, 503, "H21").await;
    assert!(
        line.contains("desc=\"Backend connection refused\""),
        "{line}"
    );
    assert!(line.contains(" dyno=web.1 "), "{line}");

    // A listener whose accept queue is full drops SYNs: the connect hangs.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let full_listener = socket.listen(0).unwrap();
    let hang = full_listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(hang)).await
        {
            fillers.push(s);
        }
    }
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", hang)])], &[]);
    let (_, line) = expect_error(&h, 503, "H19").await;
    assert!(
        line.contains("desc=\"Backend connection timeout\""),
        "{line}"
    );
    drop(fillers);
    drop(full_listener);
    h.shutdown().await;
}

#[tokio::test]
async fn h12_dyno_never_answers() {
    let h = start(test_config()).await;
    let (held_tx, mut held) = mpsc::unbounded_channel();
    let silent = raw_backend(move |mut s| {
        let held_tx = held_tx.clone();
        async move {
            read_head(&mut s).await;
            let _ = held_tx.send(s); // keep it open, never answer
        }
    })
    .await;
    h.publish(
        vec![app("myapp", RouteStatus::Up, &[("web.1", silent)])],
        &[],
    );
    let (r, line) = expect_error(&h, 503, "H12").await;
    assert!(r.body.contains("Application error"));
    assert!(line.starts_with("at=error code=H12 desc=\"Request timeout\" method=GET path=\"/\" host=myapp.localhost request_id="), "{line}");
    assert!(line.contains(" dyno=web.1 connect=0ms service="), "{line}");
    assert!(line.contains(" status=503 bytes=0 protocol=http"), "{line}");
    assert!(held.recv().await.is_some());
    h.shutdown().await;
}

#[tokio::test]
async fn h13_h17_h18_misbehaving_dynos() {
    let h = start(test_config()).await;
    let closer = raw_backend(|mut s| async move {
        read_head(&mut s).await;
    })
    .await;
    h.publish(
        vec![app("myapp", RouteStatus::Up, &[("web.1", closer)])],
        &[],
    );
    let (_, line) = expect_error(&h, 503, "H13").await;
    assert!(
        line.contains("desc=\"Connection closed without response\""),
        "{line}"
    );

    let garbage = raw_backend(|mut s| async move {
        read_head(&mut s).await;
        let _ = s.write_all(b"THIS IS NOT HTTP\r\n\r\n").await;
    })
    .await;
    h.publish(
        vec![app("myapp", RouteStatus::Up, &[("web.1", garbage)])],
        &[],
    );
    expect_error(&h, 503, "H17").await;

    let mid_body = raw_backend(|mut s| async move {
        read_head(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
            .await;
    })
    .await;
    h.publish(
        vec![app("myapp", RouteStatus::Up, &[("web.1", mid_body)])],
        &[],
    );
    let r = get(h.addr, "myapp.localhost", "/").await;
    assert_eq!(r.status, 200);
    assert!(
        r.body.starts_with("<body error"),
        "truncated body must not look complete: {}",
        r.body
    );
    let line = h.hooks.wait_line(&["code=H18 "]).await;
    assert!(
        line.contains("desc=\"Server Request Interrupted\""),
        "{line}"
    );
    assert!(line.contains(" bytes=10 "), "{line}");
    assert!(line.ends_with(" sock=backend"), "{line}");
    h.shutdown().await;
}

#[tokio::test]
async fn h15_dyno_idle_mid_body() {
    let cfg = RouterConfig {
        idle_timeout: Duration::from_millis(400),
        ..test_config()
    };
    let h = start(cfg).await;
    let (held_tx, _held) = mpsc::unbounded_channel();
    let stalls = raw_backend(move |mut s| {
        let held_tx = held_tx.clone();
        async move {
            read_head(&mut s).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
                .await;
            let _ = held_tx.send(s);
        }
    })
    .await;
    h.publish(
        vec![app("myapp", RouteStatus::Up, &[("web.1", stalls)])],
        &[],
    );
    let r = get(h.addr, "myapp.localhost", "/").await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("<body error"), "{}", r.body);
    let line = h.hooks.wait_line(&["code=H15 "]).await;
    assert!(line.contains(" bytes=5 "), "{line}");
    h.shutdown().await;
}

#[tokio::test]
async fn h20_boot_timeout_and_wake_on_request() {
    let h = start(test_config()).await;
    h.publish(vec![app("myapp", RouteStatus::Starting, &[])], &[]);
    expect_error(&h, 503, "H20").await;
    assert!(h.hooks.wakes.lock().is_empty());

    // Idle: the router asks to wake the app; the "dyno manager" publishes it up.
    let web = echo_backend("a").await;
    let table = h.table.clone();
    *h.hooks.on_wake.lock() = Some(Box::new(move || {
        let table = table.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            table.publish(table_of(
                vec![app("myapp", RouteStatus::Up, &[("web.1", web)])],
                &[],
            ));
        });
    }));
    h.publish(vec![app("myapp", RouteStatus::Idle, &[])], &[]);
    let r = get(h.addr, "myapp.localhost", "/").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(h.hooks.wakes.lock().as_slice(), ["id-myapp"]);
    let last = h.router.metrics().last_request("id-myapp");
    assert!(last.is_some());
    h.shutdown().await;
}

// ---------------------------------------------------------------------------
// Load balancing and retries

#[tokio::test]
async fn spreads_load_over_two_dynos() {
    let h = start(test_config()).await;
    let a = echo_backend("a").await;
    let b = echo_backend("b").await;
    h.publish(
        vec![app("myapp", RouteStatus::Up, &[("web.1", a), ("web.2", b)])],
        &[],
    );
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..60 {
        let r = get(h.addr, "myapp.localhost", "/").await;
        *counts
            .entry(r.headers["x-backend"].to_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(counts.values().all(|&n| n >= 5), "{counts:?}");
    h.shutdown().await;
}

#[tokio::test]
async fn retries_refused_connect_on_another_dyno() {
    let h = start(test_config()).await;
    let dead = dead_addr().await;
    let live = echo_backend("live").await;
    h.publish(
        vec![app(
            "myapp",
            RouteStatus::Up,
            &[("web.1", dead), ("web.2", live)],
        )],
        &[],
    );
    for _ in 0..10 {
        let r = get(h.addr, "myapp.localhost", "/").await;
        assert_eq!(r.status, 200);
    }
    // A body that was never sent can follow the request to the next dyno.
    for _ in 0..5 {
        let r = send(
            h.addr,
            Request::post("/upload")
                .header("host", "myapp.localhost")
                .body(full("payload"))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains("body=payload"), "{}", r.body);
    }
    assert!(h
        .hooks
        .lines
        .lock()
        .iter()
        .all(|(_, l)| !l.contains("code=")));
    h.shutdown().await;
}

// ---------------------------------------------------------------------------
// Streaming, Expect, WebSocket

#[tokio::test]
async fn streams_chunked_bodies_both_ways_without_buffering() {
    let h = start(test_config()).await;
    // Echoes the request body frame by frame.
    let web = backend(|req: Request<Incoming>| async move {
        Response::new(req.into_body().map_err(|e| Box::new(e) as BoxError).boxed())
    })
    .await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);

    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    let body = StreamBody::new(tokio_stream_from(rx)).boxed();
    let stream = TcpStream::connect(h.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/echo")
        .header("host", "myapp.localhost")
        .body(body)
        .unwrap();
    let pending = tokio::spawn(sender.send_request(req));
    tx.send(Ok(Frame::data(Bytes::from("first;"))))
        .await
        .unwrap();
    let resp = tokio::time::timeout(LIMIT, pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    // The first chunk comes back while the upload is still open: nothing is buffered.
    let frame = tokio::time::timeout(LIMIT, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_data().unwrap(), "first;");
    tx.send(Ok(Frame::data(Bytes::from("second"))))
        .await
        .unwrap();
    let frame = tokio::time::timeout(LIMIT, body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_data().unwrap(), "second");
    drop(tx);
    assert!(tokio::time::timeout(LIMIT, body.frame())
        .await
        .unwrap()
        .is_none());
    h.hooks
        .wait_line(&["path=\"/echo\"", "status=200 bytes=12 "])
        .await;
    h.shutdown().await;
}

/// Adapts an mpsc receiver to a `Stream` without extra crates.
fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn expect_100_continue_and_unknown_expectations() {
    let h = start(test_config()).await;
    let web = echo_backend("a").await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(b"POST /e HTTP/1.1\r\nHost: myapp.localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(b"hello").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(rest.contains("body=hello"), "{rest}");
    assert!(
        !rest.contains("expect:"),
        "Expect is answered by the router: {rest}"
    );

    let out = raw(
        h.addr,
        b"GET / HTTP/1.1\r\nHost: myapp.localhost\r\nExpect: magic\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 417"), "{out}");
    h.hooks.wait_line(&["code=H26 ", "status=417 "]).await;
    h.shutdown().await;
}

/// A WebSocket-ish backend: answers the upgrade and echoes raw bytes; with
/// `die_after_first`, closes the upgraded connection after the first echo.
async fn upgrade_backend(die_after_first: bool) -> SocketAddr {
    backend(move |mut req: Request<Incoming>| async move {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let Ok(up) = on_upgrade.await else { return };
            let mut io = TokioIo::new(up);
            let mut buf = [0u8; 1024];
            loop {
                let n = io.read(&mut buf).await.unwrap_or(0);
                if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                if die_after_first {
                    return;
                }
            }
        });
        Response::builder()
            .status(101)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .body(full(""))
            .unwrap()
    })
    .await
}

async fn open_websocket(addr: SocketAddr) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: myapp.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let head = tokio::time::timeout(LIMIT, read_head(&mut s))
        .await
        .unwrap();
    (s, head)
}

#[tokio::test]
async fn websocket_echo_and_dyno_dying_mid_session() {
    let h = start(test_config()).await;
    let web = upgrade_backend(false).await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);
    let (mut s, head) = open_websocket(h.addr).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    // A masked text frame "hi"; the tunnel is byte-transparent.
    let frame = [0x81u8, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    for _ in 0..3 {
        s.write_all(&frame).await.unwrap();
        let mut echo = [0u8; 8];
        tokio::time::timeout(LIMIT, s.read_exact(&mut echo))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echo, frame);
    }
    h.hooks.wait_line(&["path=\"/ws\"", "status=101 "]).await;

    let dying = upgrade_backend(true).await;
    h.publish(
        vec![app("myapp", RouteStatus::Up, &[("web.1", dying)])],
        &[],
    );
    let (mut s, head) = open_websocket(h.addr).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s.write_all(&frame).await.unwrap();
    let mut echo = [0u8; 8];
    tokio::time::timeout(LIMIT, s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    // The dyno is gone: the client sees the connection end instead of hanging.
    let mut rest = Vec::new();
    let n = tokio::time::timeout(LIMIT, s.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0)) || n.is_err(), "{n:?}");
    h.shutdown().await;
}

// ---------------------------------------------------------------------------
// Hostile clients

#[tokio::test]
async fn rejects_malformed_and_smuggling_requests() {
    let h = start(test_config()).await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<String>();
    let web = backend(move |req: Request<Incoming>| {
        let seen_tx = seen_tx.clone();
        async move {
            let path = req.uri().path().to_string();
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let _ = seen_tx.send(format!("{path} body={}", String::from_utf8_lossy(&body)));
            Response::new(full("ok"))
        }
    })
    .await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);

    let cases: [(&str, &[u8], &str); 8] = [
        ("garbage request line", b"HELLO THERE\r\n\r\n", "400"),
        ("missing host", b"GET / HTTP/1.1\r\n\r\n", "400"),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: myapp.localhost\r\nHost: evil.localhost\r\n\r\n", "400"),
        ("conflicting content-length", b"POST / HTTP/1.1\r\nHost: myapp.localhost\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "400"),
        ("non-chunked transfer-encoding", b"POST / HTTP/1.1\r\nHost: myapp.localhost\r\nTransfer-Encoding: gzip\r\n\r\n", "400"),
        ("transfer-encoding in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: myapp.localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"),
        ("header line too long", &[b"GET / HTTP/1.1\r\nHost: myapp.localhost\r\nX-Big: ".as_slice(), &[b'a'; 9000], b"\r\n\r\n"].concat(), "431"),
        ("head too large", &[b"GET / HTTP/1.1\r\nHost: myapp.localhost\r\n".as_slice(), &[b"X-Many: ".as_slice(), &[b'a'; 8000], b"\r\n"].concat().repeat(10), b"\r\n"].concat(), "431"),
    ];
    for (what, bytes, status) in cases {
        let out = raw(h.addr, bytes).await;
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {out}"
        );
    }
    // Where the app is known, the rejection is in its log.
    h.hooks.wait_line(&["code=H26 ", "status=400 "]).await;
    h.hooks.wait_line(&["code=H26 ", "status=431 "]).await;

    // CL.TE smuggling: chunked wins, so the "0" chunk ends the body, and the
    // connection is closed so the smuggled request is never read.
    let out = raw(
        h.addr,
        b"POST /front HTTP/1.1\r\nHost: myapp.localhost\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: myapp.localhost\r\n\r\n",
    )
    .await;
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    // TE.CL the other way round.
    let out = raw(
        h.addr,
        b"POST /front HTTP/1.1\r\nHost: myapp.localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nGET /\r\n0\r\n\r\nGET /smuggled2 HTTP/1.1\r\nHost: myapp.localhost\r\n\r\n",
    )
    .await;
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut paths = Vec::new();
    while let Ok(p) = seen.try_recv() {
        paths.push(p);
    }
    assert!(paths.iter().all(|p| !p.contains("smuggled")), "{paths:?}");
    assert!(
        paths.contains(&"/front body=GET /".to_string()),
        "{paths:?}"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn closes_slow_header_senders() {
    let h = start(test_config()).await;
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: myapp.loc")
        .await
        .unwrap();
    let mut buf = Vec::new();
    // The router closes the connection instead of waiting forever (else this times out).
    let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut buf))
        .await
        .expect("slow header sender still connected");
    assert!(!String::from_utf8_lossy(&buf).contains(" 200 "));
    h.shutdown().await;
}

#[tokio::test]
async fn holds_a_thousand_idle_keep_alive_connections() {
    const CONNS: usize = 1000;
    // Opening 1,000 connections one by one can outlast the 2 s idle timeout of the
    // test config when other tests share the CPU: the first ones would be closed.
    let h = start(RouterConfig {
        idle_timeout: Duration::from_secs(60),
        ..test_config()
    })
    .await;
    let web = echo_backend("a").await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);
    let mut senders = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let mut sender = keep_alive_sender(h.addr).await;
        let resp = sender
            .send_request(
                Request::get("/")
                    .header("host", "myapp.localhost")
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
        senders.push(sender);
    }
    let metrics = h.router.metrics();
    assert_eq!(metrics.connections_open(), CONNS as i64);
    // Every held connection still serves a request.
    for sender in senders.iter_mut().step_by(97) {
        let resp = sender
            .send_request(
                Request::get("/again")
                    .header("host", "myapp.localhost")
                    .body(full(""))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
    }
    // A request is counted when the router has finished it, which may be just after
    // the client read the last byte.
    let want = CONNS as u64 + 11;
    for _ in 0..100 {
        if metrics.app_summary("id-myapp")["requests"] == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metrics.app_summary("id-myapp")["requests"], want);
    assert!(metrics
        .prometheus_text()
        .contains(&format!("hoist_router_connections_open {CONNS}")));
    drop(senders);
    h.shutdown().await;
}

#[tokio::test]
async fn parked_keep_alive_connection_serves_again() {
    let h = start(test_config()).await;
    let web = echo_backend("a").await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);
    let mut sender = keep_alive_sender(h.addr).await;
    // Requests with a body take the hyper path (which parks); the rest the fast path.
    for (method, path) in [
        ("POST", "/one"),
        ("GET", "/two"),
        ("POST", "/three"),
        ("GET", "/four"),
    ] {
        let body = if method == "POST" { "x" } else { "" };
        let resp = sender
            .send_request(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .header("host", "myapp.localhost")
                    .body(full(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(&format!("{method} {path}")));
        // Long enough between requests for the router to park the connection
        // (idle_timeout 2 s -> parked after 1 s), short of closing it.
        tokio::time::sleep(Duration::from_millis(1300)).await;
    }
    assert_eq!(h.router.metrics().connections_open(), 1);
    h.shutdown().await;
}

/// Reads `n` HTTP/1.1 responses with Content-Length bodies from a raw connection.
async fn read_responses(s: &mut TcpStream, n: usize) -> Vec<(String, String)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut b = [0u8; 4096];
    while out.len() < n {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                buf.drain(..end + 4 + len);
                out.push((head, body));
                continue;
            }
        }
        let got = tokio::time::timeout(LIMIT, s.read(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert!(got > 0, "router closed after {} responses", out.len());
        buf.extend_from_slice(&b[..got]);
    }
    out
}

#[tokio::test]
async fn pipelined_requests_cross_between_fast_and_full_paths_in_order() {
    let h = start(test_config()).await;
    let web = echo_backend("a").await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    // GET (fast path), then a POST with a body (handed to hyper with the pipelined
    // bytes behind it), then GETs hyper serves until the connection parks.
    s.write_all(
        b"GET /one HTTP/1.1\r\nHost: myapp.localhost\r\n\r\n\
          POST /two HTTP/1.1\r\nHost: myapp.localhost\r\nContent-Length: 3\r\n\r\nabc\
          GET /three HTTP/1.1\r\nHost: myapp.localhost\r\n\r\n",
    )
    .await
    .unwrap();
    let got = read_responses(&mut s, 3).await;
    assert!(got[0].1.contains("GET /one"), "{got:?}");
    assert!(
        got[1].1.contains("POST /two") && got[1].1.contains("body=abc"),
        "{got:?}"
    );
    assert!(got[2].1.contains("GET /three"), "{got:?}");
    // Two more pipelined GETs in one write, the last asking to close.
    s.write_all(
        b"GET /four HTTP/1.1\r\nHost: myapp.localhost\r\n\r\n\
          GET /five HTTP/1.1\r\nHost: myapp.localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let got = read_responses(&mut s, 2).await;
    assert!(got[0].1.contains("GET /four"), "{got:?}");
    assert!(got[1].1.contains("GET /five"), "{got:?}");
    let mut rest = Vec::new();
    let n = tokio::time::timeout(LIMIT, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "closed after the request that asked for it");
    for path in ["/one", "/two", "/three", "/four", "/five"] {
        h.hooks
            .wait_line(&[&format!("path=\"{path}\""), "status=200"])
            .await;
    }
    h.shutdown().await;
}

/// Answers every request on a connection with `reply`, closing after `per_conn`
/// responses without saying so (as a dyno whose keep-alive timer fired would).
async fn scripted_backend(reply: &'static str, per_conn: usize) -> SocketAddr {
    raw_backend(move |mut s| async move {
        for _ in 0..per_conn {
            let head = read_head(&mut s).await;
            if head.is_empty() {
                return;
            }
            let reply = if head.starts_with("HEAD ") {
                reply.split("\r\n\r\n").next().unwrap_or("").to_string() + "\r\n\r\n"
            } else {
                reply.to_string()
            };
            if s.write_all(reply.as_bytes()).await.is_err() {
                return;
            }
        }
    })
    .await
}

#[tokio::test]
async fn dyno_closing_a_pooled_connection_does_not_fail_the_next_request() {
    let h = start(test_config()).await;
    let web = scripted_backend("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1).await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);
    for method in ["GET", "DELETE", "POST", "GET"] {
        let r = send(
            h.addr,
            Request::builder()
                .method(method)
                .uri("/")
                .header("host", "myapp.localhost")
                .body(full(""))
                .unwrap(),
        )
        .await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (StatusCode::OK, "ok"),
            "{method}"
        );
        // Let the dyno's close reach the router's pooled connection.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.shutdown().await;
}

#[tokio::test]
async fn chunked_head_and_empty_responses_keep_the_connection_usable() {
    let h = start(test_config()).await;
    let chunked = scripted_backend(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        100,
    )
    .await;
    let empty = scripted_backend("HTTP/1.1 204 No Content\r\nX-Kind: empty\r\n\r\n", 100).await;
    h.publish(
        vec![
            app("chunky", RouteStatus::Up, &[("web.1", chunked)]),
            app("empty", RouteStatus::Up, &[("web.1", empty)]),
        ],
        &[],
    );
    let mut sender = keep_alive_sender(h.addr).await;
    for (method, host, want) in [
        ("GET", "chunky.localhost", "hello world"),
        ("HEAD", "chunky.localhost", ""),
        ("GET", "empty.localhost", ""),
        ("GET", "chunky.localhost", "hello world"),
    ] {
        let resp = tokio::time::timeout(
            LIMIT,
            sender.send_request(
                Request::builder()
                    .method(method)
                    .uri("/")
                    .header("host", host)
                    .body(full(""))
                    .unwrap(),
            ),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(resp.headers().contains_key("x-kind"), "{method} {host}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(String::from_utf8_lossy(&body), want, "{method} {host}");
    }
    let line = h
        .hooks
        .wait_line(&["host=chunky.localhost", "bytes=11"])
        .await;
    assert!(line.contains("status=200"), "{line}");
    assert_eq!(h.router.metrics().connections_open(), 1);
    h.shutdown().await;
}

// ---------------------------------------------------------------------------
// TLS termination (behind a flag): SNI certificates, HTTP/2 and HTTP/1.1 by ALPN

struct TlsHarness {
    addr: SocketAddr,
    roots: Arc<tokio_rustls::rustls::RootCertStore>,
    stop: Option<oneshot::Sender<()>>,
    _certs: tempfile::TempDir,
}

/// Writes `<host>.crt`/`<host>.key` self-signed pairs and serves TLS on 127.0.0.1.
async fn start_tls(router: Arc<Router>, hosts: &[&str]) -> TlsHarness {
    let dir = tempfile::tempdir().unwrap();
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    for host in hosts {
        let k = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
        std::fs::write(dir.path().join(format!("{host}.crt")), k.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join(format!("{host}.key")),
            k.key_pair.serialize_pem(),
        )
        .unwrap();
        roots.add(k.cert.der().clone()).unwrap();
    }
    let store = hoist_router::tls::CertStore::load_dir(dir.path()).unwrap();
    let cfg = hoist_router::tls::server_config(store).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        router
            .serve_tls(listener, cfg, async move {
                let _ = stopped.await;
            })
            .await
    });
    TlsHarness {
        addr,
        roots: Arc::new(roots),
        stop: Some(stop),
        _certs: dir,
    }
}

async fn tls_connect(
    t: &TlsHarness,
    sni: &str,
    alpn: &[u8],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut cfg = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(t.roots.clone())
    .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = TcpStream::connect(t.addr).await?;
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    connector.connect(name, tcp).await
}

#[tokio::test]
async fn tls_terminates_by_sni_and_speaks_http2_and_http1() {
    let h = start(test_config()).await;
    let web = echo_backend("web.1").await;
    h.publish(
        vec![app("myapp", RouteStatus::Up, &[("web.1", web)])],
        &[("www.example.test", "myapp")],
    );
    let t = start_tls(h.router.clone(), &["myapp.localhost", "www.example.test"]).await;

    // HTTP/2 by ALPN; the host travels as :authority and reaches the dyno as Host.
    let tls = tls_connect(&t, "myapp.localhost", b"h2").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://myapp.localhost/over-h2")
        .body(full(""))
        .unwrap();
    let resp = tokio::time::timeout(LIMIT, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let body = body_text(resp).await;
    assert!(body.contains("GET /over-h2"), "{body}");
    assert!(body.contains("host: myapp.localhost\n"), "{body}");
    assert!(body.contains("x-forwarded-proto: https\n"), "{body}");
    assert!(
        body.contains(&format!("x-forwarded-port: {}\n", t.addr.port())),
        "{body}"
    );
    h.hooks
        .wait_line(&["path=\"/over-h2\"", "status=200 ", "protocol=https"])
        .await;

    // HTTP/1.1 by ALPN, on a custom domain with its own certificate.
    let tls = tls_connect(&t, "www.example.test", b"http/1.1")
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/over-h1")
        .header("host", "www.example.test")
        .body(full(""))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = body_text(resp).await;
    assert!(body.contains("GET /over-h1"), "{body}");
    assert!(body.contains("x-forwarded-proto: https\n"), "{body}");

    // No certificate for the name and no default: the handshake fails, nothing routes.
    assert!(tls_connect(&t, "other.localhost", b"h2").await.is_err());
    let _ = t.stop.unwrap().send(());
    h.shutdown().await;
}

#[tokio::test]
async fn websocket_upgrade_over_tls() {
    let h = start(test_config()).await;
    let web = upgrade_backend(false).await;
    h.publish(vec![app("myapp", RouteStatus::Up, &[("web.1", web)])], &[]);
    let t = start_tls(h.router.clone(), &["myapp.localhost"]).await;
    let mut s = tls_connect(&t, "myapp.localhost", b"http/1.1")
        .await
        .unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: myapp.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tokio::time::timeout(LIMIT, s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let frame = [0x81u8, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
    for _ in 0..3 {
        s.write_all(&frame).await.unwrap();
        let mut echo = [0u8; 8];
        tokio::time::timeout(LIMIT, s.read_exact(&mut echo))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(echo, frame);
    }
    h.hooks
        .wait_line(&["path=\"/ws\"", "status=101 ", "protocol=https"])
        .await;
    let _ = t.stop.unwrap().send(());
    h.shutdown().await;
}
