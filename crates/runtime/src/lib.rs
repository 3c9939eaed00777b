//! Runtime backends that run dynos: `runc` (OCI bundles, the default on Linux) and
//! `process` (plain child processes, development only).
//!
//! Every dyno is supervised by a small *shim* process (`hoist shim <dyno_dir>`, or a
//! spare `hoist shim <dynos_dir> --spare` started ahead of time and handed the dir on
//! stdin), which
//! survives daemon restarts: it runs the container in the foreground, owns its stdio and
//! exit status, and serves them over `<dyno_dir>/shim.sock`. While no daemon is
//! connected it spills output to a bounded file and replays it on reconnect.
//!
//! Invariants:
//! - Only this crate invokes `runc`.
//! - Each child has exactly one reaper: the shim reaps `runc run` (or the plain process),
//!   `runc run` reaps the container's init, the dyno init reaps everything inside.
//! - The shim never uses tokio or threads (it forks and must stay small).

mod backend;
pub mod bundle;
mod client;
mod env;
pub mod piped;
mod proto;
pub mod reaper;
mod shim;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use client::{AttachEvent, AttachInput, AttachOutput, Attached, ProcessRuntime, RuncRuntime};
pub use shim::{main_dispatch, run_dyno_init, run_shim, run_spare_shim};

/// uid/gid every dyno process runs as inside a runc container. Slugs should be unpacked
/// owned by this uid so that the app can modify its own files (as on Heroku).
pub const DYNO_UID: u32 = 10000;
/// See [`DYNO_UID`].
pub const DYNO_GID: u32 = 10000;

/// Everything needed to (re)create one dyno. Persisted as `dynos/<id>/spec.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynoSpec {
    /// Unique container id, `[a-z0-9-]`, e.g. `myapp-web-1-8f3a2c`.
    pub id: String,
    pub app_id: String,
    pub app_name: String,
    pub release_version: i64,
    /// `web.1`, `run.4711`.
    pub name: String,
    pub process_type: String,
    /// Shell command line, run through bash (or sh) after sourcing `.profile.d`.
    pub command: String,
    pub env: BTreeMap<String, String>,
    /// Unpacked slug on the host; shared read-only by all dynos of the release.
    pub slug_dir: PathBuf,
    pub size: hoist_types::DynoSize,
    /// One-off attached: stdio goes to [`Runtime::attach`], not to events.
    pub attach: bool,
    pub tty: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynoEvent {
    /// Raw bytes as read from the dyno's stdout/stderr (not split into lines).
    Output {
        id: String,
        stream: OutputStream,
        data: Vec<u8>,
        /// When the shim read them from the dyno (not when the daemon got them: output
        /// spilled while no daemon was connected arrives later).
        read_at: chrono::DateTime<chrono::Utc>,
    },
    /// The shim had to drop this many bytes of output because its spill file was full
    /// while no daemon was reading (Heroku's `Error L10 (output buffer overflow)`).
    OutputDropped { id: String, bytes: u64 },
    /// The dyno's process ended. `status` is the exit code, or 128+signal.
    /// `oom_killed` is true when the memory cgroup killed a process (log R15).
    Exited {
        id: String,
        status: i32,
        oom_killed: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedDyno {
    pub spec: DynoSpec,
    pub running: bool,
    pub exit_status: Option<i32>,
    pub oom_killed: bool,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// Host pid of the dyno's init process (runc) or of its shell (process backend).
    pub pid: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `dynos/` lives under it.
    pub data_dir: PathBuf,
    /// The `hoist` binary; the shim is started as `<shim_exe> shim <dyno_dir>` and the
    /// same file is bind-mounted into containers as their init (`dyno-init`).
    pub shim_exe: PathBuf,
    /// runc state directory (private to hoist), default `/run/hoist/runc`.
    pub runc_root: PathBuf,
    /// Host directories bind-mounted read-only into every container (symlinks such as
    /// `/bin -> usr/bin` are recreated as symlinks).
    pub stack_dirs: Vec<PathBuf>,
}

impl RuntimeConfig {
    /// Defaults: runc root `/run/hoist/runc`, stack `/usr /bin /lib /lib64 /sbin`.
    pub fn new(data_dir: impl Into<PathBuf>, shim_exe: impl Into<PathBuf>) -> Self {
        RuntimeConfig {
            data_dir: data_dir.into(),
            shim_exe: shim_exe.into(),
            runc_root: PathBuf::from("/run/hoist/runc"),
            stack_dirs: default_stack_dirs(),
        }
    }
}

pub fn default_stack_dirs() -> Vec<PathBuf> {
    [
        "/usr", "/bin", "/lib", "/lib32", "/lib64", "/libx32", "/sbin",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| p.symlink_metadata().is_ok())
    .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no dyno with id {0:?}")]
    NotFound(String),
    #[error("a dyno with id {0:?} already exists")]
    AlreadyExists(String),
    #[error("invalid dyno spec: {0}")]
    InvalidSpec(String),
    #[error(
        "runc was not found in PATH; install the Debian package `runc` or use the process runtime"
    )]
    RuncMissing,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("runc {command} failed: {stderr}")]
    Runc { command: String, stderr: String },
    #[error("dyno {id} failed to start: {message}")]
    StartFailed { id: String, message: String },
    #[error("dyno {0} is not running under a reachable shim")]
    ShimUnreachable(String),
    #[error("dyno {0} was not started with attach=true")]
    NotAttachable(String),
    #[error("the runtime must be created inside a tokio runtime")]
    NoTokioRuntime,
}

