//! Storage: one module, one interface over redb.
//!
//! Tables are narrow and keyed for the queries served, so start-up reads nothing
//! but the schema version, and memory does not grow with the number of
//! certificates:
//!
//! | table         | key                          | value                         |
//! |---------------|------------------------------|-------------------------------|
//! | `meta`        | name                         | u64 (schema version)          |
//! | `cas`         | CA id                        | [`CaRecord`] JSON             |
//! | `certs`       | `ca-id/serial`               | [`CertRecord`] JSON (no DER)  |
//! | `cert_der`    | `ca-id/serial`               | certificate DER               |
//! | `serials`     | serial (hex)                 | CA id (global lookup, reuse guard) |
//! | `expiry`      | (notAfter unix, `ca-id/serial`) | ()                         |
//! | `revocations` | `ca-id/serial`               | [`Revocation`] JSON           |
//! | `idempotency` | caller fingerprint/token     | [`IdemRecord`] JSON           |
//! | `crl_entries` | `ca-id/serial`               | DER revokedCertificates entry |
//! | `crl_meta`    | CA id                        | [`CrlMeta`] JSON              |
//!
//! `crl_entries` is written in the revocation's own transaction, so a CRL is
//! one range scan of that CA's pre-encoded entries, never a walk of `certs`.
//! The signed CRL itself (tens of MB at a million entries) is a file the
//! revocation service writes before committing its `crl_meta`, so the
//! group-commit writer, and with it every revoke, never waits for it.
//!
//! Writes go through a single writer thread that owns write transactions and
//! batches whatever is queued into one durable commit (group commit); each
//! caller is answered only after the commit that holds its write.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

pub const SCHEMA_VERSION: u64 = 1;
pub const DB_FILE: &str = "ca.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const CAS: TableDefinition<&str, &[u8]> = TableDefinition::new("cas");
const CERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("certs");
const CERT_DER: TableDefinition<&str, &[u8]> = TableDefinition::new("cert_der");
const SERIALS: TableDefinition<&str, &str> = TableDefinition::new("serials");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
const REVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revocations");
const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
const CRL_ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("crl_entries");
const CRL_META: TableDefinition<&str, &[u8]> = TableDefinition::new("crl_meta");

/// Set once every revocation has its `crl_entries` row (stores made before
/// that table existed are completed once, in the background).
const CRL_ENTRIES_COMPLETE: &str = "crl_entries_complete";

/// Most writes one group commit takes.
const MAX_BATCH: usize = 4096;
/// Most rows one list page scans before returning a cursor.
const MAX_SCAN: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("serial number already taken")]
    SerialTaken,
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("the database schema version {found} is newer than this server supports ({SCHEMA_VERSION}); run a newer ca-server")]
    NewerSchema { found: u64 },
    #[error("the store is closed")]
    Closed,
    #[error("a write panicked; nothing in its batch was committed")]
    Panicked,
}

