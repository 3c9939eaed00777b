//! Heroku's rendezvous protocol for attached one-off dynos (`heroku run`, `hoist run`):
//! the client opens TLS to `rendezvous://host:port/<secret>`, writes the secret and
//! `\r\n`, receives `rendezvous\r\n` once paired, then raw bytes flow both ways. The
//! exit status travels in-band as `\u{FFFF} heroku-command-exit-status: N`, which the
//! Heroku CLI scans for. The certificate comes from a CA the server keeps in its data
//! directory (`ca.pem`), so clients trust it with `NODE_EXTRA_CA_CERTS` / `HOIST_CA_FILE`
//! (`hoist login` fetches and pins it).
//!
//! Like Heroku, an attached one-off lives only as long as its session: when the client
//! goes away (closed, killed, or never paired within the pairing window, e.g. because it
//! refused the certificate), the dyno is hung up (SIGHUP, then SIGKILL after the grace).

use anyhow::{Context, Result};
use hoist_runtime::{AttachEvent, Runtime};
use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::HashMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Ends an attached one-off dyno whose client is gone (given the dyno id).
pub type HangUp = Arc<dyn Fn(&str) + Send + Sync>;

/// Secrets waiting for their client, with the dyno they open.
pub struct Pending {
    map: Mutex<HashMap<String, (String, Instant)>>,
    /// How long a dyno waits for its client to pair.
    window: Duration,
}

impl Pending {
    pub fn new(window: Duration) -> Pending {
        Pending {
            map: Mutex::default(),
            window,
        }
    }

    /// Registers a dyno; returns the one-time secret.
    pub fn register(&self, dyno_id: &str) -> String {
        let secret = hoist_store::new_token();
        let mut map = self.map.lock();
        map.insert(secret.clone(), (dyno_id.to_string(), Instant::now()));
        secret
    }

    fn take(&self, secret: &str) -> Option<String> {
        self.map.lock().remove(secret).map(|(id, _)| id)
    }

    /// Removes and returns the dynos whose client did not pair within the window.
    fn take_expired(&self) -> Vec<String> {
        let mut expired = Vec::new();
        self.map.lock().retain(|_, (id, at)| {
            let keep = at.elapsed() < self.window;
            if !keep {
                expired.push(id.clone());
            }
            keep
        });
        expired
    }
}

/// Loads (or creates on first start) the platform CA and issues this start's server
/// certificate for the given host names / IPs.
pub fn tls_config(data_dir: &Path, hosts: &[String]) -> Result<rustls::ServerConfig> {
    let ca_pem_path = data_dir.join(hoist_api::PLATFORM_CA_FILE);
    let ca_key_path = data_dir.join("ca.key");
    // The CA is its key plus fixed parameters: re-signing them after a restart yields a
    // certificate with the same subject and key, so leaves chain to the saved ca.pem.
    let ca_params = || -> Result<CertificateParams> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Hoist platform CA");
        Ok(params)
    };
    let (ca_key, ca_params) = if ca_key_path.exists() && ca_pem_path.exists() {
        let key =
            KeyPair::from_pem(&std::fs::read_to_string(&ca_key_path)?).context("reading ca.key")?;
        (key, ca_params()?)
    } else {
        let key = KeyPair::generate()?;
        let params = ca_params()?;
        let cert = params.self_signed(&key)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&ca_key_path)?;
        std::io::Write::write_all(&mut f, key.serialize_pem().as_bytes())?;
        std::fs::write(&ca_pem_path, cert.pem())?;
        info!(path = %ca_pem_path.display(), "created the platform CA for one-off dyno sessions");
        (key, ca_params()?)
    };
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let leaf_key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(hosts.to_vec())?;
    leaf.distinguished_name
        .push(DnType::CommonName, "Hoist rendezvous");
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key)?;
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
    Ok(cfg)
}

pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    pending: Arc<Pending>,
    runtime: Arc<dyn Runtime>,
    hang_up: HangUp,
) {
    // A client that never pairs (refused our certificate, lost its network, was
    // killed) must not leave its dyno waiting forever.
    {
        let pending = pending.clone();
        let hang_up = hang_up.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                for id in pending.take_expired() {
                    info!(dyno = %id, "no client paired with the one-off dyno in time; hanging it up");
                    hang_up(&id);
                }
            }
        });
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let pending = pending.clone();
        let runtime = runtime.clone();
        let hang_up = hang_up.clone();
        tokio::spawn(async move {
            if let Err(e) = session(acceptor, tcp, pending, runtime, hang_up).await {
                warn!(%peer, error = format!("{e:#}"), "rendezvous session ended with an error");
            }
        });
    }
}

