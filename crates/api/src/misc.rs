//! OAuth tokens, accounts, features, buildpack installations, and the small
//! endpoints the Heroku CLI calls along the way (pipeline couplings, SNI endpoints).

use crate::auth::credentials;
use crate::error::{ApiError, ApiResult};
use crate::{app_for, json, parse_body, views, Auth, SharedState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
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
        .route("/accounts", post(create_account))
        .route("/apps/{app}/pipeline-couplings", get(pipeline_coupling))
        .route("/apps/{app}/sni-endpoints", get(empty_list))
        .route("/apps/{app}/features", get(features))
        .route(
            "/apps/{app}/features/{feature}",
            get(feature_info).patch(update_feature),
        )
        .route(
            "/apps/{app}/buildpack-installations",
            get(buildpack_installations).put(set_buildpack_installations),
        )
        .route("/apps/{app}/addons", get(app_addons))
        .route("/apps/{app}/addon-attachments", get(app_attachments))
        .route("/addon-attachments", get(my_attachments))
        .route("/addons", get(my_addons))
        .route("/regions", get(regions))
        .route("/platform/ca-certificate", get(platform_ca))
        .route("/stacks", get(stacks))
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
