//! `hoist server`: wires store, API, builds, dyno manager, router and logs together
//! in one process (the embedded, single-machine mode).

use anyhow::{bail, Context, Result};
use clap::Parser;
use futures::future::BoxFuture;
use hoist_api::{ApiConfig, ApiState, OneOffDyno, OneOffStarted, Operations, Platform};
use hoist_dynos::{DynoManager, ManagerConfig, OneOffRequest};
use hoist_logs::LogHub;
use hoist_router::{Router, RouterConfig, RoutingTable};
use hoist_runtime::{ProcessRuntime, RuncRuntime, Runtime, RuntimeConfig};
use hoist_store::Store;
use hoist_types::LogLine;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::info;

#[derive(Parser, Debug)]
#[command(name = "hoist server", about = "Run the Hoist control plane")]
pub struct ServerArgs {
    /// Where state, repositories, slugs and logs live.
    #[arg(long, env = "HOIST_SERVER_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Address of the Platform API and git server.
    #[arg(long, env = "HOIST_SERVER_API_ADDR", default_value = "127.0.0.1:5000")]
    pub api_addr: SocketAddr,
    /// Address of the HTTP router that serves apps.
    #[arg(
        long,
        env = "HOIST_SERVER_ROUTER_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub router_addr: SocketAddr,
    /// Also terminate TLS for apps on this address (HTTP/2 and HTTP/1.1 by ALPN);
    /// off unless given. Certificates come from --router-tls-certs.
    #[arg(long, env = "HOIST_SERVER_ROUTER_TLS_ADDR")]
    pub router_tls_addr: Option<SocketAddr>,
    /// Directory of `<hostname>.crt` + `<hostname>.key` PEM pairs for the TLS router,
    /// chosen by SNI (`*.<domain>.crt` for a wildcard, `default.crt` as fallback);
    /// defaults to <data-dir>/certs.
    #[arg(long, env = "HOIST_SERVER_ROUTER_TLS_CERTS")]
    pub router_tls_certs: Option<PathBuf>,
    /// Base domain: apps are reachable as <app>.<domain>.
    #[arg(long, env = "HOIST_SERVER_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Public URL of the API (defaults to http://<api-addr>).
    #[arg(long, env = "HOIST_SERVER_API_URL")]
    pub api_url: Option<String>,
    /// Dyno runtime: `runc` (isolated containers) or `process` (plain child processes,
    /// no isolation; development only).
    #[arg(long, env = "HOIST_SERVER_RUNTIME", default_value = "runc")]
    pub runtime: String,
    /// Seconds a web dyno has to bind $PORT (Heroku: 60).
    #[arg(long, env = "HOIST_SERVER_BOOT_TIMEOUT", default_value_t = 60)]
    pub boot_timeout: u64,
    /// Seconds between SIGTERM and SIGKILL when stopping a dyno (Heroku: 30).
    #[arg(long, env = "HOIST_SERVER_STOP_GRACE", default_value_t = 30)]
    pub stop_grace: u64,
    /// Seconds without a request before an eco app sleeps (Heroku: 30 minutes).
    #[arg(long, env = "HOIST_SERVER_IDLE_SECONDS", default_value_t = 1800)]
    pub idle_seconds: u64,
    /// Restart every dyno daily like Heroku's cycling (`false` to switch off).
    #[arg(long, env = "HOIST_SERVER_DAILY_CYCLING", default_value_t = true, action = clap::ArgAction::Set)]
    pub daily_cycling: bool,
    /// Address of the TLS rendezvous endpoint for attached one-off dynos
    /// (`hoist run`, `heroku run`); port 0 picks a free one.
    #[arg(
        long,
        env = "HOIST_SERVER_RENDEZVOUS_ADDR",
        default_value = "127.0.0.1:0"
    )]
    pub rendezvous_addr: SocketAddr,
    /// Seconds an attached one-off dyno waits for its client to connect before it is
    /// hung up (the client may have refused the certificate or died).
    #[arg(
        long,
        env = "HOIST_SERVER_RENDEZVOUS_PAIR_TIMEOUT",
        default_value_t = 60
    )]
    pub rendezvous_pair_timeout: u64,
    /// Seconds an add-on may stay `provisioning` (partner never called back) before it
    /// is deprovisioned and removed.
    #[arg(
        long,
        env = "HOIST_SERVER_ADDON_PROVISION_TIMEOUT",
        default_value_t = 600
    )]
    pub addon_provision_timeout: u64,
    /// Share runtimes installed from a runtime source (e.g. Node 22) among the builds of
    /// all apps, in <data-dir>/runtimes (`false`: each app keeps its own in its build
    /// cache; safer when apps do not trust each other, since every build can write the
    /// shared cache).
    #[arg(long, env = "HOIST_SERVER_SHARED_RUNTIME_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub shared_runtime_cache: bool,
    /// Hosts that tenants' URLs (sources, buildpacks, log drains) may reach although
    /// they resolve to loopback, private or link-local addresses, which are refused
    /// otherwise. A name, an IP address or a URL naming the host; repeat or
    /// comma-separate.
    #[arg(long, env = "HOIST_SERVER_ALLOW_INTERNAL_URL", value_delimiter = ',')]
    pub allow_internal_url: Vec<String>,
    /// Email of the owner account created on first start.
    #[arg(
        long,
        env = "HOIST_SERVER_ADMIN_EMAIL",
        default_value = "admin@hoist.local"
    )]
    pub admin_email: String,
}

