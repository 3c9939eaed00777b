//! The reconcile loop. One task owns all dyno bookkeeping; everything else talks to it
//! through [`DynoManager`] (a channel), so there is no lock around dyno state.

use crate::ports::PortPool;
use chrono::{DateTime, Utc};
use hoist_logs::{LineSplitter, LogHub};
use hoist_router::{AppRoute, Backend, RouteStatus, RoutingTable, Table};
use hoist_runtime::{DynoEvent, DynoSpec, OutputStream, Runtime};
use hoist_store::{Dyno, Store};
use hoist_types::{DynoSize, LogLine};
use rand::Rng;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct ManagerConfig {
    pub data_dir: PathBuf,
    /// Web dynos must bind `$PORT` within this time (Heroku: 60 s, R10).
    pub boot_timeout: Duration,
    /// SIGTERM -> SIGKILL grace (Heroku: 30 s, R12).
    pub stop_grace: Duration,
    /// Eco apps sleep after this long without a request.
    pub idle_after: Duration,
    /// Daily cycling: restart every dyno after this (plus up to 216 min); `None` = off.
    pub cycle_after: Option<Duration>,
    pub port_range: (u16, u16),
    pub max_line_bytes: usize,
}

impl ManagerConfig {
    pub fn new(data_dir: PathBuf) -> ManagerConfig {
        ManagerConfig {
            data_dir,
            boot_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(30),
            idle_after: Duration::from_secs(30 * 60),
            cycle_after: Some(Duration::from_secs(24 * 3600)),
            port_range: (20000, 59999),
            max_line_bytes: 10_000,
        }
    }
}

/// Output sink for a one-off dyno (e.g. the release phase streaming to the pusher).
pub type OutputSink = Arc<dyn Fn(&str) + Send + Sync>;

pub struct OneOffRequest {
    pub app_id: String,
    pub command: String,
    pub env: BTreeMap<String, String>,
    pub size: Option<DynoSize>,
    pub attach: bool,
    pub tty: bool,
    /// `run` for `hoist run`, `release` for the release phase.
    pub process_type: String,
    /// Release to run on; `None` = the current one.
    pub release_version: Option<i64>,
    pub output: Option<OutputSink>,
    pub time_to_live: Option<Duration>,
}

pub struct OneOffStarted {
    pub id: String,
    pub name: String,
    pub size: DynoSize,
    pub exit: oneshot::Receiver<i32>,
}

enum Command {
    AppChanged(String),
    /// Replies once the routing table has the app.
    AppCreated(String, oneshot::Sender<()>),
    /// Replies once the app's dynos are gone, containers and files included.
    AppDestroyed(String, oneshot::Sender<()>),
    /// The daemon stops: removals still waiting (e.g. an attached one-off's) are done
    /// now; running dynos stay.
    FinishRemovals(oneshot::Sender<()>),
    HangUp(String),
    EndAttached(oneshot::Sender<()>),
    Restart {
        app_id: String,
        target: Option<String>,
    },
    Stop {
        app_id: String,
        target: String,
    },
    Wake(String),
    RunOneOff(
        Box<OneOffRequest>,
        oneshot::Sender<Result<OneOffStarted, String>>,
    ),
}

/// Handle to the reconcile loop.
#[derive(Clone)]
pub struct DynoManager {
    tx: mpsc::UnboundedSender<Command>,
}

impl DynoManager {
    /// Adopts the dynos the runtime still runs (after a daemon restart) and starts the
    /// reconcile loop.
    pub async fn start(
        cfg: ManagerConfig,
        store: Arc<Store>,
        runtime: Arc<dyn Runtime>,
        logs: LogHub,
        table: Arc<RoutingTable>,
        metrics: Option<Arc<hoist_router::Metrics>>,
    ) -> Result<DynoManager, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let events = runtime.subscribe();
        let mut l = Loop {
            pool: PortPool::new(cfg.port_range.0, cfg.port_range.1),
            cfg,
            store,
            runtime,
            logs,
            table,
            metrics,
            recs: HashMap::new(),
            resting: HashMap::new(),
            removing: HashMap::new(),
            crashes: HashMap::new(),
            sleeping: HashSet::new(),
            dirty: HashSet::new(),
            routes: HashMap::new(),
            domains: Vec::new(),
            last_full: Instant::now() - Duration::from_secs(60),
            last_memory_sample: Instant::now(),
        };
        l.adopt().await?;
        tokio::spawn(l.run(rx, events));
        Ok(DynoManager { tx })
    }

    pub fn app_changed(&self, app_id: &str) {
        let _ = self.tx.send(Command::AppChanged(app_id.to_string()));
    }
    /// Returns once the router knows the new app.
    pub async fn app_created(&self, app_id: &str) {
        let (reply, done) = oneshot::channel();
        if self
            .tx
            .send(Command::AppCreated(app_id.to_string(), reply))
            .is_ok()
        {
            let _ = done.await;
        }
    }
    /// Stops and removes the app's dynos; returns once their containers, mounts,
    /// cgroups and directories are gone.
    pub async fn app_destroyed(&self, app_id: &str) {
        let (reply, done) = oneshot::channel();
        if self
            .tx
            .send(Command::AppDestroyed(app_id.to_string(), reply))
            .is_ok()
        {
            let _ = done.await;
        }
    }
    /// Before the daemon exits: completes the removals of dynos that already ended, so
    /// that none leaves its writable layer mounted. Running dynos are left alone.
    pub async fn finish_removals(&self) {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Command::FinishRemovals(reply)).is_ok() {
            let _ = done.await;
        }
    }
    /// Restarts all dynos (`None`), one process type, or one dyno by name.
    pub fn restart(&self, app_id: &str, target: Option<&str>) {
        let _ = self.tx.send(Command::Restart {
            app_id: app_id.to_string(),
            target: target.map(str::to_string),
        });
    }
    /// Stops one dyno or all dynos of a type (formation dynos are then replaced).
    pub fn stop(&self, app_id: &str, target: &str) {
        let _ = self.tx.send(Command::Stop {
            app_id: app_id.to_string(),
            target: target.to_string(),
        });
    }
    pub fn wake(&self, app_id: &str) {
        let _ = self.tx.send(Command::Wake(app_id.to_string()));
    }
    /// Ends a one-off dyno (by id) whose attached client went away, like Heroku does
    /// when the rendezvous connection closes: SIGHUP, then SIGKILL after the grace.
    pub fn hang_up(&self, dyno_id: &str) {
        let _ = self.tx.send(Command::HangUp(dyno_id.to_string()));
    }
    /// The daemon is stopping and with it every rendezvous session: ends the attached
    /// one-offs (SIGHUP, a short grace, then removal) so none outlives its client.
    pub async fn end_attached(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::EndAttached(tx)).is_ok() {
            let _ = rx.await;
        }
    }
    pub async fn run_one_off(&self, req: OneOffRequest) -> Result<OneOffStarted, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::RunOneOff(Box::new(req), reply))
            .map_err(|_| "the dyno manager is not running".to_string())?;
        rx.await
            .map_err(|_| "the dyno manager stopped".to_string())?
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Up,
    Stopping,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Up => "up",
            State::Stopping => "up",
        }
    }

    /// The state a row recorded before a daemon restart, for a dyno still running.
    fn recorded(state: &str) -> Option<State> {
        match state {
            "starting" => Some(State::Starting),
            "up" => Some(State::Up),
            _ => None,
        }
    }
}

