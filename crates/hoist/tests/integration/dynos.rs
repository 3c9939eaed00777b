//! The dyno manager with real runc dynos: crashes, boot and exit timeouts, the
//! release phase, one-off dynos, and surviving `kill -9` of the daemon.

use crate::harness::{deploy_procfile, wait_for_log, TestPlatform};
use serde_json::json;
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
    p.wait_for_dynos("sleepy", Duration::from_secs(30), |d| d.is_empty());
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
