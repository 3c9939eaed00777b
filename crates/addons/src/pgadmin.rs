//! The PostgreSQL provider's administrator connection: SQL goes over the wire
//! protocol (`tokio-postgres`), not through `psql` subprocesses.
//!
//! Every connect and every statement is bounded by one limit
//! ([`crate::postgres::PostgresConfig::command_timeout`]); running past it gives
//! [`AddonError::Timeout`], other failures [`AddonError::Provider`] naming the server.
//! Errors never contain the password (tokio-postgres does not echo it, and statements
//! carry only the SCRAM verifier, never the plaintext).

use std::future::Future;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row};

use crate::AddonError;

/// How to reach a server as its administrator.
#[derive(Debug, Clone)]
pub(crate) struct AdminConn {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
    pub ssl: SslMode,
    /// Host put into app URLs.
    pub advertise_host: String,
}

impl AdminConn {
    pub fn parse(admin_url: &str) -> Result<Self, AddonError> {
        let url = url::Url::parse(admin_url)
            .map_err(|e| AddonError::Invalid(format!("external PostgreSQL admin URL: {e}")))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(AddonError::Invalid(
                "external PostgreSQL admin URL must start with postgres://".into(),
            ));
        }
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| {
                AddonError::Invalid("external PostgreSQL admin URL: bad escape".into())
            })
        };
        let host = url
            .host_str()
            .ok_or_else(|| AddonError::Invalid("external PostgreSQL admin URL has no host".into()))?
            .to_string();
        let dbname = match url.path().trim_start_matches('/') {
            "" => "postgres".to_string(),
            db => decode(db)?,
        };
        let ssl = match url
            .query_pairs()
            .find(|(k, _)| k == "sslmode")
            .map(|(_, v)| v.into_owned())
            .as_deref()
        {
            None | Some("disable") => SslMode::Disable,
            // Without a TLS implementation, `prefer`/`allow` fall back to plain TCP as
            // libpq does when the server offers no TLS.
            Some("prefer") | Some("allow") => SslMode::Prefer,
            Some(mode) => {
                return Err(AddonError::Invalid(format!(
                    "external PostgreSQL admin URL: sslmode={mode} is not supported \
                     (TLS to the admin connection is not implemented; use disable or prefer)"
                )))
            }
        };
        Ok(AdminConn {
            advertise_host: host.clone(),
            host,
            port: url.port().unwrap_or(5432),
            user: decode(url.username())?,
            password: decode(url.password().unwrap_or(""))?,
            dbname,
            ssl,
        })
    }

    /// Opens an administrator session; connecting and authenticating together take at
    /// most `limit`.
    pub async fn connect(&self, limit: Duration) -> Result<AdminSession, AddonError> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname(&self.dbname)
            .application_name("hoist-addons")
            .ssl_mode(self.ssl)
            .connect_timeout(limit);
        let (client, connection) = bounded(limit, cfg.connect(NoTls)).await?.map_err(|e| {
            AddonError::Provider(format!(
                "cannot connect to PostgreSQL at {}:{}: {e}",
                self.host, self.port
            ))
        })?;
        // The connection future does the socket I/O; it ends when the client is dropped.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL admin connection closed");
            }
        });
        Ok(AdminSession { client, limit })
    }
}

/// One open administrator connection.
pub(crate) struct AdminSession {
    client: Client,
    limit: Duration,
}

impl AdminSession {
    /// Sends SQL as one simple-query message. Several statements in it run as one
    /// implicit transaction, so statements PostgreSQL refuses inside a transaction
    /// block (CREATE/DROP DATABASE) must each go in a call of their own.
    pub async fn execute(&self, sql: &str) -> Result<(), AddonError> {
        bounded(self.limit, self.client.batch_execute(sql))
            .await?
            .map_err(sql_error)
    }

    /// A parameterized query (values travel as parameters, never in the SQL text).
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, AddonError> {
        bounded(self.limit, self.client.query(sql, params))
            .await?
            .map_err(sql_error)
    }

    /// False once the connection broke (e.g. after a timeout or a server restart).
    pub fn is_open(&self) -> bool {
        !self.client.is_closed()
    }
}

/// A column of a row, with a provider error instead of a panic on a type mismatch.
pub(crate) fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
) -> Result<T, AddonError> {
    row.try_get(idx)
        .map_err(|e| AddonError::Provider(format!("PostgreSQL: unexpected result: {e}")))
}

/// A string literal for the few utility statements that take no parameters
/// (`PASSWORD '…'`, `COMMENT … IS '…'`). Callers pass only values Hoist generated or
/// sanitized; doubling quotes keeps even those from ending the literal
/// (standard_conforming_strings is on by default since PostgreSQL 9.1).
pub(crate) fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn sql_error(e: tokio_postgres::Error) -> AddonError {
    // DbError's Display carries severity, message and detail; the plain Display of
    // the wrapper says only "db error".
    match e.as_db_error() {
        Some(db) => AddonError::Provider(format!("PostgreSQL: {db}")),
        None => AddonError::Provider(format!("PostgreSQL: {e}")),
    }
}

async fn bounded<T>(limit: Duration, fut: impl Future<Output = T>) -> Result<T, AddonError> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| AddonError::Timeout(limit))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_url_is_parsed() {
        let c =
            AdminConn::parse("postgres://adm:p%40ss@db.example:6543/maint?sslmode=prefer").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.user.as_str()),
            ("db.example", 6543, "adm")
        );
        assert_eq!(c.password, "p@ss");
        assert_eq!(c.dbname, "maint");
        assert_eq!(c.ssl, SslMode::Prefer);
        assert!(AdminConn::parse("mysql://x@y/z").is_err());
        // Refused rather than silently downgraded to plain TCP.
        assert!(matches!(
            AdminConn::parse("postgres://adm:x@db.example/maint?sslmode=require"),
            Err(AddonError::Invalid(_))
        ));
    }

    #[test]
    fn literals_are_quoted() {
        assert_eq!(literal("a'b"), "'a''b'");
        assert_eq!(literal("SCRAM-SHA-256$4096:x"), "'SCRAM-SHA-256$4096:x'");
    }
}
