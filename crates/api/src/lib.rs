//! Heroku Platform API v3 over HTTP (axum): JSON bodies, Bearer auth, Range
//! pagination, `{"id","message"}` errors. The same router answers git smart HTTP at
//! `/<app>.git` (see `git`). This crate owns no state of its own: it reads and writes
//! the store and tells the rest of the platform through [`Platform`].

mod accounts;
mod addon_listings;
pub mod addons;
mod apps;
mod auth;
pub mod buildlog;
mod buildpacks;
pub mod builds;
pub mod deploy;
mod error;
mod features;
pub mod git;
mod oauth;
mod ops;
mod platform;
mod range;
mod releases;
mod unsupported;
mod views;
mod webhook;

pub use auth::Auth;
pub use error::{ApiError, ApiResult};
pub use platform::PLATFORM_CA_FILE;
pub use range::{parse_range, RangeSpec};

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hoist_store::{Account, App, Store};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// Where the API and router are reachable, for URLs in responses.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base domain: apps are `<app>.<domain>`.
    pub domain: String,
    /// Public base URL of this API, e.g. `http://127.0.0.1:5000`.
    pub api_url: String,
    /// Port the router listens on (for `web_url`).
    pub router_port: u16,
    pub stack: String,
    /// Where the daemon may fetch and post on a tenant's behalf (source URLs, drains).
    pub egress: std::sync::Arc<hoist_egress::EgressPolicy>,
}

impl ApiConfig {
    pub fn web_url(&self, app: &str) -> String {
        if self.router_port == 80 {
            format!("http://{app}.{}/", self.domain)
        } else {
            format!("http://{app}.{}:{}/", self.domain, self.router_port)
        }
    }
    pub fn git_url(&self, app: &str) -> String {
        format!("{}/{app}.git", self.api_url.trim_end_matches('/'))
    }
}

/// What the API tells the rest of the platform. Implemented by the server binary,
/// which wires the dyno manager and the log hub.
pub trait Platform: Send + Sync + 'static {
    /// Desired state of the app changed (release, config, formation, maintenance,
    /// domains): reconcile it.
    fn app_changed(&self, app_id: &str);
    /// A new app: resolves once the router knows it (it answers for the app from
    /// the start, with Heroku's blank-app page until the first deploy).
    fn app_created(&self, app_id: &str) -> futures::future::BoxFuture<'static, ()> {
        self.app_changed(app_id);
        Box::pin(async {})
    }
    /// The app and all its rows are gone. Resolves once its dynos are gone too
    /// (containers, mounts, cgroups, files).
    fn app_destroyed(&self, app_id: &str) -> futures::future::BoxFuture<'static, ()>;
    /// An `app[api]` line for the app's log stream.
    fn api_event(&self, app_id: &str, message: &str);
    /// Runs a release's `release` command in a one-off dyno on that release; its
    /// output lines go to `log` as the command wrote them; resolves to the exit status.
    fn run_release_phase(
        &self,
        app_id: &str,
        version: i64,
        command: &str,
        log: Arc<buildlog::BuildLog>,
    ) -> futures::future::BoxFuture<'static, Result<i32, String>> {
        let _ = (app_id, version, command, log);
        Box::pin(async {
            Err("release phase needs the dyno manager, which is not running".to_string())
        })
    }
}

/// A one-off dyno request as the API received it.
#[derive(Debug, Clone)]
pub struct OneOffDyno {
    pub app_id: String,
    pub command: String,
    pub env: std::collections::BTreeMap<String, String>,
    pub size: Option<hoist_types::DynoSize>,
    pub attach: bool,
    pub tty: bool,
    pub time_to_live: Option<std::time::Duration>,
}

/// What `POST /apps/{app}/dynos` answers with.
#[derive(Debug, Clone)]
pub struct OneOffStarted {
    pub name: String,
    pub size: String,
    pub attach_url: Option<String>,
}

