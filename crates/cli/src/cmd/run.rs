//! run (attached one-off dyno over rendezvous) and run:detached.

use super::{app_path, logs, Action};
use crate::cli::RunOpts;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::s;
use crate::rendezvous;
use serde_json::{json, Map, Value};
use std::io::IsTerminal;

/// Joins argv words into one command line like the Heroku CLI: a single argument is
/// passed verbatim; words with spaces or quotes are double-quoted.
pub fn build_command(args: &[String]) -> String {
    if let [one] = args {
        return one.clone();
    }
    args.iter()
        .map(|a| {
            if a.contains(' ') || a.contains('"') {
                format!("\"{}\"", a.replace('"', "\\\""))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `-e "A=1;B=2"` into a map.
pub fn parse_env(spec: &str) -> CliResult<Map<String, Value>> {
    let mut m = Map::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').ok_or_else(|| {
            CliError::usage(format!(
                "Invalid env {part:?}: use -e \"KEY=value;OTHER=value\"."
            ))
        })?;
        m.insert(k.trim().to_string(), Value::String(v.to_string()));
    }
    Ok(m)
}

/// The window size of the terminal on stdout, if it has one (a pty may say 0x0).
fn terminal_size() -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer we pass; fd 1 is stdout.
    let rc = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    (rc == 0).then_some((ws.ws_col, ws.ws_row))
}

/// Columns and lines for the dyno's terminal: the window's size, else `$COLUMNS` /
/// `$LINES`, else 80x24. The dyno only gets a tty when the size is sent, so an
/// unknown size (a 0x0 pty) must not leave it without one: a raw-mode client would
/// then talk to a shell that never sees a line end.
pub fn dyno_terminal_size(
    window: Option<(u16, u16)>,
    columns_env: Option<&str>,
    lines_env: Option<&str>,
) -> (u16, u16) {
    let known = |n: u16| (n > 0).then_some(n);
    let from_env = |v: Option<&str>| v.and_then(|v| v.trim().parse::<u16>().ok()).and_then(known);
    let cols = window
        .and_then(|(c, _)| known(c))
        .or_else(|| from_env(columns_env))
        .unwrap_or(80);
    let lines = window
        .and_then(|(_, l)| known(l))
        .or_else(|| from_env(lines_env))
        .unwrap_or(24);
    (cols, lines)
}

fn dyno_body(opts: &RunOpts, attach: bool, command: &str, force_no_tty: bool) -> CliResult<Value> {
    let mut env = match &opts.env {
        Some(e) => parse_env(e)?,
        None => Map::new(),
    };
    if let Ok(term) = std::env::var("TERM") {
        env.entry("TERM").or_insert(Value::String(term));
    }
    if std::io::stdout().is_terminal() {
        let (cols, lines) = dyno_terminal_size(
            terminal_size(),
            std::env::var("COLUMNS").ok().as_deref(),
            std::env::var("LINES").ok().as_deref(),
        );
        // The schema says env values are strings.
        env.insert("COLUMNS".into(), Value::String(cols.to_string()));
        env.insert("LINES".into(), Value::String(lines.to_string()));
    }
    let mut body = json!({ "attach": attach, "command": command, "env": env });
    if let Some(size) = &opts.size {
        body["size"] = json!(size);
    }
    if let Some(t) = &opts.process_type {
        body["type"] = json!(t);
    }
    if force_no_tty {
        body["force_no_tty"] = json!(true);
    }
    Ok(body)
}

/// Creates the dyno; a 409 (release not visible yet) is retried twice.
fn create_dyno(ctx: &Ctx, app: &str, body: &Value) -> CliResult<Value> {
    let mut tries = 0;
    loop {
        match ctx.api.post(&app_path(app, &["dynos"]), body) {
            Err(CliError::Api(a)) if a.status == 409 && tries < 2 => tries += 1,
            other => return other,
        }
    }
}

