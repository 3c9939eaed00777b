//! PostgreSQL add-on benchmark (run as root, like the daemon):
//!
//!     cargo run --release -p hoist-addons --example pg_bench -- [N=20]
//!
//! 1. Provision latency: `provision("postgresql:mini")` until the returned URL answers
//!    `SELECT 1` (through `psql`), with the managed server already running; compared
//!    with the floor `createuser` + `createdb` against the same server.
//! 2. Memory of the server process tree (postmaster + children) with no add-ons,
//!    with N idle add-ons, and with N add-ons holding one open connection each.
//!
//! Uses a fresh temporary data dir and the default (production) server settings.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hoist_addons::{tree_memory_kb, AddonsConfig, Registry};

fn psql_ok(url: &str) -> bool {
    Command::new("psql")
        .args(["-X", "-qAt", url, "-c", "SELECT 1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn stats(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    println!(
        "{name:<42} n={:<3} min {:>7.1} ms  median {:>7.1} ms  mean {:>7.1} ms  max {:>7.1} ms",
        v.len(),
        ms(v[0]),
        ms(v[v.len() / 2]),
        mean,
        ms(v[v.len() - 1])
    );
}

fn mem(label: &str, pgid: i32, base: Option<(u64, u64)>, n: u64) -> (u64, u64) {
    let (rss, pss, procs) = tree_memory_kb(pgid);
    print!(
        "{label:<42} processes {procs:>3}  RSS {:>7} kB  PSS {:>7} kB",
        rss, pss
    );
    if let Some((brss, bpss)) = base {
        print!(
            "  => per add-on: RSS {:>6.0} kB, PSS {:>6.0} kB",
            (rss as f64 - brss as f64) / n as f64,
            (pss as f64 - bpss as f64) / n as f64
        );
    }
    println!();
    (rss, pss)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir()?;
    let reg = Registry::new(tmp.path(), AddonsConfig::default())?;
    let pg = reg.get("postgresql").ok_or("no postgresql provider")?;
    let none = BTreeMap::new();

    let t = Instant::now();
    reg.postgres().ensure_running().await?;
    println!(
        "initdb + first start of the managed server: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let pid = reg.postgres().server_pid().ok_or("server not running")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = mem("server, 0 add-ons", pid, None, 1);

    // Provision until usable.
    let mut provisioned = Vec::new();
    let mut times = Vec::new();
    let mut provision_only = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let p = pg
            .provision(&format!("postgresql-bench-{i}"), "mini", &none)
            .await?;
        provision_only.push(t.elapsed());
        let url = p.config["URL"].clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !psql_ok(&url) {
            if Instant::now() > deadline {
                return Err(format!("add-on {i} never accepted a query").into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times.push(t.elapsed());
        provisioned.push((p.provider_id, url));
    }
    stats("provision() only", provision_only);
    stats("provision() + first SELECT 1 via psql", times);

    // Floor: createuser + createdb directly, as the admin, same server.
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        tmp.path().join("addons/postgresql/state.json"),
    )?)?;
    let port = state["port"].to_string();
    let admin_pw = state["admin_password"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let bin = |name: &str| {
        let mut c = Command::new(format!("/usr/lib/postgresql/15/bin/{name}"));
        c.args(["-h", "127.0.0.1", "-p", &port, "-U", "hoist_admin"])
            .env("PGPASSWORD", &admin_pw)
            .stdout(Stdio::null());
        c
    };
    let mut floor = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        let ok = bin("createuser")
            .arg(format!("floor_u{i}"))
            .status()?
            .success()
            && bin("createdb")
                .args(["-O", &format!("floor_u{i}"), &format!("floor_d{i}")])
                .status()?
                .success();
        floor.push(t.elapsed());
        if !ok {
            return Err("createuser/createdb failed".into());
        }
    }
    stats("floor: createuser + createdb", floor);
    for i in 0..n {
        bin("dropdb").arg(format!("floor_d{i}")).status()?;
        bin("dropuser").arg(format!("floor_u{i}")).status()?;
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    mem(
        &format!("server, {n} idle add-ons"),
        pid,
        Some(base),
        n as u64,
    );

    // One open connection per add-on.
    let mut sessions = Vec::new();
    for (_, url) in &provisioned {
        sessions.push(
            Command::new("psql")
                .args(["-X", "-qAt", url, "-c", "SELECT pg_sleep(30)"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Touch the catalogs as an app would on connect.
    mem(
        &format!("server, {n} add-ons x 1 open connection"),
        pid,
        Some(base),
        n as u64,
    );
    for mut s in sessions {
        let _ = s.kill();
        let _ = s.wait();
    }

    for (id, _) in &provisioned {
        pg.deprovision(id).await?;
    }
    reg.stop_managed_servers().await?;
    Ok(())
}
