//! Certificate revocation lists (RFC 5280 section 5): building v2 CRLs signed by
//! a CA key, and parsing and checking CRLs.
//!
//! A CA with a million revoked certificates must still publish its CRL in
//! seconds, so the `revokedCertificates` list is written by hand straight into
//! the output buffer (one allocation, exact DER lengths) instead of going
//! through `x509_cert`'s owned structures, which allocate several times per
//! entry. The same goes for parsing: [`ParsedCrl`] keeps the DER and a compact
//! index sorted by serial (12 bytes per entry) instead of a decoded list.
//!
//! For incremental publication a store keeps each revocation's DER entry (from
//! [`encode_revoked_entry`]) and hands the bytes to [`build_crl_from_encoded`],
//! which only checks their framing, so a new CRL costs one copy and one
//! signature however long the list is.

use std::fmt;
use std::ops::Range;

use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};
use time::OffsetDateTime;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, KeyUsage};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::time::Time;

use crate::cert::CaCertificate;
use crate::der_util::{
    self, len_of_len, push_header, tlv_len, Tlv, TAG_BIT_STRING, TAG_GENERALIZED_TIME, TAG_INTEGER,
    TAG_SEQUENCE, TAG_UTC_TIME,
};
use crate::keys::{KeyError, Signer};
use crate::oids;
use crate::pem::{self, PemError};
use crate::serial::Serial;
use crate::signature::{verify_signature, SignatureError};
use crate::x509_time::from_x509_time;

/// PEM label of a CRL (RFC 7468 section 6).
pub const PEM_LABEL: &str = "X509 CRL";

const DELTA_CRL_INDICATOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.27");
/// The CRL number is an INTEGER of at most 20 octets (RFC 5280 5.2.3).
const MAX_CRL_NUMBER_OCTETS: usize = 20;

/// `[0] EXPLICIT`, as the hand-written encoder and reader use it.
const TAG_EXPLICIT_0: u8 = 0xa0;

#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("the signer's key is not the CA certificate's key")]
    SignerMismatch,
    #[error("the CA certificate's keyUsage lacks cRLSign")]
    NoCrlSign,
    #[error("nextUpdate must be later than thisUpdate")]
    BadUpdateTimes,
    #[error("time {0} cannot be encoded in a CRL (years 1950 to 9999 only)")]
    TimeRange(String),
    #[error("removeFromCRL is only meaningful in delta CRLs; this CA publishes complete CRLs")]
    RemoveFromCrlNotAllowed,
    #[error("pre-encoded revoked entries are malformed at byte {0}")]
    BadEncodedEntries(usize),
    #[error("the CRL is larger than 4 GiB")]
    TooLarge,
    #[error("CRL: {0}")]
    Pem(#[from] PemError),
    #[error("CRL does not parse: {0}")]
    Malformed(String),
    #[error("CRL issuer is not {0}")]
    IssuerMismatch(String),
    #[error("CRL signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("signing: {0}")]
    Key(#[from] KeyError),
    #[error("encoding failed: {0}")]
    Encoding(#[from] der::Error),
    #[error("unknown revocation reason {0:?}")]
    UnknownReason(String),
}

fn malformed(what: impl Into<String>) -> CrlError {
    CrlError::Malformed(what.into())
}

/// RFC 5280 CRLReason (section 5.3.1). Code 7 is unassigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RevocationReason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    RemoveFromCrl = 8,
    PrivilegeWithdrawn = 9,
    AaCompromise = 10,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 10] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold,
        RevocationReason::RemoveFromCrl,
        RevocationReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise,
    ];

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    /// The RFC 5280 ASN.1 name, e.g. `keyCompromise`.
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "cACompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::CertificateHold => "certificateHold",
            RevocationReason::RemoveFromCrl => "removeFromCRL",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
            RevocationReason::AaCompromise => "aACompromise",
        }
    }

    /// The same reason in `x509_cert`'s type (used in OCSP responses).
    pub fn to_x509(self) -> x509_cert::ext::pkix::CrlReason {
        use x509_cert::ext::pkix::CrlReason as R;
        match self {
            RevocationReason::Unspecified => R::Unspecified,
            RevocationReason::KeyCompromise => R::KeyCompromise,
            RevocationReason::CaCompromise => R::CaCompromise,
            RevocationReason::AffiliationChanged => R::AffiliationChanged,
            RevocationReason::Superseded => R::Superseded,
            RevocationReason::CessationOfOperation => R::CessationOfOperation,
            RevocationReason::CertificateHold => R::CertificateHold,
            RevocationReason::RemoveFromCrl => R::RemoveFromCRL,
            RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
            RevocationReason::AaCompromise => R::AaCompromise,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = CrlError;
    /// Accepts the RFC name in any case, with or without `-`/`_` separators
    /// (`keyCompromise`, `key-compromise`, `KEY_COMPROMISE`), or the numeric code.
    fn from_str(s: &str) -> Result<Self, CrlError> {
        let unknown = || CrlError::UnknownReason(s.chars().take(40).collect());
        if let Ok(code) = s.trim().parse::<u8>() {
            return Self::from_code(code).ok_or_else(unknown);
        }
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Self::ALL
            .into_iter()
            .find(|r| r.name().to_ascii_lowercase() == norm)
            .ok_or_else(unknown)
    }
}

/// One revoked certificate as a CRL lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    pub serial: Serial,
    pub revoked_at: OffsetDateTime,
    pub reason: RevocationReason,
}

