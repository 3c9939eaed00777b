//! Config vars, slugs, builds and the append-only release ledger.

use crate::{
    new_id, not_found, now, Build, ConfigVars, Release, ReleaseStatus, Result, Slug, Store,
    StoreError,
};
use hoist_types::{validate_config_var, validate_config_var_name};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use std::collections::BTreeMap;

pub use hoist_types::MAX_CONFIG_VALUE_BYTES;
pub const MAX_CONFIG_TOTAL_BYTES: usize = 64 * 1024;

const RELEASE_COLS: &str = "r.id, r.app_id, r.version, r.description, r.status, r.slug_id, r.config, r.addon_plan_names, r.user_id, COALESCE(u.email, ''), r.created_at, r.updated_at";

fn release_row(r: &Row<'_>) -> rusqlite::Result<(Release, String, String)> {
    Ok((
        Release {
            id: r.get(0)?,
            app_id: r.get(1)?,
            version: r.get(2)?,
            description: r.get(3)?,
            status: ReleaseStatus::parse(&r.get::<_, String>(4)?),
            slug_id: r.get(5)?,
            config: ConfigVars::new(),
            addon_plan_names: Vec::new(),
            user_id: r.get(8)?,
            user_email: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
            current: false,
        },
        r.get(6)?,
        r.get(7)?,
    ))
}

fn finish_release(raw: (Release, String, String), current_version: Option<i64>) -> Result<Release> {
    let (mut rel, config, addons) = raw;
    rel.config = serde_json::from_str(&config)?;
    rel.addon_plan_names = serde_json::from_str(&addons)?;
    rel.current = Some(rel.version) == current_version;
    Ok(rel)
}

fn current_version(c: &Connection, app_id: &str) -> Result<Option<i64>> {
    Ok(c.query_row(
        "SELECT max(version) FROM releases WHERE app_id = ?1 AND status = 'succeeded'",
        [app_id],
        |r| r.get(0),
    )?)
}

