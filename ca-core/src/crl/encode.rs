//! Building CRLs: the revoked entries and the TBSCertList are written by hand
//! into one buffer of its exact size, then signed (mod.rs's header says why).

use der::asn1::OctetString;
use der::Encode;
use time::OffsetDateTime;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, KeyUsage};
use x509_cert::ext::Extension;

use super::parse::read_tlv;
use super::{
    malformed, CrlError, CrlParams, RevocationReason, RevokedEntry, PEM_LABEL, TAG_EXPLICIT_0,
};
use crate::cert::CaCertificate;
use crate::der_util::{
    len_of_len, push_header, tlv_len, TAG_BIT_STRING, TAG_GENERALIZED_TIME, TAG_INTEGER,
    TAG_SEQUENCE, TAG_UTC_TIME,
};
use crate::keys::Signer;
use crate::oids;
use crate::pem;
use crate::serial::Serial;

// ---------------------------------------------------------------------------
// DER writing helpers (lengths and headers: `der_util`). Lengths are computed
// before writing so every buffer is allocated once at its final size.

/// Content octets of a non-negative INTEGER with magnitude `mag` (leading
/// zeros allowed), as (needs-0x00-pad, trimmed magnitude).
fn integer_parts(mag: &[u8]) -> (bool, &[u8]) {
    let start = mag.iter().position(|b| *b != 0).unwrap_or(mag.len());
    let trimmed = &mag[start..];
    match trimmed.first() {
        None => (true, trimmed), // zero encodes as a single 0x00
        Some(b) => (b & 0x80 != 0, trimmed),
    }
}

fn integer_content_len(mag: &[u8]) -> usize {
    let (pad, trimmed) = integer_parts(mag);
    usize::from(pad) + trimmed.len()
}

fn push_integer(out: &mut Vec<u8>, mag: &[u8]) {
    let (pad, trimmed) = integer_parts(mag);
    push_header(out, TAG_INTEGER, usize::from(pad) + trimmed.len());
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
}

/// The DER INTEGER content octets of a positive serial (with a 0x00 pad when
/// the top bit is set): the form CRL entries and OCSP CertIDs carry.
pub(crate) fn serial_integer_content(serial: &Serial) -> Vec<u8> {
    let mut out = Vec::with_capacity(serial.as_bytes().len() + 1);
    let (pad, trimmed) = integer_parts(serial.as_bytes());
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

/// UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 5.1.2.4).
fn time_tlv_len(t: OffsetDateTime) -> Result<usize, CrlError> {
    let year = t.to_offset(time::UtcOffset::UTC).year();
    match year {
        1950..=2049 => Ok(15),
        2050..=9999 => Ok(17),
        _ => Err(CrlError::TimeRange(crate::fmt_time(t))),
    }
}

fn push_time(out: &mut Vec<u8>, t: OffsetDateTime) -> Result<(), CrlError> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = t.year();
    let two = |out: &mut Vec<u8>, v: u8| {
        out.push(b'0' + v / 10);
        out.push(b'0' + v % 10);
    };
    match year {
        1950..=2049 => {
            out.extend_from_slice(&[TAG_UTC_TIME, 13]);
            two(out, (year % 100) as u8);
        }
        2050..=9999 => {
            out.extend_from_slice(&[TAG_GENERALIZED_TIME, 15]);
            two(out, (year / 100) as u8);
            two(out, (year % 100) as u8);
        }
        _ => return Err(CrlError::TimeRange(crate::fmt_time(t))),
    }
    two(out, u8::from(t.month()));
    two(out, t.day());
    two(out, t.hour());
    two(out, t.minute());
    two(out, t.second());
    out.push(b'Z');
    Ok(())
}

/// crlEntryExtensions holding only a reasonCode: SEQUENCE { SEQUENCE { OID
/// 2.5.29.21, OCTET STRING { ENUMERATED code } } }, 14 octets.
pub(super) fn reason_extensions(code: u8) -> [u8; 14] {
    [
        0x30, 0x0c, 0x30, 0x0a, 0x06, 0x03, 0x55, 0x1d, 0x15, 0x04, 0x03, 0x0a, 0x01, code,
    ]
}

