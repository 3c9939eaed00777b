//! The Build API: `POST /sources` (an upload slot), `POST /apps/{app}/builds` from a
//! tarball URL, build listing/info, and the build output stream.

use crate::error::{ApiError, ApiResult};
use crate::git::SOURCE_LIMITS;
use crate::{app_for, json, paginate, parse_body, views, Auth, SharedState};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;
use tokio_util::io::StreamReader;

/// Largest source tarball accepted (upload or download).
const MAX_SOURCE_BYTES: u64 = 1 << 30;

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/sources", post(create_source))
        .route("/apps/{app}/sources", post(create_app_source))
        .route("/sources/{id}", get(get_source).put(put_source))
        .route("/apps/{app}/builds", get(list_builds).post(create_build))
        .route("/apps/{app}/builds/{id}", get(build_info))
        .route("/apps/{app}/builds/{id}/output", get(build_output))
}

fn sources_dir(st: &crate::ApiState) -> PathBuf {
    st.data_dir.join("sources")
}

/// Source ids are 256-bit random capabilities: the upload and download URLs carry no
/// other credential (like the pre-signed URLs Heroku's CLI expects).
fn valid_source_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn create_source(State(st): State<SharedState>, Auth(_who): Auth) -> ApiResult<Response> {
    let id = hoist_store::new_token();
    let url = format!("{}/sources/{id}", st.cfg.api_url.trim_end_matches('/'));
    Ok(json(
        StatusCode::CREATED,
        json!({"source_blob": {"get_url": url, "put_url": url}}),
    ))
}

/// Heroku's app-scoped variant: the same upload slot, for callers with access to the app.
async fn create_app_source(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
) -> ApiResult<Response> {
    app_for(&st, &who, &app)?;
    create_source(State(st), Auth(who)).await
}

async fn put_source(
    State(st): State<SharedState>,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult<Response> {
    if !valid_source_id(&id) {
        return Err(ApiError::not_found("source"));
    }
    let dir = sources_dir(&st);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    let tmp = dir.join(format!("{id}.part"));
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(ApiError::internal)?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("Upload interrupted: {e}")))?;
        total += chunk.len() as u64;
        if total > MAX_SOURCE_BYTES {
            drop(file);
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_entity_too_large",
                "Source tarballs are limited to 1 GB.",
            ));
        }
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.flush().await.map_err(ApiError::internal)?;
    tokio::fs::rename(&tmp, dir.join(format!("{id}.tgz")))
        .await
        .map_err(ApiError::internal)?;
    Ok((StatusCode::OK, "").into_response())
}

async fn get_source(State(st): State<SharedState>, Path(id): Path<String>) -> ApiResult<Response> {
    if !valid_source_id(&id) {
        return Err(ApiError::not_found("source"));
    }
    let file = tokio::fs::File::open(sources_dir(&st).join(format!("{id}.tgz")))
        .await
        .map_err(|_| ApiError::not_found("source"))?;
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from_stream(tokio_util::io::ReaderStream::new(file)))
        .map_err(ApiError::internal)
}

#[derive(Deserialize)]
struct SourceBlob {
    url: String,
    version: Option<String>,
}

#[derive(Deserialize)]
struct CreateBuild {
    source_blob: SourceBlob,
    buildpacks: Option<Vec<BuildpackRef>>,
}

#[derive(Deserialize)]
struct BuildpackRef {
    url: String,
}

