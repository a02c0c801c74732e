//! The schema, as numbered migrations embedded in the binary, applied on connect.
//!
//! `ilink_schema_version` holds one row per applied migration. Connecting reads the highest
//! version; when it is the newest this build knows nothing else happens (no lock, no DDL, so
//! a role without CREATE can use a database set up once by another). Otherwise the
//! migrations run in one transaction under a transaction-level advisory lock, so processes
//! that start at once apply each migration exactly once: the others wait on the lock, then
//! find the work done. A database whose version is higher than this build knows is refused
//! (`PgErrorKind::SchemaTooNew`) and left alone.

use ilink_client::Result;
use tokio_postgres::types::Type;

use crate::error::{PgErrorKind, from_pg, store_error};

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i32 = 1;

/// The advisory lock key that serialises migrations (`"ilink-sc"` as a big-endian i64).
const MIGRATION_LOCK: i64 = 0x696c_696e_6b2d_7363;

/// One migration: its version, what it does, and its SQL (run as one batch).
struct Migration {
    version: i32,
    description: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "credentials, cursors, context tokens, tombstones, outbox, leases, fleet",
    sql: r#"
CREATE SEQUENCE ilink_login_seq;
CREATE TABLE ilink_credentials (
    account     text PRIMARY KEY,
    bot_token   bytea NOT NULL,
    base_url    text,
    user_id     text,
    saved_at_ms bigint NOT NULL,
    login_seq   bigint NOT NULL
);
CREATE TABLE ilink_cursors (
    account         text PRIMARY KEY,
    get_updates_buf bytea NOT NULL
);
CREATE TABLE ilink_context_tokens (
    account       text NOT NULL,
    peer          bytea NOT NULL,
    context_token bytea NOT NULL,
    PRIMARY KEY (account, peer)
);
CREATE TABLE ilink_tombstones (
    id      bigserial PRIMARY KEY,
    account text NOT NULL,
    keys    bytea[] NOT NULL
);
CREATE INDEX ilink_tombstones_account ON ilink_tombstones (account, id);
CREATE TABLE ilink_outbox (
    id      bigserial PRIMARY KEY,
    account text NOT NULL,
    records bytea[] NOT NULL
);
CREATE INDEX ilink_outbox_account ON ilink_outbox (account, id);
CREATE TABLE ilink_leases (
    account text PRIMARY KEY,
    holder  text,
    token   bigint NOT NULL CHECK (token > 0),
    since   timestamptz NOT NULL,
    expires timestamptz NOT NULL
);
CREATE TABLE ilink_fleet (
    member  text PRIMARY KEY,
    expires timestamptz NOT NULL
);
"#,
}];

/// Brings the schema up to [`SCHEMA_VERSION`] (see the module docs). Returns the number of
/// migrations applied and the number of round trips used.
pub(crate) async fn migrate(client: &mut tokio_postgres::Client) -> Result<(usize, u64)> {
    let mut trips = 1;
    // Every statement is sent with `query_typed` (or the simple protocol): one round trip
    // each, no separate prepare.
    let exists = client
        .query_typed(
            "SELECT to_regclass('ilink_schema_version') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| from_pg("reading the ilink schema version", e))?
        .first()
        .is_some_and(|r| r.get::<_, bool>(0));
    if exists {
        trips += 1;
        let current = current_version(client).await?;
        check_not_newer(current)?;
        if current == SCHEMA_VERSION {
            return Ok((0, trips));
        }
    }
    let tx = client
        .transaction()
        .await
        .map_err(|e| from_pg("starting the ilink schema migration", e))?;
    trips += 1;
    let what = "migrating the ilink schema";
    tx.query_typed(
        "SELECT pg_advisory_xact_lock($1)",
        &[(&MIGRATION_LOCK, Type::INT8)],
    )
    .await
    .map_err(|e| from_pg(what, e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS ilink_schema_version (
            version     integer PRIMARY KEY,
            description text NOT NULL,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(|e| migration_error(what, e))?;
    let current = max_version(
        tx.query_typed(
            "SELECT coalesce(max(version), 0) FROM ilink_schema_version",
            &[],
        )
        .await
        .map_err(|e| from_pg(what, e))?,
    );
    trips += 3;
    check_not_newer(current)?;
    let mut applied = 0;
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.batch_execute(m.sql).await.map_err(|e| {
            migration_error(&format!("applying ilink schema migration {}", m.version), e)
        })?;
        tx.query_typed(
            "INSERT INTO ilink_schema_version (version, description) VALUES ($1, $2)",
            &[(&m.version, Type::INT4), (&m.description, Type::TEXT)],
        )
        .await
        .map_err(|e| from_pg(what, e))?;
        trips += 2;
        applied += 1;
        tracing::info!(
            version = m.version,
            "applied ilink schema migration: {}",
            m.description
        );
    }
    tx.commit()
        .await
        .map_err(|e| migration_error("committing the ilink schema migration", e))?;
    trips += 1;
    Ok((applied, trips))
}

async fn current_version(client: &tokio_postgres::Client) -> Result<i32> {
    Ok(max_version(
        client
            .query_typed(
                "SELECT coalesce(max(version), 0) FROM ilink_schema_version",
                &[],
            )
            .await
            .map_err(|e| from_pg("reading the ilink schema version", e))?,
    ))
}

fn max_version(rows: Vec<tokio_postgres::Row>) -> i32 {
    rows.first().map_or(0, |r| r.get::<_, i32>(0))
}

fn check_not_newer(current: i32) -> Result<()> {
    if current > SCHEMA_VERSION {
        return Err(store_error(
            format!(
                "the database's ilink schema is version {current}, newer than this build \
                 knows (up to {SCHEMA_VERSION})"
            ),
            PgErrorKind::SchemaTooNew,
            "the database was set up by a newer ilink: upgrade ilink (the database is left \
             untouched)",
        ));
    }
    Ok(())
}

fn migration_error(what: &str, e: tokio_postgres::Error) -> ilink_client::Error {
    match crate::error::classify(&e).0 {
        // A privilege or connection problem says so; anything else is a failed migration.
        PgErrorKind::Permission | PgErrorKind::ConnectionLost | PgErrorKind::Connect => {
            from_pg(what, e)
        }
        _ => ilink_client::Error::new(ilink_client::ErrorKind::Store, what.to_owned()).with_source(
            crate::error::PgError::new(
                PgErrorKind::Migration,
                "creating or upgrading the ilink tables failed",
                Some(Box::new(e)),
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1);
            assert!(!m.description.is_empty());
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }
}
