//! Real runc containers and real shim processes. Needs root and `runc` in PATH; tests
//! that need them print why they are skipped otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hoist_runtime::{
    AttachEvent, DynoEvent, DynoSpec, OutputStream, ProcessRuntime, RuncRuntime, Runtime,
    RuntimeConfig, DYNO_UID,
};
use hoist_types::DynoSize;
use tokio::sync::mpsc::Receiver;

const SHIM: &str = env!("CARGO_BIN_EXE_hoist-shim");
const WAIT: Duration = Duration::from_secs(60);

fn runc_available() -> bool {
    // SAFETY: plain syscall.
    let root = unsafe { libc::geteuid() } == 0;
    let runc = std::process::Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !root || !runc {
        eprintln!("SKIPPED: runc tests need root and the `runc` binary (root={root}, runc={runc})");
    }
    root && runc
}

struct Env {
    _tmp: tempfile::TempDir,
    cfg: RuntimeConfig,
    slug: PathBuf,
}

impl Env {
    fn new(name: &str) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = RuntimeConfig::new(tmp.path().join("data"), SHIM);
        cfg.runc_root = PathBuf::from(format!("/run/hoist-test/{name}-{}", std::process::id()));
        let slug = tmp.path().join("slug");
        std::fs::create_dir_all(slug.join(".profile.d")).unwrap();
        std::fs::create_dir_all(slug.join("bin")).unwrap();
        std::fs::write(
            slug.join(".profile.d/hoist-test.sh"),
            "export FROM_PROFILE=yes\n",
        )
        .unwrap();
        std::fs::write(slug.join("original.txt"), "slug file\n").unwrap();
        std::fs::write(slug.join("bin/hello"), "#!/bin/sh\necho hello from bin\n").unwrap();
        std::fs::set_permissions(
            slug.join("bin/hello"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        chown_r(&slug, DYNO_UID);
        Env {
            _tmp: tmp,
            cfg,
            slug,
        }
    }
}

impl Drop for Env {
    /// A test that fails before `rt.remove` must not leave its containers, shims or
    /// writable layers behind: end whatever runs under this test's data dir.
    fn drop(&mut self) {
        let root = &self.cfg.runc_root;
        if let Ok(out) = std::process::Command::new("runc")
            .arg("--root")
            .arg(root)
            .args(["list", "-q"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = std::process::Command::new("runc")
                    .arg("--root")
                    .arg(root)
                    .args(["delete", "--force", id])
                    .output();
            }
        }
        let data = self._tmp.path().to_string_lossy().into_owned();
        // Shims name their dyno dir (or the dynos dir) on their command line.
        if let Ok(procs) = std::fs::read_dir("/proc") {
            for p in procs.flatten() {
                let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(&data) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
        }
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&data))
            .collect();
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(root);
    }
}

impl Env {
    fn spec(&self, id: &str, command: &str) -> DynoSpec {
        let mut env = BTreeMap::new();
        env.insert("PORT".to_string(), "5123".to_string());
        env.insert("DYNO".to_string(), "web.1".to_string());
        env.insert("GREETING".to_string(), "hi there".to_string());
        DynoSpec {
            id: id.to_string(),
            app_id: "00000000-0000-0000-0000-000000000001".into(),
            app_name: "testapp".into(),
            release_version: 1,
            name: "web.1".into(),
            process_type: "web".into(),
            command: command.into(),
            env,
            slug_dir: self.slug.clone(),
            size: DynoSize::Standard1X,
            attach: false,
            tty: false,
        }
    }
}

fn chown_r(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_r(&e.unwrap().path(), uid);
        }
    }
}

#[derive(Default, Debug)]
struct Run {
    stdout: String,
    stderr: String,
    status: Option<i32>,
    oom: bool,
}

/// Collects events of `id` until it exits (bounded by WAIT).
async fn run_to_exit(rx: &mut Receiver<DynoEvent>, id: &str) -> Run {
    let mut run = Run::default();
    let deadline = tokio::time::Instant::now() + WAIT;
    while run.status.is_none() {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("dyno {id} did not exit in time; output so far: {run:?}"))
            .expect("event stream ended");
        match ev {
            DynoEvent::Output {
                id: i,
                stream,
                data,
                ..
            } if i == id => match stream {
                OutputStream::Stdout => run.stdout.push_str(&String::from_utf8_lossy(&data)),
                OutputStream::Stderr => run.stderr.push_str(&String::from_utf8_lossy(&data)),
            },
            DynoEvent::Exited {
                id: i,
                status,
                oom_killed,
            } if i == id => {
                run.status = Some(status);
                run.oom = oom_killed;
            }
            _ => {}
        }
    }
    run
}

