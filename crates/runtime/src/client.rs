//! Daemon side: the `Runtime` implementations. They prepare a dyno directory, start its
//! shim, and keep one connection per shim that turns frames into [`DynoEvent`]s.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};

use crate::backend::{Backend, Process, Runc};
use crate::proto::{self, Decoder, Frame, Role};
use crate::shim::{ExitRecord, ShimConfig, EXIT, PID, SHIM_PID, SOCKET, SPILL};
use crate::{
    dynos_dir, valid_name, validate_spec, DynoEvent, DynoSpec, ObservedDyno, OutputStream, Runtime,
    RuntimeConfig, RuntimeError,
};

const EVENT_CAPACITY: usize = 1024;
const SPILL_LIMIT: u64 = 16 * 1024 * 1024;
const COLLECT_TIMEOUT_SECS: u64 = 600;
/// Output kept from a dyno that failed to start, for the error message.
const EARLY_OUTPUT_LIMIT: usize = 16 * 1024;
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long after a start its spare shim is replaced.
const SPARE_REFILL_DELAY: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Default)]
struct ConnState {
    pid: Option<u32>,
    exit: Option<(i32, bool)>,
    closed: bool,
    early_output: Vec<u8>,
}

pub(crate) struct ShimConn {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    state: watch::Sender<ConnState>,
}

impl ShimConn {
    pub(crate) async fn send(&self, frame: &Frame) -> io::Result<()> {
        self.writer.lock().await.write_all(&frame.encode()).await
    }
}

/// A shim started ahead of time (`shim <dynos_dir> --spare`) that waits on stdin for its
/// dyno dir.
struct SpareShim {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
}

struct Core<B> {
    cfg: RuntimeConfig,
    backend: B,
    dynos: PathBuf,
    events_tx: Mutex<mpsc::Sender<DynoEvent>>,
    events_rx: Mutex<Option<mpsc::Receiver<DynoEvent>>>,
    conns: Mutex<HashMap<String, Arc<ShimConn>>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    handle: tokio::runtime::Handle,
    /// Taken by the next start; exec and loading of the shim binary (milliseconds on a
    /// busy host) are then off that start's critical path.
    spare: Mutex<Option<SpareShim>>,
}

/// Dynos as runc containers (the default on Linux).
pub struct RuncRuntime {
    core: Arc<Core<Runc>>,
}

/// Dynos as plain child processes of their shims: no isolation, no limits, the slug
/// dir is the (shared, unprotected) working directory. For development only.
pub struct ProcessRuntime {
    core: Arc<Core<Process>>,
}

impl RuncRuntime {
    /// Must be called inside a tokio runtime; re-connects to the shims of running dynos.
    pub fn new(cfg: RuntimeConfig) -> Result<Self, RuntimeError> {
        let backend = Runc::new(&cfg)?;
        let core = Core::new(cfg, backend)?;
        Ok(RuncRuntime { core })
    }
}

impl ProcessRuntime {
    pub fn new(cfg: RuntimeConfig) -> Result<Self, RuntimeError> {
        tracing::warn!("process runtime: dynos run without isolation or resource limits; use it for development only");
        Ok(ProcessRuntime {
            core: Core::new(cfg, Process)?,
        })
    }
}

impl Drop for RuncRuntime {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

impl<B: Backend> Core<B> {
    fn new(cfg: RuntimeConfig, backend: B) -> Result<Arc<Core<B>>, RuntimeError> {
        let handle =
            tokio::runtime::Handle::try_current().map_err(|_| RuntimeError::NoTokioRuntime)?;
        let dynos = dynos_dir(&cfg.data_dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dynos)
            .map_err(|e| RuntimeError::io(format!("creating {}", dynos.display()), e))?;
        let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
        let core = Arc::new(Core {
            cfg,
            backend,
            dynos,
            events_tx: Mutex::new(tx),
            events_rx: Mutex::new(Some(rx)),
            conns: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            handle,
            spare: Mutex::new(None),
        });
        // Before anything can start a dyno: a dir without its spec would look unknown.
        core.sweep_unknown();
        core.readopt();
        core.refill_spare();
        Ok(core)
    }

