//! Read paths: point lookups and short range scans, each in its own read
//! transaction (a snapshot), never blocked by the writer.

use ca_core::audit_chain::{AuditEntry, GENESIS};
use ca_core::audit_digest::AuditDigest;
use redb::{ReadableTable, ReadableTableMetadata};

use super::codec;
use super::tables::*;
use super::writer::Handle;
use crate::store::trail_check::TrailCheck;
use crate::store::{
    cert_key, parse_stored_crl_entry, AuditFilter, BlockedKey, CaRecord, CertFilter, CertRecord,
    CertStatus, CertWithDer, CrlEntries, CrlMeta, KeyMeta, PolicyRows, Revocation, SerialStatus,
    StoreError, Verdict,
};

/// Most rows one certificate page scans before returning a cursor.
const MAX_SCAN: usize = 20_000;
/// Most entries one audit page scans before returning a cursor.
const MAX_AUDIT_SCAN: usize = 50_000;
/// Entries an audit page makes room for before reading.
const AUDIT_PAGE_RESERVE: usize = 1_000;

pub fn meta_value(h: &Handle, key: &str) -> Result<Option<u64>, StoreError> {
    let r = h.begin_read()?;
    let v = r.open_table(META)?.get(key)?.map(|v| v.value());
    Ok(v)
}

pub fn list_cas(h: &Handle) -> Result<Vec<CaRecord>, StoreError> {
    let r = h.begin_read()?;
    let t = r.open_table(CAS)?;
    let mut out = Vec::new();
    for item in t.iter()? {
        let (_, v) = item?;
        out.push(unjson(v.value())?);
    }
    Ok(out)
}

pub fn list_aliases(h: &Handle) -> Result<Vec<(String, String)>, StoreError> {
    let r = h.begin_read()?;
    let t = r.open_table(ALIASES)?;
    let mut out = Vec::new();
    for item in t.iter()? {
        let (k, v) = item?;
        out.push((k.value().to_string(), v.value().to_string()));
    }
    Ok(out)
}

pub fn get_cert(h: &Handle, ca_id: &str, serial: &str) -> Result<Option<CertWithDer>, StoreError> {
    let key = cert_key(ca_id, serial);
    let r = h.begin_read()?;
    let certs = r.open_table(CERTS)?;
    let Some(rec) = certs.get(key.as_str())? else {
        return Ok(None);
    };
    let (rec, der_seq) = codec::decode_cert_and_der_seq(rec.value())?;
    let der = match der_seq {
        Some(seq) => match r.open_table(CERT_DER_SEQ)?.get(seq)? {
            Some(d) => {
                let dicts = r.open_table(DER_DICTS).map(Some).or_else(absent)?;
                Some(unpack_der(dicts.as_ref(), d.value())?)
            }
            None => None,
        },
        None => r
            .open_table(CERT_DER)?
            .get(key.as_str())?
            .map(|d| d.value().to_vec()),
    };
    Ok(Some((rec, der)))
}

pub fn ca_of_serial(h: &Handle, serial: &str) -> Result<Option<String>, StoreError> {
    let r = h.begin_read()?;
    let t = r.open_table(SERIALS)?;
    let v = t.get(serial)?;
    Ok(v.map(|v| v.value().to_string()))
}

/// Whether the blocked-keys table is empty (or not made yet).
pub fn no_blocked_keys(h: &Handle) -> Result<bool, StoreError> {
    let r = h.begin_read()?;
    let Some(t) = r
        .open_table(BLOCKED_KEYS)
        .map(Some)
        .or_else(none_if_absent)?
    else {
        return Ok(true);
    };
    Ok(t.is_empty()?)
}

/// Why a public key may not be certified, if it may not (stores made before
/// the table existed block nothing).
pub fn blocked_key(h: &Handle, key_sha256: &str) -> Result<Option<BlockedKey>, StoreError> {
    let r = h.begin_read()?;
    let Some(t) = r
        .open_table(BLOCKED_KEYS)
        .map(Some)
        .or_else(none_if_absent)?
    else {
        return Ok(None);
    };
    let v = t.get(key_sha256)?;
    v.map(|v| unjson(v.value())).transpose()
}

