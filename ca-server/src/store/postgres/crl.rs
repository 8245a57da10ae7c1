//! CRLs: their metadata, the DER of each one published, and the entries a
//! new one is built from.

use super::reads::{self, opt};
use super::{ops, pg_err, PgStore, R};
use crate::store::{AuditDraft, Committed, CrlEntries, CrlMeta, StoreFuture};

impl PgStore {
    pub(super) fn crl_entries(&self, ca_id: &str, expired_before: Option<i64>) -> R<CrlEntries> {
        let c = ca_id.to_string();
        self.read(move |cl| {
            Box::pin(async move { reads::crl_entries(cl, &c, expired_before).await })
        })
    }

    pub(super) fn crl_meta(&self, ca_id: &str) -> R<Option<CrlMeta>> {
        let c = ca_id.to_string();
        self.read(move |cl| {
            Box::pin(async move { opt(cl, "SELECT rec FROM crl_meta WHERE ca_id = $1", &c).await })
        })
    }

    pub(super) fn put_crl_meta(
        &self,
        ca_id: &str,
        meta: CrlMeta,
        der: Vec<u8>,
        prune: Vec<String>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        let id = ca_id.to_string();
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                let number = meta.crl_number;
                ops::put_crl_meta(tx, &id, &meta, &der, &prune).await?;
                Ok(((), vec![Committed::CrlPublished { ca_id: id, number }]))
            })
        })
    }

    pub(super) fn crl_der(&self, ca_id: &str, number: u64) -> R<Option<Vec<u8>>> {
        let c = ca_id.to_string();
        let n = i64::try_from(number).unwrap_or(i64::MAX);
        self.read(move |cl| {
            Box::pin(async move {
                let row = cl
                    .query_opt(
                        "SELECT der FROM crls WHERE ca_id = $1 AND number = $2",
                        &[&c, &n],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(row.map(|r| r.get(0)))
            })
        })
    }

    pub(super) fn complete_crl_entries(&self) -> StoreFuture<'_, u64> {
        // Every revocation in a PostgreSQL store wrote its entry in its own
        // transaction (and `migrate` copies a completed redb store).
        Box::pin(async { Ok(0) })
    }
}
