//! One build: source -> build dir -> detect -> compile -> release -> slug.

use crate::archive::pack_slug;
use crate::buildpack::{builtin_candidates, resolve, Buildpack, FetchAs};
use crate::container::{Binds, BuildContainer};
use crate::error::{BuildError, IoContext};
use crate::sandbox::{Finished, Limits, Script};
use crate::slugignore::apply_slugignore;
use crate::tree::{
    check_reachable, chown_tree, copy_tree, move_or_copy, random_id, read_small_file_nofollow,
};
use crate::{BuildConfig, BuildOutcome, BuildRequest};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Process limit for one build (cgroup `pids.max` and `RLIMIT_NPROC`).
const MAX_BUILD_PROCESSES: u64 = 4096;
/// Heroku warns above this compressed slug size.
const SLUG_SOFT_LIMIT: u64 = 300 * 1000 * 1000;
const SANDBOX_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Sources the exports of earlier buildpacks, then runs the script.
const WITH_EXPORTS: &str = r#"for f in "$HOIST_EXPORTS_DIR"/*; do [ -f "$f" ] && . "$f"; done; unset HOIST_EXPORTS_DIR; exec "$@""#;

/// Removes the scratch directory however the build ends.
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "could not remove build scratch dir");
        }
    }
}

/// A buildpack copied into this build, with its detect result.
struct Selected {
    bp: Buildpack,
    dir: PathBuf,
    name: String,
}