fn default_data_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        PathBuf::from("/var/lib/hoist")
    } else {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".local/share/hoist")
    }
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

/// The rest of the platform as the API sees it: the dyno manager and the log hub.
struct ServerPlatform {
    store: Arc<Store>,
    data_dir: PathBuf,
    logs: LogHub,
    manager: tokio::sync::OnceCell<DynoManager>,
    router_metrics: Arc<hoist_router::Metrics>,
    api_url: String,
    rendezvous: Arc<crate::rendezvous::Pending>,
    /// `host:port` clients use to reach the rendezvous endpoint.
    rendezvous_host: String,
}

impl ServerPlatform {
    fn manager(&self) -> Option<&DynoManager> {
        self.manager.get()
    }

    fn sync_drains(&self, app_id: &str) {
        let drains = self
            .store
            .log_drains(app_id)
            .unwrap_or_default()
            .into_iter()
            .map(|d| hoist_logs::DrainConfig {
                id: d.id,
                url: d.url,
                token: d.token,
            })
            .collect();
        self.logs.set_drains(app_id, drains);
    }
}

impl Platform for ServerPlatform {
    fn app_changed(&self, app_id: &str) {
        if let Some(m) = self.manager() {
            m.app_changed(app_id);
        }
    }
    fn app_created(&self, app_id: &str) -> BoxFuture<'static, ()> {
        let manager = self.manager().cloned();
        let app_id = app_id.to_string();
        Box::pin(async move {
            if let Some(m) = manager {
                m.app_created(&app_id).await;
            }
        })
    }
    fn app_destroyed(&self, app_id: &str) -> BoxFuture<'static, ()> {
        let manager = self.manager().cloned();
        self.logs.forget_app(app_id);
        for dir in [
            self.data_dir.join("repos").join(format!("{app_id}.git")),
            self.data_dir.join("cache").join(app_id),
        ] {
            let _ = std::fs::remove_dir_all(dir);
        }
        let app_id = app_id.to_string();
        Box::pin(async move {
            if let Some(m) = manager {
                m.app_destroyed(&app_id).await;
            }
        })
    }
    fn api_event(&self, app_id: &str, message: &str) {
        self.logs.push(app_id, LogLine::app("api", message));
    }
    fn run_release_phase(
        &self,
        app_id: &str,
        version: i64,
        command: &str,
        log: Arc<hoist_api::buildlog::BuildLog>,
    ) -> BoxFuture<'static, Result<i32, String>> {
        let manager = self.manager().cloned();
        let req = OneOffRequest {
            app_id: app_id.to_string(),
            command: command.to_string(),
            env: Default::default(),
            size: None,
            attach: false,
            tty: false,
            process_type: "release".into(),
            release_version: Some(version),
            output: Some(Arc::new(move |line: &str| log.push(line))),
            // Heroku's release phase has a hard one-hour limit.
            time_to_live: Some(Duration::from_secs(3600)),
        };
        Box::pin(async move {
            let m = manager.ok_or("the dyno manager is not running")?;
            let started = m.run_one_off(req).await?;
            started
                .exit
                .await
                .map_err(|_| "the release dyno vanished".to_string())
        })
    }
}

