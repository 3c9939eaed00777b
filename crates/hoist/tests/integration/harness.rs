//! `TestPlatform`: a real `hoist server` on free loopback ports with its own data
//! directory. On a failed test it prints the server's log so failures explain themselves.

use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::Value;
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestPlatform {
    pub dir: tempfile::TempDir,
    pub api_port: u16,
    pub router_port: u16,
    extra_args: Vec<String>,
    pub token: String,
    child: Option<Child>,
    client: Client,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub fn hoist_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hoist"))
}

impl TestPlatform {
    pub fn start() -> TestPlatform {
        Self::start_with(&[])
    }

    /// Starts a server with extra `hoist server` flags (e.g. short timeouts).
    pub fn start_with(extra: &[&str]) -> TestPlatform {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut p = TestPlatform {
            dir,
            api_port: free_port(),
            router_port: free_port(),
            token: String::new(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("http client"),
        };
        p.spawn();
        p.token = std::fs::read_to_string(p.data_dir().join("admin.token"))
            .expect("admin.token written on first start")
            .trim()
            .to_string();
        p
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Starts (or restarts) the server process and waits for `/healthz`.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("server log file");
        let child = Command::new(hoist_bin())
            .arg("server")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--api-addr")
            .arg(format!("127.0.0.1:{}", self.api_port))
            .arg("--router-addr")
            .arg(format!("127.0.0.1:{}", self.router_port))
            .args(&self.extra_args)
            .env("HOIST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn hoist server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.client.get(self.url("/healthz")).send() {
                if r.status().is_success() {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("hoist server exited with {status}:\n{}", self.server_log());
            }
            assert!(
                Instant::now() < deadline,
                "server not healthy in 30 s:\n{}",
                self.server_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9` of the daemon: dynos must survive it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn server_log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url())
    }

    pub fn request(&self, method: &str, path: &str, token: Option<&str>) -> RequestBuilder {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = self
            .client
            .request(m, self.url(path))
            .header("Accept", "application/vnd.heroku+json; version=3");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    /// An authenticated request as the owner; returns status and JSON body.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.request(method, path, Some(&self.token));
        if let Some(b) = body {
            r = r.json(&b);
        }
        parse(r.send().expect("request"))
    }

    pub fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut r = self.request(method, path, Some(token));
        if let Some(b) = body {
            r = r.json(&b);
        }
        parse(r.send().expect("request"))
    }

    /// Creates a second account through the API; returns its token.
    pub fn new_user(&self, email: &str) -> String {
        let (status, body) = self.call(
            "POST",
            "/accounts",
            Some(serde_json::json!({"email": email, "password": "correct horse battery"})),
        );
        assert_eq!(status, 201, "{body}");
        body["api_key"].as_str().expect("api_key").to_string()
    }
}

pub fn parse(resp: Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().unwrap_or_default();
    if !text.is_empty() {
        assert!(
            ct.starts_with("application/json"),
            "status {status}: content-type {ct:?} for {text}"
        );
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- hoist server log ({}) ----\n{}",
                self.log_path().display(),
                self.server_log()
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.remove_dynos();
        self.stop_addon_servers();
    }
}

impl TestPlatform {
    /// Managed add-on servers outlive the daemon by design as well: stop this data
    /// directory's (their pid files say which).
    fn stop_addon_servers(&self) {
        let addons = self.data_dir().join("addons");
        let mut pid_files: Vec<PathBuf> = std::fs::read_dir(addons.join("redis"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("redis.pid"))
            .collect();
        pid_files.push(addons.join("postgresql/data/postmaster.pid"));
        for f in pid_files {
            let pid = std::fs::read_to_string(&f)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()));
            if let Some(pid) = pid {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
        }
    }
}

impl TestPlatform {
    /// Dynos outlive the daemon by design; a finished test removes its own.
    fn remove_dynos(&self) {
        use sha2::Digest;
        let canon = std::fs::canonicalize(self.data_dir()).unwrap_or_else(|_| self.data_dir());
        let h = sha2::Sha256::digest(canon.to_string_lossy().as_bytes());
        let hex: String = h[..6].iter().map(|b| format!("{b:02x}")).collect();
        // A dyno may be mid-start when the server dies: its shim is killed, but the
        // `runc run` it spawned goes on to create the container. So kill shims and
        // their `runc run`s first, then sweep runc's list until it stays empty
        // (bounded), and only then drop runc's state (without it the containers
        // could not be found again).
        let _ = Command::new("pkill")
            .arg("-9")
            .arg("-f")
            .arg(format!("shim {}", self.data_dir().display()))
            .output();
        // Builds have their own runc root; their agents end when the server's pipe
        // closes, but a sweep costs little.
        for kind in ["runc", "builds"] {
            let root = format!("/run/hoist/{kind}-{hex}");
            let _ = Command::new("pkill")
                .arg("-9")
                .arg("-f")
                .arg(format!("runc --root {root} run"))
                .output();
            for _ in 0..5 {
                let listed = Command::new("runc")
                    .args(["--root", &root, "list", "-q"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                    .unwrap_or_default();
                if listed.trim().is_empty() {
                    break;
                }
                for id in listed.lines() {
                    let _ = Command::new("runc")
                        .args(["--root", &root, "kill", "--all", id, "KILL"])
                        .output();
                    let _ = Command::new("runc")
                        .args(["--root", &root, "delete", "--force", id])
                        .output();
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = std::fs::remove_dir_all(&root);
        }
        // Overlay mounts of the dynos' /app live under the data directory.
        if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
            let dir = self.data_dir().display().to_string();
            for line in mounts.lines() {
                if let Some(target) = line.split_whitespace().nth(1) {
                    if target.starts_with(&dir) {
                        let _ = Command::new("umount").arg("-l").arg(target).output();
                    }
                }
            }
        }
    }
}

/// Runs a command; panics with its output when it fails.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    stdout + &stderr
}

pub fn exists_on_path(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(bin))
            .find(|p| Path::new(p).is_file())
    })
}

impl TestPlatform {
    /// Copies a directory into a fresh git repository with one commit on `main`.
    pub fn git_repo_from(&self, src: &Path) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("repo dir");
        run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", src.display()))
            .arg(dir.path()));
        git(dir.path(), &["init", "-q", "-b", "main"]);
        git(dir.path(), &["add", "-A"]);
        git(dir.path(), &["commit", "-q", "-m", "deploy"]);
        dir
    }

    pub fn git_url(&self, app: &str) -> String {
        format!(
            "http://hoist:{}@127.0.0.1:{}/{app}.git",
            self.token, self.api_port
        )
    }

    /// `git push <app> <refspec>`; returns (success, combined output).
    pub fn push(&self, repo: &Path, app: &str, refspec: &str) -> (bool, String) {
        let out = Command::new("git")
            .current_dir(repo)
            .args(["push", &self.git_url(app), refspec])
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .expect("git push");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// GET through the router with the app's Host header.
    pub fn get_app(&self, host: &str, path: &str) -> Result<(u16, String), String> {
        let resp = self
            .client
            .get(format!("http://127.0.0.1:{}{path}", self.router_port))
            .header("Host", host)
            .send()
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().unwrap_or_default()))
    }

    /// Polls the router until the app answers 200 (or panics with the app's log).
    pub fn wait_for_app(&self, app: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let host = format!("{app}.localhost");
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.get_app(&host, "/") {
                Ok((200, body)) => return body,
                Ok((s, body)) => {
                    last = format!("{s}: {}", body.chars().take(200).collect::<String>())
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{app} did not answer 200 within {timeout:?} (last: {last})\napp log:\n{}",
            self.app_log(app)
        );
    }

    /// The app's log history through a log session (non-tail).
    pub fn app_log(&self, app: &str) -> String {
        let (s, body) = self.call(
            "POST",
            &format!("/apps/{app}/log-sessions"),
            Some(serde_json::json!({"lines": 1500})),
        );
        if s != 201 {
            return format!("(no log session: {s} {body})");
        }
        let url = body["logplex_url"].as_str().unwrap_or_default().to_string();
        match self.client.get(&url).send().and_then(|r| r.text()) {
            Ok(t) => t
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n"),
            Err(e) => format!("(log stream failed: {e})"),
        }
    }

    /// Polls `GET /apps/{app}/dynos` until `pred` holds.
    pub fn wait_for_dynos(
        &self,
        app: &str,
        timeout: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, body) = self.call("GET", &format!("/apps/{app}/dynos"), None);
            let list = body.as_array().cloned().unwrap_or_default();
            if pred(&list) {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "dynos of {app} never matched: {list:?}\napp log:\n{}",
                self.app_log(app)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    run(Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Hoist Test")
        .env("GIT_AUTHOR_EMAIL", "test@hoist.local")
        .env("GIT_COMMITTER_NAME", "Hoist Test")
        .env("GIT_COMMITTER_EMAIL", "test@hoist.local"))
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Deploys a tiny app made only of a Procfile (and optional files), built by the
/// test's shell buildpack: seconds instead of a language build.
/// The shell buildpack fixture, copied once to a world-readable place: builds read
/// local buildpacks as the build user, and the checkout may lie where that user cannot
/// go (e.g. under /root).
fn fixture_buildpack() -> PathBuf {
    static COPY: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = COPY.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("buildpack dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        run(Command::new("cp")
            .arg("-R")
            .arg(repo_root().join("crates/hoist/tests/fixtures/shell-buildpack"))
            .arg(dir.path().join("shell-buildpack")));
        run(Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(dir.path().join("shell-buildpack")));
        dir
    });
    dir.path().join("shell-buildpack")
}

/// Creates `app` if needed and makes the test's shell buildpack its only buildpack
/// (detects any source with a Procfile; a `SLOW_BUILD` file makes it sleep that many
/// seconds after printing "Building slowly").
pub fn use_shell_buildpack(p: &TestPlatform, app: &str) {
    let (s, body) = p.call("POST", "/apps", Some(serde_json::json!({"name": app})));
    assert!(s == 201 || s == 409, "{body}");
    let bp = fixture_buildpack();
    let (s, body) = p.call(
        "PUT",
        &format!("/apps/{app}/buildpack-installations"),
        Some(serde_json::json!({"updates": [{"buildpack": bp.display().to_string()}]})),
    );
    assert_eq!(s, 200, "{body}");
}

pub fn deploy_procfile(
    p: &TestPlatform,
    app: &str,
    procfile: &str,
    files: &[(&str, &str)],
) -> (bool, String) {
    use_shell_buildpack(p, app);
    let src = tempfile::tempdir().expect("src");
    std::fs::write(src.path().join("Procfile"), procfile).expect("Procfile");
    for (name, content) in files {
        std::fs::write(src.path().join(name), content).expect("file");
    }
    let repo = p.git_repo_from(src.path());
    // Each call makes a fresh history: force-push it, as redeploying any tree should work.
    p.push(repo.path(), app, "+main:main")
}

/// Polls the app's log until it contains `needle`.
pub fn wait_for_log(p: &TestPlatform, app: &str, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let log = p.app_log(app);
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never appeared in the log of {app}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
