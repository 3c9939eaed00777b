//! Attached one-off dynos live only as long as their client (Heroku: the dyno ends when
//! the rendezvous connection closes): a killed `hoist run`, a client that refused the
//! certificate and never paired, and a session lost with the daemon all end the dyno,
//! its processes and its shim.

use crate::harness::{deploy_procfile, hoist_bin, TestPlatform};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WEB: &str = "web: exec python3 -m http.server $PORT\n";

/// Processes whose command line contains `needle` (the dyno's processes are visible
/// from the host's /proc).
fn processes_matching(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            pids.push(pid);
        }
    }
    pids
}

/// The `hoist run` client as a user runs it on this machine, with its own HOME.
fn hoist_run(p: &TestPlatform, home: &Path, ca_file: &Path, args: &[&str]) -> Child {
    Command::new(hoist_bin())
        .arg("run")
        .args(args)
        .env("HOME", home)
        .env("HOIST_API_URL", p.api_url())
        .env("HOIST_API_KEY", &p.token)
        .env("HOIST_CA_FILE", ca_file)
        .env_remove("HOIST_APP")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hoist run")
}

fn run_dynos(p: &TestPlatform, app: &str) -> Vec<String> {
    let (_, list) = p.call("GET", &format!("/apps/{app}/dynos"), None);
    list.as_array()
        .unwrap()
        .iter()
        .filter(|d| d["type"] == "run")
        .map(|d| d["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits until the app has no one-off dyno and no process matches `marker`.
fn wait_until_gone(p: &TestPlatform, app: &str, marker: &str, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dynos = run_dynos(p, app);
        let procs = processes_matching(marker);
        if dynos.is_empty() && procs.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{why}: one-off dynos {dynos:?} / processes {procs:?} still there\n{}",
            p.app_log(app)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Shims supervising dynos of this data directory (the spare one included).
fn shims_of(p: &TestPlatform) -> usize {
    processes_matching(&format!("shim {}", p.data_dir().display())).len()
}

fn wait_for_shims(p: &TestPlatform, expected: usize, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while shims_of(p) != expected {
        if Instant::now() > deadline {
            let shims: Vec<String> =
                processes_matching(&format!("shim {}", p.data_dir().display()))
                    .into_iter()
                    .map(|pid| {
                        let cwd =
                            std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
                        let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
                            .map(|d| {
                                d.flatten()
                                    .filter_map(|e| std::fs::read_link(e.path()).ok())
                                    .map(|l| l.display().to_string())
                                    .collect()
                            })
                            .unwrap_or_default();
                        format!("{pid} cwd={} fds={fds:?}", cwd.display())
                    })
                    .collect();
            panic!(
                "{why}: {} shims for {}, expected {expected}: {shims:#?}\n{}",
                shims.len(),
                p.data_dir().display(),
                p.app_log("nopair")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_killed_run_client_ends_its_one_off_dyno() {
    let p = TestPlatform::start_with(&["--stop-grace", "5"]);
    let (ok, out) = deploy_procfile(&p, "hangup", WEB, &[]);
    assert!(ok, "{out}");
    let home = tempfile::tempdir().unwrap();
    let ca = p.data_dir().join("ca.pem");
    for (signal, marker) in [("TERM", "3001"), ("KILL", "3002")] {
        // A unique sleep marks this dyno's process on the host.
        let sleep = format!("sleep {marker}");
        let mut client = hoist_run(
            &p,
            home.path(),
            &ca,
            &["-a", "hangup", &format!("echo paired; {sleep}")],
        );
        // The output proves the session is paired before the client dies.
        let mut stdout = BufReader::new(client.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "paired", "{}", p.server_log());
        assert_eq!(run_dynos(&p, "hangup").len(), 1);
        assert!(!processes_matching(&sleep).is_empty());
        Command::new("kill")
            .args([format!("-{signal}"), client.id().to_string()])
            .status()
            .unwrap();
        let _ = client.wait();
        wait_until_gone(
            &p,
            "hangup",
            &sleep,
            &format!("after SIG{signal} of the client"),
        );
    }
    // The same on a terminal (the dyno gets a tty; the client sends no EOT).
    let size = nix::pty::Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = nix::pty::openpty(Some(&size), None).unwrap();
    let tty = || Stdio::from(pty.slave.try_clone().unwrap());
    let mut client = Command::new(hoist_bin())
        .args(["run", "echo paired; sleep 3006", "-a", "hangup"])
        .env("HOME", home.path())
        .env("HOIST_API_URL", p.api_url())
        .env("HOIST_API_KEY", &p.token)
        .env("HOIST_CA_FILE", &ca)
        .env("TERM", "xterm")
        .stdin(tty())
        .stdout(tty())
        .stderr(tty())
        .spawn()
        .unwrap();
    let master = std::fs::File::from(pty.master.try_clone().unwrap());
    let mut screen = String::new();
    for line in BufReader::new(master).lines() {
        let line = line.unwrap();
        screen.push_str(&line);
        if line.trim() == "paired" {
            break;
        }
    }
    assert!(!processes_matching("sleep 3006").is_empty(), "{screen}");
    client.kill().unwrap();
    let _ = client.wait();
    wait_until_gone(
        &p,
        "hangup",
        "sleep 3006",
        "after killing a client on a terminal",
    );
    let log = p.app_log("hangup");
    assert!(log.contains("Stopping all processes with SIGHUP"), "{log}");
}

#[test]
fn a_one_off_whose_client_never_pairs_is_ended_with_its_shim() {
    let p = TestPlatform::start_with(&["--stop-grace", "5", "--rendezvous-pair-timeout", "3"]);
    let (ok, out) = deploy_procfile(&p, "nopair", WEB, &[]);
    assert!(ok, "{out}");
    p.wait_for_dynos("nopair", Duration::from_secs(60), |d| {
        d.iter().any(|x| x["state"] == "up")
    });
    // The web dyno's shim plus the spare one.
    std::thread::sleep(Duration::from_secs(1));
    let baseline = shims_of(&p);
    assert!(baseline >= 1);

    // A client that trusts another CA refuses the dyno's certificate.
    let home = tempfile::tempdir().unwrap();
    let other_ca = home.path().join("other-ca.pem");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=Another CA", "-keyout"])
        .arg(home.path().join("other-ca.key"))
        .arg("-out")
        .arg(&other_ca)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let client = hoist_run(&p, home.path(), &other_ca, &["-a", "nopair", "sleep 3003"]);
    let out = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not signed by the CA in") && stderr.contains("HOIST_CA_FILE"),
        "the error names the CA it checked against: {stderr}"
    );
    wait_until_gone(&p, "nopair", "sleep 3003", "after a refused certificate");
    wait_for_shims(&p, baseline, "after a refused certificate");
}

#[test]
fn an_attached_one_off_whose_session_died_with_the_daemon_is_ended_on_restart() {
    let mut p = TestPlatform::start_with(&["--stop-grace", "5"]);
    let (ok, out) = deploy_procfile(&p, "lostsession", WEB, &[]);
    assert!(ok, "{out}");
    let start_attached = |p: &TestPlatform, sleep: &str| {
        let (s, d) = p.call(
            "POST",
            "/apps/lostsession/dynos",
            Some(json!({"command": sleep, "attach": true})),
        );
        assert_eq!(s, 201, "{d}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while processes_matching(sleep).is_empty() {
            assert!(Instant::now() < deadline, "the one-off never started");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // A clean stop ends the sessions, and so the attached one-offs, before it exits.
    start_attached(&p, "sleep 3005");
    assert_eq!(p.stop(), Some(0), "{}", p.server_log());
    assert_eq!(processes_matching("sleep 3005"), Vec::<u32>::new());
    p.spawn();
    // Its rendezvous secret lived only in the daemon: no client can pair any more.
    start_attached(&p, "sleep 3004");
    p.kill9();
    assert!(!processes_matching("sleep 3004").is_empty());
    p.spawn();
    wait_until_gone(&p, "lostsession", "sleep 3004", "after a daemon restart");
}
