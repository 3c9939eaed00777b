//! Integration tests: a real `hoist server` on free loopback ports, driven by the
//! CLI as a subprocess. This binary is its own harness (`harness = false`): with
//! `HOIST_CLI_EXEC=1` it *is* the CLI (it calls `hoist_cli::main`), so tests always
//! exercise the current CLI code, while the server is the prebuilt
//! `target/debug/hoist` (the tests skip, with a note, when it has not been built).
//!
//! Run: `cargo build -p hoist && cargo test -p hoist-cli --test cli [FILTER]`
//! (`HOIST_TEST_SERVER_BIN` overrides where the server binary is looked for).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Server tests get the shared `hoist server`; mock tests script the API themselves.
enum Kind {
    Server(fn(&Platform)),
    Mock(fn()),
}

fn main() {
    if std::env::var_os("HOIST_CLI_EXEC").is_some() {
        std::process::exit(hoist_cli::main(std::env::args().collect()));
    }
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tests: &[(&str, Kind)] = &[
        ("apps_lifecycle", Kind::Server(apps_lifecycle)),
        (
            "config_vars_and_release_versions",
            Kind::Server(config_vars_and_release_versions),
        ),
        ("releases_and_rollback", Kind::Server(releases_and_rollback)),
        (
            "access_with_a_second_account",
            Kind::Server(access_with_a_second_account),
        ),
        (
            "domains_maintenance_features",
            Kind::Server(domains_maintenance_features),
        ),
        (
            "buildpacks_set_add_remove_clear",
            Kind::Server(buildpacks_set_add_remove_clear),
        ),
        (
            "git_remote_and_credentials",
            Kind::Server(git_remote_and_credentials),
        ),
        (
            "login_with_password_writes_netrc",
            Kind::Server(login_with_password_writes_netrc),
        ),
        ("errors_and_exit_codes", Kind::Server(errors_and_exit_codes)),
        (
            "dynos_without_a_deploy",
            Kind::Server(dynos_without_a_deploy),
        ),
        (
            "mock_deploy_uploads_source_and_streams_build",
            Kind::Mock(mock_deploy_uploads_source_and_streams_build),
        ),
        (
            "mock_logs_session_and_stream",
            Kind::Mock(mock_logs_session_and_stream),
        ),
        (
            "mock_run_attached_over_rendezvous",
            Kind::Mock(mock_run_attached_over_rendezvous),
        ),
        ("mock_run_detached", Kind::Mock(mock_run_detached)),
        (
            "mock_run_pins_the_platform_ca_and_names_it_on_failure",
            Kind::Mock(mock_run_pins_the_platform_ca_and_names_it_on_failure),
        ),
        (
            "mock_run_in_a_terminal_without_a_size",
            Kind::Mock(mock_run_in_a_terminal_without_a_size),
        ),
        (
            "mock_output_into_a_closed_pipe_does_not_panic",
            Kind::Mock(mock_output_into_a_closed_pipe_does_not_panic),
        ),
        (
            "login_pins_the_platform_ca",
            Kind::Server(login_pins_the_platform_ca),
        ),
        (
            "mock_ps_routes_and_scale_body",
            Kind::Mock(mock_ps_routes_and_scale_body),
        ),
        (
            "mock_addons_create_confirmation_retry",
            Kind::Mock(mock_addons_create_confirmation_retry),
        ),
        (
            "mock_apps_follow_next_range",
            Kind::Mock(mock_apps_follow_next_range),
        ),
    ];
    let selected: Vec<_> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("running {} tests", selected.len());
    // Scripted-API tests need no server; the rest skip when it is not built.
    let platform = if selected.iter().any(|(_, k)| matches!(k, Kind::Server(_))) {
        let p = Platform::start();
        if p.is_none() {
            println!(
                "SKIPPING server tests: no server binary; run `cargo build -p hoist` first (looked for {}).",
                server_binary().display()
            );
        }
        p
    } else {
        None
    };
    let mut failed = Vec::new();
    for (name, test) in selected {
        let result = match (test, platform.as_ref()) {
            (Kind::Mock(t), _) => std::panic::catch_unwind(t),
            (Kind::Server(t), Some(p)) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t(p)))
            }
            (Kind::Server(_), None) => {
                println!("test {name} ... skipped");
                continue;
            }
        };
        match result {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    if !failed.is_empty() {
        if let Some(p) = &platform {
            println!("\n--- server log ---\n{}", p.log());
        }
        println!("\nfailed: {}", failed.join(", "));
        drop(platform);
        std::process::exit(1);
    }
    println!("\ntest result: ok");
}

// ---- harness ----------------------------------------------------------------------

fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("HOIST_TEST_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("debug/hoist");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/hoist")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Platform {
    child: Child,
    data: tempfile::TempDir,
    api_url: String,
    token: String,
}

