//! Consistent snapshots of a live store, and restoring one.
//!
//! A snapshot copies every table inside one read transaction into a new redb
//! file: it is the store as of one commit, whatever the writer does
//! meanwhile, and is compacted as a side effect. Beside the tables it carries
//! the data directory's other files the caller names (config, the API's TLS
//! certificate) in a table of its own, taken out again on restore.

use std::path::Path;

use redb::{
    Database, Key, ReadTransaction, ReadableTable, TableDefinition, TableError, Value,
    WriteTransaction,
};

use super::tables::*;
use super::writer::Handle;
use crate::store::StoreError;

/// Files of the data directory carried in a snapshot: relative path → bytes.
const BACKUP_FILES: TableDefinition<&str, &[u8]> = TableDefinition::new("backup_files");

/// Copy one table; a table the source never made is skipped. Returns rows.
fn copy_table<K: Key + 'static, V: Value + 'static>(
    r: &ReadTransaction,
    w: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let src = match r.open_table(def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut dst = w.open_table(def)?;
    let mut n = 0;
    for item in src.iter()? {
        let (k, v) = item?;
        dst.insert(k.value(), v.value())?;
        n += 1;
    }
    Ok(n)
}

/// What a snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotCounts {
    pub cas: u64,
    pub certificates: u64,
    pub audit_entries: u64,
}

/// Write a snapshot of `h` to `out` (which must not exist), with `files`.
pub fn snapshot(
    h: &Handle,
    out: &Path,
    files: &[(String, Vec<u8>)],
) -> Result<SnapshotCounts, StoreError> {
    let r = h.begin_read()?;
    let db = Database::create(out)?;
    let w = db.begin_write()?;
    let mut counts = SnapshotCounts::default();
    copy_table(&r, &w, META)?;
    counts.cas = copy_table(&r, &w, CAS)?;
    counts.certificates = copy_table(&r, &w, CERTS)?;
    copy_table(&r, &w, CERT_DER)?;
    copy_table(&r, &w, CERT_DER_SEQ)?;
    copy_table(&r, &w, DER_DICTS)?;
    copy_table(&r, &w, CA_DER_DICT)?;
    copy_table(&r, &w, SERIALS)?;
    copy_table(&r, &w, EXPIRY)?;
    copy_table(&r, &w, REVOCATIONS)?;
    copy_table(&r, &w, IDEMPOTENCY)?;
    copy_table(&r, &w, CRL_ENTRIES)?;
    copy_table(&r, &w, CRL_META)?;
    copy_table(&r, &w, ALIASES)?;
    copy_table(&r, &w, POLICIES)?;
    copy_table(&r, &w, CA_KEYS)?;
    copy_table(&r, &w, KEY_META)?;
    counts.audit_entries = copy_table(&r, &w, AUDIT)?;
    copy_table(&r, &w, AUDIT_HEAD)?;
    copy_table(&r, &w, BLOCKED_KEYS)?;
    copy_table(&r, &w, AUDIT_DIGESTS)?;
    copy_table(&r, &w, super::events::EVENTS)?;
    copy_table(&r, &w, super::events::EVENT_MARKS)?;
    copy_table(&r, &w, super::events::WEBHOOKS)?;
    copy_table(&r, &w, super::acme::ACME_ACCOUNTS)?;
    copy_table(&r, &w, super::acme::ACME_ACCOUNT_KEYS)?;
    copy_table(&r, &w, super::acme::ACME_ORDERS)?;
    copy_table(&r, &w, super::acme::ACME_AUTHZS)?;
    copy_table(&r, &w, super::acme::ACME_EAB_KEYS)?;
    {
        let mut t = w.open_table(BACKUP_FILES)?;
        for (name, bytes) in files {
            t.insert(name.as_str(), bytes.as_slice())?;
        }
    }
    w.commit()?;
    drop(db);
    Ok(counts)
}

/// Make `db_path` (a copy of a snapshot) a store again: take the carried
/// files out of it and return them.
pub fn take_files(db_path: &Path) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let db = Database::open(db_path)?;
    let w = db.begin_write()?;
    let mut files = Vec::new();
    {
        let t = w.open_table(BACKUP_FILES)?;
        for item in t.iter()? {
            let (k, v) = item?;
            files.push((k.value().to_string(), v.value().to_vec()));
        }
    }
    if files.is_empty() {
        return Err(StoreError::Db(
            "this file is not a ca-server backup (it carries no data directory files)".into(),
        ));
    }
    w.delete_table(BACKUP_FILES)?;
    w.commit()?;
    Ok(files)
}