/// Runs a build to completion (blocking). Every line for the user goes to `out`.
/// Must not be called on an async runtime thread (use `spawn_blocking`): remote
/// buildpacks are downloaded with a blocking HTTP client.
pub fn run_build(
    cfg: &BuildConfig,
    req: BuildRequest,
    out: &mut dyn FnMut(&str),
) -> Result<BuildOutcome, BuildError> {
    let deadline = Instant::now() + cfg.time_limit;
    for name in req.env.keys() {
        hoist_types::validate_config_var_name(name).map_err(|e| BuildError::BadConfigVar {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        if name.contains('/') || name == "." || name == ".." {
            return Err(BuildError::BadConfigVar {
                name: name.clone(),
                reason: "not usable as a file name".into(),
            });
        }
    }
    let (uid, gid) = (cfg.sandbox_uid, cfg.sandbox_gid);
    let dropping = uid != 0;

    fs::create_dir_all(&cfg.work_root).ctx(|| format!("creating {}", cfg.work_root.display()))?;
    let work = WorkDir(cfg.work_root.join(format!("build-{}", random_id())));
    fs::create_dir(&work.0).ctx(|| format!("creating {}", work.0.display()))?;
    // Traversable but not listable for the sandbox user.
    set_mode(&work.0, 0o711)?;
    let build_dir = work.0.join("app");
    let env_dir = work.0.join("env");
    let tmp_dir = work.0.join("tmp");
    let exports_dir = work.0.join("exports");
    let bp_root = work.0.join("buildpacks");
    let bundle_dir = work.0.join("bundle");

    move_or_copy(&req.source_dir, &build_dir, &[".git"])?;
    let removed = apply_slugignore(&build_dir)?;
    if removed > 0 {
        tracing::debug!(app = %req.app_name, removed, "applied .slugignore");
    }

    // Config vars are secrets: readable by root and the sandbox group only.
    let (env_dir_mode, env_file_mode) = if dropping {
        (0o750, 0o640)
    } else {
        (0o755, 0o644)
    };
    fs::create_dir(&env_dir).ctx(|| format!("creating {}", env_dir.display()))?;
    for (k, v) in &req.env {
        let p = env_dir.join(k);
        fs::write(&p, v).ctx(|| format!("writing {}", p.display()))?;
        set_mode(&p, env_file_mode)?;
    }
    set_mode(&env_dir, env_dir_mode)?;
    if dropping {
        chown_tree(&env_dir, 0, gid)?;
    }
    for d in [&tmp_dir, &exports_dir, &bp_root] {
        fs::create_dir(d).ctx(|| format!("creating {}", d.display()))?;
    }
    set_mode(&exports_dir, 0o755)?;
    fs::create_dir_all(&req.cache_dir).ctx(|| format!("creating {}", req.cache_dir.display()))?;
    let mut read_write = vec![build_dir.as_path(), &tmp_dir, &bp_root, &req.cache_dir];
    if let Some(shared) = &cfg.runtime_cache {
        fs::create_dir_all(shared).ctx(|| format!("creating {}", shared.display()))?;
        read_write.push(shared);
    }
    // Every directory the build sees exists now: start the container while the rest
    // of the preparation runs (ownership changes show through the bind mounts).
    let limits = Limits {
        uid,
        gid,
        memory_limit_bytes: cfg.memory_limit_bytes,
        max_processes: MAX_BUILD_PROCESSES,
        deadline,
        time_limit: cfg.time_limit,
    };
    let mut isolation = match &cfg.container {
        Some(container) => Isolation::Container(BuildContainer::start(
            container,
            &bundle_dir,
            &Binds {
                read_write,
                read_only: vec![&env_dir, &exports_dir],
            },
            limits,
        )?),
        None => Isolation::Sandbox(limits),
    };
    if dropping {
        chown_tree(&build_dir, uid, gid)?;
        chown_tree(&tmp_dir, uid, gid)?;
        set_mode(&bp_root, 0o755)?;
        own_cache(&req.cache_dir, uid, gid)?;
        if let Some(shared) = &cfg.runtime_cache {
            own_cache(shared, uid, gid)?;
        }
        if matches!(isolation, Isolation::Sandbox(_)) {
            // A container sees these at the same paths through directories runc made.
            check_reachable(&build_dir, uid, gid)?;
            check_reachable(&req.cache_dir, uid, gid)?;
        }
    }

    out(&format!(
        "-----> Building on the {} stack",
        stack_display(&req.stack)
    ));

    let explicit = !req.buildpacks.is_empty();
    let candidates: Vec<Buildpack> = if explicit {
        if req.buildpacks.len() == 1 {
            out(&format!("-----> Using buildpack: {}", req.buildpacks[0]));
        } else {
            out("-----> Using buildpacks:");
            for (i, b) in req.buildpacks.iter().enumerate() {
                out(&format!("       {}. {b}", i + 1));
            }
        }
        req.buildpacks
            .iter()
            .map(|spec| {
                let fetch_as = dropping.then_some(FetchAs { uid, gid });
                resolve(spec, cfg, fetch_as, out)
            })
            .collect::<Result<_, _>>()?
    } else {
        builtin_candidates(&cfg.builtin_dir)
    };

    let mut base_env: Vec<(String, String)> = vec![
        ("PATH".into(), SANDBOX_PATH.into()),
        ("HOME".into(), build_dir.to_string_lossy().into_owned()),
        ("STACK".into(), req.stack.clone()),
        ("LANG".into(), "C.UTF-8".into()),
        ("TMPDIR".into(), tmp_dir.to_string_lossy().into_owned()),
    ];
    if let Some(shared) = &cfg.runtime_cache {
        base_env.push((
            "HOIST_RUNTIME_CACHE".into(),
            shared.to_string_lossy().into_owned(),
        ));
    }
    if let Some(v) = req.env.get("SOURCE_VERSION") {
        base_env.push(("SOURCE_VERSION".into(), v.clone()));
    }
    let mut ctx = Ctx {
        isolation: &mut isolation,
        env: &base_env,
        build_dir: &build_dir,
        exports_dir: &exports_dir,
    };

    // Detect.
    let mut selected: Vec<Selected> = Vec::new();
    let mut tried = Vec::new();
    for (i, bp) in candidates.into_iter().enumerate() {
        let dir = bp_root.join(i.to_string());
        copy_tree(&bp.dir, &dir, &[".git"])?;
        if dropping {
            chown_tree(&dir, uid, gid)?;
        }
        let detect = dir.join("bin/detect");
        if !detect.is_file() {
            if explicit {
                return Err(BuildError::MissingScript {
                    buildpack: bp.id.clone(),
                    script: "detect",
                });
            }
            continue;
        }
        let done = ctx.run(&detect, vec![build_dir.clone().into()], true, false, out)?;
        let name = done
            .stdout
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or(&bp.fallback_name)
            .to_string();
        if done.status.success() {
            out(&format!("-----> {name} app detected"));
            selected.push(Selected { bp, dir, name });
            if !explicit {
                break;
            }
        } else if explicit {
            return Err(BuildError::NotCompatible { buildpack: bp.id });
        } else {
            tried.push(bp.fallback_name.clone());
        }
    }
    if selected.is_empty() {
        return Err(BuildError::NoBuildpackDetected { tried });
    }

    // Compile, each buildpack seeing the exports of the ones before it.
    for (i, s) in selected.iter().enumerate() {
        let compile = s.dir.join("bin/compile");
        if !compile.is_file() {
            return Err(BuildError::MissingScript {
                buildpack: s.bp.id.clone(),
                script: "compile",
            });
        }
        let args = vec![
            build_dir.clone().into(),
            req.cache_dir.clone().into(),
            env_dir.clone().into(),
        ];
        let done = ctx.run(&compile, args, false, true, out)?;
        if !done.status.success() {
            if ctx.isolation.out_of_memory() {
                return Err(BuildError::OutOfMemory {
                    buildpack: s.bp.id.clone(),
                    limit_mb: cfg.memory_limit_bytes >> 20,
                });
            }
            return Err(BuildError::CompileFailed {
                buildpack: s.bp.id.clone(),
                status: describe_status(done.status),
            });
        }
        let export = s.dir.join("export");
        if fs::symlink_metadata(&export).is_ok() {
            // Sourced inside the sandbox, so a symlink there reads only what the
            // sandbox user may read; link rather than copy to keep the host side blind.
            let link = exports_dir.join(format!("{i:04}"));
            std::os::unix::fs::symlink(&export, &link)
                .ctx(|| format!("linking {}", link.display()))?;
        }
    }

    // Release: config vars and add-ons from all, process types from the last.
    let mut release_config_vars = BTreeMap::new();
    let mut addons: Vec<String> = Vec::new();
    let mut default_types = BTreeMap::new();
    let last = selected.len() - 1;
    for (i, s) in selected.iter().enumerate() {
        let release = s.dir.join("bin/release");
        if !release.is_file() {
            continue;
        }
        let done = ctx.run(&release, vec![build_dir.clone().into()], true, true, out)?;
        if !done.status.success() {
            if ctx.isolation.out_of_memory() {
                return Err(BuildError::OutOfMemory {
                    buildpack: s.bp.id.clone(),
                    limit_mb: cfg.memory_limit_bytes >> 20,
                });
            }
            return Err(BuildError::ReleaseFailed {
                buildpack: s.bp.id.clone(),
                status: describe_status(done.status),
            });
        }
        let parsed = parse_release(&done.stdout).map_err(|reason| BuildError::ReleaseYaml {
            buildpack: s.bp.id.clone(),
            reason,
        })?;
        release_config_vars.extend(parsed.config_vars);
        for a in parsed.addons {
            if !addons.contains(&a) {
                addons.push(a);
            }
        }
        if i == last {
            default_types = parsed.default_process_types;
        }
    }

    // No more scripts: the container stops while the slug is packed.
    if let Isolation::Container(c) = &mut isolation {
        c.finish();
    }

    out("-----> Discovering process types");
    let procfile = read_small_file_nofollow(&build_dir.join("Procfile"), 64 * 1024)
        .map_err(|e| BuildError::ProcfileUnreadable(e.to_string()))?;
    let mut process_types = default_types.clone();
    match procfile {
        Some(bytes) => {
            let text = String::from_utf8(bytes)
                .map_err(|_| BuildError::ProcfileUnreadable("it is not UTF-8 text".into()))?;
            let declared = hoist_types::parse_procfile(&text)?;
            out(&format!(
                "       Procfile declares types -> {}",
                list_or_none(&declared)
            ));
            process_types.extend(declared);
        }
        None if default_types.is_empty() => out("       Procfile declares types -> (none)"),
        None => {}
    }
    if !default_types.is_empty() {
        out(&format!(
            "       Default types for buildpack -> {}",
            list_or_none(&default_types)
        ));
    }

    out("");
    let slug = pack_slug(&build_dir, &cfg.slugs_dir, cfg.max_slug_bytes)?;
    out(&format!(
        "-----> Compressing... done, {:.1}M",
        slug.size as f64 / (1024.0 * 1024.0)
    ));
    if slug.size > SLUG_SOFT_LIMIT {
        out(&format!(
            " !     Warning: Your slug size ({} MB) exceeds our soft limit (300 MB) which may affect boot time.",
            slug.size / 1_000_000
        ));
    }

    let buildpack_description = selected[last].name.clone();
    Ok(BuildOutcome {
        slug,
        process_types,
        buildpacks: selected.iter().map(|s| s.bp.id.clone()).collect(),
        buildpack_description,
        release_config_vars,
        addons,
    })
}

/// Where the scripts of one build run.
enum Isolation {
    /// One runc container for the whole build (production).
    Container(BuildContainer),
    /// The process sandbox (development without runc).
    Sandbox(Limits),
}

impl Isolation {
    /// Whether the OOM killer struck this build (known only for containers: the
    /// sandbox's cgroups are gone once a script ends).
    fn out_of_memory(&self) -> bool {
        match self {
            Isolation::Container(c) => c.out_of_memory(),
            Isolation::Sandbox(_) => false,
        }
    }
}

struct Ctx<'a> {
    isolation: &'a mut Isolation,
    env: &'a [(String, String)],
    build_dir: &'a Path,
    exports_dir: &'a Path,
}

impl Ctx<'_> {
    fn run(
        &mut self,
        script: &Path,
        args: Vec<OsString>,
        capture_stdout: bool,
        with_exports: bool,
        out: &mut dyn FnMut(&str),
    ) -> Result<Finished, BuildError> {
        let mut env = self.env.to_vec();
        let (program, args) = if with_exports {
            env.push((
                "HOIST_EXPORTS_DIR".into(),
                self.exports_dir.to_string_lossy().into_owned(),
            ));
            let mut full: Vec<OsString> = vec![
                "-c".into(),
                WITH_EXPORTS.into(),
                "hoist-buildpack".into(),
                script.into(),
            ];
            full.extend(args);
            (Path::new("/bin/bash"), full)
        } else {
            (script, args)
        };
        let script = Script {
            program,
            args,
            env,
            cwd: self.build_dir,
            capture_stdout,
        };
        match self.isolation {
            Isolation::Container(c) => c.run(script, out),
            Isolation::Sandbox(limits) => limits.run_sandboxed(script, out),
        }
    }
}

