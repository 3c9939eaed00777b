//! The hub: per-app history, tail subscribers, drains and log sessions.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hoist_types::LogLine;
use parking_lot::{Mutex, RwLock};

use crate::drain::{DrainHandle, DrainTls};
use crate::mailbox::{Entry, Mailbox, Offer};
use crate::metrics::{add, get, inc, Metrics};
use crate::persist::{self, Persister};
use crate::{DrainConfig, LogConfig, LogError, LogFilter, SessionRequest};

/// The log aggregator. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct LogHub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub cfg: LogConfig,
    apps: RwLock<HashMap<String, Arc<AppLog>>>,
    sessions: Mutex<HashMap<String, Session>>,
    /// Whether a session's owner may still read the app's log; `None`: no check.
    access: RwLock<Option<AccessCheck>>,
    pub metrics: Arc<Metrics>,
    persister: Persister,
    /// Keep-alive comment interval for tail streams, in milliseconds.
    pub keepalive_ms: AtomicU64,
    drain_tls: Mutex<Option<DrainTls>>,
    runtime: Option<tokio::runtime::Handle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        for app in self.apps.get_mut().values() {
            app.shutdown();
        }
    }
}

pub(crate) struct AppLog {
    pub name: Arc<str>,
    pub state: Mutex<AppState>,
}

pub(crate) struct AppState {
    next_seq: u64,
    pub ring: VecDeque<Arc<Entry>>,
    tails: Vec<Arc<Mailbox>>,
    drains: Vec<DrainHandle>,
}

impl AppLog {
    fn new(name: &str) -> AppLog {
        AppLog {
            name: Arc::from(name),
            state: Mutex::new(AppState {
                next_seq: 1,
                ring: VecDeque::new(),
                tails: Vec::new(),
                drains: Vec::new(),
            }),
        }
    }

    fn shutdown(&self) {
        let mut st = self.state.lock();
        for t in st.tails.drain(..) {
            t.close();
        }
        for d in st.drains.drain(..) {
            d.stop();
        }
        st.ring.clear();
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub app_id: String,
    pub req: SessionRequest,
    pub expires: Instant,
    /// Who created it (opaque to the hub; see [`AccessCheck`]).
    pub owner: Option<String>,
}

/// `(app_id, owner) -> may the owner still read this app's log?` The API decides what an
/// owner string is (an account and the credential it used).
pub type AccessCheck = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// What an SSE stream starts with: history to replay and, for tails, the live feed.
pub(crate) struct Subscription {
    pub history: Vec<Arc<Entry>>,
    pub live: Option<Arc<Mailbox>>,
}

impl LogHub {
    /// Opens the hub and loads persisted history from `cfg.dir` (created if missing).
    pub fn open(cfg: LogConfig) -> Result<LogHub, LogError> {
        let dir_err = |source| LogError::Dir {
            path: cfg.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&cfg.dir).map_err(dir_err)?;
        let loaded = persist::load(&cfg.dir, cfg.history_lines).map_err(dir_err)?;
        let metrics = Arc::new(Metrics::default());
        let persister = Persister::start(cfg.dir.clone(), cfg.history_lines, metrics.clone())
            .map_err(LogError::Thread)?;

        let mut apps = HashMap::new();
        for (name, lines) in loaded {
            let app = AppLog::new(&name);
            {
                let mut st = app.state.lock();
                for line in lines {
                    let seq = seq_for(st.next_seq, &line);
                    st.next_seq = seq + 1;
                    st.ring.push_back(Arc::new(Entry {
                        seq,
                        received: Instant::now(),
                        line,
                    }));
                }
            }
            apps.insert(name, Arc::new(app));
        }

        let hub = LogHub {
            inner: Arc::new(Inner {
                cfg,
                apps: RwLock::new(apps),
                sessions: Mutex::new(HashMap::new()),
                access: RwLock::new(None),
                metrics,
                persister,
                keepalive_ms: AtomicU64::new(15_000),
                drain_tls: Mutex::new(None),
                runtime: tokio::runtime::Handle::try_current().ok(),
            }),
        };
        hub.load_sessions();
        Ok(hub)
    }

