//! OAuth authorizations (API tokens) and sessions, as `heroku login` and
//! `heroku authorizations` use them.

use crate::auth::credentials;
use crate::error::{ApiError, ApiResult};
use crate::{json, parse_body, Auth, SharedState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route(
            "/oauth/authorizations",
            get(list_authorizations).post(create_authorization),
        )
        .route(
            "/oauth/authorizations/{id}",
            delete(revoke_authorization).get(authorization_info),
        )
        .route(
            "/oauth/sessions/{id}",
            delete(|| async { json(StatusCode::OK, json!({})) }),
        )
}

fn authorization(
    id: &str,
    description: &str,
    created_at: &str,
    who: &hoist_store::Account,
    token: Option<&str>,
) -> Value {
    json!({
        "id": id, "description": description, "scope": ["global"],
        "access_token": {"id": id, "token": token, "expires_in": null},
        "refresh_token": null, "grant": null, "client": null, "session": null,
        "user": {"id": who.id, "email": who.email, "full_name": null},
        "created_at": created_at, "updated_at": created_at,
    })
}

#[derive(Deserialize, Default)]
struct CreateAuthorization {
    description: Option<String>,
}

/// `heroku login -i` sends Basic email:password; an existing token may also mint one.
async fn create_authorization(
    State(st): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let (user, secret) = credentials(&headers).ok_or_else(ApiError::unauthorized)?;
    let who = match user {
        Some(email) if email.contains('@') => st
            .store
            .verify_password(&email, &secret)?
            .ok_or_else(|| ApiError::unauthorized().with_message("Invalid email or password."))?,
        _ => st
            .store
            .authenticate(&secret)?
            .ok_or_else(ApiError::unauthorized)?,
    };
    let req: CreateAuthorization = parse_body(&body)?;
    let description = req.description.unwrap_or_else(|| "Hoist CLI".into());
    if description.len() > 256 {
        return Err(ApiError::invalid(
            "description is limited to 256 characters.",
        ));
    }
    let (id, token) = st.store.issue_token(&who.id, &description)?;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Ok(json(
        StatusCode::CREATED,
        authorization(&id, &description, &now, &who, Some(&token)),
    ))
}

/// Tokens are stored hashed, so listings never include their values.
async fn list_authorizations(
    State(st): State<SharedState>,
    Auth(who): Auth,
) -> ApiResult<Response> {
    let items: Vec<Value> = st
        .store
        .tokens(&who.id)?
        .iter()
        .map(|(id, d, c)| authorization(id, d, c, &who, None))
        .collect();
    Ok(json(StatusCode::OK, items))
}

async fn authorization_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (id, d, c) = st
        .store
        .tokens(&who.id)?
        .into_iter()
        .find(|(i, _, _)| *i == id)
        .ok_or(ApiError::not_found("authorization"))?;
    Ok(json(StatusCode::OK, authorization(&id, &d, &c, &who, None)))
}

async fn revoke_authorization(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    st.store.revoke_token(&who.id, &id)?;
    Ok(json(StatusCode::OK, json!({"id": id})))
}
