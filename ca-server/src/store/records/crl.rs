//! CRLs: the last one's metadata, and the entries the store keeps for the
//! next (their DER, and the form that also carries the dates).

use serde::{Deserialize, Serialize};

use super::Revocation;

/// The last signed CRL of a CA (its DER is a file named by CA id and number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlMeta {
    pub crl_number: u64,
    pub this_update: i64,
    pub next_update: i64,
    pub entries: u64,
}

/// The DER revokedCertificates entry of one revocation (what CRLs list).
pub fn crl_entry(serial: &str, rv: &Revocation) -> Result<Vec<u8>, crate::store::StoreError> {
    use ca_core::crl::{encode_revoked_entry, RevocationReason, RevokedEntry};
    let bad = |what: &str| {
        crate::store::StoreError::Conflict(format!("cannot list {serial} in a CRL: {what}"))
    };
    let entry = RevokedEntry {
        serial: ca_core::serial::Serial::from_hex(serial).map_err(|_| bad("serial"))?,
        revoked_at: time::OffsetDateTime::from_unix_timestamp(rv.revoked_at)
            .map_err(|_| bad("time"))?,
        reason: RevocationReason::from_code(rv.reason_code).ok_or_else(|| bad("reason"))?,
    };
    encode_revoked_entry(&entry).map_err(|e| bad(&e.to_string()))
}

/// The first byte of a stored CRL entry that carries its certificate's
/// notAfter and its revocation time (so expired entries can leave the CRL);
/// entries stored before have none and start with DER's 0x30.
const CRL_ENTRY_DATED: u8 = 0xFF;

/// A CRL entry as the store keeps it: `0xFF | notAfter (i64 BE) | revoked
/// at (i64 BE) | DER entry`.
pub fn stored_crl_entry(
    serial: &str,
    rv: &Revocation,
    not_after: i64,
) -> Result<Vec<u8>, crate::store::StoreError> {
    let der = crl_entry(serial, rv)?;
    let mut out = Vec::with_capacity(17 + der.len());
    out.push(CRL_ENTRY_DATED);
    out.extend_from_slice(&not_after.to_be_bytes());
    out.extend_from_slice(&rv.revoked_at.to_be_bytes());
    out.extend_from_slice(&der);
    Ok(out)
}

/// A stored CRL entry: its certificate's notAfter and revocation time when
/// recorded, and the DER entry.
pub fn parse_stored_crl_entry(v: &[u8]) -> (Option<(i64, i64)>, &[u8]) {
    match v.split_first() {
        Some((&CRL_ENTRY_DATED, rest)) if rest.len() >= 16 => {
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a.copy_from_slice(&rest[..8]);
            b.copy_from_slice(&rest[8..16]);
            (
                Some((i64::from_be_bytes(a), i64::from_be_bytes(b))),
                &rest[16..],
            )
        }
        _ => (None, v),
    }
}

/// A CA's CRL entries for the next CRL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrlEntries {
    /// The DER entries, concatenated.
    pub der: Vec<u8>,
    pub count: u64,
    /// Store keys of entries left out because their certificate had expired,
    /// and they were revoked, before the cut-off: already on a CRL published
    /// after the certificate expired, so they may go (RFC 5280 §3.3).
    pub expired: Vec<String>,
}