/// Dyno operations and log sessions, implemented by the server over the dyno manager
/// and log hub.
pub trait Operations: Send + Sync + 'static {
    /// Restart all dynos (`None`), a process type, or one dyno.
    fn restart(&self, app_id: &str, target: Option<&str>);
    /// Stop a dyno or all dynos of a type (formation dynos are replaced).
    fn stop(&self, app_id: &str, target: &str);
    fn run(
        &self,
        req: OneOffDyno,
    ) -> futures::future::BoxFuture<'static, Result<OneOffStarted, String>>;
    /// A capability URL streaming the app's log as server-sent events.
    fn log_session(
        &self,
        app_id: &str,
        lines: usize,
        tail: bool,
        source: Option<String>,
        dyno: Option<String>,
        owner: SessionOwner,
    ) -> String;
    /// The app's drains changed in the store.
    fn drains_changed(&self, app_id: &str);
    /// Prometheus text for `/metrics`.
    fn metrics_text(&self) -> String;
    /// Router metrics of one app.
    fn app_metrics(&self, app_id: &str) -> serde_json::Value;
}

/// Who opened a log session, and with which credential: the session streams only
/// while that token still authenticates that account and the account may read the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOwner {
    pub account_id: String,
    pub token_hash: String,
}

impl SessionOwner {
    /// The string the log hub keeps for the session (it does not look inside).
    pub fn encode(&self) -> String {
        format!("{} {}", self.account_id, self.token_hash)
    }

    pub fn decode(s: &str) -> Option<SessionOwner> {
        let (account_id, token_hash) = s.split_once(' ')?;
        Some(SessionOwner {
            account_id: account_id.to_owned(),
            token_hash: token_hash.to_owned(),
        })
    }

    /// Whether the owner may still read the app's log.
    pub fn may_read(&self, store: &hoist_store::Store, app_id: &str) -> bool {
        let Ok(Some(account)) = store.account_by_token_hash(&self.token_hash) else {
            return false;
        };
        account.id == self.account_id
            && store
                .app(app_id)
                .and_then(|app| store.has_access(&app, &account))
                .unwrap_or(false)
    }
}

pub struct ApiState {
    pub ops: Option<Arc<dyn Operations>>,
    pub addons: Option<Arc<hoist_addons::Registry>>,
    pub store: Arc<Store>,
    pub cfg: ApiConfig,
    pub platform: Arc<dyn Platform>,
    pub deployer: Arc<deploy::Deployer>,
    pub data_dir: std::path::PathBuf,
    /// The `hoist` binary, for git hooks.
    pub hoist_exe: std::path::PathBuf,
    /// Loopback URL of this API for the platform's own callers (git hooks).
    pub internal_url: String,
    /// Random per server start; only processes the server spawns know it.
    pub hook_secret: String,
}

pub type SharedState = Arc<ApiState>;

/// API request bodies are small; git pushes and source uploads stream separately.
const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn router(state: SharedState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(apps::routes())
        .merge(releases::routes())
        .merge(oauth::routes())
        .merge(accounts::routes())
        .merge(unsupported::routes())
        .merge(features::routes())
        .merge(buildpacks::routes())
        .merge(addon_listings::routes())
        .merge(platform::routes())
        .merge(builds::routes())
        .merge(git::routes())
        .merge(ops::routes())
        .merge(webhook::routes())
        .merge(addons::routes())
        .fallback(|| async { ApiError::not_found("resource") })
        .layer(axum::middleware::map_response(json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Parses a JSON request body; an empty body is `{}`.
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &Bytes) -> ApiResult<T> {
    let raw: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(raw).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::invalid(format!("Invalid request body: {e}"))
        }
        _ => ApiError::bad_request(format!("Request body is not valid JSON: {e}")),
    })
}

