//! The store: the single source of truth for desired state (apps, config vars, the
//! release ledger, formation, ...). SQLite in WAL mode; one writer connection, every
//! write in a `BEGIN IMMEDIATE` transaction; a few reader connections.
//!
//! Invariant: only this crate writes SQL. The release ledger is append-only: no code
//! path updates a release except its status, and triggers in the schema enforce it.

mod accounts;
mod addons;
mod apps;
mod formation;
mod ledger;
pub mod model;
mod resources;
mod schema;
mod sources;

pub use accounts::{hash_token, new_token};
pub use addons::{validate_attachment_name, NewAddon};
pub use apps::generate_app_name;
pub use ledger::{
    validate_config_change, NewRelease, NewSlug, MAX_CONFIG_TOTAL_BYTES, MAX_CONFIG_VALUE_BYTES,
};
pub use model::*;
pub use sources::{SourceSlot, MAX_OPEN_SOURCE_SLOTS};

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{resource} not found")]
    NotFound { resource: &'static str },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("corrupt data in store: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    /// SQLite could not write because the disk (or the database's quota) is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Db(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::DiskFull)
    }
}

pub(crate) fn not_found(resource: &'static str) -> StoreError {
    StoreError::NotFound { resource }
}

pub struct Store {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

const READERS: usize = 4;

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        let writer = Connection::open(path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        configure(&writer)?;
        migrate(&writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            configure(&r)?;
            readers.push(Mutex::new(r));
        }
        Ok(Store {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits only if `f` succeeds.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.writer.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.readers.len() {
            if let Some(conn) = self.readers[(start + i) % self.readers.len()].try_lock() {
                return f(&conn);
            }
        }
        let conn = self.readers[start % self.readers.len()].lock();
        f(&conn)
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(applied as usize) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}

pub(crate) fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Whether a string looks like a UUID (ids) rather than a name.
pub fn is_uuid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok()
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }

    pub fn owner_and_app(store: &Store) -> (Account, App) {
        let acct = store.create_account("a@example.com", None, true).unwrap();
        let app = store
            .create_app(Some("demo"), &acct.id, "heroku-24", "us")
            .unwrap();
        (acct, app)
    }
}
