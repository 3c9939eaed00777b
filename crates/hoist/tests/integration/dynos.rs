//! The dyno manager with real runc dynos: crashes, boot and exit timeouts, the
//! release phase, one-off dynos, and surviving `kill -9` of the daemon.

use crate::harness::{deploy_procfile, run, wait_for_log, TestPlatform};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const WEB: &str = "web: exec python3 -m http.server $PORT\n";

#[test]
fn dynos_survive_kill_9_of_the_daemon_and_are_readopted_not_duplicated() {
    let mut p = TestPlatform::start();
    let (ok, out) = deploy_procfile(&p, "survivor", WEB, &[("index.html", "still here\n")]);
    assert!(ok, "{out}");
    p.call(
        "PATCH",
        "/apps/survivor/formation",
        Some(json!({"updates": [{"type": "web", "quantity": 20}]})),
    );
    let before = p.wait_for_dynos("survivor", Duration::from_secs(90), |d| {
        d.len() == 20 && d.iter().all(|x| x["state"] == "up")
    });
    let mut ids_before: Vec<String> = before
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    ids_before.sort();

    p.kill9();
    // Dynos keep serving while the daemon is gone (their ports are still bound).
    p.spawn();
    let after = p.wait_for_dynos("survivor", Duration::from_secs(60), |d| {
        d.len() == 20 && d.iter().all(|x| x["state"] == "up")
    });
    let mut ids_after: Vec<String> = after
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    ids_after.sort();
    assert_eq!(
        ids_before, ids_after,
        "the same containers are re-adopted, none new"
    );
    let body = p.wait_for_app("survivor", Duration::from_secs(30));
    assert!(body.contains("still here"), "{body}");
    // Let a reconcile pass run and make sure nothing was duplicated.
    std::thread::sleep(Duration::from_secs(2));
    let (_, now) = p.call("GET", "/apps/survivor/dynos", None);
    assert_eq!(now.as_array().unwrap().len(), 20, "{now}");
}

#[test]
fn a_crashing_app_backs_off_and_shows_crashed() {
    let p = TestPlatform::start();
    let (ok, out) = deploy_procfile(&p, "crasher", "web: echo boom; exit 3\n", &[]);
    assert!(ok, "{out}");
    let log = wait_for_log(
        &p,
        "crasher",
        "Process exited with status 3",
        Duration::from_secs(30),
    );
    assert!(log.contains("app[web.1]: boom"), "{log}");
    p.wait_for_dynos("crasher", Duration::from_secs(30), |d| {
        d.iter().any(|x| x["state"] == "crashed")
    });
    // Back-off: the first restart is immediate, later ones wait; no CPU spin.
    std::thread::sleep(Duration::from_secs(4));
    let starts = p
        .app_log("crasher")
        .matches("Starting process with command")
        .count();
    assert!(
        (1..=3).contains(&starts),
        "expected back-off, saw {starts} starts"
    );
    let (s, body) = p.get_app("crasher.localhost", "/").unwrap();
    assert_eq!(s, 503, "{body}");
    let log = wait_for_log(&p, "crasher", "code=H10", Duration::from_secs(10));
    assert!(log.contains("desc=\"App crashed\""), "{log}");
}

#[test]
fn boot_and_exit_timeouts_follow_heroku() {
    let p = TestPlatform::start_with(&["--boot-timeout", "2", "--stop-grace", "2"]);
    let procfile = "web: sleep 1000\nworker: trap '' TERM; while true; do sleep 1; done\n";
    let (ok, out) = deploy_procfile(&p, "slowpoke", procfile, &[]);
    assert!(ok, "{out}");
    wait_for_log(
        &p,
        "slowpoke",
        "Error R10 (Boot timeout)",
        Duration::from_secs(30),
    );
    let (s, _) = p.call(
        "PATCH",
        "/apps/slowpoke/formation",
        Some(json!({"updates": [{"type": "worker", "quantity": 1}]})),
    );
    assert_eq!(s, 200);
    p.wait_for_dynos("slowpoke", Duration::from_secs(30), |d| {
        d.iter()
            .any(|x| x["type"] == "worker" && x["state"] == "up")
    });
    p.call(
        "PATCH",
        "/apps/slowpoke/formation",
        Some(json!({"updates": [{"type": "worker", "quantity": 0}]})),
    );
    let log = wait_for_log(
        &p,
        "slowpoke",
        "Error R12 (Exit timeout)",
        Duration::from_secs(30),
    );
    assert!(log.contains("Stopping all processes with SIGTERM"), "{log}");
    // The configured grace, not Heroku's default 30 s.
    assert!(
        log.contains("failed to exit within 2 seconds of SIGTERM"),
        "{log}"
    );
    p.wait_for_dynos("slowpoke", Duration::from_secs(30), |d| {
        !d.iter().any(|x| x["type"] == "worker")
    });
}

