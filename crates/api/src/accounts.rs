//! Creating accounts (a Hoist extension for the platform owner).

use crate::error::{ApiError, ApiResult};
use crate::{json, parse_body, views, Auth, SharedState};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Router<SharedState> {
    Router::new().route("/accounts", post(create_account))
}

#[derive(Deserialize)]
struct CreateAccount {
    email: String,
    password: Option<String>,
}

/// Hoist extension: the platform owner creates accounts; the response carries a
/// first API token for the new user.
async fn create_account(
    State(st): State<SharedState>,
    Auth(who): Auth,
    body: Bytes,
) -> ApiResult<Response> {
    if !who.is_owner {
        return Err(ApiError::forbidden(
            "Only the platform owner can create accounts.",
        ));
    }
    let req: CreateAccount = parse_body(&body)?;
    if req
        .password
        .as_ref()
        .is_some_and(|p| p.len() < 8 || p.len() > 1024)
    {
        return Err(ApiError::invalid(
            "Passwords must be 8 to 1024 characters long.",
        ));
    }
    let account = st
        .store
        .create_account(&req.email, req.password.as_deref(), false)?;
    let (_, token) = st
        .store
        .issue_token(&account.id, "created with the account")?;
    let mut body = views::account(&account);
    body["api_key"] = json!(token);
    Ok(json(StatusCode::CREATED, body))
}
