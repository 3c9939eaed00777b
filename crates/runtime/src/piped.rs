//! A container run in the foreground with piped stdio: `runc run` without a terminal
//! hands its stdin, stdout and stderr to the container's init. Builds use this (their
//! init is the build agent); dynos use the shim instead.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::RuntimeError;

pub struct PipedContainer {
    id: String,
    runc_root: PathBuf,
    runc: Child,
}

/// The container's init's end of the pipes.
pub struct Pipes {
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

impl PipedContainer {
    /// Starts `runc run` for the bundle. Returns once runc is spawned; errors of the
    /// container's creation arrive on stderr and the pipes close.
    pub fn start(
        runc_root: &Path,
        bundle: &Path,
        id: &str,
    ) -> Result<(PipedContainer, Pipes), RuntimeError> {
        std::fs::create_dir_all(runc_root)
            .map_err(|e| RuntimeError::io(format!("creating {}", runc_root.display()), e))?;
        let mut runc = Command::new("runc")
            .arg("--root")
            .arg(runc_root)
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => RuntimeError::RuncMissing,
                _ => RuntimeError::io("starting runc", e),
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (runc.stdin.take(), runc.stdout.take(), runc.stderr.take())
        else {
            let _ = runc.kill();
            let _ = runc.wait();
            return Err(RuntimeError::io(
                "starting runc",
                std::io::Error::other("no pipes"),
            ));
        };
        Ok((
            PipedContainer {
                id: id.to_string(),
                runc_root: runc_root.to_path_buf(),
                runc,
            },
            Pipes {
                stdin,
                stdout,
                stderr,
            },
        ))
    }

    /// SIGKILL to the container's init: the kernel then kills the rest of it.
    pub fn kill(&self) {
        let _ = self.runc_cmd(&["kill", &self.id, "KILL"]);
    }

    /// Waits for `runc run` to end (it deletes the container when init exits), up to
    /// `within`; then kills it and deletes whatever runc left.
    pub fn wait_or_force(&mut self, within: Duration) {
        let until = Instant::now() + within;
        loop {
            match self.runc.try_wait() {
                // `runc run` deleted the container itself.
                Ok(Some(status)) if status.success() => return,
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= until => {
                    tracing::warn!(container = %self.id, "container did not stop; forcing it");
                    self.kill();
                    let _ = self.runc.kill();
                    let _ = self.runc.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
        let _ = self.runc_cmd(&["delete", "--force", &self.id]);
    }

    fn runc_cmd(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
        runc_cmd(&self.runc_root, args)
    }
}

fn runc_cmd(root: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new("runc")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
}

/// Deletes (killing first) every container under `runc_root` whose id starts with
/// `prefix`; returns their ids.
pub fn delete_all(runc_root: &Path, prefix: &str) -> Vec<String> {
    if !runc_root.is_dir() {
        return Vec::new();
    }
    let Ok(list) = runc_cmd(runc_root, &["list", "-q"]) else {
        return Vec::new();
    };
    let ids: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::trim)
        .filter(|id| !id.is_empty() && id.starts_with(prefix))
        .map(String::from)
        .collect();
    for id in &ids {
        let _ = runc_cmd(runc_root, &["delete", "--force", id]);
    }
    ids
}
