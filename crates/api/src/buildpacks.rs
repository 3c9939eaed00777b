//! An app's buildpack installations (`heroku buildpacks`) and the rule for what a
//! buildpack reference may be.

use crate::error::{ApiError, ApiResult};
use crate::{app_for, json, parse_body, Auth, SharedState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<SharedState> {
    Router::new().route(
        "/apps/{app}/buildpack-installations",
        get(buildpack_installations).put(set_buildpack_installations),
    )
}

fn installations(urls: &[String]) -> Value {
    Value::Array(
        urls.iter()
            .enumerate()
            .map(|(i, u)| json!({"ordinal": i, "buildpack": {"url": u, "name": u}}))
            .collect(),
    )
}

async fn buildpack_installations(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    Ok(json(
        StatusCode::OK,
        installations(&st.store.buildpacks(&app.id)?),
    ))
}

#[derive(Deserialize)]
struct SetBuildpacks {
    updates: Vec<BuildpackUpdate>,
}

#[derive(Deserialize)]
struct BuildpackUpdate {
    buildpack: String,
}

/// Validates one buildpack reference: a built-in name, an absolute path, or a URL.
pub fn validate_buildpack(b: &str) -> ApiResult<()> {
    let ok = !b.is_empty()
        && b.len() <= 2048
        && !b.chars().any(char::is_control)
        && (b.starts_with("https://")
            || b.starts_with("http://")
            || b.starts_with("git://")
            || b.starts_with("file://")
            || b.starts_with('/')
            || b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"/-_.".contains(&c)));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Invalid buildpack {:?}: use a built-in name (heroku/nodejs), an absolute path, or an http(s)/git URL.",
            b.chars().take(100).collect::<String>()
        )))
    }
}

async fn set_buildpack_installations(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let req: SetBuildpacks = parse_body(&body)?;
    if req.updates.len() > 20 {
        return Err(ApiError::invalid("At most 20 buildpacks per app."));
    }
    let urls: Vec<String> = req
        .updates
        .into_iter()
        .map(|u| u.buildpack.trim().to_string())
        .collect();
    for u in &urls {
        validate_buildpack(u)?;
    }
    let saved = st.store.set_buildpacks(&app.id, &urls)?;
    Ok(json(StatusCode::OK, installations(&saved)))
}
