//! [`LeanCertificate`] read by hand for the shape nearly every certificate has:
//! v3, no unique identifiers, algorithm parameters absent or NULL (or a curve
//! OID in the key's). der's generic decoding of the whole structure was half
//! of a validation's time beside the signatures.
//!
//! This never refuses anything: a certificate of any other shape, or one
//! that breaks a rule anywhere, is left to der's decoding
//! ([`LeanCertificate::decode`]), which gives the verdict and the error. So
//! what is accepted is exactly what der accepts, provided everything read
//! here is read under der's rules; `lean_certificate_decodes_as_x509_cert_does`
//! compares both on every x509-limbo certificate and on corruptions of them.

use const_oid::ObjectIdentifier;
use der::asn1::{AnyRef, BitStringRef};
use spki::{AlgorithmIdentifierOwned, AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use x509_cert::certificate::Version;

use super::lean::{
    LeanCertificate, LeanExtensions, LeanName, LeanSerial, LeanTbsCertificate, LeanTime,
    LeanValidity,
};
use crate::der_util::{
    read_tlv, RawCert, Tlv, TAG_BIT_STRING, TAG_GENERALIZED_TIME, TAG_INTEGER, TAG_NULL, TAG_OID,
    TAG_SEQUENCE, TAG_UTC_TIME,
};

/// `[0] EXPLICIT INTEGER 2`: the only encoding of version v3.
const VERSION_V3: [u8; 5] = [0xa0, 0x03, TAG_INTEGER, 0x01, 0x02];
/// `[3] EXPLICIT`, around the extensions.
const EXTENSIONS: u8 = 0xa3;
/// Larger input is left to der (whose readers refuse more than 256 MiB).
const MAX_INPUT: usize = 1 << 20;

/// The certificate, when `der` has the common shape and breaks no rule;
/// `None` otherwise, for der to decide.
#[cfg(any(test, feature = "fuzzing"))]
pub(super) fn certificate(der: &[u8]) -> Option<LeanCertificate<'_>> {
    certificate_and_raw(der).map(|(certificate, _)| certificate)
}

/// [`certificate`], and the slices [`raw_cert`](crate::der_util::raw_cert)
/// gives, found on the way.
pub(super) fn certificate_and_raw(der: &[u8]) -> Option<(LeanCertificate<'_>, RawCert<'_>)> {
    if der.len() > MAX_INPUT {
        return None;
    }
    let (certificate, trailing) = element(der, TAG_SEQUENCE)?;
    if !trailing.is_empty() {
        return None;
    }
    let (tbs, rest) = element(certificate.content, TAG_SEQUENCE)?;
    let (algorithm, rest) = element(rest, TAG_SEQUENCE)?;
    let (signature, rest) = element(rest, TAG_BIT_STRING)?;
    if !rest.is_empty() {
        return None;
    }
    let (tbs_certificate, names) = tbs_certificate(tbs.content)?;
    let certificate = LeanCertificate {
        tbs_certificate,
        signature_algorithm: signature_algorithm(algorithm.content)?,
        signature: bit_string(signature.content)?,
    };
    let raw = RawCert {
        tbs: tbs.whole,
        issuer: names.issuer,
        subject: names.subject,
        tbs_signature: names.signature,
        signature_algorithm: algorithm.whole,
    };
    Some((certificate, raw))
}

/// The whole encodings of the TBS's issuer, subject and signature algorithm.
struct RawNames<'a> {
    issuer: &'a [u8],
    subject: &'a [u8],
    signature: &'a [u8],
}

fn tbs_certificate(contents: &[u8]) -> Option<(LeanTbsCertificate<'_>, RawNames<'_>)> {
    let rest = contents.strip_prefix(&VERSION_V3)?;
    let (serial, rest) = element(rest, TAG_INTEGER)?;
    let (algorithm, rest) = element(rest, TAG_SEQUENCE)?;
    let (issuer, rest) = element(rest, TAG_SEQUENCE)?;
    let (validity, rest) = element(rest, TAG_SEQUENCE)?;
    let (subject, rest) = element(rest, TAG_SEQUENCE)?;
    let (spki, rest) = element(rest, TAG_SEQUENCE)?;
    // Unique identifiers ([1], [2]) are not this shape: der reads them.
    let extensions = if rest.is_empty() {
        None
    } else {
        let (wrapper, rest) = element(rest, EXTENSIONS)?;
        let (list, inside) = element(wrapper.content, TAG_SEQUENCE)?;
        if !rest.is_empty() || !inside.is_empty() {
            return None;
        }
        Some(LeanExtensions::walked(list.content).ok()?)
    };
    let names = RawNames {
        issuer: issuer.whole,
        subject: subject.whole,
        signature: algorithm.whole,
    };
    let tbs = LeanTbsCertificate {
        version: Version::V3,
        serial_number: LeanSerial::new(serial.content).ok()?,
        signature: signature_algorithm(algorithm.content)?,
        issuer: LeanName::walked(issuer.content).ok()?,
        validity: validity_of(validity.content)?,
        subject: LeanName::walked(subject.content).ok()?,
        subject_public_key_info: public_key_info(spki.content)?,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions,
    };
    Some((tbs, names))
}

/// `Validity ::= SEQUENCE { notBefore Time, notAfter Time }`.
fn validity_of(contents: &[u8]) -> Option<LeanValidity> {
    let (not_before, rest) = read_tlv(contents).ok()?;
    let (not_after, rest) = read_tlv(rest).ok()?;
    if !rest.is_empty() {
        return None;
    }
    Some(LeanValidity {
        not_before: time_of(&not_before)?,
        not_after: time_of(&not_after)?,
    })
}

