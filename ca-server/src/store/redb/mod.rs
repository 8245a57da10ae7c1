//! The embedded backend: one redb file (`DIR/ca.redb`), ACID, no server to
//! run. Tables are narrow and keyed for the queries served, so start-up reads
//! nothing but the schema version and memory does not grow with the number of
//! certificates (the layout is in the [`store`](super) docs).

mod acme;
pub mod backup;
// Opened to the fuzz targets (feature `fuzzing`): the decoders meet
// whatever a damaged store file holds.
#[cfg(feature = "fuzzing")]
pub mod codec;
#[cfg(not(feature = "fuzzing"))]
mod codec;
#[cfg(feature = "fuzzing")]
pub mod der_pack;
#[cfg(not(feature = "fuzzing"))]
mod der_pack;
mod events;
mod export;
/// Test tooling, compiled only for the end-to-end tests (feature `forensics`).
#[cfg(feature = "forensics")]
pub mod forensics;
pub mod journal;
mod open;
#[cfg(feature = "forensics")]
pub mod power_loss;
mod reads;
mod submit;
mod tables;
mod usage;
mod varint;
mod writer;

pub use self::usage::{store_usage, StoreUsage, TableUsage};

/// An audit entry as stored, decoded (the conformance tests rewrite entries
/// in the older JSON form).
#[cfg(test)]
pub(crate) fn decode_audit_for_tests(b: &[u8]) -> Result<AuditEntry, StoreError> {
    codec::decode_audit(b)
}

pub(crate) use self::tables::{decode_expiry_cursor, decode_key_cursor, encode_cursor};

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ca_core::audit_digest::AuditDigest;
use redb::{ReadableTable, WriteTransaction};
use tokio::sync::mpsc;

use self::tables::*;
use self::writer::{Handle, Job, Shared};
use super::{
    AcmeAccount, AcmeAuthz, AcmeEabKey, AcmeOrder, AuditDraft, AuditEntry, AuditFilter, BlockedKey,
    CaChange, CaRecord, CertFilter, CertRecord, CertWithDer, CommitHook, CommitObserver, Committed,
    CrlEntries, CrlMeta, EventRecord, IdemRecord, InFlightTokens, KeyMeta, MarkAdvance,
    NewCaRecord, PolicyRows, ReserveOutcome, Revocation, Rewrap, SerialStatus, Store, StoreError,
    StoreFuture, StoreStats, Verdict, WebhookRecord,
};

pub const DB_FILE: &str = "ca.redb";

/// The redb layout this binary writes; a newer one is refused at open.
/// 1: JSON records. 2: certificates, audit entries and events in the binary
/// encoding of [`codec`] (version 1 stores are read as they are and marked 2).
pub const SCHEMA_VERSION: u64 = 2;

pub struct RedbStore {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    boot_id: String,
}

impl RedbStore {
    fn handle(&self) -> Result<Arc<Handle>, StoreError> {
        self.shared.handle()
    }
}

