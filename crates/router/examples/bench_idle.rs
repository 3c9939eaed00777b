//! Opens N keep-alive connections to a router, sends one request on each, then
//! holds them idle. Prints `ready <n>` once all are open; exits after the hold time.
//! Usage: bench_idle <addr> <host> <connections> <hold-seconds>

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:18082".into());
    let host = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "bench.localhost".into());
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let hold: u64 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(30);
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let mut conns = Vec::with_capacity(n);
    let mut failed = 0;
    for _ in 0..n {
        let mut s = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(_) => {
                failed += 1;
                continue;
            }
        };
        s.write_all(request.as_bytes()).await?;
        // Read the whole (small) response: head plus a Content-Length body.
        let mut buf = Vec::with_capacity(512);
        let mut chunk = [0u8; 512];
        let ok = loop {
            let read = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await;
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break false,
                Ok(Ok(k)) => buf.extend_from_slice(&chunk[..k]),
            }
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break head.starts_with("http/1.1 200");
                }
            }
        };
        if ok {
            conns.push(s);
        } else {
            failed += 1;
        }
    }
    println!("ready {} failed {failed}", conns.len());
    tokio::time::sleep(Duration::from_secs(hold)).await;
    drop(conns);
    Ok(())
}
