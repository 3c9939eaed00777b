use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{post, put};
use axum::{Json, Router};
use hoist_addons::{AddonError, ProvisionState};
use serde_json::{json, Value};

use crate::{registry, test_config};

/// (method, resource id or "", Authorization header, body)
type Call = (String, String, String, Value);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Call>>>);

impl Seen {
    fn record(&self, method: &str, id: &str, headers: &HeaderMap, body: Value) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        self.0
            .lock()
            .unwrap()
            .push((method.into(), id.into(), auth, body));
    }
    fn all(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }
}

async fn provision(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    seen.record("POST", "", &headers, body.clone());
    let plan = body["plan"].as_str().unwrap_or("");
    match plan {
        "test" => (
            StatusCode::OK,
            Json(
                json!({"id": "res-1", "config": {"MAILER_URL": "https://mail.example/1", "MAILER_API_KEY": "k-1"},
                        "message": "Welcome to Mailer"}),
            ),
        ),
        "evil" => (
            StatusCode::OK,
            Json(json!({"id": "res-evil", "config": {"MAILER_URL": "u", "PATH": "/tmp/evil"}})),
        ),
        "broken" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"message": "boom"})),
        ),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            (
                StatusCode::OK,
                Json(json!({"id": "res-slow", "config": {}})),
            )
        }
        "async" => (
            StatusCode::ACCEPTED,
            Json(json!({"id": 77, "message": "Provisioning in the background"})),
        ),
        _ => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"message": "no such plan"})),
        ),
    }
}

async fn change(
    State(seen): State<Seen>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    seen.record("PUT", &id, &headers, body);
    Json(json!({"config": {"MAILER_API_KEY": "k-rotated"}, "message": "plan changed"}))
}

