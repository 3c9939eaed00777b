//! Add-ons: services and plans, provisioning through a provider, attachments (config
//! vars `<ATTACHMENT>_<KEY>` plus a release), plan changes, destroy, resolve, and the
//! partner callback for asynchronous provisioning.

use crate::error::{ApiError, ApiResult};
use crate::{app_for, json, parse_body, views, Auth, SharedState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use hoist_addons::{AddonError, ProvisionState, Registry};
use hoist_store::{Account, Addon, App, NewAddon, Release, Store};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/addon-services", get(services))
        .route("/addon-services/{service}", get(service_info))
        .route("/addon-services/{service}/plans", get(plans))
        .route("/addon-services/{service}/plans/{plan}", get(plan_info))
        .route("/apps/{app}/addons", post(create))
        .route(
            "/apps/{app}/addons/{addon}",
            get(info).patch(change_plan).delete(destroy),
        )
        .route("/addons/{addon}", get(info_global))
        .route("/addons/{addon}/info", get(provider_info))
        .route("/addons/{addon}/addon-attachments", get(addon_attachments))
        .route("/actions/addons/resolve", post(resolve))
        .route(
            "/actions/addon-attachments/resolve",
            post(resolve_attachment),
        )
        .route("/addon-attachments", post(attach))
        .route(
            "/addon-attachments/{id}",
            get(attachment_info).delete(detach),
        )
        .route(
            "/apps/{app}/addon-attachments/{name}",
            get(app_attachment_info),
        )
        .route("/addon-callbacks/{addon}", post(callback).put(callback))
}

fn registry(st: &SharedState) -> ApiResult<Arc<Registry>> {
    st.addons
        .clone()
        .ok_or_else(|| ApiError::not_implemented("Add-ons"))
}

fn addon_error(e: AddonError) -> ApiError {
    match e {
        AddonError::UnknownService(s) => ApiError::not_found("add-on service").with_message(format!(
            "Couldn't find add-on service {s:?}. Run \"hoist addons:services\" to list them."
        )),
        AddonError::UnknownPlan { service, plan } => ApiError::invalid(format!(
            "Couldn't find plan {plan:?} of {service}. Run \"hoist addons:plans {service}\" to list them."
        )),
        AddonError::Unavailable { package } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            format!("This add-on needs the Debian package {package}, which is not installed on the platform. Ask the administrator to install it."),
        ),
        AddonError::Timeout(d) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "provider_timeout",
            format!("The add-on provider did not answer within {} s; nothing was created.", d.as_secs()),
        ),
        AddonError::Provider(m) => ApiError::new(StatusCode::BAD_GATEWAY, "provider_error", format!("The add-on provider failed: {m}")),
        AddonError::Invalid(m) => ApiError::invalid(m),
        AddonError::NotFound(m) => ApiError::not_found("add-on").with_message(m),
        e => ApiError::internal(e),
    }
}

fn service_view(s: &hoist_addons::Service) -> Value {
    json!({
        "id": s.name, "name": s.name, "human_name": s.description, "description": s.description,
        "state": "ga", "supports_multiple_installations": true, "supports_sharing": true,
        "cli_plugin_name": null, "created_at": null, "updated_at": null,
    })
}

fn plan_view(s: &hoist_addons::Service, p: &hoist_addons::Plan) -> Value {
    json!({
        "id": format!("{}:{}", s.name, p.name), "name": format!("{}:{}", s.name, p.name),
        "human_name": p.name, "description": p.description, "default": false, "state": "public",
        "price": {"cents": p.price_cents, "unit": "month", "contract": false, "metered": false},
        "addon_service": {"id": s.name, "name": s.name}, "compliance": [], "installable_inside_private_network": false,
        "installable_outside_private_network": true, "space_default": false, "visible": true, "limits": p.limits,
    })
}

async fn services(State(st): State<SharedState>, Auth(_who): Auth) -> ApiResult<Response> {
    let reg = registry(&st)?;
    Ok(json(
        StatusCode::OK,
        reg.services().iter().map(service_view).collect::<Vec<_>>(),
    ))
}

fn find_service(reg: &Registry, name: &str) -> ApiResult<hoist_addons::Service> {
    reg.get(name)
        .map(|p| p.service().clone())
        .ok_or_else(|| addon_error(AddonError::UnknownService(name.to_string())))
}

async fn service_info(
    State(st): State<SharedState>,
    Auth(_who): Auth,
    Path(service): Path<String>,
) -> ApiResult<Response> {
    let s = find_service(&*registry(&st)?, &service)?;
    Ok(json(StatusCode::OK, service_view(&s)))
}

