//! Test helpers: a hub in a temp dir, its SSE router on a real loopback port, and a
//! raw HTTP/1.1 SSE client (so tests control socket buffers and reading speed).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use hoist_logs::{LogConfig, LogHub};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Safety net for every wait in the tests; never a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn config(dir: &std::path::Path) -> LogConfig {
    LogConfig {
        dir: dir.to_path_buf(),
        // The tests' drain endpoints are on loopback.
        egress: std::sync::Arc::new(
            hoist_egress::EgressPolicy::strict()
                .allow("127.0.0.1")
                .and_then(|p| p.allow("localhost"))
                .unwrap(),
        ),
        ..LogConfig::default()
    }
}

pub async fn serve(hub: &LogHub) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = hub.stream_router();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Option<u64>,
    pub data: String,
}

pub struct SseClient {
    stream: TcpStream,
    pub status: u16,
    pub head: String,
    raw: Vec<u8>,
    decoded: Vec<u8>,
    chunk_left: usize,
    need_crlf: bool,
    done: bool,
    pub comments: usize,
}

impl SseClient {
    pub async fn connect(
        addr: SocketAddr,
        token: &str,
        last_event_id: Option<u64>,
        recv_buffer: Option<u32>,
    ) -> SseClient {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut stream = socket.connect(addr).await.unwrap();
        let mut req = format!(
            "GET /log-streams/{token} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nUser-Agent: heroku-run\r\n"
        );
        if let Some(id) = last_event_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();

        let mut raw = Vec::new();
        let head_end = loop {
            if let Some(p) = find(&raw, b"\r\n\r\n") {
                break p;
            }
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
                .await
                .expect("response head in time")
                .unwrap();
            assert!(n > 0, "connection closed before response head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
        raw.drain(..head_end + 4);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap();
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let mut client = SseClient {
            stream,
            status,
            head,
            raw: Vec::new(),
            decoded: Vec::new(),
            chunk_left: 0,
            need_crlf: false,
            done: false,
            comments: 0,
        };
        if chunked {
            client.raw = raw;
            client.decode();
        } else {
            // Fixed-length body (the 404): not SSE, keep it as-is.
            client.decoded = raw;
            client.done = true;
        }
        client
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The next `message` event; `None` when the server ended the stream.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(p) = find(&self.decoded, b"\n\n") {
                let block: Vec<u8> = self.decoded.drain(..p + 2).collect();
                let block = String::from_utf8(block).unwrap();
                let mut id = None;
                let mut data: Vec<&str> = Vec::new();
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.comments += 1;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push(v);
                    }
                }
                if !data.is_empty() {
                    return Some(Event {
                        id,
                        data: data.join("\n"),
                    });
                }
                continue;
            }
            if self.done {
                return None;
            }
            let mut buf = vec![0u8; 64 * 1024];
            let n = tokio::time::timeout(PATIENCE, self.stream.read(&mut buf))
                .await
                .expect("SSE data in time")
                .unwrap();
            if n == 0 {
                self.done = true;
                continue;
            }
            self.raw.extend_from_slice(&buf[..n]);
            self.decode();
        }
    }

    /// Waits until at least `n` comments (keep-alives) were seen.
    pub async fn wait_comments(&mut self, n: usize) {
        while self.comments < n {
            let mut buf = vec![0u8; 4096];
            let read = tokio::time::timeout(PATIENCE, self.stream.read(&mut buf))
                .await
                .expect("keep-alive in time")
                .unwrap();
            assert!(read > 0, "stream closed");
            self.raw.extend_from_slice(&buf[..read]);
            self.decode();
            while let Some(p) = find(&self.decoded, b"\n\n") {
                let block: Vec<u8> = self.decoded.drain(..p + 2).collect();
                if block.starts_with(b":") {
                    self.comments += 1;
                }
            }
        }
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.decoded).into_owned()
    }

    fn decode(&mut self) {
        loop {
            if self.chunk_left > 0 {
                let n = self.chunk_left.min(self.raw.len());
                if n == 0 {
                    return;
                }
                self.decoded.extend(self.raw.drain(..n));
                self.chunk_left -= n;
                if self.chunk_left == 0 {
                    self.need_crlf = true;
                }
                continue;
            }
            if self.need_crlf {
                if self.raw.len() < 2 {
                    return;
                }
                self.raw.drain(..2);
                self.need_crlf = false;
                continue;
            }
            if self.done {
                return;
            }
            let Some(p) = find(&self.raw, b"\r\n") else {
                return;
            };
            let size_line = String::from_utf8_lossy(&self.raw[..p]).into_owned();
            let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
            self.raw.drain(..p + 2);
            if size == 0 {
                self.done = true;
                return;
            }
            self.chunk_left = size;
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads octet-counted syslog frames from a drain connection until `until` says stop.
pub async fn read_frames(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    mut until: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let mut frames = Vec::new();
    loop {
        let (msgs, used) = hoist_logs::parse_octet_frames(buf);
        buf.drain(..used);
        frames.extend(msgs);
        if until(&frames) {
            return frames;
        }
        let mut tmp = vec![0u8; 64 * 1024];
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut tmp))
            .await
            .expect("drain frames in time")
            .unwrap();
        assert!(
            n > 0,
            "drain connection closed; got {} frames",
            frames.len()
        );
        buf.extend_from_slice(&tmp[..n]);
    }
}
