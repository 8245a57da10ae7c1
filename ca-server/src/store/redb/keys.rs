//! The master key's record and the sealed CA keys: reads, imports, and the
//! re-wrap of every key under a new master key (inherent methods the
//! `Store` implementation in `mod.rs` forwards to).

use redb::ReadableTable;

use super::tables::*;
use super::{reads, RedbStore};
use crate::store::{AuditDraft, KeyMeta, Rewrap, StoreError};

impl RedbStore {
    pub(super) fn key_meta(&self) -> Result<KeyMeta, StoreError> {
        reads::key_meta(self.handle()?.as_ref())
    }

    pub(super) fn set_key_meta(&self, meta: &KeyMeta, audit: AuditDraft) -> Result<(), StoreError> {
        self.write_now(|txn| {
            write_key_meta(txn, meta)?;
            append_audit(txn, &audit).map(|_| ())
        })
    }

    pub(super) fn sealed_key(&self, ca_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        reads::sealed_key(self.handle()?.as_ref(), ca_id)
    }

    pub(super) fn sealed_key_ids(&self) -> Result<Vec<String>, StoreError> {
        reads::sealed_key_ids(self.handle()?.as_ref())
    }

    pub(super) fn import_sealed_keys(
        &self,
        keys: &[(String, Vec<u8>)],
        audit: AuditDraft,
    ) -> Result<usize, StoreError> {
        self.write_now(|txn| {
            let mut t = txn.open_table(CA_KEYS)?;
            let mut n = 0;
            for (id, sealed) in keys {
                if t.get(id.as_str())?.is_none() {
                    t.insert(id.as_str(), sealed.as_slice())?;
                    n += 1;
                }
            }
            drop(t);
            append_audit(txn, &audit)?;
            Ok(n)
        })
    }

    pub(super) fn rewrap_keys(
        &self,
        rewrap: Rewrap<'_>,
        meta: &KeyMeta,
        audit: AuditDraft,
    ) -> Result<usize, StoreError> {
        self.write_now(|txn| {
            let mut rewrapped = Vec::new();
            {
                let t = txn.open_table(CA_KEYS)?;
                for item in t.iter()? {
                    let (k, v) = item?;
                    let id = k.value().to_string();
                    let re = rewrap(&id, v.value())
                        .map_err(|e| StoreError::Conflict(format!("key of CA {id}: {e}")))?;
                    rewrapped.push((id, re));
                }
            }
            let mut t = txn.open_table(CA_KEYS)?;
            for (id, bytes) in &rewrapped {
                t.insert(id.as_str(), bytes.as_slice())?;
            }
            drop(t);
            write_key_meta(txn, meta)?;
            append_audit(txn, &audit)?;
            Ok(rewrapped.len())
        })
    }
}
