//! Offline surgery for tests and forensics on a stopped server's store: the
//! audit trail's raw entries, so a test can alter one and see verification
//! name it; a certificate's index entries, for `ca-server check` to find
//! missing. Nothing in the server calls these.

use std::path::Path;

use super::tables::{AUDIT, AUDIT_DIGESTS, AUDIT_HEAD, CA_KEYS, CERTS, EXPIRY, POLICIES, SERIALS};
use super::DB_FILE;
use crate::store::StoreError;

fn open(dir: &Path) -> Result<redb::Database, StoreError> {
    super::open::open_database(&dir.join(DB_FILE)).map(|(db, _, _)| db)
}

/// Audit entry `seq` as JSON.
pub fn audit_entry(dir: &Path, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
    use redb::ReadableDatabase;
    let db = open(dir)?;
    let r = db.begin_read()?;
    let t = r.open_table(AUDIT)?;
    // As JSON whichever encoding it is stored in, so tests can alter a field.
    let v = t
        .get(seq)?
        .map(|v| super::codec::audit_as_json(v.value()))
        .transpose()?;
    Ok(v)
}

/// Replace (Some: JSON, which the store reads as it reads entries written
/// before the binary encoding) or remove (None) audit entry `seq`.
pub fn set_audit_entry(dir: &Path, seq: u64, bytes: Option<&[u8]>) -> Result<(), StoreError> {
    let db = open(dir)?;
    let txn = db.begin_write()?;
    {
        let mut t = txn.open_table(AUDIT)?;
        match bytes {
            Some(b) => {
                t.insert(seq, b)?;
            }
            None => {
                t.remove(seq)?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Set the recorded head of the trail (a rewrite that covers its tracks).
pub fn set_audit_head(dir: &Path, seq: u64, hash: &str) -> Result<(), StoreError> {
    let db = open(dir)?;
    let txn = db.begin_write()?;
    let head = super::tables::json(&(seq, hash))?;
    txn.open_table(AUDIT_HEAD)?
        .insert("head", head.as_slice())?;
    txn.commit()?;
    Ok(())
}

/// Replace the stored bytes of signed digest `number`.
pub fn set_audit_digest(dir: &Path, number: u64, bytes: &[u8]) -> Result<(), StoreError> {
    let db = open(dir)?;
    let txn = db.begin_write()?;
    txn.open_table(AUDIT_DIGESTS)?.insert(number, bytes)?;
    txn.commit()?;
    Ok(())
}

/// Drop the policies table (a data directory from before policies).
pub fn drop_policies(dir: &Path) -> Result<(), StoreError> {
    let db = open(dir)?;
    let txn = db.begin_write()?;
    txn.delete_table(POLICIES)?;
    txn.commit()?;
    Ok(())
}

/// Store statement `id` as the raw bytes given (one a newer version wrote,
/// which this one cannot read).
pub fn set_policy(dir: &Path, id: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let db = open(dir)?;
    let txn = db.begin_write()?;
    txn.open_table(POLICIES)?.insert(id, bytes)?;
    txn.commit()?;
    Ok(())
}

/// Replace the sealed key record of a CA (a corrupt record).
pub fn set_sealed_key(dir: &Path, ca_id: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let db = open(dir)?;
    let txn = db.begin_write()?;
    txn.open_table(CA_KEYS)?.insert(ca_id, bytes)?;
    txn.commit()?;
    Ok(())
}

/// Remove the sealed key of a CA (a store that lost a key).
pub fn remove_sealed_key(dir: &Path, ca_id: &str) -> Result<(), StoreError> {
    let db = open(dir)?;
    let txn = db.begin_write()?;
    txn.open_table(CA_KEYS)?.remove(ca_id)?;
    txn.commit()?;
    Ok(())
}

/// Remove certificate `serial`'s entries in the serials and expiry indexes
/// (its record stays).
pub fn drop_index_entries(dir: &Path, ca_id: &str, serial: &str) -> Result<(), StoreError> {
    use redb::ReadableTable;
    let db = open(dir)?;
    let txn = db.begin_write()?;
    let key = crate::store::cert_key(ca_id, serial);
    let rec = match txn.open_table(CERTS)?.get(key.as_str())? {
        Some(v) => super::codec::decode_cert(v.value())?,
        None => return Err(StoreError::NotFound(key)),
    };
    txn.open_table(SERIALS)?.remove(serial)?;
    let not_after = u64::try_from(rec.not_after).unwrap_or(0);
    txn.open_table(EXPIRY)?.remove((not_after, key.as_str()))?;
    txn.commit()?;
    Ok(())
}

/// Drop the CRL entry of `ca_id`'s certificate `serial`, its revocation
/// kept: the next CRL would leave the certificate out.
pub fn drop_crl_entry(dir: &Path, ca_id: &str, serial: &str) -> Result<(), StoreError> {
    let db = open(dir)?;
    let txn = db.begin_write()?;
    let key = crate::store::cert_key(ca_id, serial);
    if txn
        .open_table(super::tables::CRL_ENTRIES)?
        .remove(key.as_str())?
        .is_none()
    {
        return Err(StoreError::NotFound(key));
    }
    txn.commit()?;
    Ok(())
}

/// Record idempotency `token` as naming `ca_id`'s certificate `serial`,
/// whatever the store holds of it.
pub fn put_idempotency_token(
    dir: &Path,
    token: &str,
    ca_id: &str,
    serial: &str,
) -> Result<(), StoreError> {
    let db = open(dir)?;
    let txn = db.begin_write()?;
    let idem = crate::store::IdemRecord {
        request_sha256: "00".repeat(32),
        ca_id: ca_id.into(),
        serial: serial.into(),
    };
    txn.open_table(super::tables::IDEMPOTENCY)?
        .insert(token, super::tables::json(&idem)?.as_slice())?;
    txn.commit()?;
    Ok(())
}

/// Point every ACME order at `ca_id`'s certificate `serial`, whatever the
/// store holds of it; returns how many orders there were.
pub fn repoint_acme_orders(dir: &Path, ca_id: &str, serial: &str) -> Result<usize, StoreError> {
    use redb::ReadableTable;
    let db = open(dir)?;
    let txn = db.begin_write()?;
    let mut n = 0;
    {
        let mut orders = txn.open_table(super::acme::ACME_ORDERS)?;
        let mut all = Vec::new();
        for item in orders.iter()? {
            let (k, v) = item?;
            let order: crate::store::AcmeOrder = super::tables::unjson(v.value())?;
            all.push((k.value().to_string(), order));
        }
        for (id, mut order) in all {
            order.certificate = Some((ca_id.into(), serial.into()));
            orders.insert(id.as_str(), super::tables::json(&order)?.as_slice())?;
            n += 1;
        }
    }
    txn.commit()?;
    Ok(n)
}

/// Remove every ACME authorization and every account key's index entry
/// (the orders and accounts kept); returns how many of each there were.
pub fn drop_acme_links(dir: &Path) -> Result<(usize, usize), StoreError> {
    use redb::ReadableTableMetadata;
    let db = open(dir)?;
    let txn = db.begin_write()?;
    let dropped = {
        let mut authzs = txn.open_table(super::acme::ACME_AUTHZS)?;
        let mut keys = txn.open_table(super::acme::ACME_ACCOUNT_KEYS)?;
        let counts = (authzs.len()?, keys.len()?);
        authzs.retain(|_, _| false)?;
        keys.retain(|_, _| false)?;
        (
            usize::try_from(counts.0).unwrap_or(usize::MAX),
            usize::try_from(counts.1).unwrap_or(usize::MAX),
        )
    };
    txn.commit()?;
    Ok(dropped)
}

/// Claim `serial` for `ca_id` in the serials index, with no record.
pub fn claim_serial(dir: &Path, ca_id: &str, serial: &str) -> Result<(), StoreError> {
    let db = open(dir)?;
    let txn = db.begin_write()?;
    txn.open_table(SERIALS)?.insert(serial, ca_id)?;
    txn.commit()?;
    Ok(())
}
