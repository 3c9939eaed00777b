//! Third-party add-ons over the (classic) Add-on Partner API.
//!
//! An administrator drops a manifest into `<data_dir>/addons/partners/<id>.json`:
//! ```json
//! {"id": "mailer", "name": "Mailer", "plans": [{"name": "test", "price_cents": 0}],
//!  "api": {"config_vars": ["MAILER_URL", "MAILER_API_KEY"], "password": "…",
//!          "sso_salt": "…", "production": {"base_url": "https://mailer.example"},
//!          "requires": []}}
//! ```
//! Config var names must all start with one prefix (`api.config_vars_prefix`, default
//! the id upper-cased with `-` as `_`); the provider returns them without it
//! (`MAILER_URL` -> `URL`) so the attachment name replaces it (`MAILER_URL` or
//! `EMAIL_URL` with `--as EMAIL`).
//!
//! Calls: `POST {base_url}/heroku/resources` (provision), `PUT …/{id}` (plan change),
//! `DELETE …/{id}` (deprovision), all with basic auth `id:password`. A 202 answer means
//! asynchronous provisioning: the partner later sends the config to `callback_url`,
//! which the API validates with [`crate::Registry::accept_callback_config`].
//! Neither passwords nor config values are ever logged.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use crate::names::random_bytes;
use crate::{AddonError, Plan, Provider, ProvisionState, Provisioned, Service};

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub plans: Vec<ManifestPlan>,
    pub api: ManifestApi,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManifestPlan {
    #[serde(alias = "id")]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub price_cents: u64,
    #[serde(default)]
    pub limits: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ManifestApi {
    pub config_vars: Vec<String>,
    #[serde(default)]
    pub config_vars_prefix: Option<String>,
    pub password: String,
    #[serde(default)]
    pub sso_salt: Option<String>,
    pub production: Endpoint,
    #[serde(default)]
    pub requires: Vec<String>,
}

/// `"production": "https://…"` or `"production": {"base_url": "https://…"}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Endpoint {
    Url(String),
    Full {
        base_url: String,
        #[serde(default)]
        sso_url: Option<String>,
    },
}

