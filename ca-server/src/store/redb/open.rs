//! Opening the store: the schema version checked (and raised), every table
//! made, the writer thread started; or a read-only open for offline tools.

use std::path::Path;
use std::sync::{Arc, Mutex};

use redb::ReadableTable;
use tokio::sync::mpsc;

use super::tables::*;
use super::writer::{self, Handle, Job, Shared};
use super::{acme, events, reads, RedbStore, DB_FILE, SCHEMA_VERSION};
use crate::store::StoreError;

impl RedbStore {
    /// Open (or create) the store in `dir`, check its schema version and start
    /// the writer. Reads nothing else: start-up does not depend on the data size.
    pub fn open(dir: &Path, boot_id: String) -> Result<RedbStore, StoreError> {
        let path = dir.join(DB_FILE);
        let (db, journal, redo_seq) = writer::open_database(&path)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| StoreError::Db(format!("setting permissions: {e}")))?;
        }
        let txn = db.begin_write()?;
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
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
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
        let handle = writer::open_read_only(&path)?;
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