#[test]
fn release_phase_gates_the_release() {
    let p = TestPlatform::start();
    let good = format!("{WEB}release: echo migrating database; exit 0\n");
    let (ok, out) = deploy_procfile(&p, "phased", &good, &[("index.html", "v2\n")]);
    assert!(ok, "{out}");
    assert!(
        out.contains("migrating database"),
        "release output streams to the pusher:\n{out}"
    );
    assert!(p
        .wait_for_app("phased", Duration::from_secs(60))
        .contains("v2"));

    let bad = format!("{WEB}release: echo failing; exit 4\n");
    let (ok, out) = deploy_procfile(&p, "phased", &bad, &[("index.html", "v3\n")]);
    // As on Heroku: the push succeeds, the release is marked failed.
    assert!(
        ok,
        "a failed release command does not reject the push:\n{out}"
    );
    assert!(
        out.contains("v3 failed") && !out.contains("Released v3"),
        "{out}"
    );
    let (_, rel) = p.call("GET", "/apps/phased/releases/3", None);
    assert_eq!(rel["status"], "failed", "{rel}");
    // Its output stays on the release (`releases:output`); v2's passing phase too.
    for (v, said) in [(3, "failing"), (2, "migrating database")] {
        let (_, rel) = p.call("GET", &format!("/apps/phased/releases/{v}"), None);
        let url = rel["output_stream_url"]
            .as_str()
            .expect("release phase output");
        let text = reqwest::blocking::get(url).unwrap().text().unwrap();
        assert!(text.contains(said), "v{v}: {text}");
    }
    let (_, v1) = p.call("GET", "/apps/phased/releases/1", None);
    assert!(v1["output_stream_url"].is_null(), "no release phase: {v1}");
    let (_, builds) = p.call("GET", "/apps/phased/builds", None);
    assert_eq!(
        builds[1]["status"], "succeeded",
        "the build itself succeeded"
    );
    let (_, cur) = p.call("GET", "/apps/phased/releases", None);
    let current: Vec<i64> = cur
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["current"] == true)
        .map(|r| r["version"].as_i64().unwrap())
        .collect();
    assert_eq!(current, [2]);
    std::thread::sleep(Duration::from_secs(1));
    let (s, body) = p.get_app("phased.localhost", "/").unwrap();
    assert_eq!(
        (s, body.trim()),
        (200, "v2"),
        "the previous release keeps serving"
    );
}

