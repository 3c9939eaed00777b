//! Small per-app resources: access (collaborators), domains, maintenance mode,
//! features and log drains.

use super::{app_path, Action};
use crate::ctx::Ctx;
use crate::error::CliResult;
use crate::output::{print_json, s};
use serde_json::{json, Value};

pub fn access(ctx: &Ctx) -> CliResult<()> {
    let app = ctx.app()?;
    let collaborators = ctx.api.get_all(&app_path(&app, &["collaborators"]), None)?;
    if ctx.json {
        print_json(&Value::Array(collaborators));
        return Ok(());
    }
    ctx.style
        .header(&format!("{} Access List", ctx.style.app(&app)));
    let rows = collaborators
        .iter()
        .map(|c| {
            let perms: Vec<String> = c
                .get("permissions")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|p| s(p, "/name")).collect())
                .unwrap_or_default();
            vec![s(c, "/user/email"), s(c, "/role"), perms.join(", ")]
        })
        .collect();
    ctx.style.rows(rows);
    Ok(())
}

pub fn access_add(ctx: &Ctx, email: &str) -> CliResult<()> {
    let app = ctx.app()?;
    let action = Action::start(&format!(
        "Adding {email} access to the app {}",
        ctx.style.err_app(&app)
    ));
    let c = ctx.api.post(
        &app_path(&app, &["collaborators"]),
        &json!({ "user": email }),
    )?;
    action.done("");
    if ctx.json {
        print_json(&c);
    }
    Ok(())
}

pub fn access_remove(ctx: &Ctx, email: &str) -> CliResult<()> {
    let app = ctx.app()?;
    let action = Action::start(&format!(
        "Removing {email} access from the app {}",
        ctx.style.err_app(&app)
    ));
    let c = ctx.api.delete(&app_path(&app, &["collaborators", email]))?;
    action.done("");
    if ctx.json {
        print_json(&c);
    }
    Ok(())
}

pub fn domains(ctx: &Ctx) -> CliResult<()> {
    let app = ctx.app()?;
    let domains = ctx
        .api
        .get_all(&app_path(&app, &["domains"]), Some("id ..; max=1000;"))?;
    if ctx.json {
        print_json(&Value::Array(domains));
        return Ok(());
    }
    let (platform, custom): (Vec<&Value>, Vec<&Value>) =
        domains.iter().partition(|d| s(d, "/kind") == "heroku");
    ctx.style
        .header(&format!("{} Heroku Domain", ctx.style.app(&app)));
    for d in &platform {
        println!("{}", s(d, "/hostname"));
    }
    if !custom.is_empty() {
        println!();
        ctx.style
            .header(&format!("{} Custom Domains", ctx.style.app(&app)));
        ctx.style.table(
            &["Domain Name", "DNS Record Type", "DNS Target"],
            custom
                .iter()
                .map(|d| vec![s(d, "/hostname"), "CNAME".to_string(), s(d, "/cname")])
                .collect(),
        );
    }
    Ok(())
}

pub fn domains_add(ctx: &Ctx, hostname: &str) -> CliResult<()> {
    let app = ctx.app()?;
    let action = Action::start(&format!("Adding {hostname} to {}", ctx.style.err_app(&app)));
    let d = ctx.api.post(
        &app_path(&app, &["domains"]),
        &json!({ "hostname": hostname, "sni_endpoint": null }),
    )?;
    action.done("");
    if ctx.json {
        print_json(&d);
    } else if !s(&d, "/cname").is_empty() {
        eprintln!(
            "Configure your app's DNS provider to point to the DNS Target {}.",
            s(&d, "/cname")
        );
    }
    Ok(())
}

pub fn domains_remove(ctx: &Ctx, hostname: &str) -> CliResult<()> {
    let app = ctx.app()?;
    let action = Action::start(&format!(
        "Removing {hostname} from {}",
        ctx.style.err_app(&app)
    ));
    let d = ctx.api.delete(&app_path(&app, &["domains", hostname]))?;
    action.done("");
    if ctx.json {
        print_json(&d);
    }
    Ok(())
}

pub fn maintenance(ctx: &Ctx) -> CliResult<()> {
    let app = ctx.app()?;
    let info = ctx.api.get(&app_path(&app, &[]))?;
    if ctx.json {
        print_json(&json!({ "maintenance": info.get("maintenance") }));
    } else if info.get("maintenance") == Some(&Value::Bool(true)) {
        println!("on");
    } else {
        println!("off");
    }
    Ok(())
}

pub fn set_maintenance(ctx: &Ctx, on: bool) -> CliResult<()> {
    let app = ctx.app()?;
    let action = Action::start(&format!(
        "{} maintenance mode for {}",
        if on { "Enabling" } else { "Disabling" },
        ctx.style.err_app(&app)
    ));
    let info = ctx
        .api
        .patch(&app_path(&app, &[]), &json!({ "maintenance": on }))?;
    action.done("");
    if ctx.json {
        print_json(&info);
    }
    Ok(())
}

pub fn features(ctx: &Ctx) -> CliResult<()> {
    let app = ctx.app()?;
    let features = ctx.api.get_all(&app_path(&app, &["features"]), None)?;
    if ctx.json {
        print_json(&Value::Array(features));
        return Ok(());
    }
    ctx.style
        .header(&format!("App Features {}", ctx.style.app(&app)));
    ctx.style.rows(
        features
            .iter()
            .map(|f| {
                let on = f.get("enabled") == Some(&Value::Bool(true));
                vec![
                    if on { "[+]".into() } else { "[ ]".into() },
                    s(f, "/name"),
                    s(f, "/description"),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub fn set_feature(ctx: &Ctx, feature: &str, enabled: bool) -> CliResult<()> {
    let app = ctx.app()?;
    let action = Action::start(&format!(
        "{} {feature} for {}",
        if enabled { "Enabling" } else { "Disabling" },
        ctx.style.err_app(&app)
    ));
    let f = ctx.api.patch(
        &app_path(&app, &["features", feature]),
        &json!({ "enabled": enabled }),
    )?;
    action.done("");
    if ctx.json {
        print_json(&f);
    }
    Ok(())
}

pub fn drains(ctx: &Ctx) -> CliResult<()> {
    let app = ctx.app()?;
    let drains = ctx.api.get_all(&app_path(&app, &["log-drains"]), None)?;
    if ctx.json {
        print_json(&Value::Array(drains));
        return Ok(());
    }
    if drains.is_empty() {
        println!("{} has no drains.", ctx.style.app(&app));
        return Ok(());
    }
    ctx.style.header("Drains");
    ctx.style.rows(
        drains
            .iter()
            .map(|d| vec![s(d, "/url"), format!("({})", s(d, "/token"))])
            .collect(),
    );
    Ok(())
}

pub fn drains_add(ctx: &Ctx, url: &str) -> CliResult<()> {
    let app = ctx.app()?;
    let d = ctx
        .api
        .post(&app_path(&app, &["log-drains"]), &json!({ "url": url }))?;
    if ctx.json {
        print_json(&d);
    } else {
        println!("Successfully added drain {}", s(&d, "/url"));
    }
    Ok(())
}

pub fn drains_remove(ctx: &Ctx, target: &str) -> CliResult<()> {
    let app = ctx.app()?;
    let d = ctx.api.delete(&app_path(&app, &["log-drains", target]))?;
    if ctx.json {
        print_json(&d);
    } else {
        println!("Successfully removed drain {}", s(&d, "/url"));
    }
    Ok(())
}
