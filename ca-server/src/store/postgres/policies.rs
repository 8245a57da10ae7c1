//! Issuance policies: read as one set; a change is named in its commit, so
//! every node hears of it.

use super::reads;
use super::{ops, pg_err, PgStore, R};
use crate::store::{AuditDraft, Committed, PolicyRows, StoreFuture};

impl PgStore {
    pub(super) fn list_policies(&self) -> R<Option<PolicyRows>> {
        self.read(|c| Box::pin(reads::list_policies(c)))
    }

    pub(super) fn put_policy(
        &self,
        id: &str,
        json: Vec<u8>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        let id = id.to_string();
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::put_policy(tx, &id, &json).await?;
                Ok(((), vec![Committed::PolicyChanged { id }]))
            })
        })
    }

    pub(super) fn delete_policy(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool> {
        let id = id.to_string();
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::policies_touched(tx).await?;
                let n = tx
                    .execute("DELETE FROM policies WHERE id = $1", &[&id])
                    .await
                    .map_err(pg_err)?;
                Ok((n > 0, vec![Committed::PolicyChanged { id }]))
            })
        })
    }
}