impl Operations for ServerPlatform {
    fn restart(&self, app_id: &str, target: Option<&str>) {
        if let Some(m) = self.manager() {
            m.restart(app_id, target);
        }
    }
    fn stop(&self, app_id: &str, target: &str) {
        if let Some(m) = self.manager() {
            m.stop(app_id, target);
        }
    }
    fn run(&self, req: OneOffDyno) -> BoxFuture<'static, Result<OneOffStarted, String>> {
        let manager = self.manager().cloned();
        let pending = self.rendezvous.clone();
        let rendezvous_host = self.rendezvous_host.clone();
        Box::pin(async move {
            let m = manager.ok_or("the dyno manager is not running")?;
            let started = m
                .run_one_off(OneOffRequest {
                    app_id: req.app_id,
                    command: req.command,
                    env: req.env,
                    size: req.size,
                    attach: req.attach,
                    tty: req.tty,
                    process_type: "run".into(),
                    release_version: None,
                    output: None,
                    time_to_live: req.time_to_live,
                })
                .await?;
            let attach_url = req.attach.then(|| {
                format!(
                    "rendezvous://{rendezvous_host}/{}",
                    pending.register(&started.id)
                )
            });
            Ok(OneOffStarted {
                name: started.name,
                size: started.size.name().to_string(),
                attach_url,
            })
        })
    }
    fn log_session(
        &self,
        app_id: &str,
        lines: usize,
        tail: bool,
        source: Option<String>,
        dyno: Option<String>,
        owner: hoist_api::SessionOwner,
    ) -> String {
        let source = match source.as_deref() {
            Some("app") => Some(hoist_types::LogSource::App),
            Some("heroku") => Some(hoist_types::LogSource::Heroku),
            _ => None,
        };
        let token = self.logs.create_owned_session(
            app_id,
            hoist_logs::SessionRequest {
                lines,
                tail,
                filter: hoist_logs::LogFilter { source, ps: dyno },
            },
            Some(owner.encode()),
        );
        format!("{}/log-streams/{token}", self.api_url.trim_end_matches('/'))
    }
    fn drains_changed(&self, app_id: &str) {
        self.sync_drains(app_id);
    }
    fn metrics_text(&self) -> String {
        format!(
            "{}{}",
            self.router_metrics.prometheus_text(),
            self.logs.metrics_text()
        )
    }
    fn app_metrics(&self, app_id: &str) -> serde_json::Value {
        self.router_metrics.app_summary(app_id)
    }
}

/// The router asks the platform to log and to wake sleeping apps.
struct RouterBridge {
    logs: LogHub,
    manager: Arc<tokio::sync::OnceCell<DynoManager>>,
}

impl hoist_router::RouterHooks for RouterBridge {
    fn log(&self, app_id: &str, line: LogLine) {
        self.logs.push(app_id, line);
    }
    fn wake(&self, app_id: &str) {
        if let Some(m) = self.manager.get() {
            m.wake(app_id);
        }
    }
}

/// runc's state dir for one data dir's dynos (`runc`) or builds (`builds`).
fn runc_root(data_dir: &Path, kind: &str) -> PathBuf {
    use sha2::Digest;
    let canon = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let h = sha2::Sha256::digest(canon.to_string_lossy().as_bytes());
    PathBuf::from("/run/hoist").join(format!("{kind}-{}", &hex_lower(&h[..6])))
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Server settings used to be read from `HOIST_<FLAG>`; say so when such a variable
/// is set, except for the ones the CLI itself reads (set for it, not for the server).
fn warn_about_old_env_names() {
    use clap::CommandFactory;
    const CLIENT_NAMES: &[&str] = &["HOIST_API_URL", "HOIST_DATA_DIR"];
    for arg in ServerArgs::command().get_arguments() {
        let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
            continue;
        };
        let old = env.replacen("HOIST_SERVER_", "HOIST_", 1);
        if !CLIENT_NAMES.contains(&old.as_str()) && std::env::var_os(&old).is_some() {
            tracing::warn!(
                "{old} is ignored: the server reads {env} (or --{})",
                arg.get_id()
            );
        }
    }
}