/// Waits until stdout of `id` contains `needle`; returns everything seen.
async fn wait_output(rx: &mut Receiver<DynoEvent>, id: &str, needle: &str) -> String {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.contains(needle) {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {needle:?} from {id}; got {seen:?}"))
            .expect("event stream ended");
        match ev {
            DynoEvent::Output { id: i, data, .. } if i == id => {
                seen.push_str(&String::from_utf8_lossy(&data))
            }
            DynoEvent::Exited { id: i, status, .. } if i == id => {
                panic!("{id} exited {status} before {needle:?}; got {seen:?}")
            }
            _ => {}
        }
    }
    seen
}

const ENV_COMMAND: &str = "echo \"PORT=$PORT DYNO=$DYNO HOME=$HOME GREETING=$GREETING FROM_PROFILE=$FROM_PROFILE PWD=$(pwd)\"; hello; echo to-stderr >&2; exit 3";

async fn check_env_output_exit(rt: &dyn Runtime, env: &Env, id: &str, home: &str) {
    let mut rx = rt.subscribe();
    rt.start(env.spec(id, ENV_COMMAND)).await.unwrap();
    let run = run_to_exit(&mut rx, id).await;
    let expected =
        format!("PORT=5123 DYNO=web.1 HOME={home} GREETING=hi there FROM_PROFILE=yes PWD={home}\nhello from bin\n");
    assert_eq!(run.stdout, expected, "{run:?}");
    assert_eq!(run.stderr, "to-stderr\n");
    assert_eq!(run.status, Some(3));
    let listed = rt.list().await.unwrap();
    let d = listed.iter().find(|d| d.spec.id == id).unwrap();
    assert!(!d.running);
    assert_eq!(d.exit_status, Some(3));
    rt.remove(id).await.unwrap();
    assert!(rt.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn runc_env_output_and_exit_status() {
    if !runc_available() {
        return;
    }
    let env = Env::new("env");
    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    check_env_output_exit(&rt, &env, "testapp-web-1-env", "/app").await;
}

#[tokio::test]
async fn process_env_output_and_exit_status() {
    let env = Env::new("penv");
    let rt = ProcessRuntime::new(env.cfg.clone()).unwrap();
    let home = env.slug.to_string_lossy().to_string();
    check_env_output_exit(&rt, &env, "testapp-web-1-penv", &home).await;
}

#[tokio::test]
async fn process_signal_term_stops_every_process() {
    let env = Env::new("pterm");
    let rt = ProcessRuntime::new(env.cfg.clone()).unwrap();
    let mut rx = rt.subscribe();
    let id = "testapp-web-1-pterm";
    rt.start(env.spec(id, "sleep 1000 & echo started; wait"))
        .await
        .unwrap();
    wait_output(&mut rx, id, "started").await;
    rt.signal(id, libc::SIGTERM).await.unwrap();
    let run = run_to_exit(&mut rx, id).await;
    assert_eq!(run.status, Some(143), "{run:?}");
    rt.remove(id).await.unwrap();
}

#[tokio::test]
async fn runc_dyno_is_isolated_and_unprivileged() {
    if !runc_available() {
        return;
    }
    let env = Env::new("iso");
    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    let mut rx = rt.subscribe();
    let script = "id -u; id -g; grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status; \
        ls /root >/dev/null 2>&1 && echo ROOT-VISIBLE; ls /home >/dev/null 2>&1 && echo HOME-VISIBLE; \
        cat /etc/shadow >/dev/null 2>&1 && echo SHADOW-VISIBLE; ls /var/lib >/dev/null 2>&1 && echo VAR-VISIBLE; \
        echo x > /usr/hoist-test 2>/dev/null && echo USR-WRITABLE; \
        echo changed > /app/original.txt && echo new > /app/new.txt && echo APP-WRITABLE; \
        echo t > /tmp/t && echo TMP-WRITABLE; ls -ld /tmp >&2; hostname; \
        test -r /etc/ssl/certs/ca-certificates.crt && echo CA-OK; grep -c . /etc/passwd";
    let id = "testapp-web-1-iso";
    rt.start(env.spec(id, script)).await.unwrap();
    let run = run_to_exit(&mut rx, id).await;
    assert_eq!(run.status, Some(0), "{run:?}");
    let out = run.stdout.clone() + &run.stderr;
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("10000"));
    assert_eq!(lines.next(), Some("10000"));
    for cap in ["CapPrm", "CapEff", "CapBnd"] {
        assert!(
            out.contains(&format!("{cap}:\t0000000000000000")),
            "{cap} not empty: {out}"
        );
    }
    for bad in [
        "ROOT-VISIBLE",
        "HOME-VISIBLE",
        "SHADOW-VISIBLE",
        "VAR-VISIBLE",
        "USR-WRITABLE",
    ] {
        assert!(!out.contains(bad), "{bad}: {out}");
    }
    for good in ["APP-WRITABLE", "TMP-WRITABLE", id] {
        assert!(out.contains(good), "missing {good}: {out}");
    }
    // The slug on the host is untouched by the dyno's writes.
    assert_eq!(
        std::fs::read_to_string(env.slug.join("original.txt")).unwrap(),
        "slug file\n"
    );
    assert!(!env.slug.join("new.txt").exists());
    rt.remove(id).await.unwrap();
}

#[tokio::test]
async fn runc_dynos_have_separate_writable_app_dirs() {
    if !runc_available() {
        return;
    }
    let env = Env::new("sep");
    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    let mut rx = rt.subscribe();
    let a = "testapp-web-1-sepa";
    let b = "testapp-web-2-sepb";
    rt.start(env.spec(a, "echo mine > /app/marker && echo written; sleep 1000"))
        .await
        .unwrap();
    wait_output(&mut rx, a, "written").await;
    rt.start(env.spec(b, "test -e /app/marker && echo SEEN || echo clean"))
        .await
        .unwrap();
    let run = run_to_exit(&mut rx, b).await;
    assert_eq!(run.stdout, "clean\n");
    rt.remove(a).await.unwrap();
    rt.remove(b).await.unwrap();
    assert!(!env.cfg.data_dir.join("dynos").join(a).exists());
}

#[tokio::test]
async fn runc_signal_term_gives_143_and_remove_kills_term_ignorers() {
    if !runc_available() {
        return;
    }
    let env = Env::new("term");
    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    let mut rx = rt.subscribe();

    let polite = "testapp-web-1-polite";
    rt.start(env.spec(polite, "sleep 1000")).await.unwrap();
    let listed = rt.list().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|d| d.spec.id == polite && d.running && d.pid.is_some()),
        "{listed:?}"
    );
    rt.signal(polite, libc::SIGTERM).await.unwrap();
    let run = run_to_exit(&mut rx, polite).await;
    assert_eq!(run.status, Some(143), "{run:?}");
    rt.remove(polite).await.unwrap();

    let stubborn = "testapp-web-1-stubborn";
    rt.start(env.spec(
        stubborn,
        "trap '' TERM; echo ready; sleep 1000; echo survived",
    ))
    .await
    .unwrap();
    wait_output(&mut rx, stubborn, "ready").await;
    rt.signal(stubborn, libc::SIGTERM).await.unwrap();
    // Still running: nothing exited after the TERM was delivered and a list round-trip.
    let listed = rt.list().await.unwrap();
    assert!(
        listed.iter().any(|d| d.spec.id == stubborn && d.running),
        "{listed:?}"
    );
    rt.remove(stubborn).await.unwrap();
    let run = run_to_exit(&mut rx, stubborn).await;
    assert_eq!(run.status, Some(137), "{run:?}");
    assert!(!run.stdout.contains("survived"));
    assert!(rt.list().await.unwrap().is_empty());
    let runc_list = std::process::Command::new("runc")
        .arg("--root")
        .arg(&env.cfg.runc_root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&runc_list.stdout).trim(), "");
}

