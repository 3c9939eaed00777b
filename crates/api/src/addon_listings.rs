//! Listings of add-ons and attachments, per app and across the caller's apps.

use crate::error::ApiResult;
use crate::{app_for, json, views, Auth, SharedState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::Value;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/apps/{app}/addons", get(app_addons))
        .route("/apps/{app}/addon-attachments", get(app_attachments))
        .route("/addon-attachments", get(my_attachments))
        .route("/addons", get(my_addons))
}

async fn app_addons(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let items: Vec<Value> = st
        .store
        .addons_for_app(&app.id)?
        .iter()
        .map(|a| crate::addons::addon_json(&st, a))
        .collect();
    Ok(json(StatusCode::OK, items))
}

async fn app_attachments(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let items: Vec<Value> = st
        .store
        .attachments_for_app(&app.id)?
        .iter()
        .map(|t| views::attachment(&st.cfg, t))
        .collect();
    Ok(json(StatusCode::OK, items))
}

async fn my_attachments(State(st): State<SharedState>, Auth(who): Auth) -> ApiResult<Response> {
    let mut items = Vec::new();
    for app in st.store.apps_for(&who.id)? {
        items.extend(
            st.store
                .attachments_for_app(&app.id)?
                .iter()
                .map(|t| views::attachment(&st.cfg, t)),
        );
    }
    Ok(json(StatusCode::OK, items))
}

async fn my_addons(State(st): State<SharedState>, Auth(who): Auth) -> ApiResult<Response> {
    let mut items = Vec::new();
    for app in st.store.apps_for(&who.id)? {
        items.extend(
            st.store
                .addons_for_app(&app.id)?
                .iter()
                .filter(|a| a.app_id == app.id)
                .map(|a| crate::addons::addon_json(&st, a)),
        );
    }
    Ok(json(StatusCode::OK, items))
}
