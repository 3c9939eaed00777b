//! ps, ps:scale, ps:type, ps:restart and ps:stop.

use super::{app_path, Action};
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::{ago, format_time, print_json, s};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One `ps:scale` argument: `web=3`, `worker+1`, `web-2`, `web=2:standard-2x`
/// (Heroku's `^([\w-]+)([=+-]\d+)(?::([\w-]+))?$`).
#[derive(Debug, PartialEq, Eq)]
pub struct ScaleArg {
    pub process_type: String,
    /// As the API wants it: `"3"` absolute, `"+1"` / `"-2"` relative.
    pub quantity: String,
    pub size: Option<String>,
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn parse_scale(arg: &str) -> Option<ScaleArg> {
    let (head, size) = match arg.split_once(':') {
        Some((h, sz)) => (h, Some(sz)),
        None => (arg, None),
    };
    if size.is_some_and(|sz| !is_word(sz)) {
        return None;
    }
    // The type is greedy, so the operator is the rightmost one followed only by digits.
    let bytes = head.as_bytes();
    let op_at = (1..bytes.len()).rev().find(|&i| {
        matches!(bytes[i], b'=' | b'+' | b'-')
            && i + 1 < bytes.len()
            && bytes[i + 1..].iter().all(u8::is_ascii_digit)
    })?;
    let process_type = &head[..op_at];
    if !is_word(process_type) {
        return None;
    }
    let digits = &head[op_at + 1..];
    let quantity = match bytes[op_at] {
        b'=' => digits.to_string(),
        b'+' => format!("+{digits}"),
        _ => format!("-{digits}"),
    };
    Some(ScaleArg {
        process_type: process_type.to_string(),
        quantity,
        size: size.map(str::to_string),
    })
}

/// Sorts `web.2` before `web.10`.
fn dyno_order(name: &str) -> (String, u64) {
    match name.rsplit_once('.') {
        Some((t, n)) => (t.to_string(), n.parse().unwrap_or(u64::MAX)),
        None => (name.to_string(), 0),
    }
}

pub fn list(ctx: &Ctx, types: &[String]) -> CliResult<()> {
    let app = ctx.app()?;
    let mut dynos = match ctx.api.get(&app_path(&app, &["dynos"]))? {
        Value::Array(a) => a,
        _ => Vec::new(),
    };
    if !types.is_empty() {
        dynos.retain(|d| types.contains(&s(d, "/type")) || types.contains(&s(d, "/name")));
    }
    dynos.sort_by_key(|d| dyno_order(&s(d, "/name")));
    if ctx.json {
        print_json(&Value::Array(dynos));
        return Ok(());
    }
    if dynos.is_empty() {
        println!("No dynos on {}", ctx.style.app(&app));
        return Ok(());
    }
    for line in render_dynos(&dynos, chrono::Utc::now()) {
        match line {
            Line::Header(h) => ctx.style.header(&h),
            Line::Text(t) => println!("{t}"),
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Header(String),
    Text(String),
}

/// Heroku's `ps` layout: one-offs first, then one section per process type and
/// command: `=== web (Basic): npm start (2)` and `web.1: up 2026/11/28 10:00:00 +0000 (~ 3s ago)`.
pub fn render_dynos(dynos: &[Value], now: chrono::DateTime<chrono::Utc>) -> Vec<Line> {
    let since = |d: &Value| {
        let t = s(d, "/updated_at");
        format!("{} {} ({})", s(d, "/state"), format_time(&t), ago(&t, now))
    };
    let mut out = Vec::new();
    let (one_offs, services): (Vec<&Value>, Vec<&Value>) =
        dynos.iter().partition(|d| s(d, "/type") == "run");
    if !one_offs.is_empty() {
        out.push(Line::Header(format!(
            "run: one-off processes ({})",
            one_offs.len()
        )));
        for d in &one_offs {
            out.push(Line::Text(format!(
                "{} ({}): {}: {}",
                s(d, "/name"),
                s(d, "/size"),
                since(d),
                s(d, "/command")
            )));
        }
    }
    let mut groups: BTreeMap<(String, String, String), Vec<&Value>> = BTreeMap::new();
    for d in services {
        groups
            .entry((s(d, "/type"), s(d, "/size"), s(d, "/command")))
            .or_default()
            .push(d);
    }
    for ((ptype, size, command), ds) in groups {
        if !out.is_empty() {
            out.push(Line::Text(String::new()));
        }
        out.push(Line::Header(format!(
            "{ptype} ({size}): {command} ({})",
            ds.len()
        )));
        for d in ds {
            out.push(Line::Text(format!("{}: {}", s(d, "/name"), since(d))));
        }
    }
    out
}

fn formation(ctx: &Ctx, app: &str) -> CliResult<Vec<Value>> {
    ctx.api.get_all(&app_path(app, &["formation"]), None)
}

fn quantity(f: &Value) -> i64 {
    f.get("quantity").and_then(Value::as_i64).unwrap_or(0)
}

pub fn scale(ctx: &Ctx, changes: &[String]) -> CliResult<()> {
    let app = ctx.app()?;
    if changes.is_empty() {
        let f = formation(ctx, &app)?;
        if ctx.json {
            print_json(&Value::Array(f));
            return Ok(());
        }
        if f.is_empty() {
            return Err(CliError::failed(format!(
                "No process types on {app}. Deploy code with a Procfile first."
            )));
        }
        let parts: Vec<String> = f
            .iter()
            .map(|x| format!("{}={}:{}", s(x, "/type"), quantity(x), s(x, "/size")))
            .collect();
        println!("{}", parts.join(" "));
        return Ok(());
    }
    let mut updates = Vec::new();
    for c in changes {
        let a = parse_scale(c).ok_or_else(|| {
            CliError::usage(format!(
                "Invalid argument {c:?}. Use TYPE=N, TYPE+N or TYPE-N, optionally with :SIZE (web=2:standard-2x)."
            ))
        })?;
        let mut u = json!({"type": a.process_type, "quantity": a.quantity});
        if let Some(size) = a.size {
            u["size"] = json!(size);
        }
        updates.push(u);
    }
    let action = Action::start("Scaling dynos");
    let result = ctx.api.patch(
        &app_path(&app, &["formation"]),
        &json!({ "updates": updates }),
    )?;
    let now: Vec<String> = result
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| format!("{} at {}:{}", s(f, "/type"), quantity(f), s(f, "/size")))
                .collect()
        })
        .unwrap_or_default();
    action.done(&format!("now running {}", now.join(", ")));
    if ctx.json {
        print_json(&result);
    }
    Ok(())
}

