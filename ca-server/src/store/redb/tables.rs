//! The redb layout: table definitions and the operations that run inside one
//! write transaction. Each checks everything first and writes last, so a
//! refused operation leaves the shared group-commit transaction untouched.

use ca_core::audit_chain::AuditEntry;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::codec::{decode_audit, decode_cert, decode_cert_and_der_seq, encode_cert};
use super::der_pack;
use super::issue_tables::IssueTables;
use crate::store::{
    cert_key, revocation_to_record, stored_crl_entry, AuditDraft, BlockedKey, CaChange, CaRecord,
    CertRecord, CertStatus, CrlMeta, IdemRecord, KeyMeta, NewCaRecord, ReserveOutcome, Revocation,
    StoreError, KEY_COMPROMISE,
};

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const CAS: TableDefinition<&str, &[u8]> = TableDefinition::new("cas");
pub const CERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("certs");
/// DER by certificate key: certificates stored before schema 2.
pub const CERT_DER: TableDefinition<&str, &[u8]> = TableDefinition::new("cert_der");
/// DER by a number the writer gives in commit order (the record names it).
/// New keys are always the largest, so redb appends and its pages stay
/// full; keyed by certificate, every insert that is not the tree's last key
/// (any CA's whose id sorts before another's) splits a full page in half.
pub const CERT_DER_SEQ: TableDefinition<u64, &[u8]> = TableDefinition::new("cert_der_seq");
/// The certificates `cert_der_seq` values are packed against (see
/// [`der_pack`](super::der_pack)): number → DER, written once, never changed.
pub const DER_DICTS: TableDefinition<u64, &[u8]> = TableDefinition::new("der_dicts");
/// `CA id/profile` → the number of its dictionary certificate.
pub const CA_DER_DICT: TableDefinition<&str, u64> = TableDefinition::new("ca_der_dict");
pub const SERIALS: TableDefinition<&str, &str> = TableDefinition::new("serials");
pub const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
pub const REVOCATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("revocations");
pub const IDEMPOTENCY: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency");
pub const CRL_ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("crl_entries");
pub const CRL_META: TableDefinition<&str, &[u8]> = TableDefinition::new("crl_meta");
pub const ALIASES: TableDefinition<&str, &str> = TableDefinition::new("aliases");
pub const POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("policies");
pub const CA_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("ca_keys");
pub const KEY_META: TableDefinition<&str, &str> = TableDefinition::new("key_meta");
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
pub const AUDIT_HEAD: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_head");
pub const BLOCKED_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("blocked_keys");
/// Signed digests of the audit trail: number → JSON `AuditDigest`.
pub const AUDIT_DIGESTS: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_digests");

/// `meta` keys.
pub const SCHEMA_KEY: &str = "schema_version";
/// Set once every revocation has its `crl_entries` row.
pub const CRL_ENTRIES_COMPLETE: &str = "crl_entries_complete";

pub fn json<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn unjson<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// redb's errors, sorted into what the caller can do about them: an I/O
/// error (disk full, a failed device, or redb refusing after one) is
/// `Unavailable` and makes the writer reopen the database.
pub fn classify(e: redb::Error) -> StoreError {
    match e {
        redb::Error::Io(io) => StoreError::Unavailable(io_reason(&io)),
        redb::Error::PreviousIo => {
            StoreError::Unavailable("an earlier write failed; the store is reopening".into())
        }
        redb::Error::Corrupted(m) => StoreError::Corrupt(m),
        other => StoreError::Db(other.to_string()),
    }
}

