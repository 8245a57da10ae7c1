//! CAs and aliases: their reads (kept in the store's cache until a commit
//! changes them) and their writes, as inherent methods the `Store`
//! implementation in `mod.rs` forwards to.

use redb::ReadableTable;

use super::tables::*;
use super::{reads, RedbStore};
use crate::store::{
    AuditDraft, CaChange, CaRecord, Committed, NewCaRecord, StoreError, StoreFuture,
};

impl RedbStore {
    pub(super) fn get_ca(&self, id: &str) -> Result<Option<CaRecord>, StoreError> {
        let cas = self
            .shared
            .cache
            .cas(|| reads::list_cas(self.handle()?.as_ref()))?;
        Ok(cas.iter().find(|c| c.id == id).cloned())
    }

    pub(super) fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError> {
        let cas = self
            .shared
            .cache
            .cas(|| reads::list_cas(self.handle()?.as_ref()))?;
        Ok(cas.as_ref().clone())
    }

    pub(super) fn create_ca(
        &self,
        new: NewCaRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CaRecord> {
        Box::pin(self.write(Some(audit), move |txn| {
            create_ca(txn, &new)?;
            let ev = vec![Committed::CaChanged {
                ca_id: new.ca.id.clone(),
            }];
            Ok((new.ca, ev))
        }))
    }

    pub(super) fn update_ca(
        &self,
        id: &str,
        change: CaChange,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CaRecord> {
        let id = id.to_string();
        Box::pin(self.write(Some(audit), move |txn| {
            let rec = update_ca(txn, &id, change)?;
            Ok((rec, vec![Committed::CaChanged { ca_id: id }]))
        }))
    }

    pub(super) fn get_alias(&self, alias: &str) -> Result<Option<String>, StoreError> {
        let aliases = self
            .shared
            .cache
            .aliases(|| reads::list_aliases(self.handle()?.as_ref()))?;
        Ok(aliases
            .iter()
            .find(|(a, _)| a == alias)
            .map(|(_, id)| id.clone()))
    }

    pub(super) fn list_aliases(&self) -> Result<Vec<(String, String)>, StoreError> {
        let aliases = self
            .shared
            .cache
            .aliases(|| reads::list_aliases(self.handle()?.as_ref()))?;
        Ok(aliases.as_ref().clone())
    }

    pub(super) fn put_alias(
        &self,
        alias: &str,
        ca_id: &str,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        let (a, c) = (alias.to_string(), ca_id.to_string());
        Box::pin(self.write(Some(audit), move |txn| {
            put_alias(txn, &a, &c)?;
            Ok(((), vec![Committed::AliasChanged { alias: a }]))
        }))
    }

    pub(super) fn rotate_alias(
        &self,
        alias: &str,
        old_id: &str,
        new: NewCaRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CaRecord> {
        let (a, o) = (alias.to_string(), old_id.to_string());
        Box::pin(self.write(Some(audit), move |txn| {
            // Checked before writing: the alias must still point at the old CA.
            if get_alias(txn, &a)?.as_deref() != Some(o.as_str()) {
                return Err(StoreError::Conflict(format!(
                    "alias {a} moved while rotating"
                )));
            }
            let old: CaRecord = {
                let t = txn.open_table(CAS)?;
                let v = t
                    .get(o.as_str())?
                    .ok_or_else(|| StoreError::NotFound(format!("no CA {o}")))?;
                unjson(v.value())?
            };
            if old.status != crate::store::CaStatus::Active {
                return Err(StoreError::Conflict(format!("CA {o} is not ACTIVE")));
            }
            create_ca(txn, &new)?;
            let now = crate::clock::now().unix_timestamp();
            let retired = update_ca(
                txn,
                &o,
                Box::new(move |r| {
                    r.status = crate::store::CaStatus::Retired;
                    r.updated_at = now;
                    Ok(())
                }),
            )?;
            put_alias(txn, &a, &new.ca.id)?;
            let ev = vec![
                Committed::CaChanged { ca_id: o },
                Committed::CaChanged {
                    ca_id: new.ca.id.clone(),
                },
                Committed::AliasChanged { alias: a },
            ];
            Ok((retired, ev))
        }))
    }
}