fn print_formation_table(ctx: &Ctx, f: &[Value]) {
    ctx.style.table(
        &["Type", "Size", "Qty"],
        f.iter()
            .map(|x| vec![s(x, "/type"), s(x, "/size"), quantity(x).to_string()])
            .collect(),
    );
}

pub fn resize(ctx: &Ctx, changes: &[String]) -> CliResult<()> {
    let app = ctx.app()?;
    if !changes.is_empty() {
        let current = formation(ctx, &app)?;
        let mut updates = Vec::new();
        for c in changes {
            match c.split_once('=') {
                Some((t, size)) if is_word(t) && is_word(size) => {
                    updates.push(json!({"type": t, "size": size}));
                }
                None if is_word(c) => {
                    if current.is_empty() {
                        return Err(CliError::failed(format!(
                            "No process types on {app}. Deploy code with a Procfile first."
                        )));
                    }
                    for f in &current {
                        updates.push(json!({"type": s(f, "/type"), "size": c}));
                    }
                }
                _ => {
                    return Err(CliError::usage(format!(
                        "Invalid argument {c:?}. Use TYPE=SIZE (web=standard-2x) or a SIZE for every process type."
                    )))
                }
            }
        }
        let action = Action::start(&format!("Resizing dynos on {}", ctx.style.err_app(&app)));
        ctx.api.patch(
            &app_path(&app, &["formation"]),
            &json!({ "updates": updates }),
        )?;
        action.done("");
    }
    let f = formation(ctx, &app)?;
    if ctx.json {
        print_json(&Value::Array(f));
    } else if f.is_empty() {
        println!("No process types on {}.", ctx.style.app(&app));
    } else {
        print_formation_table(ctx, &f);
    }
    Ok(())
}

