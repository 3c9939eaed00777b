//! Apps, collaborators and access control.

use crate::{
    new_id, not_found, now, Account, App, Collaborator, Release, Result, Store, StoreError,
};
use hoist_types::validate_app_name;
use rand::seq::SliceRandom;
use rand::Rng;
use rusqlite::{params, Connection, OptionalExtension, Row};

const APP_COLS: &str = "a.id, a.name, a.owner_id, o.email, a.maintenance, a.stack, a.region, a.webhook_secret, a.created_at, a.updated_at, a.released_at,
    (SELECT s.size FROM releases r JOIN slugs s ON s.id = r.slug_id WHERE r.app_id = a.id AND r.status = 'succeeded' ORDER BY r.version DESC LIMIT 1)";

fn app_row(r: &Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        id: r.get(0)?,
        name: r.get(1)?,
        owner_id: r.get(2)?,
        owner_email: r.get(3)?,
        maintenance: r.get(4)?,
        stack: r.get(5)?,
        region: r.get(6)?,
        webhook_secret: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
        released_at: r.get(10)?,
        slug_size: r.get(11)?,
    })
}

const ADJECTIVES: &[&str] = &[
    "quiet", "shining", "polar", "ancient", "rocky", "sleepy", "crisp", "floating", "gentle",
    "hidden", "lively", "mighty", "nameless", "radiant", "serene", "stormy", "sunny", "vast",
];
const NOUNS: &[&str] = &[
    "river", "meadow", "harbor", "summit", "forest", "canyon", "glacier", "island", "lake",
    "ocean", "plateau", "reef", "ridge", "tundra", "valley", "wave", "brook", "dune",
];

/// A Heroku-style generated name such as `quiet-river-12345`.
pub fn generate_app_name() -> String {
    let mut rng = rand::thread_rng();
    format!(
        "{}-{}-{:05}",
        ADJECTIVES.choose(&mut rng).copied().unwrap_or("quiet"),
        NOUNS.choose(&mut rng).copied().unwrap_or("river"),
        rng.gen_range(0..100_000)
    )
}

pub(crate) fn app_by_ident(c: &Connection, ident: &str) -> Result<App> {
    c.query_row(
        &format!(
            "SELECT {APP_COLS} FROM apps a JOIN accounts o ON o.id = a.owner_id WHERE a.name = ?1 OR a.id = ?1"
        ),
        [ident],
        app_row,
    )
    .optional()?
    .ok_or(not_found("app"))
}

impl Store {
    /// Creates an app; with no name, a free generated one.
    pub fn create_app(
        &self,
        name: Option<&str>,
        owner_id: &str,
        stack: &str,
        region: &str,
    ) -> Result<App> {
        if let Some(n) = name {
            validate_app_name(n).map_err(|e| StoreError::Invalid(e.to_string()))?;
        }
        let secret = crate::new_token();
        let id = self.write(|tx| {
            let name = match name {
                Some(n) => {
                    let taken: Option<String> = tx
                        .query_row("SELECT id FROM apps WHERE name = ?1", [n], |r| r.get(0))
                        .optional()?;
                    if taken.is_some() {
                        return Err(StoreError::Conflict(format!(
                            "Name {n} is already taken"
                        )));
                    }
                    n.to_string()
                }
                None => loop {
                    let n = generate_app_name();
                    let taken: Option<String> = tx
                        .query_row("SELECT id FROM apps WHERE name = ?1", [&n], |r| r.get(0))
                        .optional()?;
                    if taken.is_none() {
                        break n;
                    }
                },
            };
            let id = new_id();
            let ts = now();
            tx.execute(
                "INSERT INTO apps (id, name, owner_id, stack, region, webhook_secret, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                params![id, name, owner_id, stack, region, secret, ts],
            )?;
            crate::ledger::insert_release(
                tx,
                &id,
                crate::NewRelease {
                    description: "Initial release".into(),
                    slug_id: None,
                    config: None,
                    status: crate::ReleaseStatus::Succeeded,
                    user_id: owner_id.to_string(),
                },
            )?;
            Ok(id)
        })?;
        self.app(&id)
    }

    /// An app by name or id, without access checks.
    pub fn app(&self, ident: &str) -> Result<App> {
        self.read(|c| app_by_ident(c, ident))
    }

    /// Whether `account` may see and change `app` (owner or collaborator).
    pub fn has_access(&self, app: &App, account: &Account) -> Result<bool> {
        if app.owner_id == account.id {
            return Ok(true);
        }
        self.read(|c| {
            Ok(c.query_row(
                "SELECT count(*) FROM collaborators WHERE app_id = ?1 AND account_id = ?2",
                params![app.id, account.id],
                |r| r.get::<_, i64>(0),
            )? > 0)
        })
    }

