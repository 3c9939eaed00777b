//! The local git repository, through the `git` binary: finding the app from a
//! remote, adding and removing remotes, and the credential helper setting.

use crate::error::{CliError, CliResult};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs git in `dir` (the current directory when `None`); `Ok(None)` when git exits
/// non-zero (not a repository, unset key), `Err` when git cannot be run at all.
pub fn git(dir: Option<&Path>, args: &[&str]) -> CliResult<Option<String>> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| CliError::failed(format!("Could not run git: {e}. Is git installed?")))?;
    if out.status.success() {
        Ok(Some(
            String::from_utf8_lossy(&out.stdout).trim_end().to_string(),
        ))
    } else {
        Ok(None)
    }
}

/// Runs git and fails with its stderr when it exits non-zero.
pub fn git_checked(dir: Option<&Path>, args: &[&str]) -> CliResult<String> {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| CliError::failed(format!("Could not run git: {e}. Is git installed?")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        Err(CliError::failed(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// True when `dir` (or the current directory) is inside a git work tree.
pub fn in_repo(dir: Option<&Path>) -> bool {
    matches!(git(dir, &["rev-parse", "--is-inside-work-tree"]), Ok(Some(s)) if s == "true")
}

pub fn remote_url(dir: Option<&Path>, remote: &str) -> CliResult<Option<String>> {
    Ok(git(dir, &["config", "--get", &format!("remote.{remote}.url")])?.filter(|s| !s.is_empty()))
}

/// All remotes as (name, url).
pub fn remotes(dir: Option<&Path>) -> CliResult<Vec<(String, String)>> {
    let Some(out) = git(dir, &["config", "--get-regexp", r"^remote\..*\.url$"])? else {
        return Ok(Vec::new());
    };
    Ok(out
        .lines()
        .filter_map(|l| {
            let (key, url) = l.split_once(' ')?;
            let name = key.strip_prefix("remote.")?.strip_suffix(".url")?;
            Some((name.to_string(), url.trim().to_string()))
        })
        .collect())
}

/// The app named by a remote URL `<api url>/<app>.git`. A URL on another host or
/// path prefix is not ours and gives `None`.
pub fn app_from_remote_url(api_url: &str, remote: &str) -> Option<String> {
    let base = api_url.trim_end_matches('/');
    let rest = strip_prefix_ignore_case(remote.trim(), base)?;
    let rest = rest.strip_prefix('/')?;
    let name = rest
        .strip_suffix(".git")
        .unwrap_or(rest)
        .trim_end_matches('/');
    let valid = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    valid.then(|| name.to_string())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// The git URL of an app, computed from the API URL like the Heroku CLI does.
pub fn app_git_url(api_url: &str, app: &str) -> String {
    format!("{}/{app}.git", api_url.trim_end_matches('/'))
}

/// Adds `remote` = `url`, or repoints it when it exists.
pub fn set_remote(dir: Option<&Path>, remote: &str, url: &str) -> CliResult<()> {
    if remote_url(dir, remote)?.is_some() {
        git_checked(dir, &["remote", "set-url", remote, url])?;
    } else {
        git_checked(dir, &["remote", "add", remote, url])?;
    }
    Ok(())
}

/// The credential helper command git runs: `!hoist git:credentials` when `hoist` on
/// PATH is this program (or when we cannot tell), else this binary's absolute path,
/// so that pushes work even when hoist is not installed on PATH.
pub fn credential_helper() -> String {
    let bare = "!hoist git:credentials".to_string();
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return bare;
    };
    if me.file_name().is_none_or(|n| n != "hoist") {
        return bare;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("hoist"))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
    });
    if on_path.as_deref() == Some(me.as_path()) {
        return bare;
    }
    let path = me.to_string_lossy();
    if path.contains(['\'', '"', ' ', '\\']) {
        return bare;
    }
    format!("!{path} git:credentials")
}

/// `HEAD`'s commit, when `dir` is a repository with at least one commit.
pub fn head_sha(dir: &Path) -> Option<String> {
    git(Some(dir), &["rev-parse", "HEAD"])
        .ok()
        .flatten()
        .filter(|s| s.len() == 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_app_from_remote_urls() {
        let api = "http://127.0.0.1:5000";
        assert_eq!(
            app_from_remote_url(api, "http://127.0.0.1:5000/demo.git").as_deref(),
            Some("demo")
        );
        assert_eq!(
            app_from_remote_url("http://127.0.0.1:5000/", "http://127.0.0.1:5000/demo.git")
                .as_deref(),
            Some("demo")
        );
        assert_eq!(
            app_from_remote_url(api, "http://127.0.0.1:5000/my-app-2").as_deref(),
            Some("my-app-2")
        );
        assert_eq!(
            app_from_remote_url(api, "HTTP://127.0.0.1:5000/demo.git").as_deref(),
            Some("demo")
        );
        // Another port, host or a nested path is not ours.
        assert_eq!(
            app_from_remote_url(api, "http://127.0.0.1:5001/demo.git"),
            None
        );
        assert_eq!(
            app_from_remote_url(api, "http://127.0.0.1:50001/demo.git"),
            None
        );
        assert_eq!(
            app_from_remote_url(api, "https://github.com/x/demo.git"),
            None
        );
        assert_eq!(
            app_from_remote_url(api, "http://127.0.0.1:5000/x/demo.git"),
            None
        );
        assert_eq!(app_from_remote_url(api, "http://127.0.0.1:5000/.git"), None);
        assert_eq!(app_from_remote_url(api, "git@127.0.0.1:demo.git"), None);
        assert_eq!(app_git_url("http://h:1/", "demo"), "http://h:1/demo.git");
    }
}