impl Platform {
    fn start() -> Option<Platform> {
        let bin = server_binary();
        if !bin.exists() {
            return None;
        }
        let data = tempfile::tempdir().unwrap();
        let api_port = free_port();
        let log = std::fs::File::create(data.path().join("server.log")).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(data.path().join("data"))
            .arg("--api-addr")
            .arg(format!("127.0.0.1:{api_port}"))
            .arg("--router-addr")
            .arg(format!("127.0.0.1:{}", free_port()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for k in [
            "HOIST_API_URL",
            "HOIST_DATA_DIR",
            "HOIST_API_ADDR",
            "HOIST_ROUTER_ADDR",
            "HOIST_DOMAIN",
        ] {
            cmd.env_remove(k);
        }
        let child = cmd.spawn().unwrap();
        let mut p = Platform {
            child,
            data,
            api_url: format!("http://127.0.0.1:{api_port}"),
            token: String::new(),
        };
        let token_file = p.data.path().join("data/admin.token");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(t) = std::fs::read_to_string(&token_file) {
                if !t.trim().is_empty()
                    && std::net::TcpStream::connect(("127.0.0.1", api_port)).is_ok()
                {
                    p.token = t.trim().to_string();
                    return Some(p);
                }
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("hoist server exited with {status}:\n{}", p.log());
            }
            assert!(
                Instant::now() < deadline,
                "hoist server did not start:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    /// A CLI user with the owner token and a fresh HOME.
    fn owner(&self) -> User {
        User::new(self, Some(self.token.clone()))
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the CLI as one user: its own HOME, token (or none) and working directory.
struct User {
    api_url: String,
    token: Option<String>,
    home: tempfile::TempDir,
    cwd: PathBuf,
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
    cmd: String,
}

impl Out {
    fn ok(self) -> Out {
        assert_eq!(self.code, 0, "{self}");
        self
    }
    fn code(self, code: i32) -> Out {
        assert_eq!(self.code, code, "{self}");
        self
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ hoist {}\nexit {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.cmd, self.code, self.stdout, self.stderr
        )
    }
}

impl User {
    fn new(p: &Platform, token: Option<String>) -> User {
        User::for_url(&p.api_url, token)
    }

    fn for_url(api_url: &str, token: Option<String>) -> User {
        let home = tempfile::tempdir().unwrap();
        let cwd = home.path().to_path_buf();
        User {
            api_url: api_url.to_string(),
            token,
            home,
            cwd,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(args)
            .current_dir(&self.cwd)
            .env("HOIST_CLI_EXEC", "1")
            .env("HOME", self.home.path())
            .env("HOIST_API_URL", &self.api_url)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@hoist.test")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@hoist.test")
            .env("NO_COLOR", "1");
        // Nothing of the machine's own setup may leak in (its CA, netrc, config).
        for k in [
            "HOIST_APP",
            "HOIST_API_KEY",
            "NETRC",
            "HOIST_DATA_DIR",
            "HOIST_CA_FILE",
            "XDG_CONFIG_HOME",
            "COLUMNS",
            "LINES",
            "GIT_DIR",
            "GIT_WORK_TREE",
        ] {
            cmd.env_remove(k);
        }
        if let Some(t) = &self.token {
            cmd.env("HOIST_API_KEY", t);
        }
        cmd
    }

    fn run_with(&self, args: &[&str], stdin: &str) -> Out {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        let out: Output = wait_bounded(child, Duration::from_secs(120), args);
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            cmd: args.join(" "),
        }
    }

    fn hoist(&self, args: &[&str]) -> Out {
        self.run_with(args, "")
    }

    fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.cwd)
            .env("HOME", self.home.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@hoist.test")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@hoist.test")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// Waits for a child, killing it after `limit` so a hung command fails the test.
fn wait_bounded(mut child: Child, limit: Duration, args: &[&str]) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().unwrap() {
            Some(_) => return child.wait_with_output().unwrap(),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "hoist {args:?} did not finish within {limit:?}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A unique app name per call (the server is shared by all tests).
fn app_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn json(out: &Out) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

// ---- tests ------------------------------------------------------------------------

fn apps_lifecycle(p: &Platform) {
    let u = p.owner();
    let name = app_name("life");
    let out = u.hoist(&["apps:create", &name]).ok();
    assert!(
        out.stdout.contains(&format!("| {}/{name}.git", p.api_url)),
        "web_url | git_url expected:\n{out}"
    );
    assert!(
        out.stderr.contains(&format!("Creating {name}... done")),
        "{out}"
    );

    let out = u.hoist(&["apps"]).ok();
    assert!(out.stdout.contains("=== admin@hoist.local Apps"), "{out}");
    assert!(out.stdout.lines().any(|l| l == name), "{out}");
    let list = json(&u.hoist(&["apps", "--json"]).ok());
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == name.as_str()));

    let out = u.hoist(&["apps:info", "-a", &name]).ok();
    assert!(out.stdout.starts_with(&format!("=== {name}\n")), "{out}");
    assert!(
        out.stdout.contains("Owner:") && out.stdout.contains("admin@hoist.local"),
        "{out}"
    );
    assert!(
        out.stdout.lines().any(
            |l| l.starts_with("Git URL:") && l.ends_with(&format!(" {}/{name}.git", p.api_url))
        ),
        "{out}"
    );
    let info = json(&u.hoist(&["apps:info", &name, "--json"]).ok());
    assert_eq!(info["app"]["name"], name.as_str());

    let renamed = app_name("renamed");
    u.hoist(&["apps:rename", &renamed, "-a", &name]).ok();
    u.hoist(&["apps:info", "-a", &name]).code(2);

    // Destroy refuses without a matching confirmation (a local usage error).
    let out = u.hoist(&["apps:destroy", "-a", &renamed]).code(1);
    assert!(
        out.stderr.contains(&format!("--confirm {renamed}")),
        "{out}"
    );
    u.hoist(&["apps:destroy", "-a", &renamed, "--confirm", "other"])
        .code(1);
    u.hoist(&["apps:info", "-a", &renamed]).ok();
    u.hoist(&["apps:destroy", "-a", &renamed, "--confirm", &renamed])
        .ok();
    let out = u.hoist(&["apps:info", "-a", &renamed]).code(2);
    assert!(out.stderr.contains("Error ID: not_found"), "{out}");

    // A generated name.
    let out = u.hoist(&["apps:create", "--json"]).ok();
    let generated = json(&out)["name"].as_str().unwrap().to_string();
    u.hoist(&["apps:destroy", &generated, "--confirm", &generated])
        .ok();
}

fn config_vars_and_release_versions(p: &Platform) {
    let u = p.owner();
    let app = app_name("cfg");
    u.hoist(&["apps:create", &app]).ok();
    let out = u
        .hoist(&[
            "config:set",
            "-a",
            &app,
            "FOO=bar",
            "DATABASE_URL=postgres://u:p@h/db?a=b&c=d",
        ])
        .ok();
    assert!(
        out.stderr.contains(&format!(
            "Setting FOO, DATABASE_URL and restarting {app}... done, v2"
        )),
        "{out}"
    );
    assert!(
        out.stdout.contains("FOO:") && out.stdout.contains("bar"),
        "{out}"
    );
    let out = u.hoist(&["config:get", "DATABASE_URL", "-a", &app]).ok();
    assert_eq!(out.stdout, "postgres://u:p@h/db?a=b&c=d\n");
    let out = u.hoist(&["config:get", "MISSING", "-a", &app]).ok();
    assert_eq!(out.stdout, "\n");
    let out = u.hoist(&["config", "-a", &app]).ok();
    assert!(
        out.stdout.contains(&format!("=== {app} Config Vars")),
        "{out}"
    );
    let out = u.hoist(&["config", "--shell", "-a", &app]).ok();
    assert!(out.stdout.contains("FOO=bar\n"), "{out}");
    assert!(
        out.stdout
            .contains("DATABASE_URL='postgres://u:p@h/db?a=b&c=d'\n"),
        "{out}"
    );
    let vars = json(&u.hoist(&["config", "--json", "-a", &app]).ok());
    assert_eq!(vars["FOO"], "bar");

    let out = u.hoist(&["config:unset", "FOO", "-a", &app]).ok();
    assert!(
        out.stderr
            .contains(&format!("Unsetting FOO and restarting {app}... done, v3")),
        "{out}"
    );
    let vars = json(&u.hoist(&["config", "--json", "-a", &app]).ok());
    assert!(vars.get("FOO").is_none(), "{vars}");

    let out = u.hoist(&["config:set", "NOEQUALS", "-a", &app]).code(1);
    assert!(out.stderr.contains("NOEQUALS is invalid"), "{out}");
    u.hoist(&["apps:destroy", "-a", &app, "--confirm", &app])
        .ok();
}

fn releases_and_rollback(p: &Platform) {
    let u = p.owner();
    let app = app_name("rel");
    u.hoist(&["apps:create", &app]).ok();
    u.hoist(&["config:set", "A=1", "-a", &app]).ok();
    u.hoist(&["config:set", "A=2", "-a", &app]).ok();
    let out = u.hoist(&["releases", "-a", &app]).ok();
    assert!(
        out.stdout
            .starts_with(&format!("=== {app} Releases - Current: v3\n")),
        "{out}"
    );
    let versions: Vec<&str> = out
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(versions, vec!["v3", "v2", "v1"], "{out}");
    let out = u.hoist(&["releases", "-n", "1", "--json", "-a", &app]).ok();
    let rs = json(&out);
    assert_eq!(rs.as_array().unwrap().len(), 1);
    assert_eq!(rs[0]["version"], 3);

    let out = u.hoist(&["releases:info", "v2", "-a", &app]).ok();
    assert!(out.stdout.starts_with("=== Release v2\n"), "{out}");
    assert!(
        out.stdout.contains("A: 1") || out.stdout.contains("A:"),
        "{out}"
    );

    // No argument: the release before the current one.
    let out = u.hoist(&["rollback", "-a", &app]).ok();
    assert!(
        out.stderr
            .contains(&format!("Rolling back {app} to v2... done, v4")),
        "{out}"
    );
    assert_eq!(u.hoist(&["config:get", "A", "-a", &app]).ok().stdout, "1\n");
    let out = u.hoist(&["rollback", "v1", "-a", &app]).ok();
    assert!(
        out.stderr
            .contains(&format!("Rolling back {app} to v1... done, v5")),
        "{out}"
    );
    assert_eq!(u.hoist(&["config:get", "A", "-a", &app]).ok().stdout, "\n");
    u.hoist(&["rollback", "v99", "-a", &app]).code(2);
    u.hoist(&["apps:destroy", "-a", &app, "--confirm", &app])
        .ok();
}

fn access_with_a_second_account(p: &Platform) {
    let u = p.owner();
    let app = app_name("acc");
    u.hoist(&["apps:create", &app]).ok();
    let email = format!("{}@example.test", app_name("pal"));
    let key = u
        .hoist(&["accounts:create", &email])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(key.len() >= 16, "api key expected, got {key:?}");
    let pal = User::new(p, Some(key));
    assert_eq!(pal.hoist(&["auth:whoami"]).ok().stdout.trim(), email);
    pal.hoist(&["apps:info", "-a", &app]).code(2);

    let out = u.hoist(&["access:add", &email, "-a", &app]).ok();
    assert!(
        out.stderr
            .contains(&format!("Adding {email} access to the app {app}... done")),
        "{out}"
    );
    let out = u.hoist(&["access", "-a", &app]).ok();
    assert!(
        out.stdout.contains(&email) && out.stdout.contains("collaborator"),
        "{out}"
    );
    assert!(
        out.stdout.contains("admin@hoist.local") && out.stdout.contains("owner"),
        "{out}"
    );
    pal.hoist(&["apps:info", "-a", &app]).ok();
    let out = pal.hoist(&["apps"]).ok();
    assert!(
        out.stdout.contains("=== Collaborated Apps") && out.stdout.contains(&app),
        "{out}"
    );

    u.hoist(&["access:remove", &email, "-a", &app]).ok();
    let out = pal.hoist(&["apps:info", "-a", &app]).code(2);
    assert!(out.stderr.contains("Error ID: forbidden"), "{out}");
    // Only the owner creates accounts.
    pal.hoist(&["accounts:create", "x@example.test"]).code(2);
    u.hoist(&["apps:destroy", "-a", &app, "--confirm", &app])
        .ok();
}

fn domains_maintenance_features(p: &Platform) {
    let u = p.owner();
    let app = app_name("dom");
    u.hoist(&["apps:create", &app]).ok();
    let host = format!("www.{app}.test");
    u.hoist(&["domains:add", &host, "-a", &app]).ok();
    let out = u.hoist(&["domains", "-a", &app]).ok();
    assert!(
        out.stdout.contains(&format!("=== {app} Heroku Domain")),
        "{out}"
    );
    assert!(out.stdout.contains(&format!("{app}.localhost")), "{out}");
    assert!(
        out.stdout.contains(&format!("=== {app} Custom Domains")) && out.stdout.contains(&host),
        "{out}"
    );
    u.hoist(&["domains:remove", &host, "-a", &app]).ok();
    let out = u.hoist(&["domains", "-a", &app]).ok();
    assert!(!out.stdout.contains(&host), "{out}");
    u.hoist(&["domains:remove", &host, "-a", &app]).code(2);

    assert_eq!(u.hoist(&["maintenance", "-a", &app]).ok().stdout, "off\n");
    let out = u.hoist(&["maintenance:on", "-a", &app]).ok();
    assert!(
        out.stderr
            .contains(&format!("Enabling maintenance mode for {app}... done")),
        "{out}"
    );
    assert_eq!(u.hoist(&["maintenance", "-a", &app]).ok().stdout, "on\n");
    u.hoist(&["maintenance:off", "-a", &app]).ok();
    assert_eq!(u.hoist(&["maintenance", "-a", &app]).ok().stdout, "off\n");

    let out = u.hoist(&["features:enable", "preboot", "-a", &app]).ok();
    assert!(
        out.stderr
            .contains(&format!("Enabling preboot for {app}... done")),
        "{out}"
    );
    let out = u.hoist(&["features", "-a", &app]).ok();
    assert!(out.stdout.contains("[+]  preboot"), "{out}");
    u.hoist(&["features:disable", "preboot", "-a", &app]).ok();
    let out = u.hoist(&["features", "-a", &app]).ok();
    assert!(out.stdout.contains("[ ]  preboot"), "{out}");
    let f = json(&u.hoist(&["features", "--json", "-a", &app]).ok());
    assert_eq!(f[0]["enabled"], false);
    u.hoist(&["features:enable", "nope", "-a", &app]).code(2);
    u.hoist(&["apps:destroy", "-a", &app, "--confirm", &app])
        .ok();
}

fn buildpacks_set_add_remove_clear(p: &Platform) {
    let u = p.owner();
    let app = app_name("bp");
    u.hoist(&["apps:create", &app]).ok();
    let list = |u: &User| -> Vec<String> {
        let v = json(&u.hoist(&["buildpacks", "--json", "-a", &app]).ok());
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["buildpack"]["url"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(u
        .hoist(&["buildpacks", "-a", &app])
        .ok()
        .stdout
        .contains("has no Buildpacks"));
    let out = u
        .hoist(&["buildpacks:set", "heroku/nodejs", "-a", &app])
        .ok();
    assert!(
        out.stdout.contains("Buildpack set. Next release on"),
        "{out}"
    );
    assert_eq!(list(&u), vec!["heroku/nodejs"]);
    u.hoist(&["buildpacks:add", "https://example.test/bp.tgz", "-a", &app])
        .ok();
    u.hoist(&["buildpacks:add", "heroku/python", "-i", "1", "-a", &app])
        .ok();
    assert_eq!(
        list(&u),
        vec![
            "heroku/python",
            "heroku/nodejs",
            "https://example.test/bp.tgz"
        ]
    );
    let out = u.hoist(&["buildpacks", "-a", &app]).ok();
    assert!(
        out.stdout.contains("=== ") && out.stdout.contains("2. heroku/nodejs"),
        "{out}"
    );
    u.hoist(&["buildpacks:add", "heroku/nodejs", "-a", &app])
        .code(1);
    u.hoist(&["buildpacks:set", "heroku/ruby", "-i", "2", "-a", &app])
        .ok();
    assert_eq!(
        list(&u),
        vec![
            "heroku/python",
            "heroku/ruby",
            "https://example.test/bp.tgz"
        ]
    );
    u.hoist(&["buildpacks:remove", "-i", "1", "-a", &app]).ok();
    u.hoist(&[
        "buildpacks:remove",
        "https://example.test/bp.tgz",
        "-a",
        &app,
    ])
    .ok();
    assert_eq!(list(&u), vec!["heroku/ruby"]);
    u.hoist(&["buildpacks:remove", "heroku/none", "-a", &app])
        .code(1);
    // The server validates buildpack references.
    u.hoist(&["buildpacks:add", "bad buildpack!", "-a", &app])
        .code(2);
    u.hoist(&["buildpacks:clear", "-a", &app]).ok();
    assert!(list(&u).is_empty());
    let other = app_name("bp2");
    let out = u.hoist(&["apps:create", &other, "-b", "heroku/go"]).ok();
    assert!(
        out.stderr
            .contains("Setting buildpack to heroku/go... done"),
        "{out}"
    );
    let v = json(&u.hoist(&["buildpacks", "--json", "-a", &other]).ok());
    assert_eq!(v[0]["buildpack"]["url"], "heroku/go");
    u.hoist(&["apps:destroy", "-a", &other, "--confirm", &other])
        .ok();
    u.hoist(&["apps:destroy", "-a", &app, "--confirm", &app])
        .ok();
}

fn git_remote_and_credentials(p: &Platform) {
    let mut u = p.owner();
    let repo = u.home.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    u.cwd = repo.clone();
    u.git(&["init", "-q"]);
    let app = app_name("git");
    let out = u.hoist(&["apps:create", &app]).ok();
    assert!(out.stderr.contains("Git remote hoist added"), "{out}");
    assert_eq!(
        u.git(&["config", "--get", "remote.hoist.url"]),
        format!("{}/{app}.git", p.api_url)
    );
    // The app comes from the remote now.
    u.hoist(&["config:set", "X=1"]).ok();
    assert_eq!(u.hoist(&["config:get", "X"]).ok().stdout, "1\n");

    let out = u.hoist(&["git:remote", "-a", &app, "-r", "staging"]).ok();
    assert!(
        out.stdout.contains(&format!(
            "set git remote staging to {}/{app}.git",
            p.api_url
        )),
        "{out}"
    );
    assert_eq!(
        u.git(&[
            "config",
            "--local",
            "--get",
            &format!("credential.{}.helper", p.api_url)
        ]),
        "!hoist git:credentials"
    );
    assert_eq!(
        u.hoist(&["config:get", "X", "-r", "staging"]).ok().stdout,
        "1\n"
    );
    let out = u.hoist(&["config:get", "X", "-r", "nothere"]).code(1);
    assert!(
        out.stderr.contains("no git remote named \"nothere\""),
        "{out}"
    );

    let host = p.api_url.trim_start_matches("http://");
    let out = u
        .run_with(
            &["git:credentials", "get"],
            &format!("protocol=http\nhost={host}\npath={app}.git\n\n"),
        )
        .ok();
    assert_eq!(
        out.stdout,
        format!("username=hoist\npassword={}\n", p.token)
    );
    let out = u
        .run_with(
            &["git:credentials", "get"],
            "protocol=https\nhost=github.com\n\n",
        )
        .ok();
    assert_eq!(out.stdout, "", "never hand our token to another host");
    u.run_with(&["git:credentials", "store"], "protocol=http\nhost=x\n\n")
        .ok();

    // A remote that is not a Hoist URL gives a clear error.
    u.git(&["remote", "add", "origin", "https://github.com/x/y.git"]);
    let out = u.hoist(&["config", "-r", "origin"]).code(1);
    assert!(out.stderr.contains("is not a Hoist app URL"), "{out}");

    // Destroying the app removes the remotes that point at it.
    u.hoist(&["apps:destroy", "--confirm", &app]).ok();
    let remotes = u.git(&["remote"]);
    assert_eq!(remotes, "origin", "hoist remotes removed: {remotes}");
}

fn login_with_password_writes_netrc(p: &Platform) {
    let owner = p.owner();
    let email = format!("{}@example.test", app_name("login"));
    owner
        .hoist(&["accounts:create", &email, "--password", "s3cret-pass"])
        .ok();

    let u = User::new(p, None);
    let netrc = u.home.path().join(".netrc");
    std::fs::write(
        &netrc,
        "machine other.example.test\n  login x\n  password keepme\n",
    )
    .unwrap();
    let out = u.hoist(&["auth:whoami"]).code(1);
    assert!(out.stderr.contains("Not logged in"), "{out}");

    let out = u
        .run_with(&["login"], &format!("{email}\nwrong-password\n"))
        .code(2);
    assert!(out.stderr.contains("Invalid email or password"), "{out}");

    let out = u
        .run_with(&["login"], &format!("{email}\ns3cret-pass\n"))
        .ok();
    assert!(
        out.stderr.contains(&format!("Logged in as {email}")),
        "{out}"
    );
    let text = std::fs::read_to_string(&netrc).unwrap();
    let machine = p.api_url.trim_start_matches("http://");
    assert!(
        text.starts_with("machine other.example.test\n  login x\n  password keepme\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("machine {machine}\n  login {email}\n  password ")),
        "{text}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&netrc).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_eq!(u.hoist(&["auth:whoami"]).ok().stdout.trim(), email);
    let token = u.hoist(&["auth:token"]).ok().stdout.trim().to_string();
    assert!(text.contains(&format!("password {token}")), "{text}");

    // Logging in again replaces the entry rather than adding a second one.
    u.run_with(&["login", "--email", &email], "s3cret-pass\n")
        .ok();
    let text = std::fs::read_to_string(&netrc).unwrap();
    assert_eq!(
        text.matches(&format!("machine {machine}")).count(),
        1,
        "{text}"
    );
    assert!(!text.contains(&token), "old token replaced: {text}");

    // --token verifies the token before saving it.
    u.hoist(&["login", "--token", "not-a-token"]).code(2);
    u.hoist(&["login", "--token", &p.token]).ok();
    assert_eq!(
        u.hoist(&["auth:whoami"]).ok().stdout.trim(),
        "admin@hoist.local"
    );

    // git asks the helper about the URL it was configured for, even when
    // HOIST_API_URL now points elsewhere: the netrc entry for that host answers.
    let mut cmd = u.command(&["git:credentials", "get"]);
    let mut child = cmd
        .env("HOIST_API_URL", "http://127.0.0.1:1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("protocol=http\nhost={machine}\n\n").as_bytes())
        .unwrap();
    let o = wait_bounded(child, Duration::from_secs(60), &["git:credentials"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("username=hoist\npassword={}\n", p.token)
    );

    u.hoist(&["logout"]).ok();
    let text = std::fs::read_to_string(&netrc).unwrap();
    assert!(!text.contains(machine), "{text}");
    assert!(text.contains("keepme"), "{text}");
    u.hoist(&["auth:whoami"]).code(1);
}

fn errors_and_exit_codes(p: &Platform) {
    let u = p.owner();
    let out = u.hoist(&["apps:info", "-a", "no-such-app"]).code(2);
    assert!(out.stderr.contains("Couldn't find that app."), "{out}");
    assert!(out.stderr.contains("Error ID: not_found"), "{out}");
    let out = u.hoist(&["config"]).code(1);
    assert!(
        out.stderr.contains("No app specified. Use -a APP, set HOIST_APP, or run inside a repo with a \"hoist\" git remote."),
        "{out}"
    );
    let out = u.hoist(&["foo"]).code(1);
    assert!(
        out.stderr
            .contains("\"foo\" is not a hoist command. See \"hoist help\"."),
        "{out}"
    );
    let out = u.hoist(&["help"]).ok();
    assert!(
        out.stdout.contains("config") && out.stdout.contains("ps"),
        "{out}"
    );
    let out = u.hoist(&["help", "config"]).ok();
    assert!(out.stdout.contains("hoist config:set"), "{out}");
    u.hoist(&["config:set", "--help"]).ok();
    let out = u.hoist(&["ps:scale", "web=x", "-a", "whatever"]).code(1);
    assert!(out.stderr.contains("Invalid argument"), "{out}");

    // HOIST_APP is used when -a is absent.
    let app = app_name("env");
    u.hoist(&["apps:create", &app]).ok();
    let mut cmd = u.command(&["config:get", "NOPE"]);
    let o = cmd.env("HOIST_APP", &app).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    u.hoist(&["apps:destroy", "-a", &app, "--confirm", &app])
        .ok();

    // A server that is not there is a local error.
    let mut cmd = u.command(&["apps"]);
    let o = cmd
        .env("HOIST_API_URL", format!("http://127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Could not connect to the Hoist API"));
}

fn dynos_without_a_deploy(p: &Platform) {
    let u = p.owner();
    let app = app_name("ps");
    u.hoist(&["apps:create", &app]).ok();
    let out = u.hoist(&["ps", "-a", &app]).ok();
    assert_eq!(out.stdout, format!("No dynos on {app}\n"));
    let out = u.hoist(&["ps:scale", "-a", &app]).code(1);
    assert!(out.stderr.contains("No process types"), "{out}");
    let out = u.hoist(&["ps:scale", "web=2", "-a", &app]).code(2);
    assert!(out.stderr.contains("No process types"), "{out}");
    // Commands for endpoints a server may not have yet fail with the server's answer.
    for args in [
        vec!["ps:restart", "-a", &app],
        vec!["logs", "-a", &app],
        vec!["builds", "-a", &app],
        vec!["drains", "-a", &app],
    ] {
        let out = u.hoist(&args);
        assert!(out.code == 0 || out.code == 2, "{out}");
        if out.code == 2 {
            assert!(out.stderr.contains(" !    "), "{out}");
        }
    }
    u.hoist(&["apps:destroy", "-a", &app, "--confirm", &app])
        .ok();
}

// ---- a scripted API for endpoints the server does not have yet --------------------

#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reply(status: u16, v: serde_json::Value) -> Resp {
    Resp {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: v.to_string().into_bytes(),
    }
}

fn reply_text(content_type: &str, body: &str) -> Resp {
    Resp {
        status: 200,
        headers: vec![("Content-Type".into(), content_type.into())],
        body: body.as_bytes().to_vec(),
    }
}

type Handler = dyn Fn(&Req, &str) -> Resp + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 answering from `handler` (one request per
/// connection) and recording every request.
struct Mock {
    url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Req>>>,
}

impl Mock {
    fn start(handler: impl Fn(&Req, &str) -> Resp + Send + Sync + 'static) -> Mock {
        use std::io::{BufRead, BufReader, Read};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (rec, base) = (requests.clone(), url.clone());
        let handler: std::sync::Arc<Handler> = std::sync::Arc::new(handler);
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(mut tcp) = tcp else { continue };
                let (rec, base, handler) = (rec.clone(), base.clone(), handler.clone());
                std::thread::spawn(move || {
                    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let mut r = BufReader::new(tcp.try_clone().unwrap());
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_string();
                    let path = parts.next().unwrap_or("").to_string();
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.push((k.trim().to_string(), v.trim().to_string()));
                        }
                    }
                    let len: usize = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    let req = Req {
                        method,
                        path,
                        headers,
                        body,
                    };
                    rec.lock().unwrap().push(req.clone());
                    let resp = handler(&req, &base);
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\nConnection: close\r\nContent-Length: {}\r\n",
                        resp.status,
                        resp.body.len()
                    );
                    for (k, v) in resp.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = tcp.write_all(head.as_bytes());
                    let _ = tcp.write_all(&resp.body);
                });
            }
        });
        Mock { url, requests }
    }

    fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    fn find(&self, method: &str, path: &str) -> Req {
        self.requests()
            .into_iter()
            .find(|r| r.is(method, path))
            .unwrap_or_else(|| {
                panic!(
                    "no {method} {path} in {:#?}",
                    self.requests()
                        .iter()
                        .map(|r| format!("{} {}", r.method, r.path))
                        .collect::<Vec<_>>()
                )
            })
    }
}

fn not_found() -> Resp {
    reply(
        404,
        serde_json::json!({"id": "not_found", "message": "Couldn't find that resource.", "resource": "resource"}),
    )
}

fn mock_deploy_uploads_source_and_streams_build() {
    use serde_json::json;
    for final_status in ["succeeded", "failed"] {
        let status = final_status.to_string();
        let api = Mock::start(move |r, base| {
            if r.is("POST", "/sources") {
                reply(
                    201,
                    json!({"source_blob": {"get_url": format!("{base}/blob/1?get"), "put_url": format!("{base}/blob/1?put")}}),
                )
            } else if r.is("PUT", "/blob/1?put") {
                reply(200, json!({}))
            } else if r.is("POST", "/apps/demo/builds") {
                reply(
                    201,
                    json!({"id": "b1", "status": "pending", "output_stream_url": format!("{base}/out/b1")}),
                )
            } else if r.is("GET", "/out/b1") {
                reply_text(
                    "text/plain",
                    "-----> Building on the Heroku-24 stack\n-----> Launching...\n",
                )
            } else if r.is("GET", "/apps/demo/builds/b1") {
                reply(200, json!({"id": "b1", "status": status}))
            } else {
                not_found()
            }
        });
        let mut u = User::for_url(&api.url, Some("tok".into()));
        let src = u.home.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        u.cwd = src.clone();
        std::fs::write(src.join("Procfile"), "web: ./run\n").unwrap();
        std::fs::write(src.join(".gitignore"), "secret.txt\n").unwrap();
        std::fs::write(src.join("secret.txt"), "no").unwrap();
        u.git(&["init", "-q"]);
        u.git(&["add", "-A"]);
        u.git(&["commit", "-qm", "first"]);
        let sha = u.git(&["rev-parse", "HEAD"]);
        let out = u.hoist(&["deploy", "-a", "demo"]);
        if final_status == "failed" {
            let out = out.code(1);
            assert!(out.stderr.contains("Build failed"), "{out}");
            continue;
        }
        let out = out.ok();
        assert!(out.stdout.contains("-----> Launching..."), "{out}");
        let put = api.find("PUT", "/blob/1?put");
        assert_eq!(
            put.header("authorization"),
            Some("Bearer tok"),
            "same-origin upload carries the token"
        );
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(put.body.as_slice()),
            &mut raw,
        )
        .unwrap();
        let mut names: Vec<String> = tar::Archive::new(raw.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, vec![".gitignore", "Procfile"]);
        let build = api.find("POST", "/apps/demo/builds").json();
        assert_eq!(
            build,
            json!({"source_blob": {"url": format!("{}/blob/1?get", api.url), "version": sha}})
        );
    }
}

fn mock_logs_session_and_stream() {
    use serde_json::json;
    let api = Mock::start(|r, base| {
        if r.is("POST", "/apps/demo/log-sessions") {
            reply(
                201,
                json!({"id": "s1", "logplex_url": format!("{base}/stream/s1?secret=x")}),
            )
        } else if r.is("GET", "/stream/s1?secret=x") {
            reply_text(
                "text/event-stream",
                "id: 1\ndata: 2026-11-28T10:00:00+00:00 app[web.1]: hello\n\nid: 2\ndata: 2026-11-28T10:00:01+00:00 heroku[router]: at=info\ndata: second line\n\n",
            )
        } else {
            not_found()
        }
    });
    let u = User::for_url(&api.url, Some("tok".into()));
    let out = u
        .hoist(&[
            "logs", "-a", "demo", "-n", "5", "--ps", "web.1", "--source", "app",
        ])
        .ok();
    assert_eq!(
        out.stdout,
        "2026-11-28T10:00:00+00:00 app[web.1]: hello\n2026-11-28T10:00:01+00:00 heroku[router]: at=info\nsecond line\n"
    );
    assert_eq!(
        api.find("POST", "/apps/demo/log-sessions").json(),
        json!({"lines": 5, "tail": false, "dyno": "web.1", "source": "app"})
    );
    let stream = api.find("GET", "/stream/s1?secret=x");
    assert_eq!(
        stream.header("authorization"),
        None,
        "the session URL is the credential"
    );
    assert_eq!(stream.header("accept"), Some("text/event-stream"));
    // The server of today answers with its error, shown as such.
    let api = Mock::start(|_, _| not_found());
    let u = User::for_url(&api.url, Some("tok".into()));
    let out = u.hoist(&["logs", "-a", "demo"]).code(2);
    assert!(out.stderr.contains("does not support POST"), "{out}");
}

/// A TLS rendezvous peer signed by a throwaway CA; returns (port, CA PEM, join).
fn rendezvous_peer(
    output: &'static [u8],
) -> (u16, String, std::thread::JoinHandle<(String, Vec<u8>)>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    use std::io::{BufRead, Read};
    use std::sync::Arc;
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let join = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut tls = std::io::BufReader::new(rustls::StreamOwned::new(
            rustls::ServerConnection::new(cfg).unwrap(),
            tcp,
        ));
        let mut secret = String::new();
        // A client that refuses our certificate never sends its secret.
        if tls.read_line(&mut secret).is_err() {
            return (secret, Vec::new());
        }
        tls.get_mut().write_all(b"rendezvous\r\n").unwrap();
        tls.get_mut().flush().unwrap();
        let mut input = Vec::new();
        let mut b = [0u8; 1];
        while tls.read_exact(&mut b).is_ok() && b[0] != 0x04 {
            input.push(b[0]);
        }
        let s = tls.get_mut();
        s.write_all(output).unwrap();
        s.conn.send_close_notify();
        s.flush().unwrap();
        (secret, input)
    });
    (port, ca.pem(), join)
}

fn mock_run_attached_over_rendezvous() {
    use serde_json::json;
    let (port, ca_pem, peer) =
        rendezvous_peer("hi there\n\u{FFFF} heroku-command-exit-status: 3\n".as_bytes());
    let api = Mock::start(move |r, _| {
        if r.is("POST", "/apps/demo/dynos") {
            reply(
                201,
                json!({"name": "run.4321", "size": "Basic", "attach_url": format!("rendezvous://127.0.0.1:{port}/s3cret")}),
            )
        } else {
            not_found()
        }
    });
    let u = User::for_url(&api.url, Some("tok".into()));
    let ca = u.home.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    // The Heroku CLI's word order: the command, then run's options.
    let mut cmd = u.command(&["run", "bash", "-c", "exit 3", "-a", "demo", "-e", "FOO=1"]);
    let mut child = cmd
        .env("HOIST_CA_FILE", &ca)
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"input-line\n")
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(60), &["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi there\n");
    assert!(
        stderr.contains("Running bash -c \"exit 3\" on demo... done, run.4321 (Basic)"),
        "{stderr}"
    );
    let (secret, input) = peer.join().unwrap();
    assert_eq!(secret, "s3cret\r\n");
    assert_eq!(input, b"input-line\n");
    let body = api.find("POST", "/apps/demo/dynos").json();
    assert_eq!(body["attach"], true);
    assert_eq!(body["command"], "bash -c \"exit 3\"");
    assert_eq!(body["env"]["FOO"], "1");
    assert_eq!(body["env"]["TERM"], "xterm");

