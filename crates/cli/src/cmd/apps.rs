//! apps, apps:create, apps:info, apps:destroy, apps:rename and git:remote.

use super::{app_path, Action};
use crate::ctx::{app_from_named_remote, Ctx};
use crate::error::{CliError, CliResult};
use crate::git;
use crate::output::{print_json, s};
use serde_json::{json, Value};
use std::io::IsTerminal;

pub fn list(ctx: &Ctx, all: bool) -> CliResult<()> {
    let path = if all { "/apps" } else { "/users/~/apps" };
    let mut apps = ctx.api.get_all(path, None)?;
    if ctx.json {
        print_json(&Value::Array(apps));
        return Ok(());
    }
    let me = s(&ctx.api.get("/account")?, "/email");
    apps.sort_by_key(|a| s(a, "/name"));
    let line = |a: &Value| {
        let region = s(a, "/region/name");
        let mut l = ctx.style.app(&s(a, "/name"));
        if !region.is_empty() && region != "us" {
            l.push_str(&format!(" ({region})"));
        }
        if s(a, "/maintenance") == "true" {
            l.push_str(" [maintenance]");
        }
        l
    };
    let (mine, others): (Vec<&Value>, Vec<&Value>) =
        apps.iter().partition(|a| s(a, "/owner/email") == me);
    if mine.is_empty() && others.is_empty() {
        println!("You have no apps.");
        return Ok(());
    }
    if !mine.is_empty() {
        ctx.style.header(&format!("{me} Apps"));
        for a in &mine {
            println!("{}", line(a));
        }
    }
    if !others.is_empty() {
        if !mine.is_empty() {
            println!();
        }
        ctx.style.header(if all {
            "Other Apps"
        } else {
            "Collaborated Apps"
        });
        ctx.style.rows(
            others
                .iter()
                .map(|a| vec![line(a), s(a, "/owner/email")])
                .collect(),
        );
    }
    Ok(())
}

pub fn create(
    ctx: &Ctx,
    name: Option<String>,
    region: Option<String>,
    no_remote: bool,
    buildpack: Option<String>,
) -> CliResult<()> {
    let name = name.or_else(|| ctx.app_flag().map(str::to_string));
    let mut body = json!({});
    if let Some(n) = &name {
        body["name"] = json!(n);
    }
    if let Some(r) = &region {
        body["region"] = json!(r);
    }
    let action = Action::start(&match &name {
        Some(n) => format!("Creating {}", ctx.style.err_app(n)),
        None => "Creating app".to_string(),
    });
    let app = ctx.api.post("/apps", &body)?;
    let app_name = s(&app, "/name");
    if name.is_some() {
        action.done("");
    } else {
        action.done(&ctx.style.err_app(&app_name));
    }
    let git_url = match s(&app, "/git_url") {
        u if u.is_empty() => git::app_git_url(ctx.api.base(), &app_name),
        u => u,
    };
    if let Some(bp) = buildpack {
        let action = Action::start(&format!("Setting buildpack to {bp}"));
        ctx.api.put(
            &app_path(&app_name, &["buildpack-installations"]),
            &json!({ "updates": [{ "buildpack": bp }] }),
        )?;
        action.done("");
    }
    if ctx.json {
        print_json(&app);
    } else {
        println!("{} | {}", s(&app, "/web_url"), git_url);
    }
    if !no_remote && git::in_repo(None) {
        let remote = ctx.remote_name();
        git::set_remote(None, remote, &git_url)?;
        configure_credential_helper(ctx)?;
        eprintln!("Git remote {remote} added");
    }
    Ok(())
}