/// What varies between successive CRLs of one CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlParams {
    /// Strictly increasing per CA (RFC 5280 5.2.3); the caller persists it.
    pub crl_number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
}

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
fn reason_extensions(code: u8) -> [u8; 14] {
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

// ---------------------------------------------------------------------------
// Parsing.

/// Read one DER TLV (see [`der_util::read_tlv`]), as a CRL error.
fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), CrlError> {
    der_util::read_tlv(input).map_err(|e| malformed(e.to_string()))
}

fn expect_tlv<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(Tlv<'a>, &'a [u8]), CrlError> {
    let (tlv, rest) = read_tlv(input)?;
    if tlv.tag != tag {
        return Err(malformed(format!("expected {what}")));
    }
    Ok((tlv, rest))
}

fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    inner.as_ptr() as usize - outer.as_ptr() as usize
}

fn parse_time(tlv: &Tlv<'_>) -> Result<OffsetDateTime, CrlError> {
    let t = Time::from_der(tlv.whole).map_err(|e| malformed(format!("time: {e}")))?;
    Ok(from_x509_time(&t))
}

/// A non-negative INTEGER's magnitude, leading zeros stripped.
fn non_negative_magnitude(content: &[u8]) -> Result<&[u8], CrlError> {
    match content.first() {
        None => Err(malformed("empty INTEGER")),
        Some(b) if b & 0x80 != 0 => Err(malformed("negative INTEGER")),
        Some(_) => {
            let start = content
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(content.len());
            Ok(&content[start..])
        }
    }
}

/// One decoded revokedCertificates element.
struct EntryView<'a> {
    serial_content: &'a [u8],
    revoked_at: OffsetDateTime,
    reason: RevocationReason,
}

fn decode_entry(entry_content: &[u8]) -> Result<EntryView<'_>, CrlError> {
    let (serial, rest) = expect_tlv(entry_content, TAG_INTEGER, "entry serial INTEGER")?;
    if serial.content.is_empty() {
        return Err(malformed("empty serial"));
    }
    // DER INTEGERs are minimal (X.690 8.3.2). A padded serial would list a
    // certificate under octets no lookup compares equal: refuse the CRL
    // (fail closed) rather than answer "not revoked".
    if let [first, second, ..] = serial.content {
        if (*first == 0 && second & 0x80 == 0) || (*first == 0xff && second & 0x80 != 0) {
            return Err(malformed("entry serial INTEGER is not minimally encoded"));
        }
    }
    let (time, rest) = read_tlv(rest)?;
    if time.tag != TAG_UTC_TIME && time.tag != TAG_GENERALIZED_TIME {
        return Err(malformed("entry revocationDate is not a time"));
    }
    let revoked_at = parse_time(&time)?;
    let mut reason = RevocationReason::Unspecified;
    if !rest.is_empty() {
        let (exts, after) = expect_tlv(rest, TAG_SEQUENCE, "crlEntryExtensions")?;
        if !after.is_empty() {
            return Err(malformed("trailing data in a revoked entry"));
        }
        // The common case is exactly our 14-octet reasonCode; decode anything else generically.
        if exts.whole.len() == 14 && exts.whole[..13] == reason_extensions(0)[..13] {
            reason = RevocationReason::from_code(exts.whole[13])
                .ok_or_else(|| malformed("unknown reasonCode"))?;
        } else {
            let list = Vec::<Extension>::from_der(exts.whole)
                .map_err(|e| malformed(format!("entry extensions: {e}")))?;
            for ext in list {
                if ext.extn_id == oids::CRL_REASON {
                    let code = x509_cert::ext::pkix::CrlReason::from_der(ext.extn_value.as_bytes())
                        .map_err(|e| malformed(format!("reasonCode: {e}")))?;
                    reason = RevocationReason::from_code(code as u8)
                        .ok_or_else(|| malformed("unknown reasonCode"))?;
                } else if ext.critical {
                    return Err(malformed(format!(
                        "unsupported critical entry extension {}",
                        ext.extn_id
                    )));
                }
            }
        }
    }
    Ok(EntryView {
        serial_content: serial.content,
        revoked_at,
        reason,
    })
}