impl StoreError {
    fn is_fatal(&self) -> bool {
        matches!(
            self,
            StoreError::Db(_) | StoreError::Corrupt(_) | StoreError::Panicked
        )
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.to_string())
            }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// CA lifecycle states (ACM PCA's CertificateAuthorityStatus).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaStatus {
    PendingCertificate,
    Active,
    Disabled,
    /// Replaced behind its alias: issues nothing, still serves CRL and OCSP.
    Retired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaType {
    Root,
    Subordinate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub ca_type: CaType,
    pub status: CaStatus,
    pub subject: String,
    pub key_algorithm: String,
    /// The CA's own certificate (absent while pending an external signature).
    pub certificate_pem: Option<String>,
    /// The CA's issuer and up to the root, issuer first.
    #[serde(default)]
    pub chain_pem: Vec<String>,
    pub parent_ca_id: Option<String>,
    /// Signed by a CA outside this service.
    #[serde(default)]
    pub external: bool,
    pub csr_pem: Option<String>,
    pub serial: Option<String>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub path_len: Option<u8>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Certificate states (ACM's CertificateStatus, plus RESERVED for an intent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertStatus {
    /// Serial reserved and the to-be-signed digest recorded; not (yet) handed out.
    Reserved,
    Issued,
    Revoked,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub reason_code: u8,
    pub reason: String,
    pub revoked_at: i64,
    pub revoked_by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    pub ca_id: String,
    pub serial: String,
    pub status: CertStatus,
    pub profile: String,
    pub subject: String,
    pub sans: Vec<String>,
    pub key_algorithm: String,
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the to-be-signed certificate, recorded before signing.
    pub tbs_sha256: String,
    pub created_at: i64,
    pub requested_by: String,
    /// Which server process made the intent (orphaned intents are recognised by it).
    pub boot_id: String,
    #[serde(default)]
    pub server_generated_key: bool,
    #[serde(default)]
    pub renewed_from: Option<String>,
    #[serde(default)]
    pub revocation: Option<Revocation>,
    /// SHA-256 fingerprint of the requester's client certificate (revoke-own policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_fingerprint: Option<String>,
}

impl CertRecord {
    pub fn key(&self) -> String {
        cert_key(&self.ca_id, &self.serial)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRecord {
    pub request_sha256: String,
    pub ca_id: String,
    pub serial: String,
}

/// The last signed CRL of a CA (its DER is a file named by CA id and number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlMeta {
    pub crl_number: u64,
    pub this_update: i64,
    pub next_update: i64,
    pub entries: u64,
}

/// What the store knows about one serial of one CA (OCSP, client lockout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialStatus {
    Issued,
    Revoked(Revocation),
    /// Never issued here (or only reserved: never handed out).
    Unknown,
}

/// A certificate record and its DER (absent while only the intent exists).
pub type CertWithDer = (CertRecord, Option<Vec<u8>>);

pub fn cert_key(ca_id: &str, serial: &str) -> String {
    format!("{ca_id}/{serial}")
}

/// What reserving a serial found.
#[derive(Debug)]
pub enum ReserveOutcome {
    /// The intent is recorded; go ahead and sign.
    Reserved,
    /// The idempotency token already names this certificate, issued.
    Existing(CertRecord),
    /// The idempotency token names a certificate another request is signing now.
    InProgress(CertRecord),
}

/// Filters for listing certificates.
#[derive(Clone, Debug, Default)]
pub struct CertFilter {
    pub ca_id: Option<String>,
    pub status: Option<CertStatus>,
    /// Only certificates whose notAfter is before this (unix seconds).
    pub expiring_before: Option<i64>,
    pub limit: usize,
    pub cursor: Option<String>,
}

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Job = Box<dyn FnOnce(&WriteTransaction) -> (bool, Completion) + Send>;

#[derive(Default)]
pub struct WriterStats {
    pub commits: AtomicU64,
    pub writes: AtomicU64,
}

pub struct Store {
    db: Arc<Database>,
    sender: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    pub stats: Arc<WriterStats>,
    boot_id: String,
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn unjson<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Store {
    /// Open (or create) the store in `dir`, check its schema version and start
    /// the writer. Reads nothing else: start-up does not depend on the data size.
    pub fn open(dir: &Path, boot_id: String) -> Result<Store, StoreError> {
        let path = dir.join(DB_FILE);
        let mut builder = Database::builder();
        builder.set_cache_size(64 * 1024 * 1024);
        let db = builder.create(&path)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| StoreError::Db(format!("setting permissions: {e}")))?;
        }
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema_version")?.map(|v| v.value());
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::NewerSchema { found: v });
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                    // A new store has no revocations without CRL entries.
                    meta.insert(CRL_ENTRIES_COMPLETE, 1)?;
                }
            }
            txn.open_table(CAS)?;
            txn.open_table(CERTS)?;
            txn.open_table(CERT_DER)?;
            txn.open_table(SERIALS)?;
            txn.open_table(EXPIRY)?;
            txn.open_table(REVOCATIONS)?;
            txn.open_table(IDEMPOTENCY)?;
            txn.open_table(CRL_ENTRIES)?;
            txn.open_table(CRL_META)?;
        }
        txn.commit()?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let stats = Arc::new(WriterStats::default());
        let writer = {
            let db = db.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || writer_loop(db, rx, stats))
                .map_err(|e| StoreError::Db(e.to_string()))?
        };
        Ok(Store {
            db,
            sender: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            stats,
            boot_id,
        })
    }

    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    /// The database, for modules that keep their own tables (vault, policy,
    /// audit): reads, and synchronous writes at start-up or offline only.
    /// While serving, writes go through [`Store::write`].
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Stop taking writes, let the writer finish what is queued, and wait for it.
    pub fn close(&self) {
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Run `f` inside the next group commit; resolve once that commit is durable.
    /// `f` must do every check before its first write: a logical error it returns
    /// must leave the transaction untouched.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |txn| {
            // A panicking write must not take the writer thread (and every
            // later write) with it: it fails its batch, and its caller hears so.
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(txn)))
                .unwrap_or(Err(StoreError::Panicked));
            let fatal = matches!(&r, Err(e) if e.is_fatal());
            let done: Completion = Box::new(move |commit: Result<(), String>| {
                let out = match commit {
                    Ok(()) => r,
                    Err(e) => Err(match r {
                        Err(inner) if inner.is_fatal() => inner,
                        _ => StoreError::Db(e),
                    }),
                };
                let _ = tx.send(out);
            });
            (fatal, done)
        });
        {
            let guard = self.sender.lock().map_err(|_| StoreError::Closed)?;
            let sender = guard.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }

    // ---- reads -------------------------------------------------------------

    pub fn get_ca(&self, id: &str) -> Result<Option<CaRecord>, StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(CAS)?;
        let v = t.get(id)?;
        v.map(|v| unjson(v.value())).transpose()
    }

    pub fn list_cas(&self) -> Result<Vec<CaRecord>, StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(CAS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (_, v) = item?;
            out.push(unjson(v.value())?);
        }
        Ok(out)
    }

    pub fn get_cert(&self, ca_id: &str, serial: &str) -> Result<Option<CertWithDer>, StoreError> {
        let key = cert_key(ca_id, serial);
        let r = self.db.begin_read()?;
        let certs = r.open_table(CERTS)?;
        let Some(rec) = certs.get(key.as_str())? else {
            return Ok(None);
        };
        let rec: CertRecord = unjson(rec.value())?;
        let der = r.open_table(CERT_DER)?;
        let der = der.get(key.as_str())?.map(|d| d.value().to_vec());
        Ok(Some((rec, der)))
    }

    /// Which CA issued `serial` (serials are unique across the store).
    pub fn ca_of_serial(&self, serial: &str) -> Result<Option<String>, StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(SERIALS)?;
        let v = t.get(serial)?;
        Ok(v.map(|v| v.value().to_string()))
    }

    /// Status of one serial: point reads only (revocations, then certs).
    pub fn serial_status(&self, ca_id: &str, serial: &str) -> Result<SerialStatus, StoreError> {
        let key = cert_key(ca_id, serial);
        let r = self.db.begin_read()?;
        if let Some(v) = r.open_table(REVOCATIONS)?.get(key.as_str())? {
            return Ok(SerialStatus::Revoked(unjson(v.value())?));
        }
        let certs = r.open_table(CERTS)?;
        let Some(v) = certs.get(key.as_str())? else {
            return Ok(SerialStatus::Unknown);
        };
        let rec: CertRecord = unjson(v.value())?;
        Ok(match rec.status {
            CertStatus::Issued => SerialStatus::Issued,
            CertStatus::Revoked => match rec.revocation {
                Some(rv) => SerialStatus::Revoked(rv),
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "{key}: revoked without record"
                    )))
                }
            },
            CertStatus::Reserved => SerialStatus::Unknown,
        })
    }

    /// Every pre-encoded CRL entry of a CA, concatenated, and their count:
    /// one range scan of `crl_entries`.
    pub fn crl_entries(&self, ca_id: &str) -> Result<(Vec<u8>, u64), StoreError> {
        let r = self.db.begin_read()?;
        let t = r.open_table(CRL_ENTRIES)?;
        let (lo, hi) = (format!("{ca_id}/"), format!("{ca_id}0"));
        let mut out = Vec::new();
        let mut n = 0u64;
        for item in t.range::<&str>(lo.as_str()..hi.as_str())? {
            let (_, v) = item?;
            out.extend_from_slice(v.value());
            n += 1;
        }
        Ok((out, n))
    }

    /// Give every revocation recorded before `crl_entries` existed its entry.
    /// Runs once per store (a flag in `meta`), as one write job; returns how
    /// many entries it added. New stores are born complete and never scan.
    pub async fn complete_crl_entries(&self) -> Result<u64, StoreError> {
        {
            let r = self.db.begin_read()?;
            if r.open_table(META)?.get(CRL_ENTRIES_COMPLETE)?.is_some() {
                return Ok(0);
            }
        }
        self.write(|txn| {
            let mut missing = Vec::new();
            {
                let revs = txn.open_table(REVOCATIONS)?;
                let entries = txn.open_table(CRL_ENTRIES)?;
                for item in revs.iter()? {
                    let (k, v) = item?;
                    let key = k.value();
                    if entries.get(key)?.is_none() {
                        let rv: Revocation = unjson(v.value())?;
                        let serial = key.rsplit('/').next().unwrap_or_default();
                        // An entry that cannot be encoded is logged, not fatal.
                        match crl_entry(serial, &rv) {
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
        })
        .await
    }

    pub fn crl_meta(&self, ca_id: &str) -> Result<Option<CrlMeta>, StoreError> {
        let r = self.db.begin_read()?;
        let v = r.open_table(CRL_META)?.get(ca_id)?;
        v.map(|v| unjson(v.value())).transpose()
    }

    pub fn count_certs(&self) -> Result<u64, StoreError> {
        let r = self.db.begin_read()?;
        Ok(r.open_table(CERTS)?.len()?)
    }

    /// One page of certificates and the cursor of the next page, if any.
    pub fn list_certs(
        &self,
        f: &CertFilter,
        wanted: impl Fn(&CertRecord) -> bool,
    ) -> Result<(Vec<CertRecord>, Option<String>), StoreError> {
        let r = self.db.begin_read()?;
        let certs = r.open_table(CERTS)?;
        let prefix = f.ca_id.as_ref().map(|c| format!("{c}/"));
        let limit = f.limit.max(1);
        let mut out = Vec::new();
        let mut scanned = 0usize;
        if let Some(before) = f.expiring_before {
            let before = u64::try_from(before).unwrap_or(0);
            let (start_t, start_k) = match &f.cursor {
                Some(c) => decode_expiry_cursor(c)?,
                None => (0, String::new()),
            };
            let exp = r.open_table(EXPIRY)?;
            let range = exp.range::<(u64, &str)>((start_t, start_k.as_str())..(before, ""))?;
            for item in range {
                let (k, _) = item?;
                let (t, key) = k.value();
                if f.cursor.is_some() && t == start_t && key == start_k {
                    continue;
                }
                scanned += 1;
                if scanned > MAX_SCAN {
                    return Ok((out, Some(encode_cursor(&format!("e{t}|{key}")))));
                }
                if let Some(p) = &prefix {
                    if !key.starts_with(p.as_str()) {
                        continue;
                    }
                }
                let Some(v) = certs.get(key)? else { continue };
                let rec: CertRecord = unjson(v.value())?;
                if !wanted(&rec) {
                    continue;
                }
                out.push(rec);
                if out.len() == limit {
                    return Ok((out, Some(encode_cursor(&format!("e{t}|{key}")))));
                }
            }
            return Ok((out, None));
        }
        let start = match &f.cursor {
            Some(c) => decode_key_cursor(c)?,
            None => prefix.clone().unwrap_or_default(),
        };
        for item in certs.range::<&str>(start.as_str()..)? {
            let (k, v) = item?;
            let key = k.value();
            if f.cursor.is_some() && key == start {
                continue;
            }
            if let Some(p) = &prefix {
                if !key.starts_with(p.as_str()) {
                    break;
                }
            }
            scanned += 1;
            if scanned > MAX_SCAN {
                return Ok((out, Some(encode_cursor(&format!("k{key}")))));
            }
            let rec: CertRecord = unjson(v.value())?;
            if !wanted(&rec) {
                continue;
            }
            out.push(rec);
            if out.len() == limit {
                return Ok((out, Some(encode_cursor(&format!("k{key}")))));
            }
        }
        Ok((out, None))
    }
}

fn writer_loop(db: Arc<Database>, mut rx: mpsc::UnboundedReceiver<Job>, stats: Arc<WriterStats>) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let n = jobs.len() as u64;
        let txn = match db.begin_write() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "store: cannot begin a write transaction");
                for job in jobs {
                    // Run nothing against the database; answer every caller.
                    drop(job);
                }
                continue;
            }
        };
        let mut done = Vec::with_capacity(jobs.len());
        let mut fatal = false;
        for job in jobs {
            // Jobs from `write` catch their own panics; this keeps the writer
            // alive whatever a job does (its caller then sees the store closed).
            match std::panic::catch_unwind(AssertUnwindSafe(|| job(&txn))) {
                Ok((f, c)) => {
                    fatal |= f;
                    done.push(c);
                }
                Err(_) => {
                    tracing::error!("store: a write job panicked");
                    fatal = true;
                }
            }
        }
        let result = if fatal {
            let _ = txn.abort();
            Err("a write in this batch failed; nothing was committed".to_string())
        } else {
            txn.commit().map_err(|e| e.to_string())
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "store: group commit failed");
        }
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.writes.fetch_add(n, Ordering::Relaxed);
        for c in done {
            c(result.clone());
        }
    }
    tracing::debug!("store writer stopped");
}