pub fn info(ctx: &Ctx, name: Option<String>) -> CliResult<()> {
    let app_name = match name {
        Some(n) => n,
        None => ctx.app()?,
    };
    let app = ctx.api.get(&app_path(&app_name, &[]))?;
    // Like the Heroku CLI, the side lists are best-effort.
    let addons = ctx
        .api
        .get(&app_path(&app_name, &["addons"]))
        .unwrap_or(json!([]));
    let collaborators = ctx
        .api
        .get_all(&app_path(&app_name, &["collaborators"]), None)
        .unwrap_or_default();
    let dynos = ctx
        .api
        .get(&app_path(&app_name, &["dynos"]))
        .unwrap_or(json!([]));
    if ctx.json {
        print_json(&json!({
            "app": app, "addons": addons, "collaborators": collaborators, "dynos": dynos,
        }));
        return Ok(());
    }
    let list = |v: &Value, ptr: &str| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| s(x, ptr))
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let owner = s(&app, "/owner/email");
    let collab: Vec<String> = collaborators
        .iter()
        .map(|c| s(c, "/user/email"))
        .filter(|e| *e != owner && !e.is_empty())
        .collect();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for t in list(&dynos, "/type") {
        *counts.entry(t).or_default() += 1;
    }
    let dyno_text: Vec<String> = counts.iter().map(|(t, n)| format!("{t}: {n}")).collect();
    ctx.style.header(&s(&app, "/name"));
    let mut rows = vec![
        ("Addons", list(&addons, "/plan/name").join("\n")),
        ("Collaborators", collab.join("\n")),
        ("Dynos", dyno_text.join("\n")),
        ("Git URL", s(&app, "/git_url")),
        ("Maintenance", s(&app, "/maintenance")),
        ("Owner", owner.clone()),
        ("Region", s(&app, "/region/name")),
        (
            "Released At",
            crate::output::format_time(&s(&app, "/released_at")),
        ),
        ("Slug Size", human_size(&app, "/slug_size")),
        ("Stack", s(&app, "/stack/name")),
        ("Web URL", s(&app, "/web_url")),
    ];
    rows.retain(|(_, v)| !v.is_empty());
    ctx.style.object(&rows);
    Ok(())
}

fn human_size(v: &Value, ptr: &str) -> String {
    match v.pointer(ptr).and_then(Value::as_u64) {
        Some(b) if b >= 1024 * 1024 => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
        Some(b) if b >= 1024 => format!("{:.1} KB", b as f64 / 1024.0),
        Some(b) => format!("{b} B"),
        None => String::new(),
    }
}

/// Remotes in the current repository that point at `app`.
fn remotes_for(ctx: &Ctx, app: &str) -> Vec<(String, String)> {
    if !git::in_repo(None) {
        return Vec::new();
    }
    git::remotes(None)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, url)| app_from_named_remote(ctx.api.base(), url).as_deref() == Some(app))
        .filter(|(name, url)| {
            // A loosely matched URL only counts on the remote the user told us about.
            git::app_from_remote_url(ctx.api.base(), url).is_some() || name == ctx.remote_name()
        })
        .collect()
}

pub fn destroy(ctx: &Ctx, name: Option<String>, confirm: Option<String>) -> CliResult<()> {
    let app = match name {
        Some(n) => n,
        None => ctx.app()?,
    };
    let confirmed = match confirm {
        Some(c) => c == app,
        None if std::io::stdin().is_terminal() => {
            eprintln!(
                " ▸    WARNING: This will delete {} including all add-ons.",
                ctx.style.err_app(&app)
            );
            eprint!(" ▸    To proceed, type {app} or re-run this command with --confirm {app}\n> ");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim() == app
        }
        None => false,
    };
    if !confirmed {
        return Err(CliError::usage(format!(
            "This command permanently destroys {app} and cannot be undone. Confirm with --confirm {app}."
        )));
    }
    let action = Action::start(&format!(
        "Destroying {} (including all add-ons)",
        ctx.style.err_app(&app)
    ));
    let body = ctx.api.delete(&app_path(&app, &[]))?;
    action.done("");
    for (remote, _) in remotes_for(ctx, &app) {
        git::git_checked(None, &["remote", "remove", &remote])?;
        eprintln!("Git remote {remote} removed");
    }
    if ctx.json {
        print_json(&body);
    }
    Ok(())
}

