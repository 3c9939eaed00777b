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
