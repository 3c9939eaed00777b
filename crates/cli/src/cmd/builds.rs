//! builds, builds:output and deploy (source upload + build without git).

use super::app_path;
use crate::ctx::Ctx;
use crate::error::{CliError, CliResult};
use crate::git;
use crate::output::{ago, format_time, print_json, s};
use crate::pack;
use serde_json::{json, Value};
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

fn recent(ctx: &Ctx, app: &str, max: usize) -> CliResult<Vec<Value>> {
    ctx.api.get_page(
        &app_path(app, &["builds"]),
        &format!("created_at ..; max={}, order=desc", max.max(1)),
    )
}

pub fn list(ctx: &Ctx, num: usize) -> CliResult<()> {
    let app = ctx.app()?;
    let builds = recent(ctx, &app, num)?;
    if ctx.json {
        print_json(&Value::Array(builds));
        return Ok(());
    }
    if builds.is_empty() {
        println!("{} has no builds.", ctx.style.app(&app));
        return Ok(());
    }
    ctx.style.header(&format!("{} Builds", ctx.style.app(&app)));
    let now = chrono::Utc::now();
    ctx.style.rows(
        builds
            .iter()
            .map(|b| {
                let t = s(b, "/created_at");
                vec![
                    s(b, "/id"),
                    s(b, "/status"),
                    s(b, "/source_blob/version"),
                    s(b, "/user/email"),
                    format!("{} ({})", format_time(&t), ago(&t, now)),
                ]
            })
            .collect(),
    );
    Ok(())
}

/// Copies a build's output stream to stdout.
fn stream_output(ctx: &Ctx, build: &Value) -> CliResult<()> {
    let url = s(build, "/output_stream_url");
    if url.is_empty() {
        return Err(CliError::failed("This build has no output stream."));
    }
    let mut resp = ctx.api.open_stream(&url, "text/plain")?;
    let mut stdout = std::io::stdout();
    match std::io::copy(&mut resp, &mut stdout) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failed(format!(
            "Reading the build output failed: {e}"
        ))),
    }
}

pub fn output(ctx: &Ctx, id: Option<String>) -> CliResult<()> {
    let app = ctx.app()?;
    let build = match id {
        Some(id) => ctx.api.get(&app_path(&app, &["builds", &id]))?,
        None => recent(ctx, &app, 1)?
            .into_iter()
            .next()
            .ok_or_else(|| CliError::failed(format!("{app} has no builds.")))?,
    };
    stream_output(ctx, &build)
}

/// The version label of a deploy: git HEAD when `dir` is a repository.
fn source_version(dir: &std::path::Path) -> String {
    git::head_sha(dir).unwrap_or_else(|| chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string())
}

pub fn deploy(ctx: &Ctx, dir: Option<PathBuf>, version: Option<String>) -> CliResult<()> {
    let app = ctx.app()?;
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    if !dir.is_dir() {
        return Err(CliError::usage(format!(
            "{} is not a directory.",
            dir.display()
        )));
    }
    let version = version.unwrap_or_else(|| source_version(&dir));

    // Pack to a temporary file so the upload has a Content-Length.
    let mut tarball = tempfile::tempfile()?;
    let files = pack::pack(&dir, &mut tarball)?;
    let size = tarball.seek(SeekFrom::End(0))?;
    tarball.seek(SeekFrom::Start(0))?;
    eprintln!(
        "Packed {files} files from {} ({} KB)",
        dir.display(),
        size.div_ceil(1024)
    );

    let source = ctx.api.post("/sources", &json!({}))?;
    let put_url = s(&source, "/source_blob/put_url");
    let get_url = s(&source, "/source_blob/get_url");
    if put_url.is_empty() || get_url.is_empty() {
        return Err(CliError::failed(
            "The API did not return upload URLs for the source.",
        ));
    }
    upload(ctx, &put_url, tarball, size)?;

    let build = ctx.api.post(
        &app_path(&app, &["builds"]),
        &json!({ "source_blob": { "url": get_url, "version": version } }),
    )?;
    let id = s(&build, "/id");
    eprintln!(
        "Building {} (build {id}, version {version})",
        ctx.style.err_app(&app)
    );
    stream_output(ctx, &build)?;

    // The stream ends when the build does; its final status may lag a moment.
    let mut status = s(&build, "/status");
    for _ in 0..60 {
        let b = ctx.api.get(&app_path(&app, &["builds", &id]))?;
        status = s(&b, "/status");
        if status != "pending" {
            if ctx.json {
                print_json(&b);
            }
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    match status.as_str() {
        "failed" => Err(CliError::failed(format!(
            "Build failed. See the output above, or run \"hoist builds:output {id} -a {app}\"."
        ))),
        "succeeded" => {
            eprintln!("Build succeeded.");
            Ok(())
        }
        other => {
            eprintln!(" ▸    The build is still {other}. Check it with \"hoist builds -a {app}\".");
            Ok(())
        }
    }
}

fn upload(ctx: &Ctx, put_url: &str, file: std::fs::File, size: u64) -> CliResult<()> {
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "Uploading source {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let body = reqwest::blocking::Body::sized(bar.wrap_read(file), size);
    let mut req = ctx.api.http().put(put_url).body(body);
    if ctx.api.same_origin(put_url) {
        if let Some(t) = ctx.api.token() {
            req = req.bearer_auth(t);
        }
    }
    let resp = req
        .send()
        .map_err(|e| crate::api::network_error(put_url, &e))?;
    bar.finish_and_clear();
    crate::api::check_status(resp, "PUT", put_url)?;
    eprintln!("Uploaded source ({} KB)", size.div_ceil(1024));
    Ok(())
}
