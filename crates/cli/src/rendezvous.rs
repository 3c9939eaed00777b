//! The Heroku rendezvous client for attached one-off dynos: TLS to
//! `rendezvous://host:port/secret`, send the secret line, drop the first
//! `rendezvous` line, then pipe stdin and stdout until the socket closes. The exit
//! status comes in-band as `\u{FFFF} heroku-command-exit-status: N`.

use crate::ca::PlatformCa;
use crate::error::{CliError, CliResult};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::sync::Arc;

const MARKER: &[u8] = "\u{FFFF} heroku-command-exit-status: ".as_bytes();
/// U+FFFF in UTF-8: where a marker can start.
const MARKER_LEAD: &[u8] = &[0xEF, 0xBF, 0xBF];

/// Removes exit-status markers from a byte stream and remembers the status. Bytes
/// that might start a marker split across reads are held back until decided.
#[derive(Debug, Default)]
pub struct ExitScanner {
    pending: Vec<u8>,
    pub status: Option<i32>,
}

impl ExitScanner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds received bytes; returns the bytes to show.
    pub fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(data);
        self.drain(false)
    }

    /// The stream ended: returns whatever was held back.
    pub fn finish(&mut self) -> Vec<u8> {
        self.drain(true)
    }

    fn drain(&mut self, eof: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let buf = std::mem::take(&mut self.pending);
        let mut i = 0;
        while i < buf.len() {
            let Some(off) = find(&buf[i..], MARKER_LEAD) else {
                // Hold back a tail that could be the start of U+FFFF.
                let keep = if eof {
                    0
                } else {
                    partial_suffix(&buf[i..], MARKER_LEAD)
                };
                out.extend_from_slice(&buf[i..buf.len() - keep]);
                self.pending = buf[buf.len() - keep..].to_vec();
                return out;
            };
            out.extend_from_slice(&buf[i..i + off]);
            let start = i + off;
            let rest = &buf[start..];
            if rest.len() < MARKER.len() && !eof && MARKER.starts_with(rest) {
                self.pending = rest.to_vec();
                return out;
            }
            // Not a marker after all (or one that never completed): show the bytes.
            if !rest.starts_with(MARKER) {
                out.extend_from_slice(MARKER_LEAD);
                i = start + MARKER_LEAD.len();
                continue;
            }
            let digits_at = MARKER.len();
            let ndigits = rest[digits_at..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            let after = digits_at + ndigits;
            // Digits run to the end of what we have: more may follow.
            if after == rest.len() && !eof {
                self.pending = rest.to_vec();
                return out;
            }
            if ndigits == 0 {
                out.extend_from_slice(MARKER_LEAD);
                i = start + MARKER_LEAD.len();
                continue;
            }
            let code = std::str::from_utf8(&rest[digits_at..after])
                .ok()
                .and_then(|d| d.parse::<i64>().ok())
                .map(|c| c.clamp(0, 255) as i32);
            // Swallow the marker's line ending; wait if a lone \r ends the buffer.
            let mut end = after;
            if rest.get(end) == Some(&b'\r') {
                if end + 1 == rest.len() && !eof {
                    self.pending = rest.to_vec();
                    return out;
                }
                end += 1;
            }
            if rest.get(end) == Some(&b'\n') {
                end += 1;
            }
            self.status = code.or(self.status);
            i = start + end;
        }
        out
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Length of the longest suffix of `buf` that is a proper prefix of `needle`.
fn partial_suffix(buf: &[u8], needle: &[u8]) -> usize {
    (1..needle.len().min(buf.len() + 1))
        .rev()
        .find(|&n| buf.ends_with(&needle[..n]))
        .unwrap_or(0)
}

/// Drops everything up to and including the first line (the `rendezvous` banner).
#[derive(Debug, Default)]
pub struct BannerSkipper {
    done: bool,
}

impl BannerSkipper {
    pub fn feed<'a>(&mut self, data: &'a [u8]) -> &'a [u8] {
        if self.done {
            return data;
        }
        match data.iter().position(|&b| b == b'\n') {
            Some(p) => {
                self.done = true;
                &data[p + 1..]
            }
            None => &[],
        }
    }
}

/// In raw mode Ctrl-C goes to the dyno as byte 0x03; four of them within a second
/// mean the user wants out even if the remote side does not react.
#[derive(Debug, Default)]
struct CtrlC {
    recent: std::collections::VecDeque<std::time::Instant>,
}