#[test]
fn one_off_detached_dynos_run_once_and_log() {
    let p = TestPlatform::start();
    let (ok, out) = deploy_procfile(&p, "oneoff", WEB, &[]);
    assert!(ok, "{out}");
    let (s, d) = p.call("POST", "/apps/oneoff/dynos", Some(json!({"command": "echo one-off says $GREETING", "attach": false, "env": {"GREETING": "hello"}})));
    assert_eq!(s, 201, "{d}");
    let name = d["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("run."), "{name}");
    let log = wait_for_log(&p, "oneoff", "one-off says hello", Duration::from_secs(30));
    assert!(
        log.contains(&format!("app[{name}]: one-off says hello")),
        "{log}"
    );
    wait_for_log(
        &p,
        "oneoff",
        "State changed from up to complete",
        Duration::from_secs(30),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let (_, list) = p.call("GET", "/apps/oneoff/dynos", None);
        if !list
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == name.as_str())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("one-off dyno {name} was not removed after it exited");
}

#[test]
fn scaling_to_an_unknown_type_or_negative_quantity_is_refused() {
    let p = TestPlatform::start();
    let (ok, out) = deploy_procfile(&p, "scalecheck", WEB, &[]);
    assert!(ok, "{out}");
    let (s, body) = p.call(
        "PATCH",
        "/apps/scalecheck/formation",
        Some(json!({"updates": [{"type": "nope", "quantity": 1}]})),
    );
    assert_eq!(s, 404, "{body}");
    let (s, body) = p.call(
        "PATCH",
        "/apps/scalecheck/formation",
        Some(json!({"updates": [{"type": "web", "quantity": -1}]})),
    );
    assert_eq!(s, 422, "{body}");
    let (s, body) = p.call(
        "PATCH",
        "/apps/scalecheck/formation",
        Some(json!({"updates": [{"type": "web", "quantity": "1", "size": "enormous"}]})),
    );
    assert_eq!(s, 422, "{body}");
}

#[test]
fn eco_apps_sleep_when_idle_and_wake_on_the_next_request() {
    let p = TestPlatform::start_with(&["--idle-seconds", "3"]);
    let (ok, out) = deploy_procfile(&p, "sleepy", WEB, &[("index.html", "awake\n")]);
    assert!(ok, "{out}");
    let (s, body) = p.call(
        "PATCH",
        "/apps/sleepy/formation",
        Some(json!({"updates": [{"type": "web", "size": "eco"}]})),
    );
    assert_eq!(s, 200, "{body}");
    p.wait_for_app("sleepy", Duration::from_secs(60));
    wait_for_log(&p, "sleepy", "Idling", Duration::from_secs(30));
    // As on Heroku, `ps` shows the sleeping dyno as idle (not "No dynos").
    p.wait_for_dynos("sleepy", Duration::from_secs(30), |d| {
        d.len() == 1 && d[0]["name"] == "web.1" && d[0]["state"] == "idle"
    });
    // The router holds the request, wakes the app and forwards once a dyno is up.
    let (s, body) = p.get_app("sleepy.localhost", "/").unwrap();
    assert_eq!((s, body.trim()), (200, "awake"));
    let log = p.app_log("sleepy");
    assert!(log.contains("Unidling"), "{log}");
}

#[test]
fn standard_apps_never_sleep() {
    let p = TestPlatform::start_with(&["--idle-seconds", "1"]);
    let (ok, out) = deploy_procfile(&p, "awake", WEB, &[]);
    assert!(ok, "{out}");
    p.wait_for_app("awake", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!p.app_log("awake").contains("Idling"));
    let (_, d) = p.call("GET", "/apps/awake/dynos", None);
    assert_eq!(d.as_array().unwrap().len(), 1);
}

#[test]
fn a_dyno_that_fills_tmp_fails_alone() {
    let p = TestPlatform::start();
    let procfile = format!(
        "{WEB}worker: dd if=/dev/zero of=/tmp/fill bs=1M count=2048; echo dd-exit=$?; exit 9\n\
         layer: dd if=/dev/zero of=/app/fill bs=1M count=2048; echo dd-exit=$?; exit 8\n"
    );
    let (ok, out) = deploy_procfile(&p, "filler", &procfile, &[("index.html", "fine\n")]);
    assert!(ok, "{out}");
    p.wait_for_app("filler", Duration::from_secs(60));
    p.call(
        "PATCH",
        "/apps/filler/formation",
        Some(json!({"updates": [{"type": "worker", "quantity": 1}, {"type": "layer", "quantity": 1}]})),
    );
    let log = wait_for_log(
        &p,
        "filler",
        "heroku[worker.1]: Process exited with status 9",
        Duration::from_secs(60),
    );
    assert!(
        log.contains("app[worker.1]: dd: error writing '/tmp/fill': No space left on device"),
        "/tmp is size-limited: {log}"
    );
    let log = wait_for_log(
        &p,
        "filler",
        "heroku[layer.1]: Process exited with status 8",
        Duration::from_secs(60),
    );
    assert!(
        log.contains("app[layer.1]: dd: error writing '/app/fill': No space left on device"),
        "the writable layer over /app is size-limited: {log}"
    );
    // The web dyno kept serving.
    let (s, body) = p.get_app("filler.localhost", "/").unwrap();
    assert_eq!((s, body.trim()), (200, "fine"));
}

#[test]
fn a_dyno_over_its_memory_quota_logs_r14_and_keeps_running() {
    let p = TestPlatform::start();
    // 700 MB of touched memory: over the 512 MB quota, under the 1 GB kill limit.
    let procfile = format!(
        "{WEB}hog: python3 -c \"import time; x = b'x' * (700 << 20); print('holding', flush=True); time.sleep(600)\"\n"
    );
    let (ok, out) = deploy_procfile(&p, "hog", &procfile, &[("index.html", "fine\n")]);
    assert!(ok, "{out}");
    p.wait_for_app("hog", Duration::from_secs(60));
    p.call(
        "PATCH",
        "/apps/hog/formation",
        Some(json!({"updates": [{"type": "hog", "quantity": 1}]})),
    );
    let log = wait_for_log(
        &p,
        "hog",
        "heroku[hog.1]: Error R14 (Memory quota exceeded)",
        Duration::from_secs(60),
    );
    let mem_line = log
        .lines()
        .find(|l| l.contains("heroku[hog.1]: Process running mem="))
        .unwrap_or_else(|| panic!("no memory figure before R14: {log}"));
    let pct: f64 = mem_line
        .rsplit('(')
        .next()
        .and_then(|v| v.strip_suffix("%)"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unreadable percentage: {mem_line}"));
    assert!((130.0..200.0).contains(&pct), "{mem_line}");
    assert!(!log.contains("R15"), "{log}");
    let (_, d) = p.call("GET", "/apps/hog/dynos/hog.1", None);
    assert_eq!(d["state"], "up", "{d}");
    // The web dyno never said R14.
    assert!(!log.contains("heroku[web.1]: Error R14"), "{log}");
}

/// The runc root of a platform's dynos (the server derives it from the data dir).
fn runc_root(p: &TestPlatform) -> String {
    use sha2::Digest;
    let canon = std::fs::canonicalize(p.data_dir()).unwrap_or_else(|_| p.data_dir());
    let h = sha2::Sha256::digest(canon.to_string_lossy().as_bytes());
    let hex: String = h[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("/run/hoist/runc-{hex}")
}

fn runc_containers(p: &TestPlatform) -> Vec<String> {
    let out = Command::new("runc")
        .args(["--root", &runc_root(p), "list", "-q"])
        .output()
        .expect("runc list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Mount points under `dir`, from this process's mountinfo.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&dir))
        .map(str::to_string)
        .collect()
}

/// Cgroup directories of the dyno with this container id, in any hierarchy.
fn cgroups_of(id: &str) -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(d) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(d.flatten().map(|e| e.path()));
    }
    let mut found = Vec::new();
    for root in roots {
        if let Ok(apps) = std::fs::read_dir(root.join("hoist")) {
            for app in apps.flatten() {
                let cg = app.path().join(id);
                if cg.is_dir() {
                    found.push(cg);
                }
            }
        }
    }
    found
}

/// Pids of shims serving a dyno of this data dir (`shim <dyno dir>`, or a spare shim
/// that was handed one and logs into it); idle spare shims do not count.
fn shims_of(data_dir: &Path) -> Vec<u32> {
    let data = data_dir.as_os_str().as_encoded_bytes().to_vec();
    let mut pids = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.get(1) != Some(&&b"shim"[..]) {
            continue;
        }
        let direct =
            args.get(2).is_some_and(|a| a.starts_with(&data)) && !args.contains(&&b"--spare"[..]);
        let logs_here = std::fs::read_link(p.path().join("fd/2"))
            .is_ok_and(|l| l.as_os_str().as_encoded_bytes().starts_with(&data));
        if direct || logs_here {
            pids.push(pid);
        }
    }
    pids
}

fn names(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|d| format!("{}:{}", d["name"].as_str().unwrap_or(""), d["state"]))
        .collect()
}

#[test]
fn ps_shows_one_row_per_dyno_through_crash_preboot_and_scale_down() {
    let p = TestPlatform::start();
    let (ok, out) = deploy_procfile(&p, "onerow", WEB, &[]);
    assert!(ok, "{out}");
    let up = p.wait_for_dynos("onerow", Duration::from_secs(60), |d| {
        d.len() == 1 && d[0]["state"] == "up"
    });
    let first = up[0]["id"].as_str().unwrap().to_string();

    // The process dies under the platform: crashed, restarted at once, up again.
    run(Command::new("runc").args(["--root", &runc_root(&p), "kill", &first, "KILL"]));
    wait_for_log(
        &p,
        "onerow",
        "State changed from up to crashed",
        Duration::from_secs(30),
    );
    let list = p.wait_for_dynos("onerow", Duration::from_secs(60), |d| {
        d.iter()
            .any(|x| x["state"] == "up" && x["id"] != first.as_str())
    });
    assert_eq!(names(&list), ["web.1:\"up\""], "{list:?}");

    // Preboot: the new web.1 shows only once the old one has stopped.
    let (s, body) = p.call("DELETE", "/apps/onerow/dynos", None);
    assert_eq!(s, 202, "{body}");
    let before = list[0]["id"].clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, now) = p.call("GET", "/apps/onerow/dynos", None);
        let now = now.as_array().cloned().unwrap_or_default();
        assert!(now.len() <= 1, "two rows for one dyno: {now:?}");
        if now.len() == 1 && now[0]["id"] != before && now[0]["state"] == "up" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restart never finished: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Scaled to 0, nothing is left to show.
    let (s, body) = p.call(
        "PATCH",
        "/apps/onerow/formation",
        Some(json!({"updates": [{"type": "web", "quantity": 0}]})),
    );
    assert_eq!(s, 200, "{body}");
    p.wait_for_dynos("onerow", Duration::from_secs(30), |d| d.is_empty());
}

