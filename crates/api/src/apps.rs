//! Account, apps, config vars, collaborators and domains.

use crate::error::{ApiError, ApiResult};
use crate::{app_for, json, paginate, parse_body, views, Auth, SharedState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get};
use axum::Router;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/account", get(account))
        .route("/users/~", get(account))
        .route("/apps", get(list_all_apps).post(create_app))
        .route("/users/{user}/apps", get(list_my_apps))
        .route(
            "/apps/{app}",
            get(app_info).patch(update_app).delete(destroy_app),
        )
        .route(
            "/apps/{app}/config-vars",
            get(config_vars).patch(update_config),
        )
        .route(
            "/apps/{app}/collaborators",
            get(collaborators).post(add_collaborator),
        )
        .route(
            "/apps/{app}/collaborators/{who}",
            delete(remove_collaborator).get(collaborator_info),
        )
        .route("/apps/{app}/domains", get(domains).post(add_domain))
        .route(
            "/apps/{app}/domains/{domain}",
            get(domain_info).delete(remove_domain),
        )
}

async fn account(Auth(who): Auth) -> Response {
    json(StatusCode::OK, views::account(&who))
}

/// `/apps`: every app the caller can see (all apps for the platform owner).
async fn list_all_apps(
    State(st): State<SharedState>,
    Auth(who): Auth,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let apps = if who.is_owner {
        st.store.all_apps()?
    } else {
        st.store.apps_for(&who.id)?
    };
    let items = apps.iter().map(|a| views::app(&st.cfg, a)).collect();
    paginate(
        &headers,
        "id",
        &["id", "name", "created_at", "updated_at"],
        items,
    )
}

async fn list_my_apps(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if user != "~" && user != who.email && user != who.id {
        return Err(ApiError::forbidden("You can only list your own apps."));
    }
    let items = st
        .store
        .apps_for(&who.id)?
        .iter()
        .map(|a| views::app(&st.cfg, a))
        .collect();
    paginate(
        &headers,
        "id",
        &["id", "name", "created_at", "updated_at"],
        items,
    )
}

/// Hoist has one stack, the host's distribution: any other is refused, never ignored.
fn unavailable_stack(st: &crate::ApiState, shown: &str) -> ApiError {
    ApiError::invalid(format!(
        "Stack {shown} is not available: this platform has one stack, {}, the host's own distribution.",
        st.cfg.stack
    ))
}

#[derive(Deserialize)]
struct CreateApp {
    name: Option<String>,
    region: Option<String>,
    stack: Option<String>,
}

async fn create_app(
    State(st): State<SharedState>,
    Auth(who): Auth,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateApp = parse_body(&body)?;
    let region = req.region.unwrap_or_else(|| "us".to_string());
    if !matches!(region.as_str(), "us" | "eu") {
        return Err(ApiError::invalid(format!(
            "Unknown region {region:?}; this platform has regions us and eu (both local)."
        )));
    }
    if let Some(wanted) = &req.stack {
        if !views::is_platform_stack(&st.cfg, wanted) {
            return Err(unavailable_stack(&st, &format!("{wanted:?}")));
        }
    }
    let stack = st.cfg.stack.clone();
    let app = st
        .store
        .create_app(req.name.as_deref(), &who.id, &stack, &region)?;
    st.platform.app_created(&app.id).await;
    st.platform.api_event(
        &app.id,
        &format!("Release v1 created by user {}", who.email),
    );
    Ok(json(StatusCode::CREATED, views::app(&st.cfg, &app)))
}