async fn session(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    pending: Arc<Pending>,
    runtime: Arc<dyn Runtime>,
    hang_up: HangUp,
) -> Result<()> {
    let tls = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await??;
    let (rd, mut wr) = tokio::io::split(tls);
    let mut rd = BufReader::new(rd);
    let mut line = Vec::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        (&mut rd).take(512).read_until(b'\n', &mut line),
    )
    .await??;
    let secret = String::from_utf8_lossy(&line).trim().to_string();
    let Some(dyno_id) = pending.take(&secret) else {
        wr.write_all(b"! unknown or expired rendezvous secret\r\n")
            .await?;
        return Ok(());
    };
    let attached = match runtime.attach(&dyno_id).await {
        Ok(a) => a,
        Err(e) => {
            hang_up(&dyno_id);
            return Err(e).context("attaching to the dyno");
        }
    };
    let (mut input, mut output) = attached.split();
    let tty = input.is_tty();
    // Paired: this line alone, before any program output (the CLI drops the first chunk).
    wr.write_all(b"rendezvous\r\n").await?;
    wr.flush().await?;
    // Set once the client's input has ended (EOT or EOF). Closing our side before then
    // races the Heroku CLI, which writes EOT when its stdin ends and crashes with EPIPE
    // if the socket is already half-closed.
    let input_done = Arc::new(tokio::sync::Notify::new());
    let input_done_tx = input_done.clone();
    // Set when the dyno's exit arrived: from then on the client may leave freely.
    let exited = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let exited_tx = exited.clone();
    let to_dyno = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                input_done_tx.notify_one();
                let _ = input.close_stdin().await;
                return Ok::<_, std::io::Error>(());
            }
            let mut data = &buf[..n];
            // Without a tty the CLI marks end of input with EOT.
            if !tty {
                if let Some(pos) = data.iter().position(|b| *b == 0x04) {
                    data = &data[..pos];
                    if !data.is_empty() {
                        input.write(data).await?;
                    }
                    input_done_tx.notify_one();
                    input.close_stdin().await?;
                    // Keep draining so the socket stays healthy; ignore the rest.
                    while rd.read(&mut buf).await? > 0 {}
                    return Ok(());
                }
            }
            input.write(data).await?;
        }
    };
    let from_dyno = async move {
        while let Some(ev) = output.next().await {
            match ev {
                AttachEvent::Output { data, .. } => {
                    wr.write_all(&data).await?;
                    wr.flush().await?;
                }
                AttachEvent::Exited { status, .. } => {
                    exited_tx.store(true, std::sync::atomic::Ordering::SeqCst);
                    let marker = format!("\u{FFFF} heroku-command-exit-status: {status}\n");
                    wr.write_all(marker.as_bytes()).await?;
                    wr.flush().await?;
                    break;
                }
                _ => {}
            }
        }
        // A tty client sends no EOT; a piped one does as soon as its stdin ends.
        if !tty {
            let _ = tokio::time::timeout(Duration::from_secs(3), input_done.notified()).await;
        }
        let _ = wr.shutdown().await;
        Ok::<_, std::io::Error>(())
    };
    // Input may end long before output (EOT after a pipe); output ends the session,
    // unless the client's connection ends first: then the client is gone.
    let mut input_task = tokio::spawn(to_dyno);
    let mut output_task = tokio::spawn(from_dyno);
    let r = tokio::select! {
        r = &mut output_task => {
            // Let the client close its side first: dropping a socket with unread bytes
            // makes the kernel send a reset, which the Heroku CLI reports as a crash.
            if tokio::time::timeout(Duration::from_secs(5), &mut input_task)
                .await
                .is_err()
            {
                input_task.abort();
            }
            r.unwrap_or(Ok(()))
        }
        _ = &mut input_task => {
            output_task.abort();
            Ok(())
        }
    };
    if !exited.load(std::sync::atomic::Ordering::SeqCst) {
        info!(dyno = %dyno_id, "the one-off dyno's client disconnected; hanging it up");
        hang_up(&dyno_id);
    }
    r?;
    Ok(())
}
