//! login, logout, auth:token, auth:whoami, accounts:create and the git credential helper.

use super::Action;
use crate::api::Auth;
use crate::ctx::{netrc_machine, Ctx};
use crate::error::{CliError, CliResult};
use crate::netrc;
use crate::output::{print_json, s};
use reqwest::Method;
use serde_json::json;
use std::io::{BufRead, IsTerminal, Write};
use std::os::fd::AsFd;

fn prompt(label: &str) -> CliResult<String> {
    eprint!("{label}: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    let n = std::io::stdin().read_line(&mut line)?;
    if n == 0 {
        return Err(CliError::usage(format!(
            "No {} given (stdin is closed).",
            label.to_lowercase()
        )));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a password without echoing it when stdin is a terminal.
fn prompt_password() -> CliResult<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return prompt("Password");
    }
    let saved = tcgetattr(stdin.as_fd()).map_err(|e| CliError::failed(format!("terminal: {e}")))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &quiet);
    let result = prompt("Password");
    let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &saved);
    eprintln!();
    result
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn save_token(ctx: &Ctx, email: &str, token: &str) -> CliResult<()> {
    let path = netrc::default_path().ok_or_else(|| {
        CliError::usage("HOME is not set, so there is no ~/.netrc to save the token in.")
    })?;
    let text = netrc::read(&path)
        .map_err(|e| CliError::failed(format!("Reading {}: {e}", path.display())))?;
    let updated = netrc::upsert(&text, &netrc_machine(ctx.api.base()), email, token);
    netrc::write(&path, &updated)
        .map_err(|e| CliError::failed(format!("Writing {}: {e}", path.display())))
}

pub fn login(ctx: &Ctx, token: Option<String>, email: Option<String>) -> CliResult<()> {
    let env_key = std::env::var("HOIST_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty());
    let token = match token {
        Some(t) => Some(t),
        None if env_key.is_some() => {
            eprintln!(" ▸    Saving the token from HOIST_API_KEY.");
            env_key
        }
        None => None,
    };
    let (email, token) = match token {
        Some(token) => {
            let account = ctx
                .api
                .send_with(
                    Method::GET,
                    "/account",
                    None,
                    None,
                    Auth::Token(token.trim()),
                )?
                .body;
            (s(&account, "/email"), token.trim().to_string())
        }
        None => {
            eprintln!("Log in to {}", ctx.api.base());
            let email = match email {
                Some(e) => e,
                None => prompt("Email")?,
            };
            if email.trim().is_empty() {
                return Err(CliError::usage("An email address is required."));
            }
            let password = prompt_password()?;
            let body = json!({
                "description": format!("Hoist CLI login from {}", hostname()),
                "expires_in": 2_592_000,
                "scope": ["global"],
            });
            let auth = ctx
                .api
                .send_with(
                    Method::POST,
                    "/oauth/authorizations",
                    Some(&body),
                    None,
                    Auth::Basic(email.trim(), &password),
                )?
                .body;
            let token = s(&auth, "/access_token/token");
            if token.is_empty() {
                return Err(CliError::failed("The API did not return a token."));
            }
            let who = s(&auth, "/user/email");
            (
                if who.is_empty() {
                    email.trim().to_string()
                } else {
                    who
                },
                token,
            )
        }
    };
    save_token(ctx, &email, &token)?;
    eprintln!("Logged in as {email}");
    // `hoist run` checks the dyno's certificate against this CA, from any machine.
    let api = crate::api::Api::new(ctx.api.base(), Some(token))?;
    match crate::ca::fetch_and_pin(&api) {
        Ok(path) => eprintln!(
            "Pinned the platform CA of {} in {} (for heroku run: NODE_EXTRA_CA_CERTS={}).",
            ctx.api.base(),
            path.display(),
            path.display()
        ),
        Err(e) => eprintln!(" ▸    Could not fetch the platform CA for hoist run: {e}"),
    }
    Ok(())
}

pub fn logout(ctx: &Ctx) -> CliResult<()> {
    let action = Action::start("Logging out");
    if let Some(path) = netrc::default_path() {
        let text = netrc::read(&path)?;
        let updated = netrc::remove(&text, &netrc_machine(ctx.api.base()));
        if updated != text {
            netrc::write(&path, &updated)?;
        }
    }
    action.done("");
    if std::env::var("HOIST_API_KEY").is_ok_and(|k| !k.is_empty()) {
        eprintln!(" ▸    HOIST_API_KEY is still set in your environment.");
    }
    Ok(())
}

pub fn token(ctx: &Ctx) -> CliResult<()> {
    println!("{}", ctx.api.require_token()?);
    Ok(())
}

pub fn whoami(ctx: &Ctx) -> CliResult<()> {
    let account = ctx.api.get("/account")?;
    if ctx.json {
        print_json(&account);
    } else {
        println!("{}", s(&account, "/email"));
    }
    Ok(())
}

pub fn accounts_create(ctx: &Ctx, email: &str, password: Option<String>) -> CliResult<()> {
    let mut body = json!({ "email": email });
    if let Some(p) = password {
        body["password"] = json!(p);
    }
    let action = Action::start(&format!("Creating account {email}"));
    let account = ctx.api.post("/accounts", &body)?;
    action.done("");
    if ctx.json {
        print_json(&account);
    } else {
        println!("{}", s(&account, "/api_key"));
    }
    Ok(())
}

/// Parses git's credential request (`key=value` lines up to a blank line).
pub fn parse_credential_request(input: &str) -> Vec<(String, String)> {
    input
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim_end_matches('\r').to_string()))
        .collect()
}

