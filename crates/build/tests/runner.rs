//! Builds with tiny fake buildpacks (shell scripts) in temp dirs, run for real: in a
//! runc build container as uid 65534 when the tests run as root and runc is installed
//! (as in CI), else through the process sandbox.

use hoist_build::container::ContainerConfig;
use hoist_build::{
    pack_source_dir, run_build, unpack_slug, BuildConfig, BuildError, BuildOutcome, BuildRequest,
};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

struct Fixture {
    t: tempfile::TempDir,
    cfg: BuildConfig,
}

fn sandbox_ids() -> (u32, u32) {
    if nix::unistd::geteuid().is_root() {
        (65534, 65534)
    } else {
        (0, 0)
    }
}

fn runc_available() -> bool {
    nix::unistd::geteuid().is_root()
        && std::process::Command::new("runc")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
}

impl Fixture {
    /// A build in a container when possible, else in the process sandbox.
    fn new() -> Fixture {
        let mut f = Fixture::sandboxed();
        if runc_available() {
            f.cfg.container = Some(ContainerConfig {
                runc_root: f.path("runc"),
                agent_exe: PathBuf::from(env!("CARGO_BIN_EXE_hoist-build-agent")),
                stack_dirs: hoist_runtime::default_stack_dirs(),
            });
        }
        f
    }

    fn sandboxed() -> Fixture {
        let t = tempfile::tempdir().unwrap();
        // The sandbox user must be able to traverse down to the build dirs.
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let (uid, gid) = sandbox_ids();
        let mut cfg = BuildConfig::with_defaults(t.path());
        cfg.sandbox_uid = uid;
        cfg.sandbox_gid = gid;
        cfg.time_limit = Duration::from_secs(120);
        fs::create_dir_all(&cfg.builtin_dir).unwrap();
        Fixture { t, cfg }
    }

    fn in_container(&self) -> bool {
        self.cfg.container.is_some()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.t.path().join(rel)
    }