fn encode_cursor(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_cursor(c: &str) -> Result<String, StoreError> {
    let bad = || StoreError::NotFound("the cursor is not valid".into());
    if c.len() % 2 != 0 || c.len() > 400 || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let bytes: Vec<u8> = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&c[i..i + 2], 16).map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    String::from_utf8(bytes).map_err(|_| bad())
}

fn decode_key_cursor(c: &str) -> Result<String, StoreError> {
    let s = decode_cursor(c)?;
    s.strip_prefix('k')
        .map(str::to_string)
        .ok_or_else(|| StoreError::NotFound("the cursor does not belong to this listing".into()))
}

fn decode_expiry_cursor(c: &str) -> Result<(u64, String), StoreError> {
    let s = decode_cursor(c)?;
    let bad = || StoreError::NotFound("the cursor does not belong to this listing".into());
    let rest = s.strip_prefix('e').ok_or_else(bad)?;
    let (t, k) = rest.split_once('|').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, k.to_string()))
}

// ---- write operations, run inside `Store::write` ----------------------------
//
// Each checks everything first and writes last, so a refused operation leaves
// the shared group-commit transaction untouched.

/// Create or replace a CA record.
pub fn put_ca(txn: &WriteTransaction, ca: &CaRecord) -> Result<(), StoreError> {
    let v = json(ca)?;
    let mut t = txn.open_table(CAS)?;
    t.insert(ca.id.as_str(), v.as_slice())?;
    if let Some(serial) = &ca.serial {
        let mut s = txn.open_table(SERIALS)?;
        if s.get(serial.as_str())?.is_none() {
            s.insert(serial.as_str(), ca.id.as_str())?;
        }
    }
    Ok(())
}

