//! The PostgreSQL schema and its migrations, applied at start-up under an
//! advisory lock so that several nodes starting together migrate once.
//!
//! Records keep the JSON encoding the redb backend uses (the same serde
//! types), so `ca-server migrate` copies them without translation; the
//! columns beside them are what queries and constraints need (serial
//! uniqueness is a primary key, not a lock in one process).

use tokio_postgres::Client;

use super::pg_err;
use crate::store::{StoreError, SCHEMA_VERSION};

/// Advisory lock keys (one namespace for the whole service).
pub const MIGRATION_LOCK: i64 = 0x6361_5f73_6368_656d; // "ca_schem"

/// Each migration in order; migration `n` takes the schema from `n-1` to `n`.
const MIGRATIONS: &[&str] = &[
    // 1: everything the store keeps.
    r#"
CREATE TABLE meta (name text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE cas (id text PRIMARY KEY, rec text NOT NULL);
CREATE TABLE ca_keys (ca_id text PRIMARY KEY, sealed bytea NOT NULL);
CREATE TABLE key_meta (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE aliases (alias text PRIMARY KEY, ca_id text NOT NULL);
CREATE TABLE policies (id text PRIMARY KEY, json bytea NOT NULL);
-- The global serial index: one row per serial ever used, never deleted.
CREATE TABLE serials (serial text PRIMARY KEY, ca_id text NOT NULL);
-- One row per certificate (or intent); key = 'ca-id/serial'.
CREATE TABLE certs (
    key text COLLATE "C" PRIMARY KEY,
    ca_id text NOT NULL,
    serial text NOT NULL,
    status smallint NOT NULL,
    not_after bigint NOT NULL,
    rec text NOT NULL,
    der bytea
);
CREATE INDEX certs_expiry ON certs (not_after, key) WHERE status = 1;
CREATE INDEX certs_expiry_all ON certs (not_after, key) WHERE status <> 0;
CREATE TABLE idempotency (token text PRIMARY KEY, rec text NOT NULL);
CREATE TABLE crl_entries (key text COLLATE "C" PRIMARY KEY, ca_id text NOT NULL, entry bytea NOT NULL);
CREATE INDEX crl_entries_ca ON crl_entries (ca_id, key);
CREATE TABLE crl_meta (ca_id text PRIMARY KEY, rec text NOT NULL);
-- Signed CRLs, so every node serves the newest whichever node signed it.
CREATE TABLE crls (ca_id text NOT NULL, number bigint NOT NULL, der bytea NOT NULL,
                   PRIMARY KEY (ca_id, number));
CREATE TABLE blocked_keys (key_sha256 text PRIMARY KEY, rec text NOT NULL);
-- The hash-chained trail; its head row is the lock every write takes.
CREATE TABLE audit (seq bigint PRIMARY KEY, unix bigint NOT NULL, entry text NOT NULL);
CREATE TABLE audit_head (id smallint PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL,
                         hash text NOT NULL, present boolean NOT NULL);
INSERT INTO audit_head VALUES (1, 0, '', false);
CREATE TABLE audit_digests (number bigint PRIMARY KEY, rec text NOT NULL);
CREATE TABLE events (seq bigint PRIMARY KEY, unix bigint NOT NULL, rec text NOT NULL);
CREATE TABLE event_marks (name text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE webhooks (id text PRIMARY KEY, rec text NOT NULL);
CREATE TABLE acme_accounts (id text PRIMARY KEY, created_at bigint NOT NULL, rec text NOT NULL);
CREATE TABLE acme_account_keys (thumbprint text PRIMARY KEY, account text NOT NULL);
CREATE TABLE acme_orders (id text PRIMARY KEY, account text NOT NULL,
                          created_at bigint NOT NULL, rec text NOT NULL);
CREATE INDEX acme_orders_account ON acme_orders (account, created_at);
CREATE TABLE acme_authzs (id text PRIMARY KEY, rec text NOT NULL);
CREATE TABLE acme_eab_keys (kid text PRIMARY KEY, created_at bigint NOT NULL, rec text NOT NULL);
"#,
];

/// Apply what is missing, under the migration lock; refuse a schema newer
/// than this binary. Returns the version found before migrating.
pub async fn migrate(client: &mut Client) -> Result<u64, StoreError> {
    debug_assert_eq!(MIGRATIONS.len() as u64, SCHEMA_VERSION);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err)?;
    let result = migrate_locked(client).await;
    // Released even when migrating failed (the session ends soon anyway).
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn migrate_locked(client: &mut Client) -> Result<u64, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS ca_schema (id smallint PRIMARY KEY CHECK (id = 1), \
             version bigint NOT NULL)",
        )
        .await
        .map_err(pg_err)?;
    let found: u64 = match client
        .query_opt("SELECT version FROM ca_schema WHERE id = 1", &[])
        .await
        .map_err(pg_err)?
    {
        Some(row) => u64::try_from(row.get::<_, i64>(0)).unwrap_or(u64::MAX),
        None => 0,
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let to = i as i64 + 1;
        let tx = client.transaction().await.map_err(pg_err)?;
        tx.batch_execute(sql).await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO ca_schema VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET version = $1",
            &[&to],
        )
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        tracing::info!(version = to, "PostgreSQL schema migrated");
    }
    Ok(found)
}
