//! Authentication: `Authorization: Bearer <token>`, or HTTP Basic with any user name
//! and the token as password (what git's credential helpers send).

use crate::error::ApiError;
use crate::SharedState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::Engine;
use hoist_store::Account;

pub struct Auth(pub Account);

/// The bearer token or basic-auth password of a request, if any.
pub fn credentials(headers: &HeaderMap) -> Option<(Option<String>, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    if let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        return Some((None, token.trim().to_string()));
    }
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((Some(user.to_string()), pass.to_string()))
}

/// Resolves the account behind a request's token.
pub fn authenticate(state: &SharedState, headers: &HeaderMap) -> Result<Account, ApiError> {
    let (_, token) = credentials(headers).ok_or_else(ApiError::unauthorized)?;
    if token.is_empty() || token.len() > 512 {
        return Err(ApiError::unauthorized());
    }
    state
        .store
        .authenticate(&token)?
        .ok_or_else(ApiError::unauthorized)
}

impl FromRequestParts<SharedState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, ApiError> {
        authenticate(state, &parts.headers).map(Auth)
    }
}
