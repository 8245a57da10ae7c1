//! Object identifiers used across the crate, named once.

use const_oid::ObjectIdentifier as Oid;

pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
pub const RSASSA_PSS: Oid = Oid::new_unwrap("1.2.840.113549.1.1.10");
pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
pub const SHA384_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
pub const SHA512_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
pub const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
pub const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
pub const SECP256R1: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
pub const SECP384R1: Oid = Oid::new_unwrap("1.3.132.0.34");
pub const ECDSA_WITH_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
pub const ECDSA_WITH_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
pub const ECDSA_WITH_SHA512: Oid = Oid::new_unwrap("1.2.840.10045.4.3.4");
pub const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
pub const SHA384: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.2");
pub const SHA512: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.3");

// PKCS#9 / CSR attributes
pub const EXTENSION_REQUEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.14");

// Certificate extensions (RFC 5280 section 4.2)
pub const SUBJECT_KEY_IDENTIFIER: Oid = Oid::new_unwrap("2.5.29.14");
pub const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
pub const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
pub const ISSUER_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.18");
pub const BASIC_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.19");
pub const CRL_NUMBER: Oid = Oid::new_unwrap("2.5.29.20");
pub const CRL_REASON: Oid = Oid::new_unwrap("2.5.29.21");
pub const NAME_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.30");
pub const CRL_DISTRIBUTION_POINTS: Oid = Oid::new_unwrap("2.5.29.31");
pub const CERTIFICATE_POLICIES: Oid = Oid::new_unwrap("2.5.29.32");
pub const POLICY_MAPPINGS: Oid = Oid::new_unwrap("2.5.29.33");
pub const AUTHORITY_KEY_IDENTIFIER: Oid = Oid::new_unwrap("2.5.29.35");
pub const POLICY_CONSTRAINTS: Oid = Oid::new_unwrap("2.5.29.36");
pub const EXT_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37");
pub const INHIBIT_ANY_POLICY: Oid = Oid::new_unwrap("2.5.29.54");
pub const ISSUING_DISTRIBUTION_POINT: Oid = Oid::new_unwrap("2.5.29.28");
pub const AUTHORITY_INFO_ACCESS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.1.1");

// Access methods (RFC 5280 section 4.2.2.1)
pub const AD_OCSP: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1");
pub const AD_CA_ISSUERS: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.2");
pub const OCSP_NOCHECK: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.48.1.5");

// Extended key usages
pub const ANY_EXTENDED_KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.37.0");
pub const KP_SERVER_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.1");
pub const KP_CLIENT_AUTH: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.2");
pub const KP_CODE_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.3");
pub const KP_EMAIL_PROTECTION: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.4");
pub const KP_TIME_STAMPING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.8");
pub const KP_OCSP_SIGNING: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.9");

// Attribute types in names
pub const AT_COMMON_NAME: Oid = Oid::new_unwrap("2.5.4.3");
pub const AT_COUNTRY: Oid = Oid::new_unwrap("2.5.4.6");
pub const AT_ORGANIZATION: Oid = Oid::new_unwrap("2.5.4.10");
pub const AT_ORGANIZATIONAL_UNIT: Oid = Oid::new_unwrap("2.5.4.11");

// Attribute types seen in most names beside the ones above.
const AT_SERIAL_NUMBER: Oid = Oid::new_unwrap("2.5.4.5");
const AT_LOCALITY: Oid = Oid::new_unwrap("2.5.4.7");
const AT_STATE: Oid = Oid::new_unwrap("2.5.4.8");
pub(crate) const SCT_LIST: Oid = Oid::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

/// The OIDs nearly every certificate carries (its algorithms, extensions, EKU
/// purposes and name attributes), most often used first, each beside its DER
/// contents (a test holds each pair equal to `as_bytes`).
const COMMON: [(&[u8], Oid); 27] = [
    (&[0x55, 0x04, 0x03], AT_COMMON_NAME),
    (&[0x55, 0x1d, 0x0e], SUBJECT_KEY_IDENTIFIER),
    (&[0x55, 0x1d, 0x23], AUTHORITY_KEY_IDENTIFIER),
    (&[0x55, 0x1d, 0x0f], KEY_USAGE),
    (&[0x55, 0x1d, 0x13], BASIC_CONSTRAINTS),
    (&[0x55, 0x1d, 0x25], EXT_KEY_USAGE),
    (&[0x55, 0x1d, 0x11], SUBJECT_ALT_NAME),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01],
        KP_SERVER_AUTH,
    ),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02],
        KP_CLIENT_AUTH,
    ),
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01], EC_PUBLIC_KEY),
    (&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07], SECP256R1),
    (&[0x2b, 0x81, 0x04, 0x00, 0x22], SECP384R1),
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02],
        ECDSA_WITH_SHA256,
    ),
    (
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
        ECDSA_WITH_SHA384,
    ),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
        RSA_ENCRYPTION,
    ),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
        SHA256_WITH_RSA,
    ),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        SHA384_WITH_RSA,
    ),
    (&[0x55, 0x04, 0x06], AT_COUNTRY),
    (&[0x55, 0x04, 0x0a], AT_ORGANIZATION),
    (&[0x55, 0x04, 0x0b], AT_ORGANIZATIONAL_UNIT),
    (&[0x55, 0x04, 0x05], AT_SERIAL_NUMBER),
    (&[0x55, 0x04, 0x07], AT_LOCALITY),
    (&[0x55, 0x04, 0x08], AT_STATE),
    (&[0x55, 0x1d, 0x1f], CRL_DISTRIBUTION_POINTS),
    (&[0x55, 0x1d, 0x20], CERTIFICATE_POLICIES),
    (
        &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01],
        AUTHORITY_INFO_ACCESS,
    ),
    (
        &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02],
        SCT_LIST,
    ),
];

/// An OID from its DER contents, as `ObjectIdentifier::from_bytes` reads it.
/// One of `COMMON` is found by comparing bytes instead of being validated arc
/// by arc (that validation was ~1% of a chain validation's time in a profile):
/// each is a valid OID, so `from_bytes` would give the same value.
pub(crate) fn from_contents(contents: &[u8]) -> Result<Oid, const_oid::Error> {
    // Length and last byte first: nearly all entries differ there, so at most
    // one comparison of whole contents.
    let found = COMMON.iter().find(|(bytes, _)| {
        bytes.len() == contents.len() && bytes.last() == contents.last() && *bytes == contents
    });
    match found {
        Some((_, known)) => Ok(*known),
        None => Oid::from_bytes(contents),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_oids_read_as_from_bytes_reads_them() {
        for (bytes, known) in COMMON {
            assert_eq!(bytes, known.as_bytes(), "{known}");
            assert_eq!(from_contents(bytes), Ok(known));
        }
        // Not common: validated (a valid one read, an invalid one refused).
        let other = Oid::new_unwrap("1.2.3.4.5");
        assert_eq!(from_contents(other.as_bytes()), Ok(other));
        assert!(from_contents(&[0x2a, 0x80]).is_err());
        assert!(from_contents(&[]).is_err());
        // A common OID's bytes with one more arc are not that OID.
        let mut longer = AT_COMMON_NAME.as_bytes().to_vec();
        longer.push(0x01);
        assert_eq!(from_contents(&longer), Oid::from_bytes(&longer));
        assert_ne!(from_contents(&longer), Ok(AT_COMMON_NAME));
    }
}
