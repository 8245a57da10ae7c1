//! Read paths: point lookups and short range scans, each one statement (so one
//! snapshot) unless it says otherwise.

use ca_core::audit_chain::AuditEntry;
use ca_core::audit_digest::AuditDigest;

use crate::store::trail_check::TrailCheck;
use deadpool_postgres::ClientWrapper as Client;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

use super::ops::head_of;
use super::{pg_err, unjson};
use crate::store::{
    cert_key, parse_stored_crl_entry, AuditFilter, CertRecord, CertWithDer, CrlEntries, KeyMeta,
    PolicyRows, SerialStatus, StoreError, Verdict,
};

type R<T> = Result<T, StoreError>;

/// Most entries one audit page scans before returning a cursor.
const MAX_AUDIT_SCAN: i64 = 50_000;
/// Rows fetched per round trip by scans that filter or visit on the caller's side.
pub const SCAN_BATCH: i64 = 500;

pub fn text_rec<T: for<'de> serde::Deserialize<'de>>(row: &tokio_postgres::Row) -> R<T> {
    unjson(row.get::<_, &str>(0).as_bytes())
}

pub async fn opt<T: for<'de> serde::Deserialize<'de>>(
    c: &Client,
    sql: &str,
    id: &str,
) -> R<Option<T>> {
    let row = c.q_opt(sql, &[&id]).await.map_err(pg_err)?;
    row.as_ref().map(text_rec).transpose()
}

pub async fn all<T: for<'de> serde::Deserialize<'de>>(c: &Client, sql: &str) -> R<Vec<T>> {
    let rows = c.q_all(sql, &[]).await.map_err(pg_err)?;
    rows.iter().map(text_rec).collect()
}

pub async fn get_cert(c: &Client, ca_id: &str, serial: &str) -> R<Option<CertWithDer>> {
    let key = cert_key(ca_id, serial);
    let row = c
        .q_opt("SELECT rec, der FROM certs WHERE key = $1", &[&key])
        .await
        .map_err(pg_err)?;
    let Some(row) = row else { return Ok(None) };
    let rec: CertRecord = text_rec(&row)?;
    let der: Option<Vec<u8>> = row.get(1);
    Ok(Some((rec, der)))
}

pub async fn serial_status(c: &Client, ca_id: &str, serial: &str) -> R<SerialStatus> {
    let key = cert_key(ca_id, serial);
    let Some(rec) = opt::<CertRecord>(c, "SELECT rec FROM certs WHERE key = $1", &key).await?
    else {
        return Ok(SerialStatus::Unknown);
    };
    use crate::store::CertStatus;
    Ok(match rec.status {
        CertStatus::Issued => SerialStatus::Issued,
        CertStatus::Revoked => match rec.revocation {
            Some(rv) => SerialStatus::Revoked(rv),
            None => {
                return Err(StoreError::Corrupt(format!(
                    "{key}: revoked without record"
                )))
            }
        },
        CertStatus::Reserved => SerialStatus::Unknown,
    })
}

pub async fn crl_entries(c: &Client, ca_id: &str, expired_before: Option<i64>) -> R<CrlEntries> {
    let rows = c
        .q_all(
            "SELECT key, entry FROM crl_entries WHERE ca_id = $1 ORDER BY key",
            &[&ca_id],
        )
        .await
        .map_err(pg_err)?;
    let mut out = CrlEntries::default();
    for row in &rows {
        let key: &str = row.get(0);
        let v: &[u8] = row.get(1);
        let (dates, der) = parse_stored_crl_entry(v);
        if let (Some(cut), Some((not_after, revoked_at))) = (expired_before, dates) {
            if not_after < cut && revoked_at < cut {
                out.expired.push(key.to_string());
                continue;
            }
        }
        out.der.extend_from_slice(der);
        out.count += 1;
    }
    Ok(out)
}

pub async fn list_policies(c: &Client) -> R<Option<PolicyRows>> {
    let set = c
        .q_opt("SELECT 1 FROM meta WHERE name = 'policies_set'", &[])
        .await
        .map_err(pg_err)?;
    if set.is_none() {
        return Ok(None);
    }
    let rows = c
        .q_all("SELECT id, json FROM policies ORDER BY id", &[])
        .await
        .map_err(pg_err)?;
    Ok(Some(
        rows.iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, Vec<u8>>(1)))
            .collect(),
    ))
}