/// Looks up an app the caller may use: 404 when it does not exist, 403 when it
/// belongs to someone else.
pub(crate) fn app_for(state: &ApiState, who: &Account, ident: &str) -> ApiResult<App> {
    let app = state.store.app(ident)?;
    if !state.store.has_access(&app, who)? {
        return Err(ApiError::forbidden(format!(
            "You do not have access to the app {}.",
            app.name
        )));
    }
    Ok(app)
}

pub(crate) fn json<T: serde::Serialize>(status: StatusCode, v: T) -> Response {
    (status, axum::Json(v)).into_response()
}

/// Returns one page of `items` (each with its sort key for `range.field`) with
/// 206 + `Next-Range` when more remain, and never a `Next-Range` on the last page.
pub(crate) fn paginate(
    headers: &HeaderMap,
    default_field: &str,
    allowed: &[&str],
    items: Vec<Value>,
) -> ApiResult<Response> {
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        default_field,
        allowed,
    )?;
    let key = |v: &Value| -> String {
        match v.get(&range.field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => format!("{:020}", n.as_i64().unwrap_or(0)),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    };
    let mut items: Vec<(String, Value)> = items.into_iter().map(|v| (key(&v), v)).collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    if range.desc {
        items.reverse();
    }
    let norm = |s: &str| -> String {
        if let Ok(n) = s.parse::<i64>() {
            format!("{n:020}")
        } else {
            s.to_string()
        }
    };
    let first = range.first.as_deref().map(norm);
    let last = range.last.as_deref().map(norm);
    let in_range = |k: &str| -> bool {
        let after_first = match &first {
            None => true,
            Some(f) if range.desc => {
                if range.first_exclusive {
                    k < f.as_str()
                } else {
                    k <= f.as_str()
                }
            }
            Some(f) => {
                if range.first_exclusive {
                    k > f.as_str()
                } else {
                    k >= f.as_str()
                }
            }
        };
        let before_last = match &last {
            None => true,
            Some(l) if range.desc => k >= l.as_str(),
            Some(l) => k <= l.as_str(),
        };
        after_first && before_last
    };
    let selected: Vec<&(String, Value)> = items.iter().filter(|(k, _)| in_range(k)).collect();
    let more = selected.len() > range.max;
    let page: Vec<Value> = selected
        .iter()
        .take(range.max)
        .map(|(_, v)| v.clone())
        .collect();
    page_response(&range, page, more)
}

pub(crate) fn page_response(
    range: &RangeSpec,
    page: Vec<Value>,
    more: bool,
) -> ApiResult<Response> {
    let raw_key = |v: &Value| -> String {
        match v.get(&range.field) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    };
    let mut resp = json(
        if more {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        },
        &page,
    );
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        let content_range = format!(
            "{} {}..{}; max={}",
            range.field,
            raw_key(first),
            raw_key(last),
            range.max
        );
        if let Ok(v) = HeaderValue::from_str(&content_range) {
            resp.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        if more {
            if let Ok(v) = HeaderValue::from_str(&range.next(&raw_key(last))) {
                resp.headers_mut().insert("next-range", v);
            }
        }
    }
    resp.headers_mut().insert(
        header::ACCEPT_RANGES,
        HeaderValue::from_static("id, name, version, created_at, updated_at"),
    );
    Ok(resp)
}

/// Marks an error response that must stay plain text (git clients read it).
#[derive(Clone, Copy)]
pub(crate) struct PlainError;

/// Rejections produced by axum itself (body too large, bad method) are plain text;
/// clients of a Heroku-style API expect `{"id","message"}` JSON for every error.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || resp.extensions().get::<PlainError>().is_some()
    {
        return resp;
    }
    let id = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "request_entity_too_large",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal_server_error",
        _ => "bad_request",
    };
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "Request body is too large (limit 1 MB).".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => {
            "This method is not allowed on this resource.".to_string()
        }
        s => s.canonical_reason().unwrap_or("Request failed").to_string(),
    };
    ApiError::new(status, id, message).into_response()
}
