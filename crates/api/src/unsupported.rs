//! Heroku resources Hoist does not have, answered the way the Heroku CLI expects
//! when an app has none (pipeline couplings, SNI endpoints).

use crate::error::{ApiError, ApiResult};
use crate::{app_for, json, Auth, SharedState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/apps/{app}/pipeline-couplings", get(pipeline_coupling))
        .route("/apps/{app}/sni-endpoints", get(empty_list))
}

async fn empty_list(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    app_for(&st, &who, &app)?;
    Ok(json(StatusCode::OK, json!([])))
}

/// Hoist has no pipelines; the CLI expects 404 for an uncoupled app.
async fn pipeline_coupling(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    app_for(&st, &who, &app)?;
    Err(ApiError::not_found("pipeline coupling"))
}
