//! Source upload slots (`POST /sources`): the only ids `PUT /sources/{id}` accepts,
//! each with its size limit and expiry, like Heroku's pre-signed URLs. Only the
//! SHA-256 of an id is kept: the id itself is the capability.

use crate::{now, Result, Store, StoreError};
use rusqlite::{params, OptionalExtension};

/// Open (unexpired) slots one account may hold at once.
pub const MAX_OPEN_SOURCE_SLOTS: i64 = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSlot {
    /// SHA-256 of the id, hex: also the upload's file name.
    pub id_hash: String,
    pub account_id: String,
    pub max_bytes: u64,
    pub expires_at: String,
}

impl Store {
    /// Records a new slot; refuses an account that already holds too many open ones.
    pub fn issue_source_slot(
        &self,
        id_hash: &str,
        account_id: &str,
        max_bytes: u64,
        expires_at: &str,
    ) -> Result<SourceSlot> {
        let now = now();
        self.write(|tx| {
            let open: i64 = tx.query_row(
                "SELECT count(*) FROM source_slots WHERE account_id = ?1 AND expires_at > ?2",
                params![account_id, now],
                |r| r.get(0),
            )?;
            if open >= MAX_OPEN_SOURCE_SLOTS {
                return Err(StoreError::Conflict(format!(
                    "You have {open} source uploads open; wait for them to expire (1 hour) before asking for more."
                )));
            }
            tx.execute(
                "INSERT INTO source_slots (id_hash, account_id, max_bytes, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id_hash, account_id, max_bytes as i64, expires_at, now],
            )?;
            Ok(SourceSlot {
                id_hash: id_hash.to_owned(),
                account_id: account_id.to_owned(),
                max_bytes,
                expires_at: expires_at.to_owned(),
            })
        })
    }

    /// The slot, if it exists and has not expired.
    pub fn source_slot(&self, id_hash: &str) -> Result<Option<SourceSlot>> {
        let now = now();
        self.read(|c| {
            Ok(c.query_row(
                "SELECT id_hash, account_id, max_bytes, expires_at FROM source_slots WHERE id_hash = ?1 AND expires_at > ?2",
                params![id_hash, now],
                |r| {
                    Ok(SourceSlot {
                        id_hash: r.get(0)?,
                        account_id: r.get(1)?,
                        max_bytes: r.get::<_, i64>(2)? as u64,
                        expires_at: r.get(3)?,
                    })
                },
            )
            .optional()?)
        })
    }

    /// Forgets expired slots and returns their hashes, so their files can go.
    pub fn take_expired_source_slots(&self) -> Result<Vec<String>> {
        let now = now();
        self.write(|tx| {
            let hashes: Vec<String> = {
                let mut st =
                    tx.prepare("SELECT id_hash FROM source_slots WHERE expires_at <= ?1")?;
                let rows = st.query_map([&now], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            tx.execute("DELETE FROM source_slots WHERE expires_at <= ?1", [&now])?;
            Ok(hashes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("state.db")).unwrap();
        (dir, s)
    }

    #[test]
    fn slots_expire_and_are_capped_per_account() {
        let (_d, s) = store();
        let past = "2000-01-01T00:00:00Z";
        let future = "2999-01-01T00:00:00Z";
        s.issue_source_slot("aa", "acct", 10, future).unwrap();
        s.issue_source_slot("bb", "acct", 10, past).unwrap();
        assert_eq!(s.source_slot("aa").unwrap().unwrap().max_bytes, 10);
        assert_eq!(s.source_slot("bb").unwrap(), None, "expired");
        assert_eq!(s.source_slot("cc").unwrap(), None, "never issued");
        assert_eq!(
            s.take_expired_source_slots().unwrap(),
            vec!["bb".to_string()]
        );
        assert!(s.take_expired_source_slots().unwrap().is_empty());
        for i in 1..MAX_OPEN_SOURCE_SLOTS {
            s.issue_source_slot(&format!("x{i}"), "acct", 1, future)
                .unwrap();
        }
        assert!(matches!(
            s.issue_source_slot("one-too-many", "acct", 1, future),
            Err(StoreError::Conflict(_))
        ));
        s.issue_source_slot("other", "someone-else", 1, future)
            .unwrap();
    }
}