/// Gives a cache to the build user. Files the builds created are already its own, so
/// only a new (or foreign) cache needs the full walk.
fn own_cache(dir: &Path, uid: u32, gid: u32) -> Result<(), BuildError> {
    let meta = fs::symlink_metadata(dir).ctx(|| format!("inspecting {}", dir.display()))?;
    if meta.uid() != uid || meta.gid() != gid {
        chown_tree(dir, uid, gid)?;
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> Result<(), BuildError> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .ctx(|| format!("chmod {}", p.display()))
}

fn stack_display(stack: &str) -> String {
    let mut c = stack.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => "default".into(),
    }
}

fn list_or_none(types: &BTreeMap<String, String>) -> String {
    if types.is_empty() {
        "(none)".into()
    } else {
        types.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn describe_status(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => "an unknown status".into(),
    }
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct Release {
    pub addons: Vec<String>,
    pub config_vars: BTreeMap<String, String>,
    pub default_process_types: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawRelease {
    #[serde(default)]
    addons: Option<Vec<serde_yaml::Value>>,
    #[serde(default)]
    config_vars: Option<BTreeMap<String, serde_yaml::Value>>,
    #[serde(default)]
    default_process_types: Option<BTreeMap<String, serde_yaml::Value>>,
}

fn scalar(v: &serde_yaml::Value, what: &str) -> Result<Option<String>, String> {
    match v {
        serde_yaml::Value::Null => Ok(None),
        serde_yaml::Value::String(s) => Ok(Some(s.clone())),
        serde_yaml::Value::Bool(b) => Ok(Some(b.to_string())),
        serde_yaml::Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err(format!("{what} must be a string")),
    }
}

/// Parses `bin/release` output. Empty output means no defaults.
pub(crate) fn parse_release(text: &str) -> Result<Release, String> {
    if text.trim().is_empty() {
        return Ok(Release::default());
    }
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    if value.is_null() {
        return Ok(Release::default());
    }
    if !value.is_mapping() {
        return Err("expected a mapping with addons, config_vars, default_process_types".into());
    }
    let raw: RawRelease = serde_yaml::from_value(value).map_err(|e| e.to_string())?;
    let mut release = Release::default();
    for a in raw.addons.unwrap_or_default() {
        if let Some(s) = scalar(&a, "an add-on")? {
            release.addons.push(s);
        }
    }
    for (k, v) in raw.config_vars.unwrap_or_default() {
        hoist_types::validate_config_var_name(&k).map_err(|e| format!("config var {k:?}: {e}"))?;
        release.config_vars.insert(
            k.clone(),
            scalar(&v, &format!("config var {k}"))?.unwrap_or_default(),
        );
    }
    for (k, v) in raw.default_process_types.unwrap_or_default() {
        hoist_types::validate_process_type(&k).map_err(|e| format!("process type {k:?}: {e}"))?;
        if let Some(cmd) = scalar(&v, &format!("process type {k}"))? {
            if !cmd.trim().is_empty() {
                release.default_process_types.insert(k, cmd);
            }
        }
    }
    Ok(release)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_yaml_parsing() {
        assert_eq!(parse_release("").unwrap(), Release::default());
        assert_eq!(parse_release("--- {}\n").unwrap(), Release::default());
        assert_eq!(parse_release("---\n").unwrap(), Release::default());
        let r = parse_release(
        "---\naddons:\n- heroku-postgresql\nconfig_vars:\n  PORT: 5000\n  DEBUG: false\ndefault_process_types:\n  web: heroku-php-apache2\n  empty:\n",
    )
    .unwrap();
        assert_eq!(r.addons, vec!["heroku-postgresql"]);
        assert_eq!(r.config_vars["PORT"], "5000");
        assert_eq!(r.config_vars["DEBUG"], "false");
        assert_eq!(r.default_process_types.len(), 1);
        assert!(parse_release("just a string").is_err());
        assert!(parse_release("default_process_types: [1, 2]").is_err());
        assert!(parse_release("default_process_types:\n  'bad type!': x").is_err());
    }
}
