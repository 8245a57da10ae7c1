//! The embedded backend: one redb file (`DIR/ca.redb`), ACID, no server to
//! run. Tables are narrow and keyed for the queries served, so start-up reads
//! nothing but the schema version and memory does not grow with the number of
//! certificates (the layout is in the [`store`](super) docs).

mod acme;
pub mod backup;
mod batch;
mod cas;
mod certs;
pub mod check;
// Opened to the fuzz targets (feature `fuzzing`): the decoders meet
// whatever a damaged store file holds.
#[cfg(feature = "fuzzing")]
pub mod codec;
#[cfg(not(feature = "fuzzing"))]
mod codec;
mod crl;
#[cfg(feature = "fuzzing")]
pub mod der_pack;
#[cfg(not(feature = "fuzzing"))]
mod der_pack;
mod events;
mod export;
/// Test tooling, compiled only for the end-to-end tests (feature `forensics`).
#[cfg(feature = "forensics")]
pub mod forensics;
mod issue_tables;
pub mod journal;
mod keys;
pub(crate) mod open;
mod policies;
#[cfg(feature = "forensics")]
pub mod power_loss;
mod publish;
mod reads;
mod record;
mod redo;
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
use std::sync::mpsc;

use self::tables::*;
use self::writer::{Handle, Job, Shared};
use super::{
    AcmeAccount, AcmeAuthz, AcmeEabKey, AcmeOrder, AuditDraft, AuditEntry, AuditFilter, BlockedKey,
    CaChange, CaRecord, CertFilter, CertRecord, CertWithDer, CommitHook, CommitObserver,
    CrlEntries, CrlMeta, EventRecord, IdemRecord, InFlightTokens, KeyMeta, MarkAdvance,
    NewCaRecord, PolicyRows, ReserveOutcome, Revocation, Rewrap, SerialStatus, Store, StoreError,
    StoreFuture, StoreStats, Verdict, WebhookRecord,
};

pub const DB_FILE: &str = "ca.redb";

/// A write transaction whose durable commit records redb's allocator state
/// (quick repair): after a crash, the open loads that state instead of
/// walking every table to rebuild it (~1.2 s per 1,000,000 certificates).
/// Recording costs a second sync and the state's pages (~0.6 ms a commit
/// with 1,000,000 stored), so only the durable commits made now and then
/// record it: a start's open, the close's, the one due after each MiB of redo
/// records, and those of the background writers (the events' projection,
/// which follows every burst of audited actions, webhook deliveries, audit
/// digests; see `batch::commit`, `RedbStore::write_quick_repair`). A
/// request's own durable write (a revocation, a policy, an idempotent
/// issuance's reservation, an ACME update) records nothing: it would take
/// about twice the time. A crash after one, before the next recording
/// commit, still walks.
fn begin_write_quick_repair(
    db: &redb::Database,
) -> Result<redb::WriteTransaction, redb::TransactionError> {
    let mut txn = db.begin_write()?;
    txn.set_quick_repair(true);
    Ok(txn)
}

/// The redb layout this binary writes; a newer one is refused at open.
/// 1: JSON records. 2: certificates, audit entries and events in the binary
/// encoding of [`codec`] (version 1 stores are read as they are and marked 2).
pub const SCHEMA_VERSION: u64 = 2;

pub struct RedbStore {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    boot_id: String,
}

impl RedbStore {
    /// The database handle for a read, once every answered write is
    /// visible (see [`publish`]).
    fn handle(&self) -> Result<Arc<Handle>, StoreError> {
        if let Err(e) = self.shared.publish() {
            self.wake_writer();
            return Err(e);
        }
        self.shared.handle()
    }

    /// The database handle for a read of what no issuance writes (see
    /// [`redo`]): unpublished issuances change nothing it reads, so it need
    /// not publish them (nor the audit entries alone that may be unpublished
    /// for a moment: they write only what issuances write).
    fn handle_past_issuances(&self) -> Result<Arc<Handle>, StoreError> {
        self.shared.handle()
    }

