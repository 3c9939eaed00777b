//! Accounts and API tokens. Tokens are 256-bit random values; only their SHA-256 is
//! stored. Passwords are hashed with argon2id.

use crate::{new_id, not_found, now, Account, Result, Store, StoreError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rusqlite::{params, OptionalExtension, Row};
use sha2::{Digest, Sha256};

/// A fresh API token: 32 random bytes, hex encoded.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS random number generator is available");
    hex::encode(bytes)
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn account_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        email: r.get(1)?,
        is_owner: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

const ACCOUNT_COLS: &str = "id, email, is_owner, created_at, updated_at";

impl Store {
    pub fn create_account(
        &self,
        email: &str,
        password: Option<&str>,
        is_owner: bool,
    ) -> Result<Account> {
        let email = email.trim();
        if !email.contains('@') || email.len() > 254 || email.contains(char::is_whitespace) {
            return Err(StoreError::Invalid(format!(
                "{email:?} is not a valid email address."
            )));
        }
        let password_hash = match password {
            Some(p) => {
                let salt = SaltString::generate(&mut rand::rngs::OsRng);
                Some(
                    Argon2::default()
                        .hash_password(p.as_bytes(), &salt)
                        .map_err(|e| StoreError::Hash(e.to_string()))?
                        .to_string(),
                )
            }
            None => None,
        };
        self.write(|tx| {
            let exists: Option<String> = tx
                .query_row(
                    "SELECT id FROM accounts WHERE email = ?1",
                    [email],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Err(StoreError::Conflict(format!(
                    "An account with email {email} already exists."
                )));
            }
            let id = new_id();
            let ts = now();
            tx.execute(
                "INSERT INTO accounts (id, email, password_hash, is_owner, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![id, email, password_hash, is_owner, ts],
            )?;
            Ok(Account {
                id,
                email: email.to_string(),
                is_owner,
                created_at: ts.clone(),
                updated_at: ts,
            })
        })
    }

    pub fn account_count(&self) -> Result<i64> {
        self.read(|c| Ok(c.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0))?))
    }

    pub fn account(&self, id_or_email: &str) -> Result<Account> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {ACCOUNT_COLS} FROM accounts WHERE id = ?1 OR email = ?1"),
                [id_or_email],
                account_row,
            )
            .optional()?
            .ok_or(not_found("account"))
        })
    }

    /// Checks an email and password; `None` when they do not match an account.
    pub fn verify_password(&self, email: &str, password: &str) -> Result<Option<Account>> {
        let row: Option<(String, Option<String>)> = self.read(|c| {
            Ok(c.query_row(
                "SELECT id, password_hash FROM accounts WHERE email = ?1",
                [email],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })?;
        let Some((id, Some(hash))) = row else {
            return Ok(None);
        };
        let parsed = PasswordHash::new(&hash).map_err(|e| StoreError::Hash(e.to_string()))?;
        if Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
        {
            Ok(Some(self.account(&id)?))
        } else {
            Ok(None)
        }
    }

    /// Stores the hash of `token` for the account.
    pub fn add_token(&self, account_id: &str, token: &str, description: &str) -> Result<String> {
        self.write(|tx| {
            let id = new_id();
            tx.execute(
                "INSERT INTO api_tokens (id, account_id, token_hash, description, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, account_id, hash_token(token), description, now()],
            )?;
            Ok(id)
        })
    }

    /// Creates and stores a new token; returns its plain value (shown once).
    pub fn issue_token(&self, account_id: &str, description: &str) -> Result<(String, String)> {
        let token = new_token();
        let id = self.add_token(account_id, &token, description)?;
        Ok((id, token))
    }

    /// The account a bearer token belongs to, if the token is known and unexpired.
    pub fn authenticate(&self, token: &str) -> Result<Option<Account>> {
        self.account_by_token_hash(&hash_token(token))
    }

    /// The account a token (by its hash) still authenticates, if it does.
    pub fn account_by_token_hash(&self, hash: &str) -> Result<Option<Account>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT a.id, a.email, a.is_owner, a.created_at, a.updated_at FROM api_tokens t JOIN accounts a ON a.id = t.account_id
                 WHERE t.token_hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)",
                params![hash, now()],
                account_row,
            )
            .optional()?)
        })
    }

    /// `(id, description, created_at)` of the account's tokens.
    pub fn tokens(&self, account_id: &str) -> Result<Vec<(String, String, String)>> {
        self.read(|c| {
            let mut st = c.prepare(
                "SELECT id, description, created_at FROM api_tokens WHERE account_id = ?1 ORDER BY created_at",
            )?;
            let rows = st.query_map([account_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    pub fn revoke_token(&self, account_id: &str, token_id: &str) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM api_tokens WHERE id = ?1 AND account_id = ?2",
                params![token_id, account_id],
            )?;
            if n == 0 {
                return Err(not_found("authorization"));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::store;

    #[test]
    fn tokens_are_stored_hashed_and_authenticate() {
        let (_d, s) = store();
        let a = s
            .create_account("me@example.com", Some("pw"), true)
            .unwrap();
        let (_, token) = s.issue_token(&a.id, "test").unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(s.authenticate(&token).unwrap().unwrap().id, a.id);
        assert!(s.authenticate("nope").unwrap().is_none());
        let stored: i64 = s
            .read(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM api_tokens WHERE token_hash = ?1",
                    [&token],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(stored, 0, "the plain token must never be stored");
    }

    #[test]
    fn passwords_verify_with_argon2() {
        let (_d, s) = store();
        s.create_account("me@example.com", Some("secret"), false)
            .unwrap();
        assert!(s
            .verify_password("me@example.com", "secret")
            .unwrap()
            .is_some());
        assert!(s
            .verify_password("me@example.com", "wrong")
            .unwrap()
            .is_none());
        assert!(s
            .verify_password("x@example.com", "secret")
            .unwrap()
            .is_none());
        assert!(s.create_account("me@example.com", None, false).is_err());
        assert!(s.create_account("not-an-email", None, false).is_err());
    }
}