async fn plans(
    State(st): State<SharedState>,
    Auth(_who): Auth,
    Path(service): Path<String>,
) -> ApiResult<Response> {
    let s = find_service(&*registry(&st)?, &service)?;
    Ok(json(
        StatusCode::OK,
        s.plans.iter().map(|p| plan_view(&s, p)).collect::<Vec<_>>(),
    ))
}

async fn plan_info(
    State(st): State<SharedState>,
    Auth(_who): Auth,
    Path((service, plan)): Path<(String, String)>,
) -> ApiResult<Response> {
    let s = find_service(&*registry(&st)?, &service)?;
    let plan = plan.rsplit(':').next().unwrap_or(&plan);
    let p = s.require_plan(plan).map_err(addon_error)?;
    Ok(json(StatusCode::OK, plan_view(&s, p)))
}

/// An add-on as the API shows it, priced from its plan in the registry.
pub(crate) fn addon_json(st: &SharedState, a: &Addon) -> Value {
    let price_cents = st
        .addons
        .as_ref()
        .and_then(|reg| reg.get(&a.service))
        .and_then(|p| p.service().plan(&a.plan).map(|plan| plan.price_cents))
        .unwrap_or(0);
    views::addon(&st.cfg, a, price_cents)
}

fn addon_view(st: &SharedState, a: &Addon, provision_message: Option<&str>) -> Value {
    let mut v = addon_json(st, a);
    if let Some(msg) = provision_message {
        v["provision_message"] = json!(msg);
    }
    v
}

/// The add-on named in a path, visible through the app (owned by it or attached to it).
fn addon_for(st: &SharedState, who: &Account, app: Option<&App>, ident: &str) -> ApiResult<Addon> {
    let addon = st
        .store
        .addon(ident)
        .map_err(|_| ApiError::not_found("add-on"))?;
    let visible = match app {
        Some(app) => {
            addon.app_id == app.id
                || st
                    .store
                    .attachments_for_app(&app.id)?
                    .iter()
                    .any(|t| t.addon.id == addon.id)
        }
        None => {
            let owner_app = st.store.app(&addon.app_id)?;
            st.store.has_access(&owner_app, who)?
        }
    };
    if !visible {
        return Err(ApiError::not_found("add-on"));
    }
    Ok(addon)
}

#[derive(Deserialize)]
struct CreateAddon {
    plan: Value,
    #[serde(default)]
    attachment: Option<Value>,
    #[serde(default)]
    config: BTreeMap<String, Value>,
    name: Option<String>,
}

fn valid_addon_name(n: &str) -> bool {
    (3..=64).contains(&n.len())
        && n.as_bytes()[0].is_ascii_lowercase()
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(crate) fn released(st: &SharedState, who: &Account, releases: &[(String, Release)]) {
    for (app_id, r) in releases {
        st.platform
            .api_event(app_id, &format!("{} by user {}", r.description, who.email));
        st.platform.api_event(
            app_id,
            &format!("Release v{} created by user {}", r.version, who.email),
        );
        st.platform.app_changed(app_id);
    }
}

async fn create(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let reg = registry(&st)?;
    let req: CreateAddon = parse_body(&body)?;
    let spec = plan_spec(&req.plan);
    if spec.is_empty() || spec.len() > 128 {
        return Err(ApiError::invalid(
            "plan is required, e.g. \"postgresql:mini\".",
        ));
    }
    let (provider, plan) = reg.resolve_plan(&spec).map_err(addon_error)?;
    let service = provider.service().clone();
    let attachment = req
        .attachment
        .as_ref()
        .and_then(|a| a.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| service.config_var.clone());
    st.store
        .check_attachment_free(&app.id, &attachment, &["URL"])?;
    let name = match req.name {
        Some(n) if !valid_addon_name(&n) => {
            return Err(ApiError::invalid(
                "Add-on names use lower-case letters, digits and dashes (3 to 64 characters).",
            ))
        }
        Some(n) => n,
        None => hoist_addons::generate_addon_name(&service.name),
    };
    if st.store.addon(&name).is_ok() {
        return Err(ApiError::conflict(format!(
            "An add-on named {name} already exists."
        )));
    }
    let options: BTreeMap<String, String> = req
        .config
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string()),
            )
        })
        .collect();
    let provisioned = provider
        .provision(&name, &plan.name, &options)
        .await
        .map_err(addon_error)?;
    let state = match provisioned.state {
        ProvisionState::Provisioned => "provisioned",
        ProvisionState::Provisioning => "provisioning",
    };
    let new = NewAddon {
        name: &name,
        service: &service.name,
        plan: &plan.name,
        state,
        provider_id: Some(&provisioned.provider_id),
        config: &provisioned.config,
        attachment: &attachment,
    };
    let (addon, release) = match st.store.create_addon(&app.id, &new, &who.id) {
        Ok(x) => x,
        Err(e) => {
            // Nothing half-attached: give the resource back to the provider.
            let _ = provider.deprovision(&provisioned.provider_id).await;
            return Err(e.into());
        }
    };
    released(&st, &who, &[(app.id.clone(), release)]);
    Ok(json(
        StatusCode::CREATED,
        addon_view(&st, &addon, provisioned.message.as_deref()),
    ))
}