    /// Writes a buildpack with the given script bodies (bash).
    fn buildpack(&self, dir: &Path, detect: &str, compile: &str, release: Option<&str>) {
        fs::create_dir_all(dir.join("bin")).unwrap();
        let mut scripts = vec![("detect", detect), ("compile", compile)];
        if let Some(r) = release {
            scripts.push(("release", r));
        }
        for (name, body) in scripts {
            let p = dir.join("bin").join(name);
            fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    fn builtin(&self, name: &str, detect_file: &str, display: &str, compile: &str) {
        self.buildpack(
            &self.cfg.builtin_dir.join(name),
            &format!("[ -f \"$1/{detect_file}\" ] && echo {display:?} && exit 0; exit 1"),
            compile,
            Some("echo '--- {}'"),
        );
    }

    fn app(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.path(&format!("src-{name}"));
        for (p, body) in files {
            let p = dir.join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, body).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn request(&self, source: PathBuf, buildpacks: &[&str]) -> BuildRequest {
        BuildRequest {
            app_name: "demo".into(),
            source_dir: source,
            cache_dir: self.path("cache/demo"),
            env: BTreeMap::new(),
            buildpacks: buildpacks.iter().map(|s| s.to_string()).collect(),
            stack: "heroku-24".into(),
        }
    }

    fn build(&self, req: BuildRequest) -> (Result<BuildOutcome, BuildError>, Vec<String>) {
        let mut lines = Vec::new();
        let r = run_build(&self.cfg, req, &mut |l| lines.push(l.to_string()));
        (r, lines)
    }
}

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l == needle)
}

#[test]
fn detection_follows_herokus_order_and_first_match_wins() {
    let f = Fixture::new();
    f.builtin("ruby", "Gemfile", "Ruby", "echo ruby-compiled");
    f.builtin(
        "nodejs",
        "package.json",
        "Node.js",
        "echo '-----> Installing node'",
    );
    // Python accepts everything, but comes after Node.js.
    f.buildpack(
        &f.cfg.builtin_dir.join("python"),
        "echo Python",
        "echo python-compiled",
        None,
    );
    let src = f.app(
        "node",
        &[("package.json", "{}"), ("Procfile", "web: node server.js")],
    );
    let (r, lines) = f.build(f.request(src, &[]));
    let outcome = r.unwrap();
    assert_eq!(lines[0], "-----> Building on the Heroku-24 stack");
    assert!(has(&lines, "-----> Node.js app detected"), "{lines:?}");
    assert!(has(&lines, "-----> Installing node"), "{lines:?}");
    assert!(!lines
        .iter()
        .any(|l| l.contains("python") || l.contains("ruby-compiled")));
    assert_eq!(outcome.buildpacks, vec!["heroku/nodejs"]);
    assert_eq!(outcome.buildpack_description, "Node.js");
    assert!(
        has(&lines, "       Procfile declares types -> web"),
        "{lines:?}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("-----> Compressing... done, "),
        "{lines:?}"
    );
}

#[test]
fn no_buildpack_detected_names_the_languages() {
    let f = Fixture::new();
    f.builtin("ruby", "Gemfile", "Ruby", "true");
    f.builtin("nodejs", "package.json", "Node.js", "true");
    f.builtin("go", "go.mod", "Go", "true");
    let src = f.app("none", &[("README", "hi")]);
    let (r, _) = f.build(f.request(src, &[]));
    let err = r.unwrap_err();
    assert!(matches!(err, BuildError::NoBuildpackDetected { .. }));
    let msg = err.to_string();
    assert!(msg.contains("Ruby, Node.js, Go"), "{msg}");
}

#[test]
fn compile_streams_output_and_sees_env_dir_and_persistent_cache() {
    let f = Fixture::new();
    let go_file = f.path("cache/demo/go");
    f.builtin(
        "nodejs",
        "package.json",
        "Node.js",
        r#"echo "-----> Installing dependencies"
echo "       warn on stderr" >&2
echo "       secret=$(cat "$3/SECRET_KEY") files=$(ls "$3" | tr '\n' ,)"
n=$(cat "$2/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$2/count"
echo "       build number $n"
echo "       uid=$(id -u) home=$HOME stack=$STACK"
echo "       nnp=$(grep NoNewPrivs /proc/self/status | tr -d '[:space:]')"
echo "       env=$(env | cut -d= -f1 | sort | tr '\n' ,)"
echo waiting-for-go
for i in $(seq 1 200); do [ -f "$2/go" ] && break; sleep 0.05; done
[ -f "$2/go" ] && echo "       streamed" || echo "       not streamed""#,
    );
    let src = f.app("node", &[("package.json", "{}")]);
    let mut req = f.request(src, &[]);
    req.env.insert("SECRET_KEY".into(), "s3cr3t".into());
    req.env.insert("DATABASE_URL".into(), "postgres://x".into());
    req.env.insert("SOURCE_VERSION".into(), "abc123".into());

    let mut lines = Vec::new();
    let outcome = run_build(&f.cfg, req.clone(), &mut |l| {
        // Only reachable while compile still runs if output is streamed line by line.
        if l == "waiting-for-go" {
            fs::write(&go_file, "").unwrap();
        }
        lines.push(l.to_string());
    })
    .unwrap();
    assert!(has(&lines, "       streamed"), "{lines:?}");
    assert!(has(&lines, "-----> Installing dependencies"));
    assert!(has(&lines, "       warn on stderr"));
    assert!(
        has(
            &lines,
            "       secret=s3cr3t files=DATABASE_URL,SECRET_KEY,SOURCE_VERSION,"
        ),
        "{lines:?}"
    );
    assert!(has(&lines, "       build number 1"));
    let (uid, _) = sandbox_ids();
    let id_line = lines.iter().find(|l| l.contains("uid=")).unwrap();
    assert!(
        id_line.starts_with(&format!("       uid={uid} home=")),
        "{id_line}"
    );
    assert!(id_line.ends_with("/app stack=heroku-24"), "{id_line}");
    assert!(has(&lines, "       nnp=NoNewPrivs:1"), "{lines:?}");
    let env_line = lines.iter().find(|l| l.contains("env=")).unwrap();
    // Minimal environment: config vars are in ENV_DIR, not exported.
    assert_eq!(
        env_line.trim(),
        "env=HOIST_RUNTIME_CACHE,HOME,LANG,PATH,PWD,SHLVL,SOURCE_VERSION,STACK,TMPDIR,_,"
    );
    assert!(outcome.slug.path.exists());

    fs::remove_file(&go_file).unwrap();
    let src = f.app("node2", &[("package.json", "{}")]);
    req.source_dir = src;
    let (r, lines) = f.build(req);
    r.unwrap();
    assert!(
        has(&lines, "       build number 2"),
        "cache persisted: {lines:?}"
    );
}

#[test]
fn export_of_one_buildpack_reaches_the_next_and_last_release_wins() {
    let f = Fixture::new();
    let a = f.path("bp-a");
    let b = f.path("bp-b");
    f.buildpack(
        &a,
        "echo A",
        r#"bp=$(cd "$(dirname "$0")/.." && pwd)
echo 'export FROM_A=hello-from-a' > "$bp/export"
echo 'export PATH="/opt/a/bin:$PATH"' >> "$bp/export""#,
        Some("printf -- '---\ndefault_process_types:\n  web: from-a\n  a_only: a\nconfig_vars:\n  A_VAR: \"1\"\naddons:\n  - heroku-redis\n'"),
    );
    f.buildpack(
        &b,
        "echo B",
        r#"echo "       FROM_A=$FROM_A path=${PATH%%:*}""#,
        Some("printf -- '---\ndefault_process_types:\n  web: from-b\nconfig_vars:\n  B_VAR: two\naddons:\n  - heroku-postgresql\n'"),
    );
    let src = f.app("multi", &[]);
    let req = f.request(src, &[a.to_str().unwrap(), b.to_str().unwrap()]);
    let (r, lines) = f.build(req);
    let outcome = r.unwrap();
    assert!(has(&lines, "-----> Using buildpacks:"), "{lines:?}");
    assert!(has(&lines, "-----> A app detected") && has(&lines, "-----> B app detected"));
    assert!(
        has(&lines, "       FROM_A=hello-from-a path=/opt/a/bin"),
        "{lines:?}"
    );
    assert_eq!(outcome.buildpack_description, "B");
    assert_eq!(
        outcome.process_types.len(),
        1,
        "{:?}",
        outcome.process_types
    );
    assert_eq!(outcome.process_types["web"], "from-b");
    assert_eq!(outcome.release_config_vars["A_VAR"], "1");
    assert_eq!(outcome.release_config_vars["B_VAR"], "two");
    assert_eq!(outcome.addons, vec!["heroku-redis", "heroku-postgresql"]);
    assert!(
        has(&lines, "       Default types for buildpack -> web"),
        "{lines:?}"
    );
}

#[test]
fn procfile_wins_over_release_defaults() {
    let f = Fixture::new();
    let bp = f.path("bp");
    f.buildpack(
        &bp,
        "echo Node.js",
        "true",
        Some("cat <<'EOF'\n---\ndefault_process_types:\n  web: npm start\n  console: node\nEOF"),
    );
    let src = f.app(
        "procfile",
        &[("Procfile", "web: node server.js\nworker: node worker.js\n")],
    );
    let (r, lines) = f.build(f.request(src, &[bp.to_str().unwrap()]));
    let outcome = r.unwrap();
    assert_eq!(outcome.process_types["web"], "node server.js");
    assert_eq!(outcome.process_types["worker"], "node worker.js");
    assert_eq!(outcome.process_types["console"], "node");
    let i = lines
        .iter()
        .position(|l| l == "-----> Discovering process types")
        .unwrap();
    assert_eq!(
        lines[i + 1],
        "       Procfile declares types -> web, worker"
    );
    assert_eq!(
        lines[i + 2],
        "       Default types for buildpack -> console, web"
    );

    // Without a Procfile the defaults are the process types.
    let src = f.app("noprocfile", &[]);
    let (r, _) = f.build(f.request(src, &[bp.to_str().unwrap()]));
    let types = r.unwrap().process_types;
    assert_eq!(types.keys().collect::<Vec<_>>(), vec!["console", "web"]);
}

#[test]
fn garbage_release_yaml_and_bad_procfile_are_clear_errors() {
    let f = Fixture::new();
    let bp = f.path("bp");
    f.buildpack(&bp, "echo X", "true", Some("echo '{{{ not: yaml: ['"));
    let (r, _) = f.build(f.request(f.app("g", &[]), &[bp.to_str().unwrap()]));
    let err = r.unwrap_err();
    assert!(matches!(err, BuildError::ReleaseYaml { .. }), "{err:?}");
    assert!(err.to_string().contains("invalid YAML"), "{err}");

    let bp2 = f.path("bp2");
    f.buildpack(&bp2, "echo X", "true", Some("echo '--- {}'"));
    let src = f.app("p", &[("Procfile", "web: ok\nthis line is wrong\n")]);
    let (r, _) = f.build(f.request(src, &[bp2.to_str().unwrap()]));
    let err = r.unwrap_err();
    assert!(matches!(err, BuildError::Procfile(_)), "{err:?}");
    assert!(err.to_string().contains("Procfile line 2"), "{err}");
}

#[test]
fn failing_compile_names_the_buildpack() {
    let f = Fixture::new();
    f.builtin(
        "php",
        "index.php",
        "PHP",
        "echo ' !     composer failed' >&2; exit 3",
    );
    let src = f.app("php", &[("index.php", "<?php")]);
    let (r, lines) = f.build(f.request(src, &["heroku/php"]));
    let err = r.unwrap_err();
    assert!(has(&lines, " !     composer failed"));
    assert!(has(&lines, "-----> Using buildpack: heroku/php"));
    let msg = err.to_string();
    assert!(
        msg.contains("heroku/php") && msg.contains("exit code 3"),
        "{msg}"
    );

    // An explicitly set buildpack that does not detect the app.
    let src = f.app("php2", &[("README", "")]);
    let (r, _) = f.build(f.request(src, &["php"]));
    assert!(matches!(r.unwrap_err(), BuildError::NotCompatible { .. }));
    let (r, _) = f.build(f.request(f.app("x", &[]), &["heroku/cobol"]));
    assert!(matches!(r.unwrap_err(), BuildError::UnknownBuildpack(_)));
}

/// Whether any process on the host runs with exactly this argument (the build's pids
/// are in another namespace, so tests look processes up by a unique argument).
fn running_with_arg(arg: &str) -> bool {
    let Ok(dir) = fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok()).any(|e| {
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // A zombie waiting for init to reap it is dead enough.
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        !zombie
            && fs::read(e.path().join("cmdline"))
                .unwrap_or_default()
                .split(|&b| b == 0)
                .any(|a| a == arg.as_bytes())
    })
}

fn gone_within_5s(arg: &str) -> bool {
    for _ in 0..100 {
        if !running_with_arg(arg) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn build_over_the_time_limit_is_killed() {
    let mut f = Fixture::new();
    f.cfg.time_limit = Duration::from_secs(2);
    let marker = format!("600.{}", std::process::id());
    f.builtin(
        "go",
        "go.mod",
        "Go",
        &format!(r#"sleep {marker} & echo started; sleep {marker}"#),
    );
    let src = f.app("go", &[("go.mod", "module x")]);
    let (r, lines) = f.build(f.request(src, &[]));
    let err = r.unwrap_err();
    assert!(has(&lines, "started"), "{lines:?}");
    assert_eq!(err.to_string(), "Build timed out after 2 seconds");
    assert!(
        gone_within_5s(&marker),
        "a build process survived the timeout"
    );
}

#[test]
fn background_processes_end_with_their_script() {
    let f = Fixture::new();
    let marker = format!("601.{}", std::process::id());
    // setsid leaves the process group: only the container (or the sandbox's cgroup)
    // still reaches it.
    f.builtin(
        "go",
        "go.mod",
        "Go",
        &format!(r#"setsid sleep {marker} </dev/null >/dev/null 2>&1 & echo spawned"#),
    );
    let (r, lines) = f.build(f.request(f.app("bg", &[("go.mod", "")]), &[]));
    r.unwrap();
    assert!(has(&lines, "spawned"), "{lines:?}");
    assert!(
        gone_within_5s(&marker),
        "a background process outlived the build"
    );
}

#[test]
fn slug_has_no_git_and_slugignore_applies_before_compile() {
    let f = Fixture::new();
    f.builtin(
        "ruby",
        "Gemfile",
        "Ruby",
        r#"[ -e "$1/design.psd" ] && echo "psd present" || echo "psd gone"
mkdir -p "$1/vendor" && echo compiled > "$1/vendor/out.txt""#,
    );
    let src = f.app(
        "ruby",
        &[
            ("Gemfile", "source 'x'"),
            ("design.psd", "big"),
            (".slugignore", "*.psd\n"),
            (".git/HEAD", "ref"),
            ("app.rb", "puts 1"),
        ],
    );
    let (r, lines) = f.build(f.request(src, &[]));
    let outcome = r.unwrap();
    assert!(has(&lines, "psd gone"), "{lines:?}");
    let dest = f.path("unpacked");
    unpack_slug(&outcome.slug.path, &dest).unwrap();
    assert_eq!(
        fs::read_to_string(dest.join("vendor/out.txt")).unwrap(),
        "compiled\n"
    );
    assert!(dest.join("app.rb").exists() && dest.join("Gemfile").exists());
    assert!(!dest.join(".git").exists());
    assert!(!dest.join("design.psd").exists());
    assert_eq!(
        outcome.slug.path,
        f.cfg.slugs_dir.join(format!("{}.tgz", outcome.slug.id))
    );
    // The scratch dir is gone.
    assert_eq!(fs::read_dir(&f.cfg.work_root).unwrap().count(), 0);
}

#[test]
fn slug_size_limit_is_enforced() {
    let mut f = Fixture::new();
    f.cfg.max_slug_bytes = 1_000_000;
    f.builtin(
        "go",
        "go.mod",
        "Go",
        r#"head -c 3000000 /dev/urandom > "$1/blob""#,
    );
    let (r, _) = f.build(f.request(f.app("big", &[("go.mod", "")]), &[]));
    let err = r.unwrap_err();
    assert!(matches!(err, BuildError::SlugTooLarge { .. }), "{err:?}");
    assert!(
        err.to_string().contains("exceeds the limit of 1 MB"),
        "{err}"
    );
}

fn git(dir: &Path, args: &[&str]) {
    let st = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

#[test]
fn git_url_buildpack_is_cloned() {
    let f = Fixture::new();
    let work = f.path("bp-work");
    f.buildpack(
        &work,
        "echo GitPack",
        "echo '       compiled by the git buildpack'",
        None,
    );
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "bp"]);
    git(&work, &["tag", "v1"]);
    let bare = f.path("bp.git");
    git(
        f.t.path(),
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
    );

    for spec in [
        format!("file://{}", bare.display()),
        format!("file://{}#v1", bare.display()),
    ] {
        let (r, lines) = f.build(f.request(f.app("g", &[]), &[&spec]));
        let outcome = r.unwrap();
        assert!(
            has(&lines, "       compiled by the git buildpack"),
            "{lines:?}"
        );
        assert_eq!(outcome.buildpacks, vec![spec.clone()]);
        assert_eq!(outcome.buildpack_description, "GitPack");
    }
    let (r, _) = f.build(f.request(f.app("g", &[]), &["file:///nonexistent/bp.git"]));
    assert!(matches!(r.unwrap_err(), BuildError::BuildpackFetch { .. }));
}

#[test]
fn tarball_url_buildpack_is_downloaded_from_loopback() {
    let mut f = Fixture::new();
    let bp = f.path("tar-src/heroku-buildpack-x-main");
    f.buildpack(
        &bp,
        "echo TarPack",
        "echo '       compiled by the tarball buildpack'",
        None,
    );
    let tgz = f.path("bp.tgz");
    pack_source_dir(&f.path("tar-src"), &tgz).unwrap();
    let body = fs::read(&tgz).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let spec = format!("http://127.0.0.1:{port}/buildpack.tgz");

    // By default a loopback URL is refused before any connection is made.
    let (r, _) = f.build(f.request(f.app("t", &[]), &[&spec]));
    let err = r
        .expect_err("a loopback buildpack URL must be refused")
        .to_string();
    assert!(
        err.contains("loopback") && err.contains("--allow-internal-url"),
        "{err}"
    );
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the daemon connected to a refused URL"
    );
    listener.set_nonblocking(false).unwrap();

    // Allowed by the operator, it is fetched.
    f.cfg.egress = std::sync::Arc::new(
        hoist_egress::EgressPolicy::strict()
            .allow("127.0.0.1")
            .unwrap(),
    );
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(&body).unwrap();
    });
    let (r, lines) = f.build(f.request(f.app("t", &[]), &[&spec]));
    server.join().unwrap();
    let outcome = r.unwrap();
    assert!(
        has(&lines, "       compiled by the tarball buildpack"),
        "{lines:?}"
    );
    assert_eq!(outcome.buildpack_description, "TarPack");
}

#[test]
fn sandbox_user_cannot_touch_the_host() {
    if sandbox_ids().0 == 0 {
        return; // needs root to drop to another user
    }
    for f in [Fixture::new(), Fixture::sandboxed()] {
        cannot_touch_the_host(f);
    }
}

fn cannot_touch_the_host(f: Fixture) {
    let secret = f.path("root-only");
    fs::write(&secret, "root secret").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    f.builtin(
        "go",
        "go.mod",
        "Go",
        &format!(
            r#"cat {0} 2>/dev/null && echo "read secret" || echo "no read"
echo pwned > {0} 2>/dev/null && echo "wrote secret" || echo "no write"
ls / >/dev/null && echo "can list""#,
            secret.display()
        ),
    );
    let (r, lines) = f.build(f.request(f.app("s", &[("go.mod", "")]), &[]));
    r.unwrap();
    assert!(
        has(&lines, "no read") && has(&lines, "no write"),
        "{lines:?}"
    );
    assert_eq!(fs::read_to_string(&secret).unwrap(), "root secret");
}

#[test]
fn build_container_is_isolated_like_a_dyno() {
    let f = Fixture::new();
    if !f.in_container() {
        eprintln!("skipped: needs root and runc");
        return;
    }
    // Another app's cache and a file beside the data dir: neither may be visible.
    fs::create_dir_all(f.path("cache/other-app")).unwrap();
    fs::write(f.path("cache/other-app/secret"), "x").unwrap();
    fs::write(f.path("beside"), "x").unwrap();
    f.builtin(
        "go",
        "go.mod",
        "Go",
        &format!(
            r#"[ -e {other} ] && echo "sees other app" || echo "other app invisible"
[ -e {beside} ] && echo "sees host" || echo "host invisible"
[ -e /root ] || [ -e /home ] && echo "sees /root or /home" || echo "no home dirs"
touch /usr/x 2>/dev/null && echo "wrote /usr" || echo "usr read-only"
touch /x 2>/dev/null && echo "wrote /" || echo "root read-only"
echo "init=$(tr '\0' ' ' </proc/1/cmdline)"
echo "procs=$(ls /proc | grep -c '^[0-9]')"
echo "host=$(hostname)"
echo "caps=$(grep CapEff /proc/self/status | tr -d '[:space:]')"
echo tmp > /tmp/t && echo "tmp writable"
[ -s /etc/resolv.conf ] && echo "resolver present""#,
            other = f.path("cache/other-app/secret").display(),
            beside = f.path("beside").display(),
        ),
    );
    let (r, lines) = f.build(f.request(f.app("iso", &[("go.mod", "")]), &[]));
    r.unwrap();
    for want in [
        "other app invisible",
        "host invisible",
        "no home dirs",
        "usr read-only",
        "root read-only",
        "init=/.hoist/build-agent build-agent ",
        "caps=CapEff:0000000000000000",
        "tmp writable",
        "resolver present",
    ] {
        assert!(has(&lines, want), "missing {want:?} in {lines:?}");
    }
    let procs: u32 = lines
        .iter()
        .find_map(|l| l.strip_prefix("procs="))
        .unwrap()
        .parse()
        .unwrap();
    // The agent, bash, and the pipeline's ls and grep: nothing of the host.
    assert!(procs <= 6, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("host=build-")),
        "{lines:?}"
    );
    // The container is gone after the build.
    let runc = f.cfg.container.as_ref().unwrap();
    let listed = std::process::Command::new("runc")
        .arg("--root")
        .arg(&runc.runc_root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "");
}

