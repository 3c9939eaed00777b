//! Listings of add-ons and attachments, per app and across the caller's apps.

use crate::error::ApiResult;
use crate::{app_for, json, views, Auth, SharedState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use hoist_store::Account;
use serde_json::Value;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/apps/{app}/addons", get(app_addons))
        .route("/apps/{app}/addon-attachments", get(app_attachments))
        .route("/addon-attachments", get(my_attachments))
        .route("/addons", get(my_addons))
}

/// The add-ons on an app as the API shows them: those it owns, and unless
/// `owned_only`, those attached to it from other apps.
fn addons_json(st: &SharedState, app_id: &str, owned_only: bool) -> ApiResult<Vec<Value>> {
    Ok(st
        .store
        .addons_for_app(app_id)?
        .iter()
        .filter(|a| !owned_only || a.app_id == app_id)
        .map(|a| crate::addons::addon_json(st, a))
        .collect())
}

fn attachments_json(st: &SharedState, app_id: &str) -> ApiResult<Vec<Value>> {
    Ok(st
        .store
        .attachments_for_app(app_id)?
        .iter()
        .map(|t| views::attachment(&st.cfg, t))
        .collect())
}

/// `list` for each of the caller's apps, as one listing.
fn across_apps(
    st: &SharedState,
    who: &Account,
    list: impl Fn(&str) -> ApiResult<Vec<Value>>,
) -> ApiResult<Response> {
    let mut items = Vec::new();
    for app in st.store.apps_for(&who.id)? {
        items.extend(list(&app.id)?);
    }
    Ok(json(StatusCode::OK, items))
}

async fn app_addons(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    Ok(json(StatusCode::OK, addons_json(&st, &app.id, false)?))
}

async fn app_attachments(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    Ok(json(StatusCode::OK, attachments_json(&st, &app.id)?))
}

async fn my_attachments(State(st): State<SharedState>, Auth(who): Auth) -> ApiResult<Response> {
    across_apps(&st, &who, |app_id| attachments_json(&st, app_id))
}

/// Each add-on once: under the app that owns it.
async fn my_addons(State(st): State<SharedState>, Auth(who): Auth) -> ApiResult<Response> {
    across_apps(&st, &who, |app_id| addons_json(&st, app_id, true))
}
