//! The build container: one runc container per build, with the same isolation as a
//! dyno (the OCI config comes from `hoist_runtime::bundle`): a read-only root that
//! holds only the stack's system directories, its own pid/mount/uts/ipc namespaces, no
//! capabilities, `no_new_privs`, an unprivileged user, and memory and process limits
//! in its own cgroup. The host's network is shared, as it is for dynos (npm and pip
//! download during builds).
//!
//! The build sees exactly these host directories, at the same paths as on the host so
//! that the paths the daemon passes to scripts mean the same inside: the build dir,
//! `TMPDIR`, the app's cache, the buildpacks and the shared runtime cache (read-write),
//! `ENV_DIR` and the earlier buildpacks' exports (read-only). Its `/tmp` is a private
//! tmpfs charged to the build's memory limit.
//!
//! The container's init is the build agent ([`crate::agent`]): scripts are sent to it
//! one by one over stdin, so a build pays for one container start.

use crate::agent::{Request, MAX_LINE};
use crate::error::BuildError;
use crate::sandbox::{take_line, Finished, Limits, Script};
use hoist_runtime::bundle::{self, Cgroups, ContainerSpec};
use hoist_runtime::piped::{self, PipedContainer};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ExitStatus};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the agent binary appears inside the container.
const AGENT_PATH: &str = "/.hoist/build-agent";
/// Size bound of the build's private `/tmp` (its pages count against the memory limit).
const TMP_SIZE: &str = "size=1g";
/// How long runc gets to tear a container down before it is forced.
const STOP_WAIT: Duration = Duration::from_secs(10);
/// Keep the end of runc's stderr for errors.
const MAX_STDERR: usize = 8 * 1024;

/// How to start build containers.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// runc's state dir for builds; separate from the dynos' so that the dyno
    /// runtime never mistakes a build for a dyno.
    pub runc_root: PathBuf,
    /// A binary that runs the agent when started as `<exe> build-agent` (`hoist`, or
    /// the small `hoist-build-agent`).
    pub agent_exe: PathBuf,
    /// Host directories mounted read-only as the build's system (as for dynos).
    pub stack_dirs: Vec<PathBuf>,
}

/// Host directories the build sees, at their host paths.
pub(crate) struct Binds<'a> {
    pub read_write: Vec<&'a Path>,
    pub read_only: Vec<&'a Path>,
}

enum Msg {
    Line {
        captured: bool,
        text: String,
    },
    Exit(i32),
    SpawnFailed(String),
    /// The agent's stdout closed: the container is gone.
    Gone,
}

pub(crate) struct BuildContainer {
    cgroup_path: String,
    cgroups: Cgroups,
    runc: PipedContainer,
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<Msg>,
    stderr: Arc<Mutex<String>>,
    /// Ends when runc's stderr closes, i.e. when `runc run` is gone.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    limits: Limits,
}