fn load_config(c: &Connection, app_id: &str) -> Result<ConfigVars> {
    let mut st = c.prepare_cached("SELECT key, value FROM config_vars WHERE app_id = ?1")?;
    let rows = st.query_map([app_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn release_by_ident(c: &Connection, app_id: &str, ident: &str) -> Result<Release> {
    let ident = ident.strip_prefix('v').unwrap_or(ident);
    let sql = format!(
        "SELECT {RELEASE_COLS} FROM releases r LEFT JOIN accounts u ON u.id = r.user_id WHERE r.app_id = ?1 AND (r.id = ?2 OR CAST(r.version AS TEXT) = ?2)"
    );
    let raw = c
        .query_row(&sql, params![app_id, ident], release_row)
        .optional()?
        .ok_or(not_found("release"))?;
    finish_release(raw, current_version(c, app_id)?)
}

fn slug_row(r: &Row<'_>) -> rusqlite::Result<(Slug, String)> {
    Ok((
        Slug {
            id: r.get(0)?,
            app_id: r.get(1)?,
            checksum: r.get(2)?,
            size: r.get(3)?,
            process_types: BTreeMap::new(),
            buildpack_provided_description: r.get(5)?,
            commit: r.get(6)?,
            stack: r.get(7)?,
            created_at: r.get(8)?,
        },
        r.get(4)?,
    ))
}

fn slug_by_id(c: &Connection, id: &str) -> Result<Slug> {
    let (mut slug, types) = c
        .query_row(
            "SELECT id, app_id, checksum, size, process_types, buildpack_provided_description, commit_sha, stack, created_at FROM slugs WHERE id = ?1",
            [id],
            slug_row,
        )
        .optional()?
        .ok_or(not_found("slug"))?;
    slug.process_types = serde_json::from_str(&types)?;
    Ok(slug)
}

/// What a new slug row records.
#[derive(Debug, Clone)]
pub struct NewSlug<'a> {
    /// sha256 of the compressed slug (its file name).
    pub checksum: &'a str,
    pub size: i64,
    pub process_types: &'a BTreeMap<String, String>,
    pub description: Option<&'a str>,
    pub commit: Option<&'a str>,
    pub stack: &'a str,
}

/// What a new release is made of.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub description: String,
    pub slug_id: Option<String>,
    /// `None` snapshots the app's current config vars.
    pub config: Option<ConfigVars>,
    pub status: ReleaseStatus,
    pub user_id: String,
}

/// Appends a release to the ledger inside the caller's transaction.
pub(crate) fn insert_release(
    tx: &Transaction<'_>,
    app_id: &str,
    new: NewRelease,
) -> Result<Release> {
    let version: i64 = tx.query_row(
        "SELECT COALESCE(max(version), 0) + 1 FROM releases WHERE app_id = ?1",
        [app_id],
        |r| r.get(0),
    )?;
    let config = match new.config {
        Some(c) => c,
        None => load_config(tx, app_id)?,
    };
    let addon_plans: Vec<String> = {
        let mut st = tx.prepare_cached(
            "SELECT DISTINCT d.service || ':' || d.plan FROM addon_attachments t JOIN addons d ON d.id = t.addon_id WHERE t.app_id = ?1 ORDER BY 1",
        )?;
        let rows = st.query_map([app_id], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let id = new_id();
    let ts = now();
    tx.execute(
        "INSERT INTO releases (id, app_id, version, description, status, slug_id, config, addon_plan_names, user_id, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
        params![
            id,
            app_id,
            version,
            new.description,
            new.status.as_str(),
            new.slug_id,
            serde_json::to_string(&config)?,
            serde_json::to_string(&addon_plans)?,
            new.user_id,
            ts
        ],
    )?;
    if new.status == ReleaseStatus::Succeeded {
        released(tx, app_id, new.slug_id.as_deref())?;
    }
    release_by_ident(tx, app_id, &id)
}

/// Bookkeeping when a release becomes current: the app's release time and the formation
/// follow the slug's process types (first deploy of `web` scales it to 1).
fn released(tx: &Transaction<'_>, app_id: &str, slug_id: Option<&str>) -> Result<()> {
    let ts = now();
    tx.execute(
        "UPDATE apps SET released_at = ?2, updated_at = ?2 WHERE id = ?1",
        params![app_id, ts],
    )?;
    let Some(slug_id) = slug_id else {
        return Ok(());
    };
    let slug = slug_by_id(tx, slug_id)?;
    let types: BTreeMap<&String, &String> = slug
        .process_types
        .iter()
        .filter(|(t, _)| t.as_str() != "release")
        .collect();
    let mut existing: Vec<String> = {
        let mut st = tx.prepare("SELECT type FROM formation WHERE app_id = ?1")?;
        let rows = st.query_map([app_id], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    existing.sort();
    for t in &existing {
        if !types.contains_key(t) {
            tx.execute(
                "DELETE FROM formation WHERE app_id = ?1 AND type = ?2",
                params![app_id, t],
            )?;
        }
    }
    for (t, command) in types {
        if existing.binary_search(t).is_ok() {
            tx.execute(
                "UPDATE formation SET command = ?3, updated_at = ?4 WHERE app_id = ?1 AND type = ?2",
                params![app_id, t, command, ts],
            )?;
        } else {
            let quantity = i64::from(t == "web");
            tx.execute(
                "INSERT INTO formation (id, app_id, type, quantity, size, command, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 'Basic', ?5, ?6, ?6)",
                params![new_id(), app_id, t, quantity, command, ts],
            )?;
        }
    }
    Ok(())
}

/// Heroku's wording: `Set FOO, BAR config vars`, `Remove FOO config vars`.
fn config_description(set: &[&str], removed: &[&str]) -> String {
    match (set.is_empty(), removed.is_empty()) {
        (false, true) => format!("Set {} config vars", set.join(", ")),
        (true, false) => format!("Remove {} config vars", removed.join(", ")),
        _ => format!(
            "Set {} and remove {} config vars",
            set.join(", "),
            removed.join(", ")
        ),
    }
}

/// Checks a config var change before anything is written.
pub fn validate_config_change(changes: &BTreeMap<String, Option<String>>) -> Result<()> {
    for (k, v) in changes {
        match v {
            Some(v) => validate_config_var(k, v),
            None => validate_config_var_name(k),
        }
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    }
    Ok(())
}

impl Store {
    pub fn config_vars(&self, app_id: &str) -> Result<ConfigVars> {
        self.read(|c| load_config(c, app_id))
    }

    /// Applies a config change (`None` unsets) and creates its release, atomically.
    /// Returns the resulting config and the new release (`None` when nothing changed).
    pub fn update_config(
        &self,
        app_id: &str,
        changes: &BTreeMap<String, Option<String>>,
        user_id: &str,
    ) -> Result<(ConfigVars, Option<Release>)> {
        validate_config_change(changes)?;
        self.write(|tx| {
            let mut config = load_config(tx, app_id)?;
            let mut set = Vec::new();
            let mut removed = Vec::new();
            for (k, v) in changes {
                match v {
                    Some(v) => {
                        if config.get(k) != Some(v) {
                            config.insert(k.clone(), v.clone());
                            set.push(k.as_str());
                        }
                    }
                    None => {
                        if config.remove(k).is_some() {
                            removed.push(k.as_str());
                        }
                    }
                }
            }
            let total: usize = config.iter().map(|(k, v)| k.len() + v.len()).sum();
            if total > MAX_CONFIG_TOTAL_BYTES {
                return Err(StoreError::Invalid(format!(
                    "Config vars would total {total} bytes; the limit is 64 KB per app."
                )));
            }
            if set.is_empty() && removed.is_empty() {
                return Ok((config, None));
            }
            for k in &set {
                tx.execute(
                    "INSERT INTO config_vars (app_id, key, value) VALUES (?1, ?2, ?3) ON CONFLICT (app_id, key) DO UPDATE SET value = excluded.value",
                    params![app_id, k, config[*k]],
                )?;
            }
            for k in &removed {
                tx.execute(
                    "DELETE FROM config_vars WHERE app_id = ?1 AND key = ?2",
                    params![app_id, k],
                )?;
            }
            let slug_id = current_slug_id(tx, app_id)?;
            let release = insert_release(
                tx,
                app_id,
                NewRelease {
                    description: config_description(&set, &removed),
                    slug_id,
                    config: Some(config.clone()),
                    status: ReleaseStatus::Succeeded,
                    user_id: user_id.to_string(),
                },
            )?;
            Ok((config, Some(release)))
        })
    }

    /// Appends a release (e.g. `Initial release`, `Deploy 1a2b3c4`).
    pub fn create_release(&self, app_id: &str, new: NewRelease) -> Result<Release> {
        if let Some(slug_id) = &new.slug_id {
            let slug = self.slug(slug_id)?;
            if slug.app_id != app_id {
                return Err(not_found("slug"));
            }
        }
        self.write(|tx| insert_release(tx, app_id, new))
    }

    /// The only mutation of a release: its status (release phase outcome).
    pub fn set_release_status(
        &self,
        app_id: &str,
        release_id: &str,
        status: ReleaseStatus,
    ) -> Result<Release> {
        self.write(|tx| {
            let rel = release_by_ident(tx, app_id, release_id)?;
            update_release_status(tx, &rel.id, status)?;
            if status == ReleaseStatus::Succeeded {
                released(tx, app_id, rel.slug_id.as_deref())?;
            }
            release_by_ident(tx, app_id, &rel.id)
        })
    }

    /// A new release copying slug and config vars of `target` (version or id). The
    /// app's config vars become the target's; add-ons are not touched.
    pub fn rollback(&self, app_id: &str, target: &str, user_id: &str) -> Result<Release> {
        self.write(|tx| {
            let target = release_by_ident(tx, app_id, target)?;
            if target.status != ReleaseStatus::Succeeded {
                return Err(StoreError::Invalid(format!(
                    "Cannot roll back to v{}: that release {}.",
                    target.version,
                    if target.status == ReleaseStatus::Failed {
                        "failed"
                    } else {
                        "is still pending"
                    }
                )));
            }
            // Rollback does not add or remove add-ons: the config vars of the add-ons
            // attached now stay as they are, whatever the target release had.
            let addon_vars = crate::addons::attachment_vars(tx, app_id)?;
            let mut config = target.config.clone();
            config.retain(|k, _| !addon_vars.contains_key(k));
            config.extend(addon_vars);
            tx.execute("DELETE FROM config_vars WHERE app_id = ?1", [app_id])?;
            for (k, v) in &config {
                tx.execute(
                    "INSERT INTO config_vars (app_id, key, value) VALUES (?1, ?2, ?3)",
                    params![app_id, k, v],
                )?;
            }
            let target = Release { config, ..target };
            insert_release(
                tx,
                app_id,
                NewRelease {
                    description: format!("Rollback to v{}", target.version),
                    slug_id: target.slug_id.clone(),
                    config: Some(target.config.clone()),
                    status: ReleaseStatus::Succeeded,
                    user_id: user_id.to_string(),
                },
            )
        })
    }

    pub fn release(&self, app_id: &str, ident: &str) -> Result<Release> {
        self.read(|c| release_by_ident(c, app_id, ident))
    }

    pub fn current_release(&self, app_id: &str) -> Result<Option<Release>> {
        self.read(|c| match current_version(c, app_id)? {
            Some(v) => Ok(Some(release_by_ident(c, app_id, &v.to_string())?)),
            None => Ok(None),
        })
    }

    /// Releases ordered by version, bounded by `first..last` (`first_exclusive` for
    /// `]first..`), at most `limit`.
    pub fn releases(
        &self,
        app_id: &str,
        first: Option<i64>,
        first_exclusive: bool,
        last: Option<i64>,
        desc: bool,
        limit: usize,
    ) -> Result<Vec<Release>> {
        self.read(|c| {
            let cur = current_version(c, app_id)?;
            // In descending order the range runs from high (`first`) to low (`last`).
            let (lo, hi, lo_x, hi_x) = if desc {
                (last, first, false, first_exclusive)
            } else {
                (first, last, first_exclusive, false)
            };
            let sql = format!(
                "SELECT {RELEASE_COLS} FROM releases r LEFT JOIN accounts u ON u.id = r.user_id WHERE r.app_id = ?1
                 AND (?2 IS NULL OR r.version {} ?2) AND (?3 IS NULL OR r.version {} ?3)
                 ORDER BY r.version {} LIMIT ?4",
                if lo_x { ">" } else { ">=" },
                if hi_x { "<" } else { "<=" },
                if desc { "DESC" } else { "ASC" }
            );
            let mut st = c.prepare_cached(&sql)?;
            let rows = st.query_map(params![app_id, lo, hi, limit as i64], release_row)?;
            rows.map(|r| finish_release(r?, cur)).collect()
        })
    }

    pub fn create_slug(&self, app_id: &str, new: &NewSlug<'_>) -> Result<Slug> {
        let id = self.write(|tx| {
            let id = new_id();
            tx.execute(
                "INSERT INTO slugs (id, app_id, checksum, size, process_types, buildpack_provided_description, commit_sha, stack, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id, app_id, new.checksum, new.size, serde_json::to_string(new.process_types)?, new.description, new.commit, new.stack, now()],
            )?;
            Ok(id)
        })?;
        self.slug(&id)
    }

    pub fn slug(&self, id: &str) -> Result<Slug> {
        self.read(|c| slug_by_id(c, id))
    }

    pub fn create_build(
        &self,
        app_id: &str,
        user_id: &str,
        source_url: Option<&str>,
        source_version: Option<&str>,
        buildpacks: &[String],
    ) -> Result<Build> {
        let id = self.write(|tx| {
            let id = new_id();
            let ts = now();
            tx.execute(
                "INSERT INTO builds (id, app_id, status, source_url, source_version, user_id, buildpacks, created_at, updated_at)
                 VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6, ?7, ?7)",
                params![id, app_id, source_url, source_version, user_id, serde_json::to_string(buildpacks)?, ts],
            )?;
            Ok(id)
        })?;
        self.build(app_id, &id)
    }

    pub fn finish_build(
        &self,
        build_id: &str,
        status: &str,
        slug_id: Option<&str>,
        release_id: Option<&str>,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE builds SET status = ?2, slug_id = ?3, release_id = ?4, updated_at = ?5 WHERE id = ?1",
                params![build_id, status, slug_id, release_id, now()],
            )?;
            Ok(())
        })
    }

    /// Marks every build and release phase still `pending` as failed with `reason`.
    /// Only for start-up: nothing can be running then, so `pending` means the daemon
    /// stopped (crash, `kill -9`) in the middle. Returns the builds and releases marked.
    pub fn fail_interrupted(&self, reason: &str) -> Result<(Vec<Build>, Vec<Release>)> {
        let (builds, releases) = self.write(|tx| {
            let ts = now();
            let builds: Vec<(String, String)> = {
                let mut st = tx.prepare(
                    "UPDATE builds SET status = 'failed', status_reason = ?1, updated_at = ?2 WHERE status = 'pending' RETURNING app_id, id",
                )?;
                let rows = st.query_map(params![reason, ts], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let releases: Vec<(String, String)> = {
                let mut st =
                    tx.prepare("SELECT app_id, id FROM releases WHERE status = 'pending'")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for (_, id) in &releases {
                update_release_status(tx, id, ReleaseStatus::Failed)?;
            }
            Ok((builds, releases))
        })?;
        let builds = builds
            .iter()
            .map(|(app, id)| self.build(app, id))
            .collect::<Result<_>>()?;
        let releases = releases
            .iter()
            .map(|(app, id)| self.release(app, id))
            .collect::<Result<_>>()?;
        Ok((builds, releases))
    }

    pub fn build(&self, app_id: &str, id: &str) -> Result<Build> {
        self.read(|c| {
            let raw = c
                .query_row(
                    &format!("{BUILD_SELECT} WHERE b.app_id = ?1 AND b.id = ?2"),
                    params![app_id, id],
                    build_row,
                )
                .optional()?
                .ok_or(not_found("build"))?;
            finish_build(raw)
        })
    }

    pub fn builds(&self, app_id: &str) -> Result<Vec<Build>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "{BUILD_SELECT} WHERE b.app_id = ?1 ORDER BY b.created_at, b.rowid"
            ))?;
            let rows = st.query_map([app_id], build_row)?;
            rows.map(|r| finish_build(r?)).collect()
        })
    }
}

