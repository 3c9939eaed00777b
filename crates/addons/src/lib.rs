//! Add-on providers behind one trait.
//!
//! A [`Provider`] turns "give app X a `postgresql:mini`" into credentials (config vars)
//! and back. Three kinds exist:
//! * [`postgres::PostgresProvider`]: one platform-managed PostgreSQL server (or an
//!   external one an administrator points at); one database + one role per add-on.
//! * [`redis::RedisProvider`]: one platform-managed `redis-server` per add-on.
//! * [`partner::PartnerProvider`]: third-party services over the Add-on Partner API.
//!
//! Invariants:
//! * This crate never writes the store and never creates releases: it returns config
//!   keys without the attachment prefix (`URL`, not `DATABASE_URL`) and the caller does
//!   the rest.
//! * Credentials never reach a log line, an error message or [`Provider::info`].
//! * Managed servers are detached from the daemon (own session): dropping the
//!   [`Registry`] or killing the daemon leaves them running; the next
//!   [`Registry::start_managed_servers`] re-adopts them (same pid) or starts them again
//!   (after a reboot, with their data). Only [`Registry::stop_managed_servers`] and
//!   deprovisioning stop them.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod aliases;
pub mod names;
pub mod partner;
mod pgadmin;
pub mod postgres;
mod process;
pub mod redis;
mod registry;
mod scram;

pub use names::generate_addon_name;
pub use process::tree_memory_kb;
pub use registry::{AddonsConfig, ManagedStatus, Registry};

/// What every built-in plan costs: the platform runs them on its own servers and bills
/// nothing, so the API (and both CLIs) must say "free", not Heroku's price.
pub const BUILTIN_PRICE_CENTS: u64 = 0;

/// A plan of a service, e.g. `postgresql:mini`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Plan name without the service prefix, e.g. `mini`.
    pub name: String,
    pub description: String,
    /// Monthly price in cents (informational; Hoist does not bill).
    pub price_cents: u64,
    /// Plan limits, e.g. `connections`, `storage_mb`, `maxmemory_mb`, `persistence`.
    pub limits: BTreeMap<String, serde_json::Value>,
}

/// An add-on service and its plans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    /// `postgresql`, `redis` or a partner manifest id.
    pub name: String,
    pub description: String,
    /// Default attachment name; config vars become `<config_var>_<KEY>`.
    pub config_var: String,
    pub plans: Vec<Plan>,
}

impl Service {
    /// A plan by its name or by Heroku's name for it (see [`aliases::plan_name`]).
    pub fn plan(&self, name: &str) -> Option<&Plan> {
        let find = |n: &str| self.plans.iter().find(|p| p.name == n);
        find(name).or_else(|| find(aliases::plan_name(&self.name, name)?))
    }

    /// Looks a plan up or fails with [`AddonError::UnknownPlan`].
    pub fn require_plan(&self, name: &str) -> Result<&Plan, AddonError> {
        self.plan(name).ok_or_else(|| AddonError::UnknownPlan {
            service: self.name.clone(),
            plan: name.to_string(),
        })
    }

    fn limit_u64(&self, plan: &str, key: &str) -> Option<u64> {
        self.plan(plan)?.limits.get(key)?.as_u64()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProvisionState {
    /// Ready; `config` holds the credentials.
    Provisioned,
    /// An asynchronous partner accepted the request; config arrives later through the
    /// callback (see [`Registry::accept_callback_config`]).
    Provisioning,
}

/// Result of a successful provisioning.
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioned {
    /// The provider's handle for later calls (database name, redis instance id,
    /// partner resource id).
    pub provider_id: String,
    /// Config keys WITHOUT the attachment prefix, e.g. `{"URL": "postgres://…"}`.
    pub config: BTreeMap<String, String>,
    /// Message for the user (partner `message`), never containing credentials.
    pub message: Option<String>,
    pub state: ProvisionState,
}

#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    #[error("Couldn't find that add-on service: {0}. Run \"hoist addons:services\" to list them.")]
    UnknownService(String),
    #[error("Couldn't find plan {plan} of {service}. Run \"hoist addons:plans {service}\" to list them.")]
    UnknownPlan { service: String, plan: String },
    /// A binary the provider needs is missing; `package` is the Debian package.
    #[error("the add-on service is unavailable: required binaries are not installed (install the Debian package `{package}`)")]
    Unavailable { package: String },
    #[error("add-on provider error: {0}")]
    Provider(String),
    #[error("add-on provider timed out after {0:?}")]
    Timeout(Duration),
    #[error("invalid add-on request: {0}")]
    Invalid(String),
    #[error("no such add-on resource: {0}")]
    NotFound(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl AddonError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        AddonError::Io {
            context: context.into(),
            source,
        }
    }
}

/// One add-on service. Implementations must be cheap to call concurrently.
#[async_trait]
pub trait Provider: Send + Sync {
    fn service(&self) -> &Service;

    /// Creates the resource. On error nothing is left behind (no database, no
    /// process, no partner resource as far as the partner honours DELETE).
    async fn provision(
        &self,
        addon_name: &str,
        plan: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Provisioned, AddonError>;

    /// Switches plan. `Some(config)` when the credentials changed (the caller then
    /// replaces the add-on's config vars), `None` when they did not.
    async fn change_plan(
        &self,
        provider_id: &str,
        plan: &str,
    ) -> Result<Option<BTreeMap<String, String>>, AddonError>;

    /// Destroys the resource and its data. Deprovisioning something already gone is Ok.
    async fn deprovision(&self, provider_id: &str) -> Result<(), AddonError>;

    /// Non-secret facts (size, connections, version, limits) for `addons:info` /
    /// `pg:info`.
    async fn info(&self, provider_id: &str) -> Result<serde_json::Value, AddonError>;
}

pub(crate) fn limits(pairs: &[(&str, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}