    // Without a CA to trust (this API hands out none), it says what to set, and
    // starts no dyno it could not attach to.
    let out = u.hoist(&["run", "-a", "demo", "true"]).code(1);
    assert!(out.stderr.contains("HOIST_CA_FILE"), "{out}");
    let posts = api
        .requests()
        .iter()
        .filter(|r| r.is("POST", "/apps/demo/dynos"))
        .count();
    assert_eq!(posts, 1, "no dyno started without a CA");
}

/// `hoist run` with no `HOIST_CA_FILE` fetches the platform CA over the API, pins it
/// for that API host, and names it when a dyno's certificate does not match.
fn mock_run_pins_the_platform_ca_and_names_it_on_failure() {
    use serde_json::json;
    let (port, ca_pem, peer) =
        rendezvous_peer("pinned ok\n\u{FFFF} heroku-command-exit-status: 0\n".as_bytes());
    let served_ca = std::sync::Arc::new(std::sync::Mutex::new(ca_pem.clone()));
    let rendezvous_port = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(port));
    let (ca_for_api, port_for_api) = (served_ca.clone(), rendezvous_port.clone());
    let api = Mock::start(move |r, _| {
        if r.is("GET", "/platform/ca-certificate") && r.header("authorization").is_some() {
            reply(
                200,
                json!({"certificate_chain": *ca_for_api.lock().unwrap()}),
            )
        } else if r.is("POST", "/apps/demo/dynos") {
            let port = port_for_api.load(std::sync::atomic::Ordering::SeqCst);
            reply(
                201,
                json!({"name": "run.1", "size": "Basic", "attach_url": format!("rendezvous://127.0.0.1:{port}/s")}),
            )
        } else {
            not_found()
        }
    });
    let u = User::for_url(&api.url, Some("tok".into()));
    let out = u.hoist(&["run", "-a", "demo", "echo"]).ok();
    assert_eq!(out.stdout, "pinned ok\n", "{out}");
    peer.join().unwrap();
    let machine = api.url.trim_start_matches("http://");
    let pin = u
        .home
        .path()
        .join(format!(".config/hoist/ca/{machine}.pem"));
    assert_eq!(std::fs::read_to_string(&pin).unwrap(), ca_pem);

    // Another server's dyno (another CA) behind the same API: the pin is kept, and the
    // error says which CA was used and for which API.
    let (other_port, _other_ca, _other_peer) = rendezvous_peer(b"never\n");
    rendezvous_port.store(other_port, std::sync::atomic::Ordering::SeqCst);
    *served_ca.lock().unwrap() = "not a certificate".into();
    let out = u.hoist(&["run", "-a", "demo", "echo"]).code(1);
    assert!(
        out.stderr.contains(&format!(
            "not signed by the CA pinned for {} ({})",
            api.url,
            pin.display()
        )),
        "{out}"
    );
    assert!(out.stderr.contains("hoist login"), "{out}");
}