fn entry_content_len(e: &RevokedEntry) -> Result<usize, CrlError> {
    if e.reason == RevocationReason::RemoveFromCrl {
        return Err(CrlError::RemoveFromCrlNotAllowed);
    }
    let ext = if e.reason == RevocationReason::Unspecified {
        0
    } else {
        14
    };
    Ok(tlv_len(integer_content_len(e.serial.as_bytes())) + time_tlv_len(e.revoked_at)? + ext)
}

/// Length of the DER `revokedCertificates` element [`encode_revoked_entry`] writes.
pub fn encoded_entry_len(e: &RevokedEntry) -> Result<usize, CrlError> {
    Ok(tlv_len(entry_content_len(e)?))
}

/// Append one DER revokedCertificates element. The reasonCode extension is
/// omitted for `unspecified`, as RFC 5280 5.3.1 asks; `removeFromCRL` is refused
/// because it only belongs in delta CRLs.
pub fn encode_revoked_entry_into(e: &RevokedEntry, out: &mut Vec<u8>) -> Result<(), CrlError> {
    let content = entry_content_len(e)?;
    push_header(out, TAG_SEQUENCE, content);
    push_integer(out, e.serial.as_bytes());
    push_time(out, e.revoked_at)?;
    if e.reason != RevocationReason::Unspecified {
        out.extend_from_slice(&reason_extensions(e.reason.code()));
    }
    Ok(())
}

/// One DER revokedCertificates element, for a store to keep beside the
/// revocation record and feed to [`build_crl_from_encoded`].
pub fn encode_revoked_entry(e: &RevokedEntry) -> Result<Vec<u8>, CrlError> {
    let mut out = Vec::with_capacity(encoded_entry_len(e)?);
    encode_revoked_entry_into(e, &mut out)?;
    Ok(out)
}

/// Build and sign a complete v2 CRL for `issuer` listing `entries`.
///
/// Entries are written in the order given; duplicates are the caller's to avoid.
pub fn build_crl(
    issuer: &CaCertificate,
    signer: &dyn Signer,
    params: &CrlParams,
    entries: &[RevokedEntry],
) -> Result<Vec<u8>, CrlError> {
    let mut entries_len = 0usize;
    for e in entries {
        entries_len += encoded_entry_len(e)?;
    }
    assemble(issuer, signer, params, entries_len, |out| {
        for e in entries {
            encode_revoked_entry_into(e, out)?;
        }
        Ok(())
    })
}

/// Build and sign a complete v2 CRL from pre-encoded revokedCertificates
/// elements. Each chunk holds one or more whole entries (as made by
/// [`encode_revoked_entry`]); a store may keep one chunk per revocation or one
/// large buffer. Only the framing of each entry is checked, not its content.
pub fn build_crl_from_encoded<B: AsRef<[u8]>>(
    issuer: &CaCertificate,
    signer: &dyn Signer,
    params: &CrlParams,
    chunks: &[B],
) -> Result<Vec<u8>, CrlError> {
    let mut entries_len = 0usize;
    for chunk in chunks {
        let mut rest = chunk.as_ref();
        while !rest.is_empty() {
            let at = entries_len + (chunk.as_ref().len() - rest.len());
            let (tlv, after) = read_tlv(rest).map_err(|_| CrlError::BadEncodedEntries(at))?;
            if tlv.tag != TAG_SEQUENCE {
                return Err(CrlError::BadEncodedEntries(at));
            }
            rest = after;
        }
        entries_len += chunk.as_ref().len();
    }
    assemble(issuer, signer, params, entries_len, |out| {
        for chunk in chunks {
            out.extend_from_slice(chunk.as_ref());
        }
        Ok(())
    })
}

fn crl_extensions(issuer: &CaCertificate, crl_number: u64) -> Result<Vec<u8>, CrlError> {
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(issuer.ski.clone())?),
        ..Default::default()
    };
    let mut number = Vec::with_capacity(11);
    push_integer(&mut number, &crl_number.to_be_bytes());
    let exts = vec![
        Extension {
            extn_id: oids::AUTHORITY_KEY_IDENTIFIER,
            critical: false,
            extn_value: OctetString::new(aki.to_der()?)?,
        },
        Extension {
            extn_id: oids::CRL_NUMBER,
            critical: false,
            extn_value: OctetString::new(number)?,
        },
    ];
    let seq = exts.to_der()?;
    let mut out = Vec::with_capacity(tlv_len(seq.len()));
    push_header(&mut out, TAG_EXPLICIT_0, seq.len());
    out.extend_from_slice(&seq);
    Ok(out)
}