impl CtrlC {
    /// Returns true when this input makes four Ctrl-C within one second.
    fn feed(&mut self, input: &[u8], now: std::time::Instant) -> bool {
        for _ in input.iter().filter(|&&b| b == 0x03) {
            self.recent.push_back(now);
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > std::time::Duration::from_secs(1))
        {
            self.recent.pop_front();
        }
        self.recent.len() >= 4
    }
}

/// A parsed `rendezvous://host:port/secret` URL.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub secret: String,
}

pub fn parse_attach_url(attach_url: &str) -> CliResult<Target> {
    let u = url::Url::parse(attach_url).map_err(|e| {
        CliError::failed(format!(
            "The dyno's attach URL {attach_url:?} is invalid: {e}"
        ))
    })?;
    let host = u
        .host_str()
        .ok_or_else(|| CliError::failed(format!("The attach URL {attach_url:?} has no host.")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = u
        .port()
        .ok_or_else(|| CliError::failed(format!("The attach URL {attach_url:?} has no port.")))?;
    let mut secret = u.path().trim_start_matches('/').to_string();
    if let Some(q) = u.query() {
        secret.push('?');
        secret.push_str(q);
    }
    Ok(Target { host, port, secret })
}

/// A client config trusting only the CA certificates in the PEM file at `path`.
pub fn tls_config_from(path: &std::path::Path) -> CliResult<Arc<rustls::ClientConfig>> {
    let pem = std::fs::read(path)
        .map_err(|e| CliError::failed(format!("Reading the CA file {}: {e}", path.display())))?;
    let roots = roots_from_pem(&pem, &path.display().to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::failed(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The certificates of a PEM text (`what` names it in errors); at least one.
pub fn roots_from_pem(pem: &[u8], what: &str) -> CliResult<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        let cert = cert.map_err(|e| CliError::failed(format!("Bad certificate in {what}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| CliError::failed(format!("Bad certificate in {what}: {e}")))?;
    }
    if roots.is_empty() {
        return Err(CliError::failed(format!("{what} holds no certificates.")));
    }
    Ok(roots)
}

/// Puts a terminal in raw mode and restores it when dropped.
struct RawMode {
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    fn enable() -> Option<RawMode> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        let saved = tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        use nix::sys::termios::{tcsetattr, SetArg};
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Connects to the dyno and pipes the terminal until the remote side closes.
/// Returns the exit status from the marker (0 when none arrived).
pub fn attach(attach_url: &str, raw_tty: bool, ca: &PlatformCa) -> CliResult<i32> {
    let cfg = tls_config_from(&ca.path)?;
    let _raw = if raw_tty { RawMode::enable() } else { None };
    attach_with(
        attach_url,
        cfg,
        &mut std::io::stdin(),
        &mut std::io::stdout(),
    )
    .map_err(|e| match e {
        AttachError::Certificate(e) => CliError::failed(format!(
            "The one-off dyno's TLS certificate is not signed by {}: {e}. {}",
            ca.describe(),
            ca.remedy()
        )),
        AttachError::Cli(e) => e,
    })
}

/// Why attaching failed: the peer's certificate (worth explaining), or anything else.
#[derive(Debug)]
pub enum AttachError {
    Certificate(rustls::Error),
    Cli(CliError),
}

impl From<CliError> for AttachError {
    fn from(e: CliError) -> Self {
        AttachError::Cli(e)
    }
}

impl From<std::io::Error> for AttachError {
    fn from(e: std::io::Error) -> Self {
        AttachError::Cli(e.into())
    }
}

impl std::fmt::Display for AttachError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AttachError::Certificate(e) => write!(f, "certificate refused: {e}"),
            AttachError::Cli(e) => e.fmt(f),
        }
    }
}

/// [`attach`] with explicit TLS trust, input and output.
pub fn attach_with<I: Read + AsFd, O: Write>(
    attach_url: &str,
    cfg: Arc<rustls::ClientConfig>,
    input: &mut I,
    output: &mut O,
) -> Result<i32, AttachError> {
    let target = parse_attach_url(attach_url)?;
    let name = rustls::pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| CliError::failed(format!("Bad rendezvous host {:?}: {e}", target.host)))?;
    let mut conn = rustls::ClientConnection::new(cfg, name)
        .map_err(|e| CliError::failed(format!("TLS setup failed: {e}")))?;
    let mut sock = TcpStream::connect((target.host.as_str(), target.port)).map_err(|e| {
        CliError::failed(format!(
            "Could not connect to the dyno at {}:{}: {e}",
            target.host, target.port
        ))
    })?;
    let _ = sock.set_nodelay(true);
    {
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        tls.write_all(format!("{}\r\n", target.secret).as_bytes())
            .map_err(|e| {
                match e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    Some(tls @ rustls::Error::InvalidCertificate(_)) => {
                        AttachError::Certificate(tls.clone())
                    }
                    _ => AttachError::Cli(CliError::failed(format!(
                        "TLS connection to the dyno failed: {e}"
                    ))),
                }
            })?;
        tls.flush()?;
    }
    Ok(pump(&mut conn, &mut sock, input, output)?)
}

fn pump<I: Read + AsFd, O: Write>(
    conn: &mut rustls::ClientConnection,
    sock: &mut TcpStream,
    input: &mut I,
    output: &mut O,
) -> CliResult<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut banner = BannerSkipper::default();
    let mut scanner = ExitScanner::new();
    let mut input_open = true;
    let mut interrupts = CtrlC::default();
    let mut buf = vec![0u8; 16 * 1024];
    let tls_err =
        |e: std::io::Error| CliError::failed(format!("Connection to the dyno failed: {e}"));
    loop {
        while conn.wants_write() {
            conn.write_tls(sock).map_err(tls_err)?;
        }
        let (sock_ready, input_ready) = {
            let mut fds = vec![PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
            if input_open {
                fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(CliError::failed(format!("poll failed: {e}"))),
            }
            let ready = |f: &PollFd<'_>| {
                f.revents().is_some_and(|r| {
                    r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
                })
            };
            (ready(&fds[0]), fds.get(1).is_some_and(ready))
        };
        if sock_ready {
            let n = conn.read_tls(sock).map_err(tls_err)?;
            let state = conn
                .process_new_packets()
                .map_err(|e| CliError::failed(format!("TLS error from the dyno: {e}")))?;
            let mut closed = n == 0 || state.peer_has_closed();
            loop {
                match conn.reader().read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(k) => {
                        let shown = scanner.feed(banner.feed(&buf[..k]));
                        output.write_all(&shown)?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        closed = true;
                        break;
                    }
                    Err(e) => return Err(tls_err(e)),
                }
            }
            output.flush()?;
            if closed {
                output.write_all(&scanner.finish())?;
                output.flush()?;
                return Ok(scanner.status.unwrap_or(0));
            }
        }
        if input_ready {
            let n = match input.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => 0,
            };
            if n == 0 {
                // EOF on a pipe: tell the remote shell with EOT, like the Heroku CLI.
                conn.writer().write_all(&[0x04])?;
                input_open = false;
            } else {
                conn.writer().write_all(&buf[..n])?;
                if interrupts.feed(&buf[..n], std::time::Instant::now()) {
                    while conn.wants_write() {
                        conn.write_tls(sock).map_err(tls_err)?;
                    }
                    eprintln!("\r\nDisconnected (Ctrl-C pressed four times).\r");
                    return Ok(130);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (Vec<u8>, Option<i32>) {
        let mut s = ExitScanner::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(s.feed(c));
        }
        out.extend(s.finish());
        (out, s.status)
    }

    #[test]
    fn marker_in_one_chunk_is_removed() {
        let (out, st) = run(&[b"hello\n\xEF\xBF\xBF heroku-command-exit-status: 3\r\nbye"]);
        assert_eq!(out, b"hello\nbye");
        assert_eq!(st, Some(3));
    }

    #[test]
    fn marker_split_across_chunks() {
        let whole = "out\n\u{FFFF} heroku-command-exit-status: 42\n".as_bytes();
        for cut in 0..whole.len() {
            for cut2 in cut..whole.len() {
                let (out, st) = run(&[&whole[..cut], &whole[cut..cut2], &whole[cut2..]]);
                assert_eq!(out, b"out\n", "cuts {cut} {cut2}");
                assert_eq!(st, Some(42), "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn lookalikes_pass_through() {
        let text = "a\u{FFFF}b \u{FFFF} heroku-command-exit-status: x\n";
        let (out, st) = run(&[text.as_bytes()]);
        assert_eq!(out, text.as_bytes());
        assert_eq!(st, None);
        let (out, st) = run(&[b"no marker", b"\xEF\xBF"]);
        assert_eq!(out, b"no marker\xEF\xBF");
        assert_eq!(st, None);
        // A marker at EOF without a line ending still counts.
        let (out, st) = run(&["\u{FFFF} heroku-command-exit-status: 7".as_bytes()]);
        assert_eq!(out, b"");
        assert_eq!(st, Some(7));
    }

    #[test]
    fn four_ctrl_c_within_a_second_disconnect() {
        let t0 = std::time::Instant::now();
        let later = |ms| t0 + std::time::Duration::from_millis(ms);
        let mut c = CtrlC::default();
        assert!(!c.feed(b"\x03\x03", t0));
        assert!(!c.feed(b"ls\x03", later(500)));
        assert!(c.feed(b"\x03", later(900)));
        let mut c = CtrlC::default();
        assert!(!c.feed(b"\x03\x03\x03", t0));
        assert!(!c.feed(b"\x03", later(1500)), "the first three expired");
    }

    #[test]
    fn banner_line_is_dropped_once() {
        let mut b = BannerSkipper::default();
        assert_eq!(b.feed(b"rendez"), b"");
        assert_eq!(b.feed(b"vous\r\nhello"), b"hello");
        assert_eq!(b.feed(b"rendezvous\r\n"), b"rendezvous\r\n");
    }

    #[test]
    fn attach_urls() {
        assert_eq!(
            parse_attach_url("rendezvous://127.0.0.1:5443/abc123").unwrap(),
            Target {
                host: "127.0.0.1".into(),
                port: 5443,
                secret: "abc123".into()
            }
        );
        assert_eq!(
            parse_attach_url("rendezvous://h.test:1/s?x=1")
                .unwrap()
                .secret,
            "s?x=1"
        );
        assert!(parse_attach_url("rendezvous://h.test/s").is_err());
    }

    /// A throwaway CA (PEM) and a server config with a 127.0.0.1 cert it signed.
    fn ca_and_server() -> (String, Arc<rustls::ServerConfig>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        (ca.pem(), Arc::new(cfg))
    }

    /// Runs `attach_with` in a thread with a bounded wait.
    fn attach_bounded(
        url: String,
        cfg: Arc<rustls::ClientConfig>,
        input: &[u8],
    ) -> (Result<i32, String>, Vec<u8>) {
        let (mut reader, mut writer) = std::io::pipe().unwrap();
        writer.write_all(input).unwrap();
        drop(writer);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let status = attach_with(&url, cfg, &mut reader, &mut out);
            let _ = tx.send((status.map_err(|e| e.to_string()), out));
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("attach finished")
    }

    /// A real TLS rendezvous peer on 127.0.0.1.
    #[test]
    fn attaches_over_tls_pipes_input_and_reads_exit_status() {
        use std::io::BufRead;
        let (ca_pem, server_cfg) = ca_and_server();
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca_pem).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            let conn = rustls::ServerConnection::new(server_cfg).unwrap();
            let mut tls = std::io::BufReader::new(rustls::StreamOwned::new(conn, tcp));
            let mut secret = String::new();
            tls.read_line(&mut secret).unwrap();
            {
                let s = tls.get_mut();
                s.write_all(b"rendezvous\r\n").unwrap();
                s.flush().unwrap();
            }
            // Read the client's input up to the EOT it sends at EOF.
            let mut got = Vec::new();
            let mut byte = [0u8; 1];
            loop {
                tls.read_exact(&mut byte).unwrap();
                if byte[0] == 0x04 {
                    break;
                }
                got.push(byte[0]);
            }
            let s = tls.get_mut();
            s.write_all(b"got: ").unwrap();
            s.write_all(&got).unwrap();
            s.write_all("\u{FFFF} heroku-command-exit-status: 3\n".as_bytes())
                .unwrap();
            s.conn.send_close_notify();
            s.flush().unwrap();
            secret
        });
        let cfg = tls_config_from(&ca_path).unwrap();
        let (status, out) = attach_bounded(
            format!("rendezvous://127.0.0.1:{port}/s3cret"),
            cfg,
            b"hello\n",
        );
        assert_eq!(status.unwrap(), 3);
        assert_eq!(String::from_utf8(out).unwrap(), "got: hello\n");
        assert_eq!(server.join().unwrap(), "s3cret\r\n");
    }

    #[test]
    fn a_peer_signed_by_another_ca_is_refused() {
        let (_, server_cfg) = ca_and_server();
        let (other_ca, _) = ca_and_server();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, other_ca).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                .unwrap();
            let conn = rustls::ServerConnection::new(server_cfg).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut b = [0u8; 1];
            let _ = tls.read(&mut b);
        });
        let (status, out) = attach_bounded(
            format!("rendezvous://127.0.0.1:{port}/x"),
            tls_config_from(&p).unwrap(),
            b"",
        );
        let err = status.unwrap_err();
        assert!(
            err.contains("certificate") || err.contains("Certificate"),
            "{err}"
        );
        assert!(out.is_empty());
        std::fs::write(&p, "not pem").unwrap();
        assert!(tls_config_from(&p).is_err());
    }
}