/// Whether a credential request is for our API host.
pub fn credential_matches(api_url: &str, request: &[(String, String)]) -> bool {
    let get = |k: &str| {
        request
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let Ok(api) = url::Url::parse(api_url) else {
        return false;
    };
    if let Some(p) = get("protocol") {
        if p != api.scheme() {
            return false;
        }
    }
    match get("host") {
        Some(h) => h.eq_ignore_ascii_case(&netrc_machine(api_url)),
        None => true,
    }
}

/// `git credential` helper: `get` prints the token for our API host; `store` and
/// `erase` are accepted and ignored (the token lives in ~/.netrc).
pub fn git_credentials(ctx: &Ctx, operation: &str) -> CliResult<()> {
    let mut input = String::new();
    let stdin = std::io::stdin();
    let mut lock = stdin.lock();
    loop {
        let mut line = String::new();
        if lock.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        input.push_str(&line);
    }
    if operation != "get" {
        return Ok(());
    }
    let request = parse_credential_request(&input);
    if let Some(token) = credential_token(ctx.api.base(), ctx.api.token(), &request) {
        println!("username=hoist");
        println!("password={token}");
    }
    Ok(())
}

/// The token for a credential request: ours when it is for our API, else the
/// ~/.netrc entry saved for exactly that host (git only asks this helper for the
/// URL it was configured for, which may differ from the current HOIST_API_URL).
fn credential_token(
    api_url: &str,
    token: Option<&str>,
    request: &[(String, String)],
) -> Option<String> {
    if credential_matches(api_url, request) {
        return token.map(str::to_string);
    }
    let host = request
        .iter()
        .find(|(k, _)| k == "host")
        .map(|(_, v)| v.as_str())?;
    let text = netrc::read(&netrc::default_path()?).ok()?;
    netrc::lookup(&text, host)?.password
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_requests() {
        let r = parse_credential_request(
            "protocol=http\nhost=127.0.0.1:5000\npath=demo.git\n\nignored=1\n",
        );
        assert_eq!(r.len(), 3);
        assert!(credential_matches("http://127.0.0.1:5000", &r));
        assert!(!credential_matches("http://127.0.0.1:5001", &r));
        assert!(!credential_matches("https://127.0.0.1:5000", &r));
        let other = parse_credential_request("protocol=https\nhost=github.com\n");
        assert!(!credential_matches("http://127.0.0.1:5000", &other));
    }
}
