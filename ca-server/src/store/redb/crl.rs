//! CRLs: the entries a new one is built from, the metadata of the last one
//! published, and the one-off completion of entries for revocations made
//! before entries were kept (inherent methods the `Store` implementation
//! in `mod.rs` forwards to).

use redb::{ReadableTable, WriteTransaction};

use super::tables::*;
use super::{codec, reads, RedbStore};
use crate::store::{
    AuditDraft, Committed, CrlEntries, CrlMeta, Revocation, StoreError, StoreFuture,
};

impl RedbStore {
    pub(super) fn crl_entries(
        &self,
        ca_id: &str,
        expired_before: Option<i64>,
    ) -> Result<CrlEntries, StoreError> {
        reads::crl_entries(self.handle()?.as_ref(), ca_id, expired_before)
    }

    pub(super) fn crl_meta(&self, ca_id: &str) -> Result<Option<CrlMeta>, StoreError> {
        reads::crl_meta(self.handle()?.as_ref(), ca_id)
    }

    pub(super) fn put_crl_meta(
        &self,
        ca_id: &str,
        meta: CrlMeta,
        _der: Vec<u8>,
        prune: Vec<String>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        let id = ca_id.to_string();
        Box::pin(self.write(Some(audit), move |txn| {
            let last = {
                let t = txn.open_table(CRL_META)?;
                let v = t.get(id.as_str())?;
                v.map(|v| unjson::<CrlMeta>(v.value())).transpose()?
            };
            if let Some(last) = last.filter(|l| l.crl_number >= meta.crl_number) {
                return Err(StoreError::Conflict(format!(
                    "CRL {} of {id} is not above the published CRL {}",
                    meta.crl_number, last.crl_number
                )));
            }
            let number = meta.crl_number;
            put_crl_meta(txn, &id, &meta)?;
            // Only this CA's entries: a key naming another CA is ignored.
            let prefix = format!("{id}/");
            let mut entries = txn.open_table(CRL_ENTRIES)?;
            for key in prune.iter().filter(|k| k.starts_with(&prefix)) {
                entries.remove(key.as_str())?;
            }
            Ok(((), vec![Committed::CrlPublished { ca_id: id, number }]))
        }))
    }

    pub(super) fn crl_der(
        &self,
        _ca_id: &str,
        _number: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }

    pub(super) fn complete_crl_entries(&self) -> StoreFuture<'_, u64> {
        let done = self
            .handle()
            .and_then(|h| reads::meta_value(&h, CRL_ENTRIES_COMPLETE));
        if let Ok(Some(_)) = done {
            return Box::pin(async { Ok(0) });
        }
        Box::pin(self.write(None, |txn| {
            let n = complete_crl_entries(txn)?;
            Ok((n, Vec::new()))
        }))
    }
}

/// Give every revocation recorded before `crl_entries` existed its entry.
fn complete_crl_entries(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let mut missing = Vec::new();
    {
        let revs = txn.open_table(REVOCATIONS)?;
        let entries = txn.open_table(CRL_ENTRIES)?;
        let certs = txn.open_table(CERTS)?;
        for item in revs.iter()? {
            let (k, v) = item?;
            let key = k.value();
            if entries.get(key)?.is_none() {
                let rv: Revocation = unjson(v.value())?;
                let serial = key.rsplit('/').next().unwrap_or_default();
                // Dated by the certificate's notAfter where it is known, so
                // the entry can leave the CRL once the certificate expired.
                let not_after = match certs.get(key)? {
                    Some(c) => codec::decode_cert(c.value()).ok().map(|c| c.not_after),
                    None => None,
                };
                let encoded = match not_after {
                    Some(n) => crate::store::stored_crl_entry(serial, &rv, n),
                    None => crate::store::crl_entry(serial, &rv),
                };
                // An entry that cannot be encoded is logged, not fatal.
                match encoded {
                    Ok(e) => missing.push((key.to_string(), e)),
                    Err(e) => {
                        tracing::warn!(%key, error = %e, "revocation left out of CRLs")
                    }
                }
            }
        }
    }
    let n = missing.len() as u64;
    let mut entries = txn.open_table(CRL_ENTRIES)?;
    for (k, e) in missing {
        entries.insert(k.as_str(), e.as_slice())?;
    }
    txn.open_table(META)?.insert(CRL_ENTRIES_COMPLETE, 1)?;
    Ok(n)
}
