//! Reading CRLs: every entry's framing checked once and indexed by serial into
//! the kept DER, lookups in that index, and the check of the issuer's signature.

use std::ops::Range;

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};
use time::OffsetDateTime;
use x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::time::Time;

use super::encode::{reason_extensions, serial_integer_content};
use super::{
    malformed, to_pem, CrlError, RevocationReason, RevokedEntry, DELTA_CRL_INDICATOR,
    MAX_CRL_NUMBER_OCTETS, PEM_LABEL, TAG_EXPLICIT_0,
};
use crate::cert::CaCertificate;
use crate::der_util::{
    self, Tlv, TAG_BIT_STRING, TAG_GENERALIZED_TIME, TAG_INTEGER, TAG_SEQUENCE, TAG_UTC_TIME,
};
use crate::oids;
use crate::pem;
use crate::serial::Serial;
use crate::signature::verify_signature;
use crate::x509_time::from_x509_time;

/// Read one DER TLV (see [`der_util::read_tlv`]), as a CRL error.
pub(super) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), CrlError> {
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
