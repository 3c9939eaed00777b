//! Smaller per-app resources: custom domains, log drains, buildpack installations.

use crate::{new_id, not_found, now, Domain, LogDrain, Result, Store, StoreError};
use hoist_types::{validate_custom_domain, PlatformHosts};
use rusqlite::{params, OptionalExtension};

/// A `domains` row selected as `id, app_id, hostname, created_at, updated_at`.
fn domain_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Domain> {
    Ok(Domain {
        id: r.get(0)?,
        app_id: r.get(1)?,
        hostname: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

impl Store {
    pub fn domains(&self, app_id: &str) -> Result<Vec<Domain>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, app_id, hostname, created_at, updated_at FROM domains WHERE app_id = ?1 ORDER BY hostname",
            )?;
            let rows = st.query_map([app_id], domain_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// All custom domains: `(hostname, app_id)`.
    pub fn all_domains(&self) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT hostname, app_id FROM domains")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn add_domain(
        &self,
        app_id: &str,
        hostname: &str,
        platform: &PlatformHosts,
    ) -> Result<Domain> {
        let hostname = validate_custom_domain(hostname, platform)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.write(|tx| {
            let taken: Option<String> = tx
                .query_row("SELECT app_id FROM domains WHERE hostname = ?1", [&hostname], |r| r.get(0))
                .optional()?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!(
                    "{hostname} is already in use by an app."
                )));
            }
            let ts = now();
            let d = Domain {
                id: new_id(),
                app_id: app_id.to_string(),
                hostname: hostname.clone(),
                created_at: ts.clone(),
                updated_at: ts,
            };
            tx.execute(
                "INSERT INTO domains (id, app_id, hostname, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![d.id, d.app_id, d.hostname, d.created_at, d.updated_at],
            )?;
            Ok(d)
        })
    }

    /// Removes custom domains that today's rules refuse (added before they existed,
    /// e.g. `127.0.0.1`, which would take every request addressed to the router by IP);
    /// returns them with the reason.
    pub fn remove_refused_domains(
        &self,
        platform: &PlatformHosts,
    ) -> Result<Vec<(Domain, String)>> {
        let all: Vec<Domain> = self.read(|c| {
            let mut st =
                c.prepare("SELECT id, app_id, hostname, created_at, updated_at FROM domains")?;
            let rows = st.query_map([], domain_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?;
        let refused: Vec<(Domain, String)> = all
            .into_iter()
            .filter_map(|d| match validate_custom_domain(&d.hostname, platform) {
                Ok(_) => None,
                Err(e) => Some((d, e.to_string())),
            })
            .collect();
        if !refused.is_empty() {
            self.write(|tx| {
                for (d, _) in &refused {
                    tx.execute("DELETE FROM domains WHERE id = ?1", [&d.id])?;
                }
                Ok(())
            })?;
        }
        Ok(refused)
    }

    pub fn remove_domain(&self, app_id: &str, ident: &str) -> Result<Domain> {
        let ident = ident.trim_end_matches('.').to_ascii_lowercase();
        let d = self
            .domains(app_id)?
            .into_iter()
            .find(|d| d.hostname == ident || d.id == ident)
            .ok_or(not_found("domain"))?;
        self.write(|tx| {
            tx.execute("DELETE FROM domains WHERE id = ?1", [&d.id])?;
            Ok(())
        })?;
        Ok(d)
    }

    pub fn log_drains(&self, app_id: &str) -> Result<Vec<LogDrain>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, app_id, url, token, created_at, updated_at FROM log_drains WHERE app_id = ?1 ORDER BY created_at",
            )?;
            let rows = st.query_map([app_id], |r| {
                Ok(LogDrain {
                    id: r.get(0)?,
                    app_id: r.get(1)?,
                    url: r.get(2)?,
                    token: r.get(3)?,
                    created_at: r.get(4)?,
                    updated_at: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn add_log_drain(&self, app_id: &str, url: &str) -> Result<LogDrain> {
        self.write(|tx| {
            let n: i64 = tx.query_row("SELECT count(*) FROM log_drains WHERE app_id = ?1", [app_id], |r| r.get(0))?;
            if n >= 6 {
                return Err(StoreError::Invalid("An app can have at most 6 log drains.".into()));
            }
            let dup: Option<String> = tx
                .query_row("SELECT id FROM log_drains WHERE app_id = ?1 AND url = ?2", params![app_id, url], |r| r.get(0))
                .optional()?;
            if dup.is_some() {
                return Err(StoreError::Conflict("This drain is already attached to the app.".into()));
            }
            let ts = now();
            let d = LogDrain {
                id: new_id(),
                app_id: app_id.to_string(),
                url: url.to_string(),
                token: format!("d.{}", new_id()),
                created_at: ts.clone(),
                updated_at: ts,
            };
            tx.execute(
                "INSERT INTO log_drains (id, app_id, url, token, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![d.id, d.app_id, d.url, d.token, d.created_at, d.updated_at],
            )?;
            Ok(d)
        })
    }

    pub fn remove_log_drain(&self, app_id: &str, ident: &str) -> Result<LogDrain> {
        let d = self
            .log_drains(app_id)?
            .into_iter()
            .find(|d| d.id == ident || d.url == ident || d.token == ident)
            .ok_or(not_found("log drain"))?;
        self.write(|tx| {
            tx.execute("DELETE FROM log_drains WHERE id = ?1", [&d.id])?;
            Ok(())
        })?;
        Ok(d)
    }

    pub fn buildpacks(&self, app_id: &str) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT url FROM buildpack_installations WHERE app_id = ?1 ORDER BY ordinal",
            )?;
            let rows = st.query_map([app_id], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Replaces the app's buildpack list (order = ordinal).
    pub fn set_buildpacks(&self, app_id: &str, urls: &[String]) -> Result<Vec<String>> {
        self.write(|tx| {
            tx.execute("DELETE FROM buildpack_installations WHERE app_id = ?1", [app_id])?;
            for (i, u) in urls.iter().enumerate() {
                tx.execute(
                    "INSERT INTO buildpack_installations (app_id, ordinal, url) VALUES (?1, ?2, ?3)",
                    params![app_id, i as i64, u],
                )?;
            }
            Ok(())
        })?;
        self.buildpacks(app_id)
    }
}

/// Selects what [`addon_row`] reads: the add-on, its app's name, its config (only the
/// keys are kept) and the names of its attachments on the owning app.
pub(crate) const ADDON_SELECT: &str = "SELECT d.id, d.name, d.app_id, a.name, d.service, d.plan, d.state, d.created_at, d.updated_at, d.config, \
     (SELECT group_concat(t.name, ',') FROM addon_attachments t WHERE t.addon_id = d.id AND t.app_id = d.app_id) \
     FROM addons d JOIN apps a ON a.id = d.app_id";

pub(crate) fn addon_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<crate::Addon> {
    let config: String = r.get(9)?;
    let config_keys: Vec<String> =
        serde_json::from_str::<std::collections::BTreeMap<String, String>>(&config)
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    9,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?
            .into_keys()
            .collect();
    let mut owner_attachments: Vec<String> = r
        .get::<_, Option<String>>(10)?
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    owner_attachments.sort();
    let config_vars = owner_attachments
        .iter()
        .flat_map(|a| config_keys.iter().map(move |k| format!("{a}_{k}")))
        .collect();
    Ok(crate::Addon {
        id: r.get(0)?,
        name: r.get(1)?,
        app_id: r.get(2)?,
        app_name: r.get(3)?,
        service: r.get(4)?,
        plan: r.get(5)?,
        state: r.get(6)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        config_keys,
        config_vars,
    })
}

impl Store {
    /// Add-ons attached to the app (owned by it or attached from another app).
    pub fn addons_for_app(&self, app_id: &str) -> Result<Vec<crate::Addon>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "{ADDON_SELECT} WHERE d.id IN (SELECT addon_id FROM addon_attachments WHERE app_id = ?1) OR d.app_id = ?1 ORDER BY d.name"
            ))?;
            let rows = st.query_map([app_id], addon_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn attachments_for_app(&self, app_id: &str) -> Result<Vec<crate::AddonAttachment>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT t.id, t.name, t.app_id, a.name, t.created_at, t.updated_at, t.addon_id FROM addon_attachments t JOIN apps a ON a.id = t.app_id WHERE t.app_id = ?1 ORDER BY t.name",
            )?;
            let rows: Vec<(String, String, String, String, String, String, String)> = st
                .query_map([app_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut out = Vec::new();
            for (id, name, app_id, app_name, created_at, updated_at, addon_id) in rows {
                let addon = c
                    .query_row(&format!("{ADDON_SELECT} WHERE d.id = ?1"), [&addon_id], addon_row)?;
                out.push(crate::AddonAttachment { id, name, addon, app_id, app_name, created_at, updated_at });
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{owner_and_app, store};
    use hoist_types::PlatformHosts;

    #[test]
    fn domains_are_validated_and_unique() {
        let (_d, s) = store();
        let localhost = &PlatformHosts {
            domain: "localhost",
            api_host: Some("127.0.0.1"),
        };
        let (_u, app) = owner_and_app(&s);
        let d = s
            .add_domain(&app.id, "WWW.Example.test.", localhost)
            .unwrap();
        assert_eq!(d.hostname, "www.example.test");
        assert!(s
            .add_domain(&app.id, "www.example.test", localhost)
            .is_err());
        assert!(s.add_domain(&app.id, "bad host", localhost).is_err());
        assert!(s.add_domain(&app.id, "x.localhost", localhost).is_err());
        assert!(s.add_domain(&app.id, "127.0.0.1", localhost).is_err());
        s.remove_domain(&app.id, "www.example.test").unwrap();
        assert!(s.domains(&app.id).unwrap().is_empty());
        // Rows from before the rules (written directly here) are swept at start.
        s.add_domain(&app.id, "www.kept.test", localhost).unwrap();
        s.write(|tx| {
            tx.execute(
                "INSERT INTO domains (id, app_id, hostname, created_at, updated_at) VALUES ('d1', ?1, '127.0.0.1', '', '')",
                [&app.id],
            )?;
            Ok(())
        })
        .unwrap();
        let gone = s.remove_refused_domains(localhost).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].0.hostname, "127.0.0.1");
        assert!(gone[0].1.contains("IP address"), "{}", gone[0].1);
        let left: Vec<String> = s
            .domains(&app.id)
            .unwrap()
            .into_iter()
            .map(|d| d.hostname)
            .collect();
        assert_eq!(left, ["www.kept.test"]);
    }
}