#[tokio::test]
async fn runc_memory_limit_kills_with_137_and_reports_oom() {
    if !runc_available() {
        return;
    }
    let env = Env::new("oom");
    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    let mut rx = rt.subscribe();
    let id = "testapp-web-1-oom";
    // Standard-1X has 512 MB and is killed at 1 GB (2x); allocate up to 1.5 GB in 64 MB steps.
    let cmd = "python3 -c 'chunks = []\nfor i in range(24):\n    chunks.append(b\"x\" * (64 << 20))\nprint(\"allocated everything\")'";
    rt.start(env.spec(id, cmd)).await.unwrap();
    let run = run_to_exit(&mut rx, id).await;
    assert_eq!(run.status, Some(137), "{run:?}");
    assert!(run.oom, "OOM kill not reported: {run:?}");
    assert!(!run.stdout.contains("allocated everything"));
    let listed = rt.list().await.unwrap();
    assert!(listed[0].oom_killed);
    rt.remove(id).await.unwrap();
}

#[tokio::test]
async fn runc_a_child_oom_kill_does_not_make_a_later_stop_an_oom_kill() {
    if !runc_available() {
        return;
    }
    let env = Env::new("oomchild");
    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    let mut rx = rt.subscribe();
    let id = "testapp-web-1-oomchild";
    // A child touches 1.5 GB (the kill limit of Standard-1X is 1 GB) and is OOM-killed;
    // the dyno itself goes on running until it is stopped with SIGTERM.
    let cmd = "python3 -c 'x = b\"x\" * (1536 << 20)'; echo child=$?; echo waiting; exec sleep 600";
    rt.start(env.spec(id, cmd)).await.unwrap();
    let seen = wait_output(&mut rx, id, "waiting").await;
    assert!(
        seen.contains("child=137"),
        "the child was not OOM-killed: {seen}"
    );
    rt.signal(id, libc::SIGTERM).await.unwrap();
    let run = run_to_exit(&mut rx, id).await;
    assert_eq!(run.status, Some(143), "{run:?}");
    assert!(
        !run.oom,
        "an ordinary stop reported as an OOM kill: {run:?}"
    );
    rt.remove(id).await.unwrap();
}