#[test]
fn garbage_output_and_signals_to_init_do_not_confuse_the_build() {
    let f = Fixture::new();
    // Lines that look like the agent's protocol, invalid UTF-8, a 200 KB line without a
    // newline, and attempts to kill the container's init (ignored inside a pid
    // namespace; in the sandbox pid 1 is not the user's to signal).
    f.builtin(
        "go",
        "go.mod",
        "Go",
        r#"echo 'x 0'; echo 'e boom'; printf 'c captured?\n'
printf 'bad \xff\xfe bytes\n'
head -c 200000 /dev/zero | tr '\0' a
echo
kill -9 1 2>/dev/null; kill -TERM 1 2>/dev/null
echo still-here"#,
    );
    let (r, lines) = f.build(f.request(f.app("junk", &[("go.mod", "")]), &[]));
    // bin/release ran after the compile's kill attempts: the agent survived them.
    r.unwrap();
    for want in [
        "x 0",
        "e boom",
        "c captured?",
        "bad \u{fffd}\u{fffd} bytes",
        "still-here",
    ] {
        assert!(has(&lines, want), "missing {want:?}");
    }
    let long: usize = lines
        .iter()
        .filter(|l| !l.is_empty() && l.bytes().all(|b| b == b'a'))
        .map(|l| l.len())
        .sum();
    assert_eq!(long, 200_000, "the long line arrives whole, in pieces");
}