/// Status of one serial: point reads only (revocations, then certs).
pub fn serial_status(h: &Handle, ca_id: &str, serial: &str) -> Result<SerialStatus, StoreError> {
    let key = cert_key(ca_id, serial);
    let r = h.begin_read()?;
    if let Some(v) = r.open_table(REVOCATIONS)?.get(key.as_str())? {
        let rv: Revocation = unjson(v.value())?;
        return Ok(SerialStatus::Revoked(rv));
    }
    let certs = r.open_table(CERTS)?;
    let Some(v) = certs.get(key.as_str())? else {
        return Ok(SerialStatus::Unknown);
    };
    let rec = codec::decode_cert(v.value())?;
    Ok(match rec.status {
        CertStatus::Issued => SerialStatus::Issued,
        CertStatus::Revoked => match rec.revocation {
            Some(rv) => SerialStatus::Revoked(rv),
            None => {
                return Err(StoreError::Corrupt(format!(
                    "{key}: revoked without record"
                )))
            }
        },
        CertStatus::Reserved => SerialStatus::Unknown,
    })
}

pub fn count_certs(h: &Handle) -> Result<u64, StoreError> {
    let r = h.begin_read()?;
    let n = r.open_table(CERTS)?.len()?;
    Ok(n)
}

/// Issued certificates whose notAfter is in `[from, before)`, less the
/// revoked ones: a range of the expiry index and a point read per entry.
pub fn count_expiring(h: &Handle, from: i64, before: i64) -> Result<u64, StoreError> {
    let (from, before) = (
        u64::try_from(from).unwrap_or(0),
        u64::try_from(before).unwrap_or(0),
    );
    if before <= from {
        return Ok(0);
    }
    let r = h.begin_read()?;
    let exp = r.open_table(EXPIRY)?;
    let revs = r.open_table(REVOCATIONS)?;
    let mut n = 0;
    for item in exp.range::<(u64, &str)>((from, "")..(before, ""))? {
        let (k, _) = item?;
        if revs.get(k.value().1)?.is_none() {
            n += 1;
        }
    }
    Ok(n)
}

pub fn crl_entries(
    h: &Handle,
    ca_id: &str,
    expired_before: Option<i64>,
) -> Result<CrlEntries, StoreError> {
    let r = h.begin_read()?;
    let t = r.open_table(CRL_ENTRIES)?;
    let (lo, hi) = (format!("{ca_id}/"), format!("{ca_id}0"));
    let mut out = CrlEntries::default();
    for item in t.range::<&str>(lo.as_str()..hi.as_str())? {
        let (k, v) = item?;
        let (dates, der) = parse_stored_crl_entry(v.value());
        if let (Some(cut), Some((not_after, revoked_at))) = (expired_before, dates) {
            if not_after < cut && revoked_at < cut {
                out.expired.push(k.value().to_string());
                continue;
            }
        }
        out.der.extend_from_slice(der);
        out.count += 1;
    }
    Ok(out)
}

pub fn crl_meta(h: &Handle, ca_id: &str) -> Result<Option<CrlMeta>, StoreError> {
    let r = h.begin_read()?;
    let v = r.open_table(CRL_META)?.get(ca_id)?;
    v.map(|v| unjson(v.value())).transpose()
}