#[tokio::test]
async fn runc_pids_limit_stops_a_fork_loop() {
    if !runc_available() {
        return;
    }
    let env = Env::new("pids");
    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    let mut rx = rt.subscribe();
    let id = "testapp-web-1-pids";
    // Bounded: at most 400 forks; Standard-1X allows 256 pids.
    let cmd = "python3 -c 'import os, time\nn = 0\ntry:\n    for i in range(400):\n        if os.fork() == 0:\n            time.sleep(60)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print(\"fork failed after\", n, e.errno)\nelse:\n    print(\"forked all\", n)'";
    rt.start(env.spec(id, cmd)).await.unwrap();
    let run = run_to_exit(&mut rx, id).await;
    assert!(run.stdout.starts_with("fork failed after"), "{run:?}");
    let n: u32 = run
        .stdout
        .split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert!(n < 256, "{n} forks succeeded");
    rt.remove(id).await.unwrap();
}

#[tokio::test]
async fn runc_dyno_survives_daemon_restart_and_replays_spilled_output() {
    if !runc_available() {
        return;
    }
    let env = Env::new("restart");
    let id = "testapp-web-1-restart";
    let cmd = "i=0; while [ $i -lt 40 ]; do echo line$i; i=$((i+1)); sleep 0.1; done; echo finished; sleep 1000";
    let last_seen;
    {
        let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
        let mut rx = rt.subscribe();
        rt.start(env.spec(id, cmd)).await.unwrap();
        let seen = wait_output(&mut rx, id, "line2\n").await;
        last_seen = numbers(&seen).into_iter().max().unwrap();
        // The runtime (daemon) goes away; the dyno keeps running.
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let spill = env.cfg.data_dir.join("dynos").join(id).join("spill");
    assert!(
        std::fs::metadata(&spill).map(|m| m.len()).unwrap_or(0) > 0,
        "nothing spilled"
    );

    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    let listed = rt.list().await.unwrap();
    assert!(
        listed.iter().any(|d| d.spec.id == id && d.running),
        "{listed:?}"
    );
    let mut rx = rt.subscribe();
    let seen = wait_output(&mut rx, id, "finished").await;
    let got = numbers(&seen);
    // Everything after the cut arrives once and in order (the line in flight at the cut
    // may be lost with the old daemon's socket buffer).
    let first = got[0];
    assert!(
        first <= last_seen + 2,
        "gap after restart: last {last_seen}, then {got:?}"
    );
    assert_eq!(got, (first..40).collect::<Vec<_>>());
    rt.signal(id, libc::SIGTERM).await.unwrap();
    assert_eq!(run_to_exit(&mut rx, id).await.status, Some(143));
    rt.remove(id).await.unwrap();
}

fn numbers(s: &str) -> Vec<u32> {
    s.lines()
        .filter_map(|l| l.strip_prefix("line"))
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[tokio::test]
async fn runc_attached_dyno_gets_stdin_and_returns_output_and_status() {
    if !runc_available() {
        return;
    }
    let env = Env::new("attach");
    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    let mut rx = rt.subscribe();
    let id = "testapp-run-1-attach";
    let mut spec = env.spec(id, "echo before-input; read line; echo got:$line; exit 7");
    spec.attach = true;
    rt.start(spec).await.unwrap();
    // Output written before attaching is kept for the attachment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut att = rt.attach(id).await.unwrap();
    att.input.write(b"hello\n").await.unwrap();
    let mut out = String::new();
    let status = loop {
        match tokio::time::timeout(WAIT, att.output.next()).await.unwrap() {
            Some(AttachEvent::Output { data, .. }) => out.push_str(&String::from_utf8_lossy(&data)),
            Some(AttachEvent::Exited { status, .. }) => break status,
            Some(AttachEvent::Dropped { .. }) => {}
            None => panic!("attachment closed early: {out:?}"),
        }
    };
    assert_eq!(out, "before-input\ngot:hello\n");
    assert_eq!(status, 7);
    // The daemon stream sees the exit but not the attached output.
    let run = run_to_exit(&mut rx, id).await;
    assert_eq!((run.stdout.as_str(), run.status), ("", Some(7)));
    rt.remove(id).await.unwrap();
}

#[tokio::test]
async fn runc_attached_tty_dyno() {
    if !runc_available() {
        return;
    }
    let env = Env::new("tty");
    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    let id = "testapp-run-2-tty";
    let mut spec = env.spec(
        id,
        // runc passes a resize on from its signal loop, so the new size may arrive a
        // moment after the input: look for it for up to 10 s instead of once (a
        // loaded CI machine saw "0 0").
        "test -t 0 && test -t 1 && echo is-a-tty; read line; echo got:$line; \
         for i in $(seq 100); do s=$(stty size); [ \"$s\" != '0 0' ] && break; sleep 0.1; done; \
         echo size:$s",
    );
    spec.attach = true;
    spec.tty = true;
    rt.start(spec).await.unwrap();
    let mut att = rt.attach(id).await.unwrap();
    // runc applies a resize of its own terminal to the container's from its signal
    // loop, which starts a moment after the dyno reports started; the command is
    // running (and runc in that loop) once it has written something.
    let mut out = String::new();
    while !out.contains("is-a-tty") {
        match tokio::time::timeout(WAIT, att.output.next()).await.unwrap() {
            Some(AttachEvent::Output { data, .. }) => out.push_str(&String::from_utf8_lossy(&data)),
            Some(AttachEvent::Dropped { .. }) => {}
            other => panic!("before the first output: {other:?} {out:?}"),
        }
    }
    att.input.resize(100, 30).await.unwrap();
    att.input.write(b"abc\r").await.unwrap();
    let status = loop {
        match tokio::time::timeout(WAIT, att.output.next()).await.unwrap() {
            Some(AttachEvent::Output { data, .. }) => out.push_str(&String::from_utf8_lossy(&data)),
            Some(AttachEvent::Exited { status, .. }) => break status,
            Some(AttachEvent::Dropped { .. }) => {}
            None => panic!("attachment closed early: {out:?}"),
        }
    };
    assert_eq!(status, 0, "{out:?}");
    assert!(out.contains("is-a-tty"), "{out:?}");
    assert!(out.contains("got:abc"), "{out:?}");
    assert!(out.contains("size:30 100"), "{out:?}");
    rt.remove(id).await.unwrap();
}

#[tokio::test]
async fn invalid_specs_are_rejected_and_leave_nothing() {
    let env = Env::new("invalid");
    let rt = ProcessRuntime::new(env.cfg.clone()).unwrap();
    let mut spec = env.spec("../escape", "true");
    assert!(rt.start(spec.clone()).await.is_err());
    spec.id = "testapp-ok-1".into();
    spec.slug_dir = PathBuf::from("/nonexistent/slug");
    assert!(rt.start(spec).await.is_err());
    assert!(rt.list().await.unwrap().is_empty());
    assert!(matches!(
        rt.signal("nope", 15).await,
        Err(hoist_runtime::RuntimeError::NotFound(_))
    ));
}

#[tokio::test]
async fn runc_the_apps_parent_cgroup_goes_with_its_last_dyno() {
    if !runc_available() {
        return;
    }
    let env = Env::new("cgparent");
    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    let mut rx = rt.subscribe();
    // An app name of its own: other tests' dynos share "testapp".
    let spec = |id: &str| DynoSpec {
        app_name: "cgparent-app".into(),
        ..env.spec(id, "echo up; sleep 1000")
    };
    let (a, b) = ("cgparent-app-web-1-a", "cgparent-app-web-2-b");
    rt.start(spec(a)).await.unwrap();
    wait_output(&mut rx, a, "up").await;
    rt.start(spec(b)).await.unwrap();
    wait_output(&mut rx, b, "up").await;
    let parents = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir("/sys/fs/cgroup")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path().join("hoist/cgparent-app"))
                    .chain([std::path::PathBuf::from(
                        "/sys/fs/cgroup/hoist/cgparent-app",
                    )])
                    .filter(|p| p.exists())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(!parents().is_empty(), "runc made no app cgroup");
    rt.remove(a).await.unwrap();
    assert!(!parents().is_empty(), "removed while web.2 still runs");
    rt.remove(b).await.unwrap();
    assert_eq!(parents(), Vec::<std::path::PathBuf>::new());
}

/// Pids of the spare shims waiting for a dyno under `dynos`.
fn spare_shims(dynos: &Path) -> Vec<u32> {
    let out = std::process::Command::new("pgrep")
        .arg("-f")
        .arg(format!("shim {} --spare", dynos.display()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Polls until `f` holds (bounded: a broken runtime fails instead of hanging).
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never happened: {what}");
}

fn alive(pid: u32) -> bool {
    // A zombie (killed, not reaped yet) counts as gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn runc_spare_shim_serves_the_next_start_is_replaced_and_ends_with_the_daemon() {
    if !runc_available() {
        return;
    }
    let env = Env::new("spare");
    let dynos = env.cfg.data_dir.join("dynos");
    let rt = RuncRuntime::new(env.cfg.clone()).unwrap();
    let mut spare = Vec::new();
    eventually("a spare shim is started", || {
        spare = spare_shims(&dynos);
        spare.len() == 1
    })
    .await;

    // The spare becomes the next dyno's shim.
    let first = "testapp-web-1-spare1";
    check_env_output_exit(&rt, &env, first, "/app").await;
    assert!(
        !spare_shims(&dynos).contains(&spare[0]),
        "the spare was used"
    );

    // A replacement follows; killed, the next start falls back to a fresh shim.
    let mut next = Vec::new();
    eventually("the spare is replaced", || {
        next = spare_shims(&dynos);
        next.len() == 1
    })
    .await;
    assert_ne!(next[0], spare[0]);
    // SAFETY: plain syscall on a pid this test found.
    unsafe { libc::kill(next[0] as libc::pid_t, libc::SIGKILL) };
    eventually("the killed spare is gone", || !alive(next[0])).await;
    check_env_output_exit(&rt, &env, "testapp-web-1-spare2", "/app").await;

    // The runtime going away takes its waiting spare with it.
    let mut last = Vec::new();
    eventually("another spare", || {
        last = spare_shims(&dynos);
        last.len() == 1
    })
    .await;
    drop(rt);
    eventually("the spare ends with the runtime", || !alive(last[0])).await;
}

/// The dyno init exits with its command's status: the code, or 128 + the signal that
/// killed it, real-time signals included.
#[test]
fn dyno_init_exits_with_the_commands_status() {
    let run = |script: &str| {
        std::process::Command::new(SHIM)
            .args(["dyno-init", "--", "sh", "-c", script])
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(run("exit 3"), Some(3));
    assert_eq!(run("kill -TERM $$"), Some(143));
    let rt = libc::SIGRTMIN() + 1;
    assert_eq!(run(&format!("kill -{rt} $$")), Some(128 + rt));
}
