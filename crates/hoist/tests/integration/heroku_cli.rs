//! The official Heroku CLI (npm package `heroku`) as a real client of Hoist's API.
//! CI installs it; set HOIST_SKIP_HEROKU_CLI=1 to skip locally without it.

use crate::harness::{deploy_procfile, exists_on_path, TestPlatform};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn heroku_bin() -> Option<PathBuf> {
    if std::env::var_os("HOIST_SKIP_HEROKU_CLI").is_some() {
        return None;
    }
    Some(exists_on_path("heroku").expect(
        "the Heroku CLI is not installed: `npm install -g heroku@11` (or set HOIST_SKIP_HEROKU_CLI=1)",
    ))
}

struct Heroku<'a> {
    bin: PathBuf,
    p: &'a TestPlatform,
    home: tempfile::TempDir,
}

impl<'a> Heroku<'a> {
    /// The official CLI against `p`, with a HOME of its own.
    fn new(bin: PathBuf, p: &'a TestPlatform) -> Heroku<'a> {
        Heroku {
            bin,
            p,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env("HOME", self.home.path())
            .env("XDG_CACHE_HOME", self.home.path().join(".cache"))
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .env("XDG_DATA_HOME", self.home.path().join(".local/share"))
            .env("HEROKU_HOST", self.p.api_url())
            .env("HEROKU_API_KEY", &self.p.token)
            .env("HEROKU_PARTICLEBOARD_URL", self.p.api_url())
            .env("DISABLE_TELEMETRY", "true")
            .env("HEROKU_UPDATE_INSTRUCTIONS", "disabled")
            .env("HEROKU_SKIP_NEW_VERSION_CHECK", "true")
            .env("NO_COLOR", "1")
            .env("NODE_EXTRA_CA_CERTS", self.p.data_dir().join("ca.pem"))
            .env("CI", "true");
        cmd
    }

    /// Runs `heroku args...`; returns (exit code, stdout + stderr).
    fn run(&self, args: &[&str]) -> (i32, String) {
        let out = self
            .command(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run heroku");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out) = self.run(args);
        assert_eq!(
            code,
            0,
            "heroku {args:?} failed:\n{out}\nserver log:\n{}",
            self.p.server_log()
        );
        out
    }
}

#[test]
fn heroku_cli_manages_apps_config_releases_and_rollback() {
    let Some(bin) = heroku_bin() else {
        eprintln!("skipping: HOIST_SKIP_HEROKU_CLI is set");
        return;
    };
    let p = TestPlatform::start();
    let h = Heroku::new(bin, &p);

    let out = h.ok(&["apps:create", "cli-demo"]);
    assert!(out.contains("cli-demo"), "{out}");
    let out = h.ok(&["apps"]);
    assert!(out.contains("cli-demo"), "{out}");
    let out = h.ok(&["config:set", "FOO=bar", "BAZ=qu=ux", "-a", "cli-demo"]);
    assert!(out.contains("done, v2"), "{out}");
    let out = h.ok(&["config:get", "BAZ", "-a", "cli-demo"]);
    assert_eq!(out.trim(), "qu=ux");
    let out = h.ok(&["config:unset", "FOO", "-a", "cli-demo"]);
    assert!(out.contains("done, v3"), "{out}");
    let out = h.ok(&["releases", "-a", "cli-demo"]);
    for expected in [
        "v3",
        "Remove FOO config vars",
        "v2",
        "Set BAZ, FOO config vars",
        "v1",
        "Initial release",
        "Current: v3",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let out = h.ok(&["releases:info", "v2", "-a", "cli-demo"]);
    assert!(out.contains("FOO") && out.contains("bar"), "{out}");
    let out = h.ok(&["rollback", "v2", "-a", "cli-demo"]);
    assert!(out.contains("v4"), "{out}");
    let cfg = p.call("GET", "/apps/cli-demo/config-vars", None).1;
    assert_eq!(cfg["FOO"], "bar", "rollback restored v2's config");
    let out = h.ok(&["apps:info", "-a", "cli-demo"]);
    assert!(
        out.contains("cli-demo") && out.contains("admin@hoist.local"),
        "{out}"
    );
    h.ok(&["domains:add", "www.cli-demo.test", "-a", "cli-demo"]);
    let out = h.ok(&["domains", "-a", "cli-demo"]);
    assert!(
        out.contains("cli-demo.localhost") && out.contains("www.cli-demo.test"),
        "{out}"
    );
    p.new_user("pal@example.test");
    h.ok(&["access:add", "pal@example.test", "-a", "cli-demo"]);
    let out = h.ok(&["access", "-a", "cli-demo"]);
    assert!(out.contains("pal@example.test"), "{out}");
    h.ok(&["maintenance:on", "-a", "cli-demo"]);
    assert_eq!(p.call("GET", "/apps/cli-demo", None).1["maintenance"], true);
    let (code, out) = h.run(&["apps:info", "-a", "nope-nope"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("Couldn't find that app"), "{out}");
    h.ok(&["apps:destroy", "cli-demo", "--confirm", "cli-demo"]);
    assert_eq!(p.call("GET", "/apps/cli-demo", None).0, 404);
}

#[test]
fn heroku_cli_runs_ps_scale_logs_and_one_off_dynos() {
    let Some(bin) = heroku_bin() else {
        eprintln!("skipping: HOIST_SKIP_HEROKU_CLI is set");
        return;
    };
    let p = TestPlatform::start();
    let h = Heroku::new(bin, &p);
    let (ok, out) = deploy_procfile(
        &p,
        "cli-dynos",
        "web: exec python3 -m http.server $PORT\n",
        &[("index.html", "hi\n")],
    );
    assert!(ok, "{out}");
    p.wait_for_app("cli-dynos", Duration::from_secs(60));

    let out = h.ok(&["ps", "-a", "cli-dynos"]);
    assert!(out.contains("web.1: up"), "{out}");
    h.ok(&["ps:scale", "web=2", "-a", "cli-dynos"]);
    p.wait_for_dynos("cli-dynos", Duration::from_secs(60), |d| {
        d.iter().filter(|x| x["state"] == "up").count() == 2
    });
    let out = h.ok(&["ps", "-a", "cli-dynos"]);
    assert!(out.contains("web.2: up"), "{out}");

    // Attached one-off dyno over the TLS rendezvous, exit status carried back.
    let (code, out) = h.run(&["run", "echo hello from $DYNO; exit 3", "-a", "cli-dynos"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("hello from run."), "{out}");
    rendezvous_waits_for_the_clients_eot(&p, "cli-dynos");
    let out = h.ok(&["run:detached", "echo detached ran", "-a", "cli-dynos"]);
    assert!(out.contains("run."), "{out}");
    crate::harness::wait_for_log(&p, "cli-dynos", "detached ran", Duration::from_secs(30));

    let out = h.ok(&["logs", "-n", "200", "-a", "cli-dynos"]);
    for expected in [
        "heroku[web.1]: State changed from starting to up",
        "app[api]: Release v2 created",
        "heroku[router]: at=info",
    ] {
        assert!(
            out.contains(expected),
            "missing {expected:?} in heroku logs:\n{out}"
        );
    }
    let out = h.ok(&[
        "logs",
        "-n",
        "50",
        "--source",
        "app",
        "--dyno",
        "web",
        "-a",
        "cli-dynos",
    ]);
    assert!(!out.contains("heroku["), "source filter: {out}");
    // Add-ons through the official CLI, backed by the platform's own PostgreSQL.
    let out = h.ok(&["addons:create", "postgresql:mini", "-a", "cli-dynos"]);
    assert!(out.contains("DATABASE_URL"), "{out}");
    let (_, list) = p.call("GET", "/apps/cli-dynos/addons", None);
    let name = list[0]["name"].as_str().unwrap().to_string();
    let out = h.ok(&["addons", "-a", "cli-dynos"]);
    assert!(out.contains(&name), "{out}");
    let out = h.ok(&["addons:info", &name, "-a", "cli-dynos"]);
    assert!(
        out.contains("postgresql:mini") && out.contains("DATABASE"),
        "{out}"
    );
    let out = h.ok(&[
        "addons:destroy",
        &name,
        "-a",
        "cli-dynos",
        "--confirm",
        "cli-dynos",
    ]);
    assert!(out.contains("done"), "{out}");
    assert!(p
        .call("GET", "/apps/cli-dynos/config-vars", None)
        .1
        .get("DATABASE_URL")
        .is_none());
    h.ok(&["ps:restart", "-a", "cli-dynos"]);
    crate::harness::wait_for_log(
        &p,
        "cli-dynos",
        "Restart all dynos",
        Duration::from_secs(10),
    );
}

/// The Heroku CLI writes EOT when its stdin ends, which can be after the command's exit
/// status arrived; Node sockets are not half-open, so if the server has already closed
/// its side the CLI dies with EPIPE (seen once in CI). This drives the rendezvous the
/// way the CLI does, but always late, so the race is deterministic.
fn rendezvous_waits_for_the_clients_eot(p: &TestPlatform, app: &str) {
    let (status, dyno) = p.call(
        "POST",
        &format!("/apps/{app}/dynos"),
        Some(serde_json::json!({"command": "echo late-eot", "attach": true})),
    );
    assert_eq!(status, 201, "{dyno}");
    let url = dyno["attach_url"].as_str().expect("attach_url").to_string();
    let script = r#"
const tls = require('tls');
const u = new URL(process.argv[1]);
const c = tls.connect(Number(u.port), u.hostname, {});
c.setEncoding('utf8');
let seen = '';
c.on('connect', () => c.write(u.pathname.slice(1) + '\r\n'));
const t0 = Date.now();
c.on('data', d => {
  console.log((Date.now() - t0) + 'ms data ' + JSON.stringify(d));
  seen += d;
  if (/\uFFFF heroku-command-exit-status: \d+/.test(seen)) {
    setTimeout(() => c.write('\u0004', err => {
      if (err) { console.log('EOT write failed: ' + err.code); process.exit(1); }
      console.log('EOT written'); process.exit(seen.includes('late-eot') ? 0 : 1);
    }), 300);
  }
});
c.on('error', e => { console.log('socket error: ' + e.code); process.exit(1); });
c.on('close', () => { console.log((Date.now() - t0) + 'ms closed before EOT; got: ' + JSON.stringify(seen)); process.exit(1); });
"#;
    let out = Command::new("node")
        .args(["-e", script, &url])
        .env("NODE_EXTRA_CA_CERTS", p.data_dir().join("ca.pem"))
        .output()
        .expect("run node");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{}", p.server_log());
    assert!(text.contains("EOT written"), "{text}");
}

/// `stack`, `stack:set` and `releases:output` with the official CLI: the one stack is
/// the host's and named so; another stack is refused (it used to print "done" and do
/// nothing); a release phase's output is on its release.
#[test]
fn heroku_cli_names_the_stack_refuses_others_and_shows_release_output() {
    let Some(bin) = heroku_bin() else {
        eprintln!("skipping: HOIST_SKIP_HEROKU_CLI is set");
        return;
    };
    let p = TestPlatform::start();
    let h = Heroku::new(bin, &p);
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap();
    let stack = hoist_types::stack_name_from_os_release(&os_release);
    assert!(!stack.starts_with("heroku"), "{stack}");
    let web = "web: exec python3 -m http.server $PORT\n";
    let procfile = format!("{web}release: echo checking schema; exit 7\n");
    let (ok, out) = deploy_procfile(&p, "cli-stack", &procfile, &[]);
    assert!(ok, "{out}");

    let out = h.ok(&["stack", "-a", "cli-stack"]);
    assert!(out.contains(&format!("* {stack}")), "{out}");
    let out = h.ok(&["apps:info", "-a", "cli-stack"]);
    assert!(out.contains(&stack), "{out}");
    let (code, out) = h.run(&["stack:set", "heroku-22", "-a", "cli-stack"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("heroku-22") && out.contains("not available"),
        "{out}"
    );
    h.ok(&["stack:set", &stack, "-a", "cli-stack"]);
    let (_, app) = p.call("GET", "/apps/cli-stack", None);
    assert_eq!(app["build_stack"]["name"], stack.as_str());

    let out = h.ok(&["releases:output", "-a", "cli-stack"]);
    assert!(out.contains("checking schema"), "{out}");
    let out = h.ok(&["releases", "-a", "cli-stack"]);
    assert!(out.contains("failed"), "{out}");
}

/// What tutorials type: Heroku's service and plan names, `addons:info`, `addons:open`,
/// `addons:plans` and `pg:info`, none of which may crash or contradict `hoist`.
#[test]
fn heroku_cli_takes_heroku_addon_names_and_shows_their_details() {
    let Some(bin) = heroku_bin() else {
        eprintln!("skipping: HOIST_SKIP_HEROKU_CLI is set");
        return;
    };
    let p = TestPlatform::start();
    let h = Heroku::new(bin, &p);
    h.ok(&["apps:create", "cli-addons"]);
    let out = h.ok(&[
        "addons:create",
        "heroku-postgresql:essential-0",
        "-a",
        "cli-addons",
    ]);
    assert!(out.contains("DATABASE_URL"), "{out}");
    let out = h.ok(&["addons:create", "heroku-redis:mini", "-a", "cli-addons"]);
    assert!(out.contains("REDIS_URL"), "{out}");
    // Recorded under Hoist's names, with Hoist's plans.
    let (_, list) = p.call("GET", "/apps/cli-addons/addons", None);
    let mut plans: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["plan"]["name"].as_str().unwrap())
        .collect();
    plans.sort();
    assert_eq!(plans, ["postgresql:mini", "redis:mini"]);
    let pg = list
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["plan"]["name"] == "postgresql:mini")
        .unwrap();
    let (pg_name, pg_id) = (pg["name"].as_str().unwrap(), pg["id"].as_str().unwrap());

    // Free plans say so everywhere, in both CLIs.
    for service in ["heroku-postgresql", "postgresql", "heroku-redis"] {
        let out = h.ok(&["addons:plans", service]);
        assert!(out.contains("free") && !out.contains('$'), "{out}");
    }
    let out = crate::harness::run(
        Command::new(crate::harness::hoist_bin())
            .args(["addons:plans", "postgresql"])
            .env("HOIST_API_URL", p.api_url())
            .env("HOIST_API_KEY", &p.token)
            .env("HOME", h.home.path()),
    );
    assert!(out.contains("free") && !out.contains('$'), "{out}");

    let out = h.ok(&["addons:info", pg_name, "-a", "cli-addons"]);
    for expected in ["postgresql:mini", "cli-addons::DATABASE", "free", "created"] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // The resolver (behind both CLIs' addons:info) names the add-on's config vars.
    let (_, found) = p.call(
        "POST",
        "/actions/addons/resolve",
        Some(serde_json::json!({"addon": pg_name, "app": "cli-addons"})),
    );
    assert_eq!(found[0]["config_vars"], serde_json::json!(["DATABASE_URL"]));
    let out = crate::harness::run(
        Command::new(crate::harness::hoist_bin())
            .args(["addons:info", pg_name, "-a", "cli-addons"])
            .env("HOIST_API_URL", p.api_url())
            .env("HOIST_API_KEY", &p.token)
            .env("HOME", h.home.path()),
    );
    assert!(out.contains("DATABASE_URL"), "{out}");

    let out = h.ok(&["addons:open", pg_name, "-a", "cli-addons", "--show-url"]);
    assert_eq!(
        out.trim(),
        format!("{}/addons/{pg_id}/info", p.api_url()),
        "{out}"
    );

    // pg:info reads the attachments' add-on plans (it died on a TypeError without
    // them). Hoist's databases are not Heroku Postgres ones to it, so it stops there
    // instead of sending the Hoist token to Heroku's data API.
    let (code, out) = h.run(&["pg:info", "-a", "cli-addons"]);
    assert!(!out.contains("TypeError"), "{out}");
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("cli-addons has no heroku-postgresql databases"),
        "{out}"
    );
    h.ok(&["apps:destroy", "cli-addons", "--confirm", "cli-addons"]);
    assert_eq!(p.call("GET", "/addons", None).1, serde_json::json!([]));
}
