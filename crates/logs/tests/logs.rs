//! End-to-end tests of the log hub over real loopback sockets and real files.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hoist_logs::{DrainConfig, LogConfig, LogFilter, LogHub, SessionRequest};
use hoist_types::{LogLine, LogSource};
use parking_lot::Mutex;
use support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

fn msgs(lines: &[LogLine]) -> Vec<String> {
    lines.iter().map(|l| l.message.clone()).collect()
}

fn tail(lines: usize, filter: LogFilter) -> SessionRequest {
    SessionRequest {
        lines,
        tail: true,
        filter,
    }
}

fn metric(hub: &LogHub, name: &str) -> u64 {
    let text = hub.metrics_text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in metrics:\n{text}"))
}

#[tokio::test]
async fn history_is_bounded_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(LogConfig {
        history_lines: 10,
        ..config(dir.path())
    })
    .unwrap();
    for i in 0..25 {
        let ps = if i % 2 == 0 { "web.1" } else { "worker.1" };
        hub.push("app1", LogLine::app(ps, format!("m{i}")));
    }
    hub.push("app1", LogLine::heroku("router", "at=info"));
    let all = hub.history("app1", &LogFilter::default(), 100);
    assert_eq!(all.len(), 10);
    assert_eq!(all.last().unwrap().message, "at=info");
    assert_eq!(all[0].message, "m16");

    let web = LogFilter {
        source: Some(LogSource::App),
        ps: Some("web".into()),
    };
    assert_eq!(msgs(&hub.history("app1", &web, 3)), ["m20", "m22", "m24"]);
    let heroku = LogFilter {
        source: Some(LogSource::Heroku),
        ps: None,
    };
    assert_eq!(msgs(&hub.history("app1", &heroku, 100)), ["at=info"]);
    assert!(hub.history("other", &LogFilter::default(), 100).is_empty());

    // Over-long messages are cut on push so memory stays bounded.
    hub.push("app1", LogLine::app("web.1", "x".repeat(50_000)));
    let last = hub.history("app1", &LogFilter::default(), 1);
    assert_eq!(last[0].message.len(), 10_000);
}