/// A terminal that reports no size (a 0x0 pty) still gets a tty on the dyno: 80x24,
/// or `$COLUMNS`/`$LINES`. Without a size the server runs the command without a tty,
/// and a raw-mode client then talks to a shell that never sees a line end.
fn mock_run_in_a_terminal_without_a_size() {
    use serde_json::json;
    for (env, expected) in [(None, ("80", "24")), (Some(("100", "30")), ("100", "30"))] {
        let (port, ca_pem, peer) =
            rendezvous_peer("sized\r\n\u{FFFF} heroku-command-exit-status: 0\n".as_bytes());
        let api = Mock::start(move |r, _| {
            if r.is("POST", "/apps/demo/dynos") {
                reply(
                    201,
                    json!({"name": "run.2", "size": "Basic", "attach_url": format!("rendezvous://127.0.0.1:{port}/s")}),
                )
            } else {
                not_found()
            }
        });
        let u = User::for_url(&api.url, Some("tok".into()));
        let ca = u.home.path().join("ca.pem");
        std::fs::write(&ca, ca_pem).unwrap();
        let zero = nix::pty::Winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&zero), None).unwrap();
        let tty = || Stdio::from(pty.slave.try_clone().unwrap());
        let mut cmd = u.command(&["run", "bash", "-a", "demo"]);
        cmd.env("HOIST_CA_FILE", &ca).env("TERM", "xterm");
        if let Some((c, l)) = env {
            cmd.env("COLUMNS", c).env("LINES", l);
        }
        let child = cmd
            .stdin(tty())
            .stdout(tty())
            .stderr(tty())
            .spawn()
            .unwrap();
        // The dyno session ends when the peer has read EOT; in raw mode it is a byte.
        let mut master = std::fs::File::from(pty.master.try_clone().unwrap());
        master.write_all(b"\x04").unwrap();
        let out = wait_bounded(child, Duration::from_secs(60), &["run", "bash"]);
        assert_eq!(out.status.code(), Some(0));
        peer.join().unwrap();
        let body = api.find("POST", "/apps/demo/dynos").json();
        assert_eq!(
            (
                body["env"]["COLUMNS"].as_str(),
                body["env"]["LINES"].as_str()
            ),
            (Some(expected.0), Some(expected.1)),
            "{body}"
        );
        assert!(body.get("force_no_tty").is_none(), "{body}");
    }
}

