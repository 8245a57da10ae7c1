//! Writes described well enough to be done again: an issuance is its
//! record, its DER, its key's hash and its audit draft, and storing it is a
//! function of those and of the store it lands on; an audit entry alone (a
//! read, a refusal: `Store::append_audit`) is its draft. Such a write is
//! made durable by a redo record in the journal (see `journal::redo`), not
//! by a sync of the pages it changed; after a crash the store redoes the
//! records that no later durable commit covers, in their order, on the store
//! as that commit left it, which is the store they were first done on.
//!
//! So [`Redo::apply`] must read nothing but the store and what the record
//! holds (no clock, no randomness, no configuration): the same store and
//! record give the same writes (an audit entry's time is in its draft, and
//! its number and hash follow from the entry before it).

use redb::{Database, WriteTransaction};

use super::codec::{decode_audit, decode_cert, encode_audit_draft, encode_cert};
use super::issue_tables::IssueTables;
use super::tables::{META, SCHEMA_KEY};
use super::SCHEMA_VERSION;
use crate::store::{AuditDraft, CertRecord, StoreError};
use ca_core::audit_chain::AuditEntry;

/// One write a redo record can hold.
// One per write, moved once into its job: boxing the issuance would add an
// allocation to each for nothing.
#[allow(clippy::large_enum_variant)]
pub enum Redo {
    /// `Store::issue`: the certificate over its intent (or claiming its
    /// serial), and its audit entry.
    Issue {
        rec: CertRecord,
        der: Vec<u8>,
        key_sha256: String,
        audit: AuditDraft,
    },
    /// `Store::append_audit`: an audit entry alone.
    Audit(AuditDraft),
}

const ISSUE: u8 = 1;
const AUDIT: u8 = 2;

impl Redo {
    /// Do the write in the transaction of `t`; the audit entry it
    /// appended. A refusal leaves it untouched (every check comes before
    /// the first write, as for any job).
    pub fn apply(self, t: &mut IssueTables<'_>) -> Result<AuditEntry, StoreError> {
        match self {
            Redo::Issue {
                rec,
                der,
                key_sha256,
                audit,
            } => {
                t.issue(&rec, &der, &key_sha256)?;
                t.append_owned_audit(audit)
            }
            Redo::Audit(audit) => t.append_owned_audit(audit),
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        match self {
            Redo::Issue {
                rec,
                der,
                key_sha256,
                audit,
            } => {
                let rec = encode_cert(rec, None)?;
                // In the audit codec's shape: sequence and hashes are the store's to
                // fill in, so left empty.
                let audit = encode_audit_draft(audit);
                let mut out = Vec::with_capacity(
                    1 + 16 + rec.len() + der.len() + key_sha256.len() + audit.len(),
                );
                out.push(ISSUE);
                for part in [&rec[..], der, key_sha256.as_bytes(), &audit[..]] {
                    put(&mut out, part)?;
                }
                Ok(out)
            }
            Redo::Audit(audit) => {
                let audit = encode_audit_draft(audit);
                let mut out = Vec::with_capacity(1 + 4 + audit.len());
                out.push(AUDIT);
                put(&mut out, &audit)?;
                Ok(out)
            }
        }
    }

    pub fn decode(b: &[u8]) -> Result<Redo, StoreError> {
        let (&tag, mut rest) = b.split_first().ok_or_else(|| corrupt("empty"))?;
        match tag {
            ISSUE => {
                let rec = decode_cert(take(&mut rest)?)?;
                let der = take(&mut rest)?.to_vec();
                let key_sha256 = std::str::from_utf8(take(&mut rest)?)
                    .map_err(|_| corrupt("key hash"))?
                    .to_string();
                let audit = entry_as_draft(decode_audit(take(&mut rest)?)?);
                if !rest.is_empty() {
                    return Err(corrupt("trailing bytes"));
                }
                Ok(Redo::Issue {
                    rec,
                    der,
                    key_sha256,
                    audit,
                })
            }
            AUDIT => {
                let audit = entry_as_draft(decode_audit(take(&mut rest)?)?);
                if !rest.is_empty() {
                    return Err(corrupt("trailing bytes"));
                }
                Ok(Redo::Audit(audit))
            }
            other => Err(corrupt(&format!(
                "a write of kind {other}, which this server does not know (a newer one wrote it?){WAY_OUT}"
            ))),
        }
    }
}

/// In `META`: the number of the last redo record whose writes the store
/// holds, written in the same transaction as those writes.
pub const REDO_SEQ: &str = "redo_seq";

/// The layout of a record's writes; a server that does not know it (an
/// older one, after a crash) refuses to redo rather than guess. Each of its
/// writes was made; each is an issuance.
const FORMAT: u8 = 1;
/// [`FORMAT`]'s layout, in a record written before its writes were tried
/// (`batch::prewrite`): it also holds those refused then.
const FORMAT_PREWRITTEN: u8 = 2;
/// [`FORMAT`], with lone audit entries among its writes: a server from
/// before them refuses the record with its way out, not as corrupt.
const FORMAT_AUDITS: u8 = 3;
/// [`FORMAT_PREWRITTEN`], with lone audit entries among its writes.
const FORMAT_AUDITS_PREWRITTEN: u8 = 4;

/// Which writes a redo record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holds {
    /// Only writes that were made.
    Made,
    /// The writes of a batch as it was tried: some may have been refused.
    Tried,
}

