//! Opening the store: the schema version checked (and raised), every table
//! made, the writer thread started; or a read-only open for offline tools.

use std::path::Path;
use std::sync::{Arc, Mutex};

use redb::{Database, ReadableTable};
use std::sync::mpsc;

use super::journal::{JournalBackend, SharedJournal};
use super::redo::redo_pending;
use super::tables::*;
use super::writer::{self, Handle, Job, Shared};
use super::{acme, events, reads, RedbStore, DB_FILE, SCHEMA_VERSION};
use crate::store::StoreError;

/// redb's page cache.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

impl RedbStore {
    /// Open (or create) the store in `dir`, check its schema version and start
    /// the writer. Reads nothing else: start-up does not depend on the data size.
    pub fn open(dir: &Path, boot_id: String) -> Result<RedbStore, StoreError> {
        let path = dir.join(DB_FILE);
        let (db, journal, redo_seq) = open_database(&path)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| StoreError::Db(format!("setting permissions: {e}")))?;
        }
        let txn = super::begin_write_quick_repair(&db)?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get(SCHEMA_KEY)?.map(|v| v.value());
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::NewerSchema {
                        found: v,
                        supported: SCHEMA_VERSION,
                    });
                }
                // Version 1 records are JSON, which this version still reads;
                // what it writes from now on an older binary could not.
                Some(v) if v < SCHEMA_VERSION => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                }
                Some(_) => {}
                None => {
                    meta.insert(SCHEMA_KEY, SCHEMA_VERSION)?;
                    // A new store has no revocations without CRL entries.
                    meta.insert(CRL_ENTRIES_COMPLETE, 1)?;
                }
            }
        }
        for t in [
            CAS,
            CERTS,
            CERT_DER,
            REVOCATIONS,
            IDEMPOTENCY,
            CRL_ENTRIES,
            CRL_META,
            CA_KEYS,
            BLOCKED_KEYS,
        ] {
            txn.open_table(t)?;
        }
        txn.open_table(CERT_DER_SEQ)?;
        txn.open_table(DER_DICTS)?;
        txn.open_table(CA_DER_DICT)?;
        txn.open_table(SERIALS)?;
        txn.open_table(EXPIRY)?;
        txn.open_table(ALIASES)?;
        txn.open_table(KEY_META)?;
        txn.open_table(AUDIT)?;
        txn.open_table(AUDIT_HEAD)?;
        txn.open_table(AUDIT_DIGESTS)?;
        txn.open_table(events::EVENTS)?;
        txn.open_table(events::EVENT_MARKS)?;
        txn.open_table(events::WEBHOOKS)?;
        txn.open_table(acme::ACME_ACCOUNTS)?;
        txn.open_table(acme::ACME_ACCOUNT_KEYS)?;
        txn.open_table(acme::ACME_ORDERS)?;
        txn.open_table(acme::ACME_AUTHZS)?;
        txn.open_table(acme::ACME_EAB_KEYS)?;
        txn.commit()?;
        let shared = Arc::new(Shared::new(path, Handle::Rw(db, journal)));
        shared
            .redo_seq
            .store(redo_seq, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel::<Job>();
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || writer::writer_loop(shared, rx))
                .map_err(|e| StoreError::Db(e.to_string()))?
        };
        Ok(RedbStore {
            shared,
            sender: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            boot_id,
        })
    }

    /// Open a stopped server's store without changing it. Writes are refused.
    pub fn open_read_only(dir: &Path) -> Result<RedbStore, StoreError> {
        let path = dir.join(DB_FILE);
        let handle = open_read_only(&path)?;
        Self::read_only_on(path, handle)
    }

    /// As [`RedbStore::open_read_only`], for a look before the open for
    /// writing; None for a store a crash left, which is not recovered in
    /// memory: on a large store that can be the open's whole cost (redb
    /// walks every table unless the last durable commit recorded its
    /// allocator state), and [`recover`] makes it once for both.
    pub fn open_read_only_if_clean(dir: &Path) -> Result<Option<RedbStore>, StoreError> {
        let path = dir.join(DB_FILE);
        match open_read_only_if_clean(&path)? {
            Some(handle) => Self::read_only_on(path, handle).map(Some),
            None => Ok(None),
        }
    }

    fn read_only_on(path: std::path::PathBuf, handle: Handle) -> Result<RedbStore, StoreError> {
        let store = RedbStore {
            shared: Arc::new(Shared::new(path, handle)),
            sender: Mutex::new(None),
            writer: Mutex::new(None),
            boot_id: String::new(),
        };
        let meta = reads::meta_value(store.shared.handle()?.as_ref(), SCHEMA_KEY)?;
        if let Some(v) = meta.filter(|v| *v > SCHEMA_VERSION) {
            return Err(StoreError::NewerSchema {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(store)
    }
}

/// Open (creating) the store file at `path` for writing, through its
/// journal ([`super::journal`]).
/// Returns the number of the last redo record the store holds.
pub fn open_database(
    path: &std::path::Path,
) -> Result<(Database, Arc<JournalBackend>, u64), StoreError> {
    let started = std::time::Instant::now();
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    let unavailable = |e: std::io::Error| StoreError::Unavailable(e.to_string());
    #[cfg(feature = "forensics")]
    let backend = if std::env::var_os(super::power_loss::ENV).is_some() {
        tracing::warn!(
            "test mode: writes not yet synced are lost if this process dies (simulated power loss)"
        );
        use super::power_loss::PowerLossBackend;
        let journal_path = super::journal::journal_path(path);
        let lock = super::journal::lock_journal(&journal_path, true).map_err(unavailable)?;
        JournalBackend::open_on(
            Box::new(PowerLossBackend::open(path).map_err(unavailable)?),
            Box::new(PowerLossBackend::open(&journal_path).map_err(unavailable)?),
            lock,
            true,
        )
        .map_err(unavailable)?
    } else {
        JournalBackend::open(path).map_err(unavailable)?
    };
    #[cfg(not(feature = "forensics"))]
    let backend = JournalBackend::open(path).map_err(unavailable)?;
    let journal_read = started.elapsed();
    let journal = Arc::new(backend);
    let pending = journal.take_pending_redo();
    let repair = RepairProgress::new(false);
    builder.set_repair_callback(repair.callback());
    let redb_started = std::time::Instant::now();
    let db = builder.create_with_backend(SharedJournal(journal.clone()))?;
    let redb_open = redb_started.elapsed();
    let repaired = repair.finished();
    // Before anything else, in one durable commit; until it is made, the
    // journal keeps the records (no checkpoint ends their run).
    let redo_started = std::time::Instant::now();
    let redo_seq = redo_pending(&db, &pending, false)?;
    journal.redo_durable().map_err(unavailable)?;
    if repaired.is_some() || !pending.is_empty() {
        // What an open that recovered the store (a start after a crash, or
        // a reopen after a failed write) spent where (ca-bench --seed reads
        // it).
        tracing::info!(
            journal_read = format!("{:.2}", journal_read.as_secs_f64()),
            redb_open = format!("{:.2}", redb_open.as_secs_f64()),
            redb_repair = format!("{:.2}", repaired.unwrap_or_default().as_secs_f64()),
            redo = format!("{:.2}", redo_started.elapsed().as_secs_f64()),
            "store: opened with recovery (seconds)"
        );
    }
    Ok((db, journal, redo_seq))
}

/// Recover the store file at `path` if a crash left it (redb's repair, the
/// journal's writes redone) and close it cleanly, changing nothing else: no
/// schema raised, no table made. For a look that must come before the open
/// for writing (the master key's check), so that it needs no recovery of its
/// own and the open after it none either.
pub fn recover(path: &std::path::Path) -> Result<(), StoreError> {
    let (db, journal, _) = open_database(path)?;
    drop(db);
    drop(journal);
    Ok(())
}

/// What an open says of redb's repair after an unclean shutdown (it walks
/// every table, so on a large store it takes a while): that it started, its
/// progress every tenth, and how long it took.
#[derive(Clone)]
struct RepairProgress {
    /// Set once the repair has begun: when, and the last tenth logged. (A
    /// mutex only because redb wants a `'static` callback: it calls it on the
    /// opening thread.)
    state: Arc<Mutex<Option<(std::time::Instant, u32)>>>,
    /// A repair in memory only (a read-only open) says so.
    in_memory: bool,
}

impl RepairProgress {
    fn new(in_memory: bool) -> RepairProgress {
        RepairProgress {
            state: Arc::default(),
            in_memory,
        }
    }

    fn callback(&self) -> impl Fn(&mut redb::RepairSession) + 'static {
        let (state, in_memory) = (self.state.clone(), self.in_memory);
        move |session| {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let tenth = (session.progress() * 10.0) as u32;
            match s.as_mut() {
                None => {
                    if in_memory {
                        tracing::warn!(
                            "store: not closed cleanly; redb is checking and repairing it in memory, to read it (the file is left as it is; on a large store this takes a while)"
                        );
                    } else {
                        tracing::warn!(
                            "store: not closed cleanly; redb is checking and repairing it (on a large store this takes a while)"
                        );
                    }
                    *s = Some((std::time::Instant::now(), tenth));
                }
                Some((_, logged)) if tenth > *logged => {
                    *logged = tenth;
                    tracing::info!(percent = tenth * 10, "store: repairing");
                }
                Some(_) => {}
            }
        }
    }

    /// The repair is over: how long it took, if one ran.
    fn finished(&self) -> Option<std::time::Duration> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let took = s.as_ref()?.0.elapsed();
        tracing::warn!(
            seconds = format!("{:.2}", took.as_secs_f64()),
            in_memory = self.in_memory,
            "store: repaired"
        );
        Some(took)
    }
}

