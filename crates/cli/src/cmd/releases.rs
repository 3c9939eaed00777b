//! releases, releases:info and rollback.

use super::{app_path, Action};
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::{ago, format_time, print_json, s, strings};
use serde_json::{json, Value};

fn version(r: &Value) -> i64 {
    r.get("version").and_then(Value::as_i64).unwrap_or(0)
}

fn describe(r: &Value) -> String {
    let d = s(r, "/description");
    match s(r, "/status").as_str() {
        "pending" => format!("{d} (release command executing)"),
        "failed" => format!("{d} (release command failed)"),
        "expired" => format!("{d} (release expired)"),
        _ => d,
    }
}

/// Newest first, at most `max`.
fn recent(ctx: &Ctx, app: &str, max: usize) -> CliResult<Vec<Value>> {
    let mut rs = ctx.api.get_page(
        &app_path(app, &["releases"]),
        &format!("version ..; max={}, order=desc", max.max(1)),
    )?;
    rs.sort_by_key(|r| std::cmp::Reverse(version(r)));
    Ok(rs)
}

pub fn list(ctx: &Ctx, num: usize) -> CliResult<()> {
    let app = ctx.app()?;
    let rs = recent(ctx, &app, num)?;
    if ctx.json {
        print_json(&Value::Array(rs));
        return Ok(());
    }
    if rs.is_empty() {
        println!("{} has no releases.", ctx.style.app(&app));
        return Ok(());
    }
    let current = rs
        .iter()
        .find(|r| r.get("current") == Some(&Value::Bool(true)))
        .map(|r| format!(" - Current: v{}", version(r)))
        .unwrap_or_default();
    ctx.style
        .header(&format!("{} Releases{current}", ctx.style.app(&app)));
    let now = chrono::Utc::now();
    ctx.style.rows(
        rs.iter()
            .map(|r| {
                let when = s(r, "/created_at");
                vec![
                    format!("v{}", version(r)),
                    describe(r),
                    s(r, "/user/email"),
                    format!("{} ({})", format_time(&when), ago(&when, now)),
                ]
            })
            .collect(),
    );
    Ok(())
}

/// `v12`, `12` or a release id, as the API path segment.
fn release_ident(arg: &str) -> String {
    let t = arg.trim();
    match t.strip_prefix(['v', 'V']) {
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n.to_string(),
        _ => t.to_string(),
    }
}

pub fn info(ctx: &Ctx, release: Option<String>) -> CliResult<()> {
    let app = ctx.app()?;
    let r = match release {
        Some(arg) => ctx
            .api
            .get(&app_path(&app, &["releases", &release_ident(&arg)]))?,
        None => recent(ctx, &app, 1)?
            .into_iter()
            .next()
            .ok_or_else(|| CliError::failed(format!("{app} has no releases.")))?,
    };
    let v = version(&r).to_string();
    let config = ctx
        .api
        .get(&app_path(&app, &["releases", &v, "config-vars"]))
        .unwrap_or(json!({}));
    if ctx.json {
        print_json(&r);
        return Ok(());
    }
    ctx.style.header(&format!("Release v{v}"));
    let addons = strings(&r, "addon_plan_names");
    ctx.style.object(&[
        ("Add-ons", addons.join("\n")),
        ("Change", describe(&r)),
        ("By", s(&r, "/user/email")),
        ("When", format_time(&s(&r, "/created_at"))),
        ("Status", s(&r, "/status")),
    ]);
    if let Some(map) = config.as_object().filter(|m| !m.is_empty()) {
        println!();
        ctx.style.header(&format!("v{v} Config vars"));
        let rows: Vec<(&str, String)> = map
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        ctx.style.object(&rows);
    }
    Ok(())
}

/// The release before the current one that can be rolled back to.
pub fn previous_release(releases: &[Value]) -> Option<&Value> {
    let current = releases
        .iter()
        .position(|r| r.get("current") == Some(&Value::Bool(true)))
        .unwrap_or(0);
    releases
        .iter()
        .skip(current + 1)
        .find(|r| r.get("eligible_for_rollback") != Some(&Value::Bool(false)))
}

pub fn rollback(ctx: &Ctx, release: Option<String>) -> CliResult<()> {
    let app = ctx.app()?;
    let target = match release {
        Some(arg) => ctx
            .api
            .get(&app_path(&app, &["releases", &release_ident(&arg)]))?,
        None => {
            let rs = recent(ctx, &app, 10)?;
            previous_release(&rs).cloned().ok_or_else(|| {
                CliError::usage(format!(
                    "{app} has no earlier release to roll back to. Run \"hoist releases -a {app}\"."
                ))
            })?
        }
    };
    let id = s(&target, "/id");
    let action = Action::start(&format!(
        "Rolling back {} to v{}",
        ctx.style.err_app(&app),
        version(&target)
    ));
    let created = ctx
        .api
        .post(&app_path(&app, &["releases"]), &json!({ "release": id }))?;
    action.done(&format!("v{}", version(&created)));
    if ctx.json {
        print_json(&created);
    } else {
        eprintln!(" ▸    Rollback affects code and config vars; it doesn't add or remove add-ons.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previous_release_skips_current_and_ineligible() {
        let rs = vec![
            json!({"version": 5, "current": true}),
            json!({"version": 4, "current": false, "eligible_for_rollback": false}),
            json!({"version": 3, "current": false, "eligible_for_rollback": true}),
        ];
        assert_eq!(version(previous_release(&rs).unwrap()), 3);
        let rs = vec![json!({"version": 1, "current": true})];
        assert!(previous_release(&rs).is_none());
        assert!(previous_release(&[]).is_none());
        assert_eq!(release_ident("v12"), "12");
        assert_eq!(release_ident("12"), "12");
        assert_eq!(release_ident("abc-uuid"), "abc-uuid");
    }
}