    /// Starts a shim that waits for its dyno dir on stdin; it exits on EOF, so one
    /// dropped or left behind by a dead daemon goes away by itself.
    fn spawn_shim(&self) -> io::Result<SpareShim> {
        let _guard = self.handle.enter();
        let mut child = tokio::process::Command::new(&self.cfg.shim_exe)
            .arg("shim")
            .arg(&self.dynos)
            .arg("--spare")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("shim stdin not piped"))?;
        Ok(SpareShim { child, stdin })
    }

    fn refill_spare(&self) {
        let mut spare = lock(&self.spare);
        if spare.is_some() {
            return;
        }
        match self.spawn_shim() {
            Ok(s) => *spare = Some(s),
            Err(e) => tracing::warn!(error = %e, "starting a spare shim"),
        }
    }

    fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, f: F) {
        let h = self.handle.spawn(f);
        let mut tasks = lock(&self.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(h.abort_handle());
    }

    /// Stops all connection tasks; the shims keep running and spill until the next daemon.
    fn shutdown(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        lock(&self.conns).clear();
        // Closing its stdin ends the spare shim.
        lock(&self.spare).take();
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.dynos.join(id)
    }

    /// After a daemon restart: connect to every live shim; for dynos whose shim already
    /// gave up waiting, replay the spill file and the recorded exit.
    fn readopt(self: &Arc<Self>) {
        let Ok(entries) = fs::read_dir(&self.dynos) else {
            return;
        };
        let _guard = self.handle.enter();
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            if !valid_name(&id) {
                continue;
            }
            let dir = entry.path();
            match std::os::unix::net::UnixStream::connect(dir.join(SOCKET)) {
                Ok(s) => {
                    let s = s
                        .set_nonblocking(true)
                        .and_then(|()| UnixStream::from_std(s));
                    match s {
                        Ok(s) => {
                            self.adopt(&id, s, false);
                        }
                        Err(e) => {
                            tracing::warn!(dyno = %id, error = %e, "cannot adopt shim connection")
                        }
                    }
                }
                Err(_) => {
                    if dir.join(EXIT).exists() {
                        let core = self.clone();
                        self.spawn(async move { core.replay_dead_shim(id, dir).await });
                    }
                }
            }
        }
    }

    /// Registers a daemon connection to a shim and starts its reader task.
    fn adopt(self: &Arc<Self>, id: &str, stream: UnixStream, hello_sent: bool) -> Arc<ShimConn> {
        let (r, w) = stream.into_split();
        let conn = Arc::new(ShimConn {
            writer: tokio::sync::Mutex::new(w),
            state: watch::channel(ConnState::default()).0,
        });
        lock(&self.conns).insert(id.to_string(), conn.clone());
        let core = self.clone();
        let id = id.to_string();
        let c = conn.clone();
        self.spawn(async move {
            if !hello_sent && c.send(&Frame::Hello(Role::Daemon)).await.is_err() {
                c.state.send_modify(|s| s.closed = true);
                return;
            }
            core.read_shim(id, r, c).await
        });
        conn
    }

    async fn emit(&self, ev: DynoEvent) {
        let tx = lock(&self.events_tx).clone();
        // No subscriber: the event is dropped, as there is nobody to tell.
        let _ = tx.send(ev).await;
    }

    async fn read_shim(self: Arc<Self>, id: String, mut r: OwnedReadHalf, conn: Arc<ShimConn>) {
        let mut dec = Decoder::new();
        let mut buf = vec![0u8; 64 * 1024];
        // Output of a dyno that has not started yet is held back: if it fails to start,
        // it becomes the error message of start() instead of log lines.
        let mut held: Vec<DynoEvent> = Vec::new();
        let mut started = false;
        'read: loop {
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            dec.feed(&buf[..n]);
            loop {
                let frame = match dec.next_frame() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) if e.is_fatal() => {
                        tracing::warn!(dyno = %id, error = %e, "closing a broken shim connection");
                        break 'read;
                    }
                    Err(e) => {
                        tracing::debug!(dyno = %id, error = %e, "skipping a shim frame");
                        continue;
                    }
                };
                let ev = match frame {
                    Frame::Status { pid: Some(pid) } => {
                        conn.state.send_modify(|s| s.pid = Some(pid.get()));
                        if !started {
                            started = true;
                            for ev in held.drain(..) {
                                self.emit(ev).await;
                            }
                        }
                        continue;
                    }
                    Frame::Output {
                        stream,
                        read_at_micros,
                        data,
                    } => {
                        if !started {
                            conn.state.send_modify(|s| {
                                let room = EARLY_OUTPUT_LIMIT.saturating_sub(s.early_output.len());
                                s.early_output
                                    .extend_from_slice(&data[..data.len().min(room)]);
                            });
                        }
                        output_event(&id, stream, read_at_micros, data)
                    }
                    Frame::Dropped { bytes } => DynoEvent::OutputDropped {
                        id: id.clone(),
                        bytes,
                    },
                    Frame::Exited { status, oom_killed } => {
                        if started {
                            self.emit(DynoEvent::Exited {
                                id: id.clone(),
                                status,
                                oom_killed,
                            })
                            .await;
                        }
                        conn.state
                            .send_modify(|s| s.exit = Some((status, oom_killed)));
                        // Recorded: the shim may exit now.
                        let _ = conn.send(&Frame::ExitAck).await;
                        continue;
                    }
                    _ => continue,
                };
                if started {
                    self.emit(ev).await;
                } else {
                    held.push(ev);
                }
            }
        }
        conn.state.send_modify(|s| s.closed = true);
        let mut conns = lock(&self.conns);
        if conns.get(&id).is_some_and(|c| Arc::ptr_eq(c, &conn)) {
            conns.remove(&id);
        }
    }

    async fn replay_dead_shim(self: Arc<Self>, id: String, dir: PathBuf) {
        let Some(exit) = read_exit(&dir) else { return };
        if !exit.started {
            return;
        }
        if let Ok(bytes) = tokio::fs::read(dir.join(SPILL)).await {
            let mut dec = Decoder::from_bytes(bytes);
            loop {
                match dec.next_frame() {
                    Ok(Some(Frame::Output {
                        stream,
                        read_at_micros,
                        data,
                    })) => {
                        self.emit(output_event(&id, stream, read_at_micros, data))
                            .await
                    }
                    Ok(Some(_)) => {}
                    Err(e) if !e.is_fatal() => {}
                    // The end, or a spill file cut short.
                    Ok(None) | Err(_) => break,
                }
            }
        }
        self.emit(DynoEvent::Exited {
            id,
            status: exit.status,
            oom_killed: exit.oom_killed,
        })
        .await;
    }

    /// Start-up: removes every trace of a dyno this data dir cannot account for (no
    /// readable spec: a removal cut short, or a data dir whose state was lost): its
    /// shim, container, cgroups, mounts and directory. Only this data dir's dynos are
    /// touched: its `dynos/` entries and the containers in its own runc root.
    fn sweep_unknown(&self) {
        let Ok(entries) = fs::read_dir(&self.dynos) else {
            return;
        };
        let mut unknown = BTreeSet::new();
        let mut known = HashSet::new();
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            if !valid_name(&id) {
                continue;
            }
            match read_spec(&entry.path()) {
                Some(spec) if spec.id == id => {
                    known.insert(id);
                }
                _ => {
                    unknown.insert(id);
                }
            }
        }
        for id in self.backend.container_ids() {
            if valid_name(&id) && !known.contains(&id) {
                unknown.insert(id);
            }
        }
        for id in &unknown {
            tracing::warn!(dyno = %id, "removing the leftovers of a dyno this data directory does not know");
            let dir = self.dir(id);
            kill_shims_of(&dir);
            self.backend.remove_leftovers(id);
            unmount_all_under(&dir);
            if let Err(e) = fs::remove_dir_all(&dir) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(dyno = %id, error = %e, "removing the dyno directory");
                }
            }
        }
    }

    async fn start(self: &Arc<Self>, spec: DynoSpec) -> Result<(), RuntimeError> {
        validate_spec(&spec)?;
        let dir = self.dir(&spec.id);
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::AlreadyExists(spec.id))
            }
            Err(e) => return Err(RuntimeError::io(format!("creating {}", dir.display()), e)),
        }
        let id = spec.id.clone();
        match self.start_in(spec, &dir).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Err(re) = self.remove(&id).await {
                    tracing::warn!(dyno = %id, error = %re, "cleaning up after a failed start");
                }
                Err(e)
            }
        }
    }

    async fn start_in(self: &Arc<Self>, spec: DynoSpec, dir: &Path) -> Result<(), RuntimeError> {
        let io = |what: &str, e| RuntimeError::io(format!("{what} in {}", dir.display()), e);
        let spec_json =
            serde_json::to_vec_pretty(&spec).map_err(|e| io("encoding spec.json", e.into()))?;
        fs::write(dir.join("spec.json"), spec_json).map_err(|e| io("writing spec.json", e))?;
        let launch = self.backend.launch(&self.cfg, &spec, dir)?;
        let shim_cfg = ShimConfig {
            id: spec.id.clone(),
            attach: spec.attach,
            tty: spec.tty,
            spill_limit: SPILL_LIMIT,
            collect_timeout_secs: COLLECT_TIMEOUT_SECS,
            launch,
        };
        let shim_json =
            serde_json::to_vec(&shim_cfg).map_err(|e| io("encoding shim.json", e.into()))?;
        fs::write(dir.join("shim.json"), shim_json).map_err(|e| io("writing shim.json", e))?;

        // The shim is our child until this daemon goes away (then init adopts it); it
        // calls setsid itself, logs to shim.log and says "ok" on stdout once its socket
        // is bound. A spare one is taken if there is one (it may have died: then a new one).
        let mut line = dir.as_os_str().as_encoded_bytes().to_vec();
        if line.contains(&b'\n') {
            return Err(RuntimeError::InvalidSpec(format!(
                "dyno dir {} contains a newline",
                dir.display()
            )));
        }
        line.push(b'\n');
        let spare = lock(&self.spare).take();
        let mut child = None;
        for shim in spare
            .into_iter()
            .map(Ok)
            .chain(std::iter::once_with(|| self.spawn_shim()))
        {
            let mut shim = shim.map_err(|e| {
                RuntimeError::io(format!("starting shim {}", self.cfg.shim_exe.display()), e)
            })?;
            if shim.stdin.write_all(&line).await.is_ok() {
                child = Some(shim.child);
                break;
            }
            // Not reaped otherwise: dropping a tokio child leaves it to the orphan reaper.
            let _ = shim.child.start_kill();
        }
        let Some(mut child) = child else {
            return Err(RuntimeError::StartFailed {
                id: spec.id,
                message: "shim did not take its dyno dir".into(),
            });
        };
        let mut ready = [0u8; 3];
        let ok = match child.stdout.take() {
            Some(mut out) => out.read_exact(&mut ready).await.is_ok() && &ready == b"ok\n",
            None => false,
        };
        // The only reaper of this shim process while we live.
        self.spawn(async move {
            let _ = child.wait().await;
        });
        if !ok {
            let log = fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
            return Err(RuntimeError::StartFailed {
                id: spec.id,
                message: format!("shim failed: {}", log.trim()),
            });
        }
        let stream = UnixStream::connect(dir.join(SOCKET))
            .await
            .map_err(|e| io("connecting to shim.sock", e))?;
        let conn = self.adopt(&spec.id, stream, false);
        let mut rx = conn.state.subscribe();
        let waited = tokio::time::timeout(
            START_TIMEOUT,
            rx.wait_for(|s| s.pid.is_some() || s.exit.is_some() || s.closed),
        )
        .await;
        let state = conn.state.borrow().clone();
        if state.pid.is_some() {
            // For the next start. Not right away: spawning blocks this thread and takes
            // CPU the new dyno's first steps need.
            let core = self.clone();
            self.spawn(async move {
                tokio::time::sleep(SPARE_REFILL_DELAY).await;
                let _ = tokio::task::spawn_blocking(move || core.refill_spare()).await;
            });
            return Ok(());
        }
        let mut message = String::from_utf8_lossy(&state.early_output)
            .trim()
            .to_string();
        if waited.is_err() {
            message = format!("not started after {}s. {message}", START_TIMEOUT.as_secs());
        }
        if message.is_empty() {
            message = fs::read_to_string(dir.join("shim.log"))
                .unwrap_or_default()
                .trim()
                .to_string();
        }
        Err(RuntimeError::StartFailed {
            id: spec.id,
            message,
        })
    }

    async fn signal(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
        let dir = self.checked_dir(id)?;
        if dir.join(EXIT).exists() {
            return Ok(());
        }
        // Bound first: a guard held across the await would make the future !Send.
        let conn = lock(&self.conns).get(id).cloned();
        self.backend.signal(id, &dir, signal, conn).await
    }

    fn checked_dir(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        let dir = self.dir(id);
        if !valid_name(id) || !dir.join("spec.json").exists() {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        Ok(dir)
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        if !valid_name(id) {
            return Err(RuntimeError::NotFound(id.to_string()));
        }
        let dir = self.dir(id);
        let conn = lock(&self.conns).get(id).cloned();
        self.backend.kill(id, conn.as_deref()).await;
        // The reader task records the exit and acks it; then the shim exits.
        if let Some(c) = &conn {
            let mut rx = c.state.subscribe();
            let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.closed)).await;
        }
        let shim = shim_pid(&dir);
        if let Some(pid) = shim {
            for _ in 0..50 {
                if !shim_alive(pid, &dir) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if shim_alive(pid, &dir) {
                // The pid was just verified to be this dyno's shim.
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
        self.backend.delete(id, &dir).await?;
        lock(&self.conns).remove(id);
        // The writable layer, and anything else mounted there (nothing: process
        // backend, failed start).
        unmount_all_under(&dir);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io(format!("removing {}", dir.display()), e)),
        }
    }

    async fn list(&self) -> Result<Vec<ObservedDyno>, RuntimeError> {
        let containers = self.backend.containers().await?;
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dynos)
            .map_err(|e| RuntimeError::io(format!("reading {}", self.dynos.display()), e))?;
        for entry in entries.flatten() {
            let dir = entry.path();
            let spec_path = dir.join("spec.json");
            let Ok(bytes) = fs::read(&spec_path) else {
                continue;
            };
            let Ok(spec) = serde_json::from_slice::<DynoSpec>(&bytes) else {
                tracing::warn!(path = %spec_path.display(), "unreadable dyno spec");
                continue;
            };
            let started_at = fs::metadata(&spec_path)
                .and_then(|m| m.modified())
                .map(chrono::DateTime::<chrono::Utc>::from)
                .unwrap_or_else(|_| chrono::Utc::now());
            let exit = read_exit(&dir);
            let shim_up = shim_pid(&dir).is_some_and(|p| shim_alive(p, &dir));
            let container = containers.as_ref().and_then(|l| l.get(&spec.id));
            let running = exit.is_none()
                && match container {
                    Some(c) => c.is_running(),
                    // No containers, or not (yet) in runc's list while starting.
                    None => shim_up,
                };
            let pid = container.map(|c| c.pid).filter(|p| *p > 0).or_else(|| {
                fs::read_to_string(dir.join(PID))
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            });
            out.push(ObservedDyno {
                running,
                exit_status: exit.as_ref().map(|e| e.status),
                oom_killed: exit.as_ref().is_some_and(|e| e.oom_killed),
                started_at,
                pid: if running { pid } else { None },
                spec,
            });
        }
        out.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
        Ok(out)
    }

    fn subscribe(&self) -> mpsc::Receiver<DynoEvent> {
        if let Some(rx) = lock(&self.events_rx).take() {
            return rx;
        }
        let (tx, rx) = mpsc::channel(EVENT_CAPACITY);
        *lock(&self.events_tx) = tx;
        rx
    }

    fn memory_usage(&self, spec: &DynoSpec) -> Option<u64> {
        self.backend.memory_usage(spec)
    }

    async fn attach(&self, id: &str) -> Result<Attached, RuntimeError> {
        let dir = self.checked_dir(id)?;
        let spec = read_spec(&dir).ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
        if !spec.attach {
            return Err(RuntimeError::NotAttachable(id.to_string()));
        }
        let stream = UnixStream::connect(dir.join(SOCKET))
            .await
            .map_err(|_| RuntimeError::ShimUnreachable(id.to_string()))?;
        let (r, mut w) = stream.into_split();
        w.write_all(&Frame::Hello(Role::Attach).encode())
            .await
            .map_err(|_| RuntimeError::ShimUnreachable(id.to_string()))?;
        Ok(Attached {
            input: AttachInput { w, tty: spec.tty },
            output: AttachOutput {
                r,
                dec: Decoder::new(),
                buf: vec![0u8; 64 * 1024],
            },
        })
    }
}

