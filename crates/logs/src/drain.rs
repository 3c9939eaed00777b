//! Drains: forward an app's lines to syslog (TCP/TLS) or HTTPS endpoints.
//!
//! Each drain is one task reading its own bounded [`Mailbox`]; a dead or slow endpoint
//! only fills that mailbox. Lines lost to overflow or failed delivery are reported
//! in-band as `Error L10` once the drain delivers again.
//!
//! Credentials in drain URLs never reach logs or errors: logs name the drain by id.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use url::{Host, Url};

use crate::mailbox::{Item, Mailbox};
use crate::metrics::{add, inc, Metrics};
use crate::syslog::{frame, l10_line};
use crate::{DrainConfig, LogError};
use hoist_egress::EgressPolicy;

/// Items taken from the mailbox per write.
const BATCH: usize = 512;
/// Target size of one HTTP drain POST (Logplex: ~100 KB).
const HTTP_BATCH_BYTES: usize = 100 * 1024;
/// Extra wait for more lines before writing a small batch (fewer syscalls and POSTs).
const SYSLOG_LINGER: Duration = Duration::from_millis(2);
const HTTP_LINGER: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Checks a drain URL: `syslog://`, `syslog+tcp://`, `syslog+tls://` (host and port
/// required) or `http://`, `https://`. Error messages never contain the URL.
pub fn validate_drain_url(url: &str) -> Result<(), LogError> {
    parse_target(url).map(|_| ())
}

/// The URL without user name and password, for API output and logs.
pub fn redact_drain_url(url: &str) -> String {
    const INVALID: &str = "[invalid drain URL]";
    let Ok(mut u) = Url::parse(url.trim()) else {
        return INVALID.into();
    };
    // Opaque URLs (`syslog:user:pw@host`) have no userinfo to strip.
    if u.cannot_be_a_base() {
        return INVALID.into();
    }
    if u.set_username("").is_err() || u.set_password(None).is_err() {
        return INVALID.into();
    }
    u.to_string()
}

#[derive(Debug, Clone)]
enum Target {
    Syslog {
        host: String,
        port: u16,
        tls: bool,
    },
    Http {
        /// Without userinfo.
        url: Url,
        authorization: Option<String>,
    },
}

fn invalid(msg: &str) -> LogError {
    LogError::InvalidDrainUrl(msg.to_owned())
}

fn parse_target(raw: &str) -> Result<Target, LogError> {
    let mut u = Url::parse(raw.trim())
        .map_err(|e| LogError::InvalidDrainUrl(format!("not a valid URL ({e})")))?;
    let host = match u.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(Host::Ipv4(a)) => a.to_string(),
        Some(Host::Ipv6(a)) => a.to_string(),
        _ => return Err(invalid("the URL needs a host")),
    };
    match u.scheme() {
        "syslog" | "syslog+tcp" | "syslog+tls" => {
            let port = u.port().ok_or_else(|| {
                invalid("syslog drain URLs need a port, e.g. syslog+tls://logs.example.com:6514")
            })?;
            Ok(Target::Syslog {
                host,
                port,
                tls: u.scheme() == "syslog+tls",
            })
        }
        "http" | "https" => {
            if u.port_or_known_default().is_none() {
                return Err(invalid("the URL needs a port"));
            }
            let authorization = if u.username().is_empty() && u.password().is_none() {
                None
            } else {
                let user = percent_decode(u.username());
                let pass = percent_decode(u.password().unwrap_or(""));
                use base64::Engine;
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
                ))
            };
            if u.set_username("").is_err() || u.set_password(None).is_err() {
                return Err(invalid("the URL's credentials can't be used"));
            }
            Ok(Target::Http {
                url: u,
                authorization,
            })
        }
        "syslog+udp" => Err(invalid(
            "syslog+udp drains are not supported; use syslog:// (TCP) or syslog+tls://",
        )),
        _ => Err(invalid(
            "unsupported scheme; use syslog://, syslog+tcp://, syslog+tls://, http:// or https://",
        )),
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// TLS client settings for `syslog+tls://` drains.
#[derive(Clone)]
pub(crate) struct DrainTls {
    connector: tokio_rustls::TlsConnector,
}

