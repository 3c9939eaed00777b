//! Git smart HTTP at `/<app>.git` with the real `git http-backend` (CGI), HTTP Basic
//! auth with the API token as password. Pushes run a `pre-receive` hook (the `hoist`
//! binary) that streams the pushed tree back to `/internal/git-push`, where the build
//! runs; its output reaches the pusher as `remote:` lines and a failed build rejects
//! the push.

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::{ApiState, SharedState};
use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use hoist_store::App;
use serde::Deserialize;
use std::path::{Path as FsPath, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::io::{ReaderStream, StreamReader};

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/{repo}/info/refs", get(git_cgi))
        .route("/{repo}/git-receive-pack", post(git_cgi))
        .route("/{repo}/git-upload-pack", post(git_cgi))
        .route("/internal/git-push", post(hook_push))
}

/// Final line of the hook protocol; the hook exits with the push's verdict.
/// Bounds for pushed or uploaded source trees (a tar bomb fails the build clearly).
pub const SOURCE_LIMITS: hoist_build::UnpackLimits = hoist_build::UnpackLimits {
    max_bytes: 2 << 30,
    max_entries: 500_000,
    max_depth: 64,
    allow_outside_symlinks: false,
};

pub const HOOK_STATUS_PREFIX: &str = "\u{1}hoist-push-status: ";

fn git_error(status: StatusCode, msg: &str) -> Response {
    let mut r = (status, format!("{msg}\n")).into_response();
    // Git prints plain-text errors to the pusher; keep them out of the JSON rewriting.
    r.extensions_mut().insert(crate::PlainError);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"hoist\""),
        );
    }
    r
}

pub fn repo_path(st: &ApiState, app: &App) -> PathBuf {
    st.data_dir.join("repos").join(format!("{}.git", app.id))
}

/// Creates the app's bare repository (once) and (re)writes its pre-receive hook.
async fn ensure_repo(st: &ApiState, app: &App) -> std::io::Result<PathBuf> {
    let path = repo_path(st, app);
    if !path.join("HEAD").exists() {
        tokio::fs::create_dir_all(&path).await?;
        let out = tokio::process::Command::new("git")
            .args(["init", "--bare", "--quiet", "--initial-branch=main"])
            .arg(&path)
            .output()
            .await?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "git init failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    let hook = path.join("hooks").join("pre-receive");
    let script = format!(
        "#!/bin/sh\nexec '{}' git-hook pre-receive\n",
        st.hoist_exe.display().to_string().replace('\'', "'\\''")
    );
    if tokio::fs::read_to_string(&hook).await.ok().as_deref() != Some(script.as_str()) {
        tokio::fs::create_dir_all(hook.parent().unwrap_or(FsPath::new("."))).await?;
        tokio::fs::write(&hook, script).await?;
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).await?;
    }
    Ok(path)
}

async fn git_cgi(
    State(st): State<SharedState>,
    Path(repo): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Body,
) -> Response {
    let Some(app_name) = repo.strip_suffix(".git") else {
        return git_error(
            StatusCode::NOT_FOUND,
            "Not a git repository URL; use <api>/<app>.git",
        );
    };
    let who =
        match authenticate(&st, &headers) {
            Ok(w) => w,
            Err(_) => return git_error(
                StatusCode::UNAUTHORIZED,
                "Invalid credentials: use your Hoist API token as the password (hoist auth:token).",
            ),
        };
    let app = match st.store.app(app_name) {
        Ok(a) => a,
        Err(_) => {
            return git_error(
                StatusCode::NOT_FOUND,
                &format!("Couldn't find app {app_name}."),
            )
        }
    };
    match st.store.has_access(&app, &who) {
        Ok(true) => {}
        Ok(false) => {
            return git_error(
                StatusCode::FORBIDDEN,
                &format!("You do not have access to the app {}.", app.name),
            )
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    let repo_dir = match ensure_repo(&st, &app).await {
        Ok(p) => p,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let suffix = uri
        .path()
        .rsplit_once(".git")
        .map(|(_, s)| s.to_string())
        .unwrap_or_default();
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env(
            "GIT_PROJECT_ROOT",
            repo_dir.parent().unwrap_or(FsPath::new("/")),
        )
        .env("PATH_INFO", format!("/{}.git{suffix}", app.id))
        .env("REQUEST_METHOD", method.as_str())
        .env("QUERY_STRING", query.unwrap_or_default())
        .env("REMOTE_USER", &who.email)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env(
            "HOIST_HOOK_URL",
            format!("{}/internal/git-push", st.internal_url),
        )
        .env("HOIST_HOOK_SECRET", &st.hook_secret)
        .env("HOIST_APP_ID", &app.id)
        .env("HOIST_USER_ID", &who.id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, env) in [
        (header::CONTENT_TYPE, "CONTENT_TYPE"),
        (header::CONTENT_ENCODING, "HTTP_CONTENT_ENCODING"),
        (header::CONTENT_LENGTH, "CONTENT_LENGTH"),
    ] {
        if let Some(v) = headers.get(&name).and_then(|v| v.to_str().ok()) {
            cmd.env(env, v);
        }
    }
    if let Some(v) = headers.get("git-protocol").and_then(|v| v.to_str().ok()) {
        cmd.env("GIT_PROTOCOL", v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return ApiError::internal(format!("starting git http-backend: {e}")).into_response()
        }
    };
    let (Some(mut stdin), Some(stdout), Some(mut stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return ApiError::internal("git http-backend without pipes").into_response();
    };
    // Stream the (possibly huge, chunked) request body into git.
    tokio::spawn(async move {
        let mut reader = StreamReader::new(
            body.into_data_stream()
                .map(|r| r.map_err(std::io::Error::other)),
        );
        let _ = tokio::io::copy(&mut reader, &mut stdin).await;
        let _ = stdin.shutdown().await;
    });
    tokio::spawn(async move {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err).await;
        if !err.trim().is_empty() {
            tracing::debug!(stderr = %err.trim(), "git http-backend");
        }
    });
    // CGI response: headers, blank line, body.
    let mut out = BufReader::new(stdout);
    let mut status = StatusCode::OK;
    let mut builder = Response::builder();
    loop {
        let mut line = String::new();
        match out.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("Status") {
                status = v
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse::<u16>().ok())
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            } else {
                builder = builder.header(k.trim(), v);
            }
        }
    }
    let stream = ReaderStream::new(out).chain(futures::stream::once(async move {
        let _ = child.wait().await;
        Ok(bytes::Bytes::new())
    }));
    builder
        .status(status)
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| ApiError::internal(e).into_response())
}