    /// Apps the account owns or collaborates on, ordered by name.
    pub fn apps_for(&self, account_id: &str) -> Result<Vec<App>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {APP_COLS} FROM apps a JOIN accounts o ON o.id = a.owner_id
                 WHERE a.owner_id = ?1 OR a.id IN (SELECT app_id FROM collaborators WHERE account_id = ?1)
                 ORDER BY a.name"
            ))?;
            let rows = st.query_map([account_id], app_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn all_apps(&self) -> Result<Vec<App>> {
        self.read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {APP_COLS} FROM apps a JOIN accounts o ON o.id = a.owner_id ORDER BY a.name"
            ))?;
            let rows = st.query_map([], app_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn set_maintenance(&self, app_id: &str, on: bool) -> Result<App> {
        self.write(|tx| {
            tx.execute(
                "UPDATE apps SET maintenance = ?2, updated_at = ?3 WHERE id = ?1",
                params![app_id, on, now()],
            )?;
            Ok(())
        })?;
        self.app(app_id)
    }

    pub fn rename_app(&self, app_id: &str, new_name: &str) -> Result<App> {
        validate_app_name(new_name).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.write(|tx| {
            let taken: Option<String> = tx
                .query_row("SELECT id FROM apps WHERE name = ?1", [new_name], |r| {
                    r.get(0)
                })
                .optional()?;
            if taken.is_some_and(|id| id != app_id) {
                return Err(StoreError::Conflict(format!(
                    "Name {new_name} is already taken"
                )));
            }
            tx.execute(
                "UPDATE apps SET name = ?2, updated_at = ?3 WHERE id = ?1",
                params![app_id, new_name, now()],
            )?;
            Ok(())
        })?;
        self.app(app_id)
    }

    /// Deletes the app and everything it owns (releases go with it).
    /// Deletes the app and all its rows in one transaction. Its add-ons are retired
    /// (see `addons::retire_app_addons_in_tx`): the caller then gives their resources
    /// back from [`Store::pending_deprovisions`]. Returns the releases this made on
    /// other apps (attachments of the app's add-ons removed there).
    pub fn destroy_app(&self, app_id: &str, user_id: &str) -> Result<Vec<(String, Release)>> {
        self.write(|tx| {
            let releases = crate::addons::retire_app_addons_in_tx(tx, app_id, user_id)?;
            // Delete the app row first so the ledger's no-delete trigger sees the app gone
            // when the cascade removes its releases.
            let n = tx.execute("DELETE FROM apps WHERE id = ?1", [app_id])?;
            if n == 0 {
                return Err(not_found("app"));
            }
            Ok(releases)
        })
    }

    pub fn collaborators(&self, app_id: &str) -> Result<Vec<Collaborator>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT c.id, c.app_id, c.account_id, a.email, c.created_at, c.updated_at
                 FROM collaborators c JOIN accounts a ON a.id = c.account_id WHERE c.app_id = ?1 ORDER BY a.email",
            )?;
            let rows = st.query_map([app_id], |r| {
                Ok(Collaborator {
                    id: r.get(0)?,
                    app_id: r.get(1)?,
                    account_id: r.get(2)?,
                    email: r.get(3)?,
                    created_at: r.get(4)?,
                    updated_at: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn add_collaborator(&self, app: &App, email: &str) -> Result<Collaborator> {
        let account = self.account(email).map_err(|e| match e {
            StoreError::NotFound { .. } => StoreError::NotFound { resource: "user" },
            e => e,
        })?;
        if account.id == app.owner_id {
            return Err(StoreError::Conflict(format!(
                "{email} owns {} already.",
                app.name
            )));
        }
        self.write(|tx| {
            let exists: Option<String> = tx
                .query_row(
                    "SELECT id FROM collaborators WHERE app_id = ?1 AND account_id = ?2",
                    params![app.id, account.id],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Err(StoreError::Conflict(format!(
                    "{email} is already a collaborator on {}.",
                    app.name
                )));
            }
            let ts = now();
            let id = new_id();
            tx.execute(
                "INSERT INTO collaborators (id, app_id, account_id, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![id, app.id, account.id, ts],
            )?;
            Ok(Collaborator {
                id,
                app_id: app.id.clone(),
                account_id: account.id.clone(),
                email: account.email.clone(),
                created_at: ts.clone(),
                updated_at: ts,
            })
        })
    }

    pub fn remove_collaborator(&self, app_id: &str, ident: &str) -> Result<Collaborator> {
        let found = self
            .collaborators(app_id)?
            .into_iter()
            .find(|c| c.email.eq_ignore_ascii_case(ident) || c.id == ident || c.account_id == ident)
            .ok_or(not_found("collaborator"))?;
        self.write(|tx| {
            tx.execute("DELETE FROM collaborators WHERE id = ?1", [&found.id])?;
            Ok(())
        })?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::store;

    #[test]
    fn names_are_validated_unique_and_generated() {
        let (_d, s) = store();
        let a = s.create_account("a@example.com", None, true).unwrap();
        s.create_app(Some("demo"), &a.id, "heroku-24", "us")
            .unwrap();
        assert!(matches!(
            s.create_app(Some("demo"), &a.id, "heroku-24", "us"),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.create_app(Some("Bad_Name"), &a.id, "heroku-24", "us"),
            Err(StoreError::Invalid(_))
        ));
        let g = s.create_app(None, &a.id, "heroku-24", "us").unwrap();
        assert!(validate_app_name(&g.name).is_ok(), "{}", g.name);
        assert_eq!(s.apps_for(&a.id).unwrap().len(), 2);
    }

    #[test]
    fn collaborators_grant_access() {
        let (_d, s) = store();
        let a = s.create_account("a@example.com", None, true).unwrap();
        let b = s.create_account("b@example.com", None, false).unwrap();
        let app = s
            .create_app(Some("demo"), &a.id, "heroku-24", "us")
            .unwrap();
        assert!(!s.has_access(&app, &b).unwrap());
        s.add_collaborator(&app, "b@example.com").unwrap();
        assert!(s.has_access(&app, &b).unwrap());
        assert!(s.add_collaborator(&app, "b@example.com").is_err());
        assert_eq!(s.apps_for(&b.id).unwrap().len(), 1);
        s.remove_collaborator(&app.id, "b@example.com").unwrap();
        assert!(!s.has_access(&app, &b).unwrap());
    }
}
