//! The PostgreSQL backend: several ca-server nodes on one database.
//!
//! - **One order of writes for all nodes.** Every write transaction first
//!   locks the audit head row, so writes are serialised across nodes as the
//!   redb writer serialises them in one process. Each check sees every earlier
//!   commit whichever node made it, and the audit trail stays one hash chain.
//!   Serial uniqueness is also a primary key.
//! - **Effects reach every node.** A write that changes what other nodes cache
//!   (a revocation, a CA, an alias, a policy) sends a `NOTIFY` in its own
//!   transaction; each node LISTENs and tells its commit hooks, as it does for
//!   its own commits.
//! - **Node liveness.** Each node holds a session advisory lock named by its
//!   boot id on its listening connection, so another node can tell an intent
//!   whose node is still running from one whose node died.
//! - **Blocking reads on their own threads.** The trait's reads are
//!   synchronous; they run on the store's own small runtime, which owns the
//!   connection pool, and the caller waits for the answer.
//!
//! - **Group commit.** One writer per node ([`writer`]) takes the writes
//!   queued meanwhile into one transaction, each in a savepoint.
//!
//! The schema is in [`schema`]; records keep the redb backend's JSON. The
//! listening connection is in [`listener`], TLS in [`tls`], the write and
//! read statements in `ops` and `reads`, `ca-server migrate` in `import`.
//! Opening the store and the bridges to its runtime are in `plumbing`, the
//! error and encoding helpers in `errors`, and the bodies of the [`Store`]
//! methods, area by area, in `cas`, `certs`, `crl`, `policies`, `keys`,
//! `events`, `acme` and `audit`.

mod acme;
mod audit;
mod cas;
mod certs;
mod check;
mod crl;
mod errors;
mod events;
mod import;
mod keys;
mod listener;
mod ops;
mod plumbing;
mod policies;
mod reads;
pub mod schema;
#[cfg(any(test, feature = "forensics"))]
pub mod testdb;
mod tls;
mod writer;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ca_core::audit_digest::AuditDigest;
use deadpool_postgres::Pool;

use self::errors::pool_err;
pub use self::errors::{json, pg_err, status_code, unjson};
pub use self::listener::LISTENER_NAME;
pub use self::tls::PgTls;
use self::writer::WriteJob;
use super::ca_cache::CaCache;
use super::{
    AcmeAccount, AcmeAuthz, AcmeEabKey, AcmeOrder, AuditDraft, AuditEntry, AuditFilter, BlockedKey,
    CaChange, CaRecord, CertFilter, CertRecord, CertWithDer, CommitHook, CommitObserver, Committed,
    CrlEntries, CrlMeta, EventRecord, IdemRecord, InFlightTokens, KeyMeta, MarkAdvance,
    NewCaRecord, PolicyRows, ReserveOutcome, Revocation, Rewrap, SerialStatus, Store, StoreError,
    StoreFuture, StoreStats, Verdict, WebhookRecord,
};

type R<T> = Result<T, StoreError>;
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The channel every node LISTENs on.
const CHANNEL: &str = "ca_store";
/// Advisory lock namespace for node liveness (the second key is the boot id's hash).
const LIVENESS_NS: i32 = 0x6361_6c76; // "calv"
/// The delivery role's advisory lock (held by the leading node's listener).
const LEADER_LOCK: (i32, i32) = (0x6361_6c64, 1); // "cald"
/// An intent of another live node younger than this is taken as still signing.
const FOREIGN_INTENT_GRACE_SECS: i64 = 120;
/// Most rows one certificate page scans before returning a cursor.
const MAX_SCAN: usize = 20_000;

/// How to reach the database.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/db` (or a key=value string).
    pub url: String,
    pub pool_size: usize,
    /// How long start-up keeps retrying an unreachable database.
    pub connect_wait: Duration,
    /// TLS to the database; without it, connections are plaintext.
    pub tls: Option<PgTls>,
}

struct Inner {
    pool: Pool,
    boot_id: String,
    commits: AtomicU64,
    writes: AtomicU64,
    writable: AtomicBool,
    closed: AtomicBool,
    hooks: RwLock<Vec<CommitHook>>,
    observers: RwLock<Vec<CommitObserver>>,
    /// CAs and aliases, kept until a commit (this node's, or another's by
    /// notification) changes them, so a node is as fresh as its notifications.
    cache: CaCache,
    /// Whether this node's listening session holds the delivery role.
    leads: AtomicBool,
    /// `synchronous_commit` as the last batch's transaction had it.
    #[cfg(test)]
    last_synchronous_commit: std::sync::Mutex<Option<String>>,
}

impl Inner {
    fn invalidate(&self, events: &[Committed]) {
        self.cache.invalidate(events);
    }

