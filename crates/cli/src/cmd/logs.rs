//! `logs`: open a log session, then read its Server-Sent Events stream (no auth:
//! the session URL is the credential), reconnecting with `Last-Event-ID` on `--tail`.

use super::app_path;
use crate::api::network_error;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::s;
use crate::sse;
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

/// Reconnects in a row without receiving anything before `--tail` gives up.
const MAX_RECONNECTS: u32 = 20;
const DEFAULT_RETRY: Duration = Duration::from_secs(3);

pub fn logs(
    ctx: &Ctx,
    num: usize,
    tail: bool,
    dyno: Option<String>,
    source: Option<String>,
) -> CliResult<()> {
    let app = ctx.app()?;
    let url = open_session(ctx, &app, num, tail, dyno.as_deref(), source.as_deref())?;
    stream(
        ctx.api.http(),
        &url,
        tail,
        ctx.style.color,
        &mut std::io::stdout(),
    )
}

/// Creates a log session and returns its stream URL.
pub fn open_session(
    ctx: &Ctx,
    app: &str,
    lines: usize,
    tail: bool,
    dyno: Option<&str>,
    source: Option<&str>,
) -> CliResult<String> {
    let mut body = json!({ "lines": lines, "tail": tail });
    if let Some(d) = dyno {
        body["dyno"] = json!(d);
    }
    if let Some(src) = source {
        body["source"] = json!(src);
    }
    let session = ctx.api.post(&app_path(app, &["log-sessions"]), &body)?;
    let url = s(&session, "/logplex_url");
    if url.is_empty() {
        return Err(CliError::failed(
            "The API did not return a log stream URL (logplex_url).",
        ));
    }
    Ok(url)
}

/// Colours the `source[ps]:` prefix of a log line on a terminal.
fn colorize(line: &str, color: bool) -> String {
    if !color {
        return line.to_string();
    }
    let Some(end) = line.find("]: ").map(|i| i + 2) else {
        return line.to_string();
    };
    let prefix = &line[..end];
    let ps = prefix
        .rsplit_once('[')
        .map(|(_, p)| p.trim_end_matches([']', ':']))
        .unwrap_or("");
    let kind = ps.split('.').next().unwrap_or(ps);
    let code = match kind {
        "router" => "34",
        "api" => "32",
        "web" => "36",
        "run" => "35",
        _ if prefix.contains(" heroku[") => "33",
        _ => "33",
    };
    format!("\x1b[{code}m{prefix}\x1b[0m{}", &line[end..])
}

fn retry_delay(p: &sse::Parser) -> Duration {
    p.retry_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_RETRY)
}

/// Reads an SSE log stream to stdout until it ends (or forever with `tail`).
pub fn stream<W: Write>(
    http: &reqwest::blocking::Client,
    url: &str,
    tail: bool,
    color: bool,
    stdout: &mut W,
) -> CliResult<()> {
    let mut parser = sse::Parser::new();
    let mut failures = 0u32;
    let mut first = true;
    loop {
        let mut req = http
            .get(url)
            .header("Accept", "text/event-stream")
            .header("Cache-Control", "no-cache");
        if let Some(id) = parser.last_event_id() {
            req = req.header("Last-Event-ID", id);
        }
        let resp = match req.send() {
            Ok(r) => r,
            Err(e) if tail && !first && failures < MAX_RECONNECTS => {
                failures += 1;
                let _ = e;
                std::thread::sleep(retry_delay(&parser));
                continue;
            }
            Err(e) => return Err(network_error(url, &e)),
        };
        let status = resp.status().as_u16();
        match status {
            200 => {}
            204 => return Ok(()),
            403 | 404 if !first => {
                return Err(CliError::failed("Log stream timed out. Please try again."));
            }
            _ => {
                let text = resp.text().unwrap_or_default();
                let f = crate::api::api_failure(status, &reqwest::Method::GET, url, &text);
                return Err(CliError::Api(crate::error::ApiFailure {
                    message: format!("Logs eventsource failed with: {status} {}", f.message),
                    ..f
                }));
            }
        }
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !ctype.starts_with("text/event-stream") {
            return Err(CliError::failed(format!(
                "The log stream has content type {ctype:?}, not text/event-stream."
            )));
        }
        first = false;
        let mut reader = BufReader::new(resp);
        let mut line = String::new();
        let mut got_any = false;
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let l = line.strip_suffix('\n').unwrap_or(&line);
            if let Some(ev) = parser.line(l) {
                got_any = true;
                for out in ev.data.trim().split('\n') {
                    if writeln!(stdout, "{}", colorize(out, color)).is_err() {
                        // stdout closed (piped into head): stop quietly.
                        return Ok(());
                    }
                }
                let _ = stdout.flush();
            }
        }
        if !tail {
            return Ok(());
        }
        parser.reset_event();
        failures = if got_any { 0 } else { failures + 1 };
        if failures >= MAX_RECONNECTS {
            return Err(CliError::failed(
                "The log stream keeps closing without sending anything; giving up.",
            ));
        }
        std::thread::sleep(retry_delay(&parser));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_only_the_prefix() {
        let l = "2026-11-28T10:00:00+00:00 app[web.1]: hello [x]: y";
        assert_eq!(colorize(l, false), l);
        let c = colorize(l, true);
        assert!(
            c.starts_with("\x1b[36m2026-11-28T10:00:00+00:00 app[web.1]:\x1b[0m hello [x]: y"),
            "{c:?}"
        );
        assert_eq!(colorize("no prefix", true), "no prefix");
    }

    /// A local SSE server: the first response ends early, the client reconnects
    /// with Last-Event-ID, and a 204 ends the tail.
    #[test]
    fn tail_reconnects_with_last_event_id() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let mut seen_ids = Vec::new();
            let bodies = [
                Some("retry: 10\nid: 1\ndata: a\n\nid: 2\ndata: b\ndata: c\n\ndata: lost-without-blank-line\n"),
                Some(": keepalive\n\nid: 3\ndata: d\n\n"),
                None,
            ];
            for body in bodies {
                let (mut tcp, _) = listener.accept().unwrap();
                tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
                    .unwrap();
                let mut r = BufReader::new(tcp.try_clone().unwrap());
                let mut last_id = None;
                loop {
                    let mut l = String::new();
                    r.read_line(&mut l).unwrap();
                    if l.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = l.to_ascii_lowercase().strip_prefix("last-event-id:") {
                        last_id = Some(v.trim().to_string());
                    }
                }
                seen_ids.push(last_id);
                match body {
                    Some(b) => write!(
                        tcp,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n{b}"
                    )
                    .unwrap(),
                    None => write!(tcp, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n").unwrap(),
                }
            }
            seen_ids
        });
        let http = reqwest::blocking::Client::new();
        let mut out = Vec::new();
        stream(
            &http,
            &format!("http://127.0.0.1:{port}/stream/x"),
            true,
            false,
            &mut out,
        )
        .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\nb\nc\nd\n");
        assert_eq!(
            server.join().unwrap(),
            vec![None, Some("2".to_string()), Some("3".to_string())]
        );
    }
}
