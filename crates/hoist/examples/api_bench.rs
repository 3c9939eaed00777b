//! Platform API latency with 1,000 apps and 100,000 releases in the store, at a fixed
//! request rate (open loop), against the floor: the same reads and writes on the store
//! directly. Also the server's idle RSS. Run: `bench/api/run.sh`.

use hoist_store::Store;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const APPS: usize = 1000;
const RELEASES_PER_APP: usize = 100;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

/// Sends `rate` requests per second for `secs` seconds without waiting for answers
/// (open loop, so a slow answer cannot hide behind a slower send rate).
async fn load(
    client: &reqwest::Client,
    rate: u64,
    secs: u64,
    make: impl Fn(usize) -> reqwest::RequestBuilder,
) -> Vec<f64> {
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut tasks = Vec::new();
    for i in 0..(rate * secs) as usize {
        tick.tick().await;
        let req = make(i);
        let _ = client;
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = req.send().await.map(|r| r.status().is_success());
            (t.elapsed().as_secs_f64() * 1000.0, matches!(r, Ok(true)))
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        let (ms, ok) = t.await.expect("request task");
        assert!(ok, "a benchmark request failed");
        out.push(ms);
    }
    out
}

fn report(name: &str, mut api: Vec<f64>, mut floor: Vec<f64>, target_p99: f64) {
    let (a50, a99) = (pct(&mut api, 0.5), pct(&mut api, 0.99));
    let (f50, f99) = (pct(&mut floor, 0.5), pct(&mut floor, 0.99));
    println!(
        "{name:<28} api p50 {a50:6.2} ms p99 {a99:6.2} ms | store floor p50 {f50:6.3} ms p99 {f99:6.3} ms | p99 ratio {:5.1}x | target p99 < {target_p99} ms: {}",
        a99 / f99.max(0.001),
        if a99 < target_p99 { "met" } else { "NOT met" }
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = Arc::new(Store::open(&data.join("state.db")).expect("store"));
    let owner = store
        .create_account("bench@hoist.local", None, true)
        .unwrap();
    let (_, token) = store.issue_token(&owner.id, "bench").unwrap();
    let t = Instant::now();
    let mut ids = Vec::new();
    for a in 0..APPS {
        let app = store
            .create_app(Some(&format!("bench-{a:04}")), &owner.id, "heroku-24", "us")
            .unwrap();
        for r in 1..RELEASES_PER_APP {
            let change = BTreeMap::from([("N".to_string(), Some(r.to_string()))]);
            store.update_config(&app.id, &change, &owner.id).unwrap();
        }
        ids.push(app.id);
    }
    println!(
        "seeded {APPS} apps and {} releases in {:.1} s",
        APPS * RELEASES_PER_APP,
        t.elapsed().as_secs_f64()
    );

    // Floor: the same operations on the store directly.
    let mut floor_app = Vec::new();
    let mut floor_rel = Vec::new();
    let mut floor_set = Vec::new();
    for i in 0..2000 {
        let name = format!("bench-{:04}", (i * 7919) % APPS);
        let t = Instant::now();
        let app = store.app(&name).unwrap();
        floor_app.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        store
            .releases(&app.id, None, false, None, true, 15)
            .unwrap();
        floor_rel.push(t.elapsed().as_secs_f64() * 1000.0);
        if i < 500 {
            let t = Instant::now();
            let change = BTreeMap::from([("F".to_string(), Some(i.to_string()))]);
            store.update_config(&app.id, &change, &owner.id).unwrap();
            floor_set.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    drop(store);

    let exe = std::env::current_exe().unwrap();
    let hoist = exe.parent().and_then(|p| p.parent()).unwrap().join("hoist");
    let port = 20000 + (std::process::id() % 20000) as u16;
    let mut server = Command::new(&hoist)
        .args(["server", "--data-dir"])
        .arg(&data)
        .args([
            "--api-addr",
            &format!("127.0.0.1:{port}"),
            "--router-addr",
            &format!("127.0.0.1:{}", port + 1),
        ])
        .env("HOIST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hoist server (cargo build --release -p hoist first)");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    for _ in 0..200 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kb(server.id());

    let auth = format!("Bearer {token}");
    let c = client.clone();
    let (b, a) = (base.clone(), auth.clone());
    let app_lat = load(&client, 500, 5, move |i| {
        c.get(format!("{b}/apps/bench-{:04}", (i * 7919) % APPS))
            .header("Authorization", &a)
    })
    .await;
    let c = client.clone();
    let (b, a) = (base.clone(), auth.clone());
    let rel_lat = load(&client, 500, 5, move |i| {
        c.get(format!(
            "{b}/apps/bench-{:04}/releases",
            (i * 104729) % APPS
        ))
        .header("Authorization", &a)
        .header("Range", "version ..; max=15, order=desc")
    })
    .await;
    let c = client.clone();
    let (b, a) = (base.clone(), auth.clone());
    let set_lat = load(&client, 100, 5, move |i| {
        c.patch(format!("{b}/apps/bench-{:04}/config-vars", (i * 31) % APPS))
            .header("Authorization", &a)
            .header("Content-Type", "application/json")
            .body(format!("{{\"BENCH\": \"{i}\"}}"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_rss = rss_kb(server.id());
    let _ = server.kill();
    let _ = server.wait();

    report("GET /apps/{app} @500/s", app_lat, floor_app, 5.0);
    report("GET releases page @500/s", rel_lat, floor_rel, 5.0);
    report("config:set @100/s", set_lat, floor_set, 20.0);
    println!(
        "server RSS idle after start: {:.1} MB (target < 50 MB: {}), after the load: {:.1} MB",
        idle_rss as f64 / 1024.0,
        if idle_rss < 50 * 1024 {
            "met"
        } else {
            "NOT met"
        },
        after_rss as f64 / 1024.0
    );
}