/// `hoist releases | head -1`: output into a pipe whose reader is gone must end the
/// CLI quietly, never with a panic (exit 101) about a broken pipe.
fn mock_output_into_a_closed_pipe_does_not_panic() {
    use serde_json::json;
    use std::os::unix::process::ExitStatusExt;
    let api = Mock::start(|r, _| {
        let release = |v: u64| {
            json!({"version": v, "description": "Deploy abc", "status": "succeeded",
                   "created_at": "2026-11-28T10:00:00Z", "user": {"email": "a@b.test"}, "current": v == 40})
        };
        if r.path.starts_with("/apps/demo/releases") {
            reply(200, json!((1..=40).rev().map(release).collect::<Vec<_>>()))
        } else if r.path.starts_with("/users/~/apps") || r.path.starts_with("/apps") {
            reply(
                200,
                json!((0..40)
                    .map(|i| json!({"name": format!("app-{i}"), "owner": {"email": "a@b.test"}}))
                    .collect::<Vec<_>>()),
            )
        } else if r.path.starts_with("/account") {
            reply(200, json!({"email": "a@b.test", "id": "1"}))
        } else {
            not_found()
        }
    });
    let u = User::for_url(&api.url, Some("tok".into()));
    for args in [
        &["releases", "-a", "demo"][..],
        &["apps"],
        &["apps", "--json"],
        &["auth:whoami"],
        &["help"],
        &["help", "apps"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let child = u
            .command(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = wait_bounded(child, Duration::from_secs(60), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            out.status.code() == Some(0) || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}: {:?} {stderr}",
            out.status
        );
    }
}

/// `hoist login` pins the server's platform CA for `hoist run`, per API host.
fn login_pins_the_platform_ca(p: &Platform) {
    let u = User::new(p, None);
    let out = u.hoist(&["login", "--token", &p.token]).ok();
    let machine = p.api_url.trim_start_matches("http://");
    let pin = u
        .home
        .path()
        .join(format!(".config/hoist/ca/{machine}.pem"));
    assert!(out.stderr.contains(&pin.display().to_string()), "{out}");
    assert_eq!(
        std::fs::read_to_string(&pin).unwrap(),
        std::fs::read_to_string(p.data.path().join("data/ca.pem")).unwrap()
    );
    // Only for signed-in users.
    let anon = User::new(p, None);
    let out = anon.hoist(&["run", "-a", "x", "true"]);
    assert_ne!(out.code, 0, "{out}");
    assert!(
        !anon.home.path().join(".config/hoist").exists(),
        "nothing pinned without a token"
    );
}

fn mock_run_detached() {
    use serde_json::json;
    let api = Mock::start(|r, _| {
        if r.is("POST", "/apps/demo/dynos") {
            reply(
                201,
                json!({"name": "run.1", "size": "Basic", "attach_url": null}),
            )
        } else {
            not_found()
        }
    });
    let u = User::for_url(&api.url, Some("tok".into()));
    let out = u
        .hoist(&["run:detached", "-a", "demo", "rake", "db:migrate"])
        .ok();
    assert!(
        out.stderr
            .contains("Run hoist logs --app demo --dyno run.1 to view the output."),
        "{out}"
    );
    let body = api.find("POST", "/apps/demo/dynos").json();
    assert_eq!(body["attach"], false);
    assert_eq!(body["command"], "rake db:migrate");
}

fn mock_ps_routes_and_scale_body() {
    use serde_json::json;
    let api = Mock::start(|r, _| {
        if r.is("PATCH", "/apps/demo/formation") {
            reply(
                200,
                json!([
                    {"type": "web", "quantity": 3, "size": "standard-2x"},
                    {"type": "worker", "quantity": 1, "size": "Basic"},
                ]),
            )
        } else if r.method == "DELETE" || r.path.ends_with("/actions/stop") {
            reply(202, json!({}))
        } else {
            not_found()
        }
    });
    let u = User::for_url(&api.url, Some("tok".into()));
    let out = u
        .hoist(&["ps:scale", "web=3:standard-2x", "worker+1", "-a", "demo"])
        .ok();
    assert!(
        out.stderr
            .contains("Scaling dynos... done, now running web at 3:standard-2x, worker at 1:Basic"),
        "{out}"
    );
    assert_eq!(
        api.find("PATCH", "/apps/demo/formation").json(),
        json!({"updates": [{"type": "web", "quantity": "3", "size": "standard-2x"}, {"type": "worker", "quantity": "+1"}]})
    );
    u.hoist(&["ps:restart", "-a", "demo"]).ok();
    u.hoist(&["ps:restart", "web", "-a", "demo"]).ok();
    u.hoist(&["ps:restart", "web.1", "-a", "demo"]).ok();
    u.hoist(&["ps:stop", "web.1", "-a", "demo"]).ok();
    u.hoist(&["ps:stop", "worker", "-a", "demo"]).ok();
    let seen: Vec<String> = api
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        seen[1..],
        [
            "DELETE /apps/demo/dynos",
            "DELETE /apps/demo/formations/web",
            "DELETE /apps/demo/dynos/web.1",
            "POST /apps/demo/dynos/web.1/actions/stop",
            "POST /apps/demo/formations/worker/actions/stop",
        ]
    );
}

