//! Finding buildpacks: built-ins, local paths, tarball URLs and git URLs.

use crate::archive::{sole_top_dir, unpack_tar_gz, UnpackLimits};
use crate::error::{BuildError, IoContext};
use crate::tree::{copy_tree, random_id};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hoist_egress::EgressPolicy;

/// Heroku's detection order for its officially supported buildpacks.
pub const BUILTIN_ORDER: [&str; 9] = [
    "ruby", "nodejs", "clojure", "python", "java", "gradle", "scala", "php", "go",
];

/// The language name Heroku shows for a built-in (`nodejs` -> `Node.js`).
pub fn builtin_display_name(name: &str) -> &str {
    match name {
        "ruby" => "Ruby",
        "nodejs" => "Node.js",
        "clojure" => "Clojure",
        "python" => "Python",
        "java" => "Java",
        "gradle" => "Gradle",
        "scala" => "Scala",
        "php" => "PHP",
        "go" => "Go",
        other => other,
    }
}

/// Largest buildpack tarball we download.
const MAX_BUILDPACK_DOWNLOAD: u64 = 200 << 20;
const BUILDPACK_UNPACK_LIMITS: UnpackLimits = UnpackLimits {
    max_bytes: 1 << 30,
    max_entries: 100_000,
    max_depth: 32,
    allow_outside_symlinks: false,
};

