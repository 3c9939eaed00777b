//! Dyno operations (restart, stop, one-off dynos), log sessions, log drains and
//! metrics: the API side of the dyno manager and the log hub.

use crate::error::{ApiError, ApiResult};
use crate::{app_for, json, parse_body, views, Auth, OneOffDyno, Operations, SharedState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/apps/{app}/dynos/{dyno}/actions/stop", post(stop_dyno))
        .route(
            "/apps/{app}/formations/{ptype}/actions/stop",
            post(stop_type),
        )
        .route(
            "/apps/{app}/formation/{ptype}/actions/stop",
            post(stop_type),
        )
        .route("/apps/{app}/formations/{ptype}", delete(restart_type))
        .route("/apps/{app}/log-sessions", post(log_session))
        .route("/apps/{app}/log-drains", get(list_drains).post(add_drain))
        .route(
            "/apps/{app}/log-drains/{drain}",
            delete(remove_drain).get(drain_info),
        )
        .route("/apps/{app}/metrics", get(app_metrics))
        .route("/metrics", get(metrics))
}

fn ops(st: &SharedState) -> ApiResult<Arc<dyn Operations>> {
    st.ops
        .clone()
        .ok_or_else(|| ApiError::not_implemented("Dyno management"))
}

/// `DELETE /apps/{app}/dynos`: restart every dyno.
pub async fn restart_all(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    ops(&st)?.restart(&app.id, None);
    st.platform
        .api_event(&app.id, &format!("Restart all dynos by user {}", who.email));
    Ok(json(StatusCode::ACCEPTED, json!({})))
}

/// `DELETE /apps/{app}/dynos/{dyno}`: restart one dyno (or a type).
pub async fn restart_one(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, dyno)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    ops(&st)?.restart(&app.id, Some(&dyno));
    st.platform
        .api_event(&app.id, &format!("Restart {dyno} by user {}", who.email));
    Ok(json(StatusCode::ACCEPTED, json!({})))
}

async fn restart_type(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, ptype)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    if !st
        .store
        .formation(&app.id)?
        .iter()
        .any(|f| f.process_type == ptype)
    {
        return Err(ApiError::not_found("process type"));
    }
    ops(&st)?.restart(&app.id, Some(&ptype));
    st.platform.api_event(
        &app.id,
        &format!("Restart {ptype} dynos by user {}", who.email),
    );
    Ok(json(StatusCode::ACCEPTED, json!({})))
}

async fn stop_dyno(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, dyno)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let d = st.store.dyno(&app.id, &dyno)?;
    ops(&st)?.stop(&app.id, &d.name);
    Ok(json(StatusCode::ACCEPTED, json!({})))
}

async fn stop_type(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, ptype)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    ops(&st)?.stop(&app.id, &ptype);
    Ok(json(StatusCode::ACCEPTED, json!({})))
}

#[derive(Deserialize)]
struct CreateDyno {
    command: String,
    #[serde(default)]
    attach: bool,
    #[serde(default)]
    env: BTreeMap<String, Value>,
    size: Option<String>,
    #[serde(rename = "type")]
    ptype: Option<String>,
    time_to_live: Option<u64>,
    force_no_tty: Option<bool>,
}

/// `POST /apps/{app}/dynos`: a one-off dyno on the current release.
pub async fn create_dyno(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let req: CreateDyno = parse_body(&body)?;
    if req.command.trim().is_empty() || req.command.len() > 64 * 1024 {
        return Err(ApiError::invalid(
            "command must be a non-empty shell command (at most 64 KB).",
        ));
    }
    let _ = req.ptype;
    let mut env = BTreeMap::new();
    for (k, v) in req.env {
        let v = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(ApiError::invalid(format!("env.{k} must be a string."))),
        };
        hoist_types::validate_config_var(&k, &v).map_err(|e| ApiError::invalid(e.to_string()))?;
        env.insert(k, v);
    }
    let size = match &req.size {
        Some(s) => Some(
            s.parse()
                .map_err(|e: hoist_types::size::UnknownSize| ApiError::invalid(e.to_string()))?,
        ),
        None => None,
    };
    let ttl = req.time_to_live.map(|t| t.clamp(1, 86_400));
    let tty = req.attach
        && req.force_no_tty != Some(true)
        && env.contains_key("TERM")
        && env.contains_key("COLUMNS");
    let started = ops(&st)?
        .run(OneOffDyno {
            app_id: app.id.clone(),
            command: req.command.clone(),
            env,
            size,
            attach: req.attach,
            tty,
            time_to_live: ttl.map(std::time::Duration::from_secs),
        })
        .await
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", e))?;
    st.platform.api_event(
        &app.id,
        &format!(
            "Starting process with command `{}` by user {}",
            req.command, who.email
        ),
    );
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Ok(json(
        StatusCode::CREATED,
        json!({
            "id": started.name, "name": started.name, "type": "run", "state": "starting",
            "size": started.size, "command": req.command, "attach_url": started.attach_url,
            "release": null, "app": views::app_ref(&app), "created_at": now, "updated_at": now,
        }),
    ))
}

