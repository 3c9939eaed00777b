//! config, config:get, config:set and config:unset.

use super::{app_path, Action};
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::{print_json, shell_quote};
use serde_json::{json, Map, Value};

fn vars(ctx: &Ctx, app: &str) -> CliResult<Map<String, Value>> {
    match ctx.api.get(&app_path(app, &["config-vars"]))? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(CliError::failed(format!(
            "Unexpected config vars from the API: {other}"
        ))),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn show(ctx: &Ctx, shell: bool) -> CliResult<()> {
    let app = ctx.app()?;
    let vars = vars(ctx, &app)?;
    if ctx.json {
        print_json(&Value::Object(vars));
    } else if shell {
        for (k, v) in &vars {
            println!("{k}={}", shell_quote(&text(v)));
        }
    } else if vars.is_empty() {
        println!("{} has no config vars.", ctx.style.app(&app));
    } else {
        ctx.style
            .header(&format!("{} Config Vars", ctx.style.app(&app)));
        let rows: Vec<(&str, String)> = vars.iter().map(|(k, v)| (k.as_str(), text(v))).collect();
        ctx.style.object(&rows);
    }
    Ok(())
}

pub fn get(ctx: &Ctx, key: &str, shell: bool) -> CliResult<()> {
    let app = ctx.app()?;
    let vars = vars(ctx, &app)?;
    let value = vars.get(key);
    if ctx.json {
        print_json(&json!({"key": key, "value": value}));
    } else if shell {
        println!(
            "{key}={}",
            shell_quote(&value.map(text).unwrap_or_default())
        );
    } else {
        // A missing key prints an empty line, like the Heroku CLI.
        println!("{}", value.map(text).unwrap_or_default());
    }
    Ok(())
}

/// Splits `KEY=value` at the first `=` (values may contain `=`).
pub fn parse_assignment(arg: &str) -> CliResult<(String, String)> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(CliError::usage(format!(
            "{arg} is invalid. Must be in the format FOO=bar."
        ))),
    }
}

/// The newest release's version (`vN`), read right after a config change.
fn newest_release(ctx: &Ctx, app: &str) -> CliResult<String> {
    let releases = ctx.api.get_page(
        &app_path(app, &["releases"]),
        "version ..; max=1, order=desc",
    )?;
    Ok(releases
        .first()
        .and_then(|r| r.get("version"))
        .map(|v| format!("v{}", text(v)))
        .unwrap_or_default())
}

pub fn set(ctx: &Ctx, args: &[String]) -> CliResult<()> {
    let app = ctx.app()?;
    let mut body = Map::new();
    let mut keys = Vec::new();
    for a in args {
        let (k, v) = parse_assignment(a)?;
        if !keys.contains(&k) {
            keys.push(k.clone());
        }
        body.insert(k, Value::String(v));
    }
    let action = Action::start(&format!(
        "Setting {} and restarting {}",
        keys.join(", "),
        ctx.style.err_app(&app)
    ));
    let result = ctx
        .api
        .patch(&app_path(&app, &["config-vars"]), &Value::Object(body))?;
    let version = newest_release(ctx, &app)?;
    action.done(&version);
    if ctx.json {
        print_json(&result);
        return Ok(());
    }
    let rows: Vec<(&str, String)> = keys
        .iter()
        .map(|k| (k.as_str(), result.get(k).map(text).unwrap_or_default()))
        .collect();
    ctx.style.object(&rows);
    Ok(())
}

pub fn unset(ctx: &Ctx, keys: &[String]) -> CliResult<()> {
    let app = ctx.app()?;
    let body: Map<String, Value> = keys.iter().map(|k| (k.clone(), Value::Null)).collect();
    let action = Action::start(&format!(
        "Unsetting {} and restarting {}",
        keys.join(", "),
        ctx.style.err_app(&app)
    ));
    let result = ctx
        .api
        .patch(&app_path(&app, &["config-vars"]), &Value::Object(body))?;
    let version = newest_release(ctx, &app)?;
    action.done(&version);
    if ctx.json {
        print_json(&result);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_split_at_the_first_equals() {
        assert_eq!(parse_assignment("A=1").unwrap(), ("A".into(), "1".into()));
        assert_eq!(
            parse_assignment("DATABASE_URL=postgres://u:p@h/db?sslmode=require&x=y").unwrap(),
            (
                "DATABASE_URL".into(),
                "postgres://u:p@h/db?sslmode=require&x=y".into()
            )
        );
        assert_eq!(
            parse_assignment("EMPTY=").unwrap(),
            ("EMPTY".into(), "".into())
        );
        assert_eq!(
            parse_assignment("B==x=").unwrap(),
            ("B".into(), "=x=".into())
        );
        assert!(parse_assignment("NOVALUE").is_err());
        assert!(parse_assignment("=value").is_err());
        assert_eq!(parse_assignment("X").unwrap_err().exit_code(), 1);
    }
}