#[tokio::test]
async fn history_survives_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        history_lines: 50,
        ..config(dir.path())
    };
    let weird = "app/with spaces/ü";
    {
        let hub = LogHub::open(cfg.clone()).unwrap();
        // 3.5x history: exercises file rotation.
        for i in 0..175 {
            hub.push(
                "app1",
                LogLine::app("web.1", format!("line {i}\twith\\tab\nand newline")),
            );
        }
        hub.push(weird, LogLine::heroku("router", "weird one"));
        hub.push("gone", LogLine::app("web.1", "bye"));
        hub.forget_app("gone");
        hub.shutdown().await;
        // Lines pushed after shutdown() still reach disk on drop.
        hub.push("app1", LogLine::app("web.1", "after shutdown"));
    }
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(files <= 4, "at most 2 files per app, got {files}");

    let hub = LogHub::open(cfg.clone()).unwrap();
    let h = hub.history("app1", &LogFilter::default(), 1000);
    assert_eq!(h.len(), 50);
    assert_eq!(h[0].message, "line 126\twith\\tab\nand newline");
    assert_eq!(h[48].message, "line 174\twith\\tab\nand newline");
    assert_eq!(h[49].message, "after shutdown");
    assert_eq!(
        msgs(&hub.history(weird, &LogFilter::default(), 10)),
        ["weird one"]
    );
    assert!(hub.history("gone", &LogFilter::default(), 10).is_empty());

    // New lines after a reopen append to the same history.
    hub.push("app1", LogLine::app("web.2", "after reopen"));
    drop(hub);
    let hub = LogHub::open(cfg).unwrap();
    let h = hub.history("app1", &LogFilter::default(), 2);
    assert_eq!(msgs(&h), ["after shutdown", "after reopen"]);
    assert_eq!(h[1].ps, "web.2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_without_tail_sends_last_lines_and_closes() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(config(dir.path())).unwrap();
    let addr = serve(&hub).await;
    for i in 0..20 {
        hub.push(
            "app1",
            LogLine::app(format!("web.{}", i % 2 + 1), format!("hello {i}")),
        );
        hub.push("app1", LogLine::heroku("web.1", format!("state {i}")));
    }
    let token = hub.create_session(
        "app1",
        SessionRequest {
            lines: 5,
            tail: false,
            filter: LogFilter {
                source: Some(LogSource::App),
                ps: Some("web".into()),
            },
        },
    );
    assert!(token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()));

    let mut c = SseClient::connect(addr, &token, None, None).await;
    assert_eq!(c.status, 200);
    assert_eq!(
        c.header("content-type").as_deref(),
        Some("text/event-stream")
    );
    let mut got = Vec::new();
    while let Some(ev) = c.next_event().await {
        got.push(ev);
    }
    assert_eq!(got.len(), 5);
    for (i, ev) in got.iter().enumerate() {
        let n = 15 + i;
        let suffix = format!(" app[web.{}]: hello {n}", n % 2 + 1);
        assert!(ev.data.ends_with(&suffix), "{:?} vs {suffix}", ev.data);
        assert!(ev.data.contains("+00:00 "), "{}", ev.data);
        assert!(ev.id.is_some());
    }
    assert!(got.windows(2).all(|w| w[0].id < w[1].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_tail_streams_live_lines_and_resumes_after_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(config(dir.path())).unwrap();
    hub.set_keepalive_interval(Duration::from_millis(50));
    let addr = serve(&hub).await;
    for i in 0..5 {
        hub.push("app1", LogLine::app("web.1", format!("old {i}")));
    }
    let token = hub.create_session("app1", tail(2, LogFilter::default()));

    let mut c = SseClient::connect(addr, &token, None, None).await;
    assert_eq!(c.status, 200);
    let h1 = c.next_event().await.unwrap();
    let h2 = c.next_event().await.unwrap();
    assert!(h1.data.ends_with("old 3") && h2.data.ends_with("old 4"));

    for i in 0..3 {
        hub.push("app1", LogLine::app("web.1", format!("live {i}")));
    }
    hub.push("other-app", LogLine::app("web.1", "not mine"));
    let mut last_id = 0;
    for i in 0..3 {
        let ev = c.next_event().await.unwrap();
        assert!(
            ev.data.ends_with(&format!("app[web.1]: live {i}")),
            "{}",
            ev.data
        );
        last_id = ev.id.unwrap();
    }
    // Idle tails get keep-alive comments.
    c.wait_comments(1).await;
    drop(c);

    // Lines pushed while the CLI is reconnecting.
    hub.push("app1", LogLine::app("web.1", "gap 0"));
    hub.push("app1", LogLine::app("web.1", "gap 1"));
    let mut c = SseClient::connect(addr, &token, Some(last_id), None).await;
    assert_eq!(c.status, 200);
    let a = c.next_event().await.unwrap();
    let b = c.next_event().await.unwrap();
    assert!(a.data.ends_with("gap 0"), "{}", a.data);
    assert!(b.data.ends_with("gap 1"), "{}", b.data);
    // Ids only grow (they follow the line's time, so they also survive a restart).
    assert!(
        a.id > Some(last_id) && b.id > a.id,
        "{:?} {:?} {last_id}",
        a.id,
        b.id
    );
    hub.push("app1", LogLine::app("web.1", "after resume"));
    assert!(c.next_event().await.unwrap().data.ends_with("after resume"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_expired_and_forgotten_sessions_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(LogConfig {
        session_ttl: Duration::from_millis(100),
        ..config(dir.path())
    })
    .unwrap();
    let addr = serve(&hub).await;
    hub.push("app1", LogLine::app("web.1", "x"));

    let c = SseClient::connect(addr, "0123456789abcdef", None, None).await;
    assert_eq!(c.status, 404);

    let token = hub.create_session("app1", SessionRequest::default());
    // Expiry can only have passed after this sleep: no timing assertion involved.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let c = SseClient::connect(addr, &token, None, None).await;
    assert_eq!(c.status, 404);

    let hub2 = LogHub::open(config(&dir.path().join("b"))).unwrap();
    let addr2 = serve(&hub2).await;
    let token = hub2.create_session("app1", SessionRequest::default());
    hub2.forget_app("app1");
    let c = SseClient::connect(addr2, &token, None, None).await;
    assert_eq!(c.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_tail_gets_l11_and_never_blocks_push() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(LogConfig {
        tail_buffer: 16,
        ..config(dir.path())
    })
    .unwrap();
    let addr = serve(&hub).await;
    let token = hub.create_session("app1", tail(0, LogFilter::default()));
    // A tiny receive buffer so the socket fills quickly once we stop reading.
    let mut c = SseClient::connect(addr, &token, None, Some(4096)).await;
    assert_eq!(c.status, 200);

    // The client reads nothing while we push far more than all buffers hold.
    let pushed = 20_000u64;
    let payload = "p".repeat(1000);
    let hub2 = hub.clone();
    let producer = tokio::task::spawn_blocking(move || {
        for i in 0..pushed {
            hub2.push("app1", LogLine::app("web.1", format!("{i} {payload}")));
        }
    });
    tokio::time::timeout(PATIENCE, producer)
        .await
        .expect("push must not block on a stalled tail")
        .unwrap();
    assert!(metric(&hub, "hoist_logs_dropped_total{reason=\"tail_overflow\"}") > 0);

    // Now read: every line is either delivered or counted in an L11 (the last L11
    // comes once the queue is empty).
    let mut delivered = 0u64;
    let mut reported = 0u64;
    let mut last_seen: Option<u64> = None;
    while delivered + reported < pushed {
        let ev = c.next_event().await.expect("stream open");
        if let Some(rest) = ev
            .data
            .split(
                "heroku[logplex]: Error L11 (Tail buffer overflow) -> This tail session dropped ",
            )
            .nth(1)
        {
            assert!(ev.id.is_none());
            let (n, since) = rest.split_once(" messages since ").unwrap();
            assert!(since.ends_with("+00:00."), "{since}");
            reported += n.parse::<u64>().unwrap();
            continue;
        }
        let n: u64 = ev
            .data
            .split("app[web.1]: ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(last_seen.is_none_or(|l| n > l), "out of order");
        last_seen = Some(n);
        delivered += 1;
    }
    assert!(reported > 0);
    assert_eq!(delivered + reported, pushed);
}

async fn syslog_listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("syslog://127.0.0.1:{}", l.local_addr().unwrap().port());
    (l, url)
}

fn drain(id: &str, url: &str) -> DrainConfig {
    DrainConfig {
        id: id.into(),
        url: url.into(),
        token: format!("d.{id}-0000"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_drain_gets_every_line_in_order_despite_a_dead_neighbour() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(config(dir.path())).unwrap();
    let (listener, url) = syslog_listener().await;
    // A port nobody listens on: the dead drain keeps retrying in the background.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("syslog+tcp://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    hub.set_drains("app1", vec![drain("dead", &dead), drain("good", &url)]);
    let (mut conn, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();

    let n = 3000;
    for i in 0..n {
        hub.push("app1", LogLine::app("web.1", format!("line {i} ünï")));
    }
    hub.push("app1", LogLine::heroku("router", "at=info path=/"));
    let mut buf = Vec::new();
    let frames = read_frames(&mut conn, &mut buf, |f| f.len() > n).await;
    for (i, f) in frames[..n].iter().enumerate() {
        let (head, msg) = f.split_at(6);
        assert_eq!(head, "<190>1");
        let parts: Vec<&str> = msg.trim_start().splitn(6, ' ').collect();
        assert!(parts[0].ends_with("+00:00"), "{f}");
        assert_eq!(&parts[1..5], ["d.good-0000", "app", "web.1", "-"]);
        assert_eq!(parts[5], format!("- line {i} ünï\n"));
    }
    assert!(frames[n].starts_with("<158>1 "));
    assert!(frames[n].ends_with(" d.good-0000 heroku router - - at=info path=/\n"));

    // Removing the drain closes its connection.
    hub.set_drains("app1", vec![]);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(PATIENCE, conn.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(read.is_ok());
    assert!(rest.is_empty());
    assert!(metric(&hub, "hoist_logs_drain_connect_errors_total") > 0);
}

/// Without an operator's allowance a drain never connects to the platform's own side
/// of the network (here: loopback), for syslog and HTTP alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_to_internal_addresses_never_connect() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(LogConfig {
        dir: dir.path().to_path_buf(),
        ..LogConfig::default()
    })
    .unwrap();
    let (listener, url) = syslog_listener().await;
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_url = format!(
        "http://localhost:{}/logs",
        http.local_addr().unwrap().port()
    );
    hub.set_drains("app1", vec![drain("s", &url), drain("h", &http_url)]);
    for i in 0..10 {
        hub.push("app1", LogLine::app("web.1", format!("secret {i}")));
    }
    // Both drains have tried (and been refused) at least once.
    wait_for(|| metric(&hub, "hoist_logs_drain_connect_errors_total") >= 2).await;
    let accepted = tokio::time::timeout(Duration::from_millis(200), async {
        tokio::select! { a = listener.accept() => a.is_ok(), a = http.accept() => a.is_ok() }
    })
    .await;
    assert!(accepted.is_err(), "a drain connected to a refused address");
    hub.set_drains("app1", vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_syslog_drain_drops_and_reports_l10() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(LogConfig {
        drain_buffer: 64,
        ..config(dir.path())
    })
    .unwrap();
    let (listener, url) = syslog_listener().await;
    hub.set_drains("app1", vec![drain("slow", &url)]);
    // Accept, then read nothing while the producer runs.
    let (mut conn, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();

    let pushed = 30_000u64;
    let payload = "p".repeat(1000);
    let hub2 = hub.clone();
    let producer = tokio::task::spawn_blocking(move || {
        for i in 0..pushed {
            hub2.push("app1", LogLine::app("web.1", format!("{i} {payload}")));
        }
    });
    tokio::time::timeout(PATIENCE, producer)
        .await
        .expect("push must not block on a stalled drain")
        .unwrap();
    assert!(metric(&hub, "hoist_logs_dropped_total{reason=\"drain_overflow\"}") > 0);

    // Every line is delivered or counted in an L10 (the last one once the queue is
    // empty and delivery works again).
    let (delivered, reported) = (std::cell::Cell::new(0u64), std::cell::Cell::new(0u64));
    let mut seen = 0;
    let mut last_n: Option<u64> = None;
    let mut buf = Vec::new();
    read_frames(&mut conn, &mut buf, |frames| {
        for f in &frames[seen..] {
            if let Some(rest) = f
                .split("heroku logplex - - Error L10 (output buffer overflow): ")
                .nth(1)
            {
                assert!(f.starts_with("<172>1 "));
                let (n, since) = rest.split_once(" messages dropped since ").unwrap();
                assert!(since.ends_with("+00:00.\n"), "{since}");
                reported.set(reported.get() + n.parse::<u64>().unwrap());
            } else {
                let n: u64 = f
                    .split(" - - ")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(last_n.is_none_or(|l| n > l), "out of order");
                last_n = Some(n);
                delivered.set(delivered.get() + 1);
            }
        }
        seen = frames.len();
        delivered.get() + reported.get() >= pushed
    })
    .await;
    assert!(reported.get() > 0, "expected an L10 line");
    assert_eq!(delivered.get() + reported.get(), pushed);
}

#[derive(Debug, Clone)]
struct Post {
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

/// An HTTP drain endpoint that records posts and fails the first `fail_first`.
async fn http_drain_endpoint(fail_first: usize) -> (String, Arc<Mutex<Vec<Post>>>) {
    let posts: Arc<Mutex<Vec<Post>>> = Arc::default();
    let seen = posts.clone();
    let app = axum::Router::new().route(
        "/logs",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    let mut seen = seen.lock();
                    seen.push(Post {
                        headers,
                        body: body.to_vec(),
                    });
                    if seen.len() <= fail_first {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::NO_CONTENT
                    }
                }
            },
        ),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        format!("http://us%3Aer:s3cr%40t@127.0.0.1:{port}/logs"),
        posts,
    )
}

fn parse_post(p: &Post) -> Vec<String> {
    let (frames, used) = hoist_logs::parse_octet_frames(&p.body);
    assert_eq!(used, p.body.len(), "body is whole frames");
    frames
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("condition in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_drain_posts_logplex_batches() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(config(dir.path())).unwrap();
    let (url, posts) = http_drain_endpoint(0).await;
    hub.set_drains("app1", vec![drain("h", &url)]);
    let n = 3000;
    for i in 0..n {
        hub.push(
            "app1",
            LogLine::app("web.1", format!("{i} {}", "x".repeat(100))),
        );
    }
    let count = |posts: &Mutex<Vec<Post>>| {
        posts
            .lock()
            .iter()
            .map(|p| parse_post(p).len())
            .sum::<usize>()
    };
    wait_for(|| count(&posts) >= n).await;

    let posts = posts.lock().clone();
    assert!(
        posts.len() > 1,
        "~100 KB batches expected, got {} post(s)",
        posts.len()
    );
    use base64::Engine;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("us:er:s3cr@t")
    );
    let mut i = 0;
    for p in &posts {
        assert!(p.body.len() <= 120 * 1024);
        let h = |k: &str| p.headers.get(k).unwrap().to_str().unwrap().to_owned();
        assert_eq!(h("content-type"), "application/logplex-1");
        assert_eq!(h("user-agent"), "Logplex/v72");
        assert_eq!(h("logplex-drain-token"), "d.h-0000");
        assert_eq!(h("authorization"), auth);
        assert!(!h("logplex-frame-id").is_empty());
        let frames = parse_post(p);
        assert_eq!(h("logplex-msg-count"), frames.len().to_string());
        for f in frames {
            let parts: Vec<&str> = f.splitn(7, ' ').collect();
            assert_eq!(parts[0], "<190>1");
            assert_eq!(&parts[2..6], ["host", "app", "web.1", "-"]);
            assert_eq!(parts[6], format!("{i} {}\n", "x".repeat(100)));
            i += 1;
        }
    }
    assert_eq!(i, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_drain_retries_with_same_frame_id_then_reports_l10() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(config(dir.path())).unwrap();
    // One try + two retries fail: the first batch is dropped.
    let (url, posts) = http_drain_endpoint(3).await;
    hub.set_drains("app1", vec![drain("h", &url)]);
    hub.push("app1", LogLine::app("web.1", "lost 1"));
    wait_for(|| posts.lock().len() >= 3).await;
    hub.push("app1", LogLine::app("web.1", "kept"));
    wait_for(|| posts.lock().len() >= 4).await;

    let posts = posts.lock().clone();
    let ids: Vec<_> = posts
        .iter()
        .map(|p| p.headers["logplex-frame-id"].clone())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
    assert_ne!(ids[2], ids[3]);
    let delivered = parse_post(&posts[3]);
    assert!(
        delivered[0].contains(
            " host heroku logplex - Error L10 (output buffer overflow): 1 messages dropped since "
        ),
        "{delivered:?}"
    );
    assert!(delivered
        .last()
        .unwrap()
        .ends_with(" host app web.1 - kept\n"));
}

#[tokio::test]
async fn metrics_and_forget_app() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(config(dir.path())).unwrap();
    hub.push("app1", LogLine::app("web.1", "x"));
    hub.push("app1", LogLine::app("web.1", "y"));
    assert_eq!(metric(&hub, "hoist_logs_lines_in_total"), 2);
    assert_eq!(metric(&hub, "hoist_logs_apps"), 1);
    hub.set_drains("app1", vec![drain("a", "syslog://127.0.0.1:9")]);
    assert_eq!(metric(&hub, "hoist_logs_drains"), 1);
    let text = hub.metrics_text();
    assert!(
        text.contains("hoist_logs_drain_lag_seconds{app=\"app1\",drain=\"a\"}"),
        "{text}"
    );
    assert!(!text.contains("127.0.0.1:9"));
    hub.forget_app("app1");
    assert_eq!(metric(&hub, "hoist_logs_apps"), 0);
    assert_eq!(metric(&hub, "hoist_logs_drains"), 0);
    assert!(hub.history("app1", &LogFilter::default(), 10).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_tls_drain_verifies_and_delivers() {
    use std::sync::Arc as StdArc;
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der = cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        key_pair.serialize_der(),
    ));
    let server_cfg = rustls::ServerConfig::builder_with_provider(StdArc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert_der.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(StdArc::new(server_cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();

    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(config(dir.path())).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    hub.set_drain_tls_roots(roots);
    // 127.0.0.1 as the name would not match the certificate; "localhost" does.
    hub.set_drains(
        "app1",
        vec![drain(
            "tls",
            &format!("syslog+tls://user:pw@localhost:{port}"),
        )],
    );
    for i in 0..100 {
        hub.push("app1", LogLine::app("web.1", format!("secure {i}")));
    }
    let (tcp, _) = tokio::time::timeout(PATIENCE, listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut tls = acceptor.accept(tcp).await.unwrap();
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    while frames.len() < 100 {
        let mut tmp = vec![0u8; 16 * 1024];
        let n = tokio::time::timeout(PATIENCE, tls.read(&mut tmp))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&tmp[..n]);
        let (msgs, used) = hoist_logs::parse_octet_frames(&buf);
        buf.drain(..used);
        frames.extend(msgs);
    }
    for (i, f) in frames.iter().enumerate() {
        assert!(
            f.ends_with(&format!(" d.tls-0000 app web.1 - - secure {i}\n")),
            "{f}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_session_and_its_event_ids_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(config(dir.path())).unwrap();
    let addr = serve(&hub).await;
    hub.push("app1", LogLine::app("web.1", "before 0"));
    hub.push("app1", LogLine::app("web.1", "before 1"));
    let token = hub.create_session("app1", tail(10, LogFilter::default()));
    let mut c = SseClient::connect(addr, &token, None, None).await;
    let _ = c.next_event().await.unwrap();
    let last = c.next_event().await.unwrap();
    assert!(last.data.ends_with("before 1"));
    drop(c);
    hub.shutdown().await;
    drop(hub);

    // The daemon restarts; the CLI reconnects to the same URL with Last-Event-ID.
    let hub = LogHub::open(config(dir.path())).unwrap();
    let addr = serve(&hub).await;
    hub.push("app1", LogLine::app("web.1", "after restart"));
    let mut c = SseClient::connect(addr, &token, last.id, None).await;
    assert_eq!(c.status, 200, "the session survives the restart");
    let ev = c.next_event().await.unwrap();
    assert!(
        ev.data.ends_with("after restart"),
        "no replay of what the client had: {}",
        ev.data
    );
}

/// A session lives only while its owner may read the app: a live tail ends within the
/// re-check interval of the owner losing access, and the URL is dead afterwards (no
/// renewal on reconnect). Sessions of owners who keep access are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_when_its_owner_loses_access() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let hub = LogHub::open(LogConfig {
        access_recheck: Duration::from_millis(100),
        ..config(dir.path())
    })
    .unwrap();
    let alice_may_read = Arc::new(AtomicBool::new(true));
    let flag = alice_may_read.clone();
    hub.set_access_check(Arc::new(move |app, owner| {
        app == "app1" && (owner == "bob" || (owner == "alice" && flag.load(Ordering::SeqCst)))
    }));
    let addr = serve(&hub).await;
    let alice =
        hub.create_owned_session("app1", tail(0, LogFilter::default()), Some("alice".into()));
    let bob = hub.create_owned_session("app1", tail(0, LogFilter::default()), Some("bob".into()));
    let mut a = SseClient::connect(addr, &alice, None, None).await;
    let mut b = SseClient::connect(addr, &bob, None, None).await;
    assert_eq!((a.status, b.status), (200, 200));
    hub.push("app1", LogLine::app("web.1", "before"));
    assert_eq!(
        a.next_event().await.unwrap().data.split(": ").last(),
        Some("before")
    );
    assert_eq!(
        b.next_event().await.unwrap().data.split(": ").last(),
        Some("before")
    );

    alice_may_read.store(false, Ordering::SeqCst);
    // Alice's stream ends by itself, without a line pushed to wake it.
    let ended = tokio::time::timeout(PATIENCE, a.next_event())
        .await
        .unwrap();
    assert_eq!(ended, None, "the stream must end, not deliver");
    hub.push("app1", LogLine::app("web.1", "after"));
    assert_eq!(
        b.next_event().await.unwrap().data.split(": ").last(),
        Some("after")
    );
    // Reconnecting does not renew it, even once access would be given back.
    let again = SseClient::connect(addr, &alice, None, None).await;
    assert_eq!(again.status, 404);
    alice_may_read.store(true, Ordering::SeqCst);
    let again = SseClient::connect(addr, &alice, None, None).await;
    assert_eq!(again.status, 404);
    // A session whose owner lost access before it was ever used is refused at once.
    alice_may_read.store(false, Ordering::SeqCst);
    let fresh =
        hub.create_owned_session("app1", tail(0, LogFilter::default()), Some("alice".into()));
    assert_eq!(
        SseClient::connect(addr, &fresh, None, None).await.status,
        404
    );
}
