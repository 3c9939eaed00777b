//! Integration tests against real servers on 127.0.0.1 (PostgreSQL, Redis, and a
//! partner HTTP server started by the test). Run as root (the CI user): managed
//! servers run as the `postgres` / `redis` OS users.

mod partner;
mod postgres;
mod redis;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hoist_addons::postgres::PostgresConfig;
use hoist_addons::{AddonsConfig, Registry};

/// Small managed servers so several test data dirs fit in memory.
pub fn test_config() -> AddonsConfig {
    let partner = hoist_addons::partner::PartnerConfig {
        timeout: Duration::from_millis(800),
        ..Default::default()
    };
    AddonsConfig {
        postgres: PostgresConfig {
            shared_buffers_mb: 16,
            max_connections: 60,
            ..PostgresConfig::default()
        },
        partner,
        ..AddonsConfig::default()
    }
}

pub fn registry(dir: &Path, cfg: AddonsConfig) -> Registry {
    Registry::new(dir, cfg).expect("registry")
}

/// Runs a command and returns (success, stdout+stderr) for assertions and messages.
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("spawn");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn psql(url: &str, sql: &str) -> (bool, String) {
    run(Command::new("psql")
        .arg("-X")
        .arg("-qAt")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg(url)
        .arg("-c")
        .arg(sql)
        .env("PGCONNECT_TIMEOUT", "5"))
}

/// SIGKILL, then wait until the process is really gone (or a zombie): the signal is
/// delivered asynchronously, and a re-adoption check right after `kill` could still
/// see the old process alive.
pub fn kill9(pid: i32) {
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat)
                if !stat
                    .rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => return,
        }
    }
}

/// Stops every managed server under a data dir when dropped (also when an assertion
/// fails mid-test): postmaster gets SIGINT (fast shutdown), redis-servers SIGTERM.
pub struct ServersGuard(pub std::path::PathBuf);

impl Drop for ServersGuard {
    fn drop(&mut self) {
        let addons = self.0.join("addons");
        let mut pidfiles = vec![(addons.join("postgresql/data/postmaster.pid"), "-INT")];
        if let Ok(entries) = std::fs::read_dir(addons.join("redis")) {
            for e in entries.flatten() {
                pidfiles.push((e.path().join("redis.pid"), "-TERM"));
            }
        }
        for (file, sig) in pidfiles {
            let pid = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
            if let Some(pid) = pid {
                let _ = Command::new("kill").arg(sig).arg(pid.to_string()).status();
            }
        }
    }
}
