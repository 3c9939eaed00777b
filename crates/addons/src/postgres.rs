//! Built-in PostgreSQL: one database and one role per add-on on a platform-managed
//! server (or an external server an administrator configures).
//!
//! Managed server layout, `<data_dir>/addons/postgresql/` (owned by the `postgres` OS
//! user, 0700):
//! * `data/`       PGDATA (initdb once; `hoist.conf` included from postgresql.conf)
//! * `run/`        Unix socket directory (not used by Hoist itself; TCP only)
//! * `server.log`  pg_ctl log file
//! * `state.json`  port and admin credentials (0600)
//!
//! The server is started with `pg_ctl start` (postmaster in its own session), so it
//! outlives the daemon. [`PostgresProvider::ensure_running`] re-adopts a running
//! postmaster (pid from `postmaster.pid`, verified alive and named postgres) and starts
//! it otherwise.
//!
//! Storage quota: PostgreSQL has no per-database quota. The plan's `storage_mb` is
//! recorded in the database comment, reported by `info` (`data_size_bytes`,
//! `over_quota`) and checked by [`PostgresProvider::check_quotas`] (run by the
//! supervisor), which logs a warning for each database over quota. It is not enforced.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::process::Command;
use tracing::{info, warn};

use crate::names::{random_bytes, random_hex};
use crate::pgadmin::{column, literal, AdminConn, AdminSession};
use crate::process::{self, RunAs};
use crate::{limits, scram, AddonError, Plan, Provider, ProvisionState, Provisioned, Service};

const PACKAGE: &str = "postgresql";
const ADMIN_USER: &str = "hoist_admin";
const COMMENT_PREFIX: &str = "hoist:";

#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// Directory with initdb/pg_ctl/postgres. `None`: newest
    /// `/usr/lib/postgresql/<ver>/bin`.
    pub bin_dir: Option<PathBuf>,
    /// OS user the managed server runs as when the daemon is root.
    pub os_user: String,
    /// Address the managed server listens on.
    pub listen_host: String,
    /// Host written into `DATABASE_URL` (where dynos reach the server).
    pub advertise_host: String,
    pub max_connections: u32,
    pub shared_buffers_mb: u32,
    /// `postgres://admin:pass@host:port/postgres?sslmode=…`: use this server instead
    /// of a managed one. The admin role needs CREATEDB and CREATEROLE. No TLS yet:
    /// `sslmode` may be `disable`, `allow` or `prefer` (plain TCP); others are refused.
    pub external_admin_url: Option<String>,
    /// Limit for each pg_ctl invocation, for connecting to the server and for each
    /// SQL statement the provider sends.
    pub command_timeout: Duration,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            bin_dir: None,
            os_user: "postgres".into(),
            listen_host: "127.0.0.1".into(),
            advertise_host: "127.0.0.1".into(),
            max_connections: 500,
            shared_buffers_mb: 128,
            external_admin_url: None,
            command_timeout: Duration::from_secs(60),
        }
    }
}