#[derive(Deserialize)]
struct HookQuery {
    app: String,
    user: String,
    #[serde(rename = "ref")]
    git_ref: String,
    new: String,
}

/// Why a push to `git_ref` does not deploy, or `None` for main and master.
pub fn branch_refusal(git_ref: &str) -> Option<String> {
    (git_ref != "refs/heads/main" && git_ref != "refs/heads/master").then(|| {
        format!(
            " !     Pushed to branch {}; only main or master deploy. Push with: git push hoist <branch>:main",
            git_ref.trim_start_matches("refs/heads/")
        )
    })
}

/// Called by the pre-receive hook with `git archive --format=tar.gz <new>` as body.
/// Streams build output as plain text lines, then a status line for the hook.
async fn hook_push(
    State(st): State<SharedState>,
    Query(q): Query<HookQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let secret = headers
        .get("x-hoist-hook-secret")
        .and_then(|v| v.to_str().ok());
    if secret != Some(st.hook_secret.as_str()) {
        return ApiError::forbidden("Invalid hook secret.").into_response();
    }
    let finish = |lines: Vec<String>, ok: bool| -> Response {
        let mut text: String = lines.into_iter().map(|l| format!("{l}\n")).collect();
        text.push_str(&format!(
            "{HOOK_STATUS_PREFIX}{}\n",
            if ok { "ok" } else { "rejected" }
        ));
        text.into_response()
    };
    let claimed = match (st.store.app(&q.app), st.store.account(&q.user)) {
        (Ok(app), Ok(user)) => match branch_refusal(&q.git_ref) {
            Some(refusal) => Err(refusal),
            None => st
                .deployer
                .claim(&app)
                .map(|slot| (app, user, slot))
                .map_err(|e| format!(" !     {}", e.message)),
        },
        _ => Err("!     Unknown app or user.".into()),
    };
    let (app, user, slot) = match claimed {
        Ok(c) => c,
        Err(refusal) => {
            // Read the refused upload to its end, so the hook sees the refusal rather
            // than a connection closed under its request.
            let mut stream = body.into_data_stream();
            while let Some(Ok(_)) = stream.next().await {}
            return finish(vec![refusal], false);
        }
    };
    let src = st
        .deployer
        .source_root()
        .join(uuid::Uuid::new_v4().to_string());
    let reader = StreamReader::new(
        body.into_data_stream()
            .map(|r| r.map_err(std::io::Error::other)),
    );
    let dest = src.clone();
    let unpacked = tokio::task::spawn_blocking(move || {
        let sync = tokio_util::io::SyncIoBridge::new(reader);
        hoist_build::unpack_tar_gz(sync, &dest, &SOURCE_LIMITS)
    })
    .await;
    match unpacked {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = std::fs::remove_dir_all(&src);
            return finish(
                vec![format!(" !     Could not read the pushed source: {e}")],
                false,
            );
        }
        Err(e) => return finish(vec![format!(" !     {e}")], false),
    }
    let (build, log) = match st.deployer.start_build(&app, &user, Some(&q.new), None) {
        Ok(x) => x,
        Err(e) => return finish(vec![format!(" !     {}", e.message)], false),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<bool>();
    let deployer = st.deployer.clone();
    let web_url = st.cfg.web_url(&app.name);
    let run_log = log.clone();
    tokio::spawn(async move {
        let job = crate::deploy::BuildJob {
            slot,
            app,
            user,
            build,
            log: run_log,
        };
        let ok = deployer.run(job, src, web_url).await.is_ok();
        let _ = tx.send(ok);
    });
    let stream = log.stream().chain(futures::stream::once(async move {
        let ok = rx.await.unwrap_or(false);
        Ok(bytes::Bytes::from(format!(
            "{HOOK_STATUS_PREFIX}{}\n",
            if ok { "ok" } else { "rejected" }
        )))
    }));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| ApiError::internal(e).into_response())
}