fn io_reason(io: &std::io::Error) -> String {
    if io.raw_os_error() == Some(28) || io.kind() == std::io::ErrorKind::StorageFull {
        "no space left on the device that holds the store".into()
    } else {
        format!("I/O error: {}", io.kind())
    }
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                classify(e.into())
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

// ---- CAs and aliases ----------------------------------------------------------

/// Create or replace a CA record (and keep its serial in the global index).
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

/// A new CA, its sealed key and its certificate, refused if any exists.
pub fn create_ca(txn: &WriteTransaction, new: &NewCaRecord) -> Result<(), StoreError> {
    let id = new.ca.id.as_str();
    if txn.open_table(CAS)?.get(id)?.is_some() {
        return Err(StoreError::Conflict(format!("CA {id} already exists")));
    }
    if txn.open_table(CA_KEYS)?.get(id)?.is_some() {
        return Err(StoreError::Conflict(format!("CA {id} already has a key")));
    }
    let claim = match &new.certificate {
        Some((rec, _)) => check_issuable(txn, rec)?,
        None => false,
    };
    txn.open_table(CA_KEYS)?
        .insert(id, new.sealed_key.as_slice())?;
    if let Some((rec, der)) = &new.certificate {
        if claim {
            claim_serial(txn, rec)?;
        }
        store_issued(txn, rec, der)?;
    }
    put_ca(txn, &new.ca)
}

pub fn update_ca(
    txn: &WriteTransaction,
    id: &str,
    change: CaChange,
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

pub fn get_alias(txn: &WriteTransaction, alias: &str) -> Result<Option<String>, StoreError> {
    let t = txn.open_table(ALIASES)?;
    let v = t.get(alias)?.map(|v| v.value().to_string());
    Ok(v)
}

pub fn put_alias(txn: &WriteTransaction, alias: &str, ca_id: &str) -> Result<(), StoreError> {
    txn.open_table(ALIASES)?.insert(alias, ca_id)?;
    Ok(())
}

// ---- certificates ------------------------------------------------------------

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
                Some(c) => Some(decode_cert(c.value())?),
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
    let v = encode_cert(intent, None)?;
    let idem_v = token.map(|(_, i)| json(i)).transpose()?;
    txn.open_table(CERTS)?.insert(key.as_str(), v.as_slice())?;
    txn.open_table(SERIALS)?
        .insert(intent.serial.as_str(), intent.ca_id.as_str())?;
    if let (Some((token, _)), Some(iv)) = (token, idem_v) {
        txn.open_table(IDEMPOTENCY)?.insert(token, iv.as_slice())?;
    }
    Ok(ReserveOutcome::Reserved)
}

/// The certificate's record, its DER and its expiry entry (see
/// [`IssueTables::store_issued`]).
pub fn store_issued(
    txn: &WriteTransaction,
    rec: &CertRecord,
    der: &[u8],
) -> Result<(), StoreError> {
    IssueTables::new(txn).store_issued(rec, der)
}

/// A certificate as `cert_der_seq` holds it, whole again (`dicts`: the
/// transaction's `der_dicts`, None when the store has none).
pub fn unpack_der(
    dicts: Option<&impl ReadableTable<u64, &'static [u8]>>,
    stored: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let Some(id) = der_pack::dict_of(stored)? else {
        return der_pack::unpack(stored, None);
    };
    let dict = match dicts {
        Some(t) => t.get(id)?,
        None => None,
    }
    .ok_or_else(|| StoreError::Corrupt(format!("dictionary certificate {id} is missing")))?;
    der_pack::unpack(stored, Some(dict.value()))
}

/// See [`IssueTables::check_issuable`].
fn check_issuable(txn: &WriteTransaction, rec: &CertRecord) -> Result<bool, StoreError> {
    IssueTables::new(txn).check_issuable(rec)
}

fn claim_serial(txn: &WriteTransaction, rec: &CertRecord) -> Result<(), StoreError> {
    IssueTables::new(txn).claim_serial(rec)
}

/// Store certificates made elsewhere, all or none.
pub fn import_certs(
    txn: &WriteTransaction,
    certs: &[(CertRecord, Vec<u8>)],
) -> Result<u64, StoreError> {
    {
        let serials = txn.open_table(SERIALS)?;
        for (rec, _) in certs {
            if rec.status == CertStatus::Reserved {
                return Err(StoreError::Conflict(format!(
                    "{} is only a reservation",
                    rec.serial
                )));
            }
            if serials.get(rec.serial.as_str())?.is_some() {
                return Err(StoreError::SerialTaken);
            }
        }
    }
    let mut entries = Vec::new();
    for (rec, _) in certs {
        if let Some(rv) = &rec.revocation {
            entries.push((
                rec.key(),
                json(rv)?,
                stored_crl_entry(&rec.serial, rv, rec.not_after)?,
            ));
        }
    }
    for (rec, der) in certs {
        txn.open_table(SERIALS)?
            .insert(rec.serial.as_str(), rec.ca_id.as_str())?;
        store_issued(txn, rec, der)?;
    }
    for (key, rv, entry) in entries {
        txn.open_table(REVOCATIONS)?
            .insert(key.as_str(), rv.as_slice())?;
        txn.open_table(CRL_ENTRIES)?
            .insert(key.as_str(), entry.as_slice())?;
    }
    Ok(certs.len() as u64)
}

/// Mark a certificate revoked and keep its encoded CRL entry beside it.
/// Unknown or unissued serials are NotFound; revoking again is idempotent and
/// returns the record with its first revocation (reason and time unchanged).
/// Revoke, or answer a repeated revocation: the same reason again is
/// idempotent (the first record stands); any reason may be raised to
/// keyCompromise (the date stays, the reason and CRL entry change); any other
/// change is a conflict. A keyCompromise revocation blocks the key.
pub fn revoke(
    txn: &WriteTransaction,
    ca_id: &str,
    serial: &str,
    revocation: Revocation,
) -> Result<CertRecord, StoreError> {
    let key = cert_key(ca_id, serial);
    let (mut rec, der_seq) = {
        let t = txn.open_table(CERTS)?;
        let v = t
            .get(key.as_str())?
            .ok_or_else(|| StoreError::NotFound(format!("no certificate {serial} from {ca_id}")))?;
        decode_cert_and_der_seq(v.value())?
    };
    let Some(revocation) = revocation_to_record(&rec, revocation)? else {
        return Ok(rec);
    };
    let entry = stored_crl_entry(serial, &revocation, rec.not_after)?;
    rec.status = CertStatus::Revoked;
    rec.revocation = Some(revocation.clone());
    let v = encode_cert(&rec, der_seq)?;
    let rv = json(&revocation)?;
    txn.open_table(CERTS)?.insert(key.as_str(), v.as_slice())?;
    txn.open_table(REVOCATIONS)?
        .insert(key.as_str(), rv.as_slice())?;
    txn.open_table(CRL_ENTRIES)?
        .insert(key.as_str(), entry.as_slice())?;
    if let (KEY_COMPROMISE, Some(spki)) = (revocation.reason_code, &revocation.key_sha256) {
        let blocked = json(&BlockedKey {
            ca_id: ca_id.to_string(),
            serial: serial.to_string(),
            blocked_at: revocation.revoked_at,
        })?;
        txn.open_table(BLOCKED_KEYS)?
            .insert(spki.as_str(), blocked.as_slice())?;
    }
    Ok(rec)
}

pub fn put_crl_meta(txn: &WriteTransaction, ca_id: &str, meta: &CrlMeta) -> Result<(), StoreError> {
    let m = json(meta)?;
    txn.open_table(CRL_META)?.insert(ca_id, m.as_slice())?;
    Ok(())
}

// ---- policies and keys ---------------------------------------------------------

pub fn put_policy(txn: &WriteTransaction, id: &str, json: &[u8]) -> Result<(), StoreError> {
    txn.open_table(POLICIES)?.insert(id, json)?;
    Ok(())
}

pub fn write_key_meta(txn: &WriteTransaction, meta: &KeyMeta) -> Result<(), StoreError> {
    let mut t = txn.open_table(KEY_META)?;
    match &meta.check_value {
        Some(c) => t.insert("check_value", c.as_str())?,
        None => t.remove("check_value")?,
    };
    match &meta.kdf {
        Some(k) => t.insert("kdf", k.as_str())?,
        None => t.remove("kdf")?,
    };
    Ok(())
}

/// A table the store never made reads as None (for `open_table(..).or_else`).
pub fn absent<T>(e: redb::TableError) -> Result<Option<T>, StoreError> {
    match e {
        redb::TableError::TableDoesNotExist(_) => Ok(None),
        e => Err(StoreError::from(e)),
    }
}

// ---- the audit trail -------------------------------------------------------------

/// Audit entry `seq` of `audit` (None: no such entry, or no trail yet).
pub fn audit_entry(
    audit: Option<&impl ReadableTable<u64, &'static [u8]>>,
    seq: u64,
) -> Result<Option<AuditEntry>, StoreError> {
    let Some(audit) = audit else {
        return Ok(None);
    };
    audit.get(seq)?.map(|v| decode_audit(v.value())).transpose()
}

/// See [`IssueTables::append_audit`].
pub fn append_audit(txn: &WriteTransaction, d: &AuditDraft) -> Result<AuditEntry, StoreError> {
    IssueTables::new(txn).append_audit(d)
}

/// Append a signed digest; refused unless it follows the last one (so two
/// writers cannot both add digest n).
pub fn append_audit_digest(
    txn: &WriteTransaction,
    d: &ca_core::audit_digest::AuditDigest,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(AUDIT_DIGESTS)?;
    let last = t.last()?.map(|(k, _)| k.value()).unwrap_or(0);
    if d.number != last + 1 {
        return Err(StoreError::Conflict(format!(
            "audit digest {} does not follow digest {last}",
            d.number
        )));
    }
    let bytes = json(d)?;
    t.insert(d.number, bytes.as_slice())?;
    Ok(())
}

// ---- list cursors ------------------------------------------------------------------

pub(crate) fn encode_cursor(s: &str) -> String {
    ca_core::hex::encode(s.as_bytes())
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

pub(crate) fn decode_key_cursor(c: &str) -> Result<String, StoreError> {
    let s = decode_cursor(c)?;
    s.strip_prefix('k')
        .map(str::to_string)
        .ok_or_else(|| StoreError::NotFound("the cursor does not belong to this listing".into()))
}

pub(crate) fn decode_expiry_cursor(c: &str) -> Result<(u64, String), StoreError> {
    let s = decode_cursor(c)?;
    let bad = || StoreError::NotFound("the cursor does not belong to this listing".into());
    let rest = s.strip_prefix('e').ok_or_else(bad)?;
    let (t, k) = rest.split_once('|').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, k.to_string()))
}
