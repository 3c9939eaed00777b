//! The set of add-on services the platform offers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::partner::{Manifest, PartnerConfig, PartnerProvider};
use crate::postgres::{PostgresConfig, PostgresProvider};
use crate::redis::{RedisConfig, RedisProvider};
use crate::{AddonError, Plan, Provider, Service};

#[derive(Debug, Clone, Default)]
pub struct AddonsConfig {
    pub postgres: PostgresConfig,
    pub redis: RedisConfig,
    pub partner: PartnerConfig,
}

/// What [`Registry::start_managed_servers`] found. Errors are messages (no secrets).
#[derive(Debug, Clone, Default)]
pub struct ManagedStatus {
    /// `None` when no managed PostgreSQL server exists yet (or an external one is
    /// configured); otherwise the postmaster pid or why it could not run.
    pub postgres: Option<Result<i32, String>>,
    /// Per Redis add-on id: server pid or the error.
    pub redis: Vec<(String, Result<i32, String>)>,
}

pub struct Registry {
    postgres: Arc<PostgresProvider>,
    redis: Arc<RedisProvider>,
    partners: BTreeMap<String, Arc<PartnerProvider>>,
    manifest_errors: Vec<String>,
}

impl Registry {
    /// Builds the built-in providers and one partner provider per
    /// `<data_dir>/addons/partners/*.json`. An invalid manifest is logged and skipped
    /// (see [`Registry::manifest_errors`]) so one bad file cannot stop the daemon.
    /// Starts nothing: call [`Registry::start_managed_servers`] at boot.
    pub fn new(data_dir: &Path, cfg: AddonsConfig) -> Result<Self, AddonError> {
        let postgres = Arc::new(PostgresProvider::new(data_dir, cfg.postgres)?);
        let redis = Arc::new(RedisProvider::new(data_dir, cfg.redis));
        let mut partners = BTreeMap::new();
        let mut manifest_errors = Vec::new();
        for path in manifest_paths(&data_dir.join("addons").join("partners")) {
            let loaded = std::fs::read_to_string(&path)
                .map_err(|e| AddonError::io(format!("reading {}", path.display()), e))
                .and_then(|text| Manifest::parse(&text))
                .and_then(|m| PartnerProvider::new(m, cfg.partner.clone()));
            match loaded {
                Ok(p) => {
                    let id = p.manifest().id.clone();
                    if partners.contains_key(&id) {
                        manifest_errors
                            .push(format!("{}: duplicate add-on id {id}", path.display()));
                        continue;
                    }
                    info!(partner = %id, "loaded add-on partner manifest");
                    partners.insert(id, Arc::new(p));
                }
                Err(e) => {
                    warn!(manifest = %path.display(), error = %e, "skipping add-on manifest");
                    manifest_errors.push(format!("{}: {e}", path.display()));
                }
            }
        }
        Ok(Registry {
            postgres,
            redis,
            partners,
            manifest_errors,
        })
    }

    /// The provider of a service (`postgresql`, `redis`, Heroku's names for them, or a
    /// partner id).
    pub fn get(&self, service: &str) -> Option<Arc<dyn Provider>> {
        match crate::aliases::service_name(service) {
            "postgresql" => Some(self.postgres.clone()),
            "redis" => Some(self.redis.clone()),
            other => self
                .partners
                .get(other)
                .map(|p| p.clone() as Arc<dyn Provider>),
        }
    }

    /// All services, built-ins first, partners by id.
    pub fn services(&self) -> Vec<Service> {
        let mut out = vec![
            self.postgres.service().clone(),
            self.redis.service().clone(),
        ];
        out.extend(self.partners.values().map(|p| p.service().clone()));
        out
    }

    /// Resolves `service:plan` (or a bare `service`, meaning its first plan).
    pub fn resolve_plan(&self, spec: &str) -> Result<(Arc<dyn Provider>, Plan), AddonError> {
        let (service, plan) = match spec.split_once(':') {
            Some((s, p)) => (s, Some(p)),
            None => (spec, None),
        };
        let provider = self
            .get(service)
            .ok_or_else(|| AddonError::UnknownService(service.to_string()))?;
        let svc = provider.service();
        let plan = match plan {
            Some(p) => svc.require_plan(p)?.clone(),
            None => svc
                .plans
                .first()
                .cloned()
                .ok_or_else(|| AddonError::UnknownService(service.to_string()))?,
        };
        Ok((provider, plan))
    }

