//! The storage authority: the only code that knows how the CA's records are
//! kept. Everything else speaks to it in the CA's own operations (reserve a
//! serial, issue, revoke, create a CA, set an alias, put a policy, seal keys,
//! append to the audit trail, page through certificates) through the
//! [`Store`] trait; [`redb`](self::redb) is the embedded backend.
//!
//! Two promises every backend keeps:
//! - **An action and its audit entry commit together.** Every operation that
//!   changes state takes the [`AuditDraft`] of the call that caused it and
//!   appends the entry in the same transaction, so neither can exist without
//!   the other, whatever crashes or hangs up.
//! - **Effects follow commits, not requests.** After a commit is durable the
//!   backend tells every [`CommitHook`] what it changed ([`Committed`]), on its
//!   own thread, before the caller is answered and whether or not the caller
//!   is still there.
//!
//! Reads are synchronous point lookups and short range scans; writes are
//! futures resolved once durable. A write that fails for lack of space or an
//! I/O error is [`StoreError::Unavailable`] (503), and the backend recovers by
//! itself once the cause is gone.
//!
//! # Schema (redb backend)
//!
//! | table         | key                             | value                                   |
//! |---------------|---------------------------------|-----------------------------------------|
//! | `meta`        | name                            | u64: `schema_version`, `crl_entries_complete` |
//! | `cas`         | CA id                           | [`CaRecord`] JSON                       |
//! | `certs`       | `ca-id/serial`                  | [`CertRecord`], binary¹ (no DER; names its `cert_der_seq`) |
//! | `cert_der_seq`| commit-order number (u64)       | certificate DER (schema 2)              |
//! | `cert_der`    | `ca-id/serial`                  | certificate DER (schema 1 records)      |
//! | `serials`     | serial (hex)                    | CA id (global lookup, reuse guard)      |
//! | `expiry`      | (notAfter unix, `ca-id/serial`) | ()                                      |
//! | `revocations` | `ca-id/serial`                  | [`Revocation`] JSON                     |
//! | `idempotency` | caller fingerprint/token        | [`IdemRecord`] JSON                     |
//! | `crl_entries` | `ca-id/serial`                  | DER revokedCertificates entry           |
//! | `crl_meta`    | CA id                           | [`CrlMeta`] JSON                        |
//! | `aliases`     | alias                           | CA id                                   |
//! | `policies`    | statement id                    | policy statement JSON                   |
//! | `ca_keys`     | CA id                           | sealed CA key (envelope, see `vault`)   |
//! | `key_meta`    | `check_value`, `kdf`            | master-key check value, Argon2id params |
//! | `audit`       | sequence (u64)                  | audit entry, binary¹ (hash-chained over its JSON) |
//! | `audit_head`  | `head`                          | JSON (last sequence, last hash)         |
//! | `blocked_keys`| SPKI SHA-256 (hex)              | [`BlockedKey`] JSON (keyCompromise)     |
//! | `events`      | sequence (u64)                  | [`EventRecord`], binary¹ (the outbox)   |
//! | `event_marks` | name                            | u64: `next_seq`, `audit`, `expiry_scan` |
//! | `webhooks`    | webhook id                      | [`WebhookRecord`] JSON                  |
//! | `acme_accounts` | account id                    | [`AcmeAccount`] JSON                    |
//! | `acme_account_keys` | JWK thumbprint            | account id                              |
//! | `acme_orders` | order id                        | [`AcmeOrder`] JSON                      |
//! | `acme_authzs` | authorization id                | [`AcmeAuthz`] JSON                      |
//! | `acme_eab_keys` | EAB key id                    | [`AcmeEabKey`] JSON                     |
//!
//! ¹ Schema 2: the compact encoding of `redb/codec.rs` (about a third of
//! the JSON); schema 1 stored JSON, which is still read. The three records
//! written per issuance are the binary ones; the rest stay JSON.
//!
//! `crl_entries` is written in the revocation's own transaction, so a CRL is
//! one range scan of that CA's pre-encoded entries. The signed CRL itself is
//! a file the revocation service writes before committing its `crl_meta`.