/// The event for an output frame; unstamped frames (from shims of an older daemon) are
/// stamped now.
fn output_event(
    id: &str,
    stream: OutputStream,
    read_at_micros: Option<i64>,
    data: Vec<u8>,
) -> DynoEvent {
    let read_at = read_at_micros
        .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_micros)
        .unwrap_or_else(chrono::Utc::now);
    DynoEvent::Output {
        id: id.to_string(),
        stream,
        data,
        read_at,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves consistent data behind.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn read_spec(dir: &Path) -> Option<DynoSpec> {
    fs::read(dir.join("spec.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// Unmounts (lazily, deepest first) every mount at or below `dir`.
fn unmount_all_under(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mount_path(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape_mount_path(s: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
}

/// SIGKILLs every shim serving `dir`, found through /proc since the dir's `shim.pid`
/// may be gone with the rest of its state.
fn kill_shims_of(dir: &Path) {
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if shim_alive(pid, dir) {
            // The process is a shim of this data dir's dyno.
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
    }
}

fn read_exit(dir: &Path) -> Option<ExitRecord> {
    fs::read(dir.join(EXIT))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn shim_pid(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join(SHIM_PID))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The pid is alive and still this dyno's shim: `<exe> shim <dir>`, or a spare shim
/// (`<exe> shim <dynos_dir> --spare`) that was handed `dir` and logs to its `shim.log`.
fn shim_alive(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    // A zombie has an empty cmdline; treat it as dead.
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    if args.get(1) != Some(&&b"shim"[..]) {
        return false;
    }
    let bytes = |p: &Path| p.as_os_str().as_encoded_bytes().to_vec();
    if args.get(2) == Some(&bytes(dir).as_slice()) {
        return true;
    }
    let spare = dir
        .parent()
        .is_some_and(|d| args.get(2) == Some(&bytes(d).as_slice()))
        && args.get(3) == Some(&&b"--spare"[..]);
    // Its stderr is the dir's shim.log (with " (deleted)" once the dir is gone).
    let log = bytes(&dir.join("shim.log"));
    spare && fs::read_link(format!("/proc/{pid}/fd/2")).is_ok_and(|l| bytes(&l).starts_with(&log))
}

/// Stdio of an attached one-off dyno.
pub struct Attached {
    pub input: AttachInput,
    pub output: AttachOutput,
}

impl Attached {
    pub fn split(self) -> (AttachInput, AttachOutput) {
        (self.input, self.output)
    }
}

pub struct AttachInput {
    w: OwnedWriteHalf,
    tty: bool,
}

impl AttachInput {
    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(proto::MAX_PAYLOAD) {
            self.w
                .write_all(&Frame::Stdin(chunk.to_vec()).encode())
                .await?;
        }
        Ok(())
    }

    /// Closes the dyno's stdin (no-op with a tty, where EOF is the ^D byte).
    pub async fn close_stdin(&mut self) -> io::Result<()> {
        self.w.write_all(&Frame::StdinEof.encode()).await
    }

    /// Sets the terminal size (tty dynos only; ignored otherwise).
    pub async fn resize(&mut self, cols: u16, rows: u16) -> io::Result<()> {
        if !self.tty {
            return Ok(());
        }
        self.w
            .write_all(&Frame::Resize { cols, rows }.encode())
            .await
    }

    pub fn is_tty(&self) -> bool {
        self.tty
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachEvent {
    /// With a tty everything arrives as `Stdout`.
    Output {
        stream: OutputStream,
        data: Vec<u8>,
    },
    Dropped {
        bytes: u64,
    },
    Exited {
        status: i32,
        oom_killed: bool,
    },
}

pub struct AttachOutput {
    r: OwnedReadHalf,
    dec: Decoder,
    buf: Vec<u8>,
}

impl AttachOutput {
    /// Next piece of output, then `Exited`; `None` when the shim closed the connection
    /// (e.g. another attach took over).
    pub async fn next(&mut self) -> Option<AttachEvent> {
        loop {
            match self.dec.next_frame() {
                Ok(Some(Frame::Output { stream, data, .. })) => {
                    return Some(AttachEvent::Output { stream, data })
                }
                Ok(Some(Frame::Dropped { bytes })) => return Some(AttachEvent::Dropped { bytes }),
                Ok(Some(Frame::Exited { status, oom_killed })) => {
                    return Some(AttachEvent::Exited { status, oom_killed })
                }
                Ok(Some(_)) => continue,
                Err(e) if !e.is_fatal() => continue,
                Err(_) => return None,
                Ok(None) => {}
            }
            match self.r.read(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.dec.feed(&self.buf[..n]),
            }
        }
    }
}

macro_rules! impl_runtime {
    ($t:ty, $name:literal) => {
        #[async_trait::async_trait]
        impl Runtime for $t {
            fn name(&self) -> &'static str {
                $name
            }
            async fn start(&self, spec: DynoSpec) -> Result<(), RuntimeError> {
                self.core.start(spec).await
            }
            async fn signal(&self, id: &str, signal: i32) -> Result<(), RuntimeError> {
                self.core.signal(id, signal).await
            }
            async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
                self.core.remove(id).await
            }
            async fn list(&self) -> Result<Vec<ObservedDyno>, RuntimeError> {
                self.core.list().await
            }
            fn subscribe(&self) -> mpsc::Receiver<DynoEvent> {
                self.core.subscribe()
            }
            async fn attach(&self, id: &str) -> Result<Attached, RuntimeError> {
                self.core.attach(id).await
            }
            fn memory_usage(&self, spec: &DynoSpec) -> Option<u64> {
                self.core.memory_usage(spec)
            }
        }
    };
}

impl_runtime!(RuncRuntime, "runc");
impl_runtime!(ProcessRuntime, "process");