impl BuildContainer {
    /// Writes the bundle under `bundle_dir` and starts the container. Returns at once:
    /// the first script waits for the agent if it is not up yet.
    pub fn start(
        cfg: &ContainerConfig,
        bundle_dir: &Path,
        binds: &Binds<'_>,
        limits: Limits,
    ) -> Result<BuildContainer, BuildError> {
        let t = Instant::now();
        let id = format!("build-{}", crate::tree::random_id());
        let cgroups = Cgroups::detect();
        let cgroup_path = format!("/hoist-builds/{id}");
        let runtime_err = |e: hoist_runtime::RuntimeError| BuildError::Container(e.to_string());
        let rootfs = bundle_dir.join("rootfs");
        bundle::prepare_rootfs(&rootfs, &[".hoist"]).map_err(runtime_err)?;
        let mut mounts = bundle::system_mounts(&rootfs, &cfg.stack_dirs).map_err(runtime_err)?;
        // Before the binds: one of them may lie under /tmp (it is then created inside
        // this tmpfs, not on the host).
        mounts.push(bundle::mount(
            "/tmp",
            "tmpfs",
            "tmpfs",
            &["nosuid", "nodev", "mode=1777", TMP_SIZE],
        ));
        for p in &binds.read_write {
            mounts.push(bundle::bind_rw(p, p));
        }
        for p in &binds.read_only {
            mounts.push(bundle::bind_ro(p, p));
        }
        mounts.push(bundle::bind_ro(&cfg.agent_exe, Path::new(AGENT_PATH)));
        let spec = bundle::container_spec(ContainerSpec {
            args: vec![AGENT_PATH.into(), "build-agent".into()],
            env: vec!["PATH=/usr/bin:/bin".into()],
            cwd: "/".into(),
            uid: limits.uid,
            gid: limits.gid,
            terminal: false,
            hostname: id.clone(),
            cgroups_path: cgroup_path.clone(),
            memory_bytes: limits.memory_limit_bytes,
            cpu_shares: None,
            pids_limit: i64::try_from(limits.max_processes).unwrap_or(i64::MAX),
            cgroups,
            mounts,
        })
        .map_err(runtime_err)?;
        bundle::write_config(bundle_dir, &spec).map_err(runtime_err)?;
        let (runc, pipes) =
            PipedContainer::start(&cfg.runc_root, bundle_dir, &id).map_err(runtime_err)?;
        tracing::debug!(container = %id, ms = t.elapsed().as_millis() as u64, "build container spawned");

        let (tx, rx) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        std::thread::spawn(move || read_agent(pipes.stdout, tx));
        let keep = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(pipes.stderr).lines().map_while(Result::ok) {
                let mut k = keep.lock().unwrap_or_else(|p| p.into_inner());
                if k.len() < MAX_STDERR {
                    k.push_str(line.trim());
                    k.push('\n');
                }
            }
        });
        Ok(BuildContainer {
            cgroup_path,
            cgroups,
            runc,
            stdin: Some(pipes.stdin),
            rx,
            stderr,
            stderr_reader: Some(stderr_reader),
            limits,
        })
    }

    /// Runs one script in the container, passing each output line to `out`.
    pub fn run(
        &mut self,
        script: Script<'_>,
        out: &mut dyn FnMut(&str),
    ) -> Result<Finished, BuildError> {
        let what = script.program.display().to_string();
        let timed_out = BuildError::TimedOut {
            limit: self.limits.time_limit,
        };
        if Instant::now() >= self.limits.deadline {
            return Err(timed_out);
        }
        let utf8 = |p: &Path| {
            p.to_str().map(str::to_string).ok_or_else(|| {
                BuildError::Container(format!("{} is not a UTF-8 path", p.display()))
            })
        };
        let req = Request {
            program: utf8(script.program)?,
            args: script
                .args
                .iter()
                .map(|a| utf8(Path::new(a)))
                .collect::<Result<_, _>>()?,
            env: script.env,
            cwd: utf8(script.cwd)?,
            capture: script.capture_stdout,
        };
        let mut line = serde_json::to_string(&req)
            .map_err(|e| BuildError::Container(format!("encoding a request: {e}")))?;
        line.push('\n');
        let sent = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(line.as_bytes()).and_then(|_| stdin.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        if sent.is_err() {
            return Err(self.died());
        }
        let mut captured = String::new();
        let started = Instant::now();
        loop {
            let now = Instant::now();
            if now >= self.limits.deadline {
                self.kill();
                return Err(timed_out);
            }
            match self.rx.recv_timeout(self.limits.deadline - now) {
                Ok(Msg::Line {
                    captured: to_capture,
                    text,
                }) => take_line(&mut captured, to_capture, &text, out),
                Ok(Msg::Exit(raw)) => {
                    tracing::debug!(script = %what, ms = started.elapsed().as_millis() as u64, "build script done");
                    return Ok(Finished {
                        status: ExitStatus::from_raw(raw),
                        stdout: captured,
                    });
                }
                Ok(Msg::SpawnFailed(message)) => {
                    return Err(BuildError::Spawn {
                        what,
                        source: std::io::Error::other(message),
                    })
                }
                Ok(Msg::Gone) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(self.died())
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// The error for a container that ended under a script (OOM-killed agent, runc
    /// failure), with what runc said.
    fn died(&mut self) -> BuildError {
        self.stop();
        // Everything runc said is in once its stderr closed (bounded: a stray holder
        // of the pipe must not hang the build).
        if let Some(reader) = self.stderr_reader.take() {
            let until = Instant::now() + Duration::from_secs(1);
            while !reader.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let said = self
            .stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .trim()
            .to_string();
        BuildError::Container(if said.is_empty() {
            "the build container ended unexpectedly".into()
        } else {
            format!("the build container ended unexpectedly: {said}")
        })
    }

    fn kill(&mut self) {
        self.runc.kill();
        self.stop();
    }

    /// Whether the kernel's OOM killer has killed a process of this build (read from
    /// the container's memory cgroup while it exists).
    pub fn out_of_memory(&self) -> bool {
        std::fs::read_to_string(self.cgroups.oom_file_at(&self.cgroup_path))
            .ok()
            .as_deref()
            .and_then(bundle::oom_kills)
            .is_some_and(|n| n > 0)
    }

    /// Lets the container begin to stop (its agent exits once stdin closes) while the
    /// caller goes on; the wait happens on drop.
    pub fn finish(&mut self) {
        drop(self.stdin.take());
    }

    /// Closes the agent's stdin (it exits, and `runc run` deletes the container) and
    /// waits; forces the container away if that takes too long.
    fn stop(&mut self) {
        let t = Instant::now();
        drop(self.stdin.take());
        self.runc.wait_or_force(STOP_WAIT);
        tracing::debug!(
            ms = t.elapsed().as_millis() as u64,
            "build container stopped"
        );
    }
}

impl Drop for BuildContainer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Turns the agent's tagged lines into messages.
fn read_agent(out: std::process::ChildStdout, tx: mpsc::Sender<Msg>) {
    let mut reader = BufReader::with_capacity(MAX_LINE + 16, out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        let text = String::from_utf8_lossy(&buf);
        let msg = if let Some(rest) = text.strip_prefix("o ") {
            Msg::Line {
                captured: false,
                text: rest.to_string(),
            }
        } else if let Some(rest) = text.strip_prefix("c ") {
            Msg::Line {
                captured: true,
                text: rest.to_string(),
            }
        } else if let Some(rest) = text.strip_prefix("e ") {
            Msg::SpawnFailed(rest.to_string())
        } else if let Some(rest) = text.strip_prefix("x ") {
            match rest.trim().parse() {
                Ok(raw) => Msg::Exit(raw),
                Err(_) => Msg::SpawnFailed(format!("agent sent a bad status {rest:?}")),
            }
        } else {
            // The agent writes nothing else; show whatever a broken agent printed.
            Msg::Line {
                captured: false,
                text: text.into_owned(),
            }
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
    let _ = tx.send(Msg::Gone);
}

/// Kills and deletes build containers left by a daemon that died mid-build (their
/// agents exit when the daemon's pipe closes, but a stuck container would remain).
pub fn sweep(runc_root: &Path) {
    for id in piped::delete_all(runc_root, "build-") {
        tracing::warn!(container = %id, "removed a build container left from before");
    }
}