mod ca_cache;
pub mod check;
pub mod migrate;
pub mod postgres;
mod records;
pub mod redb;

/// What each table of a stopped server's store holds (its entries and bytes),
/// for the benches and operators; the embedded store is the one with tables.
pub use self::redb::{store_usage as usage, StoreUsage, TableUsage};
mod trail_check;

#[cfg(test)]
mod conformance;

/// Faults to inject under the embedded store's journal, for tests (outside
/// the store) of what a commit reported failed may leave behind.
#[cfg(test)]
pub mod faults {
    pub use super::redb::journal::fault::{Fault, Registered};

    /// Open the journal of the embedded store in `dir` faulty from now on.
    pub fn register(dir: &std::path::Path) -> Registered {
        super::redb::journal::fault::register(&dir.join(super::redb::DB_FILE))
    }
}

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use ca_core::audit_chain::AuditEntry;
pub use ca_core::audit_digest::AuditDigest;
pub use records::*;

/// The store's file in the data directory, as operators see it.
pub const STORE_FILE: &str = redb::DB_FILE;

/// The event mark holding the next event's sequence number (so the newest
/// event is this minus one); producers cannot move it.
pub const NEXT_EVENT_SEQ: &str = "next_seq";

/// The PostgreSQL schema this binary writes (its number of migrations); a
/// newer one is refused at open. redb has its own (`redb::SCHEMA_VERSION`).
pub const SCHEMA_VERSION: u64 = 1;

/// A write: resolved once its commit is durable (or failed).
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A change to a CA record, checked and applied inside the transaction.
pub type CaChange = Box<dyn FnOnce(&mut CaRecord) -> Result<(), StoreError> + Send>;

/// Re-seal one CA key: (CA id, sealed bytes) → new sealed bytes.
pub type Rewrap<'a> = &'a mut dyn FnMut(&str, &[u8]) -> Result<Vec<u8>, String>;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// A fault of the database that is not the caller's and not transient.
    #[error("database: {0}")]
    Db(String),
    /// The store cannot write now (disk full, I/O error); it recovers by itself.
    #[error("the store cannot write now: {0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("serial number already taken")]
    SerialTaken,
    /// The certificate's key was blocked (a revocation for keyCompromise)
    /// before the certificate could be stored: nothing was written.
    #[error(
        "this public key was reported compromised (certificate {} of {} was revoked for KEY_COMPROMISE); make a new key",
        .0.serial, .0.ca_id
    )]
    KeyBlocked(BlockedKey),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("the database schema version {found} is newer than this server supports ({supported}); run a newer ca-server")]
    NewerSchema { found: u64, supported: u64 },
    #[error("the store is closed")]
    Closed,
    #[error("the store was opened read-only")]
    ReadOnly,
    #[error("a write panicked; nothing in its batch was committed")]
    Panicked,
}

impl StoreError {
    /// Whether the error spoils the whole transaction it happened in (as
    /// opposed to a refusal checked before anything was written).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            StoreError::Db(_)
                | StoreError::Unavailable(_)
                | StoreError::Corrupt(_)
                | StoreError::Panicked
        )
    }
}

/// The counters a backend keeps for health and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Successful group commits (redb: a batch, made durable by one synced
    /// redo record or one durable commit, unless it wrote nothing;
    /// PostgreSQL: a transaction), failed ones not counted; `writes` the
    /// calls they carried (redb counts calls refused inside a batch too).
    pub commits: u64,
    pub writes: u64,
    /// False while writes fail for lack of space or an I/O error.
    pub writable: bool,
}

