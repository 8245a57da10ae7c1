//! What each table of a stopped server's store holds: entries and bytes, for
//! the benches (store growth per certificate, table by table) and operators.

use std::path::Path;

use redb::{ReadableTableMetadata, TableHandle};

use super::DB_FILE;
use crate::store::StoreError;

/// One table's share of the file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TableUsage {
    pub name: String,
    pub entries: u64,
    /// Keys and values as stored.
    pub stored_bytes: u64,
    /// Page headers and branch pages.
    pub metadata_bytes: u64,
    /// Unused space inside the table's pages.
    pub fragmented_bytes: u64,
}

/// The whole file: its length and each table's usage, largest first.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StoreUsage {
    pub file_bytes: u64,
    pub tables: Vec<TableUsage>,
}

/// Read the usage of the store in `dir` (the server must be stopped).
pub fn store_usage(dir: &Path) -> Result<StoreUsage, StoreError> {
    let path = dir.join(DB_FILE);
    let file_bytes = std::fs::metadata(&path)
        .map_err(|e| StoreError::Db(format!("reading {}: {e}", path.display())))?
        .len();
    let db = super::open::open_read_only(&path)?;
    let r = db.begin_read()?;
    let mut tables = Vec::new();
    for handle in r.list_tables()? {
        let name = handle.name().to_string();
        let t = r.open_untyped_table(handle)?;
        let s = t.stats()?;
        tables.push(TableUsage {
            name,
            entries: t.len()?,
            stored_bytes: s.stored_bytes(),
            metadata_bytes: s.metadata_bytes(),
            fragmented_bytes: s.fragmented_bytes(),
        });
    }
    tables
        .sort_by_key(|t| std::cmp::Reverse(t.stored_bytes + t.metadata_bytes + t.fragmented_bytes));
    Ok(StoreUsage { file_bytes, tables })
}
