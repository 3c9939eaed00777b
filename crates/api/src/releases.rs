//! Releases (list, info, config, create from slug, rollback), formation and dynos.

use crate::error::{ApiError, ApiResult};
use crate::range::parse_range;
use crate::{app_for, json, page_response, paginate, parse_body, views, Auth, SharedState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use hoist_store::{FormationUpdate, NewRelease, QuantityChange, ReleaseStatus};
use serde::Deserialize;
use serde_json::Value;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route(
            "/apps/{app}/releases",
            get(list_releases).post(create_release),
        )
        .route("/apps/{app}/releases/{release}", get(release_info))
        .route("/apps/{app}/releases/{release}/output", get(release_output))
        .route(
            "/apps/{app}/releases/{release}/config-vars",
            get(release_config),
        )
        .route(
            "/apps/{app}/formation",
            get(formation).patch(update_formation),
        )
        .route(
            "/apps/{app}/formation/{ptype}",
            get(formation_info).patch(update_one_formation),
        )
        .route(
            "/apps/{app}/dynos",
            get(dynos)
                .delete(crate::ops::restart_all)
                .post(crate::ops::create_dyno),
        )
        .route(
            "/apps/{app}/dynos/{dyno}",
            get(dyno_info).delete(crate::ops::restart_one),
        )
}

async fn list_releases(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        "version",
        &["version", "id", "created_at"],
    )?;
    let bound = |v: &Option<String>| -> ApiResult<Option<i64>> {
        match v {
            None => Ok(None),
            Some(_) if range.field != "version" => Ok(None),
            Some(s) => s.trim_start_matches('v').parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("Invalid version {s:?} in Range header."))
            }),
        }
    };
    let first = bound(&range.first)?;
    let last = bound(&range.last)?;
    let mut rows = st.store.releases(
        &app.id,
        first,
        range.first_exclusive,
        last,
        range.desc,
        range.max + 1,
    )?;
    let more = rows.len() > range.max;
    rows.truncate(range.max);
    let page = rows.iter().map(|r| release_view(&st, &app, r)).collect();
    page_response(&range, page, more)
}

/// A release as JSON; `output_stream_url` when it ran a release phase.
fn release_view(st: &crate::ApiState, app: &hoist_store::App, r: &hoist_store::Release) -> Value {
    let output = st.deployer.has_release_output(&r.id).then(|| {
        format!(
            "{}/apps/{}/releases/{}/output",
            st.cfg.api_url.trim_end_matches('/'),
            app.id,
            r.id
        )
    });
    views::release(app, r, output)
}

/// The release phase's output. Like a build's output stream, the URL is a capability
/// (the release's random id, never its version) read without a token, as
/// `heroku releases:output` does: every line so far, then live lines until it ends.
async fn release_output(
    State(st): State<SharedState>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = st
        .store
        .app(&app)
        .map_err(|_| ApiError::not_found("release"))?;
    let r = st.store.release(&app.id, &id)?;
    if r.id != id {
        return Err(ApiError::not_found("release"));
    }
    let body = crate::builds::output_stream(&st, &id, &st.deployer.release_output_path(&id))
        .ok_or(ApiError::not_found("release output"))?;
    crate::builds::text_response(body)
}

async fn release_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, release)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let r = st.store.release(&app.id, &release)?;
    Ok(json(StatusCode::OK, release_view(&st, &app, &r)))
}

async fn release_config(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, release)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let r = st.store.release(&app.id, &release)?;
    Ok(json(StatusCode::OK, r.config))
}

#[derive(Deserialize)]
struct CreateRelease {
    /// Rollback target (id or version).
    release: Option<Value>,
    /// Create a release from this slug.
    slug: Option<String>,
    description: Option<String>,
}

async fn create_release(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let req: CreateRelease = parse_body(&body)?;
    let release = match (req.release, req.slug) {
        (Some(target), None) => {
            let target = match target {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                _ => return Err(ApiError::invalid("release must be a release id or version.")),
            };
            st.store.rollback(&app.id, &target, &who.id)?
        }
        (None, Some(slug)) => {
            let description = req
                .description
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| format!("Deploy slug {}", &slug[..slug.len().min(8)]));
            if description.len() > 1024 {
                return Err(ApiError::invalid("description is limited to 1024 characters."));
            }
            st.store.create_release(
                &app.id,
                NewRelease {
                    description,
                    slug_id: Some(slug),
                    config: None,
                    status: ReleaseStatus::Succeeded,
                    user_id: who.id.clone(),
                },
            )?
        }
        _ => {
            return Err(ApiError::invalid(
                "Send either {\"release\": <id or version>} to roll back or {\"slug\": <id>} to release a slug.",
            ))
        }
    };
    st.platform.api_event(
        &app.id,
        &format!("{} by user {}", release.description, who.email),
    );
    st.platform.api_event(
        &app.id,
        &format!("Release v{} created by user {}", release.version, who.email),
    );
    st.platform.app_changed(&app.id);
    Ok(json(StatusCode::CREATED, release_view(&st, &app, &release)))
}

async fn formation(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let items = st
        .store
        .formation(&app.id)?
        .iter()
        .map(|f| views::formation(&app, f))
        .collect();
    paginate(&headers, "type", &["id", "type"], items)
}