/// Lay out the CRL in one buffer: room for the outer header, then the TBS
/// (whose revoked list `write_entries` fills), then the signature. The outer
/// header is written into the reserved room once the signature length is known
/// and the unused front is dropped, so the list is never held twice.
fn assemble(
    issuer: &CaCertificate,
    signer: &dyn Signer,
    params: &CrlParams,
    entries_len: usize,
    write_entries: impl FnOnce(&mut Vec<u8>) -> Result<(), CrlError>,
) -> Result<Vec<u8>, CrlError> {
    if signer.public_key_der() != issuer.spki_der().as_slice() {
        return Err(CrlError::SignerMismatch);
    }
    let bad = |e: der::Error| malformed(e.to_string());
    if let Some((_, ku)) = issuer.cert.tbs_certificate.get::<KeyUsage>().map_err(bad)? {
        if !ku.crl_sign() {
            return Err(CrlError::NoCrlSign);
        }
    }
    if params.next_update <= params.this_update {
        return Err(CrlError::BadUpdateTimes);
    }
    // parse_crl indexes with u32 offsets; refuse what it could not read back.
    if entries_len > (u32::MAX as usize) - (1 << 20) {
        return Err(CrlError::TooLarge);
    }
    let alg = signer.signature_algorithm().identifier().to_der()?;
    let issuer_name = issuer.subject().to_der()?;
    let extensions = crl_extensions(issuer, params.crl_number)?;
    let revoked_len = if entries_len == 0 {
        0 // RFC 5280 5.1.2.6: an empty list is absent, not an empty SEQUENCE.
    } else {
        tlv_len(entries_len)
    };
    let tbs_content = 3 // version INTEGER 1 (v2)
        + alg.len()
        + issuer_name.len()
        + time_tlv_len(params.this_update)?
        + time_tlv_len(params.next_update)?
        + revoked_len
        + extensions.len();
    let tbs_len = tlv_len(tbs_content);
    // Generous upper bound for the signature BIT STRING (RSA-8192 is 1 KiB).
    let sig_room = 1100 + alg.len();
    const HEADER_ROOM: usize = 6;
    let total_cap = HEADER_ROOM + tbs_len + sig_room;
    let mut out = Vec::with_capacity(total_cap);
    out.resize(HEADER_ROOM, 0);
    push_header(&mut out, TAG_SEQUENCE, tbs_content);
    out.extend_from_slice(&[TAG_INTEGER, 1, 1]);
    out.extend_from_slice(&alg);
    out.extend_from_slice(&issuer_name);
    push_time(&mut out, params.this_update)?;
    push_time(&mut out, params.next_update)?;
    if entries_len > 0 {
        push_header(&mut out, TAG_SEQUENCE, entries_len);
        let before = out.len();
        write_entries(&mut out)?;
        if out.len() - before != entries_len {
            // The length pass and the writing pass disagree: never emit it.
            return Err(malformed("revoked entries changed length while encoding"));
        }
    }
    out.extend_from_slice(&extensions);
    if out.len() != HEADER_ROOM + tbs_len {
        return Err(malformed("TBSCertList length mismatch"));
    }
    let sig = signer.sign(&out[HEADER_ROOM..])?;
    out.extend_from_slice(&alg);
    push_header(&mut out, TAG_BIT_STRING, sig.len() + 1);
    out.push(0); // no unused bits
    out.extend_from_slice(&sig);
    let body_len = out.len() - HEADER_ROOM;
    let header_len = 1 + len_of_len(body_len);
    if header_len > HEADER_ROOM {
        return Err(CrlError::TooLarge);
    }
    let start = HEADER_ROOM - header_len;
    let mut header = Vec::with_capacity(header_len);
    push_header(&mut header, TAG_SEQUENCE, body_len);
    out[start..HEADER_ROOM].copy_from_slice(&header);
    out.drain(..start);
    Ok(out)
}

/// PEM (`X509 CRL`) of a DER CRL, for `?format=pem` and the CLI.
pub fn to_pem(der: &[u8]) -> String {
    pem::encode(PEM_LABEL, der)
}
