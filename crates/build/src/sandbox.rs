//! The process sandbox for buildpack scripts: the fallback when builds cannot run in a
//! runc container ([`crate::container`]), i.e. with `hoist server --runtime process`.
//!
//! A script runs as an unprivileged uid/gid (supplementary groups dropped), with
//! `no_new_privs` (setuid binaries cannot regain root), in its own process group, with
//! a minimal environment chosen by the caller, stdin from `/dev/null`, and limits:
//! - memory: a cgroup v1 `memory` group when the host has one (so JVMs that reserve
//!   large address ranges still start), else `RLIMIT_AS`;
//! - processes: a cgroup v1 `pids` group when available, plus `RLIMIT_NPROC`;
//! - time: at the deadline the whole process group (and every process in the cgroups)
//!   is killed with SIGKILL.
//!
//! After a script exits, whatever it left running in its group or cgroup is killed, so
//! no build process survives into packing. Not covered (the container covers them):
//! filesystem visibility (the script sees the host filesystem with the sandbox user's
//! rights), other processes of the host, and, without cgroups, processes that leave the
//! group with `setsid`.

use crate::error::BuildError;
use nix::fcntl::OFlag;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Largest captured stdout (detect names, release YAML).
const MAX_CAPTURE: usize = 1024 * 1024;
/// How long output may keep flowing after the script exited and its group was killed.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Limits and identity of a build's scripts, in a container or in the sandbox.
#[derive(Debug, Clone)]
pub struct Limits {
    pub uid: u32,
    pub gid: u32,
    pub memory_limit_bytes: u64,
    pub max_processes: u64,
    /// When every script of the build must be done.
    pub deadline: Instant,
    /// Shown in the timeout error.
    pub time_limit: Duration,
}

/// One script invocation.
pub struct Script<'a> {
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    pub cwd: &'a Path,
    /// Capture stdout (returned) instead of streaming it; stderr is always streamed.
    pub capture_stdout: bool,
}

#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Captured stdout when `capture_stdout` was set.
    pub stdout: String,
}

enum Msg {
    Line { captured: bool, text: String },
    Eof,
}

impl Limits {
    /// Runs a script in the process sandbox to completion, passing each output line
    /// to `out`.
    pub fn run_sandboxed(
        &self,
        script: Script<'_>,
        out: &mut dyn FnMut(&str),
    ) -> Result<Finished, BuildError> {
        let what = script.program.display().to_string();
        let spawn_err = |e: std::io::Error| BuildError::Spawn {
            what: what.clone(),
            source: e,
        };
        if Instant::now() >= self.deadline {
            return Err(BuildError::TimedOut {
                limit: self.time_limit,
            });
        }
        let (out_r, out_w) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
        let (err_r, err_w) = if script.capture_stdout {
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
            (Some(r), w)
        } else {
            (None, out_w.try_clone().map_err(spawn_err)?)
        };

        let cgroup = if self.uid != 0 && nix::unistd::geteuid().is_root() {
            match Cgroup::create(self.memory_limit_bytes, self.max_processes) {
                Ok(cg) => cg,
                Err(e) => {
                    tracing::warn!(error = %e, "build cgroup unavailable; using rlimits only");
                    None
                }
            }
        } else {
            None
        };

        let mut cmd = Command::new(script.program);
        cmd.args(&script.args)
            .env_clear()
            .envs(script.env.iter().map(|(k, v)| (k, v)))
            .current_dir(script.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w))
            .process_group(0);
        let limits = ChildLimits {
            uid: self.uid,
            gid: self.gid,
            address_space: if cgroup.is_some() {
                None
            } else {
                Some(self.memory_limit_bytes)
            },
            nproc: self.max_processes,
            cgroup_fds: cgroup
                .as_ref()
                .map(|c| c.procs_fds.iter().map(|f| f.as_raw_fd()).collect())
                .unwrap_or_default(),
        };
        // SAFETY: the closure only makes async-signal-safe syscalls (write, setrlimit,
        // setgroups, setgid, setuid, prctl) on data prepared before fork.
        unsafe {
            cmd.pre_exec(move || limits.apply());
        }
        let spawned = cmd.spawn();
        // The Command holds our copies of the pipe write ends: drop it so EOF can arrive.
        drop(cmd);
        let mut child = spawned.map_err(spawn_err)?;
        let pgid = Pid::from_raw(child.id() as i32);

        let (tx, rx) = mpsc::channel();
        let mut open_streams = 1;
        spawn_reader(out_r, script.capture_stdout, tx.clone());
        if let Some(r) = err_r {
            open_streams += 1;
            spawn_reader(r, false, tx.clone());
        }
        drop(tx);

        let mut captured = String::new();
        let mut status: Option<ExitStatus> = None;
        let mut exited_at: Option<Instant> = None;
        let result = loop {
            if open_streams == 0 && status.is_some() {
                break Ok(());
            }
            let now = Instant::now();
            if now >= self.deadline {
                break Err(BuildError::TimedOut {
                    limit: self.time_limit,
                });
            }
            if let Some(t) = exited_at {
                if now.duration_since(t) > DRAIN_GRACE {
                    // Something outside our reach still holds the pipe; stop listening.
                    break Ok(());
                }
            }
            let wait = (self.deadline - now).min(Duration::from_millis(100));
            match rx.recv_timeout(wait) {
                Ok(Msg::Line {
                    captured: to_capture,
                    text,
                }) => take_line(&mut captured, to_capture, &text, out),
                Ok(Msg::Eof) => open_streams -= 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => open_streams = 0,
            }
            if status.is_none() {
                if let Ok(Some(s)) = child.try_wait() {
                    status = Some(s);
                    exited_at = Some(Instant::now());
                    // Leftover background processes would hold the pipes open.
                    kill_all(pgid, cgroup.as_ref());
                }
            }
        };
        kill_all(pgid, cgroup.as_ref());
        let status = match status {
            Some(s) => s,
            None => child.wait().map_err(spawn_err)?,
        };
        if let Some(cg) = cgroup {
            cg.destroy();
        }
        result?;
        Ok(Finished {
            status,
            stdout: captured,
        })
    }
}