/// The service description with Heroku-like plans.
pub fn service() -> Service {
    let plan = |name: &str, desc: &str, conns: u64, storage_mb: u64| Plan {
        name: name.into(),
        description: desc.into(),
        price_cents: crate::BUILTIN_PRICE_CENTS,
        limits: limits(&[
            ("connections", json!(conns)),
            ("storage_mb", json!(storage_mb)),
        ]),
    };
    Service {
        name: "postgresql".into(),
        description: "PostgreSQL database on the platform's PostgreSQL server".into(),
        config_var: "DATABASE".into(),
        plans: vec![
            plan("mini", "Mini: 20 connections, 1 GB", 20, 1024),
            plan("basic", "Basic: 20 connections, 10 GB", 20, 10 * 1024),
            plan(
                "standard-0",
                "Standard 0: 120 connections, 64 GB",
                120,
                64 * 1024,
            ),
        ],
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ServerState {
    port: u16,
    admin_password: String,
    /// Public CONNECT revoked on `postgres` and `template1`.
    #[serde(default)]
    locked_down: bool,
}

/// The platform-managed server.
struct ManagedServer {
    dir: PathBuf,
    data_root: PathBuf,
    bin_dir: Option<PathBuf>,
    cfg: PostgresConfig,
    /// Serializes initdb/start/stop.
    lifecycle: tokio::sync::Mutex<()>,
}

impl ManagedServer {
    fn pgdata(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn initialized(&self) -> bool {
        self.pgdata().join("PG_VERSION").is_file() && self.state_path().is_file()
    }

    fn bin(&self, name: &str) -> Result<PathBuf, AddonError> {
        match &self.bin_dir {
            Some(dir) => process::require_binary(dir, name, PACKAGE),
            None => Err(AddonError::Unavailable {
                package: PACKAGE.into(),
            }),
        }
    }

    fn read_state(&self) -> Result<ServerState, AddonError> {
        let path = self.state_path();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| AddonError::io(format!("reading {}", path.display()), e))?;
        serde_json::from_str(&text)
            .map_err(|e| AddonError::Provider(format!("corrupt {}: {e}", path.display())))
    }

    fn write_state(&self, state: &ServerState) -> Result<(), AddonError> {
        let text = serde_json::to_string_pretty(state)
            .map_err(|e| AddonError::Provider(format!("encoding state: {e}")))?;
        process::write_private(&self.state_path(), &text, None)
    }

    fn conn(&self, state: &ServerState) -> AdminConn {
        AdminConn {
            host: self.cfg.listen_host.clone(),
            port: state.port,
            user: ADMIN_USER.into(),
            password: state.admin_password.clone(),
            dbname: "postgres".into(),
            ssl: tokio_postgres::config::SslMode::Disable,
            advertise_host: self.cfg.advertise_host.clone(),
        }
    }

    /// Pid of a live postmaster for our PGDATA, if any.
    fn running_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.pgdata().join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        (process::pid_alive(pid) && process::cmdline(pid).contains("postgres")).then_some(pid)
    }

    async fn initdb(&self, run_as: Option<RunAs>) -> Result<(), AddonError> {
        let initdb = self.bin("initdb")?;
        self.bin("pg_ctl")?;
        self.bin("postgres")?;
        process::make_dir(&self.dir, 0o700, run_as)?;
        let addons = self.dir.parent().unwrap_or(&self.dir);
        process::allow_traverse(&[&self.data_root, addons])?;
        let pgdata = self.pgdata();
        if pgdata.exists() {
            // A half-finished initdb from an earlier crash.
            std::fs::remove_dir_all(&pgdata)
                .map_err(|e| AddonError::io(format!("removing {}", pgdata.display()), e))?;
        }
        let state = ServerState {
            port: process::free_port(&self.cfg.listen_host)?,
            admin_password: random_hex(24),
            locked_down: false,
        };
        let pwfile = self.dir.join("initdb.pw");
        process::write_private(&pwfile, &state.admin_password, run_as)?;
        let mut cmd = Command::new(&initdb);
        cmd.arg("-D")
            .arg(&pgdata)
            .args([
                "-U",
                ADMIN_USER,
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(&self.dir)
            .env_clear()
            .env("LC_ALL", "C");
        if let Some(r) = run_as {
            r.apply(&mut cmd);
        }
        let out = process::run(cmd, None, self.cfg.command_timeout).await;
        let _ = std::fs::remove_file(&pwfile);
        let out = out?;
        if !out.status.success() {
            return Err(AddonError::Provider(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let conf = pgdata.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .map_err(|e| AddonError::io(format!("reading {}", conf.display()), e))?;
        text.push_str(
            "\n# Hoist settings (rewritten at every start)\ninclude_if_exists = 'hoist.conf'\n",
        );
        std::fs::write(&conf, text)
            .map_err(|e| AddonError::io(format!("writing {}", conf.display()), e))?;
        self.write_state(&state)?;
        info!(dir = %self.dir.display(), port = state.port, "initialized managed PostgreSQL server");
        Ok(())
    }

    fn write_hoist_conf(
        &self,
        state: &ServerState,
        run_as: Option<RunAs>,
    ) -> Result<(), AddonError> {
        let run = self.dir.join("run");
        process::make_dir(&run, 0o700, run_as)?;
        let text = format!(
            "listen_addresses = '{}'\nport = {}\nunix_socket_directories = '{}'\n\
             max_connections = {}\nshared_buffers = {}MB\npassword_encryption = 'scram-sha-256'\n\
             log_line_prefix = '%m [%p] %q%u@%d '\n",
            self.cfg.listen_host,
            state.port,
            run.display(),
            self.cfg.max_connections,
            self.cfg.shared_buffers_mb,
        );
        let path = self.pgdata().join("hoist.conf");
        std::fs::write(&path, text)
            .map_err(|e| AddonError::io(format!("writing {}", path.display()), e))?;
        if let Some(r) = run_as {
            r.chown(&path)?;
        }
        Ok(())
    }

    /// Re-adopts the running server or starts it (initdb first if needed).
    async fn ensure_running(&self) -> Result<AdminConn, AddonError> {
        let _guard = self.lifecycle.lock().await;
        let run_as = RunAs::resolve(&self.cfg.os_user)?;
        if !self.initialized() {
            self.initdb(run_as).await?;
        }
        let mut state = self.read_state()?;
        if let Some(pid) = self.running_pid() {
            tracing::debug!(pid, "adopted running PostgreSQL server");
        } else {
            self.start(&state, run_as).await?;
        }
        let conn = self.conn(&state);
        if !state.locked_down {
            // Only each add-on's own role may connect to its database; the
            // maintenance databases are closed to PUBLIC as well.
            conn.connect(self.cfg.command_timeout)
                .await?
                .execute(
                    "REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;\n\
                     REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;",
                )
                .await?;
            state.locked_down = true;
            self.write_state(&state)?;
        }
        Ok(conn)
    }

    async fn start(&self, state: &ServerState, run_as: Option<RunAs>) -> Result<(), AddonError> {
        let pg_ctl = self.bin("pg_ctl")?;
        self.bin("postgres")?;
        self.write_hoist_conf(state, run_as)?;
        let log = self.dir.join("server.log");
        // After a SIGKILL of the postmaster, orphaned backends hold the shared memory
        // for a moment; pg_ctl then fails, so retry a few times.
        let mut last_err = String::new();
        for attempt in 0..5 {
            let mut cmd = Command::new(&pg_ctl);
            cmd.arg("start")
                .arg("-D")
                .arg(self.pgdata())
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-s"])
                .current_dir(&self.dir)
                .env_clear()
                .env("LC_ALL", "C")
                // Own process group, and pg_ctl setsid()s the postmaster: a signal to
                // the daemon's group never reaches the server.
                .process_group(0);
            if let Some(r) = run_as {
                r.apply(&mut cmd);
            }
            let out =
                process::run(cmd, None, self.cfg.command_timeout + Duration::from_secs(5)).await?;
            if out.status.success() {
                info!(port = state.port, pid = ?self.running_pid(), "started managed PostgreSQL server");
                return Ok(());
            }
            last_err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            warn!(attempt, error = %last_err, "starting PostgreSQL failed");
            tokio::time::sleep(Duration::from_millis(500 * (attempt + 1))).await;
        }
        Err(AddonError::Provider(format!(
            "could not start PostgreSQL (see {}): {last_err}",
            log.display()
        )))
    }

    async fn stop(&self) -> Result<(), AddonError> {
        let _guard = self.lifecycle.lock().await;
        if self.running_pid().is_none() {
            return Ok(());
        }
        let pg_ctl = self.bin("pg_ctl")?;
        let mut cmd = Command::new(&pg_ctl);
        cmd.arg("stop")
            .arg("-D")
            .arg(self.pgdata())
            .args(["-m", "fast", "-w", "-s"])
            .current_dir(&self.dir)
            .env_clear();
        if let Some(r) = RunAs::resolve(&self.cfg.os_user)? {
            r.apply(&mut cmd);
        }
        let out = process::run(cmd, None, self.cfg.command_timeout).await?;
        if !out.status.success() {
            return Err(AddonError::Provider(format!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }
}

/// A validated provider id: `d` + 12 hex; the role is `u` + the same hex.
fn names_for(provider_id: &str) -> Result<(String, String), AddonError> {
    let hex = provider_id
        .strip_prefix('d')
        .filter(|h| {
            h.len() == 12
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .ok_or_else(|| {
            AddonError::Invalid(format!("not a PostgreSQL add-on id: {provider_id:?}"))
        })?;
    Ok((format!("d{hex}"), format!("u{hex}")))
}

/// One database over its plan's storage quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaReport {
    pub provider_id: String,
    pub addon_name: String,
    pub plan: String,
    pub size_bytes: u64,
    pub quota_bytes: u64,
}

pub struct PostgresProvider {
    service: Service,
    cfg: PostgresConfig,
    /// `None` when an external server is configured.
    managed: Option<ManagedServer>,
    external: Option<AdminConn>,
}

impl PostgresProvider {
    pub fn new(data_dir: &Path, cfg: PostgresConfig) -> Result<Self, AddonError> {
        let bin_dir = cfg.bin_dir.clone().or_else(detect_bin_dir);
        let external = cfg
            .external_admin_url
            .as_deref()
            .map(AdminConn::parse)
            .transpose()?;
        let managed = external.is_none().then(|| ManagedServer {
            dir: data_dir.join("addons").join("postgresql"),
            data_root: data_dir.to_path_buf(),
            bin_dir,
            cfg: cfg.clone(),
            lifecycle: tokio::sync::Mutex::new(()),
        });
        Ok(PostgresProvider {
            service: service(),
            cfg,
            managed,
            external,
        })
    }

    pub fn is_managed(&self) -> bool {
        self.managed.is_some()
    }

    /// Pid of the managed postmaster if it is running.
    pub fn server_pid(&self) -> Option<i32> {
        self.managed.as_ref().and_then(|m| m.running_pid())
    }

    /// True once the managed server has been initialized (first add-on).
    pub fn server_initialized(&self) -> bool {
        self.managed.as_ref().is_some_and(|m| m.initialized())
    }

    /// Re-adopts or starts the managed server (initdb on first use). External: checks
    /// the server answers.
    pub async fn ensure_running(&self) -> Result<(), AddonError> {
        self.admin().await.map(|_| ())
    }

    /// Stops the managed server (`pg_ctl stop -m fast`). Add-on data stays.
    pub async fn stop_server(&self) -> Result<(), AddonError> {
        match &self.managed {
            Some(m) => m.stop().await,
            None => Ok(()),
        }
    }

    async fn admin(&self) -> Result<AdminConn, AddonError> {
        match (&self.managed, &self.external) {
            (Some(m), _) => m.ensure_running().await,
            (None, Some(conn)) => Ok(conn.clone()),
            (None, None) => Err(AddonError::Provider(
                "PostgreSQL provider has no server".into(),
            )),
        }
    }

    async fn session(&self, conn: &AdminConn) -> Result<AdminSession, AddonError> {
        conn.connect(self.cfg.command_timeout).await
    }

    fn plan_limits(&self, plan: &str) -> Result<(u64, u64), AddonError> {
        self.service.require_plan(plan)?;
        let conns = self.service.limit_u64(plan, "connections").unwrap_or(20);
        let storage = self.service.limit_u64(plan, "storage_mb").unwrap_or(1024);
        Ok((conns, storage))
    }

    /// Sizes of all Hoist databases; logs a warning for each one over its quota and
    /// returns those.
    pub async fn check_quotas(&self) -> Result<Vec<QuotaReport>, AddonError> {
        if self.managed.as_ref().is_some_and(|m| !m.initialized()) {
            return Ok(Vec::new());
        }
        let conn = self.admin().await?;
        let rows = self
            .session(&conn)
            .await?
            .query(
                "SELECT datname::text, pg_database_size(oid), \
                   shobj_description(oid, 'pg_database') \
                 FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE $1",
                &[&format!("{COMMENT_PREFIX}%")],
            )
            .await?;
        let mut over = Vec::new();
        for row in &rows {
            let db: String = column(row, 0)?;
            let size = u64::try_from(column::<i64>(row, 1)?).unwrap_or(0);
            let (plan, addon_name) = parse_comment(&column::<String>(row, 2)?);
            let Some(quota_mb) = self.service.limit_u64(&plan, "storage_mb") else {
                continue;
            };
            let quota_bytes = quota_mb * 1024 * 1024;
            if size > quota_bytes {
                warn!(addon = %addon_name, database = %db, plan = %plan, size_bytes = size,
                      quota_bytes, "PostgreSQL add-on is over its storage quota");
                over.push(QuotaReport {
                    provider_id: db,
                    addon_name,
                    plan,
                    size_bytes: size,
                    quota_bytes,
                });
            }
        }
        Ok(over)
    }
}

/// `hoist:<plan>:<addon name>` -> (plan, addon name).
fn parse_comment(comment: &str) -> (String, String) {
    let rest = comment.strip_prefix(COMMENT_PREFIX).unwrap_or("");
    let mut it = rest.splitn(2, ':');
    (
        it.next().unwrap_or("").to_string(),
        it.next().unwrap_or("").to_string(),
    )
}

/// Only `[a-z0-9-]` survives into SQL literals we build.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
        .take(100)
        .collect()
}

/// Newest `/usr/lib/postgresql/<ver>/bin` that has a `postgres` binary.
fn detect_bin_dir() -> Option<PathBuf> {
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten() {
        let Some(ver) = entry
            .file_name()
            .to_str()
            .and_then(|v| v.parse::<u32>().ok())
        else {
            continue;
        };
        let bin = entry.path().join("bin");
        if bin.join("postgres").is_file() && best.as_ref().is_none_or(|(b, _)| ver > *b) {
            best = Some((ver, bin));
        }
    }
    best.map(|(_, p)| p)
}

#[async_trait]
impl Provider for PostgresProvider {
    fn service(&self) -> &Service {
        &self.service
    }

    async fn provision(
        &self,
        addon_name: &str,
        plan: &str,
        _options: &BTreeMap<String, String>,
    ) -> Result<Provisioned, AddonError> {
        let (conns, _) = self.plan_limits(plan)?;
        let conn = self.admin().await?;
        let provider_id = format!("d{}", random_hex(6));
        let (db, role) = names_for(&provider_id)?;
        let password = random_hex(24);
        let verifier = scram::verifier(&password, &random_bytes::<16>());
        let comment = format!(
            "{COMMENT_PREFIX}{}:{}",
            sanitize(plan),
            sanitize(addon_name)
        );
        let session = self.session(&conn).await?;
        if let Err(e) = create_database(&session, &db, &role, &verifier, conns, &comment).await {
            // Leave no half-made database or role behind; on a broken connection
            // (timeout) the cleanup needs a fresh one.
            let cleanup = async {
                let fresh;
                let s = if session.is_open() {
                    &session
                } else {
                    fresh = self.session(&conn).await?;
                    &fresh
                };
                drop_database(s, &db, &role).await
            };
            if let Err(ce) = cleanup.await {
                warn!(database = %db, error = %ce, "cleanup after failed provisioning failed");
            }
            return Err(e);
        }
        info!(addon = %addon_name, database = %db, plan, "provisioned PostgreSQL database");
        let url = format!(
            "postgres://{role}:{password}@{}:{}/{db}",
            url_host(&conn.advertise_host),
            conn.port
        );
        Ok(Provisioned {
            provider_id,
            config: BTreeMap::from([("URL".to_string(), url)]),
            message: None,
            state: ProvisionState::Provisioned,
        })
    }

    async fn change_plan(
        &self,
        provider_id: &str,
        plan: &str,
    ) -> Result<Option<BTreeMap<String, String>>, AddonError> {
        let (conns, _) = self.plan_limits(plan)?;
        let (db, role) = names_for(provider_id)?;
        let conn = self.admin().await?;
        let session = self.session(&conn).await?;
        let rows = session
            .query(
                "SELECT coalesce(shobj_description(oid, 'pg_database'), '') \
                 FROM pg_database WHERE datname = $1",
                &[&db],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Err(AddonError::NotFound(provider_id.into()));
        };
        let (_, addon_name) = parse_comment(&column::<String>(row, 0)?);
        let comment = format!(
            "{COMMENT_PREFIX}{}:{}",
            sanitize(plan),
            sanitize(&addon_name)
        );
        // One simple query: the three statements commit together or not at all.
        session
            .execute(&format!(
                "ALTER ROLE \"{role}\" CONNECTION LIMIT {conns};\n\
                 ALTER DATABASE \"{db}\" CONNECTION LIMIT {conns};\n\
                 COMMENT ON DATABASE \"{db}\" IS {};",
                literal(&comment)
            ))
            .await?;
        Ok(None)
    }

    async fn deprovision(&self, provider_id: &str) -> Result<(), AddonError> {
        let (db, role) = names_for(provider_id)?;
        let conn = self.admin().await?;
        drop_database(&self.session(&conn).await?, &db, &role).await?;
        info!(database = %db, "deprovisioned PostgreSQL database");
        Ok(())
    }

    async fn info(&self, provider_id: &str) -> Result<serde_json::Value, AddonError> {
        let (db, _) = names_for(provider_id)?;
        let conn = self.admin().await?;
        let rows = self
            .session(&conn)
            .await?
            .query(
                "SELECT pg_database_size(d.oid), pg_size_pretty(pg_database_size(d.oid)), \
                   (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = d.datname), \
                   d.datconnlimit, current_setting('server_version'), \
                   coalesce(shobj_description(d.oid, 'pg_database'), '') \
                 FROM pg_database d WHERE d.datname = $1",
                &[&db],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Err(AddonError::NotFound(provider_id.into()));
        };
        let size = u64::try_from(column::<i64>(row, 0)?).unwrap_or(0);
        let (plan, addon_name) = parse_comment(&column::<String>(row, 5)?);
        let quota_mb = self.service.limit_u64(&plan, "storage_mb");
        Ok(json!({
            "service": "postgresql",
            "plan": plan,
            "addon_name": addon_name,
            "database": db,
            "managed_server": self.is_managed(),
            "host": conn.advertise_host,
            "port": conn.port,
            "version": column::<String>(row, 4)?,
            "data_size_bytes": size,
            "data_size": column::<String>(row, 1)?,
            "storage_quota_mb": quota_mb,
            "over_quota": quota_mb.is_some_and(|q| size > q * 1024 * 1024),
            "connections": u64::try_from(column::<i64>(row, 2)?).unwrap_or(0),
            "connection_limit": i64::from(column::<i32>(row, 3)?),
        }))
    }
}

/// Creates the add-on's role and database. `db` and `role` come from [`names_for`]
/// (validated, so safe to quote as identifiers); `verifier` and `comment` are
/// generated or sanitized values, quoted as literals.
async fn create_database(
    session: &AdminSession,
    db: &str,
    role: &str,
    verifier: &str,
    conns: u64,
    comment: &str,
) -> Result<(), AddonError> {
    session
        .execute(&format!(
            "CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION \
               CONNECTION LIMIT {conns} PASSWORD {}",
            literal(verifier)
        ))
        .await?;
    // CREATE DATABASE cannot run in a transaction block: a message of its own.
    session
        .execute(&format!(
            "CREATE DATABASE \"{db}\" OWNER \"{role}\" CONNECTION LIMIT {conns}"
        ))
        .await?;
    session
        .execute(&format!(
            "REVOKE ALL ON DATABASE \"{db}\" FROM PUBLIC;\n\
             COMMENT ON DATABASE \"{db}\" IS {};",
            literal(comment)
        ))
        .await
}

/// Drops an add-on's database and role; whatever is already gone is skipped.
async fn drop_database(session: &AdminSession, db: &str, role: &str) -> Result<(), AddonError> {
    // The login goes first, so that a failure further on leaves no credential that
    // works.
    session
        .execute(&format!(
            "DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN \
               ALTER ROLE \"{role}\" NOLOGIN; END IF; END$$"
        ))
        .await?;
    // WITH (FORCE) terminates the app's open connections (PostgreSQL 13+). DROP
    // DATABASE cannot run in a transaction block: a message of its own.
    session
        .execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
        .await?;
    session
        .execute(&format!("DROP ROLE IF EXISTS \"{role}\""))
        .await
}

/// IPv6 literals need brackets in URLs.
pub(crate) fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_are_validated() {
        assert_eq!(
            names_for("d0123456789ab").unwrap(),
            ("d0123456789ab".to_string(), "u0123456789ab".to_string())
        );
        for bad in [
            "",
            "d",
            "x0123456789ab",
            "d0123456789aB",
            "d0123456789ab\"",
            "d01234567",
        ] {
            assert!(names_for(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comment_round_trip() {
        assert_eq!(
            parse_comment("hoist:mini:postgresql-curved-12345"),
            ("mini".to_string(), "postgresql-curved-12345".to_string())
        );
        assert_eq!(sanitize("a'b;--c"), "ab--c");
    }
}
