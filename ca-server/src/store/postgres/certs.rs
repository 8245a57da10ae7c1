//! Certificates: the reservation, issuance and revocation writes, point
//! lookups, and the scans in key or expiry order, a batch at a time, that
//! pages are filtered from on the caller's thread.

use std::sync::Arc;

use deadpool_postgres::Transaction;

use super::listener::liveness_key;
use super::reads::{self, opt, text_rec, Cached as _, SCAN_BATCH};
use super::{ops, pg_err, unjson, PgStore, FOREIGN_INTENT_GRACE_SECS, LIVENESS_NS, MAX_SCAN, R};
use crate::store::{
    AuditDraft, BlockedKey, CertFilter, CertRecord, CertStatus, CertWithDer, Committed, IdemRecord,
    InFlightTokens, ReserveOutcome, Revocation, SerialStatus, StoreFuture,
};

impl PgStore {
    /// Certificates in key order from `after`, a batch at a time, filtered
    /// on the caller's thread.
    fn cert_batch(&self, ca: Option<String>, after: String) -> R<Vec<(String, CertRecord)>> {
        self.read(move |c| {
            Box::pin(async move {
                let rows = c
                    .q_all(
                        "SELECT key, rec FROM certs WHERE ($1::text IS NULL OR ca_id = $1) \
                         AND key > $2 ORDER BY key LIMIT $3",
                        &[&ca, &after, &SCAN_BATCH],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.get::<_, String>(0),
                            unjson(r.get::<_, &str>(1).as_bytes())?,
                        ))
                    })
                    .collect()
            })
        })
    }

    /// Issued (and, with `revoked`, revoked) certificates by (notAfter, key)
    /// after `from`, before `before`, a batch at a time.
    fn expiry_batch(
        &self,
        ca: Option<String>,
        from: (i64, String),
        before: i64,
        revoked: bool,
        limit: i64,
    ) -> R<Vec<(i64, String, CertRecord)>> {
        self.read(move |c| {
            Box::pin(async move {
                let sql = if revoked {
                    "SELECT not_after, key, rec FROM certs WHERE status <> 0 \
                     AND (not_after, key) > ($1, $2) AND not_after < $3 \
                     AND ($4::text IS NULL OR ca_id = $4) ORDER BY not_after, key LIMIT $5"
                } else {
                    "SELECT not_after, key, rec FROM certs WHERE status = 1 \
                     AND (not_after, key) > ($1, $2) AND not_after < $3 \
                     AND ($4::text IS NULL OR ca_id = $4) ORDER BY not_after, key LIMIT $5"
                };
                let rows = c
                    .q_all(sql, &[&from.0, &from.1, &before, &ca, &limit])
                    .await
                    .map_err(pg_err)?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.get::<_, i64>(0),
                            r.get::<_, String>(1),
                            unjson(r.get::<_, &str>(2).as_bytes())?,
                        ))
                    })
                    .collect()
            })
        })
    }

    /// Whether the node that made `boot` still holds its liveness lock.
    async fn node_alive(tx: &Transaction<'_>, boot: &str) -> R<bool> {
        let row = tx
            .query_opt(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::int4::oid \
                 AND objid = $2::int4::oid AND objsubid = 2 AND granted",
                &[&LIVENESS_NS, &liveness_key(boot)],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.is_some())
    }

    pub(super) fn reserve(
        &self,
        intent: CertRecord,
        token: Option<(String, IdemRecord)>,
        in_flight: Arc<InFlightTokens>,
    ) -> StoreFuture<'_, ReserveOutcome> {
        let boot = self.inner.boot_id.clone();
        self.write(None, move |tx| {
            Box::pin(async move {
                let busy = token.as_ref().is_some_and(|(t, _)| in_flight.others(t));
                // A token's intent made by another node: still signing if
                // that node is alive and the intent is recent.
                let mut boot_for_check = boot.clone();
                let mut foreign_busy = false;
                if let Some((t, _)) = &token {
                    let prev: Option<IdemRecord> =
                        opt_tx(tx, "SELECT rec FROM idempotency WHERE token = $1", t).await?;
                    if let Some(prev) = prev {
                        let key = crate::store::cert_key(&prev.ca_id, &prev.serial);
                        let rec: Option<CertRecord> =
                            opt_tx(tx, "SELECT rec FROM certs WHERE key = $1", &key).await?;
                        if let Some(rec) =
                            rec.filter(|r| r.status == CertStatus::Reserved && r.boot_id != boot)
                        {
                            let age = crate::clock::now().unix_timestamp() - rec.created_at;
                            if age < FOREIGN_INTENT_GRACE_SECS
                                && PgStore::node_alive(tx, &rec.boot_id).await?
                            {
                                foreign_busy = true;
                                boot_for_check = rec.boot_id.clone();
                            }
                        }
                    }
                }
                let out = ops::reserve(
                    tx,
                    &intent,
                    token.as_ref().map(|(t, i)| (t.as_str(), i)),
                    &boot_for_check,
                    busy || foreign_busy,
                )
                .await?;
                Ok((out, Vec::new()))
            })
        })
    }

    pub(super) fn issue(
        &self,
        rec: CertRecord,
        der: Vec<u8>,
        key_sha256: String,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::issue(tx, &rec, &der, &key_sha256).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    pub(super) fn revoke(
        &self,
        ca_id: &str,
        serial: &str,
        revocation: Revocation,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CertRecord> {
        let (c, s) = (ca_id.to_string(), serial.to_string());
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                let rec = ops::revoke(tx, &c, &s, revocation).await?;
                Ok((
                    rec,
                    vec![Committed::Revoked {
                        ca_id: c,
                        serial: s,
                    }],
                ))
            })
        })
    }

    pub(super) fn import_certs(
        &self,
        certs: Vec<(CertRecord, Vec<u8>)>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, u64> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move { Ok((ops::import_certs(tx, &certs).await?, Vec::new())) })
        })
    }

    pub(super) fn get_cert(&self, ca_id: &str, serial: &str) -> R<Option<CertWithDer>> {
        let (c, s) = (ca_id.to_string(), serial.to_string());
        self.read(move |cl| Box::pin(async move { reads::get_cert(cl, &c, &s).await }))
    }

    pub(super) fn ca_of_serial(&self, serial: &str) -> R<Option<String>> {
        let s = serial.to_string();
        self.read(move |c| {
            Box::pin(async move {
                let row = c
                    .q_opt("SELECT ca_id FROM serials WHERE serial = $1", &[&s])
                    .await
                    .map_err(pg_err)?;
                Ok(row.map(|r| r.get(0)))
            })
        })
    }

    pub(super) fn blocked_key(&self, key_sha256: &str) -> R<Option<BlockedKey>> {
        let k = key_sha256.to_string();
        self.read(move |c| {
            Box::pin(async move {
                opt(c, "SELECT rec FROM blocked_keys WHERE key_sha256 = $1", &k).await
            })
        })
    }

    pub(super) fn serial_status(&self, ca_id: &str, serial: &str) -> R<SerialStatus> {
        let (c, s) = (ca_id.to_string(), serial.to_string());
        self.read(move |cl| Box::pin(async move { reads::serial_status(cl, &c, &s).await }))
    }

    pub(super) fn count_certs(&self) -> R<u64> {
        self.read(|c| {
            Box::pin(async move {
                let n: i64 = c
                    .q_one("SELECT count(*) FROM certs", &[])
                    .await
                    .map_err(pg_err)?
                    .get(0);
                Ok(n as u64)
            })
        })
    }

    pub(super) fn count_expiring(&self, from: i64, before: i64) -> R<u64> {
        self.read(move |c| {
            Box::pin(async move {
                let n: i64 = c
                    .q_one(
                        "SELECT count(*) FROM certs WHERE status = 1 AND not_after >= $1 AND not_after < $2",
                        &[&from, &before],
                    )
                    .await
                    .map_err(pg_err)?
                    .get(0);
                Ok(n as u64)
            })
        })
    }

    pub(super) fn list_certs(
        &self,
        f: &CertFilter,
        wanted: &dyn Fn(&CertRecord) -> bool,
    ) -> R<(Vec<CertRecord>, Option<String>)> {
        use crate::store::redb::{decode_expiry_cursor, decode_key_cursor, encode_cursor};
        let limit = f.limit.max(1);
        let mut out = Vec::new();
        let mut scanned = 0usize;
        if let Some(before) = f.expiring_before {
            let mut from = match &f.cursor {
                Some(c) => {
                    let (t, k) = decode_expiry_cursor(c)?;
                    (i64::try_from(t).unwrap_or(i64::MAX), k)
                }
                None => (i64::MIN, String::new()),
            };
            loop {
                let batch =
                    self.expiry_batch(f.ca_id.clone(), from.clone(), before, true, SCAN_BATCH)?;
                if batch.is_empty() {
                    return Ok((out, None));
                }
                for (t, key, rec) in batch {
                    from = (t, key.clone());
                    scanned += 1;
                    if scanned > MAX_SCAN {
                        return Ok((out, Some(encode_cursor(&format!("e{t}|{key}")))));
                    }
                    if !wanted(&rec) {
                        continue;
                    }
                    out.push(rec);
                    if out.len() == limit {
                        return Ok((out, Some(encode_cursor(&format!("e{t}|{key}")))));
                    }
                }
            }
        }
        let mut after = match &f.cursor {
            Some(c) => decode_key_cursor(c)?,
            None => String::new(),
        };
        loop {
            let batch = self.cert_batch(f.ca_id.clone(), after.clone())?;
            if batch.is_empty() {
                return Ok((out, None));
            }
            for (key, rec) in batch {
                after = key.clone();
                scanned += 1;
                if scanned > MAX_SCAN {
                    return Ok((out, Some(encode_cursor(&format!("k{key}")))));
                }
                if !wanted(&rec) {
                    continue;
                }
                out.push(rec);
                if out.len() == limit {
                    return Ok((out, Some(encode_cursor(&format!("k{key}")))));
                }
            }
        }
    }

    pub(super) fn expiring_certs(
        &self,
        from: i64,
        before: i64,
        limit: usize,
    ) -> R<Vec<CertRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let batch =
            self.expiry_batch(None, (from - 1, "\u{10FFFF}".into()), before, false, limit)?;
        Ok(batch.into_iter().map(|(_, _, r)| r).collect())
    }

    pub(super) fn visit_live_certs(&self, from: i64, visit: &mut dyn FnMut(&CertRecord)) -> R<()> {
        let mut at = (from - 1, "\u{10FFFF}".to_string());
        loop {
            let batch = self.expiry_batch(None, at.clone(), i64::MAX, false, SCAN_BATCH)?;
            if batch.is_empty() {
                return Ok(());
            }
            for (t, key, rec) in batch {
                at = (t, key);
                visit(&rec);
            }
        }
    }
}

async fn opt_tx<T: for<'de> serde::Deserialize<'de>>(
    tx: &Transaction<'_>,
    sql: &str,
    id: &str,
) -> R<Option<T>> {
    let row = tx.query_opt(sql, &[&id]).await.map_err(pg_err)?;
    row.as_ref().map(text_rec).transpose()
}