#[test]
fn a_container_that_cannot_start_is_a_clear_error() {
    let mut f = Fixture::new();
    let Some(c) = f.cfg.container.as_mut() else {
        eprintln!("skipped: needs root and runc");
        return;
    };
    c.agent_exe = f.t.path().join("no-such-agent");
    f.builtin("go", "go.mod", "Go", "echo compiled");
    let (r, _) = f.build(f.request(f.app("broken", &[("go.mod", "")]), &[]));
    let err = r.unwrap_err().to_string();
    assert!(err.starts_with("build container"), "{err}");
    // runc's own reason reaches the user.
    assert!(err.contains("no-such-agent"), "{err}");
    // Nothing of the build is left behind.
    assert_eq!(fs::read_dir(&f.cfg.work_root).unwrap().count(), 0);
}

#[test]
fn runtimes_are_cached_once_for_all_apps() {
    let f = Fixture::new();
    f.builtin(
        "go",
        "go.mod",
        "Go",
        r#"rt="$HOIST_RUNTIME_CACHE/go/1.99.0"
if [ -x "$rt/bin/go" ]; then echo "runtime from cache: $("$rt/bin/go")"; exit 0; fi
mkdir -p "$HOIST_RUNTIME_CACHE/go" && tmp=$(mktemp -d "$HOIST_RUNTIME_CACHE/go/.new-XXXX") &&
mkdir "$tmp/bin" && printf '#!/bin/sh\necho go1.99.0\n' > "$tmp/bin/go" && chmod +x "$tmp/bin/go" &&
mv "$tmp" "$rt" && echo "runtime installed""#,
    );
    let mut first = f.request(f.app("a", &[("go.mod", "")]), &[]);
    first.app_name = "first".into();
    first.cache_dir = f.path("cache/first");
    let (r, lines) = f.build(first);
    r.unwrap();
    assert!(has(&lines, "runtime installed"), "{lines:?}");
    let mut second = f.request(f.app("b", &[("go.mod", "")]), &[]);
    second.app_name = "second".into();
    second.cache_dir = f.path("cache/second");
    let (r, lines) = f.build(second);
    r.unwrap();
    assert!(has(&lines, "runtime from cache: go1.99.0"), "{lines:?}");
    assert!(f.path("runtimes/go/1.99.0/bin/go").is_file());
}