/// Copies the repository's `buildpacks/` directory into the data directory, replacing
/// what was there. The new tree is assembled beside `to` and swapped in by rename;
/// `bin/*` scripts are made executable.
pub fn install_builtin_buildpacks(from: &Path, to: &Path) -> Result<(), BuildError> {
    let parent = to.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
    let staging = parent.join(format!(".buildpacks-{}", random_id()));
    let result = (|| {
        copy_tree(from, &staging, &[".git"])?;
        make_world_readable(&staging)?;
        for entry in fs::read_dir(&staging).ctx(|| format!("reading {}", staging.display()))? {
            let bin = entry
                .ctx(|| "reading buildpacks".into())?
                .path()
                .join("bin");
            if let Ok(scripts) = fs::read_dir(&bin) {
                for script in scripts.flatten() {
                    let p = script.path();
                    if fs::symlink_metadata(&p)
                        .map(|m| m.is_file())
                        .unwrap_or(false)
                    {
                        fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                            .ctx(|| format!("chmod {}", p.display()))?;
                    }
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    swap_into_place(&staging, to)
}

/// Renames `new` to `to`, moving an existing `to` aside first and deleting it after.
fn swap_into_place(new: &Path, to: &Path) -> Result<(), BuildError> {
    let old = to.with_file_name(format!(
        ".{}-old-{}",
        to.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        random_id()
    ));
    let had_old = fs::rename(to, &old).is_ok();
    if let Err(e) = fs::rename(new, to) {
        if had_old {
            let _ = fs::rename(&old, to);
        }
        let _ = fs::remove_dir_all(new);
        return Err(BuildError::io(format!("installing {}", to.display()), e));
    }
    if had_old {
        let _ = fs::remove_dir_all(&old);
    }
    Ok(())
}

fn make_world_readable(dir: &Path) -> Result<(), BuildError> {
    for entry in fs::read_dir(dir).ctx(|| format!("reading {}", dir.display()))? {
        let p = entry.ctx(|| format!("reading {}", dir.display()))?.path();
        let m = fs::symlink_metadata(&p).ctx(|| format!("inspecting {}", p.display()))?;
        if m.is_dir() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                .ctx(|| format!("chmod {}", p.display()))?;
            make_world_readable(&p)?;
        } else if m.is_file() {
            let mode = m.permissions().mode() | 0o444;
            fs::set_permissions(&p, fs::Permissions::from_mode(mode & 0o777))
                .ctx(|| format!("chmod {}", p.display()))?;
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .ctx(|| format!("chmod {}", dir.display()))
}

/// A buildpack ready to be copied into a build.
#[derive(Debug, Clone)]
pub(crate) struct Buildpack {
    /// How the build outcome names it: `heroku/<name>` for built-ins, else as given.
    pub id: String,
    /// Where its files are now (a built-in, a local path or a fetched copy).
    pub dir: PathBuf,
    /// Shown when detect prints nothing.
    pub fallback_name: String,
}

/// The built-ins present in `builtin_dir`, in Heroku's order, then any others by name.
pub(crate) fn builtin_candidates(builtin_dir: &Path) -> Vec<Buildpack> {
    let mut names: Vec<String> = BUILTIN_ORDER.iter().map(|s| s.to_string()).collect();
    let mut extra: Vec<String> = fs::read_dir(builtin_dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.') && !BUILTIN_ORDER.contains(&n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    extra.sort();
    names.extend(extra);
    names
        .into_iter()
        .filter(|n| builtin_dir.join(n).join("bin/detect").is_file())
        .map(|n| builtin(builtin_dir, &n))
        .collect()
}

fn builtin(builtin_dir: &Path, name: &str) -> Buildpack {
    Buildpack {
        id: format!("heroku/{name}"),
        dir: builtin_dir.join(name),
        fallback_name: builtin_display_name(name).to_string(),
    }
}

/// The built-in a spec names, if any: `nodejs`, `heroku/nodejs`,
/// `urn:buildpack:heroku/nodejs`, or Heroku's GitHub URL for it (so apps brought from
/// Heroku build offline).
fn builtin_name(spec: &str) -> Option<&str> {
    let s = spec.trim_end_matches('/');
    let s = s.strip_prefix("urn:buildpack:").unwrap_or(s);
    if let Some(rest) = s.strip_prefix("heroku/") {
        return Some(rest);
    }
    for prefix in [
        "https://github.com/heroku/heroku-buildpack-",
        "http://github.com/heroku/heroku-buildpack-",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            return Some(rest.strip_suffix(".git").unwrap_or(rest));
        }
    }
    if !s.contains('/') && !s.contains(':') {
        return Some(s);
    }
    None
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The unprivileged user that reads buildpacks named by a user (local paths and git
/// repositories), so that a spec can only reach what that user may read and a crafted
/// repository cannot run code as root through `git clone`. `None` when the daemon is
/// not root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchAs {
    pub uid: u32,
    pub gid: u32,
}

/// Resolves one spec from `BuildRequest::buildpacks`. Local and remote buildpacks are
/// copied or fetched into `cache` (a fresh copy per build; for remote ones the last
/// good copy is reused if fetching fails).
pub(crate) fn resolve(
    spec: &str,
    cfg: &crate::BuildConfig,
    fetch_as: Option<FetchAs>,
    out: &mut dyn FnMut(&str),
) -> Result<Buildpack, BuildError> {
    let (builtin_dir, cache, egress) = (&cfg.builtin_dir, &cfg.buildpack_cache, &*cfg.egress);
    let spec = spec.trim();
    if let Some(name) = builtin_name(spec) {
        if is_plain_name(name) && builtin_dir.join(name).join("bin").is_dir() {
            return Ok(builtin(builtin_dir, name));
        }
        if !spec.contains("://") {
            return Err(BuildError::UnknownBuildpack(spec.to_string()));
        }
    }
    let given = |dir: PathBuf| Buildpack {
        id: spec.to_string(),
        dir,
        fallback_name: spec.to_string(),
    };
    if spec.starts_with('/') {
        let dir = PathBuf::from(spec);
        if !dir.join("bin").is_dir() {
            return Err(BuildError::MissingScript {
                buildpack: spec.to_string(),
                script: "compile",
            });
        }
        let Some(user) = fetch_as else {
            return Ok(given(dir));
        };
        return fetch_cached(spec, cache, fetch_as, None, |dest| {
            copy_as(&dir, dest, user)
        })
        .map(given);
    }
    let (base, _) = split_ref(spec);
    let lower = base.to_ascii_lowercase();
    let is_http = lower.starts_with("http://") || lower.starts_with("https://");
    let path_part = lower.split(['?']).next().unwrap_or("");
    if is_http && (path_part.ends_with(".tgz") || path_part.ends_with(".tar.gz")) {
        return fetch_cached(spec, cache, None, Some(out), |dest| {
            download_tarball(&cfg.egress, spec, dest)
        })
        .map(given);
    }
    if path_part.ends_with(".git")
        || lower.starts_with("git://")
        || lower.starts_with("ssh://")
        || (lower.starts_with("file://") && !path_part.ends_with(".tgz"))
    {
        return fetch_cached(spec, cache, fetch_as, Some(out), |dest| {
            git_clone(egress, spec, dest, fetch_as)
        })
        .map(given);
    }
    Err(BuildError::UnknownBuildpack(spec.to_string()))
}

/// `url#ref` -> (`url`, Some(`ref`)).
fn split_ref(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once('#') {
        Some((url, r)) if !r.is_empty() => (url, Some(r)),
        Some((url, _)) => (url, None),
        None => (spec, None),
    }
}

/// Fetches into a staging dir (created for and owned by `owner` when given, who then
/// does the fetching) and swaps it into `cache`. With `fallback`, a failed fetch falls
/// back to the last good copy, telling the user there.
fn fetch_cached(
    spec: &str,
    cache: &Path,
    owner: Option<FetchAs>,
    fallback: Option<&mut dyn FnMut(&str)>,
    fetch: impl FnOnce(&Path) -> Result<(), String>,
) -> Result<PathBuf, BuildError> {
    fs::create_dir_all(cache).ctx(|| format!("creating {}", cache.display()))?;
    let key = hex::encode(Sha256::digest(spec.as_bytes()));
    let cached = cache.join(&key);
    let staging = cache.join(format!(".{key}-{}", random_id()));
    if let Some(user) = owner {
        fs::create_dir(&staging).ctx(|| format!("creating {}", staging.display()))?;
        std::os::unix::fs::chown(&staging, Some(user.uid), Some(user.gid))
            .ctx(|| format!("chown {}", staging.display()))?;
    }
    match fetch(&staging) {
        Ok(()) => {
            let root = buildpack_root(&staging);
            if !root.join("bin").is_dir() {
                let _ = fs::remove_dir_all(&staging);
                return Err(BuildError::BuildpackFetch {
                    buildpack: spec.to_string(),
                    reason: "it has no bin/ directory".into(),
                });
            }
            let _ = make_world_readable(&staging);
            swap_into_place(&staging, &cached)?;
            Ok(buildpack_root(&cached))
        }
        Err(reason) => {
            let _ = fs::remove_dir_all(&staging);
            match fallback {
                Some(out) if buildpack_root(&cached).join("bin").is_dir() => {
                    out(&format!(
                        " !     Could not fetch buildpack {spec} ({reason}); using the cached copy"
                    ));
                    Ok(buildpack_root(&cached))
                }
                _ => Err(BuildError::BuildpackFetch {
                    buildpack: spec.to_string(),
                    reason,
                }),
            }
        }
    }
}

/// GitHub-style tarballs wrap everything in one top-level directory (the same rule
/// as for app sources, [`sole_top_dir`]); a buildpack's root is where `bin/` is.
fn buildpack_root(dir: &Path) -> PathBuf {
    if dir.join("bin").is_dir() {
        return dir.to_path_buf();
    }
    match sole_top_dir(dir) {
        Ok(Some(only)) if only.join("bin").is_dir() => only,
        _ => dir.to_path_buf(),
    }
}

/// Blocking download; must not be called on an async runtime thread (use spawn_blocking).
fn download_tarball(egress: &Arc<EgressPolicy>, url: &str, dest: &Path) -> Result<(), String> {
    let (url, _) = split_ref(url);
    let parsed = url::Url::parse(url).map_err(|e| format!("not a valid URL ({e})"))?;
    egress.check_literal(&parsed).map_err(|e| e.to_string())?;
    if let Some(host) = parsed.host_str() {
        // The clear refusal up front; the client's resolver enforces it again.
        egress
            .resolve_blocking(host, parsed.port_or_known_default().unwrap_or(443))
            .map_err(|e| e.to_string())?;
    }
    let client = egress
        .blocking_http_client()
        .timeout(Duration::from_secs(300))
        .connect_timeout(Duration::from_secs(20))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client.get(url).send().map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let limited = resp.take(MAX_BUILDPACK_DOWNLOAD);
    unpack_tar_gz(limited, dest, &BUILDPACK_UNPACK_LIMITS).map_err(|e| e.to_string())
}

/// A local buildpack is copied by the daemon, outside the build's limits: bounded like
/// a downloaded one (`buildpacks:set /usr` would otherwise copy gigabytes).
const LOCAL_BUILDPACK_LIMITS: UnpackLimits = UnpackLimits {
    max_bytes: MAX_BUILDPACK_DOWNLOAD,
    ..BUILDPACK_UNPACK_LIMITS
};

/// Walks `src` without following links and refuses it before any copy when it holds
/// more than `limits` allow; stops counting at the first limit passed.
fn check_tree_size(src: &Path, limits: &UnpackLimits) -> Result<(), String> {
    let mut tally = crate::archive::Tally::new(limits);
    let over = |e: crate::archive::OverLimit| match e.what {
        "total unpacked size" => format!(
            "it is larger than the {} MB a buildpack may be",
            e.limit >> 20
        ),
        "directory depth" => format!("it is nested deeper than {} levels", e.limit),
        _ => format!("it has more than {} entries", e.limit),
    };
    let mut stack = vec![(src.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let listing = fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
        for entry in listing {
            let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
            let meta = entry
                .metadata()
                .map_err(|e| format!("reading {}: {e}", entry.path().display()))?;
            tally.entry(depth + 1).map_err(over)?;
            if meta.is_dir() {
                stack.push((entry.path(), depth + 1));
            } else if meta.is_file() {
                tally.file(meta.len()).map_err(over)?;
            }
        }
    }
    Ok(())
}

/// Copies a local buildpack with the rights of `user` (the copy fails on anything that
/// user may not read), without its `.git`.
fn copy_as(src: &Path, dest: &Path, user: FetchAs) -> Result<(), String> {
    check_tree_size(src, &LOCAL_BUILDPACK_LIMITS)?;
    run_quiet(
        Command::new("cp")
            .arg("-R")
            .arg("--preserve=mode,timestamps,links")
            .arg("--")
            .arg(src.join("."))
            .arg(dest)
            .uid(user.uid)
            .gid(user.gid)
            .env_clear(),
        "cp",
    )
    .map_err(|msg| {
        format!(
            "the build user (uid {}) cannot read all of it: {msg}",
            user.uid
        )
    })?;
    let _ = fs::remove_dir_all(dest.join(".git"));
    Ok(())
}

fn git_clone(
    egress: &EgressPolicy,
    spec: &str,
    dest: &Path,
    user: Option<FetchAs>,
) -> Result<(), String> {
    let (url, reference) = split_ref(spec);
    let looks_like_sha =
        |r: &str| r.len() >= 7 && r.len() <= 40 && r.chars().all(|c| c.is_ascii_hexdigit());
    let pins = git_egress_pins(egress, url)?;
    let mut args: Vec<String> = vec!["clone".into(), "--quiet".into()];
    match reference {
        Some(r) if looks_like_sha(r) => {}
        Some(r) => {
            args.extend(["--depth".into(), "1".into(), "--branch".into(), r.into()]);
        }
        None => args.extend(["--depth".into(), "1".into()]),
    }
    args.push("--".into());
    args.push(url.into());
    args.push(dest.to_string_lossy().into_owned());
    // git refuses to read a local repository the cloning user does not own ("dubious
    // ownership"), and the build user owns none: trust exactly the one named, through
    // a global config (command-line config does not reach the serving side of a local
    // clone). The clone still runs without root, and the buildpack in the container.
    let trust = match (user, url.strip_prefix("file://")) {
        (Some(_), Some(path)) => {
            let file = dest.with_extension("gitconfig");
            let path = path.trim_end_matches('/');
            // The path goes into a config file: nothing that could end its quoted value.
            if path
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\')
            {
                return Err(
                    "the repository path has quotes, backslashes or control characters".into(),
                );
            }
            // A bare repository is the path itself; a working tree's is its .git.
            fs::write(
                &file,
                format!("[safe]\n\tdirectory = \"{path}\"\n\tdirectory = \"{path}/.git\"\n"),
            )
            .map_err(|e| format!("writing {}: {e}", file.display()))?;
            Some(file)
        }
        _ => None,
    };
    let cloned = run_git(&args, &pins, None, user, trust.as_deref());
    if let Some(file) = &trust {
        let _ = fs::remove_file(file);
    }
    cloned?;
    if let Some(r) = reference.filter(|r| looks_like_sha(r)) {
        run_git(
            &[
                "checkout".into(),
                "--quiet".into(),
                "--detach".into(),
                r.into(),
            ],
            &[],
            Some(dest),
            user,
            None,
        )?;
    }
    // The buildpack's history is not needed to run it.
    let _ = fs::remove_dir_all(dest.join(".git"));
    Ok(())
}

/// Checks a remote repository's host against the egress policy. For http(s) the
/// checked addresses are pinned (`http.curloptResolve`), so git cannot resolve the name
/// again to somewhere else; ssh:// and git:// are checked only (git resolves them itself).
fn git_egress_pins(egress: &EgressPolicy, url: &str) -> Result<Vec<(String, String)>, String> {
    let Ok(parsed) = url::Url::parse(url) else {
        // scp-like `user@host:path` is not a URL: git would use ssh.
        return if url.contains("://") || !url.contains(':') {
            Ok(vec![])
        } else {
            Err("scp-style git URLs are not supported; use ssh://host/path".into())
        };
    };
    if parsed.scheme() == "file" {
        return Ok(vec![]);
    }
    egress.check_literal(&parsed).map_err(|e| e.to_string())?;
    let (Some(host), Some(port)) = (
        parsed.host_str(),
        parsed.port_or_known_default().or(match parsed.scheme() {
            "ssh" => Some(22),
            "git" => Some(9418),
            _ => None,
        }),
    ) else {
        return Err("the git URL has no host".into());
    };
    let addrs = egress
        .resolve_blocking(host, port)
        .map_err(|e| e.to_string())?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Ok(vec![]);
    }
    let list = addrs
        .iter()
        .map(|a| match a.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    Ok(vec![(
        "http.curloptResolve".into(),
        format!("{host}:{port}:{list}"),
    )])
}

/// `config` pairs reach git through `GIT_CONFIG_COUNT`, so the argument list stays
/// what errors show.
fn run_git(
    args: &[String],
    config: &[(String, String)],
    cwd: Option<&Path>,
    user: Option<FetchAs>,
    global_config: Option<&Path>,
) -> Result<(), String> {
    let mut cmd = Command::new("git");
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (key, value)) in config.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), key)
            .env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    if let Some(user) = user {
        // Not root's config either: the build user has no home.
        cmd.uid(user.uid)
            .gid(user.gid)
            .env("HOME", "/nonexistent")
            .env(
                "GIT_CONFIG_GLOBAL",
                global_config.unwrap_or(Path::new("/dev/null")),
            );
    }
    run_quiet(&mut cmd, "git").map_err(|msg| format!("git {} failed: {msg}", args[0]))
}

/// Runs a fetching command without input or output; on failure returns the start of
/// its stderr.
fn run_quiet(cmd: &mut Command, name: &str) -> Result<(), String> {
    let output = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("running {name}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&output.stderr);
    let msg = msg.trim();
    // Cut at a char boundary: the text can hold any file name.
    let end = (0..=msg.len().min(2000))
        .rev()
        .find(|&i| msg.is_char_boundary(i))
        .unwrap_or(0);
    Err(msg[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_buildpacks_are_bounded_before_any_copy() {
        // `buildpacks:set /usr` used to copy gigabytes as the build user.
        let err = check_tree_size(Path::new("/usr"), &LOCAL_BUILDPACK_LIMITS).unwrap_err();
        assert!(
            err.contains("larger than") || err.contains("entries"),
            "{err}"
        );
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("bin/a/b")).unwrap();
        fs::write(t.path().join("bin/compile"), vec![0u8; 600]).unwrap();
        // A link to something big is not followed.
        std::os::unix::fs::symlink("/usr", t.path().join("bin/usr")).unwrap();
        let small = UnpackLimits {
            max_bytes: 1000,
            max_entries: 10,
            max_depth: 3,
            allow_outside_symlinks: false,
        };
        check_tree_size(t.path(), &small).unwrap();
        fs::write(t.path().join("bin/detect"), vec![0u8; 600]).unwrap();
        assert!(check_tree_size(t.path(), &small)
            .unwrap_err()
            .contains("larger"));
        let deep = UnpackLimits {
            max_bytes: 1 << 20,
            max_depth: 1,
            ..small
        };
        assert!(check_tree_size(t.path(), &deep)
            .unwrap_err()
            .contains("deeper"));
        let few = UnpackLimits {
            max_bytes: 1 << 20,
            max_entries: 3,
            ..small
        };
        assert!(check_tree_size(t.path(), &few)
            .unwrap_err()
            .contains("entries"));
    }
    #[test]
    fn builtin_names_are_recognised() {
        assert_eq!(builtin_name("nodejs"), Some("nodejs"));
        assert_eq!(builtin_name("heroku/nodejs"), Some("nodejs"));
        assert_eq!(builtin_name("urn:buildpack:heroku/python"), Some("python"));
        assert_eq!(
            builtin_name("https://github.com/heroku/heroku-buildpack-ruby.git"),
            Some("ruby")
        );
        assert_eq!(builtin_name("/opt/bp"), None);
        assert_eq!(builtin_name("https://example.com/bp.tgz"), None);
        assert_eq!(
            split_ref("file:///x/bp.git#v2"),
            ("file:///x/bp.git", Some("v2"))
        );
    }
}