/// Create a CA record that must not exist yet.
pub fn insert_ca(txn: &WriteTransaction, ca: &CaRecord) -> Result<(), StoreError> {
    {
        let t = txn.open_table(CAS)?;
        if t.get(ca.id.as_str())?.is_some() {
            return Err(StoreError::Conflict(format!("CA {} already exists", ca.id)));
        }
    }
    put_ca(txn, ca)
}

/// Change a CA under a check of its current state; returns the new record.
pub fn update_ca(
    txn: &WriteTransaction,
    id: &str,
    change: impl FnOnce(&mut CaRecord) -> Result<(), StoreError>,
) -> Result<CaRecord, StoreError> {
    let mut rec: CaRecord = {
        let t = txn.open_table(CAS)?;
        let v = t
            .get(id)?
            .ok_or_else(|| StoreError::NotFound(format!("no CA {id}")))?;
        unjson(v.value())?
    };
    change(&mut rec)?;
    put_ca(txn, &rec)?;
    Ok(rec)
}

/// Idempotency tokens of the requests running in this process, counted: a
/// retry may carry the same token as a request still signing.
#[derive(Debug, Default)]
pub struct InFlightTokens(Mutex<HashMap<String, usize>>);

impl InFlightTokens {
    /// Count a request carrying `token` until the guard drops (when the
    /// request ends, answered or cancelled).
    pub fn enter(self: &Arc<Self>, token: &str) -> InFlightGuard {
        *self.lock().entry(token.to_string()).or_insert(0) += 1;
        InFlightGuard {
            set: self.clone(),
            token: token.to_string(),
        }
    }