#[test]
fn user_named_buildpacks_are_read_with_the_build_users_rights() {
    if sandbox_ids().0 == 0 {
        return; // needs root to drop to another user
    }
    let f = Fixture::new();
    // A local buildpack with a file only root may read.
    let local = f.path("bp-private");
    f.buildpack(
        &local,
        "echo Private",
        "cat \"$(dirname \"$0\")/../key\"",
        None,
    );
    fs::write(local.join("key"), "root only").unwrap();
    fs::set_permissions(local.join("key"), fs::Permissions::from_mode(0o600)).unwrap();
    let (r, _) = f.build(f.request(f.app("l", &[]), &[local.to_str().unwrap()]));
    let err = r.unwrap_err().to_string();
    assert!(err.contains("cannot read") && err.contains("key"), "{err}");

    // A git repository in a directory only root may enter.
    let hidden = f.path("root-only");
    let work = hidden.join("work");
    f.buildpack(&work, "echo Hidden", "echo compiled", None);
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "bp"]);
    fs::set_permissions(&hidden, fs::Permissions::from_mode(0o700)).unwrap();
    let spec = format!("file://{}", work.display());
    let (r, _) = f.build(f.request(f.app("g", &[]), &[&spec]));
    assert!(matches!(r, Err(BuildError::BuildpackFetch { .. })), "{r:?}");

    // A path that would break out of the trust config is refused.
    let (r, _) = f.build(f.request(
        f.app("inj", &[]),
        &["file:///tmp/x\"\n[core]\n\tsshCommand = touch /tmp/pwned\n.git"],
    ));
    let err = r.unwrap_err().to_string();
    assert!(err.contains("quotes, backslashes or control"), "{err}");

    // Readable ones work.
    fs::set_permissions(local.join("key"), fs::Permissions::from_mode(0o644)).unwrap();
    let (r, lines) = f.build(f.request(f.app("l2", &[]), &[local.to_str().unwrap()]));
    r.unwrap();
    assert!(has(&lines, "root only"), "{lines:?}");
    fs::set_permissions(&hidden, fs::Permissions::from_mode(0o755)).unwrap();
    let (r, lines) = f.build(f.request(f.app("g2", &[]), &[&spec]));
    r.unwrap();
    assert!(has(&lines, "compiled"), "{lines:?}");
}

#[test]
fn bad_config_var_names_are_refused() {
    let f = Fixture::new();
    let mut req = f.request(f.app("e", &[]), &[]);
    req.env.insert("../../etc/x".into(), "v".into());
    let (r, _) = f.build(req);
    assert!(matches!(r.unwrap_err(), BuildError::BadConfigVar { .. }));
}

#[test]
fn memory_limit_stops_a_greedy_compile() {
    let mut f = Fixture::new();
    f.cfg.memory_limit_bytes = 64 << 20;
    f.builtin(
        "python",
        "app.py",
        "Python",
        r#"python3 -c 'b = bytearray(512 << 20); b[-1] = 1; print("allocated")'"#,
    );
    let (r, lines) = f.build(f.request(f.app("m", &[("app.py", "")]), &[]));
    let err = r.unwrap_err();
    if f.in_container() {
        assert!(
            matches!(err, BuildError::OutOfMemory { limit_mb: 64, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "Failed to compile app: buildpack heroku/python ran out of memory (the build's \
             limit is 64 MB)"
        );
    } else {
        assert!(matches!(err, BuildError::CompileFailed { .. }), "{err:?}");
    }
    assert!(!has(&lines, "allocated"), "{lines:?}");
}