pub fn rename(ctx: &Ctx, new_name: &str) -> CliResult<()> {
    let old = ctx.app()?;
    let action = Action::start(&format!(
        "Renaming {} to {}",
        ctx.style.err_app(&old),
        ctx.style.err_app(new_name)
    ));
    let app = ctx
        .api
        .patch(&app_path(&old, &[]), &json!({ "name": new_name }))?;
    action.done("");
    let git_url = git::app_git_url(ctx.api.base(), &s(&app, "/name"));
    if ctx.json {
        print_json(&app);
    } else {
        println!("{} | {}", s(&app, "/web_url"), s(&app, "/git_url"));
    }
    for (remote, _) in remotes_for(ctx, &old) {
        git::git_checked(None, &["remote", "set-url", &remote, &git_url])?;
        eprintln!("Git remote {remote} updated");
    }
    Ok(())
}

/// Makes git ask `hoist git:credentials` for the token when talking to our API.
fn configure_credential_helper(ctx: &Ctx) -> CliResult<()> {
    let key = format!("credential.{}.helper", ctx.api.base());
    git::git_checked(
        None,
        &["config", "--local", &key, &git::credential_helper()],
    )?;
    Ok(())
}

pub fn git_remote(ctx: &Ctx) -> CliResult<()> {
    if !git::in_repo(None) {
        return Err(CliError::usage(
            "Not inside a git repository. Run \"git init\" first, or cd into your app's repository.",
        ));
    }
    let app = ctx.app()?;
    let info = ctx.api.get(&app_path(&app, &[]))?;
    let url = git::app_git_url(ctx.api.base(), &s(&info, "/name"));
    let remote = ctx.remote_name();
    git::set_remote(None, remote, &url)?;
    configure_credential_helper(ctx)?;
    println!("set git remote {remote} to {url}");
    Ok(())
}

pub fn open(ctx: &Ctx, path: Option<String>) -> CliResult<()> {
    let app = ctx.app()?;
    let info = ctx.api.get(&app_path(&app, &[]))?;
    let mut url = s(&info, "/web_url");
    if let Some(p) = path {
        url = format!(
            "{}/{}",
            url.trim_end_matches('/'),
            p.trim_start_matches('/')
        );
    }
    println!("{url}");
    // Best effort: there may be no browser (a server, CI); the URL is printed anyway.
    let _ = std::process::Command::new("xdg-open")
        .arg(&url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    Ok(())
}

pub fn git_clone(ctx: &Ctx, directory: Option<std::path::PathBuf>) -> CliResult<()> {
    let app = ctx
        .app_flag()
        .map(str::to_string)
        .ok_or_else(|| CliError::usage("Which app? Use hoist git:clone -a APP [DIRECTORY]."))?;
    let info = ctx.api.get(&app_path(&app, &[]))?;
    let name = s(&info, "/name");
    let url = git::app_git_url(ctx.api.base(), &name);
    let dir = directory.unwrap_or_else(|| std::path::PathBuf::from(&name));
    let dir_text = dir.to_string_lossy().into_owned();
    // git prints its own progress; the credential helper is passed for this clone
    // and then saved in the new repository's config.
    let helper = format!(
        "credential.{}.helper={}",
        ctx.api.base(),
        git::credential_helper()
    );
    let status = std::process::Command::new("git")
        .args([
            "-c",
            &helper,
            "clone",
            "-o",
            ctx.remote_name(),
            &url,
            &dir_text,
        ])
        .status()
        .map_err(|e| CliError::failed(format!("Could not run git: {e}")))?;
    if !status.success() {
        return Err(CliError::failed(format!("git clone {url} failed.")));
    }
    let key = format!("credential.{}.helper", ctx.api.base());
    git::git_checked(
        Some(&dir),
        &["config", "--local", &key, &git::credential_helper()],
    )?;
    Ok(())
}