/// The one change the ledger allows to a release: its status.
fn update_release_status(tx: &Transaction<'_>, id: &str, status: ReleaseStatus) -> Result<()> {
    tx.execute(
        "UPDATE releases SET status = ?2, updated_at = ?3 WHERE id = ?1",
        params![id, status.as_str(), now()],
    )?;
    Ok(())
}

fn current_slug_id(c: &Connection, app_id: &str) -> Result<Option<String>> {
    Ok(c.query_row(
        "SELECT slug_id FROM releases WHERE app_id = ?1 AND status = 'succeeded' ORDER BY version DESC LIMIT 1",
        [app_id],
        |r| r.get(0),
    )
    .optional()?
    .flatten())
}

const BUILD_SELECT: &str = "SELECT b.id, b.app_id, b.status, b.source_url, b.source_version, b.slug_id, b.release_id, b.user_id, COALESCE(u.email, ''), b.buildpacks, b.created_at, b.updated_at, b.status_reason FROM builds b LEFT JOIN accounts u ON u.id = b.user_id";

fn build_row(r: &Row<'_>) -> rusqlite::Result<(Build, String)> {
    Ok((
        Build {
            id: r.get(0)?,
            app_id: r.get(1)?,
            status: r.get(2)?,
            source_url: r.get(3)?,
            source_version: r.get(4)?,
            slug_id: r.get(5)?,
            release_id: r.get(6)?,
            user_id: r.get(7)?,
            user_email: r.get(8)?,
            buildpacks: Vec::new(),
            status_reason: r.get(12)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
        },
        r.get(9)?,
    ))
}