impl DrainTls {
    pub fn from_roots(roots: rustls::RootCertStore) -> DrainTls {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            // The ring provider supports the default versions; this can't fail.
            .expect("ring supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        DrainTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    /// Roots from `HOIST_DRAIN_CA_FILE`, else the system bundle.
    fn from_env() -> Result<DrainTls, String> {
        let path = std::env::var_os("HOIST_DRAIN_CA_FILE")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".into());
        let file =
            std::fs::File::open(&path).map_err(|e| format!("CA file {}: {e}", path.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut std::io::BufReader::new(file)) {
            let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
            // Skip certificates rustls can't use rather than failing the whole bundle.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(format!(
                "CA file {} has no usable certificates",
                path.display()
            ));
        }
        Ok(DrainTls::from_roots(roots))
    }
}

pub(crate) struct DrainHandle {
    pub cfg: DrainConfig,
    pub mailbox: Arc<Mailbox>,
    cancel: CancellationToken,
}

impl DrainHandle {
    pub fn start(
        rt: &tokio::runtime::Handle,
        app_id: &str,
        cfg: DrainConfig,
        buffer: usize,
        metrics: Arc<Metrics>,
        tls: Option<DrainTls>,
        egress: Arc<EgressPolicy>,
    ) -> Result<DrainHandle, LogError> {
        let target = parse_target(&cfg.url)?;
        let mailbox = Mailbox::new(buffer);
        let cancel = CancellationToken::new();
        let ctx = Ctx {
            app: app_id.to_owned(),
            id: cfg.id.clone(),
            token: cfg.token.clone(),
            mailbox: mailbox.clone(),
            metrics,
            lost: None,
            egress,
        };
        let stop = cancel.clone();
        rt.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = run(ctx, target, tls) => {}
            }
        });
        Ok(DrainHandle {
            cfg,
            mailbox,
            cancel,
        })
    }

    pub fn stop(&self) {
        self.cancel.cancel();
        self.mailbox.close();
    }
}

struct Ctx {
    app: String,
    id: String,
    token: String,
    mailbox: Arc<Mailbox>,
    metrics: Arc<Metrics>,
    /// Lines lost and not yet reported with an L10 line.
    lost: Option<(u64, DateTime<Utc>)>,
    egress: Arc<EgressPolicy>,
}

impl Ctx {
    fn lose(&mut self, count: u64, since: DateTime<Utc>) {
        if count == 0 {
            return;
        }
        self.lost = Some(match self.lost {
            Some((n, first)) => (n + count, first.min(since)),
            None => (count, since),
        });
    }
}

async fn run(ctx: Ctx, target: Target, tls: Option<DrainTls>) {
    match target {
        Target::Syslog {
            host,
            port,
            tls: use_tls,
        } => {
            let tls = if use_tls {
                match tls.map(Ok).unwrap_or_else(DrainTls::from_env) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::error!(app = %ctx.app, drain = %ctx.id, error = %e, "no TLS roots for syslog+tls drain");
                        return;
                    }
                }
            } else {
                None
            };
            run_syslog(ctx, host, port, tls).await
        }
        Target::Http { url, authorization } => run_http(ctx, url, authorization).await,
    }
}

type Conn = Box<dyn AsyncWrite + Unpin + Send>;

async fn connect(
    egress: &EgressPolicy,
    host: &str,
    port: u16,
    tls: Option<&DrainTls>,
) -> std::io::Result<Conn> {
    // Checked on every (re)connect: the name may resolve elsewhere by then.
    let addrs = egress
        .resolve(host, port)
        .await
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addrs[..]))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    tcp.set_nodelay(true)?;
    match tls {
        None => Ok(Box::new(tcp)),
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let stream = tokio::time::timeout(CONNECT_TIMEOUT, tls.connector.connect(name, tcp))
                .await
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                })??;
            Ok(Box::new(stream))
        }
    }
}

