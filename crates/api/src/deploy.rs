//! Deploys: one build per app at a time; buildpacks over an unpacked source tree ->
//! slug -> (release phase) -> release. A failed build changes nothing that runs.

use crate::buildlog::{BuildLog, BuildLogs};
use crate::error::ApiError;
use crate::Platform;
use hoist_store::{Account, App, Build, NewRelease, Release, ReleaseStatus, Store};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

pub struct DeployConfig {
    pub data_dir: PathBuf,
    pub build: hoist_build::BuildConfig,
    pub stack: String,
}

pub struct Deployer {
    pub store: Arc<Store>,
    pub cfg: DeployConfig,
    pub platform: Arc<dyn Platform>,
    pub logs: BuildLogs,
    busy: Mutex<HashSet<String>>,
}

/// Holds an app's build slot; released on drop.
pub struct BuildSlot {
    deployer: Arc<Deployer>,
    app_id: String,
}

impl Drop for BuildSlot {
    fn drop(&mut self) {
        self.deployer.busy.lock().remove(&self.app_id);
    }
}

/// A claimed build slot and the build it runs.
pub struct BuildJob {
    pub slot: BuildSlot,
    pub app: App,
    pub user: Account,
    pub build: Build,
    pub log: Arc<BuildLog>,
}

pub struct Deployed {
    pub build: Build,
    pub release: Release,
}

/// Short form of a commit sha for release descriptions.
fn short_version(v: &str) -> String {
    if v.len() >= 7 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        v[..7].to_string()
    } else {
        v.chars().take(40).collect()
    }
}

impl Deployer {
    pub fn new(store: Arc<Store>, cfg: DeployConfig, platform: Arc<dyn Platform>) -> Arc<Deployer> {
        Arc::new(Deployer {
            store,
            cfg,
            platform,
            logs: BuildLogs::default(),
            busy: Mutex::new(HashSet::new()),
        })
    }

    /// Claims the app's single build slot, or says clearly that a build is running.
    pub fn claim(self: &Arc<Self>, app: &App) -> Result<BuildSlot, ApiError> {
        if !self.busy.lock().insert(app.id.clone()) {
            return Err(ApiError::conflict(format!(
                "A build of {} is already running; wait for it to finish and push again.",
                app.name
            )));
        }
        Ok(BuildSlot {
            deployer: self.clone(),
            app_id: app.id.clone(),
        })
    }

    pub fn source_root(&self) -> PathBuf {
        self.cfg.data_dir.join("sources-unpacked")
    }

    pub fn cache_dir(&self, app_id: &str) -> PathBuf {
        self.cfg.data_dir.join("cache").join(app_id)
    }

    pub fn build_log_path(&self, build_id: &str) -> PathBuf {
        self.cfg
            .data_dir
            .join("build-logs")
            .join(format!("{build_id}.log"))
    }

