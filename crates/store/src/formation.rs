//! Formation (desired dynos per process type), observed dynos and app features.

use crate::{
    not_found, now, Dyno, Formation, FormationUpdate, QuantityChange, Result, Store, StoreError,
};
use hoist_types::DynoSize;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// Upper bound of dynos per process type on one node.
pub const MAX_QUANTITY: i64 = 100;

fn formation_row(r: &Row<'_>) -> rusqlite::Result<Formation> {
    Ok(Formation {
        id: r.get(0)?,
        app_id: r.get(1)?,
        process_type: r.get(2)?,
        quantity: r.get(3)?,
        size: r.get(4)?,
        command: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

fn load_formation(c: &Connection, app_id: &str) -> Result<Vec<Formation>> {
    let mut st = c.prepare_cached(
        "SELECT id, app_id, type, quantity, size, command, created_at, updated_at FROM formation WHERE app_id = ?1 ORDER BY type",
    )?;
    let rows = st.query_map([app_id], formation_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn dyno_row(r: &Row<'_>) -> rusqlite::Result<Dyno> {
    Ok(Dyno {
        id: r.get(0)?,
        app_id: r.get(1)?,
        name: r.get(2)?,
        process_type: r.get(3)?,
        state: r.get(4)?,
        command: r.get(5)?,
        size: r.get(6)?,
        release_version: r.get(7)?,
        port: r.get(8)?,
        attach: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

const DYNO_COLS: &str = "id, app_id, name, type, state, command, size, release_version, port, attach, created_at, updated_at";

impl Store {
    pub fn formation(&self, app_id: &str) -> Result<Vec<Formation>> {
        self.read(|c| load_formation(c, app_id))
    }

    /// Formation of every app (for the dyno manager's reconcile pass).
    pub fn all_formation(&self) -> Result<Vec<Formation>> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, app_id, type, quantity, size, command, created_at, updated_at FROM formation ORDER BY app_id, type",
            )?;
            let rows = st.query_map([], formation_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Applies a batch of formation updates atomically: all or nothing.
    pub fn update_formation(
        &self,
        app_id: &str,
        updates: &[FormationUpdate],
    ) -> Result<Vec<Formation>> {
        self.write(|tx| {
            let current = load_formation(tx, app_id)?;
            let ts = now();
            for u in updates {
                let row = current
                    .iter()
                    .find(|f| f.process_type == u.process_type)
                    .ok_or_else(|| {
                        StoreError::NotFound { resource: "process type" }
                    })?;
                let quantity = match u.quantity {
                    None => row.quantity,
                    Some(QuantityChange::Absolute(q)) => q,
                    Some(QuantityChange::Relative(d)) => row.quantity.saturating_add(d),
                };
                if !(0..=MAX_QUANTITY).contains(&quantity) {
                    return Err(StoreError::Invalid(format!(
                        "Cannot scale {} to {quantity}: quantity must be between 0 and {MAX_QUANTITY}.",
                        u.process_type
                    )));
                }
                let size = match &u.size {
                    None => row.size.clone(),
                    Some(s) => s
                        .parse::<DynoSize>()
                        .map_err(|e| StoreError::Invalid(e.to_string()))?
                        .name()
                        .to_string(),
                };
                tx.execute(
                    "UPDATE formation SET quantity = ?2, size = ?3, updated_at = ?4 WHERE id = ?1",
                    params![row.id, quantity, size, ts],
                )?;
            }
            load_formation(tx, app_id)
        })
    }

    /// Records an observed dyno (insert or update by id).
    pub fn upsert_dyno(&self, d: &Dyno) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                &format!("INSERT INTO dynos ({DYNO_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, port = excluded.port, updated_at = excluded.updated_at"),
                params![d.id, d.app_id, d.name, d.process_type, d.state, d.command, d.size, d.release_version, d.port, d.attach, d.created_at, d.updated_at],
            )?;
            Ok(())
        })
    }

    pub fn delete_dyno(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM dynos WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    pub fn dynos(&self, app_id: &str) -> Result<Vec<Dyno>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {DYNO_COLS} FROM dynos WHERE app_id = ?1 ORDER BY type, CAST(substr(name, instr(name, '.') + 1) AS INTEGER)"
            ))?;
            let rows = st.query_map([app_id], dyno_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn all_dynos(&self) -> Result<Vec<Dyno>> {
        self.read(|c| {
            let mut st = c.prepare_cached(&format!("SELECT {DYNO_COLS} FROM dynos"))?;
            let rows = st.query_map([], dyno_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn dyno(&self, app_id: &str, ident: &str) -> Result<Dyno> {
        self.read(|c| {
            c.query_row(
                &format!(
                    "SELECT {DYNO_COLS} FROM dynos WHERE app_id = ?1 AND (name = ?2 OR id = ?2)"
                ),
                params![app_id, ident],
                dyno_row,
            )
            .optional()?
            .ok_or(not_found("dyno"))
        })
    }

    /// Feature flags per app; `preboot` defaults to enabled.
    pub fn feature(&self, app_id: &str, name: &str) -> Result<bool> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT enabled FROM app_features WHERE app_id = ?1 AND name = ?2",
                params![app_id, name],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(name == "preboot"))
        })
    }

    pub fn set_feature(&self, app_id: &str, name: &str, enabled: bool) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO app_features (app_id, name, enabled) VALUES (?1, ?2, ?3) ON CONFLICT (app_id, name) DO UPDATE SET enabled = excluded.enabled",
                params![app_id, name, enabled],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::NewRelease;
    use crate::testutil::{owner_and_app, store};
    use crate::ReleaseStatus;
    use std::collections::BTreeMap;

    #[test]
    fn scaling_is_atomic_and_validated() {
        let (_d, s) = store();
        let (u, app) = owner_and_app(&s);
        let types = BTreeMap::from([
            ("web".to_string(), "web-cmd".to_string()),
            ("worker".to_string(), "w".to_string()),
            ("release".to_string(), "migrate".to_string()),
        ]);
        let slug = s
            .create_slug(
                &app.id,
                &crate::NewSlug {
                    checksum: "c",
                    size: 1,
                    process_types: &types,
                    description: None,
                    commit: None,
                    stack: "heroku-24",
                },
            )
            .unwrap();
        s.create_release(
            &app.id,
            NewRelease {
                description: "Deploy".into(),
                slug_id: Some(slug.id),
                config: None,
                status: ReleaseStatus::Succeeded,
                user_id: u.id.clone(),
            },
        )
        .unwrap();
        let f = s.formation(&app.id).unwrap();
        assert_eq!(f.len(), 2, "release is not a formation type");
        let up = |t: &str, q: Option<QuantityChange>, size: Option<&str>| FormationUpdate {
            process_type: t.into(),
            quantity: q,
            size: size.map(str::to_string),
        };
        let f = s
            .update_formation(
                &app.id,
                &[
                    up(
                        "web",
                        Some(QuantityChange::Absolute(3)),
                        Some("standard-2x"),
                    ),
                    up("worker", Some(QuantityChange::Relative(1)), None),
                ],
            )
            .unwrap();
        assert_eq!((f[0].quantity, f[0].size.as_str()), (3, "Standard-2X"));
        assert_eq!(f[1].quantity, 1);
        // One bad update rejects the whole batch.
        assert!(s
            .update_formation(
                &app.id,
                &[
                    up("web", Some(QuantityChange::Absolute(1)), None),
                    up("worker", Some(QuantityChange::Relative(-5)), None),
                ]
            )
            .is_err());
        assert!(s
            .update_formation(
                &app.id,
                &[up("nope", Some(QuantityChange::Absolute(1)), None)]
            )
            .is_err());
        assert!(s
            .update_formation(&app.id, &[up("web", None, Some("gigantic"))])
            .is_err());
        assert_eq!(s.formation(&app.id).unwrap()[0].quantity, 3);
    }
}