async fn run(args: ServerArgs) -> Result<()> {
    warn_about_old_env_names();
    let store = open_store(&args)?;
    let listeners = bind_listeners(&args).await?;
    let api_addr = listeners.api_addr;
    let api_url = args
        .api_url
        .clone()
        .unwrap_or_else(|| format!("http://{api_addr}"));
    let stack = host_stack();
    remove_refused_domains(&store, &args.domain, &api_url)?;
    let egress = egress_policy(&args)?;
    let logs = start_logs(&args, &store, &egress)?;
    let table = RoutingTable::new();
    let manager_cell: Arc<tokio::sync::OnceCell<DynoManager>> =
        Arc::new(tokio::sync::OnceCell::new());
    let router = new_router(&args, &table, &logs, &manager_cell);
    let rendezvous = Rendezvous::bind(&args, &api_url, api_addr).await?;
    let server_platform = Arc::new(ServerPlatform {
        rendezvous: rendezvous.pending.clone(),
        rendezvous_host: rendezvous.host.clone(),
        store: store.clone(),
        data_dir: args.data_dir.clone(),
        logs: logs.clone(),
        manager: tokio::sync::OnceCell::new(),
        router_metrics: router.metrics(),
        api_url: api_url.clone(),
    });
    let platform: Arc<dyn Platform> = server_platform.clone();

    let (runtime, build_cfg, hoist_exe) = start_runtime(&args, &egress)?;
    let manager = start_manager(&args, &store, runtime, &logs, &table, &router, rendezvous).await?;
    let _ = manager_cell.set(manager.clone());
    let _ = server_platform.manager.set(manager);
    for app in store.all_apps()? {
        server_platform.sync_drains(&app.id);
    }

    let deployer = hoist_api::deploy::Deployer::new(
        store.clone(),
        hoist_api::deploy::DeployConfig {
            data_dir: args.data_dir.clone(),
            build: build_cfg,
            stack: stack.clone(),
        },
        platform.clone(),
    );
    deployer.recover_interrupted();
    let addons = start_addons(&args, &store, &api_url)?;
    let state = Arc::new(ApiState {
        addons: Some(addons),
        ops: Some(server_platform.clone() as Arc<dyn Operations>),
        deployer,
        data_dir: args.data_dir.clone(),
        hoist_exe,
        internal_url: format!("http://{api_addr}"),
        hook_secret: hoist_store::new_token(),
        store: store.clone(),
        cfg: ApiConfig {
            domain: args.domain.clone(),
            api_url: api_url.clone(),
            router_port: listeners.router_addr.port(),
            stack,
            egress,
        },
        platform,
    });
    start_api_sweeps(&state, &args);
    let app = hoist_api::router(state).merge(logs.stream_router());
    serve(&args, &api_url, listeners, app, router, &manager_cell).await?;
    shut_down(&manager_cell, &logs).await;
    Ok(())
}

/// The API's background clean-ups: stale add-on provisioning, expired source uploads.
fn start_api_sweeps(state: &Arc<ApiState>, args: &ServerArgs) {
    tokio::spawn(hoist_api::addons::sweep_stale_provisioning(
        state.clone(),
        Duration::from_secs(args.addon_provision_timeout),
    ));
    tokio::spawn(hoist_api::builds::sweep_expired_sources(
        state.clone(),
        Duration::from_secs(300),
    ));
}

/// After `serve`: what must not wait for the next start.
async fn shut_down(manager: &tokio::sync::OnceCell<DynoManager>, logs: &LogHub) {
    // Dynos keep running (the next start re-adopts them), but those that already ended
    // are removed now rather than left mounted until the next start.
    if let Some(m) = manager.get() {
        m.finish_removals().await;
    }
    logs.shutdown().await;
    info!("hoist server stopped");
}

/// Creates the data directory, opens the state store, installs the built-in
/// buildpacks and makes sure the platform owner exists.
fn open_store(args: &ServerArgs) -> Result<Arc<Store>> {
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
        let _ = std::fs::set_permissions(
            args.data_dir.join(f),
            std::fs::Permissions::from_mode(0o600),
        );
    }
    install_buildpacks(&args.data_dir).context("installing the built-in buildpacks")?;
    bootstrap_owner(&store, &args.data_dir, &args.admin_email)?;
    Ok(store)
}