/// The storage authority. Reads take `&self` and return at once; writes are
/// futures that resolve once their commit is durable. Every state-changing
/// write takes the audit entry of the call that caused it.
pub trait Store: Send + Sync {
    /// Which process is running (orphaned intents are recognised by it).
    fn boot_id(&self) -> &str;
    fn stats(&self) -> StoreStats;
    /// Stop taking writes, finish what is queued and release the store.
    fn close(&self);
    /// Register a hook told of every durable commit.
    fn subscribe(&self, hook: CommitHook);
    /// Register a hook told how long each commit took and how many writes
    /// it carried (for metrics). It runs inside the commit: it must not
    /// read the store (redb's reads may wait for that commit to publish).
    fn observe_commits(&self, hook: CommitObserver);

    // ---- CAs and aliases ---------------------------------------------------

    fn get_ca(&self, id: &str) -> Result<Option<CaRecord>, StoreError>;
    fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError>;
    /// A new CA with its sealed key (and certificate), refused if the id exists.
    fn create_ca(&self, new: NewCaRecord, audit: AuditDraft) -> StoreFuture<'_, CaRecord>;
    /// Change a CA under a check of its current state; returns the new record.
    fn update_ca(&self, id: &str, change: CaChange, audit: AuditDraft)
        -> StoreFuture<'_, CaRecord>;
    fn get_alias(&self, alias: &str) -> Result<Option<String>, StoreError>;
    fn list_aliases(&self) -> Result<Vec<(String, String)>, StoreError>;
    fn put_alias(&self, alias: &str, ca_id: &str, audit: AuditDraft) -> StoreFuture<'_, ()>;
    /// Rotation in one commit: create `new`, retire `old_id` and repoint
    /// `alias`, refused if the alias no longer points at `old_id`.
    /// Returns the retired record.
    fn rotate_alias(
        &self,
        alias: &str,
        old_id: &str,
        new: NewCaRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CaRecord>;

    // ---- certificates ------------------------------------------------------

    /// Record the intent to sign: reserve the serial (never reused) and the
    /// to-be-signed digest, and bind the idempotency token to it.
    /// `in_flight` says which tokens other requests of this process hold.
    fn reserve(
        &self,
        intent: CertRecord,
        token: Option<(String, IdemRecord)>,
        in_flight: Arc<InFlightTokens>,
    ) -> StoreFuture<'_, ReserveOutcome>;
    /// Store a signed certificate with its audit entry: over its intent
    /// ([`Store::reserve`]), or with no intent, claiming its serial in the
    /// same commit (SerialTaken if the serial is not free). Refused with
    /// KeyBlocked, writing nothing, if `key_sha256` (the SHA-256 of the
    /// certificate's SubjectPublicKeyInfo) is blocked by then: a
    /// keyCompromise revocation that committed after the caller last asked
    /// [`Store::blocked_key`] still stops the certificate.
    fn issue(
        &self,
        rec: CertRecord,
        der: Vec<u8>,
        key_sha256: String,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()>;
    /// Mark a certificate revoked and keep its CRL entry beside it. Unknown or
    /// unissued serials are NotFound. Revoking again with the same reason
    /// returns the record as it was (and still records the call); a reason may
    /// be raised to keyCompromise (the revocation date stays); any other change
    /// of reason is a Conflict. A keyCompromise revocation carrying the key's
    /// hash blocks that key ([`Store::blocked_key`]) in the same transaction.
    fn revoke(
        &self,
        ca_id: &str,
        serial: &str,
        revocation: Revocation,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CertRecord>;
    /// Bulk import of issued (or revoked) certificates made elsewhere: a
    /// migration, or a benchmark's seed. Refused whole if a serial is taken.
    fn import_certs(
        &self,
        certs: Vec<(CertRecord, Vec<u8>)>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, u64>;
    fn get_cert(&self, ca_id: &str, serial: &str) -> Result<Option<CertWithDer>, StoreError>;
    /// Which CA issued `serial` (serials are unique across the store).
    fn ca_of_serial(&self, serial: &str) -> Result<Option<String>, StoreError>;
    /// Whether a public key (SHA-256 of its SPKI, hex) was revoked for
    /// keyCompromise, and by which certificate.
    fn blocked_key(&self, key_sha256: &str) -> Result<Option<BlockedKey>, StoreError>;
    fn serial_status(&self, ca_id: &str, serial: &str) -> Result<SerialStatus, StoreError>;
    fn count_certs(&self) -> Result<u64, StoreError>;
    /// Write a consistent snapshot of the whole store (as of one commit) to
    /// `out`, a new file, carrying `files` (data directory files by relative
    /// path) beside the tables. Blocking: run it off the async threads.
    fn snapshot(
        &self,
        out: &std::path::Path,
        files: &[(String, Vec<u8>)],
    ) -> Result<SnapshotCounts, StoreError>;
    /// Issued, unrevoked certificates whose notAfter is in `[from, before)`.
    fn count_expiring(&self, from: i64, before: i64) -> Result<u64, StoreError>;
    /// One page of certificates and the cursor of the next page, if any.
    fn list_certs(
        &self,
        filter: &CertFilter,
        wanted: &dyn Fn(&CertRecord) -> bool,
    ) -> Result<(Vec<CertRecord>, Option<String>), StoreError>;

    // ---- CRLs --------------------------------------------------------------

    /// Every pre-encoded CRL entry of a CA, concatenated, and their count,
    /// leaving out (and naming) those whose certificate expired, and which
    /// were revoked, before `expired_before` (when given).
    fn crl_entries(
        &self,
        ca_id: &str,
        expired_before: Option<i64>,
    ) -> Result<CrlEntries, StoreError>;
    fn crl_meta(&self, ca_id: &str) -> Result<Option<CrlMeta>, StoreError>;
    /// Publish CRL `meta.crl_number` of `ca_id` (its DER is `der`), with the
    /// audit entry of that signing. Refused (Conflict, nothing written) unless
    /// its number is above the last published one, so CRL numbers strictly
    /// increase however many nodes sign. `prune` names CRL entries that left
    /// the CRL (expired): they are deleted in the same commit.
    fn put_crl_meta(
        &self,
        ca_id: &str,
        meta: CrlMeta,
        der: Vec<u8>,
        prune: Vec<String>,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()>;
    /// The DER of a published CRL, where the backend keeps it (PostgreSQL,
    /// for every node); None where it is a file in the data directory (redb).
    fn crl_der(&self, ca_id: &str, number: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Give every revocation recorded before `crl_entries` existed its entry
    /// (once per store); returns how many it added.
    fn complete_crl_entries(&self) -> StoreFuture<'_, u64>;

    // ---- policies ----------------------------------------------------------

    /// Every stored statement (id, JSON), or None if the store has never had
    /// a policy set (a data directory from before policies).
    fn list_policies(&self) -> Result<Option<PolicyRows>, StoreError>;
    fn put_policy(&self, id: &str, json: Vec<u8>, audit: AuditDraft) -> StoreFuture<'_, ()>;
    /// Whether the statement existed (the call is recorded either way).
    fn delete_policy(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool>;

    // ---- keys (start-up and offline operations: synchronous) ---------------

    fn key_meta(&self) -> Result<KeyMeta, StoreError>;
    /// Record the master key's check value (first use), with its audit entry.
    fn set_key_meta(&self, meta: &KeyMeta, audit: AuditDraft) -> Result<(), StoreError>;
    fn sealed_key(&self, ca_id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn sealed_key_ids(&self) -> Result<Vec<String>, StoreError>;
    /// Keep sealed keys of CAs that have none yet (a migration); returns how many.
    fn import_sealed_keys(
        &self,
        keys: &[(String, Vec<u8>)],
        audit: AuditDraft,
    ) -> Result<usize, StoreError>;
    /// Re-seal every CA key and record the new master key in one transaction.
    fn rewrap_keys(
        &self,
        rewrap: Rewrap<'_>,
        meta: &KeyMeta,
        audit: AuditDraft,
    ) -> Result<usize, StoreError>;

    // ---- events and webhooks ----------------------------------------------

    /// Append `events` (numbered by the store, in order) and move `mark` in
    /// the same commit (Conflict, nothing written, if the mark moved), and
    /// drop events older than `prune_before` (Unix seconds). Returns the
    /// sequence number of the last event appended (0 when none).
    fn append_events(
        &self,
        events: Vec<EventRecord>,
        mark: MarkAdvance,
        prune_before: Option<i64>,
    ) -> StoreFuture<'_, u64>;
    /// [`append_events`](Self::append_events) (no pruning) for events
    /// projected from the audit trail, each id derived from its entry: the
    /// store may answer before they are durable. A crash that takes them
    /// takes the mark that moved with them (and nothing after it: a later
    /// durable commit holds them), so the projector makes the very same
    /// events again, numbers and ids included. By default as durable as any
    /// other write (redb: committed unsynced; PostgreSQL: a batch of these
    /// alone commits with `synchronous_commit` off).
    fn append_projected_events(
        &self,
        events: Vec<EventRecord>,
        mark: MarkAdvance,
    ) -> StoreFuture<'_, u64> {
        self.append_events(events, mark, None)
    }
    fn event_mark(&self, name: &str) -> Result<Option<u64>, StoreError>;
    /// Events numbered after `after`, oldest first, at most `limit`.
    fn events_after(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError>;
    /// Issued, unrevoked certificates whose notAfter is in `[from, before)`,
    /// at most `limit`, soonest first.
    fn expiring_certs(
        &self,
        from: i64,
        before: i64,
        limit: usize,
    ) -> Result<Vec<CertRecord>, StoreError>;
    /// Call `visit` with every issued, unrevoked certificate whose notAfter is
    /// at or after `from` (renewal checks). Blocking: off the async threads.
    fn visit_live_certs(
        &self,
        from: i64,
        visit: &mut dyn FnMut(&CertRecord),
    ) -> Result<(), StoreError>;
    fn list_webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError>;
    /// A new webhook (Conflict if the id exists); its `delivered_seq` is set
    /// to the newest event. Returns the stored record.
    fn create_webhook(
        &self,
        hook: WebhookRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, WebhookRecord>;
    /// Whether the webhook existed (the call is recorded either way).
    fn delete_webhook(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool>;
    /// Record delivery up to `seq` (never moves back); NotFound once deleted.
    fn webhook_delivered(&self, id: &str, seq: u64) -> StoreFuture<'_, ()>;

    // ---- ACME ----------------------------------------------------------------

    fn acme_account(&self, id: &str) -> Result<Option<AcmeAccount>, StoreError>;
    fn acme_account_by_key(&self, thumbprint: &str) -> Result<Option<AcmeAccount>, StoreError>;
    /// A new account, refused (Conflict naming the existing account's id) if
    /// its key already has one. With `account.eab_kid`, that key is bound to
    /// it in the same commit, refused (Conflict starting `eab:`) if the key
    /// is unknown, revoked or bound already.
    fn acme_create_account(&self, account: AcmeAccount, audit: AuditDraft) -> StoreFuture<'_, ()>;
    fn acme_accounts(&self) -> Result<Vec<AcmeAccount>, StoreError>;
    /// The orders of an account, oldest first.
    fn acme_orders_of(&self, account: &str) -> Result<Vec<AcmeOrder>, StoreError>;
    fn acme_eab_key(&self, kid: &str) -> Result<Option<AcmeEabKey>, StoreError>;
    fn acme_eab_keys(&self) -> Result<Vec<AcmeEabKey>, StoreError>;
    /// Keep an EAB key (`new`: Conflict if the kid exists; else NotFound if
    /// it does not).
    fn acme_put_eab_key(
        &self,
        key: AcmeEabKey,
        new: bool,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()>;
    /// Replace an account (contact, status, or its key: then Conflict naming
    /// the account that has the new key already), only if it is still valid
    /// and still has the key `expected_thumbprint` (else Conflict starting
    /// `stale:`): a request read before a key change or a deactivation
    /// cannot undo it. NotFound if it does not exist.
    fn acme_update_account(
        &self,
        account: AcmeAccount,
        expected_thumbprint: String,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()>;
    fn acme_order(&self, id: &str) -> Result<Option<AcmeOrder>, StoreError>;
    fn acme_authz(&self, id: &str) -> Result<Option<AcmeAuthz>, StoreError>;
    /// Write an order and authorizations together (a new order, or a change
    /// of state), with the audit entry of the call that caused it, if any.
    fn acme_put(
        &self,
        order: Option<AcmeOrder>,
        authzs: Vec<AcmeAuthz>,
        audit: Option<AuditDraft>,
    ) -> StoreFuture<'_, ()>;

    // ---- the audit trail ---------------------------------------------------

    /// Append the entry of a call that changed nothing (a read, a refusal).
    fn append_audit(&self, audit: AuditDraft) -> StoreFuture<'_, AuditEntry>;
    /// One page of entries, oldest first, and the cursor of the next page.
    fn audit_page(
        &self,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, Option<u64>), StoreError>;
    /// Verify the chain from the first entry to the recorded head, and every
    /// signed digest against it (with `pinned_digest_key`, the audit key's
    /// DER SPKI as the operator kept it, each must be signed by that key).
    fn verify_audit(&self, pinned_digest_key: Option<&[u8]>) -> Result<Verdict, StoreError>;
    /// The newest entry's sequence number and hash (0 and the genesis hash
    /// for an empty trail).
    fn audit_head(&self) -> Result<(u64, String), StoreError>;
    /// Keep a signed digest of the trail; a Conflict unless its number
    /// follows the last digest's.
    fn append_audit_digest(&self, digest: AuditDigest) -> StoreFuture<'_, ()>;
    /// Digests numbered after `after`, oldest first, at most `limit`.
    fn audit_digests(&self, after: u64, limit: usize) -> Result<Vec<AuditDigest>, StoreError>;
    fn last_audit_digest(&self) -> Result<Option<AuditDigest>, StoreError>;

    // ---- work for one node at a time ----------------------------------------------
    /// Whether this process is the one that does what one node at a time
    /// should: deliver webhooks (so receivers do not get each event once per
    /// node) and publish CRLs. With a store shared by several nodes one of
    /// them holds the role, and another takes it over when it goes. The
    /// embedded store has one process, which always does.
    fn is_leader(&self) -> bool {
        true
    }
}

/// Open the configured backend: the redb store in `dir`, or the PostgreSQL
/// database `config` names (waiting for it up to its `connect_wait_secs`).
pub fn open_configured(
    dir: &std::path::Path,
    config: &crate::config::StoreConfig,
    boot_id: String,
) -> anyhow::Result<Arc<dyn Store>> {
    use anyhow::Context as _;
    if config.is_postgres() {
        let opts = config.postgres_in(dir)?;
        let store =
            postgres::PgStore::open(&opts, boot_id).context("opening the PostgreSQL store")?;
        return Ok(Arc::new(store));
    }
    open(dir, boot_id).with_context(|| format!("opening the store in {}", dir.display()))
}

/// The embedded default: open (or create) the redb store in `dir`.
pub fn open(dir: &std::path::Path, boot_id: String) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(redb::RedbStore::open(dir, boot_id)?))
}

pub use self::redb::backup::SnapshotCounts;

/// Make a snapshot (copied to `dir`'s store file) a store again; returns the
/// data directory files it carried.
pub fn restore_snapshot(
    snapshot: &std::path::Path,
    dir: &std::path::Path,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let db = dir.join(redb::DB_FILE);
    // A journal left by an earlier store there belongs to that store: replayed
    // onto the restored file it would corrupt it.
    match std::fs::remove_file(redb::journal::journal_path(&db)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::Unavailable(e.to_string())),
    }
    std::fs::copy(snapshot, &db).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    self::redb::backup::take_files(&db).map_err(|e| match e {
        StoreError::Db(_) => e,
        other => StoreError::Db(format!(
            "{} is not a ca-server backup: {other}",
            snapshot.display()
        )),
    })
}

/// Whether `dir` holds a store already (a data directory in use).
pub fn exists(dir: &std::path::Path) -> bool {
    dir.join(redb::DB_FILE).exists()
}

/// How many bytes the store takes on disk (benchmarks and reports).
pub fn size_on_disk(dir: &std::path::Path) -> std::io::Result<u64> {
    Ok(std::fs::metadata(dir.join(redb::DB_FILE))?.len())
}

/// The PostgreSQL options of the data directory's config.toml, when its
/// records are kept there (offline tools then open the shared database).
fn configured_postgres(dir: &std::path::Path) -> Result<Option<postgres::PgOptions>, StoreError> {
    if !dir.join(crate::config::CONFIG_FILE).exists() {
        return Ok(None);
    }
    let config = crate::config::Config::load(dir).map_err(|e| StoreError::Db(format!("{e:#}")))?;
    if !config.store.is_postgres() {
        return Ok(None);
    }
    config
        .store
        .postgres_in(dir)
        .map(Some)
        .map_err(|e| StoreError::Db(format!("{e:#}")))
}

/// For the offline tools (`audit verify`, `rotate-master-key`, key checks):
/// the store a data directory names: its redb file (the server stopped;
/// read-only unless `writable`), or its PostgreSQL database, which other
/// nodes may be using meanwhile.
pub fn open_offline(dir: &std::path::Path, writable: bool) -> Result<Arc<dyn Store>, StoreError> {
    match configured_postgres(dir)? {
        Some(opts) => Ok(Arc::new(postgres::PgStore::open(
            &opts,
            crate::ids::boot_id(),
        )?)),
        None if writable => open(dir, crate::ids::boot_id()),
        None => open_read_only(dir),
    }
}

/// `ca-server check` on a data directory whose records are in PostgreSQL
/// (None if they are not): see `postgres::PgStore::check`.
pub fn check_postgres(
    dir: &std::path::Path,
    progress: Box<dyn FnMut(u64, u64) + Send>,
) -> Result<Option<check::CheckReport>, StoreError> {
    let Some(opts) = configured_postgres(dir)? else {
        return Ok(None);
    };
    let store = postgres::PgStore::open(&opts, crate::ids::boot_id())?;
    let report = store.check(progress);
    store.close();
    report.map(Some)
}

/// Whether `dir`'s records are in PostgreSQL (per its config.toml).
pub fn is_postgres(dir: &std::path::Path) -> bool {
    matches!(configured_postgres(dir), Ok(Some(_)))
}

/// Whether `dir` has a store to open: its redb file, or a PostgreSQL
/// database its config.toml names (whose errors this passes on).
pub fn has_store(dir: &std::path::Path) -> Result<bool, StoreError> {
    Ok(exists(dir) || configured_postgres(dir)?.is_some())
}

/// Open a stopped server's redb store to read if it was closed cleanly;
/// None for one a crash left (see [`recover`]).
pub fn open_read_only_if_clean(
    dir: &std::path::Path,
) -> Result<Option<Arc<dyn Store>>, StoreError> {
    Ok(redb::RedbStore::open_read_only_if_clean(dir)?.map(|s| Arc::new(s) as Arc<dyn Store>))
}

/// Recover a stopped server's redb store a crash left, and close it cleanly,
/// changing nothing else (see [`redb::open::recover`]).
pub fn recover(dir: &std::path::Path) -> Result<(), StoreError> {
    redb::open::recover(&dir.join(redb::DB_FILE))
}

/// Open a stopped server's store to read (offline tools, verification).
pub fn open_read_only(dir: &std::path::Path) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(redb::RedbStore::open_read_only(dir)?))
}
