//! Add-ons and their attachments. Attaching sets `<ATTACHMENT>_<KEY>` config vars and
//! appends a release, in one transaction; detaching removes them the same way.

use crate::ledger::{insert_release, NewRelease};
use crate::resources::{addon_row, ADDON_SELECT};
use crate::{
    new_id, not_found, now, Addon, AddonAttachment, PendingDeprovision, Release, ReleaseStatus,
    Result, Store, StoreError,
};
use rusqlite::{params, OptionalExtension, Transaction};
use std::collections::BTreeMap;

/// A newly provisioned add-on, attached to its app.
#[derive(Debug, Clone)]
pub struct NewAddon<'a> {
    pub name: &'a str,
    pub service: &'a str,
    pub plan: &'a str,
    pub state: &'a str,
    pub provider_id: Option<&'a str>,
    /// Keys without the attachment prefix, e.g. `URL`.
    pub config: &'a BTreeMap<String, String>,
    /// e.g. `DATABASE`: config vars become `DATABASE_URL`.
    pub attachment: &'a str,
}

/// Attachment names become config var prefixes: `DATABASE`, `HEROKU_POSTGRESQL_RED`.
pub fn validate_attachment_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_uppercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "Invalid attachment name {name:?}: use upper-case letters, digits and underscores, starting with a letter (e.g. DATABASE)."
        )))
    }
}

