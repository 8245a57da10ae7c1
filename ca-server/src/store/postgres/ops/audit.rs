//! The audit chain inside a write: the head row locked first (which orders
//! all writes across nodes), entries appended after it, the head stored once
//! at the end, and the digests that pin the chain.

use ca_core::audit_chain::{AuditEntry, GENESIS};
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::{cached, i64_of, to_text, R};
use crate::store::postgres::{json, pg_err};
use crate::store::{AuditDraft, StoreError};

/// The audit head, locked until the transaction ends: (seq, hash).
pub async fn lock_head(tx: &Transaction<'_>) -> R<(u64, String)> {
    let row = cached::query_one(
        tx,
        "SELECT seq, hash, present FROM audit_head WHERE id = 1 FOR UPDATE",
        &[],
    )
    .await
    .map_err(pg_err)?;
    Ok(head_of(&row))
}

pub fn head_of(row: &Row) -> (u64, String) {
    let present: bool = row.get(2);
    if !present {
        return (0, GENESIS.to_string());
    }
    (u64::try_from(row.get::<_, i64>(0)).unwrap_or(0), row.get(1))
}

/// Append one entry after `head` and advance `head`; the caller stores the
/// head row once its transaction's appends are done ([`store_head`]).
pub async fn append_audit(
    tx: &Transaction<'_>,
    head: &mut (u64, String),
    d: &AuditDraft,
) -> R<AuditEntry> {
    let seq = head.0.saturating_add(1);
    let e = d.chained(seq, head.1.clone())?;
    let text = String::from_utf8(json(&e)?).map_err(|x| StoreError::Corrupt(x.to_string()))?;
    let s = i64_of(seq)?;
    cached::execute(
        tx,
        "INSERT INTO audit (seq, unix, entry) VALUES ($1, $2, $3)",
        &[&s, &e.unix, &text],
    )
    .await
    .map_err(pg_err)?;
    *head = (seq, e.hash.clone());
    Ok(e)
}

/// Move the head row to `head` (once per transaction, after its appends).
pub async fn store_head(tx: &Transaction<'_>, head: &(u64, String)) -> R<()> {
    cached::execute(
        tx,
        "UPDATE audit_head SET seq = $1, hash = $2, present = true WHERE id = 1",
        &[&i64_of(head.0)?, &head.1],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn append_audit_digest(
    tx: &Transaction<'_>,
    d: &ca_core::audit_digest::AuditDigest,
) -> R<()> {
    let last: i64 = cached::query_one(
        tx,
        "SELECT coalesce(max(number), 0) FROM audit_digests",
        &[],
    )
    .await
    .map_err(pg_err)?
    .get(0);
    if i64_of(d.number)? != last + 1 {
        return Err(StoreError::Conflict(format!(
            "audit digest {} does not follow digest {last}",
            d.number
        )));
    }
    let text = to_text(d)?;
    cached::execute(
        tx,
        "INSERT INTO audit_digests (number, rec) VALUES ($1, $2)",
        &[&i64_of(d.number)?, &text],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}
