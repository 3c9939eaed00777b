//! buildpacks, buildpacks:set, :add, :remove and :clear. Every change PUTs the
//! whole ordered list, as the API replaces it.

use super::app_path;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::output::{print_json, s};
use serde_json::{json, Value};

fn current(ctx: &Ctx, app: &str) -> CliResult<Vec<String>> {
    let mut items = ctx
        .api
        .get_all(&app_path(app, &["buildpack-installations"]), None)?;
    items.sort_by_key(|i| i.get("ordinal").and_then(Value::as_i64).unwrap_or(0));
    Ok(items.iter().map(|i| s(i, "/buildpack/url")).collect())
}

fn save(ctx: &Ctx, app: &str, list: &[String]) -> CliResult<Value> {
    let updates: Vec<Value> = list.iter().map(|u| json!({ "buildpack": u })).collect();
    ctx.api.put(
        &app_path(app, &["buildpack-installations"]),
        &json!({ "updates": updates }),
    )
}

fn already_set(url: &str) -> CliError {
    CliError::usage(format!("The buildpack {url} is already set on your app."))
}

fn check_index(index: usize, max: usize) -> CliResult<usize> {
    if index == 0 || index > max {
        return Err(CliError::usage(format!(
            "Invalid index {index}: use a position from 1 to {max}."
        )));
    }
    Ok(index - 1)
}

/// `buildpacks:set`: replace the buildpack at `index` (1-based, default 1).
pub fn apply_set(list: &[String], url: &str, index: Option<usize>) -> CliResult<Vec<String>> {
    let index = index.unwrap_or(1);
    if let Some(pos) = list.iter().position(|u| u == url) {
        if pos + 1 != index {
            return Err(already_set(url));
        }
    }
    let i = check_index(index, list.len() + 1)?;
    let mut out = list.to_vec();
    if i == out.len() {
        out.push(url.to_string());
    } else {
        out[i] = url.to_string();
    }
    Ok(out)
}

/// `buildpacks:add`: insert at `index` (1-based) or append.
pub fn apply_add(list: &[String], url: &str, index: Option<usize>) -> CliResult<Vec<String>> {
    if list.iter().any(|u| u == url) {
        return Err(already_set(url));
    }
    let mut out = list.to_vec();
    match index {
        None => out.push(url.to_string()),
        Some(n) => {
            let i = check_index(n, list.len() + 1)?;
            out.insert(i, url.to_string());
        }
    }
    Ok(out)
}

/// `buildpacks:remove`: by URL or by index, not both.
pub fn apply_remove(
    list: &[String],
    url: Option<&str>,
    index: Option<usize>,
) -> CliResult<Vec<String>> {
    let mut out = list.to_vec();
    match (url, index) {
        (Some(_), Some(_)) => Err(CliError::usage(
            "Give either a buildpack URL or -i INDEX, not both.",
        )),
        (None, None) => Err(CliError::usage(
            "Give the buildpack URL or -i INDEX to remove.",
        )),
        (_, Some(n)) => {
            if list.is_empty() {
                return Err(CliError::usage(
                    "No buildpacks were found. Nothing was removed.",
                ));
            }
            out.remove(check_index(n, list.len())?);
            Ok(out)
        }
        (Some(u), None) => {
            let pos = list.iter().position(|x| x == u).ok_or_else(|| {
                CliError::usage(format!("Buildpack {u} not found. Nothing was removed."))
            })?;
            out.remove(pos);
            Ok(out)
        }
    }
}

fn print_list(ctx: &Ctx, app: &str, list: &[String]) {
    match list {
        [] => println!("{} has no Buildpacks.", ctx.style.app(app)),
        [one] => {
            ctx.style
                .header(&format!("{} Buildpack URL", ctx.style.app(app)));
            println!("{one}");
        }
        many => {
            ctx.style
                .header(&format!("{} Buildpack URLs", ctx.style.app(app)));
            for (i, u) in many.iter().enumerate() {
                println!("{}. {u}", i + 1);
            }
        }
    }
}

fn report_change(ctx: &Ctx, app: &str, verb: &str, saved: &Value, list: &[String]) {
    if ctx.json {
        print_json(saved);
        return;
    }
    match list {
        [] => println!(
            "Buildpack {verb}. {} has no buildpacks; the next build detects them.",
            ctx.style.app(app)
        ),
        [one] => println!(
            "Buildpack {verb}. Next release on {} will use {one}.",
            ctx.style.app(app)
        ),
        many => {
            println!(
                "Buildpack {verb}. Next release on {} will use:",
                ctx.style.app(app)
            );
            for (i, u) in many.iter().enumerate() {
                println!("  {}. {u}", i + 1);
            }
        }
    }
    println!(
        "Run git push {} main to create a new release using these buildpacks.",
        ctx.remote_name()
    );
}

