//! `hoist server`: wires store, API, builds, dyno manager, router and logs together
//! in one process (the embedded, single-machine mode).

use anyhow::{bail, Context, Result};
use clap::Parser;
use hoist_api::{ApiConfig, ApiState, Platform};
use hoist_store::Store;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::info;

#[derive(Parser, Debug)]
#[command(name = "hoist server", about = "Run the Hoist control plane")]
pub struct ServerArgs {
    /// Where state, repositories, slugs and logs live.
    #[arg(long, env = "HOIST_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Address of the Platform API and git server.
    #[arg(long, env = "HOIST_API_ADDR", default_value = "127.0.0.1:5000")]
    pub api_addr: SocketAddr,
    /// Address of the HTTP router that serves apps.
    #[arg(long, env = "HOIST_ROUTER_ADDR", default_value = "127.0.0.1:8080")]
    pub router_addr: SocketAddr,
    /// Base domain: apps are reachable as <app>.<domain>.
    #[arg(long, env = "HOIST_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Public URL of the API (defaults to http://<api-addr>).
    #[arg(long, env = "HOIST_API_URL")]
    pub api_url: Option<String>,
    /// Email of the owner account created on first start.
    #[arg(long, env = "HOIST_ADMIN_EMAIL", default_value = "admin@hoist.local")]
    pub admin_email: String,
}

fn default_data_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        PathBuf::from("/var/lib/hoist")
    } else {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".local/share/hoist")
    }
}

pub fn shim_main(args: &[String]) -> i32 {
    let _ = args;
    eprintln!("hoist shim: not available in this build");
    2
}

pub fn main(args: &[String]) -> Result<()> {
    let args = ServerArgs::parse_from(args);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOIST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run(args))
}

/// Creates the owner account and its token on an empty data directory.
fn bootstrap_owner(store: &Store, data_dir: &Path, email: &str) -> Result<()> {
    if store.account_count()? > 0 {
        return Ok(());
    }
    let owner = store.create_account(email, None, true)?;
    let (_, token) = store.issue_token(&owner.id, "admin token created at first start")?;
    let path = data_dir.join("admin.token");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes())?;
    info!(email = %owner.email, path = %path.display(), "created the owner account; its API token is in {}", path.display());
    eprintln!(
        "Created owner account {} - API token written to {} (mode 0600)",
        owner.email,
        path.display()
    );
    Ok(())
}

struct ServerPlatform {}

impl Platform for ServerPlatform {
    fn app_changed(&self, app_id: &str) {
        tracing::debug!(app = app_id, "app changed");
    }
    fn app_destroyed(&self, app_id: &str) {
        tracing::debug!(app = app_id, "app destroyed");
    }
    fn api_event(&self, app_id: &str, message: &str) {
        info!(app = app_id, "{message}");
    }
}

async fn run(args: ServerArgs) -> Result<()> {
    if args.domain.is_empty() || args.domain.contains(['/', ':', ' ']) {
        bail!("--domain must be a bare DNS name such as localhost or apps.example.com");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    // Traversable but not listable: sandboxed builds must reach the buildpacks, nothing
    // else; the store and tokens are private to the daemon.
    std::fs::set_permissions(&args.data_dir, std::fs::Permissions::from_mode(0o711))?;
    let db_path = args.data_dir.join("state.db");
    let store = Arc::new(Store::open(&db_path).context("opening the state store")?);
    for f in ["state.db", "state.db-wal", "state.db-shm"] {
        let _ = std::fs::set_permissions(args.data_dir.join(f), std::fs::Permissions::from_mode(0o600));
    }
    install_buildpacks(&args.data_dir).context("installing the built-in buildpacks")?;
    bootstrap_owner(&store, &args.data_dir, &args.admin_email)?;

    let api_listener = tokio::net::TcpListener::bind(args.api_addr)
        .await
        .with_context(|| format!("binding the API to {}", args.api_addr))?;
    let api_addr = api_listener.local_addr()?;
    let router_listener = tokio::net::TcpListener::bind(args.router_addr)
        .await
        .with_context(|| format!("binding the router to {}", args.router_addr))?;
    let router_addr = router_listener.local_addr()?;
    let api_url = args.api_url.clone().unwrap_or_else(|| format!("http://{api_addr}"));

    let platform: Arc<dyn Platform> = Arc::new(ServerPlatform {});
    let deployer = hoist_api::deploy::Deployer::new(
        store.clone(),
        hoist_api::deploy::DeployConfig {
            data_dir: args.data_dir.clone(),
            build: hoist_build::BuildConfig::with_defaults(&args.data_dir),
            stack: "heroku-24".into(),
        },
        platform.clone(),
    );
    let state = Arc::new(ApiState {
        deployer,
        data_dir: args.data_dir.clone(),
        hoist_exe: std::env::current_exe().context("locating the hoist binary")?,
        internal_url: format!("http://{api_addr}"),
        hook_secret: hoist_store::new_token(),
        store: store.clone(),
        cfg: ApiConfig {
            domain: args.domain.clone(),
            api_url: api_url.clone(),
            router_port: router_addr.port(),
            stack: "heroku-24".into(),
        },
        platform,
    });
    let app = hoist_api::router(state);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    info!(api = %api_addr, router = %router_addr, domain = %args.domain, data_dir = %args.data_dir.display(), "hoist server ready");
    eprintln!("Hoist API listening on {api_url} (router on {router_addr}, apps at http://<app>.{}:{})", args.domain, router_addr.port());
    drop(router_listener);
    let mut rx = stop_rx.clone();
    axum::serve(api_listener, app)
        .with_graceful_shutdown(async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await
        .context("serving the API")?;
    info!("hoist server stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received, shutting down"),
        _ = int.recv() => info!("SIGINT received, shutting down"),
    }
}

/// The built-in buildpacks, packed by build.rs.
static BUILDPACKS_TAR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/buildpacks.tar"));

/// Unpacks the built-in buildpacks into `<data>/buildpacks` (replacing older copies),
/// readable by the unprivileged build user.
fn install_buildpacks(data_dir: &Path) -> Result<()> {
    let dest = data_dir.join("buildpacks");
    let tmp = data_dir.join(format!("buildpacks.new-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    tar::Archive::new(BUILDPACKS_TAR).unpack(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    let old = data_dir.join(format!("buildpacks.old-{}", std::process::id()));
    if dest.exists() {
        std::fs::rename(&dest, &old)?;
    }
    std::fs::rename(&tmp, &dest)?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}