/// One page of certificates and the cursor of the next page, if any.
pub fn list_certs(
    h: &Handle,
    f: &CertFilter,
    wanted: &dyn Fn(&CertRecord) -> bool,
) -> Result<(Vec<CertRecord>, Option<String>), StoreError> {
    let r = h.begin_read()?;
    let certs = r.open_table(CERTS)?;
    let prefix = f.ca_id.as_ref().map(|c| format!("{c}/"));
    let limit = f.limit.max(1);
    let mut out = Vec::new();
    let mut scanned = 0usize;
    if let Some(before) = f.expiring_before {
        let before = u64::try_from(before).unwrap_or(0);
        let (start_t, start_k) = match &f.cursor {
            Some(c) => decode_expiry_cursor(c)?,
            None => (0, String::new()),
        };
        let exp = r.open_table(EXPIRY)?;
        let range = exp.range::<(u64, &str)>((start_t, start_k.as_str())..(before, ""))?;
        for item in range {
            let (k, _) = item?;
            let (t, key) = k.value();
            if f.cursor.is_some() && t == start_t && key == start_k {
                continue;
            }
            scanned += 1;
            if scanned > MAX_SCAN {
                return Ok((out, Some(encode_cursor(&format!("e{t}|{key}")))));
            }
            if let Some(p) = &prefix {
                if !key.starts_with(p.as_str()) {
                    continue;
                }
            }
            let Some(v) = certs.get(key)? else { continue };
            let rec = codec::decode_cert(v.value())?;
            if !wanted(&rec) {
                continue;
            }
            out.push(rec);
            if out.len() == limit {
                return Ok((out, Some(encode_cursor(&format!("e{t}|{key}")))));
            }
        }
        return Ok((out, None));
    }
    let start = match &f.cursor {
        Some(c) => decode_key_cursor(c)?,
        None => prefix.clone().unwrap_or_default(),
    };
    for item in certs.range::<&str>(start.as_str()..)? {
        let (k, v) = item?;
        let key = k.value();
        if f.cursor.is_some() && key == start {
            continue;
        }
        if let Some(p) = &prefix {
            if !key.starts_with(p.as_str()) {
                break;
            }
        }
        scanned += 1;
        if scanned > MAX_SCAN {
            return Ok((out, Some(encode_cursor(&format!("k{key}")))));
        }
        let rec = codec::decode_cert(v.value())?;
        if !wanted(&rec) {
            continue;
        }
        out.push(rec);
        if out.len() == limit {
            return Ok((out, Some(encode_cursor(&format!("k{key}")))));
        }
    }
    Ok((out, None))
}

/// Every stored statement, or None if no policy was ever stored: the
/// `policies` table is made by the first statement written, so a set an
/// administrator emptied stays empty instead of being bootstrapped again.
pub fn list_policies(h: &Handle) -> Result<Option<PolicyRows>, StoreError> {
    let r = h.begin_read()?;
    let Some(t) = r.open_table(POLICIES).map(Some).or_else(none_if_absent)? else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for item in t.iter()? {
        let (k, v) = item?;
        out.push((k.value().to_string(), v.value().to_vec()));
    }
    Ok(Some(out))
}

fn none_if_absent<T>(e: redb::TableError) -> Result<Option<T>, StoreError> {
    match e {
        redb::TableError::TableDoesNotExist(_) => Ok(None),
        e => Err(e.into()),
    }
}

pub fn key_meta(h: &Handle) -> Result<KeyMeta, StoreError> {
    let r = h.begin_read()?;
    let Some(t) = r.open_table(KEY_META).map(Some).or_else(none_if_absent)? else {
        return Ok(KeyMeta::default());
    };
    let meta = KeyMeta {
        check_value: t.get("check_value")?.map(|v| v.value().to_string()),
        kdf: t.get("kdf")?.map(|v| v.value().to_string()),
    };
    Ok(meta)
}

pub fn sealed_key(h: &Handle, ca_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    let r = h.begin_read()?;
    let Some(t) = r.open_table(CA_KEYS).map(Some).or_else(none_if_absent)? else {
        return Ok(None);
    };
    let v = t.get(ca_id)?.map(|v| v.value().to_vec());
    Ok(v)
}