/// The API and router sockets, bound before anything starts.
struct Listeners {
    api: tokio::net::TcpListener,
    api_addr: SocketAddr,
    router: tokio::net::TcpListener,
    router_addr: SocketAddr,
    router_tls: Option<(tokio::net::TcpListener, Arc<rustls::ServerConfig>)>,
}

async fn bind_listeners(args: &ServerArgs) -> Result<Listeners> {
    let api = tokio::net::TcpListener::bind(args.api_addr)
        .await
        .with_context(|| format!("binding the API to {}", args.api_addr))?;
    let api_addr = api.local_addr()?;
    let router = tokio::net::TcpListener::bind(args.router_addr)
        .await
        .with_context(|| format!("binding the router to {}", args.router_addr))?;
    let router_addr = router.local_addr()?;
    // TLS settings are checked before the server listens, so a bad certificate is a
    // clear start-up error.
    let router_tls = match args.router_tls_addr {
        Some(addr) => {
            let dir = args
                .router_tls_certs
                .clone()
                .unwrap_or_else(|| args.data_dir.join("certs"));
            let store = hoist_router::tls::CertStore::load_dir(&dir).with_context(|| {
                format!("loading router TLS certificates from {}", dir.display())
            })?;
            let cfg = hoist_router::tls::server_config(store)?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the TLS router to {addr}"))?;
            Some((listener, cfg))
        }
        None => None,
    };
    Ok(Listeners {
        api,
        api_addr,
        router,
        router_addr,
        router_tls,
    })
}

/// The one stack is the host's distribution; named once, here, for the API,
/// `$STACK` and the build banner.
fn host_stack() -> String {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|text| hoist_types::stack_name_from_os_release(&text))
        .unwrap_or_else(|| "linux".to_string())
}

/// Custom domains added before today's rules (an IP address would take every
/// request addressed to the router by IP) go before the router sees them.
fn remove_refused_domains(store: &Store, domain: &str, api_url: &str) -> Result<()> {
    let api_host = url_host(api_url);
    let platform_hosts = hoist_types::PlatformHosts {
        domain,
        api_host: api_host.as_deref(),
    };
    for (d, why) in store.remove_refused_domains(&platform_hosts)? {
        tracing::warn!(app = %d.app_id, domain = %d.hostname, reason = %why, "removed a custom domain");
    }
    Ok(())
}

fn egress_policy(args: &ServerArgs) -> Result<Arc<hoist_egress::EgressPolicy>> {
    let egress = args
        .allow_internal_url
        .iter()
        .try_fold(hoist_egress::EgressPolicy::strict(), |p, host| {
            p.allow(host)
        })
        .context("--allow-internal-url")?;
    Ok(Arc::new(egress))
}

fn start_logs(
    args: &ServerArgs,
    store: &Arc<Store>,
    egress: &Arc<hoist_egress::EgressPolicy>,
) -> Result<LogHub> {
    let logs = LogHub::open(hoist_logs::LogConfig {
        dir: args.data_dir.join("logs"),
        egress: egress.clone(),
        ..Default::default()
    })
    .context("opening the log history")?;
    // A log session streams only while its creator may read the app.
    let store = store.clone();
    logs.set_access_check(Arc::new(move |app_id, owner| {
        hoist_api::SessionOwner::decode(owner).is_some_and(|o| o.may_read(&store, app_id))
    }));
    Ok(logs)
}

/// The router, reading the table the manager publishes; it serves once `serve` runs.
fn new_router(
    args: &ServerArgs,
    table: &Arc<RoutingTable>,
    logs: &LogHub,
    manager: &Arc<tokio::sync::OnceCell<DynoManager>>,
) -> Arc<Router> {
    Arc::new(Router::new(
        RouterConfig {
            domain: args.domain.clone(),
            ..Default::default()
        },
        table.clone(),
        Arc::new(RouterBridge {
            logs: logs.clone(),
            manager: manager.clone(),
        }),
    ))
}

/// The endpoint where `hoist run` clients and one-off dynos meet.
struct Rendezvous {
    listener: tokio::net::TcpListener,
    tls: rustls::ServerConfig,
    pending: Arc<crate::rendezvous::Pending>,
    /// `host:port` clients use to reach it.
    host: String,
}

