//! JSON shapes of API resources, as the Platform API schema and the Heroku CLI expect.

use crate::ApiConfig;
use hoist_store::{Account, App, Build, Collaborator, Domain, Dyno, Formation, Release};
use serde_json::{json, Value};

pub fn account(a: &Account) -> Value {
    json!({
        "id": a.id, "email": a.email, "name": a.email.split('@').next().unwrap_or(""),
        "allow_tracking": false, "beta": false, "verified": true,
        "two_factor_authentication": false, "federated": false, "default_organization": null,
        "default_team": null, "delinquent_at": null, "suspended_at": null, "sms_number": null,
        "identity_provider": null, "country_of_residence": null, "acknowledged_msa": true,
        "last_login": a.updated_at, "created_at": a.created_at, "updated_at": a.updated_at,
        "owner": a.is_owner,
    })
}

fn stack(name: &str) -> Value {
    json!({"id": uuid_for(name), "name": name})
}

/// The platform's one stack, as `GET /stacks` lists it.
pub fn platform_stack(cfg: &ApiConfig) -> Value {
    json!({
        "id": uuid_for(&cfg.stack), "name": cfg.stack, "state": "public", "default": true,
    })
}

/// Whether `ident` (a stack name or id) names the platform's stack.
pub fn is_platform_stack(cfg: &ApiConfig, ident: &str) -> bool {
    ident.eq_ignore_ascii_case(&cfg.stack) || ident == uuid_for(&cfg.stack)
}

