//! The audit trail: entries appended (alone, or by a write), paged and
//! verified as one hash chain, and the digests that pin it.

use std::sync::atomic::Ordering;

use ca_core::audit_digest::AuditDigest;

use super::reads::{self, text_rec, Cached as _};
use super::{ops, pg_err, pool_err, PgStore, R};
use crate::store::{AuditDraft, AuditEntry, AuditFilter, StoreError, StoreFuture, Verdict};

impl PgStore {
    pub(super) fn append_audit(&self, audit: AuditDraft) -> StoreFuture<'_, AuditEntry> {
        // The entry is appended by the write itself; read it back by its head.
        let inner = self.inner.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.handle.spawn(async move {
            let r = async {
                let mut conn = inner.pool.get().await.map_err(pool_err)?;
                let t = ops::begin_write(&mut conn).await?;
                let mut head = ops::lock_head(&t).await?;
                let e = ops::append_audit(&t, &mut head, &audit).await?;
                ops::store_head(&t, &head).await?;
                t.commit().await.map_err(pg_err)?;
                Ok(e)
            }
            .await;
            inner.note(&r.as_ref().map(|_| ()));
            if r.is_ok() {
                inner.commits.fetch_add(1, Ordering::Relaxed);
                inner.writes.fetch_add(1, Ordering::Relaxed);
            }
            let _ = tx.send(r);
        });
        Box::pin(async move { rx.await.map_err(|_| StoreError::Closed)? })
    }

    pub(super) fn audit_page(&self, filter: &AuditFilter) -> R<(Vec<AuditEntry>, Option<u64>)> {
        let f = filter.clone();
        self.read(move |c| Box::pin(async move { reads::audit_page(c, &f).await }))
    }

    pub(super) fn verify_audit(&self, pinned_digest_key: Option<&[u8]>) -> R<Verdict> {
        let pinned = pinned_digest_key.map(<[u8]>::to_vec);
        let inner = self.inner.clone();
        self.block(async move {
            let mut conn = inner.pool.get().await.map_err(pool_err)?;
            reads::verify_audit(&mut conn, pinned.as_deref()).await
        })
    }

    pub(super) fn audit_head(&self) -> R<(u64, String)> {
        self.read(|c| Box::pin(reads::audit_head(c)))
    }

    pub(super) fn append_audit_digest(&self, digest: AuditDigest) -> StoreFuture<'_, ()> {
        self.write(None, move |tx| {
            Box::pin(async move {
                ops::append_audit_digest(tx, &digest).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    pub(super) fn audit_digests(&self, after: u64, limit: usize) -> R<Vec<AuditDigest>> {
        self.read(move |c| Box::pin(reads::audit_digests(c, after, limit)))
    }

    pub(super) fn last_audit_digest(&self) -> R<Option<AuditDigest>> {
        self.read(|c| {
            Box::pin(async move {
                let row = c
                    .q_opt(
                        "SELECT rec FROM audit_digests ORDER BY number DESC LIMIT 1",
                        &[],
                    )
                    .await
                    .map_err(pg_err)?;
                row.as_ref().map(text_rec).transpose()
            })
        })
    }
}
