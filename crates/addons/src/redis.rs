//! Built-in Redis: one platform-managed `redis-server` per add-on.
//!
//! Layout, `<data_dir>/addons/redis/<id>/` (owned by the `redis` OS user, 0700):
//! `redis.conf` (0600, holds the passwords), `instance.json` (port, plan, passwords;
//! 0600), `redis.pid`, `redis.log`, and the RDB/AOF files.
//!
//! Access: the app gets the `default` user (password = `URL`'s password), with every
//! command except CONFIG, DEBUG, MODULE, SHUTDOWN, ACL and replication, so an app
//! cannot lift its own `maxmemory` or write files elsewhere. The platform uses a
//! separate `hoist` user for CONFIG SET on plan changes and INFO.
//!
//! `daemonize yes` makes redis fork into its own session, so it outlives the daemon;
//! [`RedisProvider::ensure_all_running`] re-adopts instances through `redis.pid`
//! (pid alive and its title names our port) and starts dead ones again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tracing::{info, warn};

use crate::names::random_hex;
use crate::postgres::url_host;
use crate::process::{self, RunAs};
use crate::{limits, AddonError, Plan, Provider, ProvisionState, Provisioned, Service};

const PACKAGE: &str = "redis-server";
const ADMIN_USER: &str = "hoist";

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// Path of `redis-server`.
    pub server_bin: PathBuf,
    /// OS user the servers run as when the daemon is root.
    pub os_user: String,
    pub listen_host: String,
    /// Host written into `REDIS_URL`.
    pub advertise_host: String,
    /// How long a starting server may take to answer PING.
    pub start_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            server_bin: PathBuf::from("/usr/bin/redis-server"),
            os_user: "redis".into(),
            listen_host: "127.0.0.1".into(),
            advertise_host: "127.0.0.1".into(),
            start_timeout: Duration::from_secs(15),
        }
    }
}