async fn destroy(
    State(seen): State<Seen>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> StatusCode {
    seen.record("DELETE", &id, &headers, Value::Null);
    StatusCode::NO_CONTENT
}

async fn start_partner() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/heroku/resources", post(provision))
        .route("/heroku/resources/{id}", put(change).delete(destroy))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn write_manifests(data_dir: &std::path::Path, base_url: &str) {
    let dir = data_dir.join("addons/partners");
    std::fs::create_dir_all(&dir).unwrap();
    let plans: Vec<Value> = ["test", "evil", "broken", "slow", "async"]
        .iter()
        .map(|p| json!({"name": p}))
        .collect();
    let manifest = json!({
        "id": "mailer",
        "name": "Mailer",
        "plans": plans,
        "api": {
            "config_vars": ["MAILER_URL", "MAILER_API_KEY"],
            "password": "partner-secret",
            "sso_salt": "salt",
            "production": {"base_url": format!("{base_url}/")},
            "requires": []
        }
    });
    std::fs::write(dir.join("mailer.json"), manifest.to_string()).unwrap();
    std::fs::write(dir.join("broken.json"), "{\"id\": \"broken\"").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partner_api_provision_change_deprovision_and_faults() {
    let (base_url, seen) = start_partner().await;
    let tmp = tempfile::tempdir().unwrap();
    write_manifests(tmp.path(), &base_url);
    let mut cfg = test_config();
    cfg.partner.callback_base_url = Some("http://127.0.0.1:9/addons/callback".into());
    let reg = registry(tmp.path(), cfg);
    assert_eq!(
        reg.manifest_errors().len(),
        1,
        "{:?}",
        reg.manifest_errors()
    );
    let svc = reg
        .services()
        .into_iter()
        .find(|s| s.name == "mailer")
        .unwrap();
    assert_eq!(svc.config_var, "MAILER");
    let mailer = reg.get("mailer").unwrap();
    let opts = BTreeMap::from([("region".to_string(), "eu".to_string())]);
    let expected_auth = "Basic bWFpbGVyOnBhcnRuZXItc2VjcmV0"; // mailer:partner-secret

    // Synchronous provisioning.
    let p = mailer
        .provision("mailer-cubic-12345", "test", &opts)
        .await
        .unwrap();
    assert_eq!(p.provider_id, "res-1");
    assert_eq!(p.state, ProvisionState::Provisioned);
    assert_eq!(
        p.config.get("URL").map(String::as_str),
        Some("https://mail.example/1")
    );
    assert_eq!(p.config.get("API_KEY").map(String::as_str), Some("k-1"));
    assert_eq!(p.message.as_deref(), Some("Welcome to Mailer"));
    let calls = seen.all();
    let (method, _, auth, body) = &calls[0];
    assert_eq!((method.as_str(), auth.as_str()), ("POST", expected_auth));
    assert_eq!(body["plan"], "test");
    assert_eq!(body["heroku_id"], "mailer-cubic-12345@hoist");
    assert_eq!(
        body["callback_url"],
        "http://127.0.0.1:9/addons/callback/mailer-cubic-12345"
    );
    assert_eq!(body["options"]["region"], "eu");
    assert_eq!(body["uuid"].as_str().unwrap().len(), 36);

    // Plan change and deprovision carry basic auth.
    let changed = mailer.change_plan("res-1", "async").await.unwrap();
    assert_eq!(
        changed,
        Some(BTreeMap::from([(
            "API_KEY".to_string(),
            "k-rotated".to_string()
        )]))
    );
    mailer.deprovision("res-1").await.unwrap();
    let calls = seen.all();
    assert_eq!(calls[1].0, "PUT");
    assert_eq!(
        (calls[1].1.as_str(), calls[1].2.as_str()),
        ("res-1", expected_auth)
    );
    assert_eq!(calls[1].3, json!({"plan": "async"}));
    assert_eq!(calls[2].0, "DELETE");
    assert_eq!(
        (calls[2].1.as_str(), calls[2].2.as_str()),
        ("res-1", expected_auth)
    );

    // Undeclared config var: error naming the var (not the value), and the partner's
    // resource is deprovisioned so nothing is orphaned.
    let err = mailer
        .provision("mailer-flat-1", "evil", &opts)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("PATH") && !msg.contains("/tmp/evil"), "{msg}");
    let calls = seen.all();
    assert_eq!(
        (calls[4].0.as_str(), calls[4].1.as_str()),
        ("DELETE", "res-evil")
    );

    // 500 -> clear error.
    let err = mailer
        .provision("mailer-flat-2", "broken", &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AddonError::Provider(m) if m.contains("500")),
        "{err:?}"
    );

    // Timeout -> Timeout (test timeout is 800 ms, the partner sleeps 5 s).
    let err = mailer
        .provision("mailer-flat-3", "slow", &opts)
        .await
        .unwrap_err();
    assert!(matches!(err, AddonError::Timeout(_)), "{err:?}");

    // Unknown plan is rejected locally, without a call.
    let before = seen.all().len();
    assert!(matches!(
        mailer.provision("mailer-flat-4", "nope", &opts).await,
        Err(AddonError::UnknownPlan { .. })
    ));
    assert_eq!(seen.all().len(), before);

    // Asynchronous: 202, no config yet; the callback's config is validated later.
    let p = mailer
        .provision("mailer-flat-5", "async", &opts)
        .await
        .unwrap();
    assert_eq!(p.state, ProvisionState::Provisioning);
    assert_eq!(p.provider_id, "77");
    assert!(p.config.is_empty());
    let accepted = reg
        .accept_callback_config("mailer", &json!({"MAILER_URL": "https://mail.example/77"}))
        .unwrap();
    assert_eq!(
        accepted,
        BTreeMap::from([("URL".to_string(), "https://mail.example/77".to_string())])
    );
    assert!(reg
        .accept_callback_config("mailer", &json!({"OTHER": "x"}))
        .is_err());
    assert!(reg.accept_callback_config("nobody", &json!({})).is_err());
    assert!(reg.verify_callback_auth("mailer", expected_auth));
    assert!(!reg.verify_callback_auth("mailer", "Basic bWFpbGVyOndyb25n"));
}

#[tokio::test]
async fn partner_unreachable_is_a_clear_error() {
    // A port nobody listens on (bound then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    write_manifests(tmp.path(), &format!("http://127.0.0.1:{port}"));
    let reg = registry(tmp.path(), test_config());
    let err = reg
        .get("mailer")
        .unwrap()
        .provision("mailer-x-1", "test", &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AddonError::Provider(m) if m.contains("mailer")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("partner-secret"));
}