    /// Whether answered writes wait in the carried transaction for a
    /// reader (or the next batch) to publish them (see [`publish`]).
    #[cfg(test)]
    pub fn holds_unpublished(&self) -> bool {
        self.shared.unpublished.load(Ordering::Acquire)
    }

    /// Wait for the commit under way, if any (its answers may come before
    /// it publishes: `Job::publish_after`).
    #[cfg(test)]
    pub fn settle(&self) {
        drop(self.shared.lock_commits());
    }

    /// What the journal has done since the store opened (None: read-only).
    #[cfg(test)]
    pub fn journal_stats(&self) -> Option<journal::JournalStats> {
        match self.handle().ok()?.as_ref() {
            Handle::Rw(_, j) => Some(j.stats()),
            _ => None,
        }
    }
}

// The CA, certificate, CRL, policy and key methods' bodies are inherent
// methods of the same names in `cas`, `certs`, `crl`, `policies` and `keys`;
// inherent methods come first in method lookup, so `self.name(..)` below
// calls that body, not this method again. (Were one missing, the call would
// be to this method itself: rustc's `unconditional_recursion` lint says so,
// an error under the suite's `clippy -D warnings`.)
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
        self.get_ca(id)
    }

    fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError> {
        self.list_cas()
    }

    fn create_ca(&self, new: NewCaRecord, audit: AuditDraft) -> StoreFuture<'_, CaRecord> {
        self.create_ca(new, audit)
    }

    fn update_ca(
        &self,
        id: &str,
        change: CaChange,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CaRecord> {
        self.update_ca(id, change, audit)
    }

    fn get_alias(&self, alias: &str) -> Result<Option<String>, StoreError> {
        self.get_alias(alias)
    }

    fn list_aliases(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.list_aliases()
    }

    fn put_alias(&self, alias: &str, ca_id: &str, audit: AuditDraft) -> StoreFuture<'_, ()> {
        self.put_alias(alias, ca_id, audit)
    }

    fn rotate_alias(
        &self,
        alias: &str,
        old_id: &str,
        new: NewCaRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CaRecord> {
        self.rotate_alias(alias, old_id, new, audit)
    }

    fn reserve(
        &self,
        intent: CertRecord,
        token: Option<(String, IdemRecord)>,
        in_flight: Arc<InFlightTokens>,
    ) -> StoreFuture<'_, ReserveOutcome> {
        self.reserve(intent, token, in_flight)
    }

    fn issue(
        &self,
        rec: CertRecord,
        der: Vec<u8>,
        key_sha256: String,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        self.issue(rec, der, key_sha256, audit)
    }

    fn revoke(
        &self,
        ca_id: &str,
        serial: &str,
        revocation: Revocation,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CertRecord> {
        self.revoke(ca_id, serial, revocation, audit)
    }

    fn import_certs(
        &self,
        certs: Vec<(CertRecord, Vec<u8>)>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, u64> {
        self.import_certs(certs, audit)
    }

    fn get_cert(&self, ca_id: &str, serial: &str) -> Result<Option<CertWithDer>, StoreError> {
        self.get_cert(ca_id, serial)
    }

    fn ca_of_serial(&self, serial: &str) -> Result<Option<String>, StoreError> {
        self.ca_of_serial(serial)
    }

    fn blocked_key(&self, key_sha256: &str) -> Result<Option<BlockedKey>, StoreError> {
        self.blocked_key(key_sha256)
    }

    fn serial_status(&self, ca_id: &str, serial: &str) -> Result<SerialStatus, StoreError> {
        self.serial_status(ca_id, serial)
    }

    fn count_certs(&self) -> Result<u64, StoreError> {
        self.count_certs()
    }

    fn snapshot(
        &self,
        out: &Path,
        files: &[(String, Vec<u8>)],
    ) -> Result<super::SnapshotCounts, StoreError> {
        backup::snapshot(self.handle()?.as_ref(), out, files)
    }

    fn count_expiring(&self, from: i64, before: i64) -> Result<u64, StoreError> {
        self.count_expiring(from, before)
    }

    fn list_certs(
        &self,
        filter: &CertFilter,
        wanted: &dyn Fn(&CertRecord) -> bool,
    ) -> Result<(Vec<CertRecord>, Option<String>), StoreError> {
        self.list_certs(filter, wanted)
    }

    fn crl_entries(
        &self,
        ca_id: &str,
        expired_before: Option<i64>,
    ) -> Result<CrlEntries, StoreError> {
        self.crl_entries(ca_id, expired_before)
    }

    fn crl_meta(&self, ca_id: &str) -> Result<Option<CrlMeta>, StoreError> {
        self.crl_meta(ca_id)
    }

    fn put_crl_meta(
        &self,
        ca_id: &str,
        meta: CrlMeta,
        der: Vec<u8>,
        prune: Vec<String>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        self.put_crl_meta(ca_id, meta, der, prune, audit)
    }

    fn crl_der(&self, ca_id: &str, number: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.crl_der(ca_id, number)
    }

    fn complete_crl_entries(&self) -> StoreFuture<'_, u64> {
        self.complete_crl_entries()
    }

    fn list_policies(&self) -> Result<Option<PolicyRows>, StoreError> {
        self.list_policies()
    }

    fn put_policy(&self, id: &str, json: Vec<u8>, audit: AuditDraft) -> StoreFuture<'_, ()> {
        self.put_policy(id, json, audit)
    }

    fn delete_policy(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool> {
        self.delete_policy(id, audit)
    }

    fn key_meta(&self) -> Result<KeyMeta, StoreError> {
        self.key_meta()
    }

    fn set_key_meta(&self, meta: &KeyMeta, audit: AuditDraft) -> Result<(), StoreError> {
        self.set_key_meta(meta, audit)
    }

    fn sealed_key(&self, ca_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.sealed_key(ca_id)
    }

    fn sealed_key_ids(&self) -> Result<Vec<String>, StoreError> {
        self.sealed_key_ids()
    }

    fn import_sealed_keys(
        &self,
        keys: &[(String, Vec<u8>)],
        audit: AuditDraft,
    ) -> Result<usize, StoreError> {
        self.import_sealed_keys(keys, audit)
    }

    fn rewrap_keys(
        &self,
        rewrap: Rewrap<'_>,
        meta: &KeyMeta,
        audit: AuditDraft,
    ) -> Result<usize, StoreError> {
        self.rewrap_keys(rewrap, meta, audit)
    }

    fn append_audit(&self, audit: AuditDraft) -> StoreFuture<'_, AuditEntry> {
        // Durable by a redo record, as an issuance is: an audited read or
        // refusal costs a small journal record and its sync, not one of
        // redb's durable commits, and rides in a batch of issuances without
        // making it commit.
        Box::pin(self.write_redo(None, redo::Redo::Audit(audit)))
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
        Box::pin(self.write_quick_repair(move |txn| {
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
        Box::pin(self.write_quick_repair(move |txn| {
            let last = events::append_events(txn, events, &mark, prune_before)?;
            Ok((last, Vec::new()))
        }))
    }

    fn append_projected_events(
        &self,
        events: Vec<EventRecord>,
        mark: MarkAdvance,
    ) -> StoreFuture<'_, u64> {
        // Committed without a sync of its own (a projection every 0.1 s
        // under load made a durable commit each: ~5% of the rate).
        Box::pin(self.write_unsynced(move |txn| {
            let last = events::append_events(txn, events, &mark, None)?;
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
        Box::pin(self.write_quick_repair(move |txn| {
            events::webhook_delivered(txn, &id, seq)?;
            Ok(((), Vec::new()))
        }))
    }
}