pub fn run(
    ctx: &Ctx,
    opts: &RunOpts,
    exit_code: bool,
    no_tty: bool,
    args: &[String],
) -> CliResult<()> {
    let app = ctx.app()?;
    let mut command = build_command(args);
    if exit_code {
        command = format!("{command} ; echo \"\u{FFFF} heroku-command-exit-status: $?\"");
    }
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal() && !no_tty;
    let body = dyno_body(opts, true, &command, !tty)?;
    // Before the dyno exists: without a CA to check it, there is nothing to attach to.
    let ca = crate::ca::for_run(&ctx.api)?;
    let action = Action::start(&format!(
        "Running {} on {}",
        build_command(args),
        ctx.style.err_app(&app)
    ));
    let dyno = create_dyno(ctx, &app, &body)?;
    let name = s(&dyno, "/name");
    action.done(&format!("{name} ({})", s(&dyno, "/size")));
    let attach_url = s(&dyno, "/attach_url");
    if attach_url.is_empty() {
        return Err(CliError::failed(format!(
            "The server started {name} but gave no attach URL. See its output with \"hoist logs -a {app} --dyno {name}\"."
        )));
    }
    if attach_url.starts_with("http://") || attach_url.starts_with("https://") {
        return Err(CliError::failed(
            "This server offers an HTTP-upgrade attach URL, which this CLI does not speak; it needs rendezvous://.",
        ));
    }
    let status = rendezvous::attach(&attach_url, tty, &ca)?;
    if status != 0 {
        eprintln!(" ▸    Process exited with code {status}");
        return Err(CliError::Exit(status));
    }
    Ok(())
}

pub fn detached(ctx: &Ctx, opts: &RunOpts, tail: bool, args: &[String]) -> CliResult<()> {
    let app = ctx.app()?;
    let command = build_command(args);
    let body = dyno_body(opts, false, &command, false)?;
    let action = Action::start(&format!("Running {command} on {}", ctx.style.err_app(&app)));
    let dyno = create_dyno(ctx, &app, &body)?;
    let name = s(&dyno, "/name");
    action.done(&format!("{name} ({})", s(&dyno, "/size")));
    if tail {
        let url = logs::open_session(ctx, &app, 100, true, Some(&name), None)?;
        return logs::stream(
            ctx.api.http(),
            &url,
            true,
            ctx.style.color,
            &mut std::io::stdout(),
        );
    }
    if ctx.json {
        crate::output::print_json(&dyno);
    } else {
        eprintln!("Run hoist logs --app {app} --dyno {name} to view the output.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn commands_are_joined_like_heroku() {
        assert_eq!(build_command(&v(&["echo hi; ls"])), "echo hi; ls");
        assert_eq!(
            build_command(&v(&["bash", "-c", "ls -la"])),
            "bash -c \"ls -la\""
        );
        assert_eq!(
            build_command(&v(&["echo", "say \"hi\""])),
            "echo \"say \\\"hi\\\"\""
        );
        assert_eq!(
            build_command(&v(&["rake", "db:migrate"])),
            "rake db:migrate"
        );
    }

    #[test]
    fn terminal_size_falls_back_when_unknown() {
        assert_eq!(
            dyno_terminal_size(Some((120, 40)), Some("99"), None),
            (120, 40)
        );
        // A 0x0 pty: the environment, else 80x24.
        assert_eq!(dyno_terminal_size(Some((0, 0)), None, None), (80, 24));
        assert_eq!(
            dyno_terminal_size(Some((0, 0)), Some("100"), Some("30")),
            (100, 30)
        );
        assert_eq!(dyno_terminal_size(None, Some("junk"), Some("0")), (80, 24));
        assert_eq!(dyno_terminal_size(Some((132, 0)), None, None), (132, 24));
    }

    #[test]
    fn env_specs() {
        let m = parse_env("A=1; B=two=2;").unwrap();
        assert_eq!(m.get("A"), Some(&json!("1")));
        assert_eq!(m.get("B"), Some(&json!("two=2")));
        assert!(parse_env("NOPE").is_err());
    }
}
