//! Certificate records.

use super::{
    binary, corrupt, json, unjson, CertRecord, CertStatus, Dec, Enc, Revocation, StoreError,
};

fn status_code(s: CertStatus) -> u8 {
    match s {
        CertStatus::Reserved => 0,
        CertStatus::Issued => 1,
        CertStatus::Revoked => 2,
    }
}

/// `der_seq`: where its DER is in `cert_der_seq` (None: in `cert_der` by
/// key, as before schema 2, or no DER yet).
pub fn encode_cert(r: &CertRecord, der_seq: Option<u64>) -> Result<Vec<u8>, StoreError> {
    let mut e = Enc::new(256);
    e.str(&r.ca_id);
    e.hex(&r.serial);
    e.u8(status_code(r.status));
    e.word(&r.profile);
    e.str(&r.subject);
    e.strs(&r.sans);
    e.word(&r.key_algorithm);
    e.iv(r.not_before);
    e.iv(r.not_after);
    e.hex(&r.tbs_sha256);
    e.iv(r.created_at);
    e.str(&r.requested_by);
    e.hex(&r.boot_id);
    e.u8(u8::from(r.server_generated_key));
    e.opt(r.renewed_from.as_deref(), Enc::hex);
    match &r.revocation {
        None => e.u8(0),
        // Rare, and read rarely: its JSON inside.
        Some(rv) => {
            e.u8(1);
            e.bytes(&json(rv)?);
        }
    }
    e.opt(r.requester_fingerprint.as_deref(), Enc::hex);
    e.opt(der_seq, Enc::uv);
    Ok(e.0)
}

pub fn decode_cert(b: &[u8]) -> Result<CertRecord, StoreError> {
    decode_cert_and_der_seq(b).map(|(r, _)| r)
}

/// The record, and where its DER is (see [`encode_cert`]).
pub fn decode_cert_and_der_seq(b: &[u8]) -> Result<(CertRecord, Option<u64>), StoreError> {
    let Some(mut d) = binary(b)? else {
        return Ok((unjson(b)?, None));
    };
    let r = CertRecord {
        ca_id: d.str()?,
        serial: d.hex()?,
        status: match d.u8()? {
            0 => CertStatus::Reserved,
            1 => CertStatus::Issued,
            2 => CertStatus::Revoked,
            _ => return Err(corrupt("certificate status")),
        },
        profile: d.word()?,
        subject: d.str()?,
        sans: d.strs()?,
        key_algorithm: d.word()?,
        not_before: d.iv()?,
        not_after: d.iv()?,
        tbs_sha256: d.hex()?,
        created_at: d.iv()?,
        requested_by: d.str()?,
        boot_id: d.hex()?,
        server_generated_key: d.flag()?,
        renewed_from: d.opt(Dec::hex)?,
        revocation: if d.flag()? {
            Some(unjson::<Revocation>(d.bytes()?)?)
        } else {
            None
        },
        requester_fingerprint: d.opt(Dec::hex)?,
    };
    let der_seq = d.opt(Dec::uv)?;
    d.end()?;
    Ok((r, der_seq))
}