async fn info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, addon)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let addon = addon_for(&st, &who, Some(&app), &addon)?;
    Ok(json(StatusCode::OK, addon_view(&st, &addon, None)))
}

async fn info_global(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(addon): Path<String>,
) -> ApiResult<Response> {
    let addon = addon_for(&st, &who, None, &addon)?;
    Ok(json(StatusCode::OK, addon_view(&st, &addon, None)))
}

/// Provider details for `pg:info` and friends; never credentials.
async fn provider_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(addon): Path<String>,
) -> ApiResult<Response> {
    let addon = addon_for(&st, &who, None, &addon)?;
    let reg = registry(&st)?;
    let provider = reg
        .get(&addon.service)
        .ok_or_else(|| addon_error(AddonError::UnknownService(addon.service.clone())))?;
    let pid = st.store.addon_provider_id(&addon.id)?.unwrap_or_default();
    let info = provider.info(&pid).await.map_err(addon_error)?;
    Ok(json(
        StatusCode::OK,
        json!({"addon": addon_json(&st, &addon), "info": info}),
    ))
}

/// `plan` as the Heroku API accepts it: `"service:plan"` or `{"name": "service:plan"}`;
/// empty when it is neither.
fn plan_spec(plan: &Value) -> String {
    match plan {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

#[derive(Deserialize)]
struct ChangePlan {
    plan: Value,
}

async fn change_plan(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, addon)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let addon = addon_for(&st, &who, Some(&app), &addon)?;
    let req: ChangePlan = parse_body(&body)?;
    let spec = plan_spec(&req.plan);
    let plan = spec.rsplit(':').next().unwrap_or_default().to_string();
    let reg = registry(&st)?;
    let provider = reg
        .get(&addon.service)
        .ok_or_else(|| addon_error(AddonError::UnknownService(addon.service.clone())))?;
    // Heroku's plan names are accepted; the add-on records Hoist's.
    let plan = provider
        .service()
        .require_plan(&plan)
        .map_err(addon_error)?
        .name
        .clone();
    let pid = st.store.addon_provider_id(&addon.id)?.unwrap_or_default();
    let config = provider
        .change_plan(&pid, &plan)
        .await
        .map_err(addon_error)?;
    let releases = st
        .store
        .change_addon_plan(&addon.id, &plan, config.as_ref(), &who.id)?;
    released(&st, &who, &releases);
    let addon = st.store.addon(&addon.id)?;
    Ok(json(StatusCode::OK, addon_view(&st, &addon, None)))
}

async fn destroy(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, addon)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let addon = addon_for(&st, &who, Some(&app), &addon)?;
    if addon.app_id != app.id {
        return Err(ApiError::forbidden(format!(
            "{} belongs to {}; detach it from this app with addons:detach.",
            addon.name, addon.app_name
        )));
    }
    let reg = registry(&st)?;
    if let Some(provider) = reg.get(&addon.service) {
        let pid = st.store.addon_provider_id(&addon.id)?.unwrap_or_default();
        st.store.set_addon_state(&addon.id, "deprovisioning")?;
        if let Err(e) = provider.deprovision(&pid).await {
            st.store.set_addon_state(&addon.id, "provisioned")?;
            return Err(addon_error(e));
        }
    }
    let releases = st.store.destroy_addon(&addon.id, &who.id)?;
    released(&st, &who, &releases);
    let mut v = addon_json(&st, &addon);
    v["state"] = json!("deprovisioned");
    Ok(json(StatusCode::OK, v))
}

#[derive(Deserialize)]
struct Resolve {
    addon: Option<String>,
    addon_attachment: Option<String>,
    app: Option<String>,
}