impl Rendezvous {
    async fn bind(args: &ServerArgs, api_url: &str, api_addr: SocketAddr) -> Result<Rendezvous> {
        let listener = tokio::net::TcpListener::bind(args.rendezvous_addr)
            .await
            .with_context(|| {
                format!(
                    "binding the rendezvous endpoint to {}",
                    args.rendezvous_addr
                )
            })?;
        let port = listener.local_addr()?.port();
        let public_host = url_host(api_url).unwrap_or_else(|| api_addr.ip().to_string());
        let tls = crate::rendezvous::tls_config(
            &args.data_dir,
            &[public_host.clone(), "127.0.0.1".into(), "localhost".into()],
        )
        .context("setting up TLS for one-off dyno sessions")?;
        let pending = Arc::new(crate::rendezvous::Pending::new(Duration::from_secs(
            args.rendezvous_pair_timeout,
        )));
        Ok(Rendezvous {
            listener,
            tls,
            pending,
            host: format!("{public_host}:{port}"),
        })
    }
}

/// The dyno runtime, and the build settings that go with it (builds get containers
/// like dynos). Returns the runtime, the build settings and the hoist binary.
fn start_runtime(
    args: &ServerArgs,
    egress: &Arc<hoist_egress::EgressPolicy>,
) -> Result<(Arc<dyn Runtime>, hoist_build::BuildConfig, PathBuf)> {
    let hoist_exe = std::env::current_exe().context("locating the hoist binary")?;
    // The lean `hoist-shim` binary (built beside `hoist`) supervises dynos when present:
    // it maps far fewer pages per dyno than the whole platform binary.
    let lean_shim = hoist_exe.with_file_name("hoist-shim");
    let shim_exe = if lean_shim.is_file() {
        lean_shim
    } else {
        hoist_exe.clone()
    };
    let mut rt_cfg = RuntimeConfig::new(&args.data_dir, &shim_exe);
    rt_cfg.runc_root = runc_root(&args.data_dir, "runc");
    let mut build_cfg = hoist_build::BuildConfig::with_defaults(&args.data_dir);
    build_cfg.egress = egress.clone();
    if !args.shared_runtime_cache {
        build_cfg.runtime_cache = None;
    }
    if args.runtime == "runc" {
        // Builds get containers like dynos, under their own runc root.
        let lean_agent = hoist_exe.with_file_name("hoist-build-agent");
        let container = hoist_build::container::ContainerConfig {
            runc_root: runc_root(&args.data_dir, "builds"),
            agent_exe: if lean_agent.is_file() {
                lean_agent
            } else {
                hoist_exe.clone()
            },
            stack_dirs: rt_cfg.stack_dirs.clone(),
        };
        hoist_build::container::sweep(&container.runc_root);
        build_cfg.container = Some(container);
    } else {
        tracing::warn!("--runtime process: builds run in the process sandbox, not in containers");
    }
    let runtime: Arc<dyn Runtime> = match args.runtime.as_str() {
        "runc" => Arc::new(RuncRuntime::new(rt_cfg).map_err(|e| anyhow::anyhow!("{e}")).context(
            "starting the runc runtime (install the Debian package `runc`, or pass --runtime process for unisolated development dynos)",
        )?),
        "process" => {
            tracing::warn!("--runtime process: dynos run as plain child processes WITHOUT isolation; use only for development");
            Arc::new(ProcessRuntime::new(rt_cfg).map_err(|e| anyhow::anyhow!("{e}"))?)
        }
        other => bail!("unknown --runtime {other:?}: use runc or process"),
    };
    Ok((runtime, build_cfg, hoist_exe))
}

