//! "Deploy from GitHub" without GitHub in the loop: a code host posts its push event
//! to `/apps/{app}/webhooks/push`, signed with HMAC-SHA256 over the body
//! (`X-Hub-Signature-256: sha256=<hex>`) using the app's webhook secret; Hoist builds
//! the pushed commit from the event's tarball URL.

use crate::error::{ApiError, ApiResult};
use crate::{app_for, json, Auth, SharedState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/apps/{app}/webhook", get(webhook_info))
        .route("/apps/{app}/webhooks/push", post(push_event))
}

/// Where to send push events and the secret to sign them with (owner/collaborators only).
async fn webhook_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    Ok(json(
        StatusCode::OK,
        json!({
            "url": format!("{}/apps/{}/webhooks/push", st.cfg.api_url.trim_end_matches('/'), app.name),
            "secret": app.webhook_secret,
            "content_type": "application/json",
            "signature_header": "X-Hub-Signature-256",
        }),
    ))
}

/// Verifies `sha256=<hex>` against the body in constant time.
pub fn verify_signature(secret: &str, body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The tarball of the pushed commit: an explicit `tarball_url`, or GitHub's
/// `repository.archive_url` template filled in with the commit.
fn tarball_url(event: &Value, sha: &str) -> Option<String> {
    if let Some(u) = event.get("tarball_url").and_then(Value::as_str) {
        return Some(u.to_string());
    }
    let template = event.get("repository")?.get("archive_url")?.as_str()?;
    Some(
        template
            .replace("{archive_format}", "tarball")
            .replace("{/ref}", &format!("/{sha}")),
    )
}

async fn push_event(
    State(st): State<SharedState>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let app = st.store.app(&app).map_err(|_| ApiError::not_found("app"))?;
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !verify_signature(&app.webhook_secret, &body, sig) {
        return Err(ApiError::unauthorized()
            .with_message("Invalid or missing X-Hub-Signature-256 signature."));
    }
    if headers.get("x-github-event").and_then(|v| v.to_str().ok()) == Some("ping") {
        return Ok(json(StatusCode::OK, json!({"message": "pong"})));
    }
    let event: Value = crate::parse_body(&body)?;
    let git_ref = event.get("ref").and_then(Value::as_str).unwrap_or_default();
    if git_ref != "refs/heads/main" && git_ref != "refs/heads/master" {
        return Ok(json(
            StatusCode::ACCEPTED,
            json!({"message": format!("Ignored push to {git_ref:?}: only main or master deploy.")}),
        ));
    }
    let sha = event
        .get("after")
        .and_then(Value::as_str)
        .filter(|s| s.len() >= 7 && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| ApiError::invalid("The push event has no valid \"after\" commit."))?
        .to_string();
    let url = tarball_url(&event, &sha).ok_or_else(|| {
        ApiError::invalid("The push event has no tarball_url or repository.archive_url.")
    })?;
    let owner = st.store.account(&app.owner_id)?;
    let build = crate::builds::start_source_build(&st, app, owner, url, Some(sha)).await?;
    Ok(json(StatusCode::ACCEPTED, build))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{}");
        let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(verify_signature("s3cret", b"{}", Some(&good)));
        assert!(!verify_signature("other", b"{}", Some(&good)));
        assert!(!verify_signature("s3cret", b"{ }", Some(&good)));
        assert!(!verify_signature("s3cret", b"{}", Some("sha256=zz")));
        assert!(!verify_signature("s3cret", b"{}", None));
    }

    #[test]
    fn tarball_urls_from_github_events() {
        let ev = json!({"repository": {"archive_url": "http://127.0.0.1:1/repos/o/r/{archive_format}{/ref}"}});
        assert_eq!(
            tarball_url(&ev, "abc1234").unwrap(),
            "http://127.0.0.1:1/repos/o/r/tarball/abc1234"
        );
        let ev = json!({"tarball_url": "http://x/t.tgz"});
        assert_eq!(tarball_url(&ev, "abc1234").unwrap(), "http://x/t.tgz");
    }
}