struct OneOff {
    exit: Option<oneshot::Sender<i32>>,
    output: Option<OutputSink>,
    deadline: Option<Instant>,
    /// Its attached client is gone: nobody will read its last output.
    hung_up: bool,
}

struct Rec {
    spec: DynoSpec,
    state: State,
    port: Option<u16>,
    started: Instant,
    created_at: String,
    /// When the dyno entered its current state (`ps`: "up since ...").
    since: String,
    stop_deadline: Option<Instant>,
    /// Marked by restart, cycling or a stop request: replace it.
    replace: bool,
    cycle_at: Option<Instant>,
    one_off: Option<OneOff>,
    out: LineSplitter,
    err: LineSplitter,
    /// Last R14 logged for this dyno (repeated at most every [`R14_EVERY`]).
    r14_at: Option<Instant>,
}

/// How often the memory of running dynos is sampled for R14.
const MEMORY_SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Heroku repeats R14 while a dyno stays over its quota, not on every sample.
const R14_EVERY: Duration = Duration::from_secs(20);

struct Removing {
    app_id: String,
    task: tokio::task::JoinHandle<()>,
}

/// When [`Loop::forget`] removes a dyno's container and files.
#[derive(Clone, Copy)]
enum Removal {
    /// Before returning (the process may still run: killed first).
    Now,
    /// In the background, after this delay.
    After(Duration),
}

struct Crash {
    count: u32,
    retry_at: Instant,
    at: String,
}

/// What the routing table needs to know about an app, refreshed on reconcile.
#[derive(PartialEq)]
struct RouteInfo {
    name: String,
    maintenance: bool,
    deployed: bool,
    web_quantity: i64,
    eco: bool,
}

struct Loop {
    cfg: ManagerConfig,
    store: Arc<Store>,
    runtime: Arc<dyn Runtime>,
    logs: LogHub,
    table: Arc<RoutingTable>,
    metrics: Option<Arc<hoist_router::Metrics>>,
    pool: PortPool,
    recs: HashMap<String, Rec>,
    /// What `ps` shows for a formation dyno that has no process: `crashed` (in crash
    /// back-off) or `idle` (an eco app asleep), by (app id, dyno name).
    resting: HashMap<(String, String), Dyno>,
    /// Removals of dynos already off the books, still under way.
    removing: HashMap<String, Removing>,
    crashes: HashMap<(String, String), Crash>,
    sleeping: HashSet<String>,
    dirty: HashSet<String>,
    routes: HashMap<String, RouteInfo>,
    /// Custom domains `(hostname, app_id)`, read once per reconcile batch so that
    /// publishing the routing table (also on every stop) does no store I/O.
    domains: Vec<(String, String)>,
    last_full: Instant,
    last_memory_sample: Instant,
}

