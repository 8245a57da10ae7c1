//! `ca-server migrate`: records from another store, written in one
//! transaction into an empty database, so a failed copy leaves nothing.

use std::collections::BTreeMap;

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;

use super::{pg_err, pool_err, status_code, unjson, PgStore, R};
use crate::store::migrate::{Batch, Row};
use crate::store::StoreError;
use crate::store::{AcmeAccount, AcmeEabKey, AcmeOrder, AuditEntry, CertRecord, EventRecord};

/// Rows written per table.
pub type ImportCounts = BTreeMap<&'static str, u64>;

fn text(b: Vec<u8>) -> R<String> {
    String::from_utf8(b).map_err(|e| StoreError::Corrupt(format!("a record is not UTF-8: {e}")))
}

fn big(v: u64) -> R<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{v} is out of range")))
}

/// The table a row goes to, and the statement that writes it.
fn statement(row: &Row) -> (&'static str, &'static str) {
    match row {
        Row::Meta(..) => ("meta", "INSERT INTO meta (name, value) VALUES ($1, $2)"),
        Row::PoliciesSet => (
            "meta",
            "INSERT INTO meta (name, value) VALUES ('policies_set', 1) ON CONFLICT DO NOTHING",
        ),
        Row::Ca(..) => ("cas", "INSERT INTO cas (id, rec) VALUES ($1, $2)"),
        Row::CaKey(..) => (
            "ca_keys",
            "INSERT INTO ca_keys (ca_id, sealed) VALUES ($1, $2)",
        ),
        Row::KeyMeta(..) => (
            "key_meta",
            "INSERT INTO key_meta (name, value) VALUES ($1, $2)",
        ),
        Row::Alias(..) => (
            "aliases",
            "INSERT INTO aliases (alias, ca_id) VALUES ($1, $2)",
        ),
        Row::Policy(..) => (
            "policies",
            "INSERT INTO policies (id, json) VALUES ($1, $2)",
        ),
        Row::Serial(..) => (
            "serials",
            "INSERT INTO serials (serial, ca_id) VALUES ($1, $2)",
        ),
        Row::Cert(..) => (
            "certs",
            "INSERT INTO certs (key, ca_id, serial, status, not_after, rec, der) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        ),
        Row::Idempotency(..) => (
            "idempotency",
            "INSERT INTO idempotency (token, rec) VALUES ($1, $2)",
        ),
        Row::CrlEntry(..) => (
            "crl_entries",
            "INSERT INTO crl_entries (key, ca_id, entry) VALUES ($1, $2, $3)",
        ),
        Row::CrlMeta(..) => (
            "crl_meta",
            "INSERT INTO crl_meta (ca_id, rec) VALUES ($1, $2)",
        ),
        Row::BlockedKey(..) => (
            "blocked_keys",
            "INSERT INTO blocked_keys (key_sha256, rec) VALUES ($1, $2)",
        ),
        Row::Audit(..) => (
            "audit",
            "INSERT INTO audit (seq, unix, entry) VALUES ($1, $2, $3)",
        ),
        Row::AuditHead(..) => (
            "audit_head",
            "UPDATE audit_head SET seq = $1, hash = $2, present = true WHERE id = 1",
        ),
        Row::AuditDigest(..) => (
            "audit_digests",
            "INSERT INTO audit_digests (number, rec) VALUES ($1, $2)",
        ),
        Row::Event(..) => (
            "events",
            "INSERT INTO events (seq, unix, rec) VALUES ($1, $2, $3)",
        ),
        Row::EventMark(..) => (
            "event_marks",
            "INSERT INTO event_marks (name, value) VALUES ($1, $2)",
        ),
        Row::Webhook(..) => ("webhooks", "INSERT INTO webhooks (id, rec) VALUES ($1, $2)"),
        Row::AcmeAccount(..) => (
            "acme_accounts",
            "INSERT INTO acme_accounts (id, created_at, rec) VALUES ($1, $2, $3)",
        ),
        Row::AcmeAccountKey(..) => (
            "acme_account_keys",
            "INSERT INTO acme_account_keys (thumbprint, account) VALUES ($1, $2)",
        ),
        Row::AcmeOrder(..) => (
            "acme_orders",
            "INSERT INTO acme_orders (id, account, created_at, rec) VALUES ($1, $2, $3, $4)",
        ),
        Row::AcmeAuthz(..) => (
            "acme_authzs",
            "INSERT INTO acme_authzs (id, rec) VALUES ($1, $2)",
        ),
        Row::AcmeEabKey(..) => (
            "acme_eab_keys",
            "INSERT INTO acme_eab_keys (kid, created_at, rec) VALUES ($1, $2, $3)",
        ),
    }
}

/// One row's parameters, owned, with the columns the schema derives from
/// the record (a certificate's status and expiry, an entry's time).
fn params(row: Row) -> R<Vec<Box<dyn ToSql + Sync + Send>>> {
    type P = Box<dyn ToSql + Sync + Send>;
    let v: Vec<P> = match row {
        Row::Meta(k, v) => vec![Box::new(k), Box::new(big(v)?)],
        Row::PoliciesSet => vec![],
        Row::Ca(k, v) | Row::CrlMeta(k, v) | Row::BlockedKey(k, v) | Row::Webhook(k, v) => {
            vec![Box::new(k), Box::new(text(v)?)]
        }
        Row::Idempotency(k, v) | Row::AcmeAuthz(k, v) => vec![Box::new(k), Box::new(text(v)?)],
        Row::CaKey(k, v) | Row::Policy(k, v) => vec![Box::new(k), Box::new(v)],
        Row::KeyMeta(k, v) | Row::Alias(k, v) | Row::Serial(k, v) | Row::AcmeAccountKey(k, v) => {
            vec![Box::new(k), Box::new(v)]
        }
        Row::Cert(key, rec, der) => {
            let r: CertRecord = unjson(&rec)?;
            vec![
                Box::new(key),
                Box::new(r.ca_id.clone()),
                Box::new(r.serial.clone()),
                Box::new(status_code(r.status)),
                Box::new(r.not_after),
                Box::new(text(rec)?),
                Box::new(der),
            ]
        }
        Row::CrlEntry(key, entry) => {
            let (ca_id, _) = key
                .rsplit_once('/')
                .ok_or_else(|| StoreError::Corrupt(format!("CRL entry key {key}")))?;
            let ca_id = ca_id.to_string();
            vec![Box::new(key), Box::new(ca_id), Box::new(entry)]
        }
        Row::Audit(seq, entry) => {
            let e: AuditEntry = unjson(&entry)?;
            vec![
                Box::new(big(seq)?),
                Box::new(e.unix),
                Box::new(text(entry)?),
            ]
        }
        Row::AuditHead(v) => {
            let (seq, hash): (u64, String) = unjson(&v)?;
            vec![Box::new(big(seq)?), Box::new(hash)]
        }
        Row::AuditDigest(n, v) => vec![Box::new(big(n)?), Box::new(text(v)?)],
        Row::Event(seq, v) => {
            let e: EventRecord = unjson(&v)?;
            vec![Box::new(big(seq)?), Box::new(e.unix), Box::new(text(v)?)]
        }
        Row::EventMark(k, v) => vec![Box::new(k), Box::new(big(v)?)],
        Row::AcmeAccount(id, v) => {
            let a: AcmeAccount = unjson(&v)?;
            vec![Box::new(id), Box::new(a.created_at), Box::new(text(v)?)]
        }
        Row::AcmeOrder(id, v) => {
            let o: AcmeOrder = unjson(&v)?;
            vec![
                Box::new(id),
                Box::new(o.account),
                Box::new(o.created_at),
                Box::new(text(v)?),
            ]
        }
        Row::AcmeEabKey(kid, v) => {
            let k: AcmeEabKey = unjson(&v)?;
            vec![Box::new(kid), Box::new(k.created_at), Box::new(text(v)?)]
        }
    };
    Ok(v)
}

async fn write_row(
    tx: &Transaction<'_>,
    prepared: &mut BTreeMap<&'static str, tokio_postgres::Statement>,
    counts: &mut ImportCounts,
    row: Row,
) -> R<()> {
    let (table, sql) = statement(&row);
    let stmt = match prepared.get(sql) {
        Some(s) => s.clone(),
        None => {
            let s = tx.prepare(sql).await.map_err(pg_err)?;
            prepared.insert(sql, s.clone());
            s
        }
    };
    let owned = params(row)?;
    let refs: Vec<&(dyn ToSql + Sync)> = owned
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    tx.execute(&stmt, &refs).await.map_err(pg_err)?;
    *counts.entry(table).or_default() += 1;
    Ok(())
}

impl PgStore {
    /// Write every row `batches` brings into this (empty) database, in one
    /// transaction committed only when the sender reports `Done`.
    /// `progress` is told the certificates written so far now and then.
    pub fn import(
        &self,
        mut batches: tokio::sync::mpsc::Receiver<Batch>,
        progress: Box<dyn Fn(u64) + Send>,
    ) -> R<ImportCounts> {
        let inner = self.inner.clone();
        self.block(async move {
            let mut conn = inner.pool.get().await.map_err(pool_err)?;
            let tx = super::ops::begin_write(&mut conn).await?;
            // Every node's writes wait behind this lock until the copy ends.
            super::ops::lock_head(&tx).await?;
            let held: i64 = tx
                .query_one(
                    "SELECT (SELECT count(*) FROM cas) + (SELECT count(*) FROM audit) \
                     + (SELECT count(*) FROM certs) + (SELECT count(*) FROM ca_keys)",
                    &[],
                )
                .await
                .map_err(pg_err)?
                .get(0);
            if held > 0 {
                return Err(StoreError::Conflict(
                    "the database already holds records; migrate into an empty database".into(),
                ));
            }
            let mut prepared = BTreeMap::new();
            let mut counts = ImportCounts::new();
            let mut certs = 0u64;
            loop {
                match batches.recv().await {
                    Some(Batch::Rows(rows)) => {
                        for row in rows {
                            let is_cert = matches!(row, Row::Cert(..));
                            write_row(&tx, &mut prepared, &mut counts, row).await?;
                            if is_cert {
                                certs += 1;
                                if certs % 10_000 == 0 {
                                    progress(certs);
                                }
                            }
                        }
                    }
                    Some(Batch::Done) => break,
                    Some(Batch::Failed(why)) => {
                        return Err(StoreError::Db(format!("reading the source store: {why}")))
                    }
                    None => {
                        return Err(StoreError::Db(
                            "the source store stopped before its end".into(),
                        ))
                    }
                }
            }
            tx.commit().await.map_err(pg_err)?;
            Ok(counts)
        })
    }
}