impl Endpoint {
    pub fn base_url(&self) -> &str {
        match self {
            Endpoint::Url(u) => u,
            Endpoint::Full { base_url, .. } => base_url,
        }
    }
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, AddonError> {
        let m: Manifest = serde_json::from_str(text)
            .map_err(|e| AddonError::Invalid(format!("add-on manifest: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<(), AddonError> {
        let bad = |msg: String| {
            Err(AddonError::Invalid(format!(
                "add-on manifest {:?}: {msg}",
                self.id
            )))
        };
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !matches!(self.id.as_str(), "postgresql" | "redis");
        if !id_ok {
            return bad(
                "id must be lowercase letters, digits and dashes (and not a built-in)".into(),
            );
        }
        if self.plans.is_empty() {
            return bad("no plans".into());
        }
        if self.api.password.is_empty() {
            return bad("api.password is empty".into());
        }
        match url::Url::parse(self.api.production.base_url()) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return bad("api.production.base_url is not an http(s) URL".into()),
        }
        let prefix = self.prefix();
        for var in &self.api.config_vars {
            match var.strip_prefix(&prefix).and_then(|r| r.strip_prefix('_')) {
                Some(key) if !key.is_empty() => {}
                _ => return bad(format!("config var {var} does not start with {prefix}_")),
            }
        }
        Ok(())
    }

    /// The config var prefix, e.g. `MAILER`.
    pub fn prefix(&self) -> String {
        self.api
            .config_vars_prefix
            .clone()
            .unwrap_or_else(|| self.id.to_ascii_uppercase().replace('-', "_"))
    }

    fn service(&self) -> Service {
        Service {
            name: self.id.clone(),
            description: self
                .description
                .clone()
                .or_else(|| self.name.clone())
                .unwrap_or_else(|| self.id.clone()),
            config_var: self.prefix(),
            plans: self
                .plans
                .iter()
                .map(|p| Plan {
                    name: p.name.clone(),
                    description: p.description.clone().unwrap_or_else(|| p.name.clone()),
                    price_cents: p.price_cents,
                    limits: p.limits.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PartnerConfig {
    /// Limit for each partner HTTP call.
    pub timeout: Duration,
    /// Base of the callback URL; the add-on name is appended:
    /// `{callback_base_url}/{addon_name}`.
    pub callback_base_url: Option<String>,
}

impl Default for PartnerConfig {
    fn default() -> Self {
        PartnerConfig {
            timeout: Duration::from_secs(30),
            callback_base_url: None,
        }
    }
}

pub struct PartnerProvider {
    manifest: Manifest,
    service: Service,
    cfg: PartnerConfig,
    http: reqwest::Client,
}

impl PartnerProvider {
    pub fn new(manifest: Manifest, cfg: PartnerConfig) -> Result<Self, AddonError> {
        manifest.validate()?;
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("hoist-addons")
            .build()
            .map_err(|e| AddonError::Provider(format!("HTTP client: {e}")))?;
        Ok(PartnerProvider {
            service: manifest.service(),
            manifest,
            cfg,
            http,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn resources_url(&self) -> String {
        format!(
            "{}/heroku/resources",
            self.manifest
                .api
                .production
                .base_url()
                .trim_end_matches('/')
        )
    }

    fn resource_url(&self, id: &str) -> String {
        let escaped: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        format!("{}/{}", self.resources_url(), escaped)
    }

    /// Keeps only declared config vars (by full name) and strips the prefix. Any
    /// undeclared var or non-string value rejects the whole config.
    pub fn accept_config(
        &self,
        config: &serde_json::Value,
    ) -> Result<BTreeMap<String, String>, AddonError> {
        let map = match config {
            serde_json::Value::Null => return Ok(BTreeMap::new()),
            serde_json::Value::Object(m) => m,
            _ => return Err(self.err("config is not a JSON object")),
        };
        let declared: BTreeSet<&str> = self
            .manifest
            .api
            .config_vars
            .iter()
            .map(String::as_str)
            .collect();
        let prefix = format!("{}_", self.manifest.prefix());
        let mut out = BTreeMap::new();
        for (name, value) in map {
            if !declared.contains(name.as_str()) {
                return Err(self.err(&format!(
                    "returned config var {name}, which its manifest does not declare"
                )));
            }
            let Some(value) = value.as_str() else {
                return Err(self.err(&format!("config var {name} is not a string")));
            };
            let key = name.strip_prefix(&prefix).unwrap_or(name);
            out.insert(key.to_string(), value.to_string());
        }
        Ok(out)
    }

    /// True if an `Authorization` header carries this partner's `id:password`.
    pub fn verify_basic_auth(&self, authorization: &str) -> bool {
        let expected = self.basic_auth_header();
        constant_time_eq(expected.as_bytes(), authorization.trim().as_bytes())
    }

    fn basic_auth_header(&self) -> String {
        let creds = format!("{}:{}", self.manifest.id, self.manifest.api.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        )
    }

    fn err(&self, msg: &str) -> AddonError {
        AddonError::Provider(format!("add-on partner {}: {msg}", self.manifest.id))
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(u16, serde_json::Value), AddonError> {
        let resp = req
            .header("Authorization", self.basic_auth_header())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| self.http_error(e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| self.http_error(e))?;
        let json: serde_json::Value =
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        if status.is_server_error() {
            return Err(self.err(&format!("answered {status}")));
        }
        if !status.is_success() {
            let msg = json.get("message").and_then(|m| m.as_str()).unwrap_or("");
            return Err(self.err(format!("answered {status} {msg}").trim_end()));
        }
        Ok((status.as_u16(), json))
    }

    fn http_error(&self, e: reqwest::Error) -> AddonError {
        if e.is_timeout() {
            warn!(partner = %self.manifest.id, "add-on partner timed out");
            AddonError::Timeout(self.cfg.timeout)
        } else {
            // without_url: the URL is harmless, but keep messages short and stable.
            self.err(&format!("request failed: {}", e.without_url()))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A random UUID v4 string.
fn uuid_v4() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn id_string(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[async_trait]
impl Provider for PartnerProvider {
    fn service(&self) -> &Service {
        &self.service
    }

    async fn provision(
        &self,
        addon_name: &str,
        plan: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<Provisioned, AddonError> {
        self.service.require_plan(plan)?;
        let callback_url = self
            .cfg
            .callback_base_url
            .as_deref()
            .map(|b| format!("{}/{addon_name}", b.trim_end_matches('/')));
        let body = json!({
            "heroku_id": format!("{addon_name}@hoist"),
            "name": addon_name,
            "plan": plan,
            "region": "local",
            "callback_url": callback_url,
            "options": options,
            "uuid": uuid_v4(),
        });
        let (status, resp) = self
            .send(self.http.post(self.resources_url()).json(&body))
            .await?;
        let Some(provider_id) = id_string(resp.get("id")) else {
            return Err(self.err("answered without a resource id"));
        };
        let config = match self
            .accept_config(resp.get("config").unwrap_or(&serde_json::Value::Null))
        {
            Ok(c) => c,
            Err(e) => {
                // The partner made something; undo it so nothing is orphaned there.
                if let Err(de) = self.deprovision(&provider_id).await {
                    warn!(partner = %self.manifest.id, error = %de, "deprovision after rejected config failed");
                }
                return Err(e);
            }
        };
        let state = if status == 202 {
            ProvisionState::Provisioning
        } else {
            ProvisionState::Provisioned
        };
        info!(partner = %self.manifest.id, addon = %addon_name, plan, ?state, "provisioned partner add-on");
        Ok(Provisioned {
            provider_id,
            config,
            message: resp
                .get("message")
                .and_then(|m| m.as_str())
                .map(String::from),
            state,
        })
    }

    async fn change_plan(
        &self,
        provider_id: &str,
        plan: &str,
    ) -> Result<Option<BTreeMap<String, String>>, AddonError> {
        self.service.require_plan(plan)?;
        let (_, resp) = self
            .send(
                self.http
                    .put(self.resource_url(provider_id))
                    .json(&json!({ "plan": plan })),
            )
            .await?;
        let config = self.accept_config(resp.get("config").unwrap_or(&serde_json::Value::Null))?;
        Ok((!config.is_empty()).then_some(config))
    }

    async fn deprovision(&self, provider_id: &str) -> Result<(), AddonError> {
        let req = self
            .http
            .delete(self.resource_url(provider_id))
            .header("Authorization", self.basic_auth_header());
        let resp = req.send().await.map_err(|e| self.http_error(e))?;
        let status = resp.status();
        // Gone already is fine: deprovisioning is idempotent.
        if status.is_success() || status.as_u16() == 404 || status.as_u16() == 410 {
            return Ok(());
        }
        Err(self.err(&format!("answered {status} to deprovision")))
    }

    async fn info(&self, provider_id: &str) -> Result<serde_json::Value, AddonError> {
        Ok(json!({
            "service": self.manifest.id,
            "name": self.manifest.name,
            "resource_id": provider_id,
            "config_vars": self.manifest.api.config_vars,
            "requires": self.manifest.api.requires,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(base_url: &str) -> String {
        json!({
            "id": "mailer",
            "name": "Mailer",
            "plans": [{"name": "test"}, {"id": "pro", "price_cents": 1000}],
            "api": {
                "config_vars": ["MAILER_URL", "MAILER_API_KEY"],
                "password": "s3cret",
                "sso_salt": "salt",
                "production": {"base_url": base_url},
            }
        })
        .to_string()
    }

    #[test]
    fn manifest_validation() {
        let m = Manifest::parse(&manifest("http://127.0.0.1:1")).unwrap();
        assert_eq!(m.prefix(), "MAILER");
        assert_eq!(m.service().plans.len(), 2);
        assert!(Manifest::parse(&manifest("ftp://x")).is_err());
        let bad_var = manifest("http://x").replace("MAILER_API_KEY", "OTHER_KEY");
        assert!(Manifest::parse(&bad_var).is_err());
        let builtin = manifest("http://x").replace("\"mailer\"", "\"redis\"");
        assert!(Manifest::parse(&builtin).is_err());
    }

    #[test]
    fn config_is_filtered_and_unprefixed() {
        let p = PartnerProvider::new(
            Manifest::parse(&manifest("http://x")).unwrap(),
            PartnerConfig::default(),
        )
        .unwrap();
        let ok = p
            .accept_config(&json!({"MAILER_URL": "https://u", "MAILER_API_KEY": "k"}))
            .unwrap();
        assert_eq!(ok.get("URL").map(String::as_str), Some("https://u"));
        assert_eq!(ok.get("API_KEY").map(String::as_str), Some("k"));
        let err = p
            .accept_config(&json!({"MAILER_URL": "u", "EVIL": "x"}))
            .unwrap_err();
        assert!(err.to_string().contains("EVIL"));
        assert!(!err.to_string().contains("\"u\""));
        assert!(p.accept_config(&json!({"MAILER_URL": 5})).is_err());
        assert!(p.verify_basic_auth("Basic bWFpbGVyOnMzY3JldA=="));
        assert!(!p.verify_basic_auth("Basic bWFpbGVyOnd yb25n"));
    }

    #[test]
    fn uuid_shape() {
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