pub fn sealed_key_ids(h: &Handle) -> Result<Vec<String>, StoreError> {
    let r = h.begin_read()?;
    let Some(t) = r.open_table(CA_KEYS).map(Some).or_else(none_if_absent)? else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for item in t.iter()? {
        let (k, _) = item?;
        out.push(k.value().to_string());
    }
    Ok(out)
}

/// One page of audit entries, oldest first, and the cursor of the next page.
pub fn audit_page(
    h: &Handle,
    f: &AuditFilter,
) -> Result<(Vec<AuditEntry>, Option<u64>), StoreError> {
    let r = h.begin_read()?;
    let Some(t) = r.open_table(AUDIT).map(Some).or_else(none_if_absent)? else {
        return Ok((vec![], None));
    };
    let limit = f.limit.max(1);
    // Room for a full page at once (up to a bound): growing it by doubling
    // cost the events projector, which reads full pages, page faults on
    // every reallocation.
    let mut out = Vec::with_capacity(limit.min(AUDIT_PAGE_RESERVE));
    for (scanned, item) in t.range(f.cursor.unwrap_or(0)..)?.enumerate() {
        let (k, v) = item?;
        if scanned >= MAX_AUDIT_SCAN {
            return Ok((out, Some(k.value())));
        }
        let e = codec::decode_audit(v.value())?;
        if !f.matches(&e) {
            continue;
        }
        out.push(e);
        if out.len() == limit {
            return Ok((out, Some(k.value().saturating_add(1))));
        }
    }
    Ok((out, None))
}

/// The newest entry's sequence number and hash.
pub fn audit_head(h: &Handle) -> Result<(u64, String), StoreError> {
    let r = h.begin_read()?;
    let Some(t) = r.open_table(AUDIT_HEAD).map(Some).or_else(none_if_absent)? else {
        return Ok((0, GENESIS.to_string()));
    };
    match t.get("head")? {
        Some(v) => unjson(v.value()),
        None => Ok((0, GENESIS.to_string())),
    }
}

pub fn audit_digests(h: &Handle, after: u64, limit: usize) -> Result<Vec<AuditDigest>, StoreError> {
    let r = h.begin_read()?;
    let Some(t) = r
        .open_table(AUDIT_DIGESTS)
        .map(Some)
        .or_else(none_if_absent)?
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in t.range(after.saturating_add(1)..)?.take(limit) {
        let (_, v) = item?;
        out.push(unjson(v.value())?);
    }
    Ok(out)
}

pub fn last_audit_digest(h: &Handle) -> Result<Option<AuditDigest>, StoreError> {
    let r = h.begin_read()?;
    let Some(t) = r
        .open_table(AUDIT_DIGESTS)
        .map(Some)
        .or_else(none_if_absent)?
    else {
        return Ok(None);
    };
    let last = t.last()?.map(|(_, v)| unjson(v.value())).transpose();
    last
}

/// Verify the chain from the first entry to the recorded head, then every
/// signed digest against the hashes the chain has at the entries they cover.
pub fn verify_audit(h: &Handle, pinned_digest_key: Option<&[u8]>) -> Result<Verdict, StoreError> {
    let mut check = TrailCheck::new(audit_digests(h, 0, usize::MAX)?);
    let r = h.begin_read()?;
    let Some(t) = r.open_table(AUDIT).map(Some).or_else(none_if_absent)? else {
        return Ok(Verdict::Ok {
            count: 0,
            digests: 0,
            covered: 0,
        });
    };
    let head: Option<(u64, String)> = match r.open_table(AUDIT_HEAD) {
        Ok(h) => match h.get("head")? {
            Some(v) => serde_json::from_slice(v.value()).ok(),
            None => None,
        },
        Err(_) => None,
    };
    for item in t.iter()? {
        let (k, v) = item?;
        if let Err(broken) = check.entry(
            k.value(),
            codec::decode_audit(v.value()).map_err(|e| e.to_string()),
        ) {
            return Ok(broken);
        }
    }
    Ok(check.finish(head, pinned_digest_key))
}
