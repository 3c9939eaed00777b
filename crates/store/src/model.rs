//! Rows of the store as plain data.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub type ConfigVars = BTreeMap<String, String>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub is_owner: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    pub owner_email: String,
    pub maintenance: bool,
    pub stack: String,
    pub region: String,
    pub webhook_secret: String,
    pub created_at: String,
    pub updated_at: String,
    pub released_at: Option<String>,
    pub slug_size: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Slug {
    pub id: String,
    pub app_id: String,
    pub checksum: String,
    pub size: i64,
    pub process_types: BTreeMap<String, String>,
    pub buildpack_provided_description: Option<String>,
    pub commit: Option<String>,
    pub stack: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    Pending,
    Succeeded,
    Failed,
}

impl ReleaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Pending => "pending",
            ReleaseStatus::Succeeded => "succeeded",
            ReleaseStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> ReleaseStatus {
        match s {
            "pending" => ReleaseStatus::Pending,
            "failed" => ReleaseStatus::Failed,
            _ => ReleaseStatus::Succeeded,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Release {
    pub id: String,
    pub app_id: String,
    pub version: i64,
    pub description: String,
    pub status: ReleaseStatus,
    pub slug_id: Option<String>,
    pub config: ConfigVars,
    pub addon_plan_names: Vec<String>,
    pub user_id: String,
    pub user_email: String,
    pub created_at: String,
    pub updated_at: String,
    /// Whether this is the app's current release (newest succeeded one).
    pub current: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Build {
    pub id: String,
    pub app_id: String,
    pub status: String,
    pub source_url: Option<String>,
    pub source_version: Option<String>,
    pub slug_id: Option<String>,
    pub release_id: Option<String>,
    pub user_id: String,
    pub user_email: String,
    pub buildpacks: Vec<String>,
    /// Why the build failed, when that is not in its output (e.g. the daemon stopped).
    pub status_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Formation {
    pub id: String,
    pub app_id: String,
    pub process_type: String,
    pub quantity: i64,
    pub size: String,
    pub command: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Dyno {
    pub id: String,
    pub app_id: String,
    pub name: String,
    pub process_type: String,
    pub state: String,
    pub command: String,
    pub size: String,
    pub release_version: i64,
    pub port: Option<i64>,
    pub attach: bool,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Domain {
    pub id: String,
    pub app_id: String,
    pub hostname: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Collaborator {
    pub id: String,
    pub app_id: String,
    pub account_id: String,
    pub email: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogDrain {
    pub id: String,
    pub app_id: String,
    pub url: String,
    pub token: String,
    pub created_at: String,
    pub updated_at: String,
}

/// One requested change to a process type's formation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormationUpdate {
    pub process_type: String,
    pub quantity: Option<QuantityChange>,
    pub size: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityChange {
    Absolute(i64),
    Relative(i64),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Addon {
    pub id: String,
    pub name: String,
    pub app_id: String,
    pub app_name: String,
    pub service: String,
    pub plan: String,
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
    /// The keys the add-on provides, without attachment prefix (`URL`); never values.
    pub config_keys: Vec<String>,
    /// The config vars it sets on its owning app (`DATABASE_URL`, ...).
    pub config_vars: Vec<String>,
}

/// An add-on of a destroyed app whose resource has not been given back yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDeprovision {
    pub id: String,
    pub addon_name: String,
    pub service: String,
    pub provider_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AddonAttachment {
    pub id: String,
    pub name: String,
    pub addon: Addon,
    pub app_id: String,
    pub app_name: String,
    pub created_at: String,
    pub updated_at: String,
}