fn mock_addons_create_confirmation_retry() {
    use serde_json::json;
    let api = Mock::start(|r, _| {
        if r.is("POST", "/apps/demo/addons") && r.json().get("confirm").is_none() {
            reply(
                422,
                json!({"id": "confirmation_required", "message": "This add-on is not free. Confirm with the app name."}),
            )
        } else if r.is("POST", "/apps/demo/addons") {
            reply(
                201,
                json!({"name": "postgresql-shiny-1", "state": "provisioned", "config_vars": ["DATABASE_URL"],
                "plan": {"name": "heroku-postgresql:mini", "price": {"cents": 0, "unit": "month"}}}),
            )
        } else {
            not_found()
        }
    });
    let u = User::for_url(&api.url, Some("tok".into()));
    let out = u
        .hoist(&[
            "addons:create",
            "heroku-postgresql:mini",
            "--as",
            "DATABASE",
            "-a",
            "demo",
            "--",
            "--version",
            "15",
        ])
        .ok();
    assert!(
        out.stderr
            .contains("Created postgresql-shiny-1 as DATABASE_URL"),
        "{out}"
    );
    let bodies: Vec<serde_json::Value> = api.requests().iter().map(Req::json).collect();
    assert_eq!(bodies.len(), 2);
    assert_eq!(
        bodies[0],
        json!({"plan": {"name": "heroku-postgresql:mini"}, "attachment": {"name": "DATABASE"}, "config": {"version": "15"}})
    );
    assert_eq!(bodies[1]["confirm"], "demo");
}

fn mock_apps_follow_next_range() {
    use serde_json::json;
    let api = Mock::start(|r, _| {
        let app =
            |n: &str| json!({"name": n, "owner": {"email": "me@x.test"}, "region": {"name": "us"}});
        match (r.method.as_str(), r.path.as_str(), r.header("range")) {
            ("GET", "/users/~/apps", None) => {
                let mut resp = reply(206, json!([app("alpha")]));
                resp.headers
                    .push(("Next-Range".into(), "id ]alpha..; max=1".into()));
                resp
            }
            ("GET", "/users/~/apps", Some("id ]alpha..; max=1")) => {
                reply(200, json!([app("beta")]))
            }
            ("GET", "/account", _) => reply(200, json!({"email": "me@x.test"})),
            _ => not_found(),
        }
    });
    let u = User::for_url(&api.url, Some("tok".into()));
    let out = u.hoist(&["apps"]).ok();
    assert_eq!(out.stdout, "=== me@x.test Apps\nalpha\nbeta\n");
}
