//! What an issuance writes, with the tables it writes to opened once for a
//! whole batch of issuances (and a whole redo record), not once per write:
//! opening a table looks it up in redb's table tree and closing it writes
//! its root back, eleven times per issuance before. The last audit entry's
//! number and hash and the next DER number are kept between the issuances
//! of a batch, not read back each time. Every write of these tables in the
//! transaction goes through one `IssueTables` while it lives (redb refuses
//! to open a table twice), so what it keeps stays true.

use ca_core::audit_chain::{AuditEntry, GENESIS};
use redb::{Key, ReadableTable, Table, TableDefinition, TableHandle, Value, WriteTransaction};

use super::codec::{decode_audit, decode_cert, encode_audit, encode_cert};
use super::der_pack;
use super::tables::{
    json, unjson, AUDIT, AUDIT_HEAD, BLOCKED_KEYS, CA_DER_DICT, CERTS, CERT_DER_SEQ, DER_DICTS,
    EXPIRY, SERIALS,
};
use crate::store::{AuditDraft, CertRecord, CertStatus, StoreError};

type Bytes = &'static [u8];
type Str = &'static str;

/// The tables of an issuance, each opened when first needed.
pub struct IssueTables<'t> {
    txn: &'t WriteTransaction,
    blocked: Option<Table<'t, Str, Bytes>>,
    certs: Option<Table<'t, Str, Bytes>>,
    serials: Option<Table<'t, Str, Str>>,
    der_seq: Option<Table<'t, u64, Bytes>>,
    dicts: Option<Table<'t, u64, Bytes>>,
    ca_dict: Option<Table<'t, Str, u64>>,
    expiry: Option<Table<'t, (u64, Str), ()>>,
    audit: Option<Table<'t, u64, Bytes>>,
    audit_head: Option<Table<'t, Str, Bytes>>,
    /// The last audit entry's number and hash, once read.
    audit_last: Option<(u64, String)>,
    /// The number the next DER gets, once read.
    der_next: Option<u64>,
}

/// `slot`'s table, opened in `txn` if it is not yet.
fn open<'s, 't, K: Key + 'static, V: Value + 'static>(
    txn: &'t WriteTransaction,
    slot: &'s mut Option<Table<'t, K, V>>,
    def: TableDefinition<K, V>,
) -> Result<&'s mut Table<'t, K, V>, StoreError> {
    if slot.is_none() {
        *slot = Some(txn.open_table(def)?);
    }
    slot.as_mut()
        .ok_or_else(|| StoreError::Db(format!("table {} did not open", def.name())))
}

