//! Where the API is, who we are (token), and which app a command targets.

use crate::api::Api;
use crate::error::{CliError, CliResult};
use crate::git;
use crate::netrc;
use crate::output::Style;

pub const DEFAULT_API_URL: &str = "http://127.0.0.1:5000";
pub const DEFAULT_REMOTE: &str = "hoist";

/// Everything a command needs from the environment.
pub struct Ctx {
    pub api: Api,
    pub style: Style,
    pub json: bool,
    app_flag: Option<String>,
    remote_flag: Option<String>,
}

/// The API URL from `HOIST_API_URL`, validated.
pub fn api_url() -> CliResult<String> {
    let raw = std::env::var("HOIST_API_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_API_URL.to_string());
    let parsed = url::Url::parse(raw.trim()).map_err(|e| {
        CliError::usage(format!(
            "HOIST_API_URL {raw:?} is not a URL ({e}). Example: http://127.0.0.1:5000"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(CliError::usage(format!(
            "HOIST_API_URL {raw:?} must be an http:// or https:// URL."
        )));
    }
    Ok(raw.trim().trim_end_matches('/').to_string())
}

/// The netrc machine name for an API URL: `host` or `host:port` when the port is
/// not the scheme's default.
pub fn netrc_machine(api_url: &str) -> String {
    match url::Url::parse(api_url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or_default();
            match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_string(),
            }
        }
        Err(_) => api_url.to_string(),
    }
}

/// The token: `HOIST_API_KEY`, else the netrc password for the API's machine.
pub fn find_token(api_url: &str) -> Option<String> {
    if let Ok(k) = std::env::var("HOIST_API_KEY") {
        let k = k.trim().to_string();
        if !k.is_empty() {
            return Some(k);
        }
    }
    let path = netrc::default_path()?;
    let text = netrc::read(&path).ok()?;
    netrc::lookup(&text, &netrc_machine(api_url))?.password
}

impl Ctx {
    pub fn new(json: bool, app: Option<String>, remote: Option<String>) -> CliResult<Self> {
        let url = api_url()?;
        let token = find_token(&url);
        Ok(Ctx {
            api: Api::new(&url, token)?,
            style: Style::detect(),
            json,
            app_flag: app.filter(|a| !a.is_empty()),
            remote_flag: remote.filter(|r| !r.is_empty()),
        })
    }

    pub fn remote_name(&self) -> &str {
        self.remote_flag.as_deref().unwrap_or(DEFAULT_REMOTE)
    }

    pub fn app_flag(&self) -> Option<&str> {
        self.app_flag.as_deref()
    }

    /// The app: `-a`, else `HOIST_APP`, else the `hoist` (or `-r`) git remote.
    pub fn app(&self) -> CliResult<String> {
        if let Some(a) = &self.app_flag {
            return Ok(a.clone());
        }
        if let Ok(a) = std::env::var("HOIST_APP") {
            if !a.trim().is_empty() {
                return Ok(a.trim().to_string());
            }
        }
        let remote = self.remote_name();
        if let Some(url) = git::remote_url(None, remote).unwrap_or(None) {
            return app_from_named_remote(self.api.base(), &url).ok_or_else(|| {
                CliError::usage(format!(
                    "The git remote \"{remote}\" ({url}) is not a Hoist app URL like {}. Use -a APP, or run \"hoist git:remote -a APP\" to fix it.",
                    git::app_git_url(self.api.base(), "APP")
                ))
            });
        }
        if self.remote_flag.is_some() {
            return Err(CliError::usage(format!(
                "There is no git remote named \"{remote}\" here. Use -a APP, or run \"hoist git:remote -a APP -r {remote}\"."
            )));
        }
        Err(CliError::usage(
            "No app specified. Use -a APP, set HOIST_APP, or run inside a repo with a \"hoist\" git remote.",
        ))
    }
}

/// The app of a remote the user named: `<api url>/<app>.git`, or any http(s) URL
/// whose path is a single `<app>.git` (the server may advertise another public URL).
pub fn app_from_named_remote(api_url: &str, remote_url: &str) -> Option<String> {
    if let Some(a) = git::app_from_remote_url(api_url, remote_url) {
        return Some(a);
    }
    let u = url::Url::parse(remote_url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    let origin = u.origin().ascii_serialization();
    git::app_from_remote_url(&origin, remote_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names() {
        assert_eq!(netrc_machine("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(netrc_machine("https://api.hoist.test"), "api.hoist.test");
        assert_eq!(netrc_machine("http://h.test:80/"), "h.test");
    }

    #[test]
    fn named_remote_on_another_public_url() {
        assert_eq!(
            app_from_named_remote("http://127.0.0.1:5000", "https://paas.example.org/demo.git")
                .as_deref(),
            Some("demo")
        );
        assert_eq!(
            app_from_named_remote("http://127.0.0.1:5000", "git@github.com:x/y.git"),
            None
        );
        assert_eq!(
            app_from_named_remote("http://127.0.0.1:5000", "https://github.com/x/y.git"),
            None
        );
    }
}