/// Fetches a source tarball: from Hoist's own `/sources` directly, else over HTTP(S).
async fn fetch_source(
    st: &crate::ApiState,
    url: &str,
    dest: &std::path::Path,
) -> Result<(), String> {
    let own = format!("{}/sources/", st.cfg.api_url.trim_end_matches('/'));
    let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> =
        if let Some(id) = url.strip_prefix(&own) {
            if !valid_source_id(id) {
                return Err("unknown source URL".into());
            }
            let f = tokio::fs::File::open(sources_dir(st).join(format!("{id}.tgz")))
                .await
                .map_err(|_| {
                    "the uploaded source was not found (was the PUT completed?)".to_string()
                })?;
            Box::new(f)
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let parsed = url::Url::parse(url)
                .map_err(|_| "source_blob.url is not a valid URL".to_string())?;
            st.cfg
                .egress
                .check_url(&parsed)
                .await
                .map_err(|e| format!("the source URL was refused: {e}"))?;
            let resp = st
                .cfg
                .egress
                .http_client()
                .build()
                .map_err(|e| format!("downloading the source failed: {e}"))?
                .get(parsed)
                .timeout(std::time::Duration::from_secs(600))
                .send()
                .await
                .map_err(|e| format!("downloading the source failed: {e}"))?;
            if !resp.status().is_success() {
                return Err(format!(
                    "downloading the source failed: HTTP {}",
                    resp.status()
                ));
            }
            if resp.content_length().is_some_and(|n| n > MAX_SOURCE_BYTES) {
                return Err("the source tarball is larger than 1 GB".into());
            }
            Box::new(StreamReader::new(
                resp.bytes_stream()
                    .map(|r| r.map_err(std::io::Error::other)),
            ))
        } else {
            return Err("source_blob.url must be an http(s) URL".into());
        };
    let dest = dest.to_path_buf();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _guard = handle.enter();
        let sync = tokio_util::io::SyncIoBridge::new(reader);
        hoist_build::unpack_source_tar_gz(sync, &dest, &SOURCE_LIMITS)
            .map_err(|e| format!("the source tarball is invalid: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn create_build(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let req: CreateBuild = parse_body(&body)?;
    if req.source_blob.url.len() > 4096 {
        return Err(ApiError::invalid("source_blob.url is too long."));
    }
    if let Some(v) = &req.source_blob.version {
        if v.len() > 256 || v.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "source_blob.version must be a short printable string.",
            ));
        }
    }
    if let Some(bps) = &req.buildpacks {
        let urls: Vec<String> = bps.iter().map(|b| b.url.clone()).collect();
        for u in &urls {
            crate::misc::validate_buildpack(u)?;
        }
        st.store.set_buildpacks(&app.id, &urls)?;
    }
    let body = start_source_build(
        &st,
        app,
        who,
        req.source_blob.url.clone(),
        req.source_blob.version.clone(),
    )
    .await?;
    Ok(json(StatusCode::CREATED, body))
}

async fn list_builds(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let items = st
        .store
        .builds(&app.id)?
        .iter()
        .map(|b| views::build(&st.cfg, &app, b))
        .collect();
    paginate(
        &headers,
        "created_at",
        &["id", "created_at", "updated_at"],
        items,
    )
}

async fn build_info(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = app_for(&st, &who, &app)?;
    let b = st.store.build(&app.id, &id)?;
    Ok(json(StatusCode::OK, views::build(&st.cfg, &app, &b)))
}

/// The output stream URL is a capability (the build's random id), read without a token
/// as the Heroku CLI does: every line so far, then live lines until the build ends.
async fn build_output(
    State(st): State<SharedState>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let app = st
        .store
        .app(&app)
        .map_err(|_| ApiError::not_found("build"))?;
    st.store.build(&app.id, &id)?;
    let body = match st.deployer.logs.get(&id) {
        Some(log) => Body::from_stream(log.stream()),
        None => Body::from(std::fs::read(st.deployer.build_log_path(&id)).unwrap_or_default()),
    };
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .map_err(ApiError::internal)
}

/// Claims the app's build slot, records the build and runs it in the background from
/// a tarball URL; returns the build as JSON.
pub(crate) async fn start_source_build(
    st: &SharedState,
    app: hoist_store::App,
    who: hoist_store::Account,
    url: String,
    version: Option<String>,
) -> ApiResult<serde_json::Value> {
    let slot = st.deployer.claim(&app)?;
    let (build, log) = st
        .deployer
        .start_build(&app, &who, version.as_deref(), Some(&url))?;
    let body = views::build(&st.cfg, &app, &build);
    let st2 = st.clone();
    tokio::spawn(async move {
        let src = st2
            .deployer
            .source_root()
            .join(uuid::Uuid::new_v4().to_string());
        log.push("-----> Fetching source");
        match fetch_source(&st2, &url, &src).await {
            Ok(()) => {
                let web_url = st2.cfg.web_url(&app.name);
                let job = crate::deploy::BuildJob {
                    slot,
                    app,
                    user: who,
                    build,
                    log,
                };
                let _ = st2.deployer.run(job, src, web_url).await;
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&src);
                log.push(&format!(" !     {e}"));
                let _ = st2.store.finish_build(&build.id, "failed", None, None);
                log.finish();
            }
        }
    });
    Ok(body)
}