/// Open the store file at `path` without changing it (nor its journal).
/// A store a crash left (writes to redo, or redb's own repair due) is
/// brought up to date in this process's memory.
pub fn open_read_only(path: &std::path::Path) -> Result<Handle, StoreError> {
    // Recovering in memory, it always has a handle to give.
    open_read_only_with(path, true)?.ok_or_else(|| StoreError::Db("no read-only handle".into()))
}

/// As [`open_read_only`], None for a store a crash left.
pub fn open_read_only_if_clean(path: &std::path::Path) -> Result<Option<Handle>, StoreError> {
    open_read_only_with(path, false)
}

fn open_read_only_with(
    path: &std::path::Path,
    recover_in_memory: bool,
) -> Result<Option<Handle>, StoreError> {
    let open = || {
        JournalBackend::open_read_only(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                StoreError::NotFound(format!("{}: {e}", path.display()))
            }
            _ => StoreError::Unavailable(format!("{}: {e}", path.display())),
        })
    };
    let backend = open()?;
    let pending = backend.take_pending_redo();
    if pending.is_empty() {
        match redb::Builder::new().open_read_only_with_backend(backend) {
            Ok(db) => return Ok(Some(Handle::Ro(db))),
            // A read-only open does not repair; a scratch one may.
            Err(redb::DatabaseError::RepairAborted) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !recover_in_memory {
        return Ok(None);
    }
    let backend = open()?;
    let pending = backend.take_pending_redo();
    let repair = RepairProgress::new(true);
    let db = redb::Builder::new()
        .set_repair_callback(repair.callback())
        .create_with_backend(backend.into_scratch())?;
    repair.finished();
    redo_pending(&db, &pending, true)?;
    Ok(Some(Handle::Scratch(db)))
}