    /// Accepts one line for `app_id`. Never waits: slow tails and drains drop (and
    /// later report) what they can't take. Messages over `max_line_bytes` are cut.
    pub fn push(&self, app_id: &str, mut line: LogLine) {
        let inner = &*self.inner;
        inc(&inner.metrics.lines_in);
        if line.message.len() > inner.cfg.max_line_bytes {
            crate::truncate_at_boundary(&mut line.message, inner.cfg.max_line_bytes);
            inc(&inner.metrics.lines_truncated);
        }
        // The ps is platform-controlled, but keep memory bounded regardless.
        crate::truncate_at_boundary(&mut line.ps, 128);

        let app = self.app(app_id);
        let mut st = app.state.lock();
        let seq = seq_for(st.next_seq, &line);
        let entry = Arc::new(Entry {
            seq,
            received: Instant::now(),
            line,
        });
        st.next_seq = seq + 1;
        if st.ring.len() >= inner.cfg.history_lines.max(1) {
            st.ring.pop_front();
        }
        st.ring.push_back(entry.clone());

        let mut closed = false;
        for tail in &st.tails {
            match tail.offer(&entry) {
                Offer::Queued => {}
                Offer::Dropped => inc(&inner.metrics.dropped_tail_overflow),
                Offer::Closed => closed = true,
            }
        }
        if closed {
            st.tails.retain(|t| !t.is_closed());
        }
        for drain in &st.drains {
            if drain.mailbox.offer(&entry) == Offer::Dropped {
                inc(&inner.metrics.dropped_drain_overflow);
            }
        }
        drop(st);

        if !inner.persister.line(app.name.clone(), entry) {
            inc(&inner.metrics.dropped_persist_backlog);
        }
    }

    /// The last `lines` lines of `app_id` matching `filter`, oldest first.
    pub fn history(&self, app_id: &str, filter: &LogFilter, lines: usize) -> Vec<LogLine> {
        let Some(app) = self.inner.apps.read().get(app_id).cloned() else {
            return Vec::new();
        };
        let st = app.state.lock();
        last_matching(&st.ring, filter, lines)
            .into_iter()
            .map(|e| e.line.clone())
            .collect()
    }

    /// Creates a log session and returns its token: 256 random bits, hex. The stream
    /// is served at `/log-streams/{token}` by [`LogHub::stream_router`].
    pub fn create_session(&self, app_id: &str, req: SessionRequest) -> String {
        self.create_owned_session(app_id, req, None)
    }

    /// A session that lives only while [`AccessCheck`] says `owner` may read the app:
    /// its stream ends within `access_recheck` of the owner losing access, and it is
    /// not renewed after that.
    pub fn create_owned_session(
        &self,
        app_id: &str,
        req: SessionRequest,
        owner: Option<String>,
    ) -> String {
        let mut bytes = [0u8; 32];
        if getrandom::getrandom(&mut bytes).is_err() {
            // No OS randomness: fall back to two v4 UUIDs (still 244 random bits).
            bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
            bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        }
        let token = hex::encode(bytes);
        let now = Instant::now();
        let mut sessions = self.inner.sessions.lock();
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            token.clone(),
            Session {
                app_id: app_id.to_owned(),
                req,
                expires: now + self.inner.cfg.session_ttl,
                owner,
            },
        );
        inc(&self.inner.metrics.sessions_created);
        self.save_sessions(&sessions);
        token
    }

    /// Sessions are capability URLs the CLI reconnects to: keep them across restarts.
    fn save_sessions(&self, sessions: &HashMap<String, Session>) {
        let now = Instant::now();
        let wall = unix_now();
        let saved: SavedSessions = sessions
            .iter()
            .map(|(t, s)| {
                let left = s.expires.saturating_duration_since(now).as_secs();
                (
                    t.clone(),
                    s.app_id.clone(),
                    s.req.clone(),
                    wall + left,
                    s.owner.clone(),
                )
            })
            .collect();
        let path = self.inner.cfg.dir.join("sessions.json");
        let tmp = self.inner.cfg.dir.join("sessions.json.tmp");
        if let Ok(json) = serde_json::to_vec(&saved) {
            use std::os::unix::fs::OpenOptionsExt;
            let written = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .and_then(|mut f| std::io::Write::write_all(&mut f, &json));
            if written.is_ok() {
                let _ = std::fs::rename(&tmp, &path);
            }
        }
    }

    fn load_sessions(&self) {
        let Ok(raw) = std::fs::read(self.inner.cfg.dir.join("sessions.json")) else {
            return;
        };
        let Ok(saved) = serde_json::from_slice::<SavedSessions>(&raw) else {
            return;
        };
        let wall = unix_now();
        let now = Instant::now();
        let mut sessions = self.inner.sessions.lock();
        for (token, app_id, req, expires, owner) in saved {
            if expires > wall {
                let expires = now + Duration::from_secs(expires - wall);
                sessions.insert(
                    token,
                    Session {
                        app_id,
                        req,
                        expires,
                        owner,
                    },
                );
            }
        }
    }