pub fn restart(ctx: &Ctx, target: Option<&str>) -> CliResult<()> {
    let app = ctx.app()?;
    let (path, what) = match target {
        None => (app_path(&app, &["dynos"]), "all dynos".to_string()),
        Some(t) if t.contains('.') => (app_path(&app, &["dynos", t]), format!("dyno {t}")),
        Some(t) => (app_path(&app, &["formations", t]), format!("{t} dynos")),
    };
    let action = Action::start(&format!("Restarting {what} on {}", ctx.style.err_app(&app)));
    let body = ctx.api.delete(&path)?;
    action.done("");
    if ctx.json {
        print_json(&body);
    }
    Ok(())
}

pub fn stop(ctx: &Ctx, target: &str) -> CliResult<()> {
    let app = ctx.app()?;
    let (path, what) = if target.contains('.') {
        (
            app_path(&app, &["dynos", target, "actions", "stop"]),
            format!("{target} dyno"),
        )
    } else {
        (
            app_path(&app, &["formations", target, "actions", "stop"]),
            format!("{target} dynos"),
        )
    };
    let action = Action::start(&format!("Stopping {what} on {}", ctx.style.err_app(&app)));
    let body = ctx.api.post(&path, &json!({}))?;
    action.done("");
    if ctx.json {
        print_json(&body);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &str) -> Option<(String, String, Option<String>)> {
        parse_scale(a).map(|s| (s.process_type, s.quantity, s.size))
    }

    #[test]
    fn scale_syntax() {
        assert_eq!(p("web=3"), Some(("web".into(), "3".into(), None)));
        assert_eq!(p("worker+1"), Some(("worker".into(), "+1".into(), None)));
        assert_eq!(p("worker-1"), Some(("worker".into(), "-1".into(), None)));
        assert_eq!(
            p("web=2:standard-2x"),
            Some(("web".into(), "2".into(), Some("standard-2x".into())))
        );
        assert_eq!(
            p("my-worker=10"),
            Some(("my-worker".into(), "10".into(), None))
        );
        assert_eq!(
            p("clock_2+3:Basic"),
            Some(("clock_2".into(), "+3".into(), Some("Basic".into())))
        );
        // Greedy type: the last operator followed by digits wins.
        assert_eq!(p("web-1-2"), Some(("web-1".into(), "-2".into(), None)));
        assert_eq!(p("web-1=2"), Some(("web-1".into(), "2".into(), None)));
        for bad in [
            "web",
            "web=",
            "=3",
            "web=x",
            "web=3:",
            "web=3:a:b",
            "web=3:st d",
            "we b=1",
            "web=+1",
            "web.1=2",
            "web==1",
            "",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dynos_sort_numerically() {
        let mut names = vec!["web.10", "web.2", "run.1", "web.1"];
        names.sort_by_key(|n| dyno_order(n));
        assert_eq!(names, vec!["run.1", "web.1", "web.2", "web.10"]);
    }

    #[test]
    fn ps_layout() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T10:00:03Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let t = "2026-11-28T10:00:00Z";
        let d = |name: &str, ptype: &str, cmd: &str| json!({"name": name, "type": ptype, "state": "up", "size": "Basic", "command": cmd, "updated_at": t});
        let mut dynos = vec![
            d("web.2", "web", "npm start"),
            d("worker.1", "worker", "node worker.js"),
            d("web.1", "web", "npm start"),
            d("run.4321", "run", "bash"),
        ];
        dynos.sort_by_key(|x| dyno_order(&s(x, "/name")));
        let when = format_time(t);
        assert_eq!(
            render_dynos(&dynos, now),
            vec![
                Line::Header("run: one-off processes (1)".into()),
                Line::Text(format!("run.4321 (Basic): up {when} (~ 3s ago): bash")),
                Line::Text(String::new()),
                Line::Header("web (Basic): npm start (2)".into()),
                Line::Text(format!("web.1: up {when} (~ 3s ago)")),
                Line::Text(format!("web.2: up {when} (~ 3s ago)")),
                Line::Text(String::new()),
                Line::Header("worker (Basic): node worker.js (1)".into()),
                Line::Text(format!("worker.1: up {when} (~ 3s ago)")),
            ]
        );
    }
}
