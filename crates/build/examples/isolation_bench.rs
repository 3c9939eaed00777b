//! What a build container costs: the same small build (a buildpack whose detect,
//! compile and release are tiny shell scripts; auto-detection runs its detect after
//! eight built-ins that decline) run N times in a runc build container and N times in
//! the process sandbox, in one invocation, interleaved. Prints medians and the
//! difference per build. Needs root and runc; run by `bench/build/isolation.sh`.

use hoist_build::container::ContainerConfig;
use hoist_build::{run_build, BuildConfig, BuildRequest};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn script(path: &Path, body: &str) {
    fs::create_dir_all(path.parent().expect("script has a parent")).expect("mkdir");
    fs::write(path, format!("#!/bin/bash\n{body}\n")).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let agent = std::env::current_exe()
        .expect("own path")
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("hoist-build-agent"))
        .expect("target dir");
    assert!(
        agent.is_file(),
        "build {} first (cargo build --release -p hoist-build --bins)",
        agent.display()
    );
    let t = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut cfg = BuildConfig::with_defaults(t.path());
    // Eight built-ins that decline, then one that builds (a PHP-like position).
    for name in [
        "ruby", "nodejs", "clojure", "python", "java", "gradle", "scala", "php",
    ] {
        let dir = cfg.builtin_dir.join(name);
        script(&dir.join("bin/detect"), "exit 1");
        script(&dir.join("bin/compile"), "exit 1");
    }
    let go = cfg.builtin_dir.join("go");
    script(&go.join("bin/detect"), "[ -f \"$1/go.mod\" ] && echo Go");
    script(
        &go.join("bin/compile"),
        "echo '-----> compiling'; mkdir -p \"$1/bin\"; cp \"$1/go.mod\" \"$1/bin/\"",
    );
    script(
        &go.join("bin/release"),
        "echo '--- {default_process_types: {web: bin/web}}'",
    );
    let container = ContainerConfig {
        runc_root: PathBuf::from(format!("/run/hoist-bench-builds-{}", std::process::id())),
        agent_exe: agent,
        stack_dirs: hoist_runtime::default_stack_dirs(),
    };

    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds * 2 {
        let in_container = round % 2 == 0;
        cfg.container = in_container.then(|| container.clone());
        let src = t.path().join(format!("src-{round}"));
        fs::create_dir_all(&src).expect("mkdir");
        fs::write(src.join("go.mod"), "module x\n").expect("write");
        let req = BuildRequest {
            app_name: "bench".into(),
            source_dir: src,
            cache_dir: t.path().join("cache"),
            env: BTreeMap::new(),
            buildpacks: Vec::new(),
            stack: "heroku-24".into(),
        };
        let start = Instant::now();
        let outcome = run_build(&cfg, req, &mut |_| {}).expect("build");
        times[usize::from(!in_container)].push(start.elapsed());
        assert_eq!(outcome.buildpack_description, "Go");
    }
    let _ = fs::remove_dir_all(&container.runc_root);
    let [c, s] = times.map(median);
    println!("build of 9 detects + compile + release, median of {rounds} each (interleaved):");
    println!("  runc build container: {:>7.1} ms", c.as_secs_f64() * 1e3);
    println!("  process sandbox:      {:>7.1} ms", s.as_secs_f64() * 1e3);
    println!(
        "  container cost per build: {:+.1} ms ({:.2}x)",
        (c.as_secs_f64() - s.as_secs_f64()) * 1e3,
        c.as_secs_f64() / s.as_secs_f64()
    );
}