async fn formation_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, ptype)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let f = st
        .store
        .formation(&app.id)?
        .into_iter()
        .find(|f| f.process_type == ptype || f.id == ptype)
        .ok_or(ApiError::not_found("process type"))?;
    Ok(json(StatusCode::OK, views::formation(&app, &f)))
}

/// `quantity` arrives as a number or a string, absolute (`"3"`) or relative (`"+1"`).
fn parse_quantity(v: &Value) -> ApiResult<QuantityChange> {
    let bad = || {
        ApiError::invalid(format!(
            "Invalid quantity {v}: use a whole number like 3, or a relative change like \"+1\" or \"-2\"."
        ))
    };
    match v {
        Value::Number(n) => n.as_i64().map(QuantityChange::Absolute).ok_or_else(bad),
        Value::String(s) => {
            let s = s.trim();
            let digits = |d: &str| -> ApiResult<i64> {
                if d.is_empty() || d.len() > 6 || !d.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                d.parse().map_err(|_| bad())
            };
            if let Some(d) = s.strip_prefix('+') {
                Ok(QuantityChange::Relative(digits(d)?))
            } else if let Some(d) = s.strip_prefix('-') {
                Ok(QuantityChange::Relative(-digits(d)?))
            } else {
                Ok(QuantityChange::Absolute(digits(s)?))
            }
        }
        _ => Err(bad()),
    }
}

fn parse_update(v: &Value, ptype: Option<&str>) -> ApiResult<FormationUpdate> {
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::invalid("Each formation update must be an object."))?;
    let process_type = match (ptype, obj.get("type")) {
        (Some(t), _) => t.to_string(),
        (None, Some(Value::String(t))) => t.clone(),
        _ => {
            return Err(ApiError::invalid(
                "Each formation update needs a process type (\"type\").",
            ))
        }
    };
    let quantity = match obj.get("quantity") {
        None | Some(Value::Null) => None,
        Some(q) => Some(parse_quantity(q)?),
    };
    let size = match obj.get("size") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                "size must be a string such as \"standard-1x\".",
            ))
        }
    };
    Ok(FormationUpdate {
        process_type,
        quantity,
        size,
    })
}

async fn apply_formation(
    st: &SharedState,
    who: &hoist_store::Account,
    app: &hoist_store::App,
    updates: Vec<FormationUpdate>,
) -> ApiResult<Vec<Value>> {
    if st.store.formation(&app.id)?.is_empty() {
        return Err(ApiError::not_found("process type")
            .with_message("No process types on this app yet. Deploy code with a Procfile first."));
    }
    let formation = st.store.update_formation(&app.id, &updates)?;
    let summary: Vec<String> = formation
        .iter()
        .filter(|f| updates.iter().any(|u| u.process_type == f.process_type))
        .map(|f| format!("{}={}:{}", f.process_type, f.quantity, f.size))
        .collect();
    st.platform.api_event(
        &app.id,
        &format!("Scaled to {} by user {}", summary.join(", "), who.email),
    );
    st.platform.app_changed(&app.id);
    Ok(formation
        .iter()
        .filter(|f| updates.iter().any(|u| u.process_type == f.process_type))
        .map(|f| views::formation(app, f))
        .collect())
}

async fn update_formation(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let req: Value = parse_body(&body)?;
    let updates = req
        .get("updates")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError::invalid("Send {\"updates\": [{\"type\": \"web\", \"quantity\": \"1\"}]}.")
        })?;
    if updates.is_empty() || updates.len() > 100 {
        return Err(ApiError::invalid(
            "updates must list between 1 and 100 process types.",
        ));
    }
    let updates = updates
        .iter()
        .map(|u| parse_update(u, None))
        .collect::<ApiResult<Vec<_>>>()?;
    let out = apply_formation(&st, &who, &app, updates).await?;
    Ok(json(StatusCode::OK, out))
}

async fn update_one_formation(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, ptype)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let req: Value = parse_body(&body)?;
    let update = parse_update(&req, Some(&ptype))?;
    let mut out = apply_formation(&st, &who, &app, vec![update]).await?;
    Ok(json(StatusCode::OK, out.pop().unwrap_or(Value::Null)))
}

async fn dynos(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let items: Vec<Value> = st
        .store
        .dynos(&app.id)?
        .iter()
        .map(|d| views::dyno(&app, d))
        .collect();
    Ok(json(StatusCode::OK, items))
}

async fn dyno_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, dyno)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let d = st.store.dyno(&app.id, &dyno)?;
    Ok(json(StatusCode::OK, views::dyno(&app, &d)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_absolute_relative_number_or_string() {
        assert_eq!(
            parse_quantity(&json!(3)).unwrap(),
            QuantityChange::Absolute(3)
        );
        assert_eq!(
            parse_quantity(&json!("3")).unwrap(),
            QuantityChange::Absolute(3)
        );
        assert_eq!(
            parse_quantity(&json!("+1")).unwrap(),
            QuantityChange::Relative(1)
        );
        assert_eq!(
            parse_quantity(&json!("-2")).unwrap(),
            QuantityChange::Relative(-2)
        );
        for bad in [
            json!("abc"),
            json!(1.5),
            json!(true),
            json!("+"),
            json!("1e9"),
            json!(null),
            json!("99999999"),
        ] {
            assert!(parse_quantity(&bad).is_err(), "{bad}");
        }
    }
}