    /// Whether a request other than the caller's (which has entered) carries `token`.
    pub fn others(&self, token: &str) -> bool {
        self.lock().get(token).is_some_and(|n| *n > 1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // A counter map stays consistent even if a holder panicked.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One in-flight request's hold on its idempotency token.
#[derive(Debug)]
pub struct InFlightGuard {
    set: Arc<InFlightTokens>,
    token: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut map = self.set.lock();
        if let Some(n) = map.get_mut(&self.token) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.token);
            }
        }
    }
}

/// Record the intent to sign: reserve the serial (never reused) and the
/// to-be-signed digest, and bind the idempotency token to it.
/// `token_in_flight` says whether another request of this process carrying the
/// token is still running: only then is a reservation of this boot in progress.
pub fn reserve(
    txn: &WriteTransaction,
    intent: &CertRecord,
    token: Option<(&str, &IdemRecord)>,
    boot_id: &str,
    token_in_flight: bool,
) -> Result<ReserveOutcome, StoreError> {
    let certs_ro = txn.open_table(CERTS)?;
    if let Some((token, idem)) = token {
        let idem_t = txn.open_table(IDEMPOTENCY)?;
        let prev: Option<IdemRecord> = match idem_t.get(token)? {
            Some(v) => Some(unjson(v.value())?),
            None => None,
        };
        drop(idem_t);
        if let Some(prev) = prev {
            if prev.request_sha256 != idem.request_sha256 {
                return Err(StoreError::Conflict(
                    "this idempotency token was already used with a different request".into(),
                ));
            }
            let key = cert_key(&prev.ca_id, &prev.serial);
            let found: Option<CertRecord> = match certs_ro.get(key.as_str())? {
                Some(c) => Some(unjson(c.value())?),
                None => None,
            };
            if let Some(rec) = found {
                match rec.status {
                    CertStatus::Issued | CertStatus::Revoked => {
                        return Ok(ReserveOutcome::Existing(rec))
                    }
                    // Reserved by this process and its request is still
                    // running (however slow): it is signing now.
                    CertStatus::Reserved if rec.boot_id == boot_id && token_in_flight => {
                        return Ok(ReserveOutcome::InProgress(rec))
                    }
                    // Reserved by a process that died before answering, or by a
                    // request of this one that ended without storing it (failed,
                    // or its client went away): nobody received it, so the
                    // token may name a fresh certificate.
                    CertStatus::Reserved => {}
                }
            }
        }
    }
    {
        let serials = txn.open_table(SERIALS)?;
        if serials.get(intent.serial.as_str())?.is_some() {
            return Err(StoreError::SerialTaken);
        }
    }
    drop(certs_ro);
    let key = intent.key();
    let v = json(intent)?;
    let idem_v = token.map(|(_, i)| json(i)).transpose()?;
    txn.open_table(CERTS)?.insert(key.as_str(), v.as_slice())?;
    txn.open_table(SERIALS)?
        .insert(intent.serial.as_str(), intent.ca_id.as_str())?;
    if let (Some((token, _)), Some(iv)) = (token, idem_v) {
        txn.open_table(IDEMPOTENCY)?.insert(token, iv.as_slice())?;
    }
    Ok(ReserveOutcome::Reserved)
}