/// The payload of redo record number `seq`: then its format and the
/// encoded writes of one commit, in the order they were done.
pub fn record<'a>(
    seq: u64,
    holds: Holds,
    writes: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, StoreError> {
    let mut out = seq.to_le_bytes().to_vec();
    // The format byte, once the writes have said whether any is a lone
    // audit entry.
    let at = out.len();
    out.push(0);
    let mut audits = false;
    for w in writes {
        audits |= w.first() == Some(&AUDIT);
        put(&mut out, w)?;
    }
    out[at] = match (holds, audits) {
        (Holds::Made, false) => FORMAT,
        (Holds::Tried, false) => FORMAT_PREWRITTEN,
        (Holds::Made, true) => FORMAT_AUDITS,
        (Holds::Tried, true) => FORMAT_AUDITS_PREWRITTEN,
    };
    Ok(out)
}

/// What an operator can do when a start cannot redo the journal.
const WAY_OUT: &str = "; start the ca-server version that last ran on this store and stop it \
     cleanly (a clean stop leaves nothing to redo), or restore a backup";

/// A redo record's number, which writes it holds, and its writes.
pub fn split(record: &[u8]) -> Result<(u64, Holds, &[u8]), StoreError> {
    let (seq, rest) = record
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("no number"))?;
    let seq = u64::from_le_bytes(*seq);
    match rest.split_first() {
        Some((&(FORMAT | FORMAT_AUDITS), writes)) => Ok((seq, Holds::Made, writes)),
        Some((&(FORMAT_PREWRITTEN | FORMAT_AUDITS_PREWRITTEN), writes)) => {
            Ok((seq, Holds::Tried, writes))
        }
        Some((other, _)) => Err(corrupt(&format!(
            "format {other}, which this server does not know (a newer one wrote it?){WAY_OUT}"
        ))),
        None => Err(corrupt("no format")),
    }
}

/// Redo the writes of a redo record (without its number) in `txn`; how many.
///
/// A record of the writes a batch tried ([`Holds::Tried`]) also holds those
/// refused then (a serial or certificate already stored, a key blocked
/// meanwhile): each is refused again here, before its first write, since
/// it meets the same store, and is skipped as it was then. Any other
/// failure, or a refusal in a record of writes made, means the store is not
/// the one the record was made on: nothing is redone.
pub fn redo_batch(
    txn: &WriteTransaction,
    holds: Holds,
    mut payload: &[u8],
) -> Result<usize, StoreError> {
    let mut n = 0;
    let mut tables = IssueTables::new(txn);
    while !payload.is_empty() {
        let write = Redo::decode(take(&mut payload)?)?;
        let done =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write.apply(&mut tables)))
                .unwrap_or(Err(StoreError::Panicked));
        match done {
            Ok(_) => n += 1,
            Err(
                e @ (StoreError::SerialTaken | StoreError::KeyBlocked(_) | StoreError::Conflict(_)),
            ) if holds == Holds::Tried => {
                tracing::warn!(error = %e, "store: a write the journal holds was refused, as it was when first tried (its caller was told so); skipped");
            }
            Err(e) => {
                return Err(StoreError::Corrupt(format!(
                    "a write the journal holds cannot be redone ({e}); the store is left as its last durable commit left it{WAY_OUT}"
                )))
            }
        }
    }
    Ok(n)
}