async fn resolve(
    State(st): State<SharedState>,
    Auth(who): Auth,
    body: Bytes,
) -> ApiResult<Response> {
    let req: Resolve = parse_body(&body)?;
    let ident = req
        .addon
        .ok_or_else(|| ApiError::invalid("addon is required."))?;
    let app = match &req.app {
        Some(a) => Some(app_for(&st, &who, a)?),
        None => None,
    };
    let found = match (st.store.addon(&ident), &app) {
        (Ok(a), _) => vec![addon_for(&st, &who, app.as_ref(), &a.id)?],
        (Err(_), Some(app)) => st
            .store
            .attachments_for_app(&app.id)?
            .into_iter()
            .filter(|t| t.name == ident || t.addon.service == ident)
            .map(|t| t.addon)
            .collect(),
        (Err(_), None) => Vec::new(),
    };
    if found.is_empty() {
        return Err(ApiError::not_found("add-on")
            .with_message(format!("Couldn't find that add-on: {ident}.")));
    }
    Ok(json(
        StatusCode::OK,
        found.iter().map(|a| addon_json(&st, a)).collect::<Vec<_>>(),
    ))
}

async fn resolve_attachment(
    State(st): State<SharedState>,
    Auth(who): Auth,
    body: Bytes,
) -> ApiResult<Response> {
    let req: Resolve = parse_body(&body)?;
    let ident = req
        .addon_attachment
        .ok_or_else(|| ApiError::invalid("addon_attachment is required."))?;
    let app = app_for(
        &st,
        &who,
        req.app
            .as_deref()
            .ok_or_else(|| ApiError::invalid("app is required."))?,
    )?;
    let found: Vec<Value> = st
        .store
        .attachments_for_app(&app.id)?
        .iter()
        .filter(|t| t.name == ident || t.id == ident || t.addon.name == ident)
        .map(|t| views::attachment(&st.cfg, t))
        .collect();
    if found.is_empty() {
        return Err(ApiError::not_found("add-on attachment"));
    }
    Ok(json(StatusCode::OK, found))
}

#[derive(Deserialize)]
struct Attach {
    addon: Value,
    app: Value,
    name: Option<String>,
}

fn ident_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o
            .get("id")
            .or_else(|| o.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    }
}

async fn attach(
    State(st): State<SharedState>,
    Auth(who): Auth,
    body: Bytes,
) -> ApiResult<Response> {
    let req: Attach = parse_body(&body)?;
    let app = app_for(
        &st,
        &who,
        &ident_of(&req.app).ok_or_else(|| ApiError::invalid("app is required."))?,
    )?;
    let addon = addon_for(
        &st,
        &who,
        None,
        &ident_of(&req.addon).ok_or_else(|| ApiError::invalid("addon is required."))?,
    )?;
    let name = match req.name {
        Some(n) => n,
        None => registry(&st)?
            .get(&addon.service)
            .map(|p| p.service().config_var.clone())
            .unwrap_or_else(|| addon.service.to_uppercase().replace('-', "_")),
    };
    let release = st.store.attach_addon(&addon.id, &app.id, &name, &who.id)?;
    released(&st, &who, &[(app.id.clone(), release)]);
    let t = st.store.attachment(&name, Some(&app.id))?;
    Ok(json(StatusCode::CREATED, views::attachment(&st.cfg, &t)))
}

fn attachment_visible(
    st: &SharedState,
    who: &Account,
    t: &hoist_store::AddonAttachment,
) -> ApiResult<()> {
    let app = st.store.app(&t.app_id)?;
    if st.store.has_access(&app, who)? {
        Ok(())
    } else {
        Err(ApiError::not_found("add-on attachment"))
    }
}

async fn attachment_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let t = st.store.attachment(&id, None)?;
    attachment_visible(&st, &who, &t)?;
    Ok(json(StatusCode::OK, views::attachment(&st.cfg, &t)))
}

async fn app_attachment_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let t = st.store.attachment(&name, Some(&app.id))?;
    Ok(json(StatusCode::OK, views::attachment(&st.cfg, &t)))
}

async fn detach(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let t = st.store.attachment(&id, None)?;
    attachment_visible(&st, &who, &t)?;
    let remaining = st.store.attachments_for_app(&t.addon.app_id)?;
    let is_last_on_owner = t.app_id == t.addon.app_id
        && remaining
            .iter()
            .filter(|x| x.addon.id == t.addon.id)
            .count()
            <= 1;
    if is_last_on_owner {
        return Err(ApiError::invalid(format!(
            "{} is {}'s only attachment of {}; destroy the add-on with addons:destroy instead.",
            t.name, t.app_name, t.addon.name
        )));
    }
    let (app_id, release) = st.store.detach_addon(&t.id, &who.id)?;
    released(&st, &who, &[(app_id, release)]);
    Ok(json(StatusCode::OK, views::attachment(&st.cfg, &t)))
}