async fn app_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    Ok(json(StatusCode::OK, views::app(&st.cfg, &app)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateApp {
    maintenance: Option<bool>,
    name: Option<String>,
    build_stack: Option<Value>,
}

async fn update_app(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut app = app_for(&st, &who, &app)?;
    let req: UpdateApp = parse_body(&body)?;
    // `heroku stack:set NAME`: there is one stack (the host's); setting it is a no-op,
    // any other is refused before anything changes.
    if let Some(wanted) = &req.build_stack {
        let name = match wanted {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o
                .get("name")
                .or_else(|| o.get("id"))
                .and_then(Value::as_str),
            _ => None,
        };
        if !name.is_some_and(|n| views::is_platform_stack(&st.cfg, n)) {
            return Err(unavailable_stack(
                &st,
                &name.map_or_else(|| wanted.to_string(), |n| format!("{n:?}")),
            ));
        }
    }
    if let Some(name) = req.name {
        if app.owner_id != who.id {
            return Err(ApiError::forbidden("Only the app owner can rename it."));
        }
        app = st.store.rename_app(&app.id, &name)?;
    }
    if let Some(m) = req.maintenance {
        app = st.store.set_maintenance(&app.id, m)?;
        st.platform.api_event(
            &app.id,
            &format!(
                "Maintenance mode {} by user {}",
                if m { "enabled" } else { "disabled" },
                who.email
            ),
        );
    }
    st.platform.app_changed(&app.id);
    Ok(json(StatusCode::OK, views::app(&st.cfg, &app)))
}

async fn destroy_app(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    if app.owner_id != who.id && !who.is_owner {
        return Err(ApiError::forbidden(format!(
            "Only the owner ({}) can destroy {}.",
            app.owner_email, app.name
        )));
    }
    let releases = st.store.destroy_app(&app.id, &who.id)?;
    // Returns once the app's dynos and their resources are gone.
    st.platform.app_destroyed(&app.id).await;
    crate::addons::released(&st, &who, &releases);
    // The app's add-ons were recorded for deprovisioning in the same transaction;
    // give them back before answering, so no old credential works afterwards.
    if let Some(reg) = &st.addons {
        crate::addons::finish_pending_deprovisions(&st.store, reg).await;
    }
    Ok(json(StatusCode::OK, views::app(&st.cfg, &app)))
}

async fn config_vars(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    Ok(json(StatusCode::OK, st.store.config_vars(&app.id)?))
}

async fn update_config(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let raw: Map<String, Value> = parse_body(&body)?;
    let mut changes = BTreeMap::new();
    for (k, v) in raw {
        let v = match v {
            Value::Null => None,
            Value::String(s) => Some(s),
            // Numbers and booleans are stringified like a shell would.
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                return Err(ApiError::invalid(format!(
                    "Config var {k} must be a string or null."
                )))
            }
        };
        changes.insert(k, v);
    }
    let (config, release) = st.store.update_config(&app.id, &changes, &who.id)?;
    if let Some(r) = release {
        st.platform
            .api_event(&app.id, &format!("{} by user {}", r.description, who.email));
        st.platform.api_event(
            &app.id,
            &format!("Release v{} created by user {}", r.version, who.email),
        );
        st.platform.app_changed(&app.id);
    }
    Ok(json(StatusCode::OK, config))
}

async fn collaborators(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let mut items = vec![views::owner_as_collaborator(&app)];
    items.extend(
        st.store
            .collaborators(&app.id)?
            .iter()
            .map(|c| views::collaborator(&app, c)),
    );
    paginate(&headers, "id", &["id", "email"], items)
}

async fn collaborator_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, ident)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let c = st
        .store
        .collaborators(&app.id)?
        .into_iter()
        .find(|c| c.email.eq_ignore_ascii_case(&ident) || c.id == ident)
        .ok_or(ApiError::not_found("collaborator"))?;
    Ok(json(StatusCode::OK, views::collaborator(&app, &c)))
}

async fn add_collaborator(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let req: Value = parse_body(&body)?;
    let email = match req.get("user") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("email")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("user.email is required."))?
            .to_string(),
        _ => return Err(ApiError::invalid("user is required (an email address).")),
    };
    let c = st.store.add_collaborator(&app, &email)?;
    st.platform.api_event(
        &app.id,
        &format!("{email} added as a collaborator by user {}", who.email),
    );
    Ok(json(StatusCode::CREATED, views::collaborator(&app, &c)))
}

async fn remove_collaborator(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, ident)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let c = st.store.remove_collaborator(&app.id, &ident)?;
    Ok(json(StatusCode::OK, views::collaborator(&app, &c)))
}

async fn domains(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let mut items = vec![views::default_domain(&st.cfg, &app)];
    items.extend(
        st.store
            .domains(&app.id)?
            .iter()
            .map(|d| views::domain(&st.cfg, &app, d)),
    );
    paginate(&headers, "id", &["id", "hostname"], items)
}

async fn domain_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, ident)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    if ident == app.id || ident == format!("{}.{}", app.name, st.cfg.domain) {
        return Ok(json(StatusCode::OK, views::default_domain(&st.cfg, &app)));
    }
    let d = st
        .store
        .domains(&app.id)?
        .into_iter()
        .find(|d| d.id == ident || d.hostname.eq_ignore_ascii_case(&ident))
        .ok_or(ApiError::not_found("domain"))?;
    Ok(json(StatusCode::OK, views::domain(&st.cfg, &app, &d)))
}

#[derive(Deserialize)]
struct AddDomain {
    hostname: String,
}

async fn add_domain(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let req: AddDomain = parse_body(&body)?;
    let api_host = url::Url::parse(&st.cfg.api_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string));
    let platform = hoist_types::PlatformHosts {
        domain: &st.cfg.domain,
        api_host: api_host.as_deref(),
    };
    let d = st.store.add_domain(&app.id, &req.hostname, &platform)?;
    st.platform.app_changed(&app.id);
    Ok(json(StatusCode::CREATED, views::domain(&st.cfg, &app, &d)))
}

async fn remove_domain(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, ident)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let d = st.store.remove_domain(&app.id, &ident)?;
    st.platform.app_changed(&app.id);
    Ok(json(StatusCode::OK, views::domain(&st.cfg, &app, &d)))
}
