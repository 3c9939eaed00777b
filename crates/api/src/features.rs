//! App features (`heroku features`): the ones Hoist knows and their per-app state.

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
    Router::new()
        .route("/apps/{app}/features", get(features))
        .route(
            "/apps/{app}/features/{feature}",
            get(feature_info).patch(update_feature),
        )
}

const FEATURES: &[(&str, &str)] = &[(
    "preboot",
    "Start new web dynos and wait until they are up before stopping the old ones.",
)];

fn feature(name: &str, description: &str, enabled: bool) -> Value {
    json!({
        "id": name, "name": name, "description": description, "enabled": enabled,
        "state": "general", "kind": "app", "doc_url": "", "display_name": name,
        "feedback_email": "", "created_at": null, "updated_at": null,
    })
}

async fn features(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let mut out = Vec::new();
    for (name, d) in FEATURES {
        out.push(feature(name, d, st.store.feature(&app.id, name)?));
    }
    Ok(json(StatusCode::OK, out))
}

fn known_feature(name: &str) -> ApiResult<&'static (&'static str, &'static str)> {
    FEATURES
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or(ApiError::not_found("feature"))
}

async fn feature_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let (n, d) = known_feature(&name)?;
    Ok(json(
        StatusCode::OK,
        feature(n, d, st.store.feature(&app.id, n)?),
    ))
}

#[derive(Deserialize)]
struct UpdateFeature {
    enabled: bool,
}

async fn update_feature(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let (n, d) = known_feature(&name)?;
    let req: UpdateFeature = parse_body(&body)?;
    st.store.set_feature(&app.id, n, req.enabled)?;
    Ok(json(StatusCode::OK, feature(n, d, req.enabled)))
}