/// Index of one entry: where it starts and where its serial's content octets are.
#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    entry: u32,
    serial: u32,
    serial_len: u8,
}

/// Serial content octets compared as numbers (shorter is smaller): any total
/// order works for binary search; this one also lists serials numerically.
fn cmp_serial(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A parsed CRL: its header fields, and its entries indexed by serial.
#[derive(Clone, Debug)]
pub struct ParsedCrl {
    pub issuer: Name,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// Magnitude of the cRLNumber, big-endian, no leading zeros.
    pub crl_number: Option<Vec<u8>>,
    pub authority_key_id: Option<Vec<u8>>,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
    /// Carries a deltaCRLIndicator: not a complete CRL.
    pub is_delta: bool,
    /// Its issuingDistributionPoint limits its scope (only CA or only user
    /// certificates, some reasons, indirect): "not listed" does not mean "not
    /// revoked" for a certificate outside that scope.
    pub partitioned: bool,
    /// Critical CRL extensions this parser does not understand; RFC 5280 6.3.3
    /// says such a CRL must not be used to decide revocation.
    pub unsupported_critical: Vec<ObjectIdentifier>,
    der: Vec<u8>,
    tbs: Range<usize>,
    signature: Range<usize>,
    index: Vec<IndexEntry>,
}

/// Parse a CRL from DER or PEM (`X509 CRL`), checking the DER framing of every
/// entry, its time and its reason. The signature is not checked here; see
/// [`verify_crl_signature`].
pub fn parse_crl(input: &[u8]) -> Result<ParsedCrl, CrlError> {
    let der = pem::der_or_pem(PEM_LABEL, input)?;
    if u32::try_from(der.len()).is_err() {
        return Err(CrlError::TooLarge);
    }
    let (outer, trailing) = expect_tlv(&der, TAG_SEQUENCE, "CertificateList SEQUENCE")?;
    if !trailing.is_empty() {
        return Err(malformed("trailing data after the CRL"));
    }
    let (tbs, rest) = expect_tlv(outer.content, TAG_SEQUENCE, "TBSCertList")?;
    let (outer_alg, rest) = expect_tlv(rest, TAG_SEQUENCE, "signatureAlgorithm")?;
    let (sig, rest) = expect_tlv(rest, TAG_BIT_STRING, "signature BIT STRING")?;
    if !rest.is_empty() {
        return Err(malformed("trailing data in CertificateList"));
    }
    match sig.content.first() {
        Some(0) => {}
        _ => return Err(malformed("signature BIT STRING has unused bits")),
    }

    let mut rest = tbs.content;
    let (mut tlv, mut after) = read_tlv(rest)?;
    let mut version = 0u8;
    if tlv.tag == TAG_INTEGER {
        match tlv.content {
            [1] => version = 1,
            _ => return Err(malformed("CRL version is not v2")),
        }
        rest = after;
        (tlv, after) = read_tlv(rest)?;
    }
    if tlv.tag != TAG_SEQUENCE || tlv.whole != outer_alg.whole {
        return Err(malformed(
            "TBSCertList signature algorithm differs from the outer one",
        ));
    }
    let signature_algorithm = AlgorithmIdentifierOwned::from_der(tlv.whole)
        .map_err(|e| malformed(format!("signature algorithm: {e}")))?;
    let (issuer_tlv, rest) = expect_tlv(after, TAG_SEQUENCE, "issuer Name")?;
    let issuer = Name::from_der(issuer_tlv.whole).map_err(|e| malformed(format!("issuer: {e}")))?;
    let (this_tlv, mut rest) = read_tlv(rest)?;
    if this_tlv.tag != TAG_UTC_TIME && this_tlv.tag != TAG_GENERALIZED_TIME {
        return Err(malformed("thisUpdate is not a time"));
    }
    let this_update = parse_time(&this_tlv)?;
    let mut next_update = None;
    let mut revoked: &[u8] = &[];
    let mut ext_tlv = None;
    while !rest.is_empty() {
        let (tlv, after) = read_tlv(rest)?;
        match tlv.tag {
            TAG_UTC_TIME | TAG_GENERALIZED_TIME if next_update.is_none() && revoked.is_empty() => {
                next_update = Some(parse_time(&tlv)?)
            }
            TAG_SEQUENCE if revoked.is_empty() && ext_tlv.is_none() => {
                if tlv.content.is_empty() {
                    return Err(malformed("empty revokedCertificates must be absent"));
                }
                revoked = tlv.content;
            }
            TAG_EXPLICIT_0 if ext_tlv.is_none() => ext_tlv = Some(tlv.content),
            _ => return Err(malformed("unexpected field in TBSCertList")),
        }
        rest = after;
    }

    let mut crl_number = None;
    let mut authority_key_id = None;
    let mut is_delta = false;
    let mut partitioned = false;
    let mut unsupported_critical = Vec::new();
    if let Some(content) = ext_tlv {
        if version != 1 {
            return Err(malformed("v1 CRL with extensions"));
        }
        let exts = Vec::<Extension>::from_der(content)
            .map_err(|e| malformed(format!("CRL extensions: {e}")))?;
        for ext in exts {
            let value = ext.extn_value.as_bytes();
            match ext.extn_id {
                oids::CRL_NUMBER => {
                    // RFC 5280 5.2.3: conforming issuers mark it non-critical.
                    if ext.critical {
                        return Err(malformed("cRLNumber is marked critical"));
                    }
                    let (n, rest) = expect_tlv(value, TAG_INTEGER, "cRLNumber INTEGER")?;
                    let mag = non_negative_magnitude(n.content)?;
                    if !rest.is_empty() || mag.len() > MAX_CRL_NUMBER_OCTETS {
                        return Err(malformed("cRLNumber is not a 20-octet INTEGER"));
                    }
                    crl_number = Some(mag.to_vec());
                }
                oids::AUTHORITY_KEY_IDENTIFIER => {
                    let aki = AuthorityKeyIdentifier::from_der(value)
                        .map_err(|e| malformed(format!("authorityKeyIdentifier: {e}")))?;
                    authority_key_id = aki.key_identifier.map(|k| k.as_bytes().to_vec());
                }
                DELTA_CRL_INDICATOR => is_delta = true,
                oids::ISSUING_DISTRIBUTION_POINT => {
                    let idp = IssuingDistributionPoint::from_der(value)
                        .map_err(|e| malformed(format!("issuingDistributionPoint: {e}")))?;
                    partitioned = idp.only_contains_ca_certs
                        || idp.only_contains_user_certs
                        || idp.only_some_reasons.is_some()
                        || idp.indirect_crl
                        || idp.only_contains_attribute_certs;
                }
                other if ext.critical => unsupported_critical.push(other),
                _ => {}
            }
        }
    }

    let mut index = Vec::new();
    let mut rest = revoked;
    while !rest.is_empty() {
        let (entry, after) = expect_tlv(rest, TAG_SEQUENCE, "revoked entry SEQUENCE")?;
        let view = decode_entry(entry.content)?;
        let serial_len = u8::try_from(view.serial_content.len())
            .map_err(|_| malformed("serial longer than 255 octets"))?;
        // Offsets fit in u32: the whole CRL was checked to be under 4 GiB.
        index.push(IndexEntry {
            entry: offset_in(&der, entry.whole) as u32,
            serial: offset_in(&der, view.serial_content) as u32,
            serial_len,
        });
        rest = after;
    }
    let serial_of = |i: &IndexEntry| {
        let start = i.serial as usize;
        &der[start..start + usize::from(i.serial_len)]
    };
    index.sort_unstable_by(|a, b| cmp_serial(serial_of(a), serial_of(b)));

    let tbs_range = offset_in(&der, tbs.whole)..offset_in(&der, tbs.whole) + tbs.whole.len();
    let sig_start = offset_in(&der, sig.content) + 1;
    let sig_range = sig_start..offset_in(&der, sig.content) + sig.content.len();
    Ok(ParsedCrl {
        issuer,
        signature_algorithm,
        crl_number,
        authority_key_id,
        this_update,
        next_update,
        is_delta,
        partitioned,
        unsupported_critical,
        tbs: tbs_range,
        signature: sig_range,
        index,
        der,
    })
}

impl ParsedCrl {
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn to_pem(&self) -> String {
        to_pem(&self.der)
    }

    /// The cRLNumber when it fits in 64 bits (always, for CRLs this crate makes).
    pub fn crl_number_u64(&self) -> Option<u64> {
        let n = self.crl_number.as_ref()?;
        if n.len() > 8 {
            return None;
        }
        Some(n.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    pub fn revoked_count(&self) -> usize {
        self.index.len()
    }

    fn entry_at(&self, i: &IndexEntry) -> Option<RevokedEntry> {
        let (tlv, _) = read_tlv(self.der.get(i.entry as usize..)?).ok()?;
        let view = decode_entry(tlv.content).ok()?;
        Some(RevokedEntry {
            serial: Serial::from_bytes(view.serial_content),
            revoked_at: view.revoked_at,
            reason: view.reason,
        })
    }

    /// The entry for `serial`, if the CRL lists it (binary search, no allocation
    /// beyond the answer).
    pub fn lookup(&self, serial: &Serial) -> Option<RevokedEntry> {
        let want = serial_integer_content(serial);
        let found = self
            .index
            .binary_search_by(|i| {
                let start = i.serial as usize;
                let have = &self.der[start..start + usize::from(i.serial_len)];
                cmp_serial(have, &want)
            })
            .ok()?;
        self.entry_at(&self.index[found])
    }

    /// Whether an entry's serial INTEGER has exactly these content octets: for
    /// certificates from other issuers, whose serials may not be canonical.
    pub fn lists_serial_octets(&self, content: &[u8]) -> bool {
        self.index
            .binary_search_by(|i| {
                let start = i.serial as usize;
                let have = &self.der[start..start + usize::from(i.serial_len)];
                cmp_serial(have, content)
            })
            .is_ok()
    }

    pub fn is_revoked(&self, serial: &Serial) -> bool {
        self.lookup(serial).is_some()
    }

    /// Every entry, in serial order. Negative serials (never issued by this
    /// CA, possible in foreign CRLs) appear with their two's-complement octets.
    pub fn revoked(&self) -> impl Iterator<Item = RevokedEntry> + '_ {
        self.index.iter().filter_map(|i| self.entry_at(i))
    }

    /// The signed TBSCertList octets and the signature value.
    pub fn signed_parts(&self) -> (&[u8], &[u8]) {
        (
            &self.der[self.tbs.clone()],
            &self.der[self.signature.clone()],
        )
    }

    /// See [`verify_crl_signature`].
    pub fn verify_signature(&self, ca: &CaCertificate) -> Result<(), CrlError> {
        verify_crl_signature(self, ca)
    }
}

/// Check that `ca` issued `crl`: the CRL issuer is the CA's subject, its
/// authorityKeyIdentifier (when present) is the CA's key identifier, and the
/// signature verifies under the CA's key.
pub fn verify_crl_signature(crl: &ParsedCrl, ca: &CaCertificate) -> Result<(), CrlError> {
    let subject = ca.subject();
    if crl.issuer.to_der()? != subject.to_der()? {
        return Err(CrlError::IssuerMismatch(subject.to_string()));
    }
    if let Some(aki) = &crl.authority_key_id {
        if aki != &ca.ski {
            return Err(CrlError::IssuerMismatch(format!(
                "{subject} (authorityKeyIdentifier differs)"
            )));
        }
    }
    let spki_der = ca.spki_der();
    let spki = SubjectPublicKeyInfoRef::from_der(&spki_der)
        .map_err(|e| malformed(format!("CA key: {e}")))?;
    let (tbs, sig) = crl.signed_parts();
    verify_signature(&spki, &crl.signature_algorithm, tbs, sig)?;
    Ok(())
}

#[cfg(test)]
mod tests;