#[derive(Deserialize)]
struct LogSessionReq {
    lines: Option<Value>,
    #[serde(default)]
    tail: bool,
    source: Option<String>,
    dyno: Option<String>,
    dyno_name: Option<String>,
    #[serde(rename = "type")]
    ptype: Option<String>,
}

async fn log_session(
    State(st): State<SharedState>,
    Auth(who): Auth,
    headers: axum::http::HeaderMap,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let req: LogSessionReq = parse_body(&body)?;
    let lines = match &req.lines {
        None | Some(Value::Null) => 100,
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| ApiError::invalid("lines must be a positive number."))?
            as usize,
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| ApiError::invalid("lines must be a number."))?,
        Some(_) => return Err(ApiError::invalid("lines must be a number.")),
    };
    if let Some(s) = &req.source {
        if s != "app" && s != "heroku" {
            return Err(ApiError::invalid("source must be app or heroku."));
        }
    }
    let dyno = req.dyno.or(req.dyno_name).or(req.ptype);
    let (_, token) = crate::auth::credentials(&headers).ok_or_else(ApiError::unauthorized)?;
    let owner = crate::SessionOwner {
        account_id: who.id.clone(),
        token_hash: hoist_store::hash_token(&token),
    };
    let url = ops(&st)?.log_session(&app.id, lines.min(1500), req.tail, req.source, dyno, owner);
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Ok(json(
        StatusCode::CREATED,
        json!({"id": uuid::Uuid::new_v4().to_string(), "logplex_url": url, "created_at": now, "updated_at": now}),
    ))
}

fn drain_view(app: &hoist_store::App, d: &hoist_store::LogDrain) -> Value {
    json!({
        "id": d.id, "token": d.token, "url": hoist_logs_redact(&d.url),
        "addon": null, "app": views::app_ref(app), "created_at": d.created_at, "updated_at": d.updated_at,
    })
}

/// Drain URLs may carry credentials; API output never shows them.
fn hoist_logs_redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("REDACTED"));
            }
            u.to_string()
        }
        Err(_) => "(invalid)".into(),
    }
}

async fn list_drains(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let items: Vec<Value> = st
        .store
        .log_drains(&app.id)?
        .iter()
        .map(|d| drain_view(&app, d))
        .collect();
    Ok(json(StatusCode::OK, items))
}

async fn drain_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, drain)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let d = st
        .store
        .log_drains(&app.id)?
        .into_iter()
        .find(|d| d.id == drain || d.token == drain || d.url == drain)
        .ok_or(ApiError::not_found("log drain"))?;
    Ok(json(StatusCode::OK, drain_view(&app, &d)))
}

#[derive(Deserialize)]
struct AddDrain {
    url: String,
}

/// Checks a drain URL: syslog://, syslog+tls:// or http(s):// with a host and port.
fn validate_drain(url: &str) -> ApiResult<()> {
    let bad = |why: &str| {
        ApiError::invalid(format!("Invalid drain URL: {why}. Use syslog://host:port, syslog+tls://host:port or https://host/path."))
    };
    let u = url::Url::parse(url).map_err(|_| bad("not a URL"))?;
    match u.scheme() {
        "syslog" | "syslog+tcp" | "syslog+tls" => {
            if u.port().is_none() {
                return Err(bad("syslog drains need a port"));
            }
        }
        "http" | "https" => {}
        other => return Err(bad(&format!("unsupported scheme {other:?}"))),
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(bad("missing host"));
    }
    Ok(())
}

async fn add_drain(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let req: AddDrain = parse_body(&body)?;
    validate_drain(&req.url)?;
    if let Ok(u) = url::Url::parse(&req.url) {
        st.cfg
            .egress
            .check_url(&u)
            .await
            .map_err(|e| ApiError::invalid(format!("Invalid drain URL: {e}")))?;
    }
    let d = st.store.add_log_drain(&app.id, &req.url)?;
    if let Some(o) = &st.ops {
        o.drains_changed(&app.id);
    }
    Ok(json(StatusCode::CREATED, drain_view(&app, &d)))
}

async fn remove_drain(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, drain)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let d = st.store.remove_log_drain(&app.id, &drain)?;
    if let Some(o) = &st.ops {
        o.drains_changed(&app.id);
    }
    Ok(json(StatusCode::OK, drain_view(&app, &d)))
}

async fn app_metrics(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    Ok(json(StatusCode::OK, ops(&st)?.app_metrics(&app.id)))
}

/// Prometheus exposition; platform-wide, so only the owner may read it.
async fn metrics(State(st): State<SharedState>, Auth(who): Auth) -> ApiResult<Response> {
    if !who.is_owner {
        return Err(ApiError::forbidden(
            "Only the platform owner can read platform metrics.",
        ));
    }
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        ops(&st)?.metrics_text(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_urls_are_checked_and_credentials_redacted() {
        assert!(validate_drain("syslog://logs.example.test:514").is_ok());
        assert!(validate_drain("https://user:secret@logs.example.test/x").is_ok());
        for bad in ["ftp://x:1", "syslog://x", "not a url", "syslog+udp://x:1"] {
            assert!(validate_drain(bad).is_err(), "{bad}");
        }
        let shown = hoist_logs_redact("https://user:hunter2@logs.example.test/x");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
