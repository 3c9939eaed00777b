//! Dyno start time through `RuncRuntime` vs a bare `runc run` of an equivalent bundle,
//! and the memory of a shim per running dyno.
//!
//! Run as root after building the shim binary in the same profile:
//!   cargo build -p hoist-runtime --release --bins --examples
//!   target/release/examples/start_bench [iterations]
//!
//! Both sides are timed from "go" until the dyno's first output line (`ready`) has been
//! read; the runtime side includes writing the bundle and starting the shim, the bare
//! side gets its bundle prepared beforehand.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hoist_runtime::{DynoEvent, DynoSpec, RuncRuntime, Runtime, RuntimeConfig};

const COMMAND: &str = "echo ready; sleep 1000";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/start_bench -> target/<profile>/hoist-shim
    let shim = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("hoist-shim"))
        .expect("target dir");
    assert!(
        shim.exists(),
        "build the shim first: cargo build -p hoist-runtime --bins ({})",
        shim.display()
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let slug = tmp.path().join("slug");
    std::fs::create_dir_all(&slug).expect("slug dir");
    let mut cfg = RuntimeConfig::new(tmp.path().join("data"), &shim);
    cfg.runc_root = PathBuf::from(format!("/run/hoist-bench-{}", std::process::id()));
    let rt = RuncRuntime::new(cfg.clone()).expect("runtime");
    let mut events = rt.subscribe();

    // A template bundle for the bare runs: the one the runtime writes for a dyno.
    let template = tmp.path().join("template");
    {
        let s = spec("bench-template", &slug);
        rt.start(s).await.expect("start template");
        wait_ready(&mut events, "bench-template").await;
        let dyno = cfg.data_dir.join("dynos/bench-template/bundle");
        copy_tree(&dyno, &template);
        rt.remove("bench-template").await.expect("remove template");
    }

    let mut ours = Vec::new();
    let mut bare = Vec::new();
    for i in 0..iterations {
        // Runtime: start() + first output line through shim and socket.
        let id = format!("bench-rt-{i}");
        let t = Instant::now();
        rt.start(spec(&id, &slug)).await.expect("start");
        wait_ready(&mut events, &id).await;
        ours.push(t.elapsed());
        rt.remove(&id).await.expect("remove");

        // Bare runc run of the same bundle (own overlay dirs), prepared untimed.
        let id = format!("bench-bare-{i}");
        let dir = tmp.path().join(&id);
        prepare_bare_bundle(&template, &dir);
        let t = Instant::now();
        let mut cmd = Command::new("runc");
        cmd.arg("--root")
            .arg(&cfg.runc_root)
            .args(["run", "--bundle"]);
        let mut child = cmd
            .arg(dir.join("bundle"))
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("runc run");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        assert_eq!(line.trim(), "ready");
        bare.push(t.elapsed());
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&cfg.runc_root)
            .args(["kill", "--all", &id, "KILL"])
            .status();
        let _ = child.wait();
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&cfg.runc_root)
            .args(["delete", "--force", &id])
            .status();
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (om, bm) = (median(&mut ours), median(&mut bare));
    println!("start until first output, {iterations} runs each:");
    println!(
        "  RuncRuntime::start  median {:7.1} ms  mean {:7.1} ms",
        ms(om),
        ms(mean(&ours))
    );
    println!(
        "  bare runc run       median {:7.1} ms  mean {:7.1} ms",
        ms(bm),
        ms(mean(&bare))
    );
    println!(
        "  ratio (median)      {:.3}x",
        om.as_secs_f64() / bm.as_secs_f64()
    );

    // Shim memory per running dyno.
    let n = 10;
    for i in 0..n {
        let id = format!("bench-mem-{i}");
        rt.start(spec(&id, &slug)).await.expect("start");
        wait_ready(&mut events, &id).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (mut rss, mut pss, mut ticks) = (0u64, 0u64, 0u64);
    for i in 0..n {
        let dir = cfg.data_dir.join(format!("dynos/bench-mem-{i}"));
        let pid = std::fs::read_to_string(dir.join("shim.pid")).expect("shim.pid");
        let pid = pid.trim();
        rss += kb_field(&format!("/proc/{pid}/status"), "VmRSS:");
        pss += kb_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:");
        ticks += cpu_ticks(pid);
    }
    println!(
        "shim memory per running dyno ({n} dynos): RSS {} KiB, PSS {} KiB",
        rss / n,
        pss / n
    );
    println!("shim CPU per dyno so far: {} clock ticks", ticks / n);
    for i in 0..n {
        rt.remove(&format!("bench-mem-{i}")).await.expect("remove");
    }
    let _ = std::fs::remove_dir_all(&cfg.runc_root);
}

fn spec(id: &str, slug: &Path) -> DynoSpec {
    let mut env = BTreeMap::new();
    env.insert("PORT".into(), "5000".into());
    DynoSpec {
        id: id.into(),
        app_id: "bench".into(),
        app_name: "bench".into(),
        release_version: 1,
        name: "web.1".into(),
        process_type: "web".into(),
        command: COMMAND.into(),
        env,
        slug_dir: slug.to_path_buf(),
        size: hoist_types::DynoSize::Standard1X,
        attach: false,
        tty: false,
    }
}

async fn wait_ready(events: &mut tokio::sync::mpsc::Receiver<DynoEvent>, id: &str) {
    let mut seen = String::new();
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("timeout")
            .expect("events");
        if let DynoEvent::Output { id: i, data, .. } = ev {
            if i == id {
                seen.push_str(&String::from_utf8_lossy(&data));
                if seen.contains("ready\n") {
                    return;
                }
            }
        }
    }
}

fn prepare_bare_bundle(template: &Path, dir: &Path) {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(dir).expect("bundle parent");
    copy_tree(template, &bundle);
    for d in ["upper", "work"] {
        std::fs::create_dir_all(dir.join(d)).expect("overlay dir");
    }
    let cfg = bundle.join("config.json");
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text = text
        .replace(
            &upper_of(&text, "upperdir="),
            &dir.join("upper").to_string_lossy(),
        )
        .replace(
            &upper_of(&text, "workdir="),
            &dir.join("work").to_string_lossy(),
        )
        .replace(
            "/hoist/bench/bench-template",
            &format!(
                "/hoist/bench/{}",
                dir.file_name().unwrap().to_string_lossy()
            ),
        );
    std::fs::write(&cfg, text).expect("write config");
}

fn upper_of(config: &str, key: &str) -> String {
    let start = config.find(key).expect("overlay option") + key.len();
    config[start..]
        .split('"')
        .next()
        .expect("quoted")
        .to_string()
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success());
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / v.len() as u32
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn kb_field(path: &str, key: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime from /proc/<pid>/stat.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}
