//! What differs between the two ways of running a dyno's process: [`Runc`] containers
//! and plain [`Process`]es. Everything else (dyno dirs, shims, their connections and
//! events) is shared in `client.rs`.

use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use serde::Deserialize;

use crate::bundle::{self, BundleInput, Cgroups};
use crate::client::{read_spec, ShimConn};
use crate::proto::Frame;
use crate::shim::{Launch, EXIT};
use crate::{env, DynoSpec, RuntimeConfig, RuntimeError};

pub(crate) trait Backend: Send + Sync + 'static {
    /// How the shim starts the dyno (its spec is already written to `dir`).
    fn launch(
        &self,
        cfg: &RuntimeConfig,
        spec: &DynoSpec,
        dir: &Path,
    ) -> Result<Launch, RuntimeError>;

    /// Sends `signal` to every process of a dyno that has not exited. `conn` is the
    /// daemon's connection to its shim, if there is one.
    fn signal(
        &self,
        id: &str,
        dir: &Path,
        signal: i32,
        conn: Option<Arc<ShimConn>>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// SIGKILLs every process of the dyno, best effort.
    fn kill(&self, id: &str, conn: Option<&ShimConn>) -> impl Future<Output = ()> + Send;

    /// After the shim is gone: removes what the backend keeps for the dyno besides its
    /// directory.
    fn delete(&self, id: &str, dir: &Path)
        -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// States of the backend's containers by id; `None` when it has none (the shim is
    /// then the only witness of a running dyno).
    fn containers(
        &self,
    ) -> impl Future<Output = Result<Option<HashMap<String, ContainerState>>, RuntimeError>> + Send;

    fn memory_usage(&self, spec: &DynoSpec) -> Option<u64>;

    /// Start-up, blocking: ids of the backend's containers of this data dir.
    fn container_ids(&self) -> Vec<String>;

    /// Start-up, blocking: removes the container and cgroups of a dyno the data dir does
    /// not know.
    fn remove_leftovers(&self, id: &str);
}

#[derive(Debug, Deserialize)]
pub(crate) struct ContainerState {
    pub id: String,
    pub pid: u32,
    pub status: String,
}

impl ContainerState {
    pub fn is_running(&self) -> bool {
        matches!(
            self.status.as_str(),
            "running" | "created" | "paused" | "pausing"
        )
    }
}

/// runc containers under this data dir's runc root.
pub(crate) struct Runc {
    runc: PathBuf,
    root: PathBuf,
    cgroups: Cgroups,
}

impl Runc {
    pub fn new(cfg: &RuntimeConfig) -> Result<Runc, RuntimeError> {
        let runc = find_in_path("runc").ok_or(RuntimeError::RuncMissing)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.runc_root)
            .map_err(|e| RuntimeError::io(format!("creating {}", cfg.runc_root.display()), e))?;
        Ok(Runc {
            runc,
            root: cfg.runc_root.clone(),
            cgroups: Cgroups::detect(),
        })
    }

    async fn run(&self, args: &[&str]) -> Result<std::process::Output, RuntimeError> {
        // Short-lived subcommands that leave no process behind, so output() is safe here
        // (unlike `runc run -d`/`create`).
        tokio::process::Command::new(&self.runc)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| RuntimeError::io(format!("running runc {}", args.join(" ")), e))
    }

    /// A short runc subcommand, waited for on this thread (start-up only).
    fn run_blocking(&self, args: &[&str]) -> Option<std::process::Output> {
        std::process::Command::new(&self.runc)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()
    }
}

impl Backend for Runc {
    fn launch(
        &self,
        cfg: &RuntimeConfig,
        spec: &DynoSpec,
        dir: &Path,
    ) -> Result<Launch, RuntimeError> {
        let bundle = bundle::write_bundle(&BundleInput {
            spec,
            dyno_dir: dir,
            stack_dirs: &cfg.stack_dirs,
            shim_exe: &cfg.shim_exe,
            cgroups: self.cgroups,
        })?;
        Ok(Launch::Runc {
            runc: self.runc.clone(),
            root: self.root.clone(),
            bundle,
            oom_file: self.cgroups.oom_file(spec),
        })
    }