/// Starts the dyno manager (re-adopting running dynos) and the rendezvous endpoint
/// one-off dynos reach it through.
async fn start_manager(
    args: &ServerArgs,
    store: &Arc<Store>,
    runtime: Arc<dyn Runtime>,
    logs: &LogHub,
    table: &Arc<RoutingTable>,
    router: &Router,
    rendezvous: Rendezvous,
) -> Result<DynoManager> {
    let mut mcfg = ManagerConfig::new(args.data_dir.clone());
    mcfg.boot_timeout = Duration::from_secs(args.boot_timeout);
    mcfg.stop_grace = Duration::from_secs(args.stop_grace);
    mcfg.idle_after = Duration::from_secs(args.idle_seconds);
    if !args.daily_cycling {
        mcfg.cycle_after = None;
    }
    let manager = DynoManager::start(
        mcfg,
        store.clone(),
        runtime.clone(),
        logs.clone(),
        table.clone(),
        Some(router.metrics()),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("starting the dyno manager")?;
    let hang_up = manager.clone();
    tokio::spawn(crate::rendezvous::serve(
        rendezvous.listener,
        rendezvous.tls,
        rendezvous.pending,
        runtime,
        Arc::new(move |dyno_id: &str| hang_up.hang_up(dyno_id)),
    ));
    Ok(manager)
}

/// Add-on providers: managed PostgreSQL/Redis servers keep running across daemon
/// restarts; boot re-adopts them (or starts them again after a reboot).
fn start_addons(
    args: &ServerArgs,
    store: &Arc<Store>,
    api_url: &str,
) -> Result<Arc<hoist_addons::Registry>> {
    let mut addons_cfg = hoist_addons::AddonsConfig::default();
    addons_cfg.partner.callback_base_url =
        Some(format!("{}/addon-callbacks", api_url.trim_end_matches('/')));
    let addons = Arc::new(
        hoist_addons::Registry::new(&args.data_dir, addons_cfg)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("loading add-on providers")?,
    );
    for e in addons.manifest_errors() {
        tracing::warn!("add-on partner manifest skipped: {e}");
    }
    let registry = addons.clone();
    let store = store.clone();
    tokio::spawn(async move {
        // First give back what destroyed apps left (a crash mid-destroy), so their
        // Redis servers are not started again.
        hoist_api::addons::finish_pending_deprovisions(&store, &registry).await;
        let status = registry.start_managed_servers().await;
        tracing::info!(?status, "managed add-on servers checked");
        registry.supervise(Duration::from_secs(10));
    });
    Ok(addons)
}

/// Serves the router (and its TLS listener) and the API until SIGTERM or SIGINT,
/// then lets them finish.
async fn serve(
    args: &ServerArgs,
    api_url: &str,
    listeners: Listeners,
    app: axum::Router,
    router: Arc<Router>,
    manager: &tokio::sync::OnceCell<DynoManager>,
) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = stop_tx.send(true);
    });
    let (api_addr, router_addr) = (listeners.api_addr, listeners.router_addr);
    let mut router_stop = stop_rx.clone();
    let router_task = {
        let router = router.clone();
        tokio::spawn(async move {
            router
                .serve(listeners.router, async move {
                    let _ = router_stop.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let router_tls_task = listeners.router_tls.map(|(listener, cfg)| {
        let router = router.clone();
        let mut stop = stop_rx.clone();
        if let Ok(addr) = listener.local_addr() {
            eprintln!("TLS router on {addr} (HTTP/2 and HTTP/1.1)");
        }
        tokio::spawn(async move {
            router
                .serve_tls(listener, cfg, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        })
    });
    info!(api = %api_addr, router = %router_addr, domain = %args.domain, data_dir = %args.data_dir.display(), "hoist server ready");
    eprintln!(
        "Hoist API listening on {api_url} (router on {router_addr}, apps at http://<app>.{}:{})",
        args.domain,
        router_addr.port()
    );
    let mut rx = stop_rx.clone();
    axum::serve(listeners.api, app)
        .with_graceful_shutdown(async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await
        .context("serving the API")?;
    // Dynos outlive the daemon, but attached one-offs lose their clients with it.
    if let Some(m) = manager.get() {
        m.end_attached().await;
    }
    let _ = router_task.await;
    if let Some(t) = router_tls_task {
        let _ = t.await;
    }
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
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

/// The host part of a URL such as `http://127.0.0.1:5000`.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?.to_string()
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_string()
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::ServerArgs;
    use clap::CommandFactory;

    /// The CLI reads `HOIST_API_URL`, `HOIST_DATA_DIR`, ... from the same shell: every
    /// server setting has a name of its own so that a shell configured for the client
    /// cannot reconfigure a server started from it.
    #[test]
    fn server_env_names_cannot_collide_with_the_clients() {
        let cmd = ServerArgs::command();
        let mut seen = 0;
        for arg in cmd.get_arguments() {
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(
                    env.starts_with("HOIST_SERVER_"),
                    "--{} reads {env}",
                    arg.get_id()
                );
                seen += 1;
            }
        }
        assert!(seen > 10, "only {seen} settings have an env name");
    }
}
