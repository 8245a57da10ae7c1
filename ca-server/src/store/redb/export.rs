//! Every record of a redb store, read in one transaction (the store as of
//! one commit), for `ca-server migrate`. Derived indexes (expiry, the
//! revocation index) are left out: the target derives its own.

use redb::{Key, ReadTransaction, ReadableTable, TableDefinition, TableError, Value};

use super::tables::*;
use super::RedbStore;
use crate::store::migrate::Row;
use crate::store::StoreError;

/// Visit each row of `def` (none when the store never made the table).
/// Returns whether the table exists.
fn each<K: Key + 'static, V: Value + 'static>(
    r: &ReadTransaction,
    def: TableDefinition<K, V>,
    mut f: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<(), StoreError>,
) -> Result<bool, StoreError> {
    let t = match r.open_table(def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    for item in t.iter()? {
        let (k, v) = item?;
        f(k.value(), v.value())?;
    }
    Ok(true)
}

impl RedbStore {
    /// Hand every record to `sink`, table by table, CAs first.
    pub fn export(
        &self,
        sink: &mut dyn FnMut(Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let h = self.handle()?;
        let r = h.begin_read()?;
        each(&r, META, |k, v| {
            // The schema version and the CRL back-fill mark are redb's own.
            if k == SCHEMA_KEY || k == CRL_ENTRIES_COMPLETE {
                return Ok(());
            }
            sink(Row::Meta(k.into(), v))
        })?;
        each(&r, CAS, |k, v| sink(Row::Ca(k.into(), v.to_vec())))?;
        each(&r, CA_KEYS, |k, v| sink(Row::CaKey(k.into(), v.to_vec())))?;
        each(&r, KEY_META, |k, v| sink(Row::KeyMeta(k.into(), v.into())))?;
        each(&r, ALIASES, |k, v| sink(Row::Alias(k.into(), v.into())))?;
        if each(&r, POLICIES, |k, v| sink(Row::Policy(k.into(), v.to_vec())))? {
            sink(Row::PoliciesSet)?;
        }
        each(&r, SERIALS, |k, v| sink(Row::Serial(k.into(), v.into())))?;
        {
            let by_key = r.open_table(CERT_DER).map(Some).or_else(absent)?;
            let by_seq = r.open_table(CERT_DER_SEQ).map(Some).or_else(absent)?;
            let dicts = r.open_table(DER_DICTS).map(Some).or_else(absent)?;
            each(&r, CERTS, |k, v| {
                let (rec, der_seq) = super::codec::decode_cert_and_der_seq(v)?;
                let der = match (der_seq, &by_key, &by_seq) {
                    (Some(seq), _, Some(t)) => match t.get(seq)? {
                        Some(d) => Some(unpack_der(dicts.as_ref(), d.value())?),
                        None => None,
                    },
                    (None, Some(t), _) => t.get(k)?.map(|d| d.value().to_vec()),
                    _ => None,
                };
                sink(Row::Cert(k.into(), json(&rec)?, der))
            })?;
        }
        each(&r, IDEMPOTENCY, |k, v| {
            sink(Row::Idempotency(k.into(), v.to_vec()))
        })?;
        each(&r, CRL_ENTRIES, |k, v| {
            sink(Row::CrlEntry(k.into(), v.to_vec()))
        })?;
        each(&r, CRL_META, |k, v| {
            sink(Row::CrlMeta(k.into(), v.to_vec()))
        })?;
        each(&r, BLOCKED_KEYS, |k, v| {
            sink(Row::BlockedKey(k.into(), v.to_vec()))
        })?;
        each(&r, AUDIT, |k, v| {
            sink(Row::Audit(k, super::codec::audit_as_json(v)?))
        })?;
        each(&r, AUDIT_HEAD, |_, v| sink(Row::AuditHead(v.to_vec())))?;
        each(&r, AUDIT_DIGESTS, |k, v| {
            sink(Row::AuditDigest(k, v.to_vec()))
        })?;
        {
            let audit = r.open_table(AUDIT).map(Some).or_else(absent)?;
            let mut lookup = |seq: u64| audit_entry(audit.as_ref(), seq);
            each(&r, super::events::EVENTS, |k, v| {
                sink(Row::Event(k, super::codec::event_as_json(v, &mut lookup)?))
            })?;
        }
        each(&r, super::events::EVENT_MARKS, |k, v| {
            sink(Row::EventMark(k.into(), v))
        })?;
        each(&r, super::events::WEBHOOKS, |k, v| {
            sink(Row::Webhook(k.into(), v.to_vec()))
        })?;
        each(&r, super::acme::ACME_ACCOUNTS, |k, v| {
            sink(Row::AcmeAccount(k.into(), v.to_vec()))
        })?;
        each(&r, super::acme::ACME_ACCOUNT_KEYS, |k, v| {
            sink(Row::AcmeAccountKey(k.into(), v.into()))
        })?;
        each(&r, super::acme::ACME_ORDERS, |k, v| {
            sink(Row::AcmeOrder(k.into(), v.to_vec()))
        })?;
        each(&r, super::acme::ACME_AUTHZS, |k, v| {
            sink(Row::AcmeAuthz(k.into(), v.to_vec()))
        })?;
        each(&r, super::acme::ACME_EAB_KEYS, |k, v| {
            sink(Row::AcmeEabKey(k.into(), v.to_vec()))
        })?;
        Ok(())
    }
}