    pub fn postgres(&self) -> &Arc<PostgresProvider> {
        &self.postgres
    }

    pub fn redis(&self) -> &Arc<RedisProvider> {
        &self.redis
    }

    pub fn partner(&self, manifest_id: &str) -> Option<&Arc<PartnerProvider>> {
        self.partners.get(manifest_id)
    }

    /// Manifests skipped at load time, with reasons.
    pub fn manifest_errors(&self) -> &[String] {
        &self.manifest_errors
    }

    /// Validates config a partner sent to the callback URL (async provisioning or a
    /// later config update): only declared vars, returned without prefix
    /// (`MAILER_URL` -> `URL`).
    pub fn accept_callback_config(
        &self,
        manifest_id: &str,
        config: &serde_json::Value,
    ) -> Result<BTreeMap<String, String>, AddonError> {
        self.partners
            .get(manifest_id)
            .ok_or_else(|| AddonError::UnknownService(manifest_id.to_string()))?
            .accept_config(config)
    }

    /// Checks a callback's `Authorization` header against the partner's credentials.
    pub fn verify_callback_auth(&self, manifest_id: &str, authorization: &str) -> bool {
        self.partners
            .get(manifest_id)
            .is_some_and(|p| p.verify_basic_auth(authorization))
    }

    /// Boot-time step: re-adopts running managed servers (same pid) and starts the
    /// ones that are down (e.g. after a reboot). The PostgreSQL server is only
    /// started if it was initialized before (the first postgresql add-on initializes
    /// it). Never fails as a whole: per-server outcomes are returned and logged.
    pub async fn start_managed_servers(&self) -> ManagedStatus {
        let postgres = if self.postgres.server_initialized() {
            let res = self.postgres.ensure_running().await.and_then(|()| {
                self.postgres.server_pid().ok_or_else(|| {
                    AddonError::Provider("PostgreSQL exited right after starting".into())
                })
            });
            if let Err(e) = &res {
                warn!(error = %e, "managed PostgreSQL server is not running");
            }
            Some(res.map_err(|e| e.to_string()))
        } else {
            None
        };
        let redis = self
            .redis
            .ensure_all_running()
            .await
            .into_iter()
            .map(|(id, r)| (id, r.map_err(|e| e.to_string())))
            .collect();
        ManagedStatus { postgres, redis }
    }

    /// Supervision loop: every `interval`, [`start_managed_servers`](Self::start_managed_servers)
    /// (restarts whatever died) and every tenth round a storage-quota check (warnings
    /// in the log). Abort the handle to stop supervising; the servers keep running.
    pub fn supervise(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let registry = Arc::clone(self);
        tokio::spawn(async move {
            let mut round: u64 = 0;
            loop {
                tokio::time::sleep(interval).await;
                registry.start_managed_servers().await;
                if round.is_multiple_of(10) {
                    if let Err(e) = registry.postgres.check_quotas().await {
                        warn!(error = %e, "PostgreSQL quota check failed");
                    }
                }
                round += 1;
            }
        })
    }

    /// Stops every managed server (for uninstall and tests). Data stays; the next
    /// [`start_managed_servers`](Self::start_managed_servers) brings them back.
    pub async fn stop_managed_servers(&self) -> Result<(), AddonError> {
        self.redis.stop_all().await;
        self.postgres.stop_server().await
    }
}

fn manifest_paths(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heroku_service_and_plan_names_resolve_to_hoist_plans() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::new(dir.path(), AddonsConfig::default()).unwrap();
        let (p, plan) = reg.resolve_plan("heroku-postgresql:essential-0").unwrap();
        assert_eq!(
            (p.service().name.as_str(), plan.name.as_str()),
            ("postgresql", "mini")
        );
        let (p, plan) = reg.resolve_plan("heroku-redis:premium-9").unwrap();
        assert_eq!(
            (p.service().name.as_str(), plan.name.as_str()),
            ("redis", "premium-2")
        );
        let (_, plan) = reg.resolve_plan("postgresql:essential-1").unwrap();
        assert_eq!(plan.name, "basic");
        assert!(matches!(
            reg.resolve_plan("heroku-postgresql:galactic"),
            Err(AddonError::UnknownPlan { .. })
        ));
        assert!(reg
            .services()
            .iter()
            .all(|s| s.plans.iter().all(|p| p.price_cents == 0)));
    }
}
