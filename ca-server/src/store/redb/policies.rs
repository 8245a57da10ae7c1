//! Policy statements: list, put, delete (inherent methods the `Store`
//! implementation in `mod.rs` forwards to).

use super::tables::*;
use super::{reads, RedbStore};
use crate::store::{AuditDraft, Committed, PolicyRows, StoreError, StoreFuture};

impl RedbStore {
    pub(super) fn list_policies(&self) -> Result<Option<PolicyRows>, StoreError> {
        reads::list_policies(self.handle()?.as_ref())
    }

    pub(super) fn put_policy(
        &self,
        id: &str,
        json: Vec<u8>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        let id = id.to_string();
        Box::pin(self.write(Some(audit), move |txn| {
            put_policy(txn, &id, &json)?;
            Ok(((), vec![Committed::PolicyChanged { id }]))
        }))
    }

    pub(super) fn delete_policy(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool> {
        let id = id.to_string();
        Box::pin(self.write(Some(audit), move |txn| {
            let existed = txn.open_table(POLICIES)?.remove(id.as_str())?.is_some();
            Ok((existed, vec![Committed::PolicyChanged { id }]))
        }))
    }
}