/// The config vars that the app's current attachments provide (`DATABASE_URL`, ...).
pub(crate) fn attachment_vars(
    tx: &Transaction<'_>,
    app_id: &str,
) -> Result<BTreeMap<String, String>> {
    let rows: Vec<(String, String)> = {
        let mut st = tx.prepare("SELECT t.name, d.config FROM addon_attachments t JOIN addons d ON d.id = t.addon_id WHERE t.app_id = ?1")?;
        let rows = st.query_map([app_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut out = BTreeMap::new();
    for (name, raw) in rows {
        let config: BTreeMap<String, String> = serde_json::from_str(&raw)?;
        for (k, v) in config {
            out.insert(format!("{name}_{k}"), v);
        }
    }
    Ok(out)
}

fn addon_config(tx: &Transaction<'_>, addon_id: &str) -> Result<BTreeMap<String, String>> {
    let raw: String = tx.query_row("SELECT config FROM addons WHERE id = ?1", [addon_id], |r| {
        r.get(0)
    })?;
    Ok(serde_json::from_str(&raw)?)
}

/// Checks the `<NAME>_<KEY>` vars an attachment would set, before anything is written.
fn check_attachment_vars(name: &str, config: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in config {
        hoist_types::validate_config_var(&format!("{name}_{k}"), v)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// Sets `<NAME>_<KEY>` vars on the app, refusing to overwrite existing ones.
fn set_attachment_vars(
    tx: &Transaction<'_>,
    app_id: &str,
    name: &str,
    config: &BTreeMap<String, String>,
) -> Result<()> {
    check_attachment_vars(name, config)?;
    for (k, v) in config {
        let var = format!("{name}_{k}");
        let exists: Option<String> = tx
            .query_row(
                "SELECT key FROM config_vars WHERE app_id = ?1 AND key = ?2",
                params![app_id, var],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!(
                "Config var {var} already exists on this app; attach the add-on under another name (--as)."
            )));
        }
        tx.execute(
            "INSERT INTO config_vars (app_id, key, value) VALUES (?1, ?2, ?3)",
            params![app_id, var, v],
        )?;
    }
    Ok(())
}

fn attach_in_tx(
    tx: &Transaction<'_>,
    addon_id: &str,
    addon_name: &str,
    app_id: &str,
    name: &str,
    config: &BTreeMap<String, String>,
    user_id: &str,
) -> Result<Release> {
    validate_attachment_name(name)?;
    let taken: Option<String> = tx
        .query_row(
            "SELECT id FROM addon_attachments WHERE app_id = ?1 AND name = ?2",
            params![app_id, name],
            |r| r.get(0),
        )
        .optional()?;
    if taken.is_some() {
        return Err(StoreError::Conflict(format!(
            "An attachment named {name} already exists on this app."
        )));
    }
    let ts = now();
    tx.execute(
        "INSERT INTO addon_attachments (id, addon_id, app_id, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![new_id(), addon_id, app_id, name, ts],
    )?;
    set_attachment_vars(tx, app_id, name, config)?;
    let slug_id = current_slug(tx, app_id)?;
    insert_release(
        tx,
        app_id,
        NewRelease {
            description: format!("Attach {name} (@ref:{addon_name})"),
            slug_id,
            config: None,
            status: ReleaseStatus::Succeeded,
            user_id: user_id.to_string(),
        },
    )
}

fn current_slug(tx: &Transaction<'_>, app_id: &str) -> Result<Option<String>> {
    Ok(tx
        .query_row(
            "SELECT slug_id FROM releases WHERE app_id = ?1 AND status = 'succeeded' ORDER BY version DESC LIMIT 1",
            [app_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

/// Removes one attachment and its config vars; returns the app's new release.
fn detach_in_tx(
    tx: &Transaction<'_>,
    attachment_id: &str,
    description: Option<String>,
    user_id: &str,
) -> Result<(String, Release)> {
    let (app_id, name, addon_id): (String, String, String) = tx
        .query_row(
            "SELECT app_id, name, addon_id FROM addon_attachments WHERE id = ?1",
            [attachment_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?
        .ok_or(not_found("add-on attachment"))?;
    let addon_name: String =
        tx.query_row("SELECT name FROM addons WHERE id = ?1", [&addon_id], |r| {
            r.get(0)
        })?;
    for k in addon_config(tx, &addon_id)?.keys() {
        tx.execute(
            "DELETE FROM config_vars WHERE app_id = ?1 AND key = ?2",
            params![app_id, format!("{name}_{k}")],
        )?;
    }
    tx.execute(
        "DELETE FROM addon_attachments WHERE id = ?1",
        [attachment_id],
    )?;
    let slug_id = current_slug(tx, &app_id)?;
    let release = insert_release(
        tx,
        &app_id,
        NewRelease {
            description: description
                .unwrap_or_else(|| format!("Detach {name} (@ref:{addon_name})")),
            slug_id,
            config: None,
            status: ReleaseStatus::Succeeded,
            user_id: user_id.to_string(),
        },
    )?;
    Ok((app_id, release))
}

/// The add-on part of destroying an app, inside the app's deletion transaction. Add-ons
/// the app owns are removed everywhere (their attachments on other apps too, with a
/// release there, as Heroku does when the billing app goes) and recorded in
/// `addon_deprovisions`, so their resources are given back even if the daemon dies
/// before it gets to it. Attachments of other apps' add-ons go with the app's rows:
/// those add-ons stay. Returns the releases made on other apps.
pub(crate) fn retire_app_addons_in_tx(
    tx: &Transaction<'_>,
    app_id: &str,
    user_id: &str,
) -> Result<Vec<(String, Release)>> {
    let owned: Vec<(String, String, String, String, Option<String>)> = {
        let mut st = tx.prepare(
            "SELECT id, name, service, plan, provider_id FROM addons WHERE app_id = ?1 ORDER BY name",
        )?;
        let rows = st.query_map([app_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut releases = Vec::new();
    for (addon_id, name, service, plan, provider_id) in owned {
        let elsewhere: Vec<String> = {
            let mut st = tx
                .prepare("SELECT id FROM addon_attachments WHERE addon_id = ?1 AND app_id != ?2")?;
            let rows = st.query_map(params![addon_id, app_id], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for attachment_id in elsewhere {
            releases.push(detach_in_tx(
                tx,
                &attachment_id,
                Some(format!("Remove {name} ({service}:{plan}) add-on")),
                user_id,
            )?);
        }
        // No provider id: nothing was created on the provider's side.
        if let Some(provider_id) = provider_id.filter(|p| !p.is_empty()) {
            tx.execute(
                "INSERT INTO addon_deprovisions (id, addon_name, service, provider_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![addon_id, name, service, provider_id, now()],
            )?;
        }
        tx.execute("DELETE FROM addons WHERE id = ?1", [&addon_id])?;
    }
    Ok(releases)
}

impl Store {
    /// Records a provisioned add-on, attaches it to its app and creates the release.
    pub fn create_addon(
        &self,
        app_id: &str,
        new: &NewAddon<'_>,
        user_id: &str,
    ) -> Result<(Addon, Release)> {
        validate_attachment_name(new.attachment)?;
        let (id, release) = self.write(|tx| {
            let taken: Option<String> = tx.query_row("SELECT id FROM addons WHERE name = ?1", [new.name], |r| r.get(0)).optional()?;
            if taken.is_some() {
                return Err(StoreError::Conflict(format!("An add-on named {} already exists.", new.name)));
            }
            let id = new_id();
            let ts = now();
            tx.execute(
                "INSERT INTO addons (id, name, app_id, service, plan, state, provider_id, config, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                params![id, new.name, app_id, new.service, new.plan, new.state, new.provider_id, serde_json::to_string(new.config)?, ts],
            )?;
            let release = attach_in_tx(tx, &id, new.name, app_id, new.attachment, new.config, user_id)?;
            Ok((id, release))
        })?;
        Ok((self.addon(&id)?, release))
    }

    /// Checks, before provisioning anything, that the app can take the attachment.
    pub fn check_attachment_free(&self, app_id: &str, name: &str, keys: &[&str]) -> Result<()> {
        validate_attachment_name(name)?;
        self.read(|c| {
            let taken: i64 = c.query_row("SELECT count(*) FROM addon_attachments WHERE app_id = ?1 AND name = ?2", params![app_id, name], |r| r.get(0))?;
            if taken > 0 {
                return Err(StoreError::Conflict(format!("An attachment named {name} already exists on this app.")));
            }
            for k in keys {
                let var = format!("{name}_{k}");
                let n: i64 = c.query_row("SELECT count(*) FROM config_vars WHERE app_id = ?1 AND key = ?2", params![app_id, var], |r| r.get(0))?;
                if n > 0 {
                    return Err(StoreError::Conflict(format!(
                        "Config var {var} already exists on this app; attach the add-on under another name (--as)."
                    )));
                }
            }
            Ok(())
        })
    }

    pub fn addon(&self, ident: &str) -> Result<Addon> {
        self.read(|c| {
            c.query_row(
                &format!("{ADDON_SELECT} WHERE d.id = ?1 OR d.name = ?1"),
                [ident],
                addon_row,
            )
            .optional()?
            .ok_or(not_found("add-on"))
        })
    }

    pub fn addon_provider_id(&self, addon_id: &str) -> Result<Option<String>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT provider_id FROM addons WHERE id = ?1",
                [addon_id],
                |r| r.get(0),
            )?)
        })
    }

    /// Attaches an existing add-on to another (or the same) app under `name`.
    pub fn attach_addon(
        &self,
        addon_id: &str,
        app_id: &str,
        name: &str,
        user_id: &str,
    ) -> Result<Release> {
        self.write(|tx| {
            let addon_name: String = tx
                .query_row("SELECT name FROM addons WHERE id = ?1", [addon_id], |r| {
                    r.get(0)
                })
                .optional()?
                .ok_or(not_found("add-on"))?;
            let config = addon_config(tx, addon_id)?;
            attach_in_tx(tx, addon_id, &addon_name, app_id, name, &config, user_id)
        })
    }

    pub fn attachment(&self, ident: &str, app_id: Option<&str>) -> Result<AddonAttachment> {
        let list = match app_id {
            Some(a) => self.attachments_for_app(a)?,
            None => {
                let app: Option<String> = self.read(|c| {
                    Ok(c.query_row(
                        "SELECT app_id FROM addon_attachments WHERE id = ?1",
                        [ident],
                        |r| r.get(0),
                    )
                    .optional()?)
                })?;
                match app {
                    Some(a) => self.attachments_for_app(&a)?,
                    None => Vec::new(),
                }
            }
        };
        list.into_iter()
            .find(|t| t.id == ident || t.name == ident)
            .ok_or(not_found("add-on attachment"))
    }

    /// Detaches; the add-on itself stays (destroy removes it).
    pub fn detach_addon(&self, attachment_id: &str, user_id: &str) -> Result<(String, Release)> {
        self.write(|tx| detach_in_tx(tx, attachment_id, None, user_id))
    }

    /// Removes the add-on and every attachment; returns `(app_id, release)` per app.
    pub fn destroy_addon(&self, addon_id: &str, user_id: &str) -> Result<Vec<(String, Release)>> {
        self.write(|tx| {
            let (name, service, plan): (String, String, String) = tx
                .query_row(
                    "SELECT name, service, plan FROM addons WHERE id = ?1",
                    [addon_id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?
                .ok_or(not_found("add-on"))?;
            let ids: Vec<String> = {
                let mut st = tx.prepare("SELECT id FROM addon_attachments WHERE addon_id = ?1")?;
                let rows = st.query_map([addon_id], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::new();
            for id in ids {
                out.push(detach_in_tx(
                    tx,
                    &id,
                    Some(format!("Remove {name} ({service}:{plan}) add-on")),
                    user_id,
                )?);
            }
            tx.execute("DELETE FROM addons WHERE id = ?1", [addon_id])?;
            Ok(out)
        })
    }

    /// Add-on resources of destroyed apps still to be given back, oldest first.
    pub fn pending_deprovisions(&self) -> Result<Vec<PendingDeprovision>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, addon_name, service, provider_id FROM addon_deprovisions ORDER BY created_at, id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(PendingDeprovision {
                    id: r.get(0)?,
                    addon_name: r.get(1)?,
                    service: r.get(2)?,
                    provider_id: r.get(3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The provider gave the resource back: forget it.
    pub fn finish_deprovision(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM addon_deprovisions WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// Add-ons still `provisioning` that were created before `cutoff` (RFC 3339).
    pub fn stale_provisioning_addons(&self, cutoff: &str) -> Result<Vec<Addon>> {
        let ids: Vec<String> = self.read(|c| {
            let mut st = c.prepare(
                "SELECT id FROM addons WHERE state = 'provisioning' AND created_at < ?1",
            )?;
            let rows = st.query_map([cutoff], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?;
        ids.iter().map(|id| self.addon(id)).collect()
    }

    pub fn set_addon_state(&self, addon_id: &str, state: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE addons SET state = ?2, updated_at = ?3 WHERE id = ?1",
                params![addon_id, state, now()],
            )?;
            Ok(())
        })
    }

    /// A new plan (and possibly new config from the provider), with a release per app.
    pub fn change_addon_plan(
        &self,
        addon_id: &str,
        plan: &str,
        config: Option<&BTreeMap<String, String>>,
        user_id: &str,
    ) -> Result<Vec<(String, Release)>> {
        self.write(|tx| {
            let (name, service): (String, String) = tx
                .query_row(
                    "SELECT name, service FROM addons WHERE id = ?1",
                    [addon_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or(not_found("add-on"))?;
            tx.execute(
                "UPDATE addons SET plan = ?2, updated_at = ?3 WHERE id = ?1",
                params![addon_id, plan, now()],
            )?;
            let description = format!("Upgrade {name} to {service}:{plan}");
            update_config_in_tx(tx, addon_id, config, &description, user_id)
        })
    }

    /// A provider's (async) config arrives: update the vars on every attached app.
    pub fn set_addon_config(
        &self,
        addon_id: &str,
        config: &BTreeMap<String, String>,
        user_id: &str,
    ) -> Result<Vec<(String, Release)>> {
        self.write(|tx| {
            let name: String = tx
                .query_row("SELECT name FROM addons WHERE id = ?1", [addon_id], |r| {
                    r.get(0)
                })
                .optional()?
                .ok_or(not_found("add-on"))?;
            update_config_in_tx(
                tx,
                addon_id,
                Some(config),
                &format!("Update {name} config"),
                user_id,
            )
        })
    }
}

fn update_config_in_tx(
    tx: &Transaction<'_>,
    addon_id: &str,
    config: Option<&BTreeMap<String, String>>,
    description: &str,
    user_id: &str,
) -> Result<Vec<(String, Release)>> {
    let old = addon_config(tx, addon_id)?;
    let new = config.cloned().unwrap_or_else(|| old.clone());
    tx.execute(
        "UPDATE addons SET config = ?2 WHERE id = ?1",
        params![addon_id, serde_json::to_string(&new)?],
    )?;
    let attachments: Vec<(String, String)> = {
        let mut st =
            tx.prepare("SELECT app_id, name FROM addon_attachments WHERE addon_id = ?1")?;
        let rows = st.query_map([addon_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut out = Vec::new();
    for (app_id, name) in attachments {
        check_attachment_vars(&name, &new)?;
        for k in old.keys() {
            tx.execute(
                "DELETE FROM config_vars WHERE app_id = ?1 AND key = ?2",
                params![app_id, format!("{name}_{k}")],
            )?;
        }
        for (k, v) in &new {
            tx.execute(
                "INSERT INTO config_vars (app_id, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value",
                params![app_id, format!("{name}_{k}"), v],
            )?;
        }
        let slug_id = current_slug(tx, &app_id)?;
        let rel = insert_release(
            tx,
            &app_id,
            NewRelease {
                description: description.to_string(),
                slug_id,
                config: None,
                status: ReleaseStatus::Succeeded,
                user_id: user_id.to_string(),
            },
        )?;
        out.push((app_id, rel));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{owner_and_app, store};

    #[test]
    fn attach_detach_and_destroy_keep_config_and_ledger_consistent() {
        let (_d, s) = store();
        let (u, app) = owner_and_app(&s);
        let other = s
            .create_app(Some("other"), &u.id, "heroku-24", "us")
            .unwrap();
        let cfg = BTreeMap::from([(
            "URL".to_string(),
            "postgres://u:p@127.0.0.1:5432/d".to_string(),
        )]);
        let new = NewAddon {
            name: "postgresql-quiet-1",
            service: "postgresql",
            plan: "mini",
            state: "provisioned",
            provider_id: Some("d"),
            config: &cfg,
            attachment: "DATABASE",
        };
        let (addon, rel) = s.create_addon(&app.id, &new, &u.id).unwrap();
        assert_eq!(rel.description, "Attach DATABASE (@ref:postgresql-quiet-1)");
        assert_eq!(rel.addon_plan_names, vec!["postgresql:mini"]);
        assert_eq!(s.config_vars(&app.id).unwrap()["DATABASE_URL"], cfg["URL"]);
        // A second add-on under the same name clashes and writes nothing.
        let again = NewAddon {
            name: "postgresql-quiet-2",
            ..new.clone()
        };
        assert!(matches!(
            s.create_addon(&app.id, &again, &u.id),
            Err(StoreError::Conflict(_))
        ));
        assert!(s.addon("postgresql-quiet-2").is_err());
        // Attaching where the config var exists is a conflict.
        let mut c = BTreeMap::new();
        c.insert("OTHER_DB_URL".to_string(), Some("x".to_string()));
        s.update_config(&other.id, &c, &u.id).unwrap();
        assert!(matches!(
            s.attach_addon(&addon.id, &other.id, "OTHER_DB", &u.id),
            Err(StoreError::Conflict(_))
        ));
        s.attach_addon(&addon.id, &other.id, "SHARED_DB", &u.id)
            .unwrap();
        assert_eq!(
            s.config_vars(&other.id).unwrap()["SHARED_DB_URL"],
            cfg["URL"]
        );
        let att = s.attachment("SHARED_DB", Some(&other.id)).unwrap();
        let (_, rel) = s.detach_addon(&att.id, &u.id).unwrap();
        assert_eq!(
            rel.description,
            "Detach SHARED_DB (@ref:postgresql-quiet-1)"
        );
        assert!(!s
            .config_vars(&other.id)
            .unwrap()
            .contains_key("SHARED_DB_URL"));
        let out = s.destroy_addon(&addon.id, &u.id).unwrap();
        assert_eq!(
            out[0].1.description,
            "Remove postgresql-quiet-1 (postgresql:mini) add-on"
        );
        assert!(!s.config_vars(&app.id).unwrap().contains_key("DATABASE_URL"));
        assert!(validate_attachment_name("bad-name").is_err());
        // Rollback keeps the config of add-ons attached now.
        let cfg2 = BTreeMap::from([("URL".to_string(), "redis://r".to_string())]);
        let before = s.current_release(&app.id).unwrap().unwrap().version;
        let r = NewAddon {
            name: "redis-one-1",
            service: "redis",
            plan: "mini",
            state: "provisioned",
            provider_id: None,
            config: &cfg2,
            attachment: "REDIS",
        };
        s.create_addon(&app.id, &r, &u.id).unwrap();
        let rb = s.rollback(&app.id, &before.to_string(), &u.id).unwrap();
        assert_eq!(rb.config["REDIS_URL"], "redis://r");
        assert_eq!(s.config_vars(&app.id).unwrap()["REDIS_URL"], "redis://r");
    }
    fn cfg(url: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("URL".to_string(), url.to_string())])
    }

    #[test]
    fn destroying_an_app_records_its_addons_for_deprovisioning_durably() {
        let (dir, s) = store();
        let (u, app) = owner_and_app(&s);
        let other = s
            .create_app(Some("other"), &u.id, "heroku-24", "us")
            .unwrap();
        let db = cfg("postgres://u:p@127.0.0.1:5432/d1");
        let owned = NewAddon {
            name: "postgresql-owned-1",
            service: "postgresql",
            plan: "mini",
            state: "provisioned",
            provider_id: Some("d111111111111"),
            config: &db,
            attachment: "DATABASE",
        };
        let (owned, _) = s.create_addon(&app.id, &owned, &u.id).unwrap();
        assert_eq!(owned.config_vars, vec!["DATABASE_URL"]);
        assert_eq!(owned.config_keys, vec!["URL"]);
        // Shared with the other app, which keeps its own add-on attached to `demo` too.
        s.attach_addon(&owned.id, &other.id, "SHARED_DB", &u.id)
            .unwrap();
        let kv = cfg("redis://r");
        let theirs = NewAddon {
            name: "redis-theirs-1",
            service: "redis",
            plan: "mini",
            state: "provisioned",
            provider_id: Some("r222222222222"),
            config: &kv,
            attachment: "REDIS",
        };
        let (theirs, _) = s.create_addon(&other.id, &theirs, &u.id).unwrap();
        s.attach_addon(&theirs.id, &app.id, "CACHE", &u.id).unwrap();
        let before = s.current_release(&other.id).unwrap().unwrap().version;

        let releases = s.destroy_app(&app.id, &u.id).unwrap();

        // The owned add-on is gone everywhere, its var removed from the other app with
        // a release there; the other app's own add-on only lost the attachment.
        assert_eq!(releases.len(), 1);
        assert_eq!(releases[0].0, other.id);
        assert_eq!(
            releases[0].1.description,
            "Remove postgresql-owned-1 (postgresql:mini) add-on"
        );
        assert_eq!(releases[0].1.version, before + 1);
        let vars = s.config_vars(&other.id).unwrap();
        assert!(!vars.contains_key("SHARED_DB_URL"), "{vars:?}");
        assert_eq!(vars["REDIS_URL"], "redis://r");
        assert!(s.addon("postgresql-owned-1").is_err());
        let kept = s.addon("redis-theirs-1").unwrap();
        assert_eq!(kept.config_vars, vec!["REDIS_URL"]);
        assert_eq!(s.attachments_for_app(&other.id).unwrap().len(), 1);
        let expected = vec![PendingDeprovision {
            id: owned.id.clone(),
            addon_name: "postgresql-owned-1".into(),
            service: "postgresql".into(),
            provider_id: "d111111111111".into(),
        }];
        assert_eq!(s.pending_deprovisions().unwrap(), expected);

        // A daemon that dies now finds the work recorded when it starts again.
        drop(s);
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        assert_eq!(s.pending_deprovisions().unwrap(), expected);
        s.finish_deprovision(&owned.id).unwrap();
        assert!(s.pending_deprovisions().unwrap().is_empty());

        // A failed destroy (no such app) records nothing.
        assert!(s.destroy_app("nope", &u.id).is_err());
        assert!(s.pending_deprovisions().unwrap().is_empty());
    }

    #[test]
    fn addon_config_that_no_process_could_receive_is_refused() {
        let (_d, s) = store();
        let (u, app) = owner_and_app(&s);
        let bad = BTreeMap::from([("URL".to_string(), "redis://a\0b".to_string())]);
        let new = NewAddon {
            name: "redis-nul-1",
            service: "redis",
            plan: "mini",
            state: "provisioned",
            provider_id: None,
            config: &bad,
            attachment: "REDIS",
        };
        let e = s.create_addon(&app.id, &new, &u.id).unwrap_err();
        assert!(
            matches!(&e, StoreError::Invalid(m) if m.contains("REDIS_URL")),
            "{e:?}"
        );
        assert!(s.addon("redis-nul-1").is_err(), "nothing written");
        let good = BTreeMap::from([("URL".to_string(), "redis://r".to_string())]);
        let (addon, _) = s
            .create_addon(
                &app.id,
                &NewAddon {
                    config: &good,
                    ..new
                },
                &u.id,
            )
            .unwrap();
        assert!(matches!(
            s.set_addon_config(&addon.id, &bad, &u.id),
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(s.config_vars(&app.id).unwrap()["REDIS_URL"], "redis://r");
    }
}
