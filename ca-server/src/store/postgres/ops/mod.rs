//! The operations that run inside one write transaction. Every write first
//! locks the audit head row ([`lock_head`]), so writes are serialised across
//! all nodes as the redb writer serialises them in one process: each check
//! below sees every earlier commit, whichever node made it, and the audit
//! trail stays one hash chain.
//!
//! The statements are kept by area, in files named as the area files one
//! level up that run them (`cas`, `certs`, `crl`, `policies`, `keys`,
//! `events`, `acme`, `audit`); this file keeps what they all share: the
//! prepared-statement cache, [`begin_write`] and the encoding helpers.

mod acme;
mod audit;
mod cas;
mod certs;
mod crl;
mod events;
mod keys;
mod policies;

use deadpool_postgres::Transaction;

use super::pg_err;
use crate::store::StoreError;

pub(super) use self::acme::{acme_create_account, acme_put, acme_put_eab_key, acme_update_account};
pub(super) use self::audit::{append_audit, append_audit_digest, head_of, lock_head, store_head};
pub(super) use self::cas::{create_ca, get_alias, get_ca, put_alias, update_ca};
pub(super) use self::certs::{import_certs, issue, reserve, revoke};
pub(super) use self::crl::put_crl_meta;
pub(super) use self::events::{append_events, create_webhook, webhook_delivered};
pub(super) use self::keys::write_key_meta;
pub(super) use self::policies::{policies_touched, put_policy};

type R<T> = Result<T, StoreError>;

/// Statements prepared once per connection (deadpool's cache): a write
/// sends each one as a single bind-and-execute, not a parse first.
mod cached {
    use deadpool_postgres::Transaction;
    use tokio_postgres::types::ToSql;
    use tokio_postgres::{Error, Row};

    type P<'a> = &'a [&'a (dyn ToSql + Sync)];

    pub async fn execute(tx: &Transaction<'_>, sql: &str, p: P<'_>) -> Result<u64, Error> {
        let st = tx.prepare_cached(sql).await?;
        tx.execute(&st, p).await
    }

    pub async fn query_one(tx: &Transaction<'_>, sql: &str, p: P<'_>) -> Result<Row, Error> {
        let st = tx.prepare_cached(sql).await?;
        tx.query_one(&st, p).await
    }

    pub async fn query_opt(
        tx: &Transaction<'_>,
        sql: &str,
        p: P<'_>,
    ) -> Result<Option<Row>, Error> {
        let st = tx.prepare_cached(sql).await?;
        tx.query_opt(&st, p).await
    }
}

/// A write transaction, READ COMMITTED whatever the server's default: each
/// statement after [`lock_head`] then reads every commit made before the lock
/// was granted (under REPEATABLE READ the snapshot would be older than the
/// lock, and a blocked key committed meanwhile would go unseen).
pub async fn begin_write(conn: &mut deadpool_postgres::Object) -> R<Transaction<'_>> {
    conn.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(pg_err)
}

fn i64_of(v: u64) -> R<i64> {
    i64::try_from(v).map_err(|_| StoreError::Conflict(format!("{v} is out of range")))
}

pub fn to_text<T: serde::Serialize>(v: &T) -> R<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}
