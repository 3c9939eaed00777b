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
        let log = BuildLog::new();
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
        let path = self.build_log_path(&build.id);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(&path, log.text());
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
                let code = self
                    .platform
                    .run_release_phase(&app.id, release.version, &cmd, log.clone())
                    .await;
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
                    let why = match code {
                        Ok(c) => format!("exited with status {c}"),
                        Err(e) => e,
                    };
                    return Err(format!(
                        "Release command `{cmd}` {why}; v{} failed and the previous release keeps running.",
                        release.version
                    ));
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