    fn tell(&self, events: &[Committed]) {
        if events.is_empty() {
            return;
        }
        self.invalidate(events);
        let hooks = self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone();
        for e in events {
            for h in &hooks {
                h(e);
            }
        }
    }

    fn note(&self, r: &Result<(), &StoreError>) {
        match r {
            Ok(()) => self.writable.store(true, Ordering::Release),
            Err(StoreError::Unavailable(_)) => self.writable.store(false, Ordering::Release),
            Err(_) => {}
        }
    }
}

pub struct PgStore {
    inner: Arc<Inner>,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    /// The queue of the node's writer (group commit).
    jobs: tokio::sync::mpsc::UnboundedSender<Box<dyn WriteJob>>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.close();
    }
}

// Each area's bodies are inherent methods of the same names in the area's
// file; inherent methods come first in method lookup, so `self.name(..)`
// below calls that body, not this method again. (Were one missing, the call
// would be to this method itself: rustc's `unconditional_recursion` lint
// says so, an error under the suite's `clippy -D warnings`.)
impl Store for PgStore {
    fn boot_id(&self) -> &str {
        &self.inner.boot_id
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.inner.commits.load(Ordering::Relaxed),
            writes: self.inner.writes.load(Ordering::Relaxed),
            writable: self.inner.writable.load(Ordering::Acquire)
                && !self.inner.closed.load(Ordering::Acquire),
        }
    }

    fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.pool.close();
        let rt = self.runtime.lock().ok().and_then(|mut r| r.take());
        if let Some(rt) = rt {
            rt.shutdown_background();
        }
    }

    fn subscribe(&self, hook: CommitHook) {
        self.inner
            .hooks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    fn observe_commits(&self, hook: CommitObserver) {
        self.inner
            .observers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }

    fn get_ca(&self, id: &str) -> R<Option<CaRecord>> {
        self.get_ca(id)
    }

    fn list_cas(&self) -> R<Vec<CaRecord>> {
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

    fn get_alias(&self, alias: &str) -> R<Option<String>> {
        self.get_alias(alias)
    }

    fn list_aliases(&self) -> R<Vec<(String, String)>> {
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

    fn get_cert(&self, ca_id: &str, serial: &str) -> R<Option<CertWithDer>> {
        self.get_cert(ca_id, serial)
    }

    fn ca_of_serial(&self, serial: &str) -> R<Option<String>> {
        self.ca_of_serial(serial)
    }

    fn blocked_key(&self, key_sha256: &str) -> R<Option<BlockedKey>> {
        self.blocked_key(key_sha256)
    }

    fn serial_status(&self, ca_id: &str, serial: &str) -> R<SerialStatus> {
        self.serial_status(ca_id, serial)
    }

    fn count_certs(&self) -> R<u64> {
        self.count_certs()
    }

    fn snapshot(
        &self,
        _out: &std::path::Path,
        _files: &[(String, Vec<u8>)],
    ) -> R<super::SnapshotCounts> {
        Err(StoreError::Conflict(
            "a PostgreSQL store is backed up by PostgreSQL (pg_dump, or base backups with WAL archiving); see OPERATIONS.md".into(),
        ))
    }

    fn count_expiring(&self, from: i64, before: i64) -> R<u64> {
        self.count_expiring(from, before)
    }

    fn list_certs(
        &self,
        f: &CertFilter,
        wanted: &dyn Fn(&CertRecord) -> bool,
    ) -> R<(Vec<CertRecord>, Option<String>)> {
        self.list_certs(f, wanted)
    }

    fn crl_entries(&self, ca_id: &str, expired_before: Option<i64>) -> R<CrlEntries> {
        self.crl_entries(ca_id, expired_before)
    }

    fn crl_meta(&self, ca_id: &str) -> R<Option<CrlMeta>> {
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

    fn crl_der(&self, ca_id: &str, number: u64) -> R<Option<Vec<u8>>> {
        self.crl_der(ca_id, number)
    }

    fn complete_crl_entries(&self) -> StoreFuture<'_, u64> {
        self.complete_crl_entries()
    }

    fn list_policies(&self) -> R<Option<PolicyRows>> {
        self.list_policies()
    }

    fn put_policy(&self, id: &str, json: Vec<u8>, audit: AuditDraft) -> StoreFuture<'_, ()> {
        self.put_policy(id, json, audit)
    }

    fn delete_policy(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool> {
        self.delete_policy(id, audit)
    }

    fn key_meta(&self) -> R<KeyMeta> {
        self.key_meta()
    }

    fn set_key_meta(&self, meta: &KeyMeta, audit: AuditDraft) -> R<()> {
        self.set_key_meta(meta, audit)
    }

    fn sealed_key(&self, ca_id: &str) -> R<Option<Vec<u8>>> {
        self.sealed_key(ca_id)
    }

    fn sealed_key_ids(&self) -> R<Vec<String>> {
        self.sealed_key_ids()
    }

    fn import_sealed_keys(&self, keys: &[(String, Vec<u8>)], audit: AuditDraft) -> R<usize> {
        self.import_sealed_keys(keys, audit)
    }

    fn rewrap_keys(&self, rewrap: Rewrap<'_>, meta: &KeyMeta, audit: AuditDraft) -> R<usize> {
        self.rewrap_keys(rewrap, meta, audit)
    }

    fn append_events(
        &self,
        events: Vec<EventRecord>,
        mark: MarkAdvance,
        prune_before: Option<i64>,
    ) -> StoreFuture<'_, u64> {
        self.append_events(events, mark, prune_before)
    }

    fn append_projected_events(
        &self,
        events: Vec<EventRecord>,
        mark: MarkAdvance,
    ) -> StoreFuture<'_, u64> {
        self.append_projected_events(events, mark)
    }

    fn event_mark(&self, name: &str) -> R<Option<u64>> {
        self.event_mark(name)
    }

    fn events_after(&self, after: u64, limit: usize) -> R<Vec<EventRecord>> {
        self.events_after(after, limit)
    }

    fn expiring_certs(&self, from: i64, before: i64, limit: usize) -> R<Vec<CertRecord>> {
        self.expiring_certs(from, before, limit)
    }

    fn visit_live_certs(&self, from: i64, visit: &mut dyn FnMut(&CertRecord)) -> R<()> {
        self.visit_live_certs(from, visit)
    }

    fn list_webhooks(&self) -> R<Vec<WebhookRecord>> {
        self.list_webhooks()
    }

    fn create_webhook(
        &self,
        hook: WebhookRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, WebhookRecord> {
        self.create_webhook(hook, audit)
    }

    fn delete_webhook(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool> {
        self.delete_webhook(id, audit)
    }

    fn webhook_delivered(&self, id: &str, seq: u64) -> StoreFuture<'_, ()> {
        self.webhook_delivered(id, seq)
    }

    fn acme_account(&self, id: &str) -> R<Option<AcmeAccount>> {
        self.acme_account(id)
    }

    fn acme_account_by_key(&self, thumbprint: &str) -> R<Option<AcmeAccount>> {
        self.acme_account_by_key(thumbprint)
    }

    fn acme_create_account(&self, account: AcmeAccount, audit: AuditDraft) -> StoreFuture<'_, ()> {
        self.acme_create_account(account, audit)
    }

    fn acme_accounts(&self) -> R<Vec<AcmeAccount>> {
        self.acme_accounts()
    }

    fn acme_orders_of(&self, account: &str) -> R<Vec<AcmeOrder>> {
        self.acme_orders_of(account)
    }

    fn acme_eab_key(&self, kid: &str) -> R<Option<AcmeEabKey>> {
        self.acme_eab_key(kid)
    }

    fn acme_eab_keys(&self) -> R<Vec<AcmeEabKey>> {
        self.acme_eab_keys()
    }

    fn acme_put_eab_key(
        &self,
        key: AcmeEabKey,
        new: bool,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        self.acme_put_eab_key(key, new, audit)
    }

    fn acme_update_account(
        &self,
        account: AcmeAccount,
        expected_thumbprint: String,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        self.acme_update_account(account, expected_thumbprint, audit)
    }

    fn acme_order(&self, id: &str) -> R<Option<AcmeOrder>> {
        self.acme_order(id)
    }

    fn acme_authz(&self, id: &str) -> R<Option<AcmeAuthz>> {
        self.acme_authz(id)
    }

    fn acme_put(
        &self,
        order: Option<AcmeOrder>,
        authzs: Vec<AcmeAuthz>,
        audit: Option<AuditDraft>,
    ) -> StoreFuture<'_, ()> {
        self.acme_put(order, authzs, audit)
    }

    fn append_audit(&self, audit: AuditDraft) -> StoreFuture<'_, AuditEntry> {
        self.append_audit(audit)
    }

    fn audit_page(&self, filter: &AuditFilter) -> R<(Vec<AuditEntry>, Option<u64>)> {
        self.audit_page(filter)
    }

    fn verify_audit(&self, pinned_digest_key: Option<&[u8]>) -> R<Verdict> {
        self.verify_audit(pinned_digest_key)
    }

    fn audit_head(&self) -> R<(u64, String)> {
        self.audit_head()
    }

    fn append_audit_digest(&self, digest: AuditDigest) -> StoreFuture<'_, ()> {
        self.append_audit_digest(digest)
    }

    fn audit_digests(&self, after: u64, limit: usize) -> R<Vec<AuditDigest>> {
        self.audit_digests(after, limit)
    }

    fn is_leader(&self) -> bool {
        self.inner.leads.load(Ordering::Acquire)
    }

    fn last_audit_digest(&self) -> R<Option<AuditDigest>> {
        self.last_audit_digest()
    }
}