/// Streams a line to `out`, or appends it to the captured stdout (up to
/// [`MAX_CAPTURE`]; the rest is dropped).
pub(crate) fn take_line(
    stdout: &mut String,
    captured: bool,
    text: &str,
    out: &mut dyn FnMut(&str),
) {
    if !captured {
        out(text);
    } else if stdout.len() + text.len() < MAX_CAPTURE {
        stdout.push_str(text);
        stdout.push('\n');
    }
}

fn kill_all(pgid: Pid, cgroup: Option<&Cgroup>) {
    // ESRCH (group already gone) is the normal case.
    let _ = killpg(pgid, Signal::SIGKILL);
    if let Some(cg) = cgroup {
        cg.kill_members();
    }
}

/// Reads a pipe into lines for the main loop. Ends on EOF or when the receiver is gone.
fn spawn_reader(fd: OwnedFd, captured: bool, tx: mpsc::Sender<Msg>) {
    std::thread::spawn(move || {
        crate::agent::for_each_line(fd, |line| {
            let text = String::from_utf8_lossy(line).into_owned();
            tx.send(Msg::Line { captured, text }).is_ok()
        });
        let _ = tx.send(Msg::Eof);
    });
}

/// Everything the child applies to itself between fork and exec.
struct ChildLimits {
    uid: u32,
    gid: u32,
    address_space: Option<u64>,
    nproc: u64,
    cgroup_fds: Vec<i32>,
}

impl ChildLimits {
    fn apply(&self) -> std::io::Result<()> {
        fn check(rc: libc::c_int) -> std::io::Result<()> {
            if rc == -1 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
        fn set(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
            let lim = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            // SAFETY: plain syscall on a stack value.
            check(unsafe { libc::setrlimit(resource, &lim) })
        }
        // Join the cgroups while still root ("0" = the writing process).
        for &fd in &self.cgroup_fds {
            // SAFETY: write(2) on an fd opened before fork.
            let rc = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            if rc != 1 {
                return Err(std::io::Error::last_os_error());
            }
        }
        if let Some(bytes) = self.address_space {
            set(libc::RLIMIT_AS, bytes)?;
        }
        set(libc::RLIMIT_CORE, 0)?;
        if self.uid != 0 {
            set(libc::RLIMIT_NPROC, self.nproc)?;
            let groups = [self.gid as libc::gid_t];
            // SAFETY: plain syscalls; order matters (groups and gid before uid).
            unsafe {
                check(libc::setgroups(1, groups.as_ptr()))?;
                check(libc::setgid(self.gid))?;
                check(libc::setuid(self.uid))?;
            }
        }
        // SAFETY: plain syscall.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })?;
        Ok(())
    }
}

/// A cgroup v1 `memory` + `pids` group for one script run.
struct Cgroup {
    dirs: Vec<PathBuf>,
    procs_fds: Vec<fs::File>,
}

const CGROUP_V1_ROOT: &str = "/sys/fs/cgroup";
/// Separate from the runtime's `/hoist/<app>/<dyno>` groups so names cannot collide.
const CGROUP_PARENT: &str = "hoist-builds";

impl Cgroup {
    /// `Ok(None)` when the host has no cgroup v1 memory controller (cgroup v2 hosts
    /// fall back to rlimits until builds move into runc).
    fn create(memory: u64, pids: u64) -> std::io::Result<Option<Cgroup>> {
        let mem_root = Path::new(CGROUP_V1_ROOT).join("memory");
        let pids_root = Path::new(CGROUP_V1_ROOT).join("pids");
        if !mem_root.join("memory.limit_in_bytes").exists() {
            return Ok(None);
        }
        let name = format!("build-{}", crate::tree::random_id());
        let mut cg = Cgroup {
            dirs: Vec::new(),
            procs_fds: Vec::new(),
        };
        let mem = mem_root.join(CGROUP_PARENT).join(&name);
        fs::create_dir_all(&mem)?;
        cg.dirs.push(mem.clone());
        fs::write(mem.join("memory.limit_in_bytes"), memory.to_string())?;
        // Without swap accounting this file does not exist; the RAM limit still holds.
        let _ = fs::write(mem.join("memory.memsw.limit_in_bytes"), memory.to_string());
        cg.procs_fds.push(
            fs::OpenOptions::new()
                .write(true)
                .open(mem.join("cgroup.procs"))?,
        );
        if pids_root.join("cgroup.procs").exists() {
            let p = pids_root.join(CGROUP_PARENT).join(&name);
            fs::create_dir_all(&p)?;
            cg.dirs.push(p.clone());
            fs::write(p.join("pids.max"), pids.to_string())?;
            cg.procs_fds.push(
                fs::OpenOptions::new()
                    .write(true)
                    .open(p.join("cgroup.procs"))?,
            );
        }
        Ok(Some(cg))
    }

    fn members(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for dir in &self.dirs {
            if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        pids
    }

    fn kill_members(&self) {
        for pid in self.members() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// Kills what is left and removes the groups (rmdir fails while members exist).
    fn destroy(self) {
        for _ in 0..50 {
            self.kill_members();
            if self.members().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(self.procs_fds);
        for dir in &self.dirs {
            if let Err(e) = fs::remove_dir(dir) {
                tracing::warn!(cgroup = %dir.display(), error = %e, "could not remove build cgroup");
            }
        }
    }
}
