//! Ingest benchmark for the log hub: one app with one SSE tail subscriber and one
//! syslog TCP drain on loopback (plus the on-disk history writer).
//!
//! 1. floor: the producer formats each line and writes it to /dev/null;
//! 2. max: the producer pushes as fast as it can (bounded: 1M lines or 2 s);
//! 3. paced: 200,000 lines/s for 2 s, measuring tail delivery latency (p50/p99).
//!
//! Run: `cargo run --release -p hoist-logs --example ingest_bench`
//! (env BENCH_SECS, BENCH_MAX_LINES, BENCH_RATE override the bounds).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hoist_logs::{DrainConfig, LogConfig, LogFilter, LogHub, SessionRequest};
use hoist_types::LogLine;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const APP: &str = "bench-app";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A realistic router-ish line; the first token is the send time (ns since `epoch`).
fn make_line(epoch: Instant, i: u64) -> LogLine {
    let t = epoch.elapsed().as_nanos();
    LogLine::app(
        "web.1",
        format!("{t} at=info method=GET path=\"/items/{i}\" status=200 bytes=1532 service=3ms"),
    )
}

/// Lines/s the producer reaches formatting lines and writing them to /dev/null.
fn floor(epoch: Instant, secs: f64, max_lines: u64) -> f64 {
    let mut out = std::io::BufWriter::new(std::fs::File::create("/dev/null").expect("/dev/null"));
    let start = Instant::now();
    let mut n = 0;
    while n < max_lines {
        let line = make_line(epoch, n);
        writeln!(out, "{line}").expect("write /dev/null");
        n += 1;
        if n % 1024 == 0 && start.elapsed().as_secs_f64() >= secs {
            break;
        }
    }
    out.flush().expect("flush");
    n as f64 / start.elapsed().as_secs_f64()
}

/// Pushes lines for up to `secs`/`max_lines`, at `rate` lines/s if given.
fn produce(
    hub: &LogHub,
    epoch: Instant,
    secs: f64,
    max_lines: u64,
    rate: Option<u64>,
) -> (u64, f64) {
    let start = Instant::now();
    let mut n = 0;
    while n < max_lines {
        hub.push(APP, make_line(epoch, n));
        n += 1;
        if n % 200 == 0 {
            let elapsed = start.elapsed().as_secs_f64();
            if elapsed >= secs {
                break;
            }
            if let Some(rate) = rate {
                let due = n as f64 / rate as f64;
                if due > elapsed {
                    std::thread::sleep(Duration::from_secs_f64(due - elapsed));
                }
            }
        }
    }
    (n, start.elapsed().as_secs_f64())
}

#[derive(Default)]
struct TailStats {
    lines: AtomicU64,
    latencies_ns: parking_lot::Mutex<Vec<u64>>,
    record: std::sync::atomic::AtomicBool,
}

/// Reads the SSE stream like the CLI would and records per-line delivery latency.
async fn tail_client(addr: SocketAddr, token: String, epoch: Instant, stats: Arc<TailStats>) {
    let url = format!("http://{addr}/log-streams/{token}");
    let resp = reqwest::Client::new()
        .get(url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .expect("tail connect");
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut pending = Vec::new();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else { return };
        pending.extend_from_slice(&chunk);
        let now = epoch.elapsed().as_nanos() as u64;
        let mut consumed = 0;
        let mut lat = Vec::new();
        while let Some(nl) = pending[consumed..].iter().position(|&b| b == b'\n') {
            let line = &pending[consumed..consumed + nl];
            consumed += nl + 1;
            if let Some(data) = line.strip_prefix(b"data: ") {
                let Some(pos) = data.windows(3).position(|w| w == b"]: ") else {
                    continue;
                };
                let msg = &data[pos + 3..];
                let tok = msg.split(|&b| b == b' ').next().unwrap_or_default();
                if let Some(t) = std::str::from_utf8(tok)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    stats.lines.fetch_add(1, Ordering::Relaxed);
                    lat.push(now.saturating_sub(t));
                }
            }
        }
        pending.drain(..consumed);
        if stats.record.load(Ordering::Relaxed) {
            stats.latencies_ns.lock().extend(lat);
        }
    }
}

