//! The platform CA that signs the rendezvous certificates of `hoist run`. `hoist login`
//! fetches it over the authenticated API (`GET /platform/ca-certificate`) and pins it
//! per API host, beside the CLI's other settings; `hoist run` uses the pin (fetching
//! it first if this machine has none yet). `HOIST_CA_FILE` overrides it. Nothing is
//! guessed from a server data directory that happens to be on this machine: that may
//! be another server's.

use crate::api::Api;
use crate::ctx::netrc_machine;
use crate::error::{CliError, CliResult};
use crate::output::s;
use std::path::PathBuf;

/// The CA a `run` trusts, and where it came from (for error messages).
#[derive(Debug, Clone)]
pub struct PlatformCa {
    pub path: PathBuf,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub enum Origin {
    /// `HOIST_CA_FILE`.
    Override,
    /// Pinned for this API URL.
    Pinned { api_url: String },
}

impl PlatformCa {
    /// "the CA in X (HOIST_CA_FILE)" / "the CA pinned for http://… (X)".
    pub fn describe(&self) -> String {
        match &self.origin {
            Origin::Override => format!("the CA in {} (HOIST_CA_FILE)", self.path.display()),
            Origin::Pinned { api_url } => {
                format!("the CA pinned for {api_url} ({})", self.path.display())
            }
        }
    }

    /// What to do when a dyno's certificate does not chain to this CA.
    pub fn remedy(&self) -> String {
        match &self.origin {
            Origin::Override => {
                "Point HOIST_CA_FILE at the platform CA of the server you use (ca.pem in its data directory), or unset it to use the CA pinned at login.".to_string()
            }
            Origin::Pinned { .. } => format!(
                "If that server's CA changed, remove {} and run \"hoist login\" again.",
                self.path.display()
            ),
        }
    }
}

/// `$XDG_CONFIG_HOME/hoist/ca/<host[:port]>.pem` (default `~/.config/...`).
pub fn pinned_path(api_url: &str) -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".config"))
        })?;
    // The netrc machine name (host or host:port) keeps one pin per server.
    let machine = netrc_machine(api_url).replace(['/', '\\'], "_");
    Some(config.join("hoist/ca").join(format!("{machine}.pem")))
}

fn override_path() -> Option<PathBuf> {
    std::env::var_os("HOIST_CA_FILE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// Fetches the platform CA from the API and pins it for this API URL.
pub fn fetch_and_pin(api: &Api) -> CliResult<PathBuf> {
    let path = pinned_path(api.base()).ok_or_else(|| {
        CliError::usage("HOME is not set, so there is nowhere to keep the platform CA.")
    })?;
    let body = api.get("/platform/ca-certificate").map_err(|e| match e {
        CliError::Api(a) if a.status == 404 => CliError::failed(format!(
            "{} does not hand out its platform CA (an older server?). Set HOIST_CA_FILE to ca.pem from its data directory.",
            api.base()
        )),
        other => other,
    })?;
    let pem = s(&body, "/certificate_chain");
    // Refuse to pin anything that is not a certificate.
    crate::rendezvous::roots_from_pem(pem.as_bytes(), "the API's platform CA")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::failed(format!("Creating {}: {e}", dir.display())))?;
    }
    crate::netrc::write(&path, &pem)
        .map_err(|e| CliError::failed(format!("Writing {}: {e}", path.display())))?;
    Ok(path)
}

/// The CA for `hoist run`: `HOIST_CA_FILE`, else the pin for this API (fetched now if
/// this machine has none).
pub fn for_run(api: &Api) -> CliResult<PlatformCa> {
    if let Some(path) = override_path() {
        return Ok(PlatformCa {
            path,
            origin: Origin::Override,
        });
    }
    let pinned = pinned_path(api.base()).filter(|p| p.is_file());
    let path = match pinned {
        Some(p) => p,
        None => fetch_and_pin(api)?,
    };
    Ok(PlatformCa {
        path,
        origin: Origin::Pinned {
            api_url: api.base().to_string(),
        },
    })
}