fn put(out: &mut Vec<u8>, part: &[u8]) -> Result<(), StoreError> {
    let len = u32::try_from(part.len()).map_err(|_| corrupt("a part over 4 GiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(part);
    Ok(())
}

fn take<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], StoreError> {
    let (len, tail) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| corrupt("a length cut short"))?;
    let len = u32::from_le_bytes(*len) as usize;
    if tail.len() < len {
        return Err(corrupt("a part cut short"));
    }
    let (part, tail) = tail.split_at(len);
    *rest = tail;
    Ok(part)
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("journal redo record: {what}"))
}

fn entry_as_draft(e: AuditEntry) -> AuditDraft {
    AuditDraft {
        unix: e.unix,
        identity: e.identity,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        result: e.result,
        certificate: e.certificate,
    }
}

/// Redo, in one commit (durable, or in memory for a read-only open), the
/// redo records numbered past the last one the store holds; returns the
/// number of the last one it then holds.
pub(super) fn redo_pending(
    db: &Database,
    pending: &[Vec<u8>],
    in_memory: bool,
) -> Result<u64, StoreError> {
    use redb::ReadableTable;
    let mut txn = db.begin_write()?;
    // (On the file: see `super::begin_write_quick_repair`.)
    txn.set_quick_repair(!in_memory);
    // Redo with this server's code only on a store of its schema; the open
    // refuses a newer one after this (see `RedbStore::open`).
    let schema = txn.open_table(META)?.get(SCHEMA_KEY)?.map(|v| v.value());
    if let Some(found) = schema.filter(|v| *v > SCHEMA_VERSION) {
        let _ = txn.abort();
        return Err(StoreError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let held = txn.open_table(META)?.get(REDO_SEQ)?.map(|v| v.value());
    let mut last = held.unwrap_or(0);
    let (mut records, mut writes) = (0, 0);
    for record in pending {
        let (seq, holds, batch) = split(record)?;
        if seq <= last {
            continue;
        }
        writes += redo_batch(&txn, holds, batch)?;
        last = seq;
        records += 1;
    }
    if records == 0 {
        let _ = txn.abort();
        return Ok(last);
    }
    txn.open_table(META)?.insert(REDO_SEQ, last)?;
    txn.commit()?;
    if in_memory {
        tracing::debug!(
            records,
            writes,
            "store: redid in memory, for a read-only open, the writes the journal held past its last durable commit"
        );
    } else {
        tracing::info!(
            records,
            writes,
            "store: redid the writes the journal held past its last durable commit"
        );
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of issuances alone keeps the layout servers from before lone
    /// audit entries redo; one holding a lone audit entry says so in its
    /// format, which such a server refuses with its way out. Both read back
    /// as the writes they hold.
    #[test]
    fn a_record_says_in_its_format_whether_it_holds_lone_audit_entries() {
        let issuance: &[u8] = &[ISSUE, 1, 2];
        let audit: &[u8] = &[AUDIT, 3];
        for (holds, writes, format) in [
            (Holds::Made, vec![issuance], FORMAT),
            (Holds::Tried, vec![issuance, issuance], FORMAT_PREWRITTEN),
            (Holds::Made, vec![issuance, audit], FORMAT_AUDITS),
            (Holds::Tried, vec![audit], FORMAT_AUDITS_PREWRITTEN),
        ] {
            let r = record(7, holds, writes.iter().copied()).expect("record");
            assert_eq!(r[8], format, "{holds:?} {writes:?}");
            let (seq, read_holds, mut payload) = split(&r).expect("split");
            assert_eq!((seq, read_holds), (7, holds));
            for w in &writes {
                assert_eq!(take(&mut payload).expect("write"), *w);
            }
            assert!(payload.is_empty());
        }
        let unknown = [7, 0, 0, 0, 0, 0, 0, 0, 9];
        match split(&unknown) {
            Err(StoreError::Corrupt(m)) => {
                assert!(m.contains("format 9") && m.contains("stop it"), "{m}")
            }
            _ => panic!("an unknown format was not refused"),
        }
    }
}