    /// Start-up: builds and release phases the previous daemon left `pending` (it was
    /// killed or crashed mid-way) are marked failed, with the reason in the API and in
    /// their output, and every build's scratch directory is removed. Must run before
    /// any build starts.
    pub fn recover_interrupted(&self) {
        const REASON: &str =
            "Build interrupted: the Hoist server stopped while it ran. Push again to retry.";
        let (builds, releases) = match self.store.fail_interrupted(REASON) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "marking interrupted builds failed");
                return;
            }
        };
        for b in &builds {
            tracing::warn!(build = %b.id, app = %b.app_id, "build interrupted by a restart");
            self.append_build_log(&b.id, &format!(" !     {REASON}\n"));
            self.platform.api_event(
                &b.app_id,
                &format!("Build failed -- check your build output: {REASON}"),
            );
        }
        for r in &releases {
            tracing::warn!(release = %r.id, app = %r.app_id, "release phase interrupted by a restart");
            let path = self.release_output_path(&r.id);
            let noted = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| {
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?
                    .write_all(b"Release command interrupted: the Hoist server stopped while it ran.\n")
            });
            if let Err(e) = noted {
                tracing::error!(path = %path.display(), error = %e, "writing release output");
            }
            self.platform.api_event(
                &r.app_id,
                &format!(
                    "Release v{} failed: the Hoist server stopped during its release command",
                    r.version
                ),
            );
        }
        // Nothing builds yet, so every scratch dir and unpacked source is a leftover.
        for root in [&self.cfg.build.work_root, &self.source_root()] {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                let removed = match e.file_type() {
                    Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                    _ => std::fs::remove_file(&path),
                };
                match removed {
                    Ok(()) => tracing::info!(path = %path.display(), "removed build leftovers"),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "could not remove build leftovers")
                    }
                }
            }
        }
    }

    /// Where a release's release-phase output is kept (written as it comes).
    pub fn release_output_path(&self, release_id: &str) -> PathBuf {
        self.cfg
            .data_dir
            .join("release-output")
            .join(format!("{release_id}.log"))
    }

    /// Whether the release ran a release phase (so it has an output stream).
    pub fn has_release_output(&self, release_id: &str) -> bool {
        self.logs.get(release_id).is_some() || self.release_output_path(release_id).is_file()
    }

    /// Runs the release phase of `release`; its output is the release's own stream
    /// (served while it runs, on disk as it comes) and is also shown in the build log.
    async fn release_phase(
        &self,
        app: &App,
        release: &Release,
        cmd: &str,
        build_log: &Arc<BuildLog>,
    ) -> Result<i32, String> {
        use futures::StreamExt;
        let path = self.release_output_path(&release.id);
        let out = BuildLog::persisted(&path).unwrap_or_else(|e| {
            tracing::error!(path = %path.display(), error = %e, "keeping release output");
            BuildLog::new()
        });
        self.logs.insert(&release.id, out.clone());
        let shown = build_log.clone();
        let forward = tokio::spawn(out.stream().for_each(move |chunk| {
            if let Ok(chunk) = chunk {
                for line in String::from_utf8_lossy(&chunk).lines() {
                    shown.push(&format!("       {line}"));
                }
            }
            futures::future::ready(())
        }));
        let code = self
            .platform
            .run_release_phase(&app.id, release.version, cmd, out.clone())
            .await;
        if let Err(e) = &code {
            out.push(&format!("Release command could not run: {e}"));
        }
        out.finish();
        let _ = forward.await;
        code
    }

    /// Appends to an interrupted build's stored output.
    fn append_build_log(&self, build_id: &str, text: &str) {
        use std::io::Write;
        let path = self.build_log_path(build_id);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            tracing::error!(path = %path.display(), error = %e, "writing build output");
        }
    }

    pub fn start_build(
        &self,
        app: &App,
        user: &Account,
        version: Option<&str>,
        source_url: Option<&str>,
    ) -> Result<(Build, Arc<BuildLog>), ApiError> {
        let buildpacks = self.store.buildpacks(&app.id)?;
        let build = self
            .store
            .create_build(&app.id, &user.id, source_url, version, &buildpacks)?;
        let path = self.build_log_path(&build.id);
        let log = BuildLog::persisted(&path).unwrap_or_else(|e| {
            tracing::error!(path = %path.display(), error = %e, "keeping build output");
            BuildLog::new()
        });
        self.logs.insert(&build.id, log.clone());
        self.platform
            .api_event(&app.id, &format!("Build started by user {}", user.email));
        Ok((build, log))
    }

    /// Runs the build of `source_dir` (consumed) and creates the release.
    pub async fn run(
        self: &Arc<Self>,
        job: BuildJob,
        source_dir: PathBuf,
        web_url: String,
    ) -> Result<Deployed, String> {
        let BuildJob {
            slot: _slot,
            app,
            user,
            build,
            log,
        } = job;
        let result = self
            .run_inner(&app, &user, &build, &log, source_dir, &web_url)
            .await;
        let (status, release_id) = match &result {
            Ok(r) => ("succeeded", Some(r.id.clone())),
            Err(_) => ("failed", None),
        };
        if let Err(e) = &result {
            for line in e.lines() {
                log.push(&format!(" !     {line}"));
            }
            self.platform.api_event(
                &app.id,
                &format!(
                    "Build failed -- check your build output: {}",
                    e.lines().next().unwrap_or("")
                ),
            );
        }
        let slug_id = result.as_ref().ok().and_then(|r| r.slug_id.clone());
        if let Err(e) =
            self.store
                .finish_build(&build.id, status, slug_id.as_deref(), release_id.as_deref())
        {
            tracing::error!(error = %e, "recording build result");
        }
        log.finish();
        let release = result?;
        let build = self
            .store
            .build(&app.id, &build.id)
            .map_err(|e| e.to_string())?;
        Ok(Deployed { build, release })
    }

    async fn run_inner(
        self: &Arc<Self>,
        app: &App,
        user: &Account,
        build: &Build,
        log: &Arc<BuildLog>,
        source_dir: PathBuf,
        web_url: &str,
    ) -> Result<Release, String> {
        let mut env = self.store.config_vars(&app.id).map_err(|e| e.to_string())?;
        if let Some(v) = &build.source_version {
            env.insert("SOURCE_VERSION".into(), v.clone());
        }
        let cache_dir = self.cache_dir(&app.id);
        std::fs::create_dir_all(&cache_dir)
            .map_err(|e| format!("creating the build cache: {e}"))?;
        let req = hoist_build::BuildRequest {
            app_name: app.name.clone(),
            source_dir: source_dir.clone(),
            cache_dir,
            env,
            buildpacks: build.buildpacks.clone(),
            stack: self.cfg.stack.clone(),
        };
        let cfg = self.cfg.build.clone();
        let out_log = log.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let r = hoist_build::run_build(&cfg, req, &mut |line| out_log.push(line));
            let _ = std::fs::remove_dir_all(&source_dir);
            r
        })
        .await
        .map_err(|e| format!("build task failed: {e}"))?
        .map_err(|e| e.to_string())?;

        let version = build.source_version.clone();
        let slug = self
            .store
            .create_slug(
                &app.id,
                &hoist_store::NewSlug {
                    checksum: &outcome.slug.id,
                    size: outcome.slug.size as i64,
                    process_types: &outcome.process_types,
                    description: Some(&outcome.buildpack_description),
                    commit: version.as_deref(),
                    stack: &self.cfg.stack,
                },
            )
            .map_err(|e| e.to_string())?;
        log.push("-----> Launching...");
        let description = match &version {
            Some(v) => format!("Deploy {}", short_version(v)),
            None => format!("Deploy {}", &slug.id[..8]),
        };
        let release_cmd = outcome.process_types.get("release").cloned();
        let release = self
            .store
            .create_release(
                &app.id,
                NewRelease {
                    description: description.clone(),
                    slug_id: Some(slug.id.clone()),
                    config: None,
                    status: if release_cmd.is_some() {
                        ReleaseStatus::Pending
                    } else {
                        ReleaseStatus::Succeeded
                    },
                    user_id: user.id.clone(),
                },
            )
            .map_err(|e| e.to_string())?;
        self.platform
            .api_event(&app.id, &format!("{description} by user {}", user.email));
        self.platform.api_event(
            &app.id,
            &format!(
                "Release v{} created by user {}",
                release.version, user.email
            ),
        );
        let release = match release_cmd {
            None => release,
            Some(cmd) => {
                log.push(&format!("-----> Running release command `{cmd}`..."));
                let code = self.release_phase(app, &release, &cmd, log).await;
                let ok = matches!(code, Ok(0));
                let status = if ok {
                    ReleaseStatus::Succeeded
                } else {
                    ReleaseStatus::Failed
                };
                let release = self
                    .store
                    .set_release_status(&app.id, &release.id, status)
                    .map_err(|e| e.to_string())?;
                if !ok {
                    // As on Heroku: the build and the push succeed, the release is
                    // marked failed and what runs does not change; its output stays
                    // on the release (`releases:output`).
                    let why = match code {
                        Ok(c) => format!("exited with status {c}"),
                        Err(e) => e,
                    };
                    log.push(&format!(
                        " !     Release command `{cmd}` {why}; v{} failed and what runs did not change.",
                        release.version
                    ));
                    log.push(&format!(
                        " !     Its output is kept on v{0} (output_stream_url; `heroku releases:output v{0}`).",
                        release.version
                    ));
                    self.platform.api_event(
                        &app.id,
                        &format!("Release v{} command failed", release.version),
                    );
                    return Ok(release);
                }
                release
            }
        };
        log.push(&format!("       Released v{}", release.version));
        log.push(&format!("       {web_url} deployed to Hoist"));
        self.platform.app_changed(&app.id);
        Ok(release)
    }
}