/// Replace an intent by the signed certificate.
pub fn store_issued(
    txn: &WriteTransaction,
    rec: &CertRecord,
    der: &[u8],
) -> Result<(), StoreError> {
    let key = rec.key();
    let v = json(rec)?;
    txn.open_table(CERTS)?.insert(key.as_str(), v.as_slice())?;
    txn.open_table(CERT_DER)?.insert(key.as_str(), der)?;
    let exp = u64::try_from(rec.not_after).unwrap_or(0);
    txn.open_table(EXPIRY)?.insert((exp, key.as_str()), ())?;
    Ok(())
}

/// Mark a certificate revoked and keep its encoded CRL entry beside it.
/// Unknown or unissued serials are NotFound; revoking again is idempotent and
/// returns the record with its first revocation (reason and time unchanged).
pub fn revoke(
    txn: &WriteTransaction,
    ca_id: &str,
    serial: &str,
    revocation: Revocation,
) -> Result<CertRecord, StoreError> {
    let key = cert_key(ca_id, serial);
    let mut rec: CertRecord = {
        let t = txn.open_table(CERTS)?;
        let v = t
            .get(key.as_str())?
            .ok_or_else(|| StoreError::NotFound(format!("no certificate {serial} from {ca_id}")))?;
        unjson(v.value())?
    };
    match rec.status {
        CertStatus::Reserved => {
            return Err(StoreError::NotFound(format!(
                "no certificate {serial} from {ca_id}"
            )))
        }
        CertStatus::Revoked => return Ok(rec),
        CertStatus::Issued => {}
    }
    let entry = crl_entry(serial, &revocation)?;
    rec.status = CertStatus::Revoked;
    rec.revocation = Some(revocation.clone());
    let v = json(&rec)?;
    let rv = json(&revocation)?;
    txn.open_table(CERTS)?.insert(key.as_str(), v.as_slice())?;
    txn.open_table(REVOCATIONS)?
        .insert(key.as_str(), rv.as_slice())?;
    txn.open_table(CRL_ENTRIES)?
        .insert(key.as_str(), entry.as_slice())?;
    Ok(rec)
}

/// The DER revokedCertificates entry of one revocation (what CRLs list).
pub fn crl_entry(serial: &str, rv: &Revocation) -> Result<Vec<u8>, StoreError> {
    use ca_core::crl::{encode_revoked_entry, RevocationReason, RevokedEntry};
    let bad = |what: &str| StoreError::Conflict(format!("cannot list {serial} in a CRL: {what}"));
    let entry = RevokedEntry {
        serial: ca_core::serial::Serial::from_hex(serial).map_err(|_| bad("serial"))?,
        revoked_at: time::OffsetDateTime::from_unix_timestamp(rv.revoked_at)
            .map_err(|_| bad("time"))?,
        reason: RevocationReason::from_code(rv.reason_code).ok_or_else(|| bad("reason"))?,
    };
    encode_revoked_entry(&entry).map_err(|e| bad(&e.to_string()))
}

