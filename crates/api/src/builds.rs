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
/// How long an upload slot's URLs work (Heroku's pre-signed URLs: one hour).
const SOURCE_SLOT_TTL: chrono::Duration = chrono::Duration::hours(1);

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

/// Where an upload lives: named by the id's hash, the id being the capability.
fn source_file(st: &crate::ApiState, id: &str, ext: &str) -> PathBuf {
    sources_dir(st).join(format!("{}.{ext}", hoist_store::hash_token(id)))
}

/// The open slot behind a source id, or 404 (never issued, or expired).
fn open_slot(st: &crate::ApiState, id: &str) -> ApiResult<hoist_store::SourceSlot> {
    if !valid_source_id(id) {
        return Err(ApiError::not_found("source"));
    }
    st.store
        .source_slot(&hoist_store::hash_token(id))?
        .ok_or_else(|| {
            ApiError::not_found("source").with_message(
                "Couldn't find that source upload: it was never issued by POST /sources, or its hour is up.",
            )
        })
}

#[derive(Deserialize, Default)]
struct CreateSource {
    /// Optional declared size in bytes: the upload may not exceed it.
    size: Option<u64>,
}

async fn create_source(
    State(st): State<SharedState>,
    Auth(who): Auth,
    body: Bytes,
) -> ApiResult<Response> {
    let req: CreateSource = if body.iter().all(u8::is_ascii_whitespace) {
        CreateSource::default()
    } else {
        parse_body(&body)?
    };
    let max_bytes = match req.size {
        Some(n) if n > MAX_SOURCE_BYTES => {
            return Err(ApiError::invalid(
                "size is over the 1 GB limit for sources.",
            ))
        }
        Some(n) => n,
        None => MAX_SOURCE_BYTES,
    };
    let id = hoist_store::new_token();
    let expires = chrono::Utc::now() + SOURCE_SLOT_TTL;
    st.store.issue_source_slot(
        &hoist_store::hash_token(&id),
        &who.id,
        max_bytes,
        &expires.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )?;
    let url = format!("{}/sources/{id}", st.cfg.api_url.trim_end_matches('/'));
    Ok(json(
        StatusCode::CREATED,
        json!({"source_blob": {"get_url": url, "put_url": url, "expires_at": expires.format("%Y-%m-%dT%H:%M:%SZ").to_string()}}),
    ))
}

/// Deletes uploads whose slot expired, and any file in the sources directory that no
/// open slot claims (e.g. a half-written upload of a crashed daemon).
pub async fn sweep_expired_sources(st: SharedState, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(e) = st.store.take_expired_source_slots() {
            tracing::warn!(error = %e, "cannot sweep expired source slots");
            continue;
        }
        let Ok(mut dir) = tokio::fs::read_dir(sources_dir(&st)).await else {
            continue;
        };
        while let Ok(Some(entry)) = dir.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stem = name.split('.').next().unwrap_or_default();
            if !matches!(st.store.source_slot(stem), Ok(Some(_))) {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
    }
}

/// Heroku's app-scoped variant: the same upload slot, for callers with access to the app.
async fn create_app_source(
    State(st): State<SharedState>,
    Auth(who): Auth,
    Path(app): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    app_for(&st, &who, &app)?;
    create_source(State(st), Auth(who), body).await
}

async fn put_source(
    State(st): State<SharedState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let slot = open_slot(&st, &id)?;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_entity_too_large",
            format!(
                "This upload is limited to {} bytes (1 GB at most).",
                slot.max_bytes
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > slot.max_bytes) {
        return Err(too_large());
    }
    tokio::fs::create_dir_all(sources_dir(&st))
        .await
        .map_err(ApiError::io)?;
    let tmp = source_file(&st, &id, "part");
    let written = write_upload(&tmp, body, slot.max_bytes).await;
    let result = match written {
        Ok(true) => tokio::fs::rename(&tmp, source_file(&st, &id, "tgz"))
            .await
            .map_err(ApiError::io),
        Ok(false) => Err(too_large()),
        Err(e) => Err(e),
    };
    if result.is_err() {
        // Nothing of a refused or failed upload stays on disk.
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result.map(|()| (StatusCode::OK, "").into_response())
}

/// Streams a request body to `path`; `Ok(false)` once it passes `limit` bytes.
async fn write_upload(path: &std::path::Path, body: Body, limit: u64) -> ApiResult<bool> {
    let mut file = tokio::fs::File::create(path).await.map_err(ApiError::io)?;
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("Upload interrupted: {e}")))?;
        total += chunk.len() as u64;
        if total > limit {
            return Ok(false);
        }
        file.write_all(&chunk).await.map_err(ApiError::io)?;
    }
    file.flush().await.map_err(ApiError::io)?;
    Ok(true)
}

async fn get_source(State(st): State<SharedState>, Path(id): Path<String>) -> ApiResult<Response> {
    open_slot(&st, &id)?;
    let file = tokio::fs::File::open(source_file(&st, &id, "tgz"))
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
            if open_slot(st, id).is_err() {
                return Err("unknown or expired source URL (upload slots last one hour)".into());
            }
            let f = tokio::fs::File::open(source_file(st, id, "tgz"))
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
            crate::buildpacks::validate_buildpack(u)?;
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
    let body = output_stream(&st, &id, &st.deployer.build_log_path(&id)).unwrap_or_default();
    text_response(body)
}

/// A build's or release phase's output: live while it runs, else what was saved.
pub(crate) fn output_stream(
    st: &crate::ApiState,
    id: &str,
    saved: &std::path::Path,
) -> Option<Body> {
    match st.deployer.logs.get(id) {
        Some(log) => Some(Body::from_stream(log.stream())),
        None => std::fs::read(saved).ok().map(Body::from),
    }
}

pub(crate) fn text_response(body: Body) -> ApiResult<Response> {
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