/// A stable UUID for a fixed name (stacks, regions), so clients see consistent ids.
fn uuid_for(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

pub fn app_ref(app: &App) -> Value {
    json!({"id": app.id, "name": app.name})
}

pub fn app(cfg: &ApiConfig, a: &App) -> Value {
    json!({
        "id": a.id, "name": a.name,
        "web_url": cfg.web_url(&a.name), "git_url": cfg.git_url(&a.name),
        // Apps run on the platform's one stack, whatever name an older version stored.
        "stack": stack(&cfg.stack), "build_stack": stack(&cfg.stack),
        "region": {"id": uuid_for(&a.region), "name": a.region},
        "owner": {"id": a.owner_id, "email": a.owner_email},
        "organization": null, "team": null, "space": null, "internal_routing": null,
        "maintenance": a.maintenance, "acm": false, "locked": false,
        "repo_size": null, "slug_size": a.slug_size, "archived_at": null,
        "buildpack_provided_description": null,
        "create_status": "complete", "generation": {"name": "cedar"}, "process_tier": "basic",
        "created_at": a.created_at, "updated_at": a.updated_at, "released_at": a.released_at,
    })
}

pub fn release(app: &App, r: &Release, output_stream_url: Option<String>) -> Value {
    json!({
        "id": r.id, "version": r.version, "description": r.description,
        "status": r.status.as_str(), "current": r.current,
        "eligible_for_rollback": r.status == hoist_store::ReleaseStatus::Succeeded,
        "user": {"id": r.user_id, "email": r.user_email},
        "addon_plan_names": r.addon_plan_names,
        "output_stream_url": output_stream_url,
        "slug": r.slug_id.as_ref().map(|id| json!({"id": id})),
        "app": app_ref(app),
        "artifacts": r.slug_id.as_ref().map(|id| vec![json!({"type": "slug", "id": id})]).unwrap_or_default(),
        "created_at": r.created_at, "updated_at": r.updated_at,
    })
}

pub fn formation(app: &App, f: &Formation) -> Value {
    json!({
        "id": f.id, "type": f.process_type, "quantity": f.quantity, "size": f.size,
        "command": f.command, "app": app_ref(app),
        "created_at": f.created_at, "updated_at": f.updated_at,
    })
}

pub fn dyno(app: &App, d: &Dyno) -> Value {
    json!({
        "id": d.id, "name": d.name, "type": d.process_type, "state": d.state,
        "size": d.size, "command": d.command, "attach_url": null,
        "release": {"id": null, "version": d.release_version},
        "app": app_ref(app), "created_at": d.created_at, "updated_at": d.updated_at,
    })
}

pub fn collaborator(app: &App, c: &Collaborator) -> Value {
    json!({
        "id": c.id, "app": app_ref(app), "role": "collaborator",
        "permissions": [{"name": "view"}, {"name": "deploy"}, {"name": "operate"}],
        "user": {"id": c.account_id, "email": c.email, "federated": false},
        "created_at": c.created_at, "updated_at": c.updated_at,
    })
}

pub fn owner_as_collaborator(app: &App) -> Value {
    json!({
        "id": app.owner_id, "app": app_ref(app), "role": "owner",
        "permissions": [{"name": "view"}, {"name": "deploy"}, {"name": "operate"}, {"name": "manage"}],
        "user": {"id": app.owner_id, "email": app.owner_email, "federated": false},
        "created_at": app.created_at, "updated_at": app.updated_at,
    })
}

pub fn default_domain(cfg: &ApiConfig, app: &App) -> Value {
    json!({
        "id": app.id, "hostname": format!("{}.{}", app.name, cfg.domain), "kind": "heroku",
        "cname": null, "status": "succeeded", "acm_status": null, "acm_status_reason": null,
        "sni_endpoint": null, "app": app_ref(app),
        "created_at": app.created_at, "updated_at": app.updated_at,
    })
}

pub fn domain(cfg: &ApiConfig, app: &App, d: &Domain) -> Value {
    json!({
        "id": d.id, "hostname": d.hostname, "kind": "custom",
        "cname": format!("{}.{}", app.name, cfg.domain), "status": "succeeded",
        "acm_status": null, "acm_status_reason": null, "sni_endpoint": null,
        "app": app_ref(app), "created_at": d.created_at, "updated_at": d.updated_at,
    })
}

pub fn build(cfg: &ApiConfig, app: &App, b: &Build) -> Value {
    json!({
        "id": b.id, "status": b.status, "app": app_ref(app),
        // Hoist's addition: why a build failed when its output cannot say (interrupted).
        "status_reason": b.status_reason,
        "source_blob": {"url": b.source_url, "version": b.source_version, "checksum": null, "version_description": null},
        "buildpacks": b.buildpacks.iter().map(|u| json!({"url": u, "name": u})).collect::<Vec<_>>(),
        "output_stream_url": format!("{}/apps/{}/builds/{}/output", cfg.api_url.trim_end_matches('/'), app.id, b.id),
        "slug": b.slug_id.as_ref().map(|id| json!({"id": id})),
        "release": b.release_id.as_ref().map(|id| json!({"id": id})),
        "user": {"id": b.user_id, "email": b.user_email},
        "stack": cfg.stack,
        "created_at": b.created_at, "updated_at": b.updated_at,
    })
}

/// Where `addons:open` sends the user: the add-on's details on this API (Hoist has no
/// add-on dashboards; the page needs the API token like every other).
pub fn addon_web_url(cfg: &ApiConfig, addon_id: &str) -> String {
    format!(
        "{}/addons/{addon_id}/info",
        cfg.api_url.trim_end_matches('/')
    )
}

fn addon_plan(a: &hoist_store::Addon, price_cents: u64) -> Value {
    let name = format!("{}:{}", a.service, a.plan);
    json!({"id": uuid_for(&name), "name": name,
           "price": {"cents": price_cents, "unit": "month", "contract": false, "metered": false}})
}

/// An add-on; `price_cents` is its plan's price (the registry knows it, views do not).
pub fn addon(cfg: &ApiConfig, a: &hoist_store::Addon, price_cents: u64) -> Value {
    json!({
        "id": a.id, "name": a.name, "state": a.state,
        "app": {"id": a.app_id, "name": a.app_name},
        "addon_service": {"id": uuid_for(&a.service), "name": a.service},
        "plan": addon_plan(a, price_cents),
        "billed_price": {"cents": price_cents, "contract": false, "unit": "month"},
        "config_vars": a.config_vars, "provider_id": a.id, "web_url": addon_web_url(cfg, &a.id),
        "created_at": a.created_at, "updated_at": a.updated_at,
    })
}

/// An attachment, with what the Heroku CLI's `Accept-Inclusion: addon:plan,config_vars`
/// asks for always included (its pg commands read `addon.plan.name`).
pub fn attachment(cfg: &ApiConfig, t: &hoist_store::AddonAttachment) -> Value {
    let a = &t.addon;
    let config_vars: Vec<String> = a
        .config_keys
        .iter()
        .map(|k| format!("{}_{k}", t.name))
        .collect();
    json!({
        "id": t.id, "name": t.name, "app": {"id": t.app_id, "name": t.app_name},
        "addon": {"id": a.id, "name": a.name, "app": {"id": a.app_id, "name": a.app_name},
                  "addon_service": {"id": uuid_for(&a.service), "name": a.service},
                  "plan": {"id": uuid_for(&format!("{}:{}", a.service, a.plan)), "name": format!("{}:{}", a.service, a.plan)}},
        "addon_service": {"id": uuid_for(&a.service), "name": a.service},
        "config_vars": config_vars,
        "namespace": null, "web_url": addon_web_url(cfg, &a.id), "log_input_url": null,
        "created_at": t.created_at, "updated_at": t.updated_at,
    })
}