pub fn list(ctx: &Ctx) -> CliResult<()> {
    let app = ctx.app()?;
    if ctx.json {
        let items = ctx
            .api
            .get_all(&app_path(&app, &["buildpack-installations"]), None)?;
        print_json(&Value::Array(items));
        return Ok(());
    }
    let list = current(ctx, &app)?;
    print_list(ctx, &app, &list);
    Ok(())
}

pub fn set(ctx: &Ctx, url: &str, index: Option<usize>) -> CliResult<()> {
    let app = ctx.app()?;
    let list = apply_set(&current(ctx, &app)?, url, index)?;
    let saved = save(ctx, &app, &list)?;
    report_change(ctx, &app, "set", &saved, &list);
    Ok(())
}

pub fn add(ctx: &Ctx, url: &str, index: Option<usize>) -> CliResult<()> {
    let app = ctx.app()?;
    let list = apply_add(&current(ctx, &app)?, url, index)?;
    let saved = save(ctx, &app, &list)?;
    report_change(ctx, &app, "added", &saved, &list);
    Ok(())
}

pub fn remove(ctx: &Ctx, url: Option<String>, index: Option<usize>) -> CliResult<()> {
    let app = ctx.app()?;
    let list = apply_remove(&current(ctx, &app)?, url.as_deref(), index)?;
    let saved = save(ctx, &app, &list)?;
    report_change(ctx, &app, "removed", &saved, &list);
    Ok(())
}

pub fn clear(ctx: &Ctx) -> CliResult<()> {
    let app = ctx.app()?;
    let saved = save(ctx, &app, &[])?;
    if ctx.json {
        print_json(&saved);
        return Ok(());
    }
    println!(
        "Buildpacks cleared. Next release on {} will detect buildpacks normally.",
        ctx.style.app(&app)
    );
    if let Ok(vars) = ctx.api.get(&app_path(&app, &["config-vars"])) {
        for k in ["BUILDPACK_URL", "LANGUAGE_PACK_URL"] {
            if vars.get(k).is_some() {
                eprintln!(
                    " ▸    The {k} config var is still set and will be used for the next release."
                );
            }
        }
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
    fn set_add_remove_semantics() {
        assert_eq!(apply_set(&[], "a", None).unwrap(), v(&["a"]));
        assert_eq!(
            apply_set(&v(&["a", "b"]), "c", None).unwrap(),
            v(&["c", "b"])
        );
        assert_eq!(
            apply_set(&v(&["a", "b"]), "c", Some(2)).unwrap(),
            v(&["a", "c"])
        );
        assert_eq!(
            apply_set(&v(&["a", "b"]), "c", Some(3)).unwrap(),
            v(&["a", "b", "c"])
        );
        assert!(apply_set(&v(&["a", "b"]), "c", Some(5)).is_err());
        assert!(apply_set(&v(&["a", "b"]), "b", Some(1)).is_err());
        assert_eq!(
            apply_set(&v(&["a", "b"]), "a", Some(1)).unwrap(),
            v(&["a", "b"])
        );

        assert_eq!(apply_add(&v(&["a"]), "b", None).unwrap(), v(&["a", "b"]));
        assert_eq!(apply_add(&v(&["a"]), "b", Some(1)).unwrap(), v(&["b", "a"]));
        assert!(apply_add(&v(&["a"]), "a", None).is_err());
        assert!(apply_add(&v(&["a"]), "b", Some(0)).is_err());

        assert_eq!(
            apply_remove(&v(&["a", "b"]), Some("a"), None).unwrap(),
            v(&["b"])
        );
        assert_eq!(
            apply_remove(&v(&["a", "b"]), None, Some(2)).unwrap(),
            v(&["a"])
        );
        assert!(apply_remove(&v(&["a", "b"]), Some("c"), None).is_err());
        assert!(apply_remove(&v(&["a", "b"]), None, Some(3)).is_err());
        assert!(apply_remove(&v(&["a"]), Some("a"), Some(1)).is_err());
        assert!(apply_remove(&v(&["a"]), None, None).is_err());
    }
}