/// A UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ`, the only
/// forms der reads (RFC 5280's: seconds, no fraction, Z). A UTCTime's YY of
/// 50 and above is 19YY, below 50 20YY.
pub(super) fn time_of(element: &Tlv<'_>) -> Option<LeanTime> {
    let (generalized, year, rest) = match (element.tag, element.content) {
        (TAG_UTC_TIME, [y1, y2, rest @ ..]) => {
            let yy = u16::from(two_digits(*y1, *y2)?);
            (false, if yy >= 50 { 1900 + yy } else { 2000 + yy }, rest)
        }
        (TAG_GENERALIZED_TIME, [y1, y2, y3, y4, rest @ ..]) => {
            let century = u16::from(two_digits(*y1, *y2)?);
            (true, century * 100 + u16::from(two_digits(*y3, *y4)?), rest)
        }
        _ => return None,
    };
    let [m1, m2, d1, d2, h1, h2, n1, n2, s1, s2, b'Z'] = *rest else {
        return None;
    };
    let unix = unix_seconds(
        year,
        two_digits(m1, m2)?,
        two_digits(d1, d2)?,
        two_digits(h1, h2)?,
        two_digits(n1, n2)?,
        two_digits(s1, s2)?,
    )?;
    Some(LeanTime { unix, generalized })
}

fn two_digits(hi: u8, lo: u8) -> Option<u8> {
    (hi.is_ascii_digit() && lo.is_ascii_digit()).then(|| (hi - b'0') * 10 + (lo - b'0'))
}

/// Seconds since the epoch, for what der's `DateTime::new` accepts: years
/// 1970 to 9999, a real day of the month, no leap second.
fn unix_seconds(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Option<u64> {
    const DAYS_BEFORE_MONTH: [u16; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    const DAYS_IN_MONTH: [u8; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    const LAST_SECOND: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    if year < 1970 || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let index = usize::from(month.checked_sub(1)?);
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days_in_month = DAYS_IN_MONTH.get(index)? + u8::from(leap && month == 2);
    if day == 0 || day > days_in_month {
        return None;
    }
    let before = u64::from(year) - 1;
    let leap_days = (before - 1968) / 4 - (before - 1900) / 100 + (before - 1600) / 400;
    let day_of_year = u64::from(*DAYS_BEFORE_MONTH.get(index)?)
        + u64::from(day - 1)
        + u64::from(leap && month > 2);
    let days = (u64::from(year) - 1970) * 365 + leap_days + day_of_year;
    let seconds =
        days * 86_400 + u64::from(hour) * 3_600 + u64::from(minute) * 60 + u64::from(second);
    (seconds <= LAST_SECOND).then_some(seconds)
}

/// `AlgorithmIdentifier` with its parameters absent or NULL.
fn signature_algorithm(contents: &[u8]) -> Option<AlgorithmIdentifierOwned> {
    let (oid, parameters) = element(contents, TAG_OID)?;
    Some(AlgorithmIdentifierOwned {
        oid: object_identifier(oid.content)?,
        parameters: match parameters {
            [] => None,
            [TAG_NULL, 0x00] => Some(AnyRef::NULL.into()),
            _ => return None,
        },
    })
}

/// `SubjectPublicKeyInfo` whose algorithm's parameters are absent, NULL or an
/// OID (a named curve; der reads parameters as ANY, their contents unchecked).
fn public_key_info(contents: &[u8]) -> Option<SubjectPublicKeyInfoRef<'_>> {
    let (algorithm, rest) = element(contents, TAG_SEQUENCE)?;
    let (key, rest) = element(rest, TAG_BIT_STRING)?;
    if !rest.is_empty() {
        return None;
    }
    let (oid, parameters) = element(algorithm.content, TAG_OID)?;
    let parameters = match parameters {
        [] => None,
        [TAG_NULL, 0x00] => Some(AnyRef::NULL),
        _ => {
            let (curve, rest) = element(parameters, TAG_OID)?;
            if !rest.is_empty() {
                return None;
            }
            Some(AnyRef::new(der::Tag::ObjectIdentifier, curve.content).ok()?)
        }
    };
    Some(SubjectPublicKeyInfoRef {
        algorithm: AlgorithmIdentifierRef {
            oid: object_identifier(oid.content)?,
            parameters,
        },
        subject_public_key: bit_string(key.content)?,
    })
}

/// An OID's contents, under the rules der decodes one by.
pub(super) fn object_identifier(contents: &[u8]) -> Option<ObjectIdentifier> {
    if contents.len() > ObjectIdentifier::MAX_SIZE {
        return None;
    }
    crate::oids::from_contents(contents).ok()
}

/// A BIT STRING's contents (the unused-bits octet, then the bits), under
/// der's rules.
fn bit_string(contents: &[u8]) -> Option<BitStringRef<'_>> {
    let (&unused_bits, bits) = contents.split_first()?;
    BitStringRef::new(unused_bits, bits).ok()
}

/// The next element of `input`, when it reads (minimal lengths, as der
/// requires) and has tag `tag`; and what follows it.
fn element(input: &[u8], tag: u8) -> Option<(Tlv<'_>, &[u8])> {
    let (tlv, rest) = read_tlv(input).ok()?;
    (tlv.tag == tag).then_some((tlv, rest))
}