#[test]
fn a_crashed_row_goes_when_the_dyno_is_scaled_away() {
    let p = TestPlatform::start();
    let (ok, out) = deploy_procfile(&p, "crashgone", "web: exit 3\n", &[]);
    assert!(ok, "{out}");
    p.wait_for_dynos("crashgone", Duration::from_secs(30), |d| {
        d.iter().any(|x| x["state"] == "crashed")
    });
    p.call(
        "PATCH",
        "/apps/crashgone/formation",
        Some(json!({"updates": [{"type": "web", "quantity": 0}]})),
    );
    p.wait_for_dynos("crashgone", Duration::from_secs(30), |d| d.is_empty());
}

/// Seconds since midnight of an RFC 3339 time (`...THH:MM:SS.ffffff...`).
fn seconds_of_day(t: &str) -> Option<f64> {
    let clock = t.split('T').nth(1)?;
    let mut parts = clock.splitn(3, ':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.get(..9)?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

#[test]
fn readopted_dynos_keep_their_state_and_output_keeps_its_time() {
    let mut p = TestPlatform::start();
    let procfile = format!(
        "{WEB}worker: while true; do echo \"at $(date -u +%Y-%m-%dT%H:%M:%S.%6N)\"; sleep 0.2; done\n"
    );
    let (ok, out) = deploy_procfile(&p, "stamped", &procfile, &[]);
    assert!(ok, "{out}");
    p.call(
        "PATCH",
        "/apps/stamped/formation",
        Some(json!({"updates": [{"type": "worker", "quantity": 1}]})),
    );
    let before = p.wait_for_dynos("stamped", Duration::from_secs(60), |d| {
        d.len() == 2 && d.iter().all(|x| x["state"] == "up")
    });
    wait_for_log(&p, "stamped", "app[worker.1]: at ", Duration::from_secs(30));

    p.kill9();
    // The worker writes lines while no daemon reads them.
    std::thread::sleep(Duration::from_secs(3));
    p.spawn();
    std::thread::sleep(Duration::from_secs(3));

    let after = p.wait_for_dynos("stamped", Duration::from_secs(30), |d| d.len() == 2);
    for d in &before {
        let same = after.iter().find(|a| a["id"] == d["id"]);
        let same = same.unwrap_or_else(|| panic!("{d} was not re-adopted: {after:?}"));
        assert_eq!(same["state"], d["state"], "{same}");
        assert_eq!(
            same["updated_at"], d["updated_at"],
            "up since changed: {same}"
        );
    }
    let log = p.app_log("stamped");
    let ups = log
        .lines()
        .filter(|l| l.contains("heroku[web.1]: State changed from starting to up"))
        .count();
    assert_eq!(ups, 1, "a re-adopted dyno was announced again:\n{log}");
    let mut checked = 0;
    for line in log.lines().filter(|l| l.contains("app[worker.1]: at ")) {
        let stamped = seconds_of_day(line).expect("log time");
        let written = line
            .split("app[worker.1]: at ")
            .nth(1)
            .and_then(seconds_of_day)
            .expect("written time");
        let skew = (stamped - written).rem_euclid(86_400.0);
        let skew = skew.min(86_400.0 - skew);
        assert!(
            skew < 1.0,
            "stamped {skew:.2}s away from when it was written: {line}"
        );
        checked += 1;
    }
    assert!(checked >= 20, "too few worker lines ({checked}):\n{log}");
}

#[test]
fn the_router_knows_an_app_from_its_creation() {
    let p = TestPlatform::start();
    let (s, body) = p.call("POST", "/apps", Some(json!({"name": "newborn"})));
    assert_eq!(s, 201, "{body}");
    // Nothing deployed yet: Heroku's blank-app answer, never "No such app".
    let (s, body) = p.get_app("newborn.localhost", "/").unwrap();
    assert_eq!(s, 502, "{body}");
    assert!(!body.contains("no such app"), "{body}");
    let (ok, out) = deploy_procfile(&p, "newborn", WEB, &[("index.html", "born\n")]);
    assert!(ok, "{out}");
    let (s, body) = p.get_app("newborn.localhost", "/").unwrap();
    assert_ne!(s, 404, "right after the first push: {body}");
    assert!(!body.contains("no such app"), "{body}");
    p.wait_for_app("newborn", Duration::from_secs(60));
    // Renamed: the new name answers at once, the old one is gone.
    let (s, body) = p.call("PATCH", "/apps/newborn", Some(json!({"name": "renamed"})));
    assert_eq!(s, 200, "{body}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (s, _) = p.get_app("renamed.localhost", "/").unwrap();
        if s == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new name never answered: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (s, _) = p.get_app("newborn.localhost", "/").unwrap();
    assert_eq!(s, 404);
}

/// A buildpack whose compile leaves a tree deeper than dynos accept.
fn deep_tree_buildpack() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("buildpack dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("bp/bin");
    std::fs::create_dir_all(&bin).unwrap();
    let scripts = [
        ("detect", "#!/bin/sh\necho Deep\n"),
        (
            "compile",
            "#!/bin/sh\nd=\"$1\"; i=0; while [ $i -lt 70 ]; do d=\"$d/d\"; i=$((i+1)); done; mkdir -p \"$d\"; echo deep > \"$d/f\"\n",
        ),
        ("release", "#!/bin/sh\necho '--- {}'\n"),
    ];
    for (name, body) in scripts {
        std::fs::write(bin.join(name), body).unwrap();
    }
    run(Command::new("chmod")
        .args(["-R", "a+rX,a+x"])
        .arg(dir.path().join("bp")));
    dir
}

#[test]
fn a_slug_too_deep_for_a_dyno_fails_its_build_and_is_not_released() {
    let p = TestPlatform::start();
    let (s, body) = p.call("POST", "/apps", Some(json!({"name": "deeptree"})));
    assert_eq!(s, 201, "{body}");
    let bp = deep_tree_buildpack();
    let (s, body) = p.call(
        "PUT",
        "/apps/deeptree/buildpack-installations",
        Some(json!({"updates": [{"buildpack": bp.path().join("bp").display().to_string()}]})),
    );
    assert_eq!(s, 200, "{body}");
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("Procfile"), WEB).unwrap();
    let repo = p.git_repo_from(src.path());
    let (ok, out) = p.push(repo.path(), "deeptree", "main:main");
    assert!(!ok, "the push must fail:\n{out}");
    assert!(
        out.contains("could not start on a dyno") && out.contains("directory depth"),
        "{out}"
    );
    let (_, releases) = p.call("GET", "/apps/deeptree/releases", None);
    let versions: Vec<i64> = releases
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["version"].as_i64())
        .collect();
    assert_eq!(versions, [1], "no release for the failed build: {releases}");
}

#[test]
fn destroying_an_app_returns_once_its_dynos_are_gone() {
    let p = TestPlatform::start();
    let (ok, out) = deploy_procfile(&p, "doomed", WEB, &[]);
    assert!(ok, "{out}");
    p.wait_for_dynos("doomed", Duration::from_secs(60), |d| {
        d.len() == 1 && d[0]["state"] == "up"
    });
    // An attached one-off that already ended: its removal waits for a client.
    let (s, d) = p.call(
        "POST",
        "/apps/doomed/dynos",
        Some(json!({"command": "echo done", "attach": true})),
    );
    assert_eq!(s, 201, "{d}");
    wait_for_log(
        &p,
        "doomed",
        "State changed from up to complete",
        Duration::from_secs(30),
    );
    let dynos_dir = p.data_dir().join("dynos");
    assert!(
        !mounts_under(&dynos_dir).is_empty(),
        "precondition: layers are mounted"
    );
    let ids: Vec<String> = std::fs::read_dir(&dynos_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();

    let (s, body) = p.call("DELETE", "/apps/doomed", None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(mounts_under(&dynos_dir), Vec::<String>::new());
    assert_eq!(runc_containers(&p), Vec::<String>::new());
    let left: Vec<_> = std::fs::read_dir(&dynos_dir).unwrap().flatten().collect();
    assert!(left.is_empty(), "dyno dirs left: {left:?}");
    for id in ids {
        assert_eq!(cgroups_of(&id), Vec::<PathBuf>::new());
    }
}

#[test]
fn a_data_dir_that_lost_its_state_has_its_dynos_swept_on_start() {
    let mut p = TestPlatform::start();
    let (ok, out) = deploy_procfile(&p, "orphaned", WEB, &[]);
    assert!(ok, "{out}");
    let list = p.wait_for_dynos("orphaned", Duration::from_secs(60), |d| {
        d.len() == 1 && d[0]["state"] == "up"
    });
    let id = list[0]["id"].as_str().unwrap().to_string();
    let dynos_dir = p.data_dir().join("dynos");
    p.kill9();
    // Everything that can be deleted goes; the mounted layers keep their dyno dirs.
    let _ = Command::new("rm").arg("-rf").arg(p.data_dir()).output();
    assert!(
        runc_containers(&p).contains(&id),
        "precondition: the dyno runs on"
    );
    assert!(
        !mounts_under(&dynos_dir).is_empty(),
        "precondition: its layer is mounted"
    );
    assert!(
        !shims_of(&p.data_dir()).is_empty(),
        "precondition: its shim runs on"
    );

    p.spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mounts = mounts_under(&dynos_dir);
        let containers = runc_containers(&p);
        let cgroups = cgroups_of(&id);
        let dir_left = dynos_dir.join(&id).exists();
        let shims = shims_of(&p.data_dir());
        if mounts.is_empty()
            && containers.is_empty()
            && cgroups.is_empty()
            && !dir_left
            && shims.is_empty()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: mounts {mounts:?}, containers {containers:?}, cgroups {cgroups:?}, dir {dir_left}, shims {shims:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn an_ended_one_off_leaves_nothing_mounted_when_the_daemon_stops() {
    let mut p = TestPlatform::start();
    let (ok, out) = deploy_procfile(&p, "leaver", WEB, &[]);
    assert!(ok, "{out}");
    // An attached one-off that ended: its removal waits for a client.
    let (s, d) = p.call(
        "POST",
        "/apps/leaver/dynos",
        Some(json!({"command": "echo done", "attach": true})),
    );
    assert_eq!(s, 201, "{d}");
    wait_for_log(
        &p,
        "leaver",
        "State changed from up to complete",
        Duration::from_secs(30),
    );
    let run_dir = std::fs::read_dir(p.data_dir().join("dynos"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|d| d.to_string_lossy().contains("-run-"))
        .expect("the one-off's dir");
    assert!(
        !mounts_under(&run_dir).is_empty(),
        "precondition: its layer is mounted"
    );

    assert_eq!(p.stop(), Some(0), "clean stop");
    assert_eq!(mounts_under(&run_dir), Vec::<String>::new());
    assert!(!run_dir.exists(), "{} is left", run_dir.display());
}