impl<'t> IssueTables<'t> {
    pub fn new(txn: &'t WriteTransaction) -> IssueTables<'t> {
        IssueTables {
            txn,
            blocked: None,
            certs: None,
            serials: None,
            der_seq: None,
            dicts: None,
            ca_dict: None,
            expiry: None,
            audit: None,
            audit_head: None,
            audit_last: None,
            der_next: None,
        }
    }

    /// Store a signed certificate: over its intent, or in one commit with
    /// its serial's claim (see [`check_issuable`](Self::check_issuable));
    /// refused, before anything is written, if its key is blocked.
    pub fn issue(
        &mut self,
        rec: &CertRecord,
        der: &[u8],
        key_sha256: &str,
    ) -> Result<(), StoreError> {
        // Read inside the transaction: the writer commits one transaction at a
        // time, so a revocation that blocked the key is either in this one or
        // committed before it.
        let blocked = open(self.txn, &mut self.blocked, BLOCKED_KEYS)?;
        if let Some(v) = blocked.get(key_sha256)? {
            return Err(StoreError::KeyBlocked(unjson(v.value())?));
        }
        if self.check_issuable(rec)? {
            self.claim_serial(rec)?;
        }
        self.store_issued(rec, der)
    }

    /// A signed certificate replaces its intent (a reservation with the same
    /// to-be-signed hash), or, on the one-commit path, nothing: then its serial
    /// must be free, and is claimed in the same commit. Returns whether to claim.
    pub fn check_issuable(&mut self, rec: &CertRecord) -> Result<bool, StoreError> {
        let key = rec.key();
        let found: Option<CertRecord> =
            match open(self.txn, &mut self.certs, CERTS)?.get(key.as_str())? {
                Some(v) => Some(decode_cert(v.value())?),
                None => None,
            };
        match found {
            Some(r) if r.status == CertStatus::Reserved && r.tbs_sha256 == rec.tbs_sha256 => {
                Ok(false)
            }
            Some(_) => Err(StoreError::Conflict(format!(
                "certificate {} is already stored",
                rec.serial
            ))),
            None => {
                let serials = open(self.txn, &mut self.serials, SERIALS)?;
                match serials.get(rec.serial.as_str())? {
                    Some(_) => Err(StoreError::SerialTaken),
                    None => Ok(true),
                }
            }
        }
    }

    pub fn claim_serial(&mut self, rec: &CertRecord) -> Result<(), StoreError> {
        open(self.txn, &mut self.serials, SERIALS)?
            .insert(rec.serial.as_str(), rec.ca_id.as_str())?;
        Ok(())
    }

    /// The certificate's record, its DER (packed, under the next number)
    /// and its expiry index entry.
    pub fn store_issued(&mut self, rec: &CertRecord, der: &[u8]) -> Result<(), StoreError> {
        let key = rec.key();
        let seq = match self.der_next {
            Some(n) => n,
            None => {
                let ders = open(self.txn, &mut self.der_seq, CERT_DER_SEQ)?;
                let last = ders.last()?.map(|(k, _)| k.value());
                last.unwrap_or(0).saturating_add(1)
            }
        };
        let v = encode_cert(rec, Some(seq))?;
        let packed = self.pack_der(rec, der)?;
        open(self.txn, &mut self.certs, CERTS)?.insert(key.as_str(), v.as_slice())?;
        let ders = open(self.txn, &mut self.der_seq, CERT_DER_SEQ)?;
        match packed {
            Some(packed) => ders.insert(seq, packed.as_slice())?,
            None => ders.insert(seq, der_pack::whole(der).as_ref())?,
        };
        self.der_next = Some(seq.saturating_add(1));
        let exp = u64::try_from(rec.not_after).unwrap_or(0);
        open(self.txn, &mut self.expiry, EXPIRY)?.insert((exp, key.as_str()), ())?;
        Ok(())
    }

    /// `der` packed against the dictionary certificate of its CA and profile
    /// (certificates of one profile line up best). The first certificate of a
    /// CA and profile becomes their dictionary, and so does one that the
    /// dictionary fits poorly (packed to more than half its size: the CA's URLs
    /// or the profile changed since): later ones then pack well again, and the
    /// certificates packed against the old dictionary keep it. At worst, when
    /// every certificate differs from the one before, each is its own dictionary:
    /// about its size, as if kept whole. None: keep it whole.
    fn pack_der(&mut self, rec: &CertRecord, der: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let name = format!("{}/{}", rec.ca_id, rec.profile);
        let found = open(self.txn, &mut self.ca_dict, CA_DER_DICT)?
            .get(name.as_str())?
            .map(|v| v.value());
        let dicts = open(self.txn, &mut self.dicts, DER_DICTS)?;
        if let Some(id) = found {
            let Some(dict) = dicts.get(id)? else {
                return Err(StoreError::Corrupt(format!(
                    "{name}: dictionary certificate {id} is missing"
                )));
            };
            let packed = der_pack::pack(id, dict.value(), der);
            if packed.as_ref().is_some_and(|p| p.len() * 2 <= der.len())
                || !der_pack::fit_for_dict(der)
            {
                return Ok(packed);
            }
        } else if !der_pack::fit_for_dict(der) {
            return Ok(None);
        }
        let id = dicts
            .last()?
            .map(|(k, _)| k.value())
            .unwrap_or(0)
            .saturating_add(1);
        dicts.insert(id, der)?;
        open(self.txn, &mut self.ca_dict, CA_DER_DICT)?.insert(name.as_str(), id)?;
        Ok(der_pack::pack(id, der, der))
    }

    /// Append an audit entry chained to the last one; returns it.
    pub fn append_audit(&mut self, d: &AuditDraft) -> Result<AuditEntry, StoreError> {
        self.append_owned_audit(d.clone())
    }

    /// [`append_audit`](Self::append_audit) of a draft the caller gives up.
    pub fn append_owned_audit(&mut self, d: AuditDraft) -> Result<AuditEntry, StoreError> {
        let (last_seq, prev_hash) = match &self.audit_last {
            Some((seq, hash)) => (*seq, hash.clone()),
            None => match open(self.txn, &mut self.audit, AUDIT)?.last()? {
                Some((k, v)) => (k.value(), decode_audit(v.value())?.hash),
                None => (0, GENESIS.to_string()),
            },
        };
        let seq = last_seq.saturating_add(1);
        let e = d.into_chained(seq, prev_hash)?;
        let bytes = encode_audit(&e);
        open(self.txn, &mut self.audit, AUDIT)?.insert(seq, bytes.as_slice())?;
        let head = json(&(seq, &e.hash))?;
        open(self.txn, &mut self.audit_head, AUDIT_HEAD)?.insert("head", head.as_slice())?;
        self.audit_last = Some((seq, e.hash.clone()));
        Ok(e)
    }
}