async fn run_syslog(mut ctx: Ctx, host: String, port: u16, tls: Option<DrainTls>) {
    let mut backoff = Duration::from_millis(100);
    let mut healthy = true;
    let mut items = Vec::with_capacity(BATCH);
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        let mut conn = match connect(&ctx.egress, &host, port, tls.as_ref()).await {
            Ok(c) => {
                backoff = Duration::from_millis(100);
                c
            }
            Err(e) => {
                inc(&ctx.metrics.drain_connect_errors);
                if healthy {
                    tracing::warn!(app = %ctx.app, drain = %ctx.id, error = %e, "syslog drain unreachable; retrying");
                    healthy = false;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        loop {
            items.clear();
            if !ctx
                .mailbox
                .recv_batch(BATCH, SYSLOG_LINGER, &mut items)
                .await
            {
                let _ = conn.shutdown().await;
                return;
            }
            buf.clear();
            let mut lines = 0u64;
            for item in items.drain(..) {
                match item {
                    Item::Line(e) => {
                        if let Some((n, since)) = ctx.lost.take() {
                            frame(&mut buf, &l10_line(n, since), &ctx.token, true);
                        }
                        frame(&mut buf, &e.line, &ctx.token, true);
                        lines += 1;
                    }
                    Item::Dropped { count, since } => {
                        ctx.lose(count, since);
                    }
                }
            }
            if let Some((n, since)) = ctx.lost.take() {
                frame(&mut buf, &l10_line(n, since), &ctx.token, true);
            }
            let written = async {
                conn.write_all(&buf).await?;
                conn.flush().await
            };
            if let Err(e) = written.await {
                add(&ctx.metrics.dropped_drain_delivery, lines);
                ctx.lose(lines, Utc::now());
                inc(&ctx.metrics.drain_connect_errors);
                tracing::warn!(app = %ctx.app, drain = %ctx.id, error = %e, "syslog drain write failed; reconnecting");
                healthy = false;
                break;
            }
            add(&ctx.metrics.drain_delivered, lines);
            if !healthy {
                tracing::info!(app = %ctx.app, drain = %ctx.id, "syslog drain delivering again");
                healthy = true;
            }
        }
    }
}

enum Outcome {
    Delivered,
    Rejected,
    Failed,
}

async fn run_http(mut ctx: Ctx, url: Url, authorization: Option<String>) {
    let client = match ctx
        .egress
        .http_client()
        .user_agent("Logplex/v72")
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(app = %ctx.app, drain = %ctx.id, error = %e.without_url(), "couldn't build HTTP client");
            return;
        }
    };
    let mut carry: VecDeque<Item> = VecDeque::new();
    let mut items = Vec::with_capacity(BATCH);
    let mut backoff = Duration::from_millis(250);
    let mut healthy = true;
    loop {
        if carry.is_empty() {
            items.clear();
            if !ctx.mailbox.recv_batch(BATCH, HTTP_LINGER, &mut items).await {
                return;
            }
            carry.extend(items.drain(..));
        }
        let mut body = Vec::with_capacity(HTTP_BATCH_BYTES + 16 * 1024);
        let mut msgs = 0u64;
        let mut lines = 0u64;
        let mut reported = ctx.lost.take();
        if let Some((n, since)) = reported {
            frame(&mut body, &l10_line(n, since), "host", false);
            msgs += 1;
        }
        while let Some(item) = carry.pop_front() {
            match item {
                Item::Line(e) => {
                    frame(&mut body, &e.line, "host", false);
                    msgs += 1;
                    lines += 1;
                }
                Item::Dropped { count, since } => {
                    frame(&mut body, &l10_line(count, since), "host", false);
                    msgs += 1;
                    reported = Some(match reported {
                        Some((n, first)) => (n + count, first.min(since)),
                        None => (count, since),
                    });
                }
            }
            if body.len() >= HTTP_BATCH_BYTES {
                break;
            }
        }
        let body = Bytes::from(body);
        let frame_id = uuid::Uuid::new_v4().simple().to_string();
        match post_batch(
            &ctx,
            &client,
            &url,
            authorization.as_deref(),
            &body,
            msgs,
            &frame_id,
        )
        .await
        {
            Outcome::Delivered => {
                add(&ctx.metrics.drain_delivered, lines);
                backoff = Duration::from_millis(250);
                if !healthy {
                    tracing::info!(app = %ctx.app, drain = %ctx.id, "HTTP drain delivering again");
                    healthy = true;
                }
            }
            outcome => {
                add(&ctx.metrics.dropped_drain_delivery, lines);
                if let Some((n, since)) = reported {
                    ctx.lose(n, since);
                }
                ctx.lose(lines, Utc::now());
                if healthy {
                    tracing::warn!(app = %ctx.app, drain = %ctx.id, "HTTP drain batch dropped");
                    healthy = false;
                }
                if matches!(outcome, Outcome::Failed) {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

async fn post_batch(
    ctx: &Ctx,
    client: &reqwest::Client,
    url: &Url,
    authorization: Option<&str>,
    body: &Bytes,
    msgs: u64,
    frame_id: &str,
) -> Outcome {
    // Logplex: one try plus two retries, same frame id each time.
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250) * 2u32.pow(attempt - 1)).await;
        }
        let mut req = client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/logplex-1")
            .header("Logplex-Msg-Count", msgs.to_string())
            .header("Logplex-Frame-Id", frame_id)
            .header("Logplex-Drain-Token", ctx.token.as_str())
            .body(body.clone());
        if let Some(auth) = authorization {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        match req.send().await {
            Ok(resp) if resp.status().is_success() => return Outcome::Delivered,
            Ok(resp) => {
                let status = resp.status();
                inc(&ctx.metrics.drain_connect_errors);
                tracing::debug!(app = %ctx.app, drain = %ctx.id, %status, "HTTP drain refused batch");
                if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
                    return Outcome::Rejected;
                }
            }
            Err(e) => {
                inc(&ctx.metrics.drain_connect_errors);
                tracing::debug!(app = %ctx.app, drain = %ctx.id, error = %e.without_url(), "HTTP drain request failed");
            }
        }
    }
    Outcome::Failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_logplex_schemes() {
        for ok in [
            "syslog://logs.example.com:514",
            "syslog+tcp://127.0.0.1:601",
            "syslog+tls://logs.example.com:6514",
            "http://127.0.0.1:8080/drain",
            "https://user:pass@logs.example.com/x?y=1",
            "https://logs.example.com",
        ] {
            validate_drain_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn rejects_without_echoing_credentials() {
        for bad in [
            "syslog://user:hunter2@logs.example.com",         // no port
            "ftp://user:hunter2@logs.example.com:21",         // scheme
            "syslog+udp://user:hunter2@logs.example.com:514", // udp
            "https://user:hunter2@:443/",                     // no host
            "hunter2",
            "syslog:user:hunter2@host:514",
        ] {
            let err = validate_drain_url(bad).expect_err(bad).to_string();
            assert!(!err.contains("hunter2"), "{bad}: {err}");
            assert!(err.starts_with("invalid drain URL"), "{err}");
        }
    }

    #[test]
    fn redaction_strips_userinfo() {
        assert_eq!(
            redact_drain_url("https://user:hunter2@logs.example.com:8443/p?q=1"),
            "https://logs.example.com:8443/p?q=1"
        );
        assert_eq!(
            redact_drain_url("syslog+tls://tok:hunter2@logs.example.com:6514"),
            "syslog+tls://logs.example.com:6514"
        );
        assert_eq!(
            redact_drain_url("syslog://logs.example.com:514"),
            "syslog://logs.example.com:514"
        );
        assert!(!redact_drain_url("syslog:user:hunter2@host:514").contains("hunter2"));
        assert!(!redact_drain_url("not a url hunter2").contains("hunter2"));
    }

    #[test]
    fn http_userinfo_becomes_basic_auth() {
        let Target::Http { url, authorization } =
            parse_target("https://us%40er:p%3Ass@logs.example.com/x").unwrap()
        else {
            panic!("not http");
        };
        assert_eq!(url.as_str(), "https://logs.example.com/x");
        use base64::Engine;
        let expected = base64::engine::general_purpose::STANDARD.encode("us@er:p:ss");
        assert_eq!(authorization, Some(format!("Basic {expected}")));
    }
}
