//! Add-ons (addons, :create, :info, :destroy, :attach, :detach, :services, :plans)
//! and the database shortcuts pg:info, pg:psql and redis:cli.

use super::{app_path, Action};
use crate::api::seg;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::{format_time, print_json, s, strings};
use reqwest::Method;
use serde_json::{json, Map, Value};

fn state_text(state: &str) -> &str {
    match state {
        "provisioned" => "created",
        "provisioning" => "creating",
        "deprovisioning" => "destroying",
        "deprovisioned" => "errored",
        other => other,
    }
}

fn price(a: &Value) -> String {
    let cents = a
        .pointer("/plan/price/cents")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if cents == 0 {
        "free".into()
    } else {
        format!("${:.2}/{}", cents as f64 / 100.0, s(a, "/plan/price/unit"))
    }
}

/// Finds one add-on by name (or attachment name) as the API resolves it.
fn resolve(ctx: &Ctx, app: Option<&str>, name: &str) -> CliResult<Value> {
    let mut body = json!({ "addon": name });
    if let Some(a) = app {
        body["app"] = json!(a);
    }
    let found = ctx.api.post("/actions/addons/resolve", &body)?;
    let mut list = match found {
        Value::Array(a) => a,
        other => vec![other],
    };
    match list.len() {
        0 => Err(CliError::usage(format!(
            "Couldn't find an add-on named {name}. Run \"hoist addons\" to list them."
        ))),
        1 => Ok(list.remove(0)),
        _ => Err(CliError::usage(format!(
            "{name} matches more than one add-on: {}. Use the full add-on name.",
            list.iter()
                .map(|a| s(a, "/name"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub fn list(ctx: &Ctx, all: bool) -> CliResult<()> {
    let (addons, app) = if all {
        (ctx.api.get_all("/addons", None)?, None)
    } else {
        let app = ctx.app()?;
        (
            ctx.api.get_all(&app_path(&app, &["addons"]), None)?,
            Some(app),
        )
    };
    if ctx.json {
        print_json(&Value::Array(addons));
        return Ok(());
    }
    if addons.is_empty() {
        match app {
            Some(a) => println!("No add-ons for app {}.", ctx.style.app(&a)),
            None => println!("You have no add-ons."),
        }
        return Ok(());
    }
    let mut headers = vec!["Add-on", "Plan", "Price", "State"];
    if all {
        headers.insert(0, "Owning app");
    }
    ctx.style.table(
        &headers,
        addons
            .iter()
            .map(|a| {
                let mut row = vec![
                    s(a, "/name"),
                    s(a, "/plan/name"),
                    price(a),
                    state_text(&s(a, "/state")).to_string(),
                ];
                if all {
                    row.insert(0, s(a, "/app/name"));
                }
                row
            })
            .collect(),
    );
    Ok(())
}

/// Provider options after `--`: `--key value` and bare `--flag` (= "true").
pub fn parse_options(args: &[String]) -> CliResult<Map<String, Value>> {
    let mut m = Map::new();
    let mut i = 0;
    while i < args.len() {
        let Some(key) = args[i].strip_prefix("--").filter(|k| !k.is_empty()) else {
            return Err(CliError::usage(format!(
                "Unexpected {:?}: add-on options are --key value pairs after \"--\".",
                args[i]
            )));
        };
        if let Some((k, v)) = key.split_once('=') {
            m.insert(k.to_string(), json!(v));
            i += 1;
        } else if i + 1 < args.len() && !args[i + 1].starts_with("--") {
            m.insert(key.to_string(), json!(args[i + 1]));
            i += 2;
        } else {
            m.insert(key.to_string(), json!("true"));
            i += 1;
        }
    }
    Ok(m)
}

pub fn create(
    ctx: &Ctx,
    plan: &str,
    as_name: Option<String>,
    name: Option<String>,
    options: &[String],
) -> CliResult<()> {
    let app = ctx.app()?;
    let mut attachment = Map::new();
    if let Some(a) = as_name {
        attachment.insert("name".into(), json!(a));
    }
    let mut body = json!({
        "plan": { "name": plan },
        "attachment": attachment,
        "config": parse_options(options)?,
    });
    if let Some(n) = name {
        body["name"] = json!(n);
    }
    let action = Action::start(&format!("Creating {plan} on {}", ctx.style.err_app(&app)));
    let path = app_path(&app, &["addons"]);
    let addon = match ctx.api.post(&path, &body) {
        Err(e) if e.api_id() == Some("confirmation_required") => {
            body["confirm"] = json!(app);
            ctx.api.post(&path, &body)?
        }
        other => other?,
    };
    action.done(&price(&addon));
    if ctx.json {
        print_json(&addon);
        return Ok(());
    }
    let msg = s(&addon, "/provision_message");
    if !msg.is_empty() {
        eprintln!("{msg}");
    }
    let vars = strings(&addon, "config_vars");
    match s(&addon, "/state").as_str() {
        "provisioning" => eprintln!(
            "{} is being created in the background. The app will restart when complete...",
            s(&addon, "/name")
        ),
        "deprovisioned" => {
            return Err(CliError::failed(format!(
                "The add-on was unable to be created, with status {}",
                s(&addon, "/state")
            )))
        }
        _ if vars.is_empty() => eprintln!("Created {}", s(&addon, "/name")),
        _ => eprintln!("Created {} as {}", s(&addon, "/name"), vars.join(", ")),
    }
    eprintln!(
        "Use hoist addons:info {} to view add-on details.",
        s(&addon, "/name")
    );
    Ok(())
}

pub fn info(ctx: &Ctx, name: &str) -> CliResult<()> {
    let app = ctx
        .app_flag()
        .map(str::to_string)
        .or_else(|| ctx.app().ok());
    let addon = resolve(ctx, app.as_deref(), name)?;
    if ctx.json {
        print_json(&addon);
        return Ok(());
    }
    ctx.style.header(&s(&addon, "/name"));
    let vars = strings(&addon, "config_vars");
    ctx.style.object(&[
        ("Config vars", vars.join("\n")),
        ("Installed at", format_time(&s(&addon, "/created_at"))),
        ("Owning app", s(&addon, "/app/name")),
        ("Plan", s(&addon, "/plan/name")),
        ("Price", price(&addon)),
        ("State", state_text(&s(&addon, "/state")).to_string()),
    ]);
    Ok(())
}

pub fn destroy(ctx: &Ctx, name: &str, confirm: Option<String>) -> CliResult<()> {
    let app = ctx
        .app_flag()
        .map(str::to_string)
        .or_else(|| ctx.app().ok());
    let addon = resolve(ctx, app.as_deref(), name)?;
    let owner = s(&addon, "/app/name");
    if confirm.as_deref() != Some(owner.as_str()) {
        return Err(CliError::usage(format!(
            "This destroys {} and its data on {owner}. Confirm with --confirm {owner}.",
            s(&addon, "/name")
        )));
    }
    let action = Action::start(&format!(
        "Destroying {} on {}",
        s(&addon, "/name"),
        ctx.style.err_app(&owner)
    ));
    let path = format!(
        "/apps/{}/addons/{}",
        seg(&s(&addon, "/app/id")),
        seg(&s(&addon, "/id"))
    );
    let result = ctx
        .api
        .send(Method::DELETE, &path, Some(&json!({ "force": false })))?;
    match s(&result, "/state").as_str() {
        "deprovisioning" => {
            action.done("");
            eprintln!(
                "{} is being destroyed in the background.",
                s(&addon, "/name")
            );
        }
        "deprovisioned" | "" => action.done(""),
        other => {
            return Err(CliError::failed(format!(
                "The add-on ended up {other}, not destroyed."
            )));
        }
    }
    if ctx.json {
        print_json(&result);
    }
    Ok(())
}

pub fn attach(ctx: &Ctx, name: &str, as_name: Option<String>) -> CliResult<()> {
    let app = ctx.app()?;
    let addon = resolve(ctx, None, name)?;
    let mut body = json!({ "addon": s(&addon, "/id"), "app": app });
    if let Some(a) = &as_name {
        body["name"] = json!(a);
    }
    let action = Action::start(&format!(
        "Attaching {}{} to {}",
        s(&addon, "/name"),
        as_name
            .as_deref()
            .map(|a| format!(" as {a}"))
            .unwrap_or_default(),
        ctx.style.err_app(&app)
    ));
    let att = ctx.api.post("/addon-attachments", &body)?;
    action.done("");
    if ctx.json {
        print_json(&att);
    }
    Ok(())
}

pub fn detach(ctx: &Ctx, attachment: &str) -> CliResult<()> {
    let app = ctx.app()?;
    let att = ctx
        .api
        .get(&app_path(&app, &["addon-attachments", attachment]))?;
    let action = Action::start(&format!(
        "Detaching {} from {}",
        s(&att, "/name"),
        ctx.style.err_app(&app)
    ));
    let result = ctx
        .api
        .delete(&format!("/addon-attachments/{}", seg(&s(&att, "/id"))))?;
    action.done("");
    if ctx.json {
        print_json(&result);
    }
    Ok(())
}

pub fn services(ctx: &Ctx) -> CliResult<()> {
    let list = ctx.api.get_all("/addon-services", None)?;
    if ctx.json {
        print_json(&Value::Array(list));
        return Ok(());
    }
    ctx.style.table(
        &["Slug", "Name", "State"],
        list.iter()
            .map(|x| vec![s(x, "/name"), s(x, "/human_name"), s(x, "/state")])
            .collect(),
    );
    Ok(())
}

pub fn plans(ctx: &Ctx, service: &str) -> CliResult<()> {
    let list = ctx
        .api
        .get_all(&format!("/addon-services/{}/plans", seg(service)), None)?;
    if ctx.json {
        print_json(&Value::Array(list));
        return Ok(());
    }
    ctx.style.table(
        &["", "Slug", "Name", "Price"],
        list.iter()
            .map(|p| {
                let default = if p.get("default") == Some(&Value::Bool(true)) {
                    "default"
                } else {
                    ""
                };
                vec![
                    default.to_string(),
                    s(p, "/name"),
                    s(p, "/human_name"),
                    price(&json!({ "plan": p })),
                ]
            })
            .collect(),
    );
    Ok(())
}

fn is_service(a: &Value, needle: &str) -> bool {
    s(a, "/addon_service/name").contains(needle) || s(a, "/plan/name").contains(needle)
}

pub fn pg_info(ctx: &Ctx, database: Option<String>) -> CliResult<()> {
    let app = ctx.app()?;
    let mut addons: Vec<Value> = ctx
        .api
        .get_all(&app_path(&app, &["addons"]), None)?
        .into_iter()
        .filter(|a| is_service(a, "postgres"))
        .collect();
    if let Some(db) = &database {
        let var = config_var_name(Some(db.clone()), "DATABASE_URL");
        addons.retain(|a| {
            s(a, "/name") == *db
                || a.get("config_vars")
                    .and_then(Value::as_array)
                    .is_some_and(|v| v.iter().any(|x| x.as_str() == Some(var.as_str())))
        });
    }
    if ctx.json {
        print_json(&Value::Array(addons));
        return Ok(());
    }
    if addons.is_empty() {
        println!("{} has no Postgres databases.", ctx.style.app(&app));
        return Ok(());
    }
    for (i, a) in addons.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let vars = strings(a, "config_vars");
        ctx.style.header(
            if vars.is_empty() {
                s(a, "/name")
            } else {
                vars.join(", ")
            }
            .as_str(),
        );
        ctx.style.object(&[
            ("Plan", s(a, "/plan/name")),
            ("Status", state_text(&s(a, "/state")).to_string()),
            ("Created", format_time(&s(a, "/created_at"))),
            ("Add-on", s(a, "/name")),
        ]);
    }
    Ok(())
}

/// `DATABASE` / `HEROKU_POSTGRESQL_RED_URL` / none -> the config var holding the URL.
pub fn config_var_name(arg: Option<String>, default: &str) -> String {
    match arg {
        None => default.to_string(),
        Some(a) => {
            let up = a.to_uppercase().replace('-', "_");
            if up.ends_with("_URL") {
                up
            } else {
                format!("{up}_URL")
            }
        }
    }
}

fn exec_client(
    ctx: &Ctx,
    var_default: &str,
    database: Option<String>,
    program: &str,
    args: &[&str],
) -> CliResult<()> {
    use std::os::unix::process::CommandExt;
    let app = ctx.app()?;
    let var = config_var_name(database, var_default);
    let vars = ctx.api.get(&app_path(&app, &["config-vars"]))?;
    let url = vars.get(&var).and_then(Value::as_str).ok_or_else(|| {
        CliError::usage(format!(
            "{app} has no {var} config var. Run \"hoist addons -a {app}\" to see its add-ons."
        ))
    })?;
    eprintln!("--> Connecting to {var} of {}", ctx.style.err_app(&app));
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).arg(url);
    // exec only returns on failure.
    let err = cmd.exec();
    Err(CliError::failed(format!(
        "Could not run {program}: {err}. Install it first (Debian: apt-get install {}).",
        if program == "psql" {
            "postgresql-client"
        } else {
            "redis-tools"
        }
    )))
}

pub fn pg_psql(ctx: &Ctx, database: Option<String>) -> CliResult<()> {
    exec_client(ctx, "DATABASE_URL", database, "psql", &[])
}

pub fn redis_cli(ctx: &Ctx, database: Option<String>) -> CliResult<()> {
    exec_client(ctx, "REDIS_URL", database, "redis-cli", &["-u"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_options_and_config_var_names() {
        let o = parse_options(&[
            "--version".into(),
            "15".into(),
            "--fork=x".into(),
            "--follow".into(),
        ])
        .unwrap();
        assert_eq!(o.get("version"), Some(&json!("15")));
        assert_eq!(o.get("fork"), Some(&json!("x")));
        assert_eq!(o.get("follow"), Some(&json!("true")));
        assert!(parse_options(&["bare".into()]).is_err());
        assert_eq!(config_var_name(None, "DATABASE_URL"), "DATABASE_URL");
        assert_eq!(
            config_var_name(Some("heroku-postgresql-red".into()), "X"),
            "HEROKU_POSTGRESQL_RED_URL"
        );
        assert_eq!(config_var_name(Some("CACHE_URL".into()), "X"), "CACHE_URL");
    }
}