fn now_str() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn container_id(app_name: &str, name: &str) -> String {
    let suffix: u32 = rand::thread_rng().gen();
    format!("{app_name}-{}-{:08x}", name.replace('.', "-"), suffix)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

impl Loop {
    fn log(&self, app_id: &str, ps: &str, msg: impl Into<String>) {
        self.logs.push(app_id, LogLine::heroku(ps, msg));
    }

    fn dyno_row(&self, rec: &Rec, state: &str) -> Dyno {
        Dyno {
            id: rec.spec.id.clone(),
            app_id: rec.spec.app_id.clone(),
            name: rec.spec.name.clone(),
            process_type: rec.spec.process_type.clone(),
            state: state.to_string(),
            command: rec.spec.command.clone(),
            size: rec.spec.size.name().to_string(),
            release_version: rec.spec.release_version,
            port: rec.port.map(i64::from),
            attach: rec.spec.attach,
            created_at: rec.created_at.clone(),
            updated_at: rec.since.clone(),
        }
    }

    /// Writes the one row `ps` shows for a dyno name, as Heroku shows it: the oldest
    /// process of the name (during preboot the old dyno, until it stops), else its
    /// crashed or idle row, else nothing. Every other row of the name goes.
    fn show(&self, app_id: &str, name: &str) {
        let visible = self
            .recs
            .values()
            .filter(|r| r.spec.app_id == app_id && r.spec.name == name)
            .min_by_key(|r| r.started)
            .map(|r| self.dyno_row(r, r.state.as_str()))
            .or_else(|| {
                self.resting
                    .get(&(app_id.to_string(), name.to_string()))
                    .cloned()
            });
        let rows = match self.store.dynos(app_id) {
            Ok(rows) => rows,
            Err(e) => {
                warn!(error = %e, "reading dyno rows");
                return;
            }
        };
        for row in rows.iter().filter(|d| d.name == name) {
            if visible.as_ref().is_none_or(|v| v.id != row.id) {
                if let Err(e) = self.store.delete_dyno(&row.id) {
                    warn!(error = %e, "deleting a dyno row");
                }
            }
        }
        if let Some(row) = visible {
            if let Err(e) = self.store.upsert_dyno(&row) {
                warn!(error = %e, "recording dyno state");
            }
        }
    }

    /// Drops the crashed/idle rows of an app's names that match `pred`.
    fn forget_resting(&mut self, app_id: &str, pred: impl Fn(&str) -> bool) {
        let gone: Vec<(String, String)> = self
            .resting
            .keys()
            .filter(|(a, n)| a == app_id && pred(n))
            .cloned()
            .collect();
        for key in gone {
            self.resting.remove(&key);
            self.show(&key.0, &key.1);
        }
    }

    /// Takes a dyno off the books: its port, its row (the name then shows what is
    /// left, see [`Loop::show`]) and its container, mounts and files.
    async fn forget(&mut self, id: &str, removal: Removal) -> Option<Rec> {
        let rec = self.recs.remove(id)?;
        match removal {
            Removal::Now => {
                if let Err(e) = self.runtime.remove(id).await {
                    warn!(dyno = %rec.spec.name, error = %e, "removing dyno");
                }
            }
            Removal::After(delay) => {
                let runtime = self.runtime.clone();
                let cid = id.to_string();
                let task = tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Err(e) = runtime.remove(&cid).await {
                        warn!(dyno = %cid, error = %e, "removing dyno");
                    }
                });
                self.removing.retain(|_, r| !r.task.is_finished());
                self.removing.insert(
                    id.to_string(),
                    Removing {
                        app_id: rec.spec.app_id.clone(),
                        task,
                    },
                );
            }
        }
        // Released once the process is gone, or after it exited by itself.
        if let Some(p) = rec.port {
            self.pool.release(p);
        }
        self.show(&rec.spec.app_id, &rec.spec.name);
        Some(rec)
    }

    /// Re-adopts running dynos after a (re)start of the daemon instead of starting new ones.
    async fn adopt(&mut self) -> Result<(), String> {
        let observed = self
            .runtime
            .list()
            .await
            .map_err(|e| format!("listing dynos: {e}"))?;
        let known: HashSet<String> = observed.iter().map(|o| o.spec.id.clone()).collect();
        let rows: HashMap<String, Dyno> = self
            .store
            .all_dynos()
            .unwrap_or_default()
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        let mut orphaned = Vec::new();
        for o in observed {
            let app_exists = self.store.app(&o.spec.app_id).is_ok();
            if !o.running || !app_exists {
                let _ = self.runtime.remove(&o.spec.id).await;
                let _ = self.store.delete_dyno(&o.spec.id);
                continue;
            }
            let port = o.spec.env.get("PORT").and_then(|p| p.parse().ok());
            if let Some(p) = port {
                self.pool.claim(p);
            }
            let web = o.spec.process_type == "web";
            let attached_one_off = o.spec.attach && o.spec.process_type == "run";
            let one_off =
                (o.spec.process_type == "run" || o.spec.process_type == "release").then(|| {
                    OneOff {
                        exit: None,
                        output: None,
                        deadline: None,
                        hung_up: attached_one_off,
                    }
                });
            info!(dyno = %o.spec.name, app = %o.spec.app_name, "re-adopted running dyno");
            self.dirty.insert(o.spec.app_id.clone());
            let id = o.spec.id.clone();
            // The process never stopped: it keeps the state and since-time recorded
            // before the daemon went away (a web dyno without a record is checked anew).
            let row = rows.get(&id);
            let recorded = row.and_then(|r| State::recorded(&r.state).map(|s| (s, &r.updated_at)));
            let (state, since) = match recorded {
                Some((state, since)) => (state, since.clone()),
                None if web => (State::Starting, now_str()),
                None => (State::Up, now_str()),
            };
            let (app, name) = (o.spec.app_id.clone(), o.spec.name.clone());
            self.recs.insert(
                id.clone(),
                Rec {
                    state,
                    port,
                    started: Instant::now(),
                    created_at: row.map_or_else(
                        || o.started_at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        |r| r.created_at.clone(),
                    ),
                    since,
                    stop_deadline: None,
                    replace: false,
                    cycle_at: self.cycle_deadline(),
                    one_off,
                    out: LineSplitter::new(self.cfg.max_line_bytes),
                    err: LineSplitter::new(self.cfg.max_line_bytes),
                    r14_at: None,
                    spec: o.spec,
                },
            );
            self.show(&app, &name);
            if attached_one_off {
                orphaned.push(id);
            }
        }
        // An attached one-off's rendezvous session died with the previous daemon, so
        // its client is gone: end it as a disconnect would have.
        for id in orphaned {
            self.stop_with(&id, libc::SIGHUP).await;
        }
        // Rows of dynos that no longer exist (e.g. after a host reboot).
        if let Ok(rows) = self.store.all_dynos() {
            for row in rows {
                if !known.contains(&row.id) || !self.recs.contains_key(&row.id) {
                    let _ = self.store.delete_dyno(&row.id);
                }
            }
        }
        if let Ok(apps) = self.store.all_apps() {
            self.dirty.extend(apps.into_iter().map(|a| a.id));
        }
        Ok(())
    }

    /// Removals under way or waiting (like an attached one-off's) that match `pred`
    /// run now; `done` hears once all of them have finished.
    async fn finish_removals(
        &mut self,
        pred: impl Fn(&Removing) -> bool,
        done: oneshot::Sender<()>,
    ) {
        let ids: Vec<String> = self
            .removing
            .iter()
            .filter(|(_, r)| pred(r))
            .map(|(id, _)| id.clone())
            .collect();
        let mut tasks = Vec::new();
        for id in ids {
            let Some(r) = self.removing.remove(&id) else {
                continue;
            };
            r.task.abort();
            let _ = r.task.await;
            let runtime = self.runtime.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = runtime.remove(&id).await {
                    warn!(dyno = %id, error = %e, "removing dyno");
                }
            }));
        }
        tokio::spawn(async move {
            futures::future::join_all(tasks).await;
            let _ = done.send(());
        });
    }

    /// (app id, dyno name) of a dyno on the books.
    fn names_of(&self, id: &str) -> Option<(String, String)> {
        let r = self.recs.get(id)?;
        Some((r.spec.app_id.clone(), r.spec.name.clone()))
    }

    fn cycle_deadline(&self) -> Option<Instant> {
        let base = self.cfg.cycle_after?;
        let jitter = rand::thread_rng().gen_range(0..=216 * 60);
        Some(Instant::now() + base + Duration::from_secs(jitter))
    }

    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::Receiver<DynoEvent>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.command(cmd).await,
                    None => return,
                },
                ev = events.recv() => match ev {
                    Some(ev) => self.event(ev).await,
                    None => {
                        warn!("runtime event stream ended");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                _ = tick.tick() => self.tick().await,
            }
            // Drain whatever else is queued before reconciling once.
            while let Ok(ev) = events.try_recv() {
                self.event(ev).await;
            }
            if !self.dirty.is_empty() {
                let apps: Vec<String> = self.dirty.drain().collect();
                for app in apps {
                    self.reconcile(&app).await;
                    // Store reads are synchronous: let API requests run between apps.
                    tokio::task::yield_now().await;
                }
                if let Ok(domains) = self.store.all_domains() {
                    self.domains = domains;
                }
                self.publish();
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::AppChanged(app) => {
                // A new release resets crash back-off.
                self.crashes.retain(|(a, _), _| *a != app);
                self.dirty.insert(app);
            }
            Command::AppCreated(app, reply) => {
                // Reconciling a new app publishes its route (see reconcile).
                self.reconcile(&app).await;
                let _ = reply.send(());
            }
            Command::AppDestroyed(app, reply) => {
                self.resting.retain(|(a, _), _| *a != app);
                let ids: Vec<String> = self
                    .recs
                    .iter()
                    .filter(|(_, r)| r.spec.app_id == app)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in ids {
                    self.forget(&id, Removal::After(Duration::ZERO)).await;
                }
                self.finish_removals(|r| r.app_id == app, reply).await;
                self.crashes.retain(|(a, _), _| *a != app);
                self.sleeping.remove(&app);
                self.routes.remove(&app);
                self.logs.forget_app(&app);
                self.publish();
            }
            Command::FinishRemovals(reply) => self.finish_removals(|_| true, reply).await,
            Command::HangUp(id) => {
                if let Some(one_off) = self.recs.get_mut(&id).and_then(|r| r.one_off.as_mut()) {
                    one_off.hung_up = true;
                    self.stop_with(&id, libc::SIGHUP).await;
                }
            }
            Command::EndAttached(done) => {
                self.end_attached().await;
                let _ = done.send(());
            }
            Command::Restart { app_id, target } => {
                let matches = |r: &Rec| {
                    r.spec.app_id == app_id
                        && r.one_off.is_none()
                        && target
                            .as_deref()
                            .is_none_or(|t| r.spec.name == t || r.spec.process_type == t)
                };
                for rec in self.recs.values_mut().filter(|r| matches(r)) {
                    rec.replace = true;
                }
                let names: Vec<(String, String)> = self
                    .crashes
                    .keys()
                    .filter(|(a, n)| {
                        *a == app_id
                            && target
                                .as_deref()
                                .is_none_or(|t| n == t || n.split('.').next() == Some(t))
                    })
                    .cloned()
                    .collect();
                for k in names {
                    self.crashes.remove(&k);
                    if self.resting.remove(&k).is_some() {
                        self.show(&k.0, &k.1);
                    }
                }
                self.log(
                    &app_id,
                    "api",
                    format!(
                        "Restart {} requested",
                        target.as_deref().unwrap_or("all dynos")
                    ),
                );
                self.dirty.insert(app_id);
            }
            Command::Stop { app_id, target } => {
                let ids: Vec<String> = self
                    .recs
                    .iter()
                    .filter(|(_, r)| {
                        r.spec.app_id == app_id
                            && (r.spec.name == target || r.spec.process_type == target)
                    })
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in ids {
                    self.stop(&id).await;
                }
                self.dirty.insert(app_id);
            }
            Command::Wake(app) => {
                if self.sleeping.remove(&app) {
                    self.log(&app, "web.1", "Unidling");
                }
                self.dirty.insert(app);
            }
            Command::RunOneOff(req, reply) => {
                let r = self.start_one_off(*req).await;
                let _ = reply.send(r);
            }
        }
    }

    async fn event(&mut self, ev: DynoEvent) {
        match ev {
            DynoEvent::Output {
                id,
                stream,
                data,
                read_at,
            } => {
                let Some(rec) = self.recs.get_mut(&id) else {
                    return;
                };
                let lines = match stream {
                    OutputStream::Stdout => rec.out.feed(&data),
                    OutputStream::Stderr => rec.err.feed(&data),
                };
                let app = rec.spec.app_id.clone();
                let name = rec.spec.name.clone();
                let sink = rec.one_off.as_ref().and_then(|o| o.output.clone());
                for line in lines {
                    if let Some(s) = &sink {
                        s(&line);
                    }
                    // Stamped when the shim read it: lines spilled while the daemon was
                    // away keep the time they were written.
                    let line = LogLine {
                        time: read_at,
                        ..LogLine::app(name.clone(), line)
                    };
                    self.logs.push(&app, line);
                }
            }
            DynoEvent::OutputDropped { id, bytes } => {
                if let Some(rec) = self.recs.get(&id) {
                    self.log(&rec.spec.app_id, "logplex", format!(
                        "Error L10 (output buffer overflow): {bytes} bytes of {} output dropped while the platform was restarting.",
                        rec.spec.name
                    ));
                }
            }
            DynoEvent::Exited {
                id,
                status,
                oom_killed,
            } => self.exited(&id, status, oom_killed).await,
        }
    }

    async fn exited(&mut self, id: &str, status: i32, oom_killed: bool) {
        // An attached session may still be reading the last output from the shim.
        let linger = match self.recs.get(id) {
            Some(r) if r.spec.attach && !r.one_off.as_ref().is_some_and(|o| o.hung_up) => {
                Duration::from_secs(30)
            }
            Some(_) => Duration::ZERO,
            None => return,
        };
        let Some(mut rec) = self.forget(id, Removal::After(linger)).await else {
            return;
        };
        let app = rec.spec.app_id.clone();
        let name = rec.spec.name.clone();
        for line in rec.out.finish().into_iter().chain(rec.err.finish()) {
            if let Some(s) = rec.one_off.as_ref().and_then(|o| o.output.clone()) {
                s(&line);
            }
            self.logs.push(&app, LogLine::app(name.clone(), line));
        }
        if oom_killed {
            self.log(&app, &name, format!(
                "Error R15 (Memory quota vastly exceeded) -> the dyno exceeded its {} MB quota and was killed",
                rec.spec.size.memory_mb()
            ));
        }
        self.log(&app, &name, format!("Process exited with status {status}"));
        if let Some(one_off) = rec.one_off.as_mut() {
            self.log(&app, &name, "State changed from up to complete");
            if let Some(tx) = one_off.exit.take() {
                let _ = tx.send(status);
            }
        } else if rec.state == State::Stopping {
            self.log(&app, &name, "State changed from up to down");
        } else {
            self.crashed(&rec, rec.state.as_str());
        }
        self.dirty.insert(app);
    }

    /// Heroku's policy: restart at once after the first crash, then with growing
    /// cool-off (capped at 20 minutes) until a new release or a restart.
    fn crashed(&mut self, rec: &Rec, from: &str) {
        let app = rec.spec.app_id.clone();
        let name = rec.spec.name.clone();
        self.log(&app, &name, format!("State changed from {from} to crashed"));
        let key = (app.clone(), name.clone());
        let count = self.crashes.get(&key).map_or(0, |c| c.count) + 1;
        let delay = crate::rules::crash_backoff(count);
        let at = now_str();
        self.crashes.insert(
            key,
            Crash {
                count,
                retry_at: Instant::now() + delay,
                at: at.clone(),
            },
        );
        let mut row = self.dyno_row(rec, "crashed");
        row.updated_at = at;
        self.resting.insert((app.clone(), name.clone()), row);
        self.show(&app, &name);
    }

    async fn stop(&mut self, id: &str) {
        self.stop_with(id, libc::SIGTERM).await;
    }

    /// See [`DynoManager::end_attached`]. The grace is short (shutdown waits for it).
    async fn end_attached(&mut self) {
        let ids: Vec<String> = self
            .recs
            .iter()
            .filter(|(_, r)| r.one_off.is_some() && r.spec.attach && r.spec.process_type == "run")
            .map(|(id, _)| id.clone())
            .collect();
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            if let Some(o) = self.recs.get_mut(id).and_then(|r| r.one_off.as_mut()) {
                o.hung_up = true;
            }
            self.stop_with(id, libc::SIGHUP).await;
        }
        let deadline = Instant::now() + self.cfg.stop_grace.min(Duration::from_secs(5));
        while Instant::now() < deadline {
            let running = self
                .runtime
                .list()
                .await
                .map(|l| l.iter().any(|o| o.running && ids.contains(&o.spec.id)));
            if !running.unwrap_or(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for id in &ids {
            self.forget(id, Removal::Now).await;
        }
    }

    /// Signals every process of the dyno, and SIGKILL after the grace period (`tick`).
    async fn stop_with(&mut self, id: &str, signal: i32) {
        let grace = self.cfg.stop_grace;
        let Some(rec) = self.recs.get_mut(id) else {
            return;
        };
        if rec.state == State::Stopping {
            return;
        }
        rec.state = State::Stopping;
        rec.stop_deadline = Some(Instant::now() + grace);
        let (app, name) = (rec.spec.app_id.clone(), rec.spec.name.clone());
        // Out of the routing table before the signal.
        self.publish();
        let sig_name = if signal == libc::SIGHUP {
            "SIGHUP"
        } else {
            "SIGTERM"
        };
        self.log(
            &app,
            &name,
            format!("Stopping all processes with {sig_name}"),
        );
        if let Err(e) = self.runtime.signal(id, signal).await {
            warn!(dyno = %name, error = %e, "{sig_name} failed");
        }
    }

    async fn tick(&mut self) {
        let now = Instant::now();
        // Web dynos become up when they accept connections on $PORT.
        let starting: Vec<(String, u16, Instant)> = self
            .recs
            .iter()
            .filter(|(_, r)| r.state == State::Starting)
            .filter_map(|(id, r)| r.port.map(|p| (id.clone(), p, r.started)))
            .collect();
        // Probed all at once: one after another, 20 booting dynos that do not answer
        // would hold the loop for 2 s.
        let probes = starting.iter().map(|(_, port, _)| async move {
            tokio::time::timeout(
                Duration::from_millis(100),
                tokio::net::TcpStream::connect(("127.0.0.1", *port)),
            )
            .await
            .is_ok_and(|r| r.is_ok())
        });
        let bound = futures::future::join_all(probes).await;
        for ((id, _, started), bound) in starting.into_iter().zip(bound) {
            if bound {
                if let Some(rec) = self.recs.get_mut(&id) {
                    rec.state = State::Up;
                    rec.since = now_str();
                    let (app, name) = (rec.spec.app_id.clone(), rec.spec.name.clone());
                    self.log(&app, &name, "State changed from starting to up");
                    self.show(&app, &name);
                    self.dirty.insert(app);
                }
            } else if now.duration_since(started) > self.cfg.boot_timeout {
                let Some((app, name)) = self.names_of(&id) else {
                    continue;
                };
                self.log(&app, &name, format!(
                    "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within {} seconds of launch",
                    self.cfg.boot_timeout.as_secs()
                ));
                self.log(&app, &name, "Stopping process with SIGKILL");
                if let Some(rec) = self.forget(&id, Removal::Now).await {
                    self.log(&app, &name, "Process exited with status 137");
                    self.crashed(&rec, "starting");
                }
                self.dirty.insert(app);
            }
        }
        // Grace period over: SIGKILL (R12).
        let overdue: Vec<String> = self
            .recs
            .iter()
            .filter(|(_, r)| r.stop_deadline.is_some_and(|d| now > d))
            .map(|(id, _)| id.clone())
            .collect();
        for id in overdue {
            let Some((app, name)) = self.names_of(&id) else {
                continue;
            };
            let signal = match self.recs.get(&id).and_then(|r| r.one_off.as_ref()) {
                Some(o) if o.hung_up => "SIGHUP",
                _ => "SIGTERM",
            };
            let r12 = crate::rules::r12_message(self.cfg.stop_grace, signal);
            self.log(&app, &name, r12);
            self.log(&app, &name, "Stopping remaining processes with SIGKILL");
            self.forget(&id, Removal::Now).await;
            self.log(&app, &name, "Process exited with status 137");
            self.log(&app, &name, "State changed from up to down");
            self.dirty.insert(app);
        }
        // One-off time-to-live and daily cycling.
        let mut expired = Vec::new();
        for (id, r) in self.recs.iter_mut() {
            if r.one_off
                .as_ref()
                .and_then(|o| o.deadline)
                .is_some_and(|d| now > d)
            {
                expired.push(id.clone());
            } else if r.one_off.is_none() && !r.replace && r.cycle_at.is_some_and(|c| now > c) {
                r.replace = true;
                self.logs.push(
                    &r.spec.app_id,
                    LogLine::heroku(r.spec.name.clone(), "Cycling"),
                );
                self.dirty.insert(r.spec.app_id.clone());
            }
        }
        for id in expired {
            self.stop(&id).await;
        }
        // Crashed dynos whose cool-off ended.
        let retry: Vec<String> = self
            .crashes
            .iter()
            .filter(|(_, c)| now >= c.retry_at)
            .map(|((a, _), _)| a.clone())
            .collect();
        self.dirty.extend(retry);
        // Eco apps without traffic go to sleep.
        if let Some(m) = &self.metrics {
            let idle: Vec<String> = self
                .routes
                .iter()
                .filter(|(app, info)| {
                    info.eco && info.web_quantity > 0 && !self.sleeping.contains(*app)
                })
                .filter(|(app, _)| {
                    let last = m.last_request(app);
                    let oldest_up = self
                        .recs
                        .values()
                        .filter(|r| &r.spec.app_id == *app && r.spec.process_type == "web")
                        .map(|r| r.started)
                        .min();
                    let quiet_since = match (last, oldest_up) {
                        (Some(l), Some(u)) => l.max(u),
                        (None, Some(u)) => u,
                        _ => return false,
                    };
                    now.duration_since(quiet_since) > self.cfg.idle_after
                })
                .map(|(a, _)| a.clone())
                .collect();
            for app in idle {
                self.log(&app, "web.1", "Idling");
                // `ps` shows the sleeping web dynos as idle once they have stopped.
                let rows: Vec<Dyno> = self
                    .recs
                    .values()
                    .filter(|r| r.spec.app_id == app && r.spec.process_type == "web")
                    .map(|r| Dyno {
                        updated_at: now_str(),
                        ..self.dyno_row(r, "idle")
                    })
                    .collect();
                for row in rows {
                    self.resting.insert((app.clone(), row.name.clone()), row);
                }
                self.sleeping.insert(app.clone());
                self.dirty.insert(app);
            }
        }
        if now.duration_since(self.last_memory_sample) >= MEMORY_SAMPLE_EVERY {
            self.last_memory_sample = now;
            self.check_memory(now);
        }
        // A safety net for missed notifications; changes themselves arrive as commands.
        if now.duration_since(self.last_full) > Duration::from_secs(30) {
            self.last_full = now;
            if let Ok(apps) = self.store.all_apps() {
                self.dirty.extend(apps.into_iter().map(|a| a.id));
            }
        }
    }

    /// R14: a dyno over its memory quota keeps running (up to the kill limit, R15) and
    /// says so in its log, with the figure Heroku prints.
    fn check_memory(&mut self, now: Instant) {
        let mut over = Vec::new();
        for rec in self.recs.values_mut() {
            if rec.state == State::Stopping
                || rec
                    .r14_at
                    .is_some_and(|t| now.duration_since(t) < R14_EVERY)
            {
                continue;
            }
            let Some(used) = self.runtime.memory_usage(&rec.spec) else {
                continue;
            };
            let quota = rec.spec.size.memory_mb() * 1024 * 1024;
            if used > quota {
                rec.r14_at = Some(now);
                let pct = used as f64 * 100.0 / quota as f64;
                let mb = used as f64 / (1024.0 * 1024.0);
                over.push((rec.spec.app_id.clone(), rec.spec.name.clone(), mb, pct));
            }
        }
        for (app, name, mb, pct) in over {
            self.log(
                &app,
                &name,
                format!("Process running mem={mb:.0}M({pct:.1}%)"),
            );
            self.log(&app, &name, "Error R14 (Memory quota exceeded)");
        }
    }

    async fn ensure_slug(&self, checksum: &str) -> Result<PathBuf, String> {
        let dest = self.cfg.data_dir.join("slugs-unpacked").join(checksum);
        if dest.exists() {
            return Ok(dest);
        }
        let slug = self
            .cfg
            .data_dir
            .join("slugs")
            .join(format!("{checksum}.tgz"));
        let d = dest.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let tmp = d.with_extension(format!("tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            hoist_build::unpack_slug(&slug, &tmp).map_err(|e| format!("unpacking slug: {e}"))?;
            // Dyno processes run as an unprivileged uid and own their /app, as on Heroku.
            if let Err(e) = chown_tree(&tmp, hoist_runtime::DYNO_UID, hoist_runtime::DYNO_GID) {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(format!("giving the slug to the dyno user: {e}"));
            }
            std::fs::rename(&tmp, &d)
                .or_else(|e| if d.exists() { Ok(()) } else { Err(e) })
                .map_err(|e| format!("placing slug: {e}"))
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(dest)
    }

    async fn reconcile(&mut self, app_id: &str) {
        let app = match self.store.app(app_id) {
            Ok(a) => a,
            Err(_) => {
                let ids: Vec<String> = self
                    .recs
                    .iter()
                    .filter(|(_, r)| r.spec.app_id == app_id)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in ids {
                    self.stop(&id).await;
                }
                self.routes.remove(app_id);
                return;
            }
        };
        let release = self.store.current_release(app_id).ok().flatten();
        let slug = release
            .as_ref()
            .and_then(|r| r.slug_id.as_ref())
            .and_then(|s| self.store.slug(s).ok());
        let formation = self.store.formation(app_id).unwrap_or_default();
        let web = formation.iter().find(|f| f.process_type == "web");
        let route = RouteInfo {
            name: app.name.clone(),
            maintenance: app.maintenance,
            deployed: slug.is_some(),
            web_quantity: web.map_or(0, |f| f.quantity),
            eco: web.is_some_and(|f| f.size == DynoSize::Eco.name()),
        };
        if self.routes.get(app_id) != Some(&route) {
            // The router learns of a new, renamed or redeployed app now, not once its
            // dynos have started (which can take seconds).
            self.routes.insert(app_id.to_string(), route);
            self.publish();
        }
        let preboot = self.store.feature(app_id, "preboot").unwrap_or(true);
        let sleeping = self.sleeping.contains(app_id);
        let mut desired: Vec<(String, String, String, DynoSize)> = Vec::new();
        if let (Some(_), Some(_)) = (&release, &slug) {
            for f in &formation {
                if sleeping && f.process_type == "web" {
                    continue;
                }
                let size = f.size.parse().unwrap_or_else(|_| {
                    // The API validates sizes; a stored one that no longer parses is a bug.
                    warn!(app = %app_id, size = %f.size, process_type = %f.process_type, "unknown dyno size in the formation; starting basic dynos");
                    DynoSize::Basic
                });
                for i in 1..=f.quantity {
                    desired.push((
                        format!("{}.{i}", f.process_type),
                        f.process_type.clone(),
                        f.command.clone(),
                        size,
                    ));
                }
            }
        }
        let desired_names: HashSet<&str> = desired.iter().map(|d| d.0.as_str()).collect();
        // Crashed and idle rows stay as long as the formation has their dyno.
        let formation_names: HashSet<String> = formation
            .iter()
            .flat_map(|f| (1..=f.quantity).map(move |i| format!("{}.{i}", f.process_type)))
            .collect();
        self.forget_resting(app_id, |n| !formation_names.contains(n));
        // Dynos nobody wants any more.
        let extra: Vec<String> = self
            .recs
            .iter()
            .filter(|(_, r)| {
                r.spec.app_id == app_id && r.one_off.is_none() && r.state != State::Stopping
            })
            .filter(|(_, r)| !desired_names.contains(r.spec.name.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in extra {
            self.stop(&id).await;
        }
        self.crashes
            .retain(|(a, n), _| a != app_id || desired_names.contains(n.as_str()));
        let (Some(release), Some(slug)) = (release, slug) else {
            return;
        };
        let mut to_start = Vec::new();
        for (name, ptype, command, size) in &desired {
            let of_name: Vec<(String, bool, State)> = self
                .recs
                .iter()
                .filter(|(_, r)| {
                    r.spec.app_id == app_id
                        && &r.spec.name == name
                        && r.one_off.is_none()
                        && r.state != State::Stopping
                })
                .map(|(id, r)| {
                    let current = r.spec.release_version == release.version
                        && r.spec.size == *size
                        && !r.replace;
                    (id.clone(), current, r.state)
                })
                .collect();
            let current_up = of_name.iter().any(|(_, c, s)| *c && *s == State::Up);
            let has_current = of_name.iter().any(|(_, c, _)| *c);
            let outdated: Vec<String> = of_name
                .iter()
                .filter(|(_, c, _)| !c)
                .map(|(id, _, _)| id.clone())
                .collect();
            let zero_downtime = ptype == "web" && preboot;
            if has_current {
                if current_up || !zero_downtime {
                    for id in outdated {
                        self.stop(&id).await;
                    }
                }
                continue;
            }
            if let Some(c) = self.crashes.get(&(app_id.to_string(), name.clone())) {
                if Instant::now() < c.retry_at {
                    continue;
                }
            }
            if !outdated.is_empty() && !zero_downtime {
                // Stop-then-start: the replacement starts once the old one is gone.
                for id in outdated {
                    self.stop(&id).await;
                }
                continue;
            }
            to_start.push((name.clone(), ptype.clone(), command.clone(), *size));
        }
        if to_start.is_empty() {
            return;
        }
        let slug_dir = match self.ensure_slug(&slug.checksum).await {
            Ok(d) => d,
            Err(e) => {
                self.log(app_id, "api", format!("Error starting dynos: {e}"));
                return;
            }
        };
        let mut specs = Vec::new();
        for (name, ptype, command, size) in to_start {
            let Some(port) = self.pool.allocate() else {
                self.log(app_id, &name, "Error: no free port for the dyno");
                continue;
            };
            let mut env = release.config.clone();
            env.insert("PORT".into(), port.to_string());
            env.insert("DYNO".into(), name.clone());
            let spec = DynoSpec {
                id: container_id(&app.name, &name),
                app_id: app_id.to_string(),
                app_name: app.name.clone(),
                release_version: release.version,
                name: name.clone(),
                process_type: ptype,
                command,
                env,
                slug_dir: slug_dir.clone(),
                size,
                attach: false,
                tty: false,
            };
            specs.push((spec, port));
        }
        self.launch(specs, None).await;
    }

    /// Starts dynos concurrently and records them.
    async fn launch(
        &mut self,
        specs: Vec<(DynoSpec, u16)>,
        one_off: Option<OneOff>,
    ) -> Vec<Result<String, String>> {
        for (spec, _) in &specs {
            let from = if self
                .crashes
                .contains_key(&(spec.app_id.clone(), spec.name.clone()))
            {
                "crashed"
            } else {
                "down"
            };
            self.log(
                &spec.app_id,
                &spec.name,
                format!("State changed from {from} to starting"),
            );
            self.log(
                &spec.app_id,
                &spec.name,
                format!("Starting process with command `{}`", spec.command),
            );
        }
        let runtime = self.runtime.clone();
        let results = futures::future::join_all(specs.iter().map(|(spec, _)| {
            let rt = runtime.clone();
            let spec = spec.clone();
            async move { rt.start(spec).await }
        }))
        .await;
        let mut one_off = one_off;
        let mut out = Vec::new();
        for ((spec, port), result) in specs.into_iter().zip(results) {
            if let Err(e) = result {
                self.log(
                    &spec.app_id,
                    &spec.name,
                    format!("Error starting process: {e}"),
                );
                self.pool.release(port);
                let rec = self.new_rec(spec.clone(), port, None);
                if rec.one_off.is_none() {
                    self.crashed(&rec, "starting");
                }
                out.push(Err(e.to_string()));
                continue;
            }
            let id = spec.id.clone();
            let web = spec.process_type == "web";
            let rec = self.new_rec(spec, port, one_off.take());
            let (app, name) = (rec.spec.app_id.clone(), rec.spec.name.clone());
            self.recs.insert(id.clone(), rec);
            self.resting.remove(&(app.clone(), name.clone()));
            if !web {
                if let Some(r) = self.recs.get_mut(&id) {
                    r.state = State::Up;
                }
                self.log(&app, &name, "State changed from starting to up");
            }
            self.show(&app, &name);
            out.push(Ok(id));
        }
        out
    }

    fn new_rec(&self, spec: DynoSpec, port: u16, one_off: Option<OneOff>) -> Rec {
        Rec {
            state: State::Starting,
            port: Some(port),
            started: Instant::now(),
            created_at: now_str(),
            since: now_str(),
            stop_deadline: None,
            replace: false,
            cycle_at: if one_off.is_some() {
                None
            } else {
                self.cycle_deadline()
            },
            one_off,
            out: LineSplitter::new(self.cfg.max_line_bytes),
            err: LineSplitter::new(self.cfg.max_line_bytes),
            r14_at: None,
            spec,
        }
    }

    async fn start_one_off(&mut self, req: OneOffRequest) -> Result<OneOffStarted, String> {
        let app = self.store.app(&req.app_id).map_err(|e| e.to_string())?;
        let release = match req.release_version {
            Some(v) => self
                .store
                .release(&app.id, &v.to_string())
                .map_err(|e| e.to_string())?,
            None => self
                .store
                .current_release(&app.id)
                .map_err(|e| e.to_string())?
                .ok_or("the app has no release yet")?,
        };
        let slug_id = release
            .slug_id
            .clone()
            .ok_or("No code has been deployed to this app yet. Deploy with git push first.")?;
        let slug = self.store.slug(&slug_id).map_err(|e| e.to_string())?;
        let slug_dir = self.ensure_slug(&slug.checksum).await?;
        let port = self.pool.allocate().ok_or("no free port for the dyno")?;
        let n: u32 = rand::thread_rng().gen_range(1000..10000);
        let name = format!("{}.{n}", req.process_type);
        let size = req.size.unwrap_or(DynoSize::Basic);
        let mut env = release.config.clone();
        env.extend(req.env);
        env.insert("PORT".into(), port.to_string());
        env.insert("DYNO".into(), name.clone());
        let spec = DynoSpec {
            id: container_id(&app.name, &name),
            app_id: app.id.clone(),
            app_name: app.name.clone(),
            release_version: release.version,
            name: name.clone(),
            process_type: req.process_type.clone(),
            command: req.command.clone(),
            env,
            slug_dir,
            size,
            attach: req.attach,
            tty: req.tty,
        };
        let id = spec.id.clone();
        let (tx, rx) = oneshot::channel();
        let one_off = OneOff {
            exit: Some(tx),
            output: req.output,
            deadline: req.time_to_live.map(|t| Instant::now() + t),
            hung_up: false,
        };
        let started = self.launch(vec![(spec, port)], Some(one_off)).await;
        match started.into_iter().next() {
            Some(Ok(_)) => Ok(OneOffStarted {
                id,
                name,
                size,
                exit: rx,
            }),
            Some(Err(e)) => Err(e),
            None => Err("the dyno did not start".into()),
        }
    }

    /// Builds the routing table from what this loop knows; the router never asks the store.
    fn publish(&self) {
        let mut table = Table::default();
        for (app_id, info) in &self.routes {
            let mut backends: Vec<Backend> = self
                .recs
                .values()
                .filter(|r| {
                    &r.spec.app_id == app_id && r.spec.process_type == "web" && r.state == State::Up
                })
                .filter_map(|r| {
                    r.port.map(|p| Backend {
                        dyno: r.spec.name.clone(),
                        addr: ([127, 0, 0, 1], p).into(),
                    })
                })
                .collect();
            backends.sort_by(|a, b| a.dyno.cmp(&b.dyno));
            let starting = self.recs.values().any(|r| {
                &r.spec.app_id == app_id
                    && r.spec.process_type == "web"
                    && r.state == State::Starting
            });
            // No web dyno yet and none crashed: reconcile is about to start them.
            let crashed = self
                .crashes
                .keys()
                .any(|(a, n)| a == app_id && n.starts_with("web."));
            let status = if !info.deployed {
                RouteStatus::NotDeployed
            } else if self.sleeping.contains(app_id) {
                RouteStatus::Idle
            } else if info.web_quantity == 0 {
                RouteStatus::NoWebDynos
            } else if !backends.is_empty() {
                RouteStatus::Up
            } else if starting || !crashed {
                RouteStatus::Starting
            } else {
                RouteStatus::Crashed
            };
            table.apps.insert(
                info.name.clone(),
                AppRoute {
                    app_id: app_id.clone(),
                    app_name: info.name.clone(),
                    maintenance: info.maintenance,
                    status,
                    backends,
                },
            );
        }
        for (host, app_id) in &self.domains {
            if let Some(info) = self.routes.get(app_id) {
                table.custom_domains.insert(host.clone(), info.name.clone());
            }
        }
        self.table.publish(table);
    }
}

#[allow(dead_code)]
fn _assert_send(c: Crash) -> (u32, String) {
    (c.count, c.at)
}

#[allow(dead_code)]
fn _time(_: DateTime<Utc>) {}

/// `chown -R` without following links (a slug's links point into the container).
fn chown_tree(root: &std::path::Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
        if std::fs::symlink_metadata(&path)?.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn chown_tree_gives_the_tree_and_not_what_its_links_point_at() {
        if !is_root() {
            return; // chown needs root
        }
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::write(&outside, "host file").unwrap();
        let slug = t.path().join("slug");
        std::fs::create_dir_all(slug.join("app/lib")).unwrap();
        std::fs::write(slug.join("app/lib/x.py"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, slug.join("app/link")).unwrap();
        chown_tree(&slug, 65534, 65534).unwrap();
        for p in ["", "app", "app/lib", "app/lib/x.py", "app/link"] {
            let m = std::fs::symlink_metadata(slug.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{p}");
        }
        assert_eq!(std::fs::metadata(&outside).unwrap().uid(), 0);
        let err = chown_tree(&t.path().join("missing"), 1, 1).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }

    fn is_root() -> bool {
        // /proc/self belongs to the effective user.
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }
}