pub async fn key_meta(c: &Client) -> R<KeyMeta> {
    let rows = c
        .q_all("SELECT name, value FROM key_meta", &[])
        .await
        .map_err(pg_err)?;
    let mut meta = KeyMeta::default();
    for r in &rows {
        match r.get::<_, &str>(0) {
            "check_value" => meta.check_value = Some(r.get(1)),
            "kdf" => meta.kdf = Some(r.get(1)),
            _ => {}
        }
    }
    Ok(meta)
}

pub async fn audit_page(c: &Client, f: &AuditFilter) -> R<(Vec<AuditEntry>, Option<u64>)> {
    let start = i64::try_from(f.cursor.unwrap_or(0)).unwrap_or(i64::MAX);
    let limit = f.limit.max(1);
    let mut out = Vec::new();
    let mut scanned = 0i64;
    let mut from = start;
    loop {
        let rows = c
            .q_all(
                "SELECT seq, entry FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2",
                &[&from, &SCAN_BATCH],
            )
            .await
            .map_err(pg_err)?;
        if rows.is_empty() {
            return Ok((out, None));
        }
        for row in &rows {
            let seq: i64 = row.get(0);
            from = seq + 1;
            if scanned >= MAX_AUDIT_SCAN {
                return Ok((out, Some(seq as u64)));
            }
            scanned += 1;
            let e: AuditEntry = unjson(row.get::<_, &str>(1).as_bytes())?;
            if !f.matches(&e) {
                continue;
            }
            out.push(e);
            if out.len() == limit {
                return Ok((out, Some((seq as u64).saturating_add(1))));
            }
        }
    }
}

pub async fn audit_head(c: &Client) -> R<(u64, String)> {
    let row = c
        .q_one(
            "SELECT seq, hash, present FROM audit_head WHERE id = 1",
            &[],
        )
        .await
        .map_err(pg_err)?;
    Ok(head_of(&row))
}

pub async fn audit_digests(c: &Client, after: u64, limit: usize) -> R<Vec<AuditDigest>> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = c
        .q_all(
            "SELECT rec FROM audit_digests WHERE number > $1 ORDER BY number LIMIT $2",
            &[&after, &limit],
        )
        .await
        .map_err(pg_err)?;
    rows.iter().map(text_rec).collect()
}

/// A read-only transaction that sees one snapshot of the database
/// (repeatable read) however long it runs.
pub async fn snapshot(c: &mut Client) -> R<deadpool_postgres::Transaction<'_>> {
    c.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg_err)
}

/// Verify the chain and the digests in one snapshot (a repeatable-read
/// transaction), so entries appended meanwhile by any node are not half-seen.
pub async fn verify_audit(c: &mut Client, pinned: Option<&[u8]>) -> R<Verdict> {
    let tx = snapshot(c).await?;
    let digests: Vec<AuditDigest> = tx
        .query("SELECT rec FROM audit_digests ORDER BY number", &[])
        .await
        .map_err(pg_err)?
        .iter()
        .map(text_rec)
        .collect::<R<_>>()?;
    let mut check = TrailCheck::new(digests);
    let head_row = tx
        .query_one(
            "SELECT seq, hash, present FROM audit_head WHERE id = 1",
            &[],
        )
        .await
        .map_err(pg_err)?;
    let head = head_row.get::<_, bool>(2).then(|| head_of(&head_row));
    let mut from = 0i64;
    loop {
        let rows = tx
            .query(
                "SELECT seq, entry FROM audit WHERE seq > $1 ORDER BY seq LIMIT 5000",
                &[&from],
            )
            .await
            .map_err(pg_err)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let seq: i64 = row.get(0);
            from = seq;
            let entry: &str = row.get(1);
            if let Err(broken) = check.entry(
                seq as u64,
                serde_json::from_str(entry).map_err(|e| e.to_string()),
            ) {
                return Ok(broken);
            }
        }
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(check.finish(head, pinned))
}

/// Statements prepared once per pooled connection (deadpool's cache), so a
/// read is one round trip, not a parse and then an execute.
pub trait Cached {
    async fn q_opt(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, Error>;
    async fn q_one(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Row, Error>;
    async fn q_all(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error>;
}

impl Cached for Client {
    async fn q_opt(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>, Error> {
        let st = self.prepare_cached(sql).await?;
        self.query_opt(&st, p).await
    }
    async fn q_one(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Row, Error> {
        let st = self.prepare_cached(sql).await?;
        self.query_one(&st, p).await
    }
    async fn q_all(&self, sql: &str, p: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
        let st = self.prepare_cached(sql).await?;
        self.query(&st, p).await
    }
}