impl RuntimeError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RuntimeError::Io {
            context: context.into(),
            source,
        }
    }
}

#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Returns once the dyno's process has started (not waiting for it to exit). On error
    /// nothing of the dyno is left behind.
    async fn start(&self, spec: DynoSpec) -> Result<(), RuntimeError>;
    /// Sends `signal` to every process of the dyno. Ok if the dyno already exited.
    async fn signal(&self, id: &str, signal: i32) -> Result<(), RuntimeError>;
    /// Kills (SIGKILL) if still running, deletes container, bundle and writable layer.
    /// Ok if the dyno does not exist.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    /// All dynos with a directory under `data_dir/dynos`, running or exited.
    async fn list(&self) -> Result<Vec<ObservedDyno>, RuntimeError>;
    /// Output and exits of all dynos. Call once; a second call takes over the stream.
    fn subscribe(&self) -> tokio::sync::mpsc::Receiver<DynoEvent>;
    /// Stdio of an `attach=true` dyno. Output produced before attaching is kept (bounded)
    /// and delivered first. One attachment at a time; a new one replaces the old.
    async fn attach(&self, id: &str) -> Result<Attached, RuntimeError>;
    /// Bytes of memory the dyno uses now (its memory cgroup), if the backend knows.
    fn memory_usage(&self, _spec: &DynoSpec) -> Option<u64> {
        None
    }
}

/// Ids and app names end up in paths and cgroup names: `[a-z0-9-]`, 1..=63, no leading `-`.
pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && !s.starts_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(crate) fn validate_spec(spec: &DynoSpec) -> Result<(), RuntimeError> {
    if !valid_name(&spec.id) {
        return Err(RuntimeError::InvalidSpec(format!(
            "id {:?} must be 1-63 characters of a-z, 0-9 and -",
            spec.id
        )));
    }
    if !valid_name(&spec.app_name) {
        return Err(RuntimeError::InvalidSpec(format!(
            "app name {:?} must be 1-63 characters of a-z, 0-9 and -",
            spec.app_name
        )));
    }
    if spec.command.trim().is_empty() {
        return Err(RuntimeError::InvalidSpec("command is empty".into()));
    }
    if spec.command.contains('\0') {
        return Err(RuntimeError::InvalidSpec(
            "command contains a NUL byte".into(),
        ));
    }
    for (k, v) in &spec.env {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            return Err(RuntimeError::InvalidSpec(format!(
                "invalid config var name {k:?}"
            )));
        }
    }
    let slug = spec.slug_dir.to_string_lossy();
    // overlayfs option syntax cannot carry these characters.
    if !spec.slug_dir.is_absolute() || slug.contains([',', ':', '\0', '\n']) {
        return Err(RuntimeError::InvalidSpec(format!(
            "slug dir {slug:?} must be an absolute path without ',' or ':'"
        )));
    }
    if !spec.slug_dir.is_dir() {
        return Err(RuntimeError::InvalidSpec(format!(
            "slug dir {slug:?} is not a directory"
        )));
    }
    Ok(())
}

pub(crate) fn dynos_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("dynos")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_restricted() {
        assert!(valid_name("myapp-web-1-8f3a2c"));
        assert!(!valid_name("My-App"));
        assert!(!valid_name("../x"));
        assert!(!valid_name("-x"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(64)));
    }
}
