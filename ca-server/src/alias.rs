//! CA aliases (the KMS alias idea): a stable name such as `issuing` that
//! points at the CA that issues now. Clients that issue by alias keep their
//! configuration when the CA is rotated: rotation makes a new intermediate
//! under the same parent, repoints the alias and retires the old CA, which
//! keeps serving its CRL and OCSP (the public listener does not look at the
//! status) until its last certificate expires, but issues nothing.
//!
//! Stored in the redb table `aliases` (alias → CA id).

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::store::{Store, StoreError};

pub const ALIASES_TABLE: TableDefinition<&str, &str> = TableDefinition::new("aliases");

/// The alias init points at the issuing CA.
pub const DEFAULT_ALIAS: &str = "issuing";

/// 1-64 of a-z 0-9 - _, starting with a letter, and never shaped like a CA id
/// (so an id and an alias can never be confused).
pub fn is_alias(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !crate::ids::is_ca_id(s)
}

pub fn get(store: &Store, alias: &str) -> Result<Option<String>, StoreError> {
    let r = store.database().begin_read()?;
    let t = match r.open_table(ALIASES_TABLE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let v = t.get(alias)?;
    Ok(v.map(|v| v.value().to_string()))
}

pub fn list(store: &Store) -> Result<Vec<(String, String)>, StoreError> {
    let r = store.database().begin_read()?;
    let t = match r.open_table(ALIASES_TABLE) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for item in t.iter()? {
        let (k, v) = item?;
        out.push((k.value().to_string(), v.value().to_string()));
    }
    Ok(out)
}

/// Point `alias` at `ca_id` (inside a write transaction).
pub fn put(txn: &WriteTransaction, alias: &str, ca_id: &str) -> Result<(), StoreError> {
    txn.open_table(ALIASES_TABLE)?.insert(alias, ca_id)?;
    Ok(())
}

/// Where `alias` points, inside a write transaction.
pub fn get_in(txn: &WriteTransaction, alias: &str) -> Result<Option<String>, StoreError> {
    let t = txn.open_table(ALIASES_TABLE)?;
    let v = t.get(alias)?.map(|v| v.value().to_string());
    Ok(v)
}