pub fn service() -> Service {
    let plan = |name: &str, desc: &str, mb: u64, conns: u64, persistence: &str| Plan {
        name: name.into(),
        description: desc.into(),
        price_cents: crate::BUILTIN_PRICE_CENTS,
        limits: limits(&[
            ("maxmemory_mb", json!(mb)),
            ("connections", json!(conns)),
            ("persistence", json!(persistence)),
        ]),
    };
    Service {
        name: "redis".into(),
        description: "Redis server managed by the platform, one per add-on".into(),
        config_var: "REDIS".into(),
        plans: vec![
            plan(
                "mini",
                "Mini: 25 MB, 20 connections, no persistence",
                25,
                20,
                "none",
            ),
            plan(
                "premium-0",
                "Premium 0: 50 MB, 40 connections, AOF persistence",
                50,
                40,
                "appendonly",
            ),
            plan(
                "premium-1",
                "Premium 1: 100 MB, 80 connections, AOF persistence",
                100,
                80,
                "appendonly",
            ),
            plan(
                "premium-2",
                "Premium 2: 250 MB, 200 connections, AOF persistence",
                250,
                200,
                "appendonly",
            ),
        ],
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Instance {
    id: String,
    addon_name: String,
    plan: String,
    port: u16,
    password: String,
    admin_password: String,
}

struct PlanSettings {
    maxmemory_mb: u64,
    maxclients: u64,
    appendonly: bool,
}

pub struct RedisProvider {
    service: Service,
    cfg: RedisConfig,
    root: PathBuf,
    data_root: PathBuf,
    /// Serializes start/stop/config rewrites (each takes well under a second).
    lifecycle: tokio::sync::Mutex<()>,
}

impl RedisProvider {
    pub fn new(data_dir: &Path, cfg: RedisConfig) -> Self {
        RedisProvider {
            service: service(),
            cfg,
            root: data_dir.join("addons").join("redis"),
            data_root: data_dir.to_path_buf(),
            lifecycle: tokio::sync::Mutex::new(()),
        }
    }

    fn settings(&self, plan: &str) -> Result<PlanSettings, AddonError> {
        let p = self.service.require_plan(plan)?;
        Ok(PlanSettings {
            maxmemory_mb: p
                .limits
                .get("maxmemory_mb")
                .and_then(|v| v.as_u64())
                .unwrap_or(25),
            maxclients: p
                .limits
                .get("connections")
                .and_then(|v| v.as_u64())
                .unwrap_or(20),
            appendonly: p.limits.get("persistence").and_then(|v| v.as_str()) == Some("appendonly"),
        })
    }

    fn dir(&self, id: &str) -> Result<PathBuf, AddonError> {
        let ok = id.len() == 13
            && id.starts_with('r')
            && id[1..]
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        if !ok {
            return Err(AddonError::Invalid(format!(
                "not a Redis add-on id: {id:?}"
            )));
        }
        Ok(self.root.join(id))
    }

    fn load(&self, id: &str) -> Result<Instance, AddonError> {
        let path = self.dir(id)?.join("instance.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AddonError::NotFound(id.into()))
            }
            Err(e) => return Err(AddonError::io(format!("reading {}", path.display()), e)),
        };
        serde_json::from_str(&text)
            .map_err(|e| AddonError::Provider(format!("corrupt {}: {e}", path.display())))
    }

    fn save(&self, inst: &Instance) -> Result<(), AddonError> {
        let text = serde_json::to_string_pretty(inst)
            .map_err(|e| AddonError::Provider(format!("encoding instance: {e}")))?;
        process::write_private(&self.dir(&inst.id)?.join("instance.json"), &text, None)
    }

    fn write_conf(&self, inst: &Instance, run_as: Option<RunAs>) -> Result<(), AddonError> {
        let dir = self.dir(&inst.id)?;
        let s = self.settings(&inst.plan)?;
        let persistence = if s.appendonly {
            "appendonly yes\nappendfsync everysec\nsave 3600 1 300 100 60 10000\n"
        } else {
            "appendonly no\nsave \"\"\n"
        };
        let text = format!(
            "# Written by Hoist; regenerated at every start.\n\
             bind {host}\nport {port}\nprotected-mode yes\ndaemonize yes\n\
             pidfile {dir}/redis.pid\nlogfile {dir}/redis.log\ndir {dir}\n\
             maxmemory {mem}mb\nmaxmemory-policy noeviction\nmaxclients {clients}\n{persistence}\
             user default on >{pw} ~* &* +@all -config -debug -module -shutdown -acl \
             -replicaof -slaveof -failover -sync -psync\n\
             user {ADMIN_USER} on >{admin_pw} ~* &* +@all\n",
            host = self.cfg.listen_host,
            port = inst.port,
            dir = dir.display(),
            mem = s.maxmemory_mb,
            clients = s.maxclients,
            pw = inst.password,
            admin_pw = inst.admin_password,
        );
        process::write_private(&dir.join("redis.conf"), &text, run_as)
    }

    fn running_pid(&self, inst: &Instance) -> Option<i32> {
        let dir = self.dir(&inst.id).ok()?;
        let pid: i32 = std::fs::read_to_string(dir.join("redis.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let title = process::cmdline(pid);
        (process::pid_alive(pid)
            && title.contains("redis-server")
            && title.contains(&format!(":{}", inst.port)))
        .then_some(pid)
    }

    /// Pid of an add-on's server if it is running.
    pub fn server_pid(&self, provider_id: &str) -> Option<i32> {
        self.running_pid(&self.load(provider_id).ok()?)
    }

    /// Ids of every instance with a directory (provisioned and not deprovisioned).
    pub fn instance_ids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| self.dir(id).is_ok() && self.root.join(id).join("instance.json").is_file())
            .collect();
        ids.sort();
        ids
    }

    async fn start(&self, inst: &Instance) -> Result<i32, AddonError> {
        if !self.cfg.server_bin.is_file() {
            warn!(binary = %self.cfg.server_bin.display(), "redis-server missing");
            return Err(AddonError::Unavailable {
                package: PACKAGE.into(),
            });
        }
        let run_as = RunAs::resolve(&self.cfg.os_user)?;
        let dir = self.dir(&inst.id)?;
        self.write_conf(inst, run_as)?;
        let _ = std::fs::remove_file(dir.join("redis.pid"));
        let mut cmd = Command::new(&self.cfg.server_bin);
        cmd.arg(dir.join("redis.conf"))
            .current_dir(&dir)
            .env_clear()
            .process_group(0);
        if let Some(r) = run_as {
            r.apply(&mut cmd);
        }
        // With daemonize the launcher exits right after forking the server.
        let out = process::run(cmd, None, self.cfg.start_timeout).await?;
        if !out.status.success() {
            return Err(AddonError::Provider(format!(
                "redis-server failed to start: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            )));
        }
        let deadline = tokio::time::Instant::now() + self.cfg.start_timeout;
        loop {
            if let Some(pid) = self.running_pid(inst) {
                if self.admin_command(inst, &["PING"]).await.is_ok() {
                    return Ok(pid);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(3).collect();
                return Err(AddonError::Provider(format!(
                    "redis-server on port {} did not come up: {}",
                    inst.port,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(&self, inst: &Instance) {
        if let Some(pid) = self.running_pid(inst) {
            process::signal(pid, nix::sys::signal::Signal::SIGTERM);
            if !process::wait_gone(pid, Duration::from_secs(10)).await {
                warn!(addon = %inst.addon_name, pid, "redis-server ignored SIGTERM; killing");
                process::signal(pid, nix::sys::signal::Signal::SIGKILL);
                process::wait_gone(pid, Duration::from_secs(5)).await;
            }
        }
    }

    /// Re-adopts one instance or starts it again. Returns its pid.
    pub async fn ensure_running(&self, provider_id: &str) -> Result<i32, AddonError> {
        let _guard = self.lifecycle.lock().await;
        // Loaded under the lock: a deprovision that held it may have just removed it,
        // and must not see its server started again.
        let inst = self.load(provider_id)?;
        match self.running_pid(&inst) {
            Some(pid) => Ok(pid),
            None => {
                let pid = self.start(&inst).await?;
                info!(addon = %inst.addon_name, port = inst.port, pid, "started Redis server");
                Ok(pid)
            }
        }
    }

    /// [`ensure_running`](Self::ensure_running) for every instance; failures are logged
    /// and returned per id.
    pub async fn ensure_all_running(&self) -> Vec<(String, Result<i32, AddonError>)> {
        let mut out = Vec::new();
        for id in self.instance_ids() {
            let res = self.ensure_running(&id).await;
            if let Err(e) = &res {
                warn!(redis = %id, error = %e, "could not start Redis add-on server");
            }
            out.push((id, res));
        }
        out
    }

    /// Stops every instance (data stays; the next ensure starts them again).
    pub async fn stop_all(&self) {
        let _guard = self.lifecycle.lock().await;
        for id in self.instance_ids() {
            if let Ok(inst) = self.load(&id) {
                self.stop(&inst).await;
            }
        }
    }

    async fn admin_command(&self, inst: &Instance, args: &[&str]) -> Result<Reply, AddonError> {
        let addr = (self.cfg.listen_host.as_str(), inst.port);
        let fut = async {
            let stream = TcpStream::connect(addr).await.map_err(|e| {
                AddonError::io(format!("connecting to Redis on port {}", inst.port), e)
            })?;
            let mut conn = RespConn::new(stream);
            if let Reply::Error(e) = conn
                .call(&["AUTH", ADMIN_USER, &inst.admin_password])
                .await?
            {
                return Err(AddonError::Provider(format!("Redis AUTH: {e}")));
            }
            match conn.call(args).await? {
                Reply::Error(e) => Err(AddonError::Provider(format!("Redis {}: {e}", args[0]))),
                r => Ok(r),
            }
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .map_err(|_| AddonError::Timeout(Duration::from_secs(10)))?
    }

    /// `redis://default:<pass>@host:port`. The explicit `default` user (rather than
    /// Heroku's `redis://:<pass>@`) because redis-cli 7 sends an empty user name for
    /// the latter and fails AUTH; client libraries accept both.
    fn url(&self, inst: &Instance) -> String {
        format!(
            "redis://default:{}@{}:{}",
            inst.password,
            url_host(&self.cfg.advertise_host),
            inst.port
        )
    }
}

#[async_trait]
impl Provider for RedisProvider {
    fn service(&self) -> &Service {
        &self.service
    }

    async fn provision(
        &self,
        addon_name: &str,
        plan: &str,
        _options: &BTreeMap<String, String>,
    ) -> Result<Provisioned, AddonError> {
        self.settings(plan)?;
        if !self.cfg.server_bin.is_file() {
            return Err(AddonError::Unavailable {
                package: PACKAGE.into(),
            });
        }
        let run_as = RunAs::resolve(&self.cfg.os_user)?;
        process::make_dir(&self.root, 0o711, None)?;
        let addons = self.root.parent().unwrap_or(&self.root);
        process::allow_traverse(&[&self.data_root, addons])?;
        let id = format!("r{}", random_hex(6));
        let dir = self.dir(&id)?;
        process::make_dir(&dir, 0o700, run_as)?;
        let mut inst = Instance {
            id: id.clone(),
            addon_name: addon_name.to_string(),
            plan: plan.to_string(),
            port: 0,
            password: random_hex(24),
            admin_password: random_hex(24),
        };
        // A port can be taken between choosing and binding it: retry with another.
        let mut last = None;
        for _ in 0..3 {
            inst.port = process::free_port(&self.cfg.listen_host)?;
            self.save(&inst)?;
            let _guard = self.lifecycle.lock().await;
            match self.start(&inst).await {
                Ok(pid) => {
                    info!(addon = %addon_name, redis = %id, port = inst.port, pid, plan, "provisioned Redis server");
                    return Ok(Provisioned {
                        provider_id: id,
                        config: BTreeMap::from([("URL".to_string(), self.url(&inst))]),
                        message: None,
                        state: ProvisionState::Provisioned,
                    });
                }
                Err(e) => {
                    self.stop(&inst).await;
                    last = Some(e);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        Err(last.unwrap_or_else(|| AddonError::Provider("redis-server did not start".into())))
    }

    async fn change_plan(
        &self,
        provider_id: &str,
        plan: &str,
    ) -> Result<Option<BTreeMap<String, String>>, AddonError> {
        let s = self.settings(plan)?;
        let mut inst = self.load(provider_id)?;
        self.ensure_running(provider_id).await?;
        let _guard = self.lifecycle.lock().await;
        let mem = format!("{}mb", s.maxmemory_mb);
        let clients = s.maxclients.to_string();
        let aof = if s.appendonly { "yes" } else { "no" };
        self.admin_command(&inst, &["CONFIG", "SET", "maxmemory", &mem])
            .await?;
        self.admin_command(&inst, &["CONFIG", "SET", "maxclients", &clients])
            .await?;
        self.admin_command(&inst, &["CONFIG", "SET", "appendonly", aof])
            .await?;
        inst.plan = plan.to_string();
        self.save(&inst)?;
        self.write_conf(&inst, RunAs::resolve(&self.cfg.os_user)?)?;
        Ok(None)
    }

    async fn deprovision(&self, provider_id: &str) -> Result<(), AddonError> {
        let dir = self.dir(provider_id)?;
        let _guard = self.lifecycle.lock().await;
        match self.load(provider_id) {
            Ok(inst) => self.stop(&inst).await,
            Err(AddonError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        }
        std::fs::remove_dir_all(&dir)
            .map_err(|e| AddonError::io(format!("removing {}", dir.display()), e))?;
        info!(redis = %provider_id, "deprovisioned Redis server");
        Ok(())
    }

    async fn info(&self, provider_id: &str) -> Result<serde_json::Value, AddonError> {
        let inst = self.load(provider_id)?;
        let pid = self.running_pid(&inst);
        let mut fields = BTreeMap::new();
        if pid.is_some() {
            if let Reply::Bulk(Some(text)) =
                self.admin_command(&inst, &["INFO", "everything"]).await?
            {
                for line in String::from_utf8_lossy(&text).lines() {
                    if let Some((k, v)) = line.split_once(':') {
                        fields.insert(k.to_string(), v.trim().to_string());
                    }
                }
            }
        }
        let field = |k: &str| fields.get(k).cloned();
        let num = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
        Ok(json!({
            "service": "redis",
            "plan": inst.plan,
            "addon_name": inst.addon_name,
            "status": if pid.is_some() { "available" } else { "down" },
            "host": self.cfg.advertise_host,
            "port": inst.port,
            "version": field("redis_version"),
            "used_memory_bytes": num("used_memory"),
            "used_memory": field("used_memory_human"),
            "maxmemory_bytes": num("maxmemory"),
            "maxmemory_policy": field("maxmemory_policy"),
            "connected_clients": num("connected_clients"),
            "persistence": if field("aof_enabled").as_deref() == Some("1") { "appendonly" } else { "none" },
        }))
    }
}

/// The subset of RESP replies the platform needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Status(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// A minimal RESP2 client for the platform's own admin calls (avoids redis-cli,
/// which would put the password on a command line).
struct RespConn {
    stream: BufReader<TcpStream>,
}

impl RespConn {
    fn new(stream: TcpStream) -> Self {
        RespConn {
            stream: BufReader::new(stream),
        }
    }

    async fn call(&mut self, args: &[&str]) -> Result<Reply, AddonError> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        let io = |e| AddonError::io("talking to Redis", e);
        self.stream.get_mut().write_all(&buf).await.map_err(io)?;
        self.read().await
    }

    async fn read_line(&mut self) -> Result<String, AddonError> {
        let mut line = String::new();
        let n = self
            .stream
            .read_line(&mut line)
            .await
            .map_err(|e| AddonError::io("reading from Redis", e))?;
        if n == 0 {
            return Err(AddonError::Provider("Redis closed the connection".into()));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }

    async fn read(&mut self) -> Result<Reply, AddonError> {
        let mut pending: Vec<(Vec<Reply>, usize)> = Vec::new();
        loop {
            let line = self.read_line().await?;
            let (kind, rest) = line.split_at(line.len().min(1));
            let bad = || AddonError::Provider(format!("unexpected Redis reply {kind:?}"));
            let reply = match kind {
                "+" => Reply::Status(rest.into()),
                "-" => Reply::Error(rest.into()),
                ":" => Reply::Integer(rest.parse().map_err(|_| bad())?),
                "$" => {
                    let len: i64 = rest.parse().map_err(|_| bad())?;
                    if len < 0 {
                        Reply::Bulk(None)
                    } else {
                        let mut data = vec![0u8; len as usize + 2];
                        self.stream
                            .read_exact(&mut data)
                            .await
                            .map_err(|e| AddonError::io("reading from Redis", e))?;
                        data.truncate(len as usize);
                        Reply::Bulk(Some(data))
                    }
                }
                "*" => {
                    let len: i64 = rest.parse().map_err(|_| bad())?;
                    if len <= 0 {
                        Reply::Array((len == 0).then(Vec::new))
                    } else {
                        pending.push((Vec::new(), len as usize));
                        continue;
                    }
                }
                _ => return Err(bad()),
            };
            // Fold the finished reply into enclosing arrays.
            let mut reply = reply;
            loop {
                match pending.last_mut() {
                    None => return Ok(reply),
                    Some((items, want)) => {
                        items.push(reply);
                        if items.len() < *want {
                            break;
                        }
                        let (items, _) = pending.pop().unwrap_or_default();
                        reply = Reply::Array(Some(items));
                    }
                }
            }
        }
    }
}