/// Record that CRL `meta.crl_number` of `ca_id` is signed and stored.
pub fn put_crl_meta(txn: &WriteTransaction, ca_id: &str, meta: &CrlMeta) -> Result<(), StoreError> {
    let m = json(meta)?;
    txn.open_table(CRL_META)?.insert(ca_id, m.as_slice())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn newer_schema_is_refused_with_a_clear_message() {
        let dir = tmp();
        Store::open(dir.path(), "a".into()).expect("open").close();
        {
            let db = Database::create(dir.path().join(DB_FILE)).expect("db");
            let txn = db.begin_write().expect("txn");
            txn.open_table(META)
                .expect("meta")
                .insert("schema_version", SCHEMA_VERSION + 1)
                .expect("insert");
            txn.commit().expect("commit");
        }
        let err = Store::open(dir.path(), "b".into()).err().expect("refused");
        assert!(matches!(err, StoreError::NewerSchema { found } if found == SCHEMA_VERSION + 1));
        assert!(err.to_string().contains("newer than this server supports"));
    }

    fn intent(serial: &str) -> CertRecord {
        CertRecord {
            ca_id: "ca-0000000000000001".into(),
            serial: serial.into(),
            status: CertStatus::Reserved,
            profile: "tls-server".into(),
            subject: "CN=x".into(),
            sans: vec![],
            key_algorithm: "ECDSA P-256".into(),
            not_before: 0,
            not_after: 100,
            tbs_sha256: String::new(),
            created_at: 0,
            requested_by: "test".into(),
            boot_id: "boot1".into(),
            server_generated_key: false,
            renewed_from: None,
            revocation: None,
            requester_fingerprint: None,
        }
    }

    #[tokio::test]
    async fn serials_are_never_reused_and_tokens_bind_requests() {
        let dir = tmp();
        let store = Store::open(dir.path(), "boot1".into()).expect("open");
        let a = intent("01");
        let r = store
            .write(move |t| reserve(t, &a, None, "boot1", false))
            .await
            .expect("reserve");
        assert!(matches!(r, ReserveOutcome::Reserved));
        let again = intent("01");
        let r = store
            .write(move |t| reserve(t, &again, None, "boot1", false))
            .await;
        assert!(matches!(r, Err(StoreError::SerialTaken)));

        let idem = IdemRecord {
            request_sha256: "h1".into(),
            ca_id: "ca-0000000000000001".into(),
            serial: "02".into(),
        };
        let (b, i) = (intent("02"), idem.clone());
        store
            .write(move |t| reserve(t, &b, Some(("tok", &i)), "boot1", false))
            .await
            .expect("reserve with token");
        // Same token while the first is being signed by this process: in progress.
        let (c, i) = (intent("03"), idem.clone());
        let r = store
            .write(move |t| reserve(t, &c, Some(("tok", &i)), "boot1", true))
            .await
            .expect("replay");
        assert!(matches!(r, ReserveOutcome::InProgress(ref rec) if rec.serial == "02"));
        // Different request, same token: conflict.
        let mut other = idem.clone();
        other.request_sha256 = "h2".into();
        let d = intent("04");
        let r = store
            .write(move |t| reserve(t, &d, Some(("tok", &other)), "boot1", true))
            .await;
        assert!(matches!(r, Err(StoreError::Conflict(_))));
        // Issued: the replay returns it.
        let mut done = intent("02");
        done.status = CertStatus::Issued;
        store
            .write(move |t| store_issued(t, &done, b"der"))
            .await
            .expect("store");
        let (e, i) = (intent("05"), idem.clone());
        let r = store
            .write(move |t| reserve(t, &e, Some(("tok", &i)), "boot1", false))
            .await
            .expect("replay");
        assert!(matches!(r, ReserveOutcome::Existing(ref rec) if rec.serial == "02"));
        store.close();
    }

    #[tokio::test]
    async fn revocation_is_idempotent_keeps_its_crl_entry_and_scans_by_ca() {
        let dir = tmp();
        let store = Store::open(dir.path(), "boot1".into()).expect("open");
        for (ca, serial) in [
            ("ca-0000000000000001", "0a"),
            ("ca-0000000000000001", "0b"),
            ("ca-0000000000000002", "0c"),
        ] {
            let mut rec = intent(serial);
            rec.ca_id = ca.into();
            let r2 = rec.clone();
            store
                .write(move |t| reserve(t, &r2, None, "boot1", false))
                .await
                .expect("reserve");
            rec.status = CertStatus::Issued;
            store
                .write(move |t| store_issued(t, &rec, b"der"))
                .await
                .expect("issue");
        }
        let rv = |code: u8, at: i64| Revocation {
            reason_code: code,
            reason: "x".into(),
            revoked_at: at,
            revoked_by: "test".into(),
        };
        let ca1 = "ca-0000000000000001";
        assert_eq!(
            store.serial_status(ca1, "0a").expect("status"),
            SerialStatus::Issued
        );
        let first = rv(1, 1_700_000_000);
        let r = store
            .write(move |t| revoke(t, ca1, "0a", first))
            .await
            .expect("revoke");
        assert_eq!(r.revocation.as_ref().map(|r| r.reason_code), Some(1));
        // Again, with another reason: the first one stays.
        let again = rv(4, 1_800_000_000);
        let r = store
            .write(move |t| revoke(t, ca1, "0a", again))
            .await
            .expect("idempotent");
        assert_eq!(
            r.revocation.as_ref().map(|r| r.revoked_at),
            Some(1_700_000_000)
        );
        let unknown = rv(1, 0);
        let e = store.write(move |t| revoke(t, ca1, "ff", unknown)).await;
        assert!(matches!(e, Err(StoreError::NotFound(_))));
        let other = rv(0, 1_700_000_001);
        store
            .write(move |t| revoke(t, "ca-0000000000000002", "0c", other))
            .await
            .expect("revoke other CA");
        assert!(matches!(
            store.serial_status(ca1, "0a").expect("status"),
            SerialStatus::Revoked(r) if r.reason_code == 1
        ));
        assert_eq!(
            store.serial_status(ca1, "ff").expect("status"),
            SerialStatus::Unknown
        );
        // One entry for CA 1 (not CA 2's), exactly the encoded entry.
        let (entries, n) = store.crl_entries(ca1).expect("entries");
        assert_eq!(n, 1);
        assert_eq!(
            entries,
            crl_entry("0a", &rv(1, 1_700_000_000)).expect("entry")
        );
        assert_eq!(store.crl_entries("ca-0000000000000002").expect("e").1, 1);
        // A store from before crl_entries: the entry is made once, in the background.
        assert_eq!(store.complete_crl_entries().await.expect("complete"), 0);
        store
            .write(|t| {
                t.open_table(CRL_ENTRIES)?
                    .remove("ca-0000000000000001/0a")?;
                t.open_table(META)?.remove(CRL_ENTRIES_COMPLETE)?;
                Ok(())
            })
            .await
            .expect("forget");
        assert_eq!(store.crl_entries(ca1).expect("entries").1, 0);
        assert_eq!(store.complete_crl_entries().await.expect("complete"), 1);
        assert_eq!(store.crl_entries(ca1).expect("entries").0, entries);
        assert_eq!(store.complete_crl_entries().await.expect("again"), 0);
        store.close();
    }

    #[tokio::test]
    async fn an_intent_orphaned_by_a_crash_frees_its_token_not_its_serial() {
        let dir = tmp();
        let idem = IdemRecord {
            request_sha256: "h".into(),
            ca_id: "ca-0000000000000001".into(),
            serial: "0a".into(),
        };
        {
            let store = Store::open(dir.path(), "boot1".into()).expect("open");
            let (a, i) = (intent("0a"), idem.clone());
            store
                .write(move |t| reserve(t, &a, Some(("tok", &i)), "boot1", false))
                .await
                .expect("reserve");
            store.close();
        }
        let store = Store::open(dir.path(), "boot2".into()).expect("reopen");
        let mut b = intent("0b");
        b.boot_id = "boot2".into();
        let mut i = idem.clone();
        i.serial = "0b".into();
        let r = store
            .write(move |t| reserve(t, &b, Some(("tok", &i)), "boot2", false))
            .await
            .expect("re-reserve");
        assert!(matches!(r, ReserveOutcome::Reserved));
        let a = intent("0a");
        let r = store
            .write(move |t| reserve(t, &a, None, "boot2", false))
            .await;
        assert!(matches!(r, Err(StoreError::SerialTaken)));
        store.close();
    }

    #[tokio::test]
    async fn a_reservation_of_this_boot_is_in_progress_only_while_its_token_is_in_flight() {
        let dir = tmp();
        let store = Store::open(dir.path(), "boot1".into()).expect("open");
        let tokens = Arc::new(InFlightTokens::default());
        let idem = IdemRecord {
            request_sha256: "h".into(),
            ca_id: "ca-0000000000000001".into(),
            serial: "1a".into(),
        };
        let slow = tokens.enter("fp/tok");
        assert!(!tokens.others("fp/tok"), "alone");
        let (a, i) = (intent("1a"), idem.clone());
        store
            .write(move |t| reserve(t, &a, Some(("fp/tok", &i)), "boot1", false))
            .await
            .expect("reserve");
        // A retry long after (wall clock alone proves nothing) while the slow
        // request still runs: in progress, not a second certificate.
        let retry = tokens.enter("fp/tok");
        assert!(tokens.others("fp/tok"));
        let mut later = intent("1b");
        later.created_at = 3600;
        let mut i = idem.clone();
        i.serial = "1b".into();
        let (l, i2) = (later.clone(), i.clone());
        let busy = tokens.others("fp/tok");
        let r = store
            .write(move |t| reserve(t, &l, Some(("fp/tok", &i2)), "boot1", busy))
            .await
            .expect("replay");
        assert!(matches!(r, ReserveOutcome::InProgress(ref rec) if rec.serial == "1a"));
        // The slow request ends without storing its certificate: the token is free.
        drop(slow);
        assert!(!tokens.others("fp/tok"));
        let busy = tokens.others("fp/tok");
        let r = store
            .write(move |t| reserve(t, &later, Some(("fp/tok", &i)), "boot1", busy))
            .await
            .expect("re-reserve");
        assert!(matches!(r, ReserveOutcome::Reserved));
        drop(retry);
        assert!(tokens.lock().is_empty(), "guards leave nothing behind");
        store.close();
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_keeps_going() {
        let dir = tmp();
        let store = Store::open(dir.path(), "boot1".into()).expect("open");
        let a = intent("2a");
        let r = store
            .write(move |t| {
                reserve(t, &a, None, "boot1", false)?;
                panic!("a bug in a write job");
                #[allow(unreachable_code)]
                Ok(())
            })
            .await;
        assert!(matches!(r, Err(StoreError::Panicked)), "{r:?}");
        // Its transaction was aborted: the serial is still free.
        let a = intent("2a");
        let r = store
            .write(move |t| reserve(t, &a, None, "boot1", false))
            .await
            .expect("the writer still writes");
        assert!(matches!(r, ReserveOutcome::Reserved));
        let b = intent("2a");
        let r = store
            .write(move |t| reserve(t, &b, None, "boot1", false))
            .await;
        assert!(matches!(r, Err(StoreError::SerialTaken)));
        store.close();
    }
}