/// Asynchronous provisioning: the partner sends `{"config": {...}}` with HTTP Basic
/// `<manifest id>:<api password>`.
async fn callback(
    State(st): State<SharedState>,
    Path(addon): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let reg = registry(&st)?;
    let addon = st
        .store
        .addon(&addon)
        .map_err(|_| ApiError::not_found("add-on"))?;
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !reg.verify_callback_auth(&addon.service, auth) {
        return Err(ApiError::unauthorized().with_message("Invalid partner credentials."));
    }
    let v: Value = parse_body(&body)?;
    let config = reg
        .accept_callback_config(&addon.service, v.get("config").unwrap_or(&Value::Null))
        .map_err(addon_error)?;
    let owner = st.store.account(&st.store.app(&addon.app_id)?.owner_id)?;
    let releases = st.store.set_addon_config(&addon.id, &config, &owner.id)?;
    st.store.set_addon_state(&addon.id, "provisioned")?;
    released(&st, &owner, &releases);
    Ok(json(StatusCode::OK, json!({"message": "ok"})))
}

/// Every attachment of one add-on the caller can see.
async fn addon_attachments(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(addon): Path<String>,
) -> ApiResult<Response> {
    let addon = addon_for(&st, &who, None, &addon)?;
    let mut out = Vec::new();
    for app in st.store.apps_for(&who.id)? {
        out.extend(
            st.store
                .attachments_for_app(&app.id)?
                .iter()
                .filter(|t| t.addon.id == addon.id)
                .map(|t| views::attachment(&st.cfg, t)),
        );
    }
    Ok(json(StatusCode::OK, out))
}

/// Gives back the resources of destroyed apps' add-ons (see
/// [`hoist_store::Store::pending_deprovisions`]) and forgets each one once its provider
/// confirms. Deprovisioning is idempotent, so a crash between the two only repeats it.
/// What fails stays recorded and is retried by the next call (start-up, then every
/// sweep). Returns how many are still pending.
pub async fn finish_pending_deprovisions(store: &Store, reg: &Registry) -> usize {
    // One pass at a time: a destroy and the sweep must not drop the same database twice
    // concurrently.
    static ONE_PASS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _pass = ONE_PASS.lock().await;
    let pending = match store.pending_deprovisions() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list pending add-on deprovisions");
            return 0;
        }
    };
    let mut left = 0;
    for p in pending {
        let outcome = match reg.get(&p.service) {
            Some(provider) => provider.deprovision(&p.provider_id).await,
            None => Err(AddonError::UnknownService(p.service.clone())),
        };
        match outcome
            .map_err(|e| e.to_string())
            .and_then(|()| store.finish_deprovision(&p.id).map_err(|e| e.to_string()))
        {
            Ok(()) => {
                tracing::info!(addon = %p.addon_name, "deprovisioned add-on of a destroyed app")
            }
            Err(e) => {
                left += 1;
                tracing::warn!(addon = %p.addon_name, error = %e, "deprovisioning add-on of a destroyed app failed; will retry");
            }
        }
    }
    left
}

/// Partners that never call back: an add-on still `provisioning` after `max_age` is
/// deprovisioned and removed, so no half-attached add-on stays behind.
pub async fn sweep_stale_provisioning(st: SharedState, max_age: std::time::Duration) {
    let mut tick =
        tokio::time::interval(std::cmp::min(max_age, std::time::Duration::from_secs(30)));
    loop {
        tick.tick().await;
        if let Some(reg) = &st.addons {
            finish_pending_deprovisions(&st.store, reg).await;
        }
        let cutoff = (chrono::Utc::now() - chrono::Duration::from_std(max_age).unwrap_or_default())
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let Ok(stale) = st.store.stale_provisioning_addons(&cutoff) else {
            continue;
        };
        for addon in stale {
            if let (Some(reg), Ok(Some(pid))) =
                (st.addons.as_ref(), st.store.addon_provider_id(&addon.id))
            {
                if let Some(provider) = reg.get(&addon.service) {
                    let _ = provider.deprovision(&pid).await;
                }
            }
            let owner = match st
                .store
                .app(&addon.app_id)
                .and_then(|a| st.store.account(&a.owner_id))
            {
                Ok(o) => o,
                Err(_) => continue,
            };
            if let Ok(releases) = st.store.destroy_addon(&addon.id, &owner.id) {
                st.platform.api_event(
                    &addon.app_id,
                    &format!(
                        "{} was not provisioned within {} s; removed",
                        addon.name,
                        max_age.as_secs()
                    ),
                );
                released(&st, &owner, &releases);
            }
        }
    }
}