    /// Replaces the app's drains. Drains whose id, URL and token are unchanged keep
    /// running (and keep their queue); others are stopped or started.
    pub fn set_drains(&self, app_id: &str, drains: Vec<DrainConfig>) {
        let app = self.app(app_id);
        let tls = self.inner.drain_tls.lock().clone();
        let runtime = tokio::runtime::Handle::try_current()
            .ok()
            .or_else(|| self.inner.runtime.clone());
        let mut st = app.state.lock();
        let mut old = std::mem::take(&mut st.drains);
        for cfg in drains {
            if let Some(pos) = old.iter().position(|d| d.cfg == cfg) {
                st.drains.push(old.swap_remove(pos));
                continue;
            }
            let Some(rt) = runtime.as_ref() else {
                tracing::error!(app = %app_id, drain = %cfg.id, "no tokio runtime: drain not started");
                continue;
            };
            match DrainHandle::start(
                rt,
                app_id,
                cfg,
                self.inner.cfg.drain_buffer,
                self.inner.metrics.clone(),
                tls.clone(),
                self.inner.cfg.egress.clone(),
            ) {
                Ok(handle) => st.drains.push(handle),
                Err(e) => tracing::warn!(app = %app_id, error = %e, "drain not started"),
            }
        }
        for d in old {
            d.stop();
        }
    }

    /// The app was destroyed: drop its history (memory and disk), sessions and drains.
    pub fn forget_app(&self, app_id: &str) {
        self.inner.sessions.lock().retain(|_, s| s.app_id != app_id);
        let removed = self.inner.apps.write().remove(app_id);
        if let Some(app) = removed {
            app.shutdown();
        }
        self.inner.persister.forget(app_id);
    }

