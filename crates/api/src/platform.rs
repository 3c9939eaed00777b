//! What the platform itself offers: regions, stacks, and its CA certificate.

use crate::error::{ApiError, ApiResult};
use crate::{json, views, Auth, SharedState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::json;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/regions", get(regions))
        .route("/platform/ca-certificate", get(platform_ca))
        .route("/stacks", get(stacks))
}

/// Where the server keeps the CA that signs its rendezvous certificates.
pub const PLATFORM_CA_FILE: &str = "ca.pem";

/// The platform CA (Hoist's own endpoint): `hoist login` pins it so that `hoist run`
/// can check the rendezvous certificate from any machine. Signed-in users only: it is
/// no secret, but this way the CLI gets it over the channel it already trusts.
async fn platform_ca(State(st): State<SharedState>, Auth(_): Auth) -> ApiResult<Response> {
    let pem = std::fs::read_to_string(st.data_dir.join(PLATFORM_CA_FILE))
        .map_err(|_| ApiError::not_found("platform CA"))?;
    Ok(json(StatusCode::OK, json!({ "certificate_chain": pem })))
}

async fn regions() -> Response {
    json(
        StatusCode::OK,
        json!([
            {"id": "us", "name": "us", "description": "This machine", "country": "", "locale": "", "private_capable": false},
            {"id": "eu", "name": "eu", "description": "This machine", "country": "", "locale": "", "private_capable": false},
        ]),
    )
}

async fn stacks(State(st): State<SharedState>) -> Response {
    json(StatusCode::OK, json!([views::platform_stack(&st.cfg)]))
}