impl Store for RedbStore {
    fn boot_id(&self) -> &str {
        &self.boot_id
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.shared.commits.load(Ordering::Relaxed),
            writes: self.shared.writes.load(Ordering::Relaxed),
            writable: self.shared.writable.load(Ordering::Acquire)
                && self.sender.lock().map(|s| s.is_some()).unwrap_or(false),
        }
    }

    fn close(&self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
        self.shared.close();
    }

    fn subscribe(&self, hook: CommitHook) {
        self.shared.subscribe(hook);
    }

    fn observe_commits(&self, hook: CommitObserver) {
        self.shared.observe_commits(hook);
    }

    fn get_ca(&self, id: &str) -> Result<Option<CaRecord>, StoreError> {
        let cas = self
            .shared
            .cache
            .cas(|| reads::list_cas(self.handle()?.as_ref()))?;
        Ok(cas.iter().find(|c| c.id == id).cloned())
    }

    fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError> {
        let cas = self
            .shared
            .cache
            .cas(|| reads::list_cas(self.handle()?.as_ref()))?;
        Ok(cas.as_ref().clone())
    }

    fn create_ca(&self, new: NewCaRecord, audit: AuditDraft) -> StoreFuture<'_, CaRecord> {
        Box::pin(self.write(Some(audit), move |txn| {
            create_ca(txn, &new)?;
            let ev = vec![Committed::CaChanged {
                ca_id: new.ca.id.clone(),
            }];
            Ok((new.ca, ev))
        }))
    }

    fn update_ca(
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

    fn get_alias(&self, alias: &str) -> Result<Option<String>, StoreError> {
        let aliases = self
            .shared
            .cache
            .aliases(|| reads::list_aliases(self.handle()?.as_ref()))?;
        Ok(aliases
            .iter()
            .find(|(a, _)| a == alias)
            .map(|(_, id)| id.clone()))
    }

    fn list_aliases(&self) -> Result<Vec<(String, String)>, StoreError> {
        let aliases = self
            .shared
            .cache
            .aliases(|| reads::list_aliases(self.handle()?.as_ref()))?;
        Ok(aliases.as_ref().clone())
    }

    fn put_alias(&self, alias: &str, ca_id: &str, audit: AuditDraft) -> StoreFuture<'_, ()> {
        let (a, c) = (alias.to_string(), ca_id.to_string());
        Box::pin(self.write(Some(audit), move |txn| {
            put_alias(txn, &a, &c)?;
            Ok(((), vec![Committed::AliasChanged { alias: a }]))
        }))
    }

    fn rotate_alias(
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
            if old.status != super::CaStatus::Active {
                return Err(StoreError::Conflict(format!("CA {o} is not ACTIVE")));
            }
            create_ca(txn, &new)?;
            let now = crate::clock::now().unix_timestamp();
            let retired = update_ca(
                txn,
                &o,
                Box::new(move |r| {
                    r.status = super::CaStatus::Retired;
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

    fn reserve(
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

    fn issue(
        &self,
        rec: CertRecord,
        der: Vec<u8>,
        key_sha256: String,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        Box::pin(self.write_keyed(Some(rec.key()), Some(audit), move |txn| {
            issue(txn, &rec, &der, &key_sha256)?;
            Ok(((), Vec::new()))
        }))
    }

    fn revoke(
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

    fn import_certs(
        &self,
        certs: Vec<(CertRecord, Vec<u8>)>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, u64> {
        Box::pin(self.write(Some(audit), move |txn| {
            let n = import_certs(txn, &certs)?;
            Ok((n, Vec::new()))
        }))
    }

    fn get_cert(&self, ca_id: &str, serial: &str) -> Result<Option<CertWithDer>, StoreError> {
        reads::get_cert(self.handle()?.as_ref(), ca_id, serial)
    }

    fn ca_of_serial(&self, serial: &str) -> Result<Option<String>, StoreError> {
        reads::ca_of_serial(self.handle()?.as_ref(), serial)
    }

    fn blocked_key(&self, key_sha256: &str) -> Result<Option<BlockedKey>, StoreError> {
        let handle = self.handle()?;
        // Asked before every issuance, and almost always no key is blocked:
        // that is kept (until a revocation commits) instead of a read each time.
        if self
            .shared
            .cache
            .no_blocked_keys(|| reads::no_blocked_keys(handle.as_ref()))?
        {
            return Ok(None);
        }
        reads::blocked_key(handle.as_ref(), key_sha256)
    }

    fn serial_status(&self, ca_id: &str, serial: &str) -> Result<SerialStatus, StoreError> {
        reads::serial_status(self.handle()?.as_ref(), ca_id, serial)
    }

    fn count_certs(&self) -> Result<u64, StoreError> {
        reads::count_certs(self.handle()?.as_ref())
    }

    fn snapshot(
        &self,
        out: &Path,
        files: &[(String, Vec<u8>)],
    ) -> Result<super::SnapshotCounts, StoreError> {
        backup::snapshot(self.handle()?.as_ref(), out, files)
    }

    fn count_expiring(&self, from: i64, before: i64) -> Result<u64, StoreError> {
        reads::count_expiring(self.handle()?.as_ref(), from, before)
    }

    fn list_certs(
        &self,
        filter: &CertFilter,
        wanted: &dyn Fn(&CertRecord) -> bool,
    ) -> Result<(Vec<CertRecord>, Option<String>), StoreError> {
        reads::list_certs(self.handle()?.as_ref(), filter, wanted)
    }

    fn crl_entries(
        &self,
        ca_id: &str,
        expired_before: Option<i64>,
    ) -> Result<CrlEntries, StoreError> {
        reads::crl_entries(self.handle()?.as_ref(), ca_id, expired_before)
    }

    fn crl_meta(&self, ca_id: &str) -> Result<Option<CrlMeta>, StoreError> {
        reads::crl_meta(self.handle()?.as_ref(), ca_id)
    }

    fn put_crl_meta(
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

    fn crl_der(&self, _ca_id: &str, _number: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }

    fn complete_crl_entries(&self) -> StoreFuture<'_, u64> {
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

    fn list_policies(&self) -> Result<Option<PolicyRows>, StoreError> {
        reads::list_policies(self.handle()?.as_ref())
    }

    fn put_policy(&self, id: &str, json: Vec<u8>, audit: AuditDraft) -> StoreFuture<'_, ()> {
        let id = id.to_string();
        Box::pin(self.write(Some(audit), move |txn| {
            put_policy(txn, &id, &json)?;
            Ok(((), vec![Committed::PolicyChanged { id }]))
        }))
    }

    fn delete_policy(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool> {
        let id = id.to_string();
        Box::pin(self.write(Some(audit), move |txn| {
            let existed = txn.open_table(POLICIES)?.remove(id.as_str())?.is_some();
            Ok((existed, vec![Committed::PolicyChanged { id }]))
        }))
    }

    fn key_meta(&self) -> Result<KeyMeta, StoreError> {
        reads::key_meta(self.handle()?.as_ref())
    }

    fn set_key_meta(&self, meta: &KeyMeta, audit: AuditDraft) -> Result<(), StoreError> {
        self.write_now(|txn| {
            write_key_meta(txn, meta)?;
            append_audit(txn, &audit).map(|_| ())
        })
    }

    fn sealed_key(&self, ca_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        reads::sealed_key(self.handle()?.as_ref(), ca_id)
    }

    fn sealed_key_ids(&self) -> Result<Vec<String>, StoreError> {
        reads::sealed_key_ids(self.handle()?.as_ref())
    }

    fn import_sealed_keys(
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

    fn rewrap_keys(
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

    fn append_audit(&self, audit: AuditDraft) -> StoreFuture<'_, AuditEntry> {
        Box::pin(self.write(None, move |txn| {
            let e = append_audit(txn, &audit)?;
            Ok((e, Vec::new()))
        }))
    }

    fn audit_page(
        &self,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, Option<u64>), StoreError> {
        reads::audit_page(self.handle()?.as_ref(), filter)
    }

    fn verify_audit(&self, pinned_digest_key: Option<&[u8]>) -> Result<Verdict, StoreError> {
        reads::verify_audit(self.handle()?.as_ref(), pinned_digest_key)
    }

    fn audit_head(&self) -> Result<(u64, String), StoreError> {
        reads::audit_head(self.handle()?.as_ref())
    }

    fn append_audit_digest(&self, digest: AuditDigest) -> StoreFuture<'_, ()> {
        Box::pin(self.write(None, move |txn| {
            append_audit_digest(txn, &digest)?;
            Ok(((), Vec::new()))
        }))
    }

    fn audit_digests(&self, after: u64, limit: usize) -> Result<Vec<AuditDigest>, StoreError> {
        reads::audit_digests(self.handle()?.as_ref(), after, limit)
    }

    fn last_audit_digest(&self) -> Result<Option<AuditDigest>, StoreError> {
        reads::last_audit_digest(self.handle()?.as_ref())
    }

    fn acme_account(&self, id: &str) -> Result<Option<AcmeAccount>, StoreError> {
        acme::account(self.handle()?.as_ref(), id)
    }

    fn acme_account_by_key(&self, thumbprint: &str) -> Result<Option<AcmeAccount>, StoreError> {
        acme::account_by_key(self.handle()?.as_ref(), thumbprint)
    }

    fn acme_create_account(&self, account: AcmeAccount, audit: AuditDraft) -> StoreFuture<'_, ()> {
        Box::pin(self.write(Some(audit), move |txn| {
            acme::create_account(txn, &account)?;
            Ok(((), Vec::new()))
        }))
    }

    fn acme_update_account(
        &self,
        account: AcmeAccount,
        expected_thumbprint: String,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        Box::pin(self.write(Some(audit), move |txn| {
            acme::update_account(txn, &account, &expected_thumbprint)?;
            Ok(((), Vec::new()))
        }))
    }

    fn acme_accounts(&self) -> Result<Vec<AcmeAccount>, StoreError> {
        acme::accounts(self.handle()?.as_ref())
    }

    fn acme_orders_of(&self, account: &str) -> Result<Vec<AcmeOrder>, StoreError> {
        acme::orders_of(self.handle()?.as_ref(), account)
    }

    fn acme_eab_key(&self, kid: &str) -> Result<Option<AcmeEabKey>, StoreError> {
        acme::eab_key(self.handle()?.as_ref(), kid)
    }

    fn acme_eab_keys(&self) -> Result<Vec<AcmeEabKey>, StoreError> {
        acme::eab_keys(self.handle()?.as_ref())
    }

    fn acme_put_eab_key(
        &self,
        key: AcmeEabKey,
        new: bool,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        Box::pin(self.write(Some(audit), move |txn| {
            acme::put_eab_key(txn, &key, new)?;
            Ok(((), Vec::new()))
        }))
    }

    fn acme_order(&self, id: &str) -> Result<Option<AcmeOrder>, StoreError> {
        acme::order(self.handle()?.as_ref(), id)
    }

    fn acme_authz(&self, id: &str) -> Result<Option<AcmeAuthz>, StoreError> {
        acme::authz(self.handle()?.as_ref(), id)
    }

    fn acme_put(
        &self,
        order: Option<AcmeOrder>,
        authzs: Vec<AcmeAuthz>,
        audit: Option<AuditDraft>,
    ) -> StoreFuture<'_, ()> {
        Box::pin(self.write(audit, move |txn| {
            acme::put(txn, order.as_ref(), &authzs)?;
            Ok(((), Vec::new()))
        }))
    }

    fn append_events(
        &self,
        events: Vec<EventRecord>,
        mark: MarkAdvance,
        prune_before: Option<i64>,
    ) -> StoreFuture<'_, u64> {
        Box::pin(self.write(None, move |txn| {
            let last = events::append_events(txn, events, &mark, prune_before)?;
            Ok((last, Vec::new()))
        }))
    }

    fn event_mark(&self, name: &str) -> Result<Option<u64>, StoreError> {
        events::event_mark(self.handle()?.as_ref(), name)
    }

    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        events::events_after(self.handle()?.as_ref(), after, limit)
    }

    fn expiring_certs(
        &self,
        from: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<CertRecord>, StoreError> {
        events::expiring_certs(self.handle()?.as_ref(), from, before, limit)
    }

    fn visit_live_certs(
        &self,
        from: i64,
        visit: &mut dyn FnMut(&CertRecord),
    ) -> Result<(), StoreError> {
        events::visit_live_certs(self.handle()?.as_ref(), from, visit)
    }

    fn list_webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        events::list_webhooks(self.handle()?.as_ref())
    }

    fn create_webhook(
        &self,
        hook: WebhookRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, WebhookRecord> {
        Box::pin(self.write(Some(audit), move |txn| {
            Ok((events::create_webhook(txn, hook)?, Vec::new()))
        }))
    }

    fn delete_webhook(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool> {
        let id = id.to_string();
        Box::pin(self.write(Some(audit), move |txn| {
            let existed = txn
                .open_table(events::WEBHOOKS)?
                .remove(id.as_str())?
                .is_some();
            Ok((existed, Vec::new()))
        }))
    }

    fn webhook_delivered(&self, id: &str, seq: u64) -> StoreFuture<'_, ()> {
        let id = id.to_string();
        Box::pin(self.write(None, move |txn| {
            events::webhook_delivered(txn, &id, seq)?;
            Ok(((), Vec::new()))
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
                    Some(n) => super::stored_crl_entry(serial, &rv, n),
                    None => super::crl_entry(serial, &rv),
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