fn finish_build(raw: (Build, String)) -> Result<Build> {
    let (mut b, bps) = raw;
    b.buildpacks = serde_json::from_str(&bps)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{owner_and_app, store};

    fn changes(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect()
    }

    #[test]
    fn config_changes_create_releases_with_herokus_descriptions() {
        let (_d, s) = store();
        let (u, app) = owner_and_app(&s);
        let (_, r) = s
            .update_config(
                &app.id,
                &changes(&[("FOO", Some("1")), ("BAR", Some("2"))]),
                &u.id,
            )
            .unwrap();
        let r = r.unwrap();
        assert_eq!(r.version, 2, "v1 is the app's Initial release");
        assert_eq!(r.description, "Set BAR, FOO config vars");
        assert!(r.current);
        let (cfg, r2) = s
            .update_config(&app.id, &changes(&[("FOO", None)]), &u.id)
            .unwrap();
        assert_eq!(r2.unwrap().description, "Remove FOO config vars");
        assert_eq!(cfg.len(), 1);
        // No effective change: no release.
        let (_, r3) = s
            .update_config(&app.id, &changes(&[("FOO", None)]), &u.id)
            .unwrap();
        assert!(r3.is_none());
        let list = s.releases(&app.id, None, false, None, true, 10).unwrap();
        assert_eq!(
            list.iter().map(|r| r.version).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        assert_eq!(list[2].description, "Initial release");
        assert!(list[0].current && !list[1].current);
    }

    #[test]
    fn bad_config_is_rejected_and_nothing_is_written() {
        let (_d, s) = store();
        let (u, app) = owner_and_app(&s);
        let big = "x".repeat(MAX_CONFIG_VALUE_BYTES + 1);
        assert!(s
            .update_config(
                &app.id,
                &changes(&[("OK", Some("1")), ("BIG", Some(&big))]),
                &u.id
            )
            .is_err());
        assert!(s
            .update_config(
                &app.id,
                &changes(&[("OK", Some("1")), ("1BAD", Some("x"))]),
                &u.id
            )
            .is_err());
        let v = "y".repeat(30 * 1024);
        s.update_config(
            &app.id,
            &changes(&[("A", Some(&v)), ("B", Some(&v))]),
            &u.id,
        )
        .unwrap();
        assert!(s
            .update_config(&app.id, &changes(&[("C", Some(&v))]), &u.id)
            .is_err());
        assert_eq!(s.config_vars(&app.id).unwrap().len(), 2);
        assert_eq!(
            s.releases(&app.id, None, false, None, true, 10)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn interrupted_builds_and_release_phases_are_marked_failed_with_the_reason() {
        let (_d, s) = store();
        let (u, app) = owner_and_app(&s);
        let done = s.create_build(&app.id, &u.id, None, None, &[]).unwrap();
        s.finish_build(&done.id, "succeeded", None, None).unwrap();
        let running = s
            .create_build(&app.id, &u.id, None, Some("abc"), &[])
            .unwrap();
        let phase = s
            .create_release(
                &app.id,
                NewRelease {
                    description: "Deploy abc".into(),
                    slug_id: None,
                    config: None,
                    status: ReleaseStatus::Pending,
                    user_id: u.id.clone(),
                },
            )
            .unwrap();
        let (builds, releases) = s.fail_interrupted("the server stopped").unwrap();
        assert_eq!(builds.len(), 1);
        assert_eq!(builds[0].id, running.id);
        assert_eq!(builds[0].status, "failed");
        assert_eq!(
            builds[0].status_reason.as_deref(),
            Some("the server stopped")
        );
        assert_eq!(releases.len(), 1);
        assert_eq!(releases[0].id, phase.id);
        assert_eq!(
            s.release(&app.id, &phase.id).unwrap().status,
            ReleaseStatus::Failed
        );
        let kept = s.build(&app.id, &done.id).unwrap();
        assert_eq!(
            (kept.status.as_str(), kept.status_reason),
            ("succeeded", None)
        );
        // A second start finds nothing left.
        let (b, r) = s.fail_interrupted("again").unwrap();
        assert!(b.is_empty() && r.is_empty());
    }

    #[test]
    fn rollback_copies_slug_and_config() {
        let (_d, s) = store();
        let (u, app) = owner_and_app(&s);
        let types = BTreeMap::from([("web".to_string(), "npm start".to_string())]);
        let slug = s
            .create_slug(
                &app.id,
                &NewSlug {
                    checksum: "abc",
                    size: 10,
                    process_types: &types,
                    description: None,
                    commit: Some("1a2b3c4"),
                    stack: "heroku-24",
                },
            )
            .unwrap();
        s.update_config(&app.id, &changes(&[("A", Some("1"))]), &u.id)
            .unwrap();
        let deploy = s
            .create_release(
                &app.id,
                NewRelease {
                    description: "Deploy 1a2b3c4".into(),
                    slug_id: Some(slug.id.clone()),
                    config: None,
                    status: ReleaseStatus::Succeeded,
                    user_id: u.id.clone(),
                },
            )
            .unwrap();
        assert_eq!(deploy.config["A"], "1");
        assert_eq!(s.formation(&app.id).unwrap()[0].quantity, 1);
        s.update_config(
            &app.id,
            &changes(&[("A", Some("2")), ("B", Some("3"))]),
            &u.id,
        )
        .unwrap();
        let rb = s.rollback(&app.id, "v3", &u.id).unwrap();
        assert_eq!(rb.version, 5);
        assert_eq!(rb.description, "Rollback to v3");
        assert_eq!(rb.slug_id.as_deref(), Some(slug.id.as_str()));
        assert_eq!(
            s.config_vars(&app.id).unwrap(),
            BTreeMap::from([("A".into(), "1".into())])
        );
        assert!(s.rollback(&app.id, "v99", &u.id).is_err());
    }

    #[test]
    fn the_ledger_is_append_only() {
        let (_d, s) = store();
        let (u, app) = owner_and_app(&s);
        let (_, r) = s
            .update_config(&app.id, &changes(&[("A", Some("1"))]), &u.id)
            .unwrap();
        let r = r.unwrap();
        // The schema refuses any change but status, and any delete while the app exists.
        let upd = s.write(|tx| {
            tx.execute(
                "UPDATE releases SET description = 'x' WHERE id = ?1",
                [&r.id],
            )?;
            Ok(())
        });
        assert!(upd.is_err());
        let del = s.write(|tx| {
            tx.execute("DELETE FROM releases WHERE id = ?1", [&r.id])?;
            Ok(())
        });
        assert!(del.is_err());
        s.set_release_status(&app.id, &r.id, ReleaseStatus::Failed)
            .unwrap();
        // And no code path in this crate issues any other UPDATE/DELETE on releases.
        let sources = [
            include_str!("ledger.rs"),
            include_str!("apps.rs"),
            include_str!("accounts.rs"),
            include_str!("formation.rs"),
            include_str!("resources.rs"),
            include_str!("addons.rs"),
            include_str!("lib.rs"),
        ];
        let needle_update = ["UPDATE", " releases SET"].concat();
        let needle_delete = ["DELETE FROM", " releases"].concat();
        let mut updates = 0;
        for src in sources {
            // Only production code counts; this test itself issues forbidden statements.
            let src = src.split("#[cfg(test)]").next().unwrap_or(src);
            for (i, _) in src.match_indices(&needle_update) {
                let stmt = &src[i..src[i..].find('"').map_or(src.len(), |e| i + e)];
                assert!(
                    stmt.contains("SET status = ?2, updated_at = ?3 WHERE id = ?1"),
                    "unexpected release update: {stmt}"
                );
                updates += 1;
            }
            assert!(
                !src.contains(&needle_delete),
                "no code path deletes releases"
            );
        }
        assert_eq!(updates, 1);
        // Destroying the app takes its releases with it.
        s.destroy_app(&app.id, &u.id).unwrap();
    }

    #[test]
    fn releases_paginate_by_version() {
        let (_d, s) = store();
        let (u, app) = owner_and_app(&s);
        for i in 0..25 {
            s.update_config(&app.id, &changes(&[("N", Some(&i.to_string()))]), &u.id)
                .unwrap();
        }
        let page = s.releases(&app.id, None, false, None, true, 10).unwrap();
        assert_eq!(page[0].version, 26);
        assert_eq!(page[9].version, 17);
        let next = s.releases(&app.id, Some(17), true, None, true, 10).unwrap();
        assert_eq!(next[0].version, 16);
        let asc = s
            .releases(&app.id, Some(20), true, None, false, 100)
            .unwrap();
        assert_eq!(asc.first().unwrap().version, 21);
        assert_eq!(asc.len(), 6);
        assert_eq!(s.release(&app.id, "v3").unwrap().version, 3);
        assert_eq!(s.release(&app.id, "3").unwrap().version, 3);
    }
}