    /// Prometheus text exposition of the hub's counters and gauges.
    pub fn metrics_text(&self) -> String {
        use std::fmt::Write;
        let m = &self.inner.metrics;
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            );
        };
        counter(
            "hoist_logs_lines_in_total",
            "Lines pushed into the hub.",
            get(&m.lines_in),
        );
        counter(
            "hoist_logs_lines_truncated_total",
            "Lines cut to max_line_bytes.",
            get(&m.lines_truncated),
        );
        counter(
            "hoist_logs_drain_delivered_total",
            "Lines delivered to drains.",
            get(&m.drain_delivered),
        );
        counter(
            "hoist_logs_drain_connect_errors_total",
            "Failed drain connections or requests.",
            get(&m.drain_connect_errors),
        );
        counter(
            "hoist_logs_sessions_created_total",
            "Log sessions created.",
            get(&m.sessions_created),
        );
        counter(
            "hoist_logs_sse_lines_sent_total",
            "Lines sent to log stream clients.",
            get(&m.sse_lines_sent),
        );
        counter(
            "hoist_logs_persist_errors_total",
            "Errors writing history to disk.",
            get(&m.persist_errors),
        );
        let _ = write!(
            out,
            "# HELP hoist_logs_dropped_total Lines a consumer lost, by reason.\n# TYPE hoist_logs_dropped_total counter\n"
        );
        for (reason, c) in [
            ("tail_overflow", &m.dropped_tail_overflow),
            ("drain_overflow", &m.dropped_drain_overflow),
            ("drain_delivery", &m.dropped_drain_delivery),
            ("persist_backlog", &m.dropped_persist_backlog),
        ] {
            let _ = writeln!(
                out,
                "hoist_logs_dropped_total{{reason=\"{reason}\"}} {}",
                get(c)
            );
        }

        let apps: Vec<Arc<AppLog>> = self.inner.apps.read().values().cloned().collect();
        let mut tails = 0;
        let mut drain_rows = String::new();
        let mut drain_count = 0;
        for app in &apps {
            let st = app.state.lock();
            tails += st.tails.len();
            for d in &st.drains {
                drain_count += 1;
                let (depth, age) = d.mailbox.lag();
                let labels = format!(
                    "app=\"{}\",drain=\"{}\"",
                    escape_label(&app.name),
                    escape_label(&d.cfg.id)
                );
                let _ = writeln!(
                    drain_rows,
                    "hoist_logs_drain_queue_lines{{{labels}}} {depth}"
                );
                let _ = writeln!(
                    drain_rows,
                    "hoist_logs_drain_lag_seconds{{{labels}}} {age:.6}"
                );
            }
        }
        let sessions = self.inner.sessions.lock().len();
        for (name, help, v) in [
            ("hoist_logs_apps", "Apps with log state.", apps.len()),
            (
                "hoist_logs_tail_subscribers",
                "Connected tail streams.",
                tails,
            ),
            ("hoist_logs_sessions", "Unexpired log sessions.", sessions),
            ("hoist_logs_drains", "Running drains.", drain_count),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
            );
        }
        out.push_str("# HELP hoist_logs_drain_queue_lines Lines waiting in a drain's queue.\n# TYPE hoist_logs_drain_queue_lines gauge\n");
        out.push_str("# HELP hoist_logs_drain_lag_seconds Age of the oldest line waiting in a drain's queue.\n# TYPE hoist_logs_drain_lag_seconds gauge\n");
        out.push_str(&drain_rows);
        out
    }

    /// Writes all history to disk (fsync). Drains and streams keep running.
    pub async fn shutdown(&self) {
        self.inner.persister.flush().await;
    }

    /// Tail streams send an SSE comment this often when idle (default 15 s).
    pub fn set_keepalive_interval(&self, every: Duration) {
        self.inner
            .keepalive_ms
            .store(every.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    /// Trust anchors for `syslog+tls://` drains started after this call. By default
    /// the PEM file in `HOIST_DRAIN_CA_FILE`, else the system bundle, is used.
    pub fn set_drain_tls_roots(&self, roots: rustls::RootCertStore) {
        *self.inner.drain_tls.lock() = Some(DrainTls::from_roots(roots));
    }

    fn app(&self, app_id: &str) -> Arc<AppLog> {
        if let Some(app) = self.inner.apps.read().get(app_id) {
            return app.clone();
        }
        self.inner
            .apps
            .write()
            .entry(app_id.to_owned())
            .or_insert_with(|| Arc::new(AppLog::new(app_id)))
            .clone()
    }

    /// Installs the check that ties sessions to their owner's access.
    pub fn set_access_check(&self, check: AccessCheck) {
        *self.inner.access.write() = Some(check);
    }

    /// Whether the session's owner may still read its app. Sessions without an owner
    /// are not checked.
    pub(crate) fn may_read(&self, session: &Session) -> bool {
        let check = self.inner.access.read().clone();
        match (check, &session.owner) {
            (Some(check), Some(owner)) => check(&session.app_id, owner),
            _ => true,
        }
    }

    /// Looks up a session and extends its expiry. `None` if unknown, expired or its
    /// owner lost access (then it is gone for good).
    pub(crate) fn use_session(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let found = {
            let mut sessions = self.inner.sessions.lock();
            let s = sessions.get(token)?;
            if s.expires <= now {
                sessions.remove(token);
                return None;
            }
            s.clone()
        };
        // Checked outside the lock: the check may read the store.
        if !self.may_read(&found) {
            self.revoke_session(token);
            return None;
        }
        let mut sessions = self.inner.sessions.lock();
        let s = sessions.get_mut(token)?;
        s.expires = now + self.inner.cfg.session_ttl;
        Some(s.clone())
    }

    /// Ends a session for good (its owner lost access).
    pub(crate) fn revoke_session(&self, token: &str) {
        let mut sessions = self.inner.sessions.lock();
        if sessions.remove(token).is_some() {
            self.save_sessions(&sessions);
        }
    }

    /// Restarts a session's expiry clock (a tail stream just ended).
    pub(crate) fn touch_session(&self, token: &str) {
        if let Some(s) = self.inner.sessions.lock().get_mut(token) {
            s.expires = Instant::now() + self.inner.cfg.session_ttl;
        }
    }

    /// Snapshots history and, for tails, registers the live feed in one step so no
    /// line is missed or repeated between the two.
    pub(crate) fn subscribe(&self, session: &Session, after_seq: Option<u64>) -> Subscription {
        let app = self.app(&session.app_id);
        let mut st = app.state.lock();
        let filter = &session.req.filter;
        let history = match after_seq {
            Some(after) => st
                .ring
                .iter()
                .filter(|e| e.seq > after && filter.matches(&e.line))
                .cloned()
                .collect(),
            None => last_matching(&st.ring, filter, session.req.lines),
        };
        let live = session.req.tail.then(|| {
            let mb = Mailbox::new(self.inner.cfg.tail_buffer);
            st.tails.push(mb.clone());
            mb
        });
        Subscription { history, live }
    }

    pub(crate) fn count_sent(&self, n: u64) {
        add(&self.inner.metrics.sse_lines_sent, n);
    }
}

/// Event ids follow the line's time in microseconds (kept strictly increasing), so a
/// client's `Last-Event-ID` still means the same line after a daemon restart.
fn seq_for(next: u64, line: &LogLine) -> u64 {
    let micros = u64::try_from(line.time.timestamp_micros()).unwrap_or(0);
    next.max(micros)
}

/// Sessions on disk: `(token, app_id, request, expiry as Unix seconds)`.
type SavedSessions = Vec<(String, String, SessionRequest, u64, Option<String>)>;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn last_matching(ring: &VecDeque<Arc<Entry>>, filter: &LogFilter, n: usize) -> Vec<Arc<Entry>> {
    let mut out: Vec<Arc<Entry>> = ring
        .iter()
        .rev()
        .filter(|e| filter.matches(&e.line))
        .take(n)
        .cloned()
        .collect();
    out.reverse();
    out
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
