//! Small process and filesystem helpers shared by the managed servers.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

use crate::AddonError;

/// The unprivileged OS user a managed server runs as. `None` when the daemon is not
/// root: the server then runs as the daemon's own user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// Resolves `user` when we are root (servers refuse or should not run as root).
    pub fn resolve(user: &str) -> Result<Option<RunAs>, AddonError> {
        if !nix::unistd::Uid::effective().is_root() {
            return Ok(None);
        }
        match nix::unistd::User::from_name(user) {
            Ok(Some(u)) => Ok(Some(RunAs {
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            })),
            Ok(None) => Err(AddonError::Provider(format!(
                "OS user `{user}` does not exist; managed add-on servers do not run as root"
            ))),
            Err(e) => Err(AddonError::Provider(format!(
                "looking up OS user `{user}`: {e}"
            ))),
        }
    }

    pub fn apply(self, cmd: &mut Command) {
        cmd.uid(self.uid).gid(self.gid);
    }

    pub fn chown(self, path: &Path) -> Result<(), AddonError> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))
            .map_err(|e| AddonError::io(format!("chown {}", path.display()), e))
    }
}

/// Creates `dir` (and parents) with `mode`, owned by `owner` when given.
pub(crate) fn make_dir(dir: &Path, mode: u32, owner: Option<RunAs>) -> Result<(), AddonError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| AddonError::io(format!("mkdir {}", dir.display()), e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| AddonError::io(format!("chmod {}", dir.display()), e))?;
    if let Some(owner) = owner {
        owner.chown(dir)?;
    }
    Ok(())
}

/// Adds the search bit for "others" (never read) on each dir so an unprivileged
/// server user can reach its own directory below a root-only data directory.
pub(crate) fn allow_traverse(dirs: &[&Path]) -> Result<(), AddonError> {
    for dir in dirs {
        let meta = std::fs::metadata(dir)
            .map_err(|e| AddonError::io(format!("stat {}", dir.display()), e))?;
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(
                dir,
                std::fs::Permissions::from_mode((mode & 0o7777) | 0o001),
            )
            .map_err(|e| AddonError::io(format!("chmod {}", dir.display()), e))?;
        }
    }
    Ok(())
}

/// Writes a secret file (mode 0600) owned by `owner`.
pub(crate) fn write_private(
    path: &Path,
    contents: &str,
    owner: Option<RunAs>,
) -> Result<(), AddonError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| AddonError::io(format!("create {}", tmp.display()), e))?;
    f.write_all(contents.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| AddonError::io(format!("write {}", tmp.display()), e))?;
    if let Some(owner) = owner {
        owner.chown(&tmp)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| AddonError::io(format!("rename {}", path.display()), e))
}

/// A free TCP port on `host`. Racy by nature (the port is released before the server
/// binds it); callers retry on a bind failure.
pub(crate) fn free_port(host: &str) -> Result<u16, AddonError> {
    let l = std::net::TcpListener::bind((host, 0))
        .map_err(|e| AddonError::io(format!("finding a free port on {host}"), e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| AddonError::io("local_addr", e))
}

/// True if a process with this pid exists (EPERM also means it exists).
pub(crate) fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => !is_zombie(pid),
        Err(nix::errno::Errno::EPERM) => true,
        Err(_) => false,
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The process's command line with NULs as spaces ("" if it is gone).
pub(crate) fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

pub(crate) fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

/// Waits until `pid` is gone, up to `limit`. Returns whether it exited.
pub(crate) async fn wait_gone(pid: i32, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if !pid_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    !pid_alive(pid)
}

/// Runs a command to completion with a time limit; the child is killed on timeout.
/// `stdin` is written first (SQL goes there so it never shows up in `ps`).
pub(crate) async fn run(
    mut cmd: Command,
    stdin: Option<&str>,
    limit: Duration,
) -> Result<Output, AddonError> {
    use tokio::io::AsyncWriteExt;
    cmd.kill_on_drop(true)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .map_err(|e| AddonError::io(format!("running {program}"), e))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .await
            .map_err(|e| AddonError::io(format!("writing to {program}"), e))?;
        drop(pipe);
    }
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => out.map_err(|e| AddonError::io(format!("waiting for {program}"), e)),
        Err(_) => Err(AddonError::Timeout(limit)),
    }
}

/// Memory of a managed server: (RSS kB, PSS kB, process count) summed over `root`
/// and all its descendants (PostgreSQL backends make themselves process-group
/// leaders, so the process tree is the unit, not the group). PSS counts shared
/// buffers once; RSS counts them once per process that touched them.
pub fn tree_memory_kb(root: i32) -> (u64, u64, usize) {
    let mut parent = std::collections::HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the ")": state ppid ...
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            if let Some(ppid) = rest
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<i32>().ok())
            {
                parent.insert(pid, ppid);
            }
        }
    }
    let in_tree = |mut pid: i32| {
        for _ in 0..64 {
            if pid == root {
                return true;
            }
            match parent.get(&pid) {
                Some(&p) if p > 1 => pid = p,
                _ => return false,
            }
        }
        false
    };
    let (mut rss, mut pss, mut count) = (0, 0, 0);
    for &pid in parent.keys() {
        if !in_tree(pid) {
            continue;
        }
        count += 1;
        if let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            for line in rollup.lines() {
                let mut it = line.split_whitespace();
                let key = it.next().unwrap_or("");
                let val: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                match key {
                    "Rss:" => rss += val,
                    "Pss:" => pss += val,
                    _ => {}
                }
            }
        }
    }
    (rss, pss, count)
}

/// Locates `name` in `dir`, or fails with `Unavailable { package }`.
pub(crate) fn require_binary(
    dir: &Path,
    name: &str,
    package: &str,
) -> Result<std::path::PathBuf, AddonError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        tracing::warn!(binary = %path.display(), package, "add-on binary missing");
        Err(AddonError::Unavailable {
            package: package.to_string(),
        })
    }
}
