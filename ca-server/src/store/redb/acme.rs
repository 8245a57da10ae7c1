//! ACME accounts, orders and authorizations.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::tables::*;
use super::writer::Handle;
use crate::store::{AcmeAccount, AcmeAuthz, AcmeOrder, StoreError};

pub const ACME_ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_accounts");
pub const ACME_ACCOUNT_KEYS: TableDefinition<&str, &str> =
    TableDefinition::new("acme_account_keys");
pub const ACME_ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_orders");
pub const ACME_AUTHZS: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_authzs");

fn get<T: for<'de> serde::Deserialize<'de>>(
    h: &Handle,
    def: TableDefinition<&str, &[u8]>,
    id: &str,
) -> Result<Option<T>, StoreError> {
    let r = h.begin_read()?;
    let t = match r.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let v = t.get(id)?;
    v.map(|v| unjson(v.value())).transpose()
}

pub fn account(h: &Handle, id: &str) -> Result<Option<AcmeAccount>, StoreError> {
    get(h, ACME_ACCOUNTS, id)
}

pub fn account_by_key(h: &Handle, thumbprint: &str) -> Result<Option<AcmeAccount>, StoreError> {
    let id = {
        let r = h.begin_read()?;
        let t = match r.open_table(ACME_ACCOUNT_KEYS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let v = t.get(thumbprint)?;
        v.map(|v| v.value().to_string())
    };
    match id {
        Some(id) => account(h, &id),
        None => Ok(None),
    }
}

pub fn order(h: &Handle, id: &str) -> Result<Option<AcmeOrder>, StoreError> {
    get(h, ACME_ORDERS, id)
}

pub fn authz(h: &Handle, id: &str) -> Result<Option<AcmeAuthz>, StoreError> {
    get(h, ACME_AUTHZS, id)
}

pub fn create_account(txn: &WriteTransaction, a: &AcmeAccount) -> Result<(), StoreError> {
    let mut keys = txn.open_table(ACME_ACCOUNT_KEYS)?;
    if let Some(existing) = keys.get(a.thumbprint.as_str())? {
        return Err(StoreError::Conflict(existing.value().to_string()));
    }
    let bytes = json(a)?;
    let mut accounts = txn.open_table(ACME_ACCOUNTS)?;
    if accounts.get(a.id.as_str())?.is_some() {
        return Err(StoreError::Conflict(a.id.clone()));
    }
    keys.insert(a.thumbprint.as_str(), a.id.as_str())?;
    accounts.insert(a.id.as_str(), bytes.as_slice())?;
    Ok(())
}

pub fn update_account(txn: &WriteTransaction, a: &AcmeAccount) -> Result<(), StoreError> {
    let bytes = json(a)?;
    let mut accounts = txn.open_table(ACME_ACCOUNTS)?;
    let old: AcmeAccount = match accounts.get(a.id.as_str())? {
        Some(v) => unjson(v.value())?,
        None => return Err(StoreError::NotFound(format!("no account {}", a.id))),
    };
    if old.thumbprint != a.thumbprint {
        // A key change: the new key must not be another account's.
        let mut keys = txn.open_table(ACME_ACCOUNT_KEYS)?;
        if let Some(existing) = keys.get(a.thumbprint.as_str())? {
            return Err(StoreError::Conflict(existing.value().to_string()));
        }
        keys.remove(old.thumbprint.as_str())?;
        keys.insert(a.thumbprint.as_str(), a.id.as_str())?;
    }
    accounts.insert(a.id.as_str(), bytes.as_slice())?;
    Ok(())
}

pub fn put(
    txn: &WriteTransaction,
    order: Option<&AcmeOrder>,
    authzs: &[AcmeAuthz],
) -> Result<(), StoreError> {
    let order_bytes = order.map(json).transpose()?;
    let authz_bytes: Vec<(String, Vec<u8>)> = authzs
        .iter()
        .map(|a| Ok((a.id.clone(), json(a)?)))
        .collect::<Result<_, StoreError>>()?;
    if let (Some(o), Some(b)) = (order, order_bytes) {
        txn.open_table(ACME_ORDERS)?
            .insert(o.id.as_str(), b.as_slice())?;
    }
    let mut t = txn.open_table(ACME_AUTHZS)?;
    for (id, b) in &authz_bytes {
        t.insert(id.as_str(), b.as_slice())?;
    }
    Ok(())
}