    async fn signal(
        &self,
        id: &str,
        dir: &Path,
        signal: i32,
        _conn: Option<Arc<ShimConn>>,
    ) -> Result<(), RuntimeError> {
        let sig = signal.to_string();
        let out = self.run(&["kill", "--all", id, &sig]).await?;
        if out.status.success() || dir.join(EXIT).exists() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.contains("not running") || stderr.contains("does not exist") {
            return Ok(());
        }
        Err(RuntimeError::Runc {
            command: format!("kill --all {id} {sig}"),
            stderr,
        })
    }

    async fn kill(&self, id: &str, _conn: Option<&ShimConn>) {
        let _ = self.run(&["kill", "--all", id, "KILL"]).await;
    }

    async fn delete(&self, id: &str, dir: &Path) -> Result<(), RuntimeError> {
        let out = self.run(&["delete", "--force", id]).await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && !stderr.contains("does not exist") {
            return Err(RuntimeError::Runc {
                command: format!("delete --force {id}"),
                stderr: stderr.trim().into(),
            });
        }
        // The app's parent cgroups go with its last dyno (rmdir fails while others of
        // the app still run, which is fine).
        if let Some(spec) = read_spec(dir) {
            self.cgroups.remove_app_parent(&spec.app_name);
        }
        Ok(())
    }

    async fn containers(&self) -> Result<Option<HashMap<String, ContainerState>>, RuntimeError> {
        let out = self.run(&["list", "--format", "json"]).await?;
        if !out.status.success() {
            return Err(RuntimeError::Runc {
                command: "list".into(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        // runc prints `null` when there are no containers.
        let list: Option<Vec<ContainerState>> =
            serde_json::from_slice(&out.stdout).map_err(|e| RuntimeError::Runc {
                command: "list".into(),
                stderr: format!("unexpected output: {e}"),
            })?;
        Ok(Some(
            list.unwrap_or_default()
                .into_iter()
                .map(|s| (s.id.clone(), s))
                .collect(),
        ))
    }

    fn memory_usage(&self, spec: &DynoSpec) -> Option<u64> {
        self.cgroups.memory_usage(spec)
    }

    fn container_ids(&self) -> Vec<String> {
        let Some(out) = self.run_blocking(&["list", "-q"]) else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    }

    fn remove_leftovers(&self, id: &str) {
        let _ = self.run_blocking(&["kill", "--all", id, "KILL"]);
        let _ = self.run_blocking(&["delete", "--force", id]);
        if !self.cgroups.remove_dyno_leftovers(id) {
            tracing::warn!(dyno = %id, "a cgroup of the dyno could not be removed");
        }
    }
}

/// Plain child processes of the shims: no isolation, no limits, the slug dir is the
/// (shared, unprotected) working directory. Signals go through the shim, which owns the
/// dyno's process group.
pub(crate) struct Process;

impl Backend for Process {
    fn launch(
        &self,
        _cfg: &RuntimeConfig,
        spec: &DynoSpec,
        _dir: &Path,
    ) -> Result<Launch, RuntimeError> {
        let app = spec.slug_dir.to_string_lossy().to_string();
        Ok(Launch::Process {
            argv: vec![
                env::shell(Path::new("/")).to_string(),
                "-c".into(),
                env::wrapper_script(&spec.command, &app),
            ],
            env: env::dyno_env(spec, &app),
            cwd: spec.slug_dir.clone(),
        })
    }

    async fn signal(
        &self,
        id: &str,
        _dir: &Path,
        signal: i32,
        conn: Option<Arc<ShimConn>>,
    ) -> Result<(), RuntimeError> {
        let conn = conn.ok_or_else(|| RuntimeError::ShimUnreachable(id.to_string()))?;
        conn.send(&Frame::Signal(signal))
            .await
            .map_err(|_| RuntimeError::ShimUnreachable(id.to_string()))
    }

    async fn kill(&self, _id: &str, conn: Option<&ShimConn>) {
        if let Some(c) = conn {
            let _ = c.send(&Frame::Signal(libc::SIGKILL)).await;
        }
    }

    async fn delete(&self, _id: &str, _dir: &Path) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn containers(&self) -> Result<Option<HashMap<String, ContainerState>>, RuntimeError> {
        Ok(None)
    }

    fn memory_usage(&self, _spec: &DynoSpec) -> Option<u64> {
        None
    }

    fn container_ids(&self) -> Vec<String> {
        Vec::new()
    }

    fn remove_leftovers(&self, _id: &str) {}
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