/// Counts octet-counted syslog frames without allocating per frame.
async fn drain_receiver(listener: TcpListener, frames: Arc<AtomicU64>) {
    let (mut conn, _) = listener.accept().await.expect("drain accept");
    let mut buf = vec![0u8; 256 * 1024];
    let mut have = 0;
    loop {
        let Ok(n) = conn.read(&mut buf[have..]).await else {
            return;
        };
        if n == 0 {
            return;
        }
        have += n;
        let mut pos = 0;
        let mut count = 0;
        while let Some(sp) = buf[pos..have].iter().position(|&b| b == b' ') {
            let len: usize = std::str::from_utf8(&buf[pos..pos + sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .expect("octet count");
            if pos + sp + 1 + len > have {
                break;
            }
            pos += sp + 1 + len;
            count += 1;
        }
        frames.fetch_add(count, Ordering::Relaxed);
        buf.copy_within(pos..have, 0);
        have -= pos;
        if have == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1e6
}

fn dropped(hub: &LogHub, reason: &str) -> u64 {
    let key = format!("hoist_logs_dropped_total{{reason=\"{reason}\"}} ");
    hub.metrics_text()
        .lines()
        .find_map(|l| l.strip_prefix(&key)?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let secs = env_u64("BENCH_SECS", 2) as f64;
    let max_lines = env_u64("BENCH_MAX_LINES", 1_000_000);
    let rate = env_u64("BENCH_RATE", 200_000);
    let epoch = Instant::now();

    let floor_rate = floor(epoch, secs, max_lines);
    println!("floor   (format + write to /dev/null): {floor_rate:>12.0} lines/s");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = rt.block_on(async {
        LogHub::open(LogConfig {
            dir: dir.path().to_path_buf(),
            ..LogConfig::default()
        })
        .expect("open hub")
    });

    let stats = Arc::new(TailStats::default());
    let frames = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = hub.stream_router();
        tokio::spawn(async move { axum::serve(listener, router).await });

        let drain_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind drain");
        let drain_url = format!(
            "syslog://127.0.0.1:{}",
            drain_listener.local_addr().expect("addr").port()
        );
        tokio::spawn(drain_receiver(drain_listener, frames.clone()));
        hub.set_drains(
            APP,
            vec![DrainConfig {
                id: "bench".into(),
                url: drain_url,
                token: "d.00000000-0000-0000-0000-000000000000".into(),
            }],
        );

        let token = hub.create_session(
            APP,
            SessionRequest {
                lines: 0,
                tail: true,
                filter: LogFilter::default(),
            },
        );
        tokio::spawn(tail_client(addr, token, epoch, stats.clone()));
        // Let the tail and the drain connect before producing.
        for _ in 0..200 {
            if hub.metrics_text().contains("hoist_logs_tail_subscribers 1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    });

    // Phase 2: as fast as possible.
    let (n, took) = produce(&hub, epoch, secs, max_lines, None);
    let settle = |want: u64| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let tail_done =
                stats.lines.load(Ordering::Relaxed) + dropped(&hub, "tail_overflow") >= want;
            let drain_done =
                frames.load(Ordering::Relaxed) + dropped(&hub, "drain_overflow") >= want;
            if tail_done && drain_done {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    settle(n);
    let max_rate = n as f64 / took;
    println!(
        "max     (push, 1 tail + 1 syslog drain): {max_rate:>12.0} lines/s  ({n} lines in {took:.2} s, {:.0}% of floor)",
        100.0 * max_rate / floor_rate
    );
    println!(
        "        tail got {} (dropped {}), drain got {} frames (dropped {}), history writer dropped {}",
        stats.lines.load(Ordering::Relaxed),
        dropped(&hub, "tail_overflow"),
        frames.load(Ordering::Relaxed),
        dropped(&hub, "drain_overflow"),
        dropped(&hub, "persist_backlog"),
    );

    // Phase 3: paced, measuring tail latency.
    let base_tail = stats.lines.load(Ordering::Relaxed) + dropped(&hub, "tail_overflow");
    let base_drain = frames.load(Ordering::Relaxed) + dropped(&hub, "drain_overflow");
    let base_tail_drop = dropped(&hub, "tail_overflow");
    let base_drain_drop = dropped(&hub, "drain_overflow");
    let base_persist_drop = dropped(&hub, "persist_backlog");
    stats.record.store(true, Ordering::Relaxed);
    let (n, took) = produce(&hub, epoch, secs, max_lines, Some(rate));
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let t = stats.lines.load(Ordering::Relaxed) + dropped(&hub, "tail_overflow") - base_tail;
        let d = frames.load(Ordering::Relaxed) + dropped(&hub, "drain_overflow") - base_drain;
        if t >= n && d >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stats.record.store(false, Ordering::Relaxed);
    let mut lat = std::mem::take(&mut *stats.latencies_ns.lock());
    lat.sort_unstable();
    println!(
        "paced   (target {rate} lines/s): {:>12.0} lines/s achieved ({n} lines in {took:.2} s)",
        n as f64 / took
    );
    println!(
        "        tail latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} lines; tail dropped {}, drain dropped {}, history writer dropped {}",
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        lat.len(),
        dropped(&hub, "tail_overflow") - base_tail_drop,
        dropped(&hub, "drain_overflow") - base_drain_drop,
        dropped(&hub, "persist_backlog") - base_persist_drop,
    );
    let ok = max_rate >= 200_000.0 && percentile(&lat, 0.99) < 50.0;
    println!(
        "target  (>= 200000 lines/s, p99 < 50 ms): {}",
        if ok { "met" } else { "NOT met" }
    );
    rt.block_on(hub.shutdown());
}
