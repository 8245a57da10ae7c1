//! ACME accounts, orders and authorizations.

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::tables::*;
use super::writer::Handle;
use crate::store::{AcmeAccount, AcmeAuthz, AcmeEabKey, AcmeOrder, StoreError};

pub const ACME_ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_accounts");
pub const ACME_ACCOUNT_KEYS: TableDefinition<&str, &str> =
    TableDefinition::new("acme_account_keys");
pub const ACME_ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_orders");
pub const ACME_AUTHZS: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_authzs");
pub const ACME_EAB_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("acme_eab_keys");

fn all<T: for<'de> serde::Deserialize<'de>>(
    h: &Handle,
    def: TableDefinition<&str, &[u8]>,
) -> Result<Vec<T>, StoreError> {
    let r = h.begin_read()?;
    let t = match r.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for item in t.iter()? {
        let (_, v) = item?;
        out.push(unjson(v.value())?);
    }
    Ok(out)
}

pub fn accounts(h: &Handle) -> Result<Vec<AcmeAccount>, StoreError> {
    let mut v: Vec<AcmeAccount> = all(h, ACME_ACCOUNTS)?;
    v.sort_by_key(|a| a.created_at);
    Ok(v)
}

/// An account's orders (a scan: orders are few next to certificates).
pub fn orders_of(h: &Handle, account: &str) -> Result<Vec<AcmeOrder>, StoreError> {
    let mut v: Vec<AcmeOrder> = all::<AcmeOrder>(h, ACME_ORDERS)?
        .into_iter()
        .filter(|o| o.account == account)
        .collect();
    v.sort_by_key(|o| o.created_at);
    Ok(v)
}

pub fn eab_key(h: &Handle, kid: &str) -> Result<Option<AcmeEabKey>, StoreError> {
    get(h, ACME_EAB_KEYS, kid)
}

pub fn eab_keys(h: &Handle) -> Result<Vec<AcmeEabKey>, StoreError> {
    let mut v: Vec<AcmeEabKey> = all(h, ACME_EAB_KEYS)?;
    v.sort_by_key(|k| k.created_at);
    Ok(v)
}

pub fn put_eab_key(txn: &WriteTransaction, key: &AcmeEabKey, new: bool) -> Result<(), StoreError> {
    let bytes = json(key)?;
    let mut t = txn.open_table(ACME_EAB_KEYS)?;
    let exists = t.get(key.kid.as_str())?.is_some();
    if new && exists {
        return Err(StoreError::Conflict(format!("EAB key {} exists", key.kid)));
    }
    if !new && !exists {
        return Err(StoreError::NotFound(format!("no EAB key {}", key.kid)));
    }
    t.insert(key.kid.as_str(), bytes.as_slice())?;
    Ok(())
}

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
    let mut bound = None;
    if let Some(kid) = &a.eab_kid {
        let eab = txn.open_table(ACME_EAB_KEYS)?;
        let mut key: AcmeEabKey = match eab.get(kid.as_str())? {
            Some(v) => unjson(v.value())?,
            None => return Err(StoreError::Conflict(format!("eab:no EAB key {kid}"))),
        };
        if key.revoked || key.account.is_some() {
            return Err(StoreError::Conflict(format!(
                "eab:EAB key {kid} is revoked or bound to an account already"
            )));
        }
        key.account = Some(a.id.clone());
        bound = Some((kid.clone(), json(&key)?));
    }
    if let Some((kid, bytes)) = bound {
        txn.open_table(ACME_EAB_KEYS)?
            .insert(kid.as_str(), bytes.as_slice())?;
    }
    keys.insert(a.thumbprint.as_str(), a.id.as_str())?;
    accounts.insert(a.id.as_str(), bytes.as_slice())?;
    Ok(())
}

pub fn update_account(
    txn: &WriteTransaction,
    a: &AcmeAccount,
    expected_thumbprint: &str,
) -> Result<(), StoreError> {
    let bytes = json(a)?;
    let mut accounts = txn.open_table(ACME_ACCOUNTS)?;
    let old: AcmeAccount = match accounts.get(a.id.as_str())? {
        Some(v) => unjson(v.value())?,
        None => return Err(StoreError::NotFound(format!("no account {}", a.id))),
    };
    if old.thumbprint != expected_thumbprint || old.status != "valid" {
        return Err(StoreError::Conflict(
            "stale:the account changed meanwhile (its key or status); retry".into(),
        ));
    }
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
