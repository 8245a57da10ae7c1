//! Certificates: reserving a serial, issuing, revoking and importing, and
//! the reads of certificate records (inherent methods the `Store`
//! implementation in `mod.rs` forwards to).

use std::sync::Arc;

use super::tables::*;
use super::{reads, RedbStore};
use crate::store::{
    AuditDraft, BlockedKey, CertFilter, CertRecord, CertWithDer, Committed, IdemRecord,
    InFlightTokens, ReserveOutcome, Revocation, SerialStatus, StoreError, StoreFuture,
};

impl RedbStore {
    pub(super) fn reserve(
        &self,
        intent: CertRecord,
        token: Option<(String, IdemRecord)>,
        in_flight: Arc<InFlightTokens>,
    ) -> StoreFuture<'_, ReserveOutcome> {
        let boot = self.boot_id.clone();
        Box::pin(self.write_keyed(Some(intent.key()), None, move |txn| {
            // Asked in the writer, so no other reservation interleaves.
            let busy = token.as_ref().is_some_and(|(t, _)| in_flight.others(t));
            let out = reserve(
                txn,
                &intent,
                token.as_ref().map(|(t, i)| (t.as_str(), i)),
                &boot,
                busy,
            )?;
            Ok((out, Vec::new()))
        }))
    }

    pub(super) fn issue(
        &self,
        rec: CertRecord,
        der: Vec<u8>,
        key_sha256: String,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        let order = Some(rec.key());
        // (Submitted now, not when first polled: see `write`.)
        let stored = self.write_redo(
            order,
            super::redo::Redo::Issue {
                rec,
                der,
                key_sha256,
                audit,
            },
        );
        Box::pin(async move { stored.await.map(|_| ()) })
    }

    pub(super) fn revoke(
        &self,
        ca_id: &str,
        serial: &str,
        revocation: Revocation,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CertRecord> {
        let (c, s) = (ca_id.to_string(), serial.to_string());
        Box::pin(self.write(Some(audit), move |txn| {
            let rec = revoke(txn, &c, &s, revocation)?;
            Ok((
                rec,
                vec![Committed::Revoked {
                    ca_id: c,
                    serial: s,
                }],
            ))
        }))
    }

    pub(super) fn import_certs(
        &self,
        certs: Vec<(CertRecord, Vec<u8>)>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, u64> {
        Box::pin(self.write(Some(audit), move |txn| {
            let n = import_certs(txn, &certs)?;
            Ok((n, Vec::new()))
        }))
    }

    pub(super) fn get_cert(
        &self,
        ca_id: &str,
        serial: &str,
    ) -> Result<Option<CertWithDer>, StoreError> {
        reads::get_cert(self.handle()?.as_ref(), ca_id, serial)
    }

    pub(super) fn ca_of_serial(&self, serial: &str) -> Result<Option<String>, StoreError> {
        reads::ca_of_serial(self.handle()?.as_ref(), serial)
    }

    pub(super) fn blocked_key(&self, key_sha256: &str) -> Result<Option<BlockedKey>, StoreError> {
        // Asked before every issuance: publishing each time would cost a
        // commit, and an issuance blocks no key. Almost always no key is
        // blocked: that is kept (until a revocation commits) instead of a
        // read each time.
        let handle = self.handle_past_issuances()?;
        if self
            .shared
            .cache
            .no_blocked_keys(|| reads::no_blocked_keys(handle.as_ref()))?
        {
            return Ok(None);
        }
        reads::blocked_key(handle.as_ref(), key_sha256)
    }

    pub(super) fn serial_status(
        &self,
        ca_id: &str,
        serial: &str,
    ) -> Result<SerialStatus, StoreError> {
        reads::serial_status(self.handle()?.as_ref(), ca_id, serial)
    }

    pub(super) fn count_certs(&self) -> Result<u64, StoreError> {
        reads::count_certs(self.handle()?.as_ref())
    }

    pub(super) fn count_expiring(&self, from: i64, before: i64) -> Result<u64, StoreError> {
        reads::count_expiring(self.handle()?.as_ref(), from, before)
    }

    pub(super) fn list_certs(
        &self,
        filter: &CertFilter,
        wanted: &dyn Fn(&CertRecord) -> bool,
    ) -> Result<(Vec<CertRecord>, Option<String>), StoreError> {
        reads::list_certs(self.handle()?.as_ref(), filter, wanted)
    }
}
