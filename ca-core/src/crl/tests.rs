//! Unit tests of [`super`].

use super::*;
use crate::cert::{create_root, CaCertificate, RootParams};
use crate::der_util::{push_header, tlv_len, TAG_SEQUENCE};
use crate::keys::{KeyAlgorithm, SoftwareKey};
use crate::oids;
use crate::x509_time::from_x509_time;
use der::asn1::OctetString;
use der::{Decode, Encode};
use std::str::FromStr;
use time::Duration;
use x509_cert::ext::Extension;
use x509_cert::name::Name;

fn ca(alg: KeyAlgorithm) -> (SoftwareKey, CaCertificate) {
    let key = SoftwareKey::generate(alg).unwrap();
    let name = Name::from_str("CN=CRL Test CA,O=ca-core tests").unwrap();
    let ca = create_root(&key, &RootParams::new(name), OffsetDateTime::now_utc()).unwrap();
    (key, ca)
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc().replace_nanosecond(0).unwrap()
}

fn params(n: u64) -> CrlParams {
    CrlParams {
        crl_number: n,
        this_update: now(),
        next_update: now() + Duration::days(7),
    }
}

fn entry(hex: &str, reason: RevocationReason) -> RevokedEntry {
    RevokedEntry {
        serial: Serial::from_hex(hex).unwrap(),
        revoked_at: now() - Duration::hours(1),
        reason,
    }
}

#[test]
fn der_lengths_are_minimal() {
    for (len, header) in [
        (0usize, vec![0x30, 0x00]),
        (0x7f, vec![0x30, 0x7f]),
        (0x80, vec![0x30, 0x81, 0x80]),
        (0xff, vec![0x30, 0x81, 0xff]),
        (0x100, vec![0x30, 0x82, 0x01, 0x00]),
        (0x01_0000, vec![0x30, 0x83, 0x01, 0x00, 0x00]),
        (0x0100_0000, vec![0x30, 0x84, 0x01, 0x00, 0x00, 0x00]),
    ] {
        let mut out = Vec::new();
        push_header(&mut out, TAG_SEQUENCE, len);
        assert_eq!(out, header, "{len:#x}");
        assert_eq!(tlv_len(len), header.len() + len);
    }
}

#[test]
fn reason_codes_names_and_parsing() {
    for r in RevocationReason::ALL {
        assert_eq!(RevocationReason::from_code(r.code()), Some(r));
        assert_eq!(RevocationReason::from_str(r.name()).unwrap(), r);
        assert_eq!(
            RevocationReason::from_str(&r.code().to_string()).unwrap(),
            r
        );
        assert_eq!(r.to_x509() as u8, r.code());
    }
    assert_eq!(RevocationReason::from_code(7), None);
    assert_eq!(RevocationReason::from_code(11), None);
    assert_eq!(
        RevocationReason::from_str("key-compromise").unwrap(),
        RevocationReason::KeyCompromise
    );
    assert_eq!(
        RevocationReason::from_str("CA_COMPROMISE").unwrap(),
        RevocationReason::CaCompromise
    );
    assert!(RevocationReason::from_str("7").is_err());
    assert!(RevocationReason::from_str("stolen").is_err());
}

#[test]
fn entry_encoding_matches_x509_cert_and_its_length() {
    let cases = [
        entry("01", RevocationReason::Unspecified),
        entry("80", RevocationReason::KeyCompromise), // needs the 0x00 pad
        entry(&"7f".repeat(16), RevocationReason::Superseded),
        RevokedEntry {
            serial: Serial::from_hex("ff").unwrap(),
            revoked_at: OffsetDateTime::from_unix_timestamp(2_600_000_000).unwrap(), // 2052
            reason: RevocationReason::CessationOfOperation,
        },
    ];
    for e in &cases {
        let der = encode_revoked_entry(e).unwrap();
        assert_eq!(der.len(), encoded_entry_len(e).unwrap());
        let parsed = x509_cert::crl::RevokedCert::from_der(&der).unwrap();
        assert_eq!(
            Serial::from_bytes(parsed.serial_number.as_bytes()),
            e.serial
        );
        assert_eq!(from_x509_time(&parsed.revocation_date), e.revoked_at);
        assert_eq!(
            parsed.crl_entry_extensions.is_some(),
            e.reason != RevocationReason::Unspecified
        );
        // The x509-cert encoding of the decoded value is byte-identical: the DER is canonical.
        assert_eq!(parsed.to_der().unwrap(), der);
    }
    let hold = entry("01", RevocationReason::RemoveFromCrl);
    assert!(matches!(
        encode_revoked_entry(&hold),
        Err(CrlError::RemoveFromCrlNotAllowed)
    ));
}

#[test]
fn built_crl_parses_verifies_and_finds_entries() {
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::Rsa2048,
    ] {
        let (key, ca) = ca(alg);
        let entries = vec![
            entry("0a", RevocationReason::KeyCompromise),
            entry("0b", RevocationReason::Unspecified),
            entry("00ff", RevocationReason::Superseded),
        ];
        let p = params(42);
        let der = build_crl(&ca, &key, &p, &entries).unwrap();
        // x509-cert agrees on the structure.
        let list = x509_cert::crl::CertificateList::from_der(&der).unwrap();
        assert_eq!(list.tbs_cert_list.version, x509_cert::Version::V2);
        assert_eq!(list.tbs_cert_list.revoked_certificates.unwrap().len(), 3);

        let crl = parse_crl(&der).unwrap();
        crl.verify_signature(&ca).unwrap();
        assert_eq!(crl.crl_number_u64(), Some(42));
        assert_eq!(crl.authority_key_id.as_deref(), Some(ca.ski.as_slice()));
        assert_eq!(crl.this_update, p.this_update);
        assert_eq!(crl.next_update, Some(p.next_update));
        assert_eq!(crl.revoked_count(), 3);
        for e in &entries {
            assert_eq!(crl.lookup(&e.serial).as_ref(), Some(e), "{alg}");
        }
        assert!(!crl.is_revoked(&Serial::from_hex("0c").unwrap()));
        // PEM round trip.
        let again = parse_crl(crl.to_pem().as_bytes()).unwrap();
        assert_eq!(again.der(), der.as_slice());
    }
}

#[test]
fn encoded_chunks_build_the_same_crl_shape() {
    let (key, ca) = ca(KeyAlgorithm::EcdsaP256);
    let entries: Vec<_> = (1..=50u32)
        .map(|i| RevokedEntry {
            serial: Serial::from_bytes(&i.to_be_bytes()),
            revoked_at: now(),
            reason: RevocationReason::ALL[(i % 7) as usize],
        })
        .collect();
    let chunks: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| encode_revoked_entry(e).unwrap())
        .collect();
    let p = params(7);
    let a = parse_crl(&build_crl(&ca, &key, &p, &entries).unwrap()).unwrap();
    let b = parse_crl(&build_crl_from_encoded(&ca, &key, &p, &chunks).unwrap()).unwrap();
    b.verify_signature(&ca).unwrap();
    // Same TBS (signatures differ: ECDSA is randomised).
    assert_eq!(a.signed_parts().0, b.signed_parts().0);
    // One concatenated buffer works too.
    let joined = [chunks.concat()];
    let c = parse_crl(&build_crl_from_encoded(&ca, &key, &p, &joined).unwrap()).unwrap();
    assert_eq!(a.signed_parts().0, c.signed_parts().0);
    assert_eq!(c.revoked().collect::<Vec<_>>().len(), 50);
    // Broken framing is refused, with the position.
    let mut bad = chunks.clone();
    bad[3].pop();
    assert!(matches!(
        build_crl_from_encoded(&ca, &key, &p, &bad),
        Err(CrlError::BadEncodedEntries(_))
    ));
    let not_seq = [vec![0x02, 0x01, 0x01]];
    assert!(matches!(
        build_crl_from_encoded(&ca, &key, &p, &not_seq),
        Err(CrlError::BadEncodedEntries(0))
    ));
}

#[test]
fn empty_crl_omits_the_list_and_still_verifies() {
    let (key, ca) = ca(KeyAlgorithm::EcdsaP384);
    let der = build_crl(&ca, &key, &params(1), &[]).unwrap();
    let list = x509_cert::crl::CertificateList::from_der(&der).unwrap();
    assert!(list.tbs_cert_list.revoked_certificates.is_none());
    let crl = parse_crl(&der).unwrap();
    crl.verify_signature(&ca).unwrap();
    assert_eq!(crl.revoked_count(), 0);
}

#[test]
fn wrong_signer_times_and_issuer_are_refused() {
    let (key, ca_cert) = ca(KeyAlgorithm::EcdsaP256);
    let (other_key, other_ca) = ca(KeyAlgorithm::EcdsaP256);
    assert!(matches!(
        build_crl(&ca_cert, &other_key, &params(1), &[]),
        Err(CrlError::SignerMismatch)
    ));
    let mut p = params(1);
    p.next_update = p.this_update;
    assert!(matches!(
        build_crl(&ca_cert, &key, &p, &[]),
        Err(CrlError::BadUpdateTimes)
    ));
    let mut p = params(1);
    p.this_update = OffsetDateTime::from_unix_timestamp(-800_000_000).unwrap(); // 1944
    assert!(matches!(
        build_crl(&ca_cert, &key, &p, &[]),
        Err(CrlError::TimeRange(_))
    ));
    // Same subject name, other key: the signature check catches it.
    let der = build_crl(&ca_cert, &key, &params(1), &[]).unwrap();
    let crl = parse_crl(&der).unwrap();
    assert!(crl.verify_signature(&other_ca).is_err());
    // A flipped signature bit fails.
    let mut tampered = der.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let crl = parse_crl(&tampered).unwrap();
    assert!(matches!(
        crl.verify_signature(&ca_cert),
        Err(CrlError::Signature(_))
    ));
}

/// Found by the `crl` fuzz target: a foreign CRL may list a negative
/// serial (INTEGER 0xeacb). It parses and is listed; a `Serial` (always
/// positive) cannot name it, so lookup misses it, and chain validation,
/// which compares the certificate's raw serial octets, still finds it.
#[test]
fn negative_serials_in_foreign_crls() {
    use base64ct::{Base64, Encoding};
    let der = Base64::decode_vec(
        "MIHSMHsCAQEwCgYIKoZIzj0EAwIwFzEVMBMGA1UEAwwMRnV6eiBTZWVkIENBFw0yNjEyMDMwNzE3MzRaFw0yNjEyMTAwNzE3MzRaMCMwIQIC6ssXDTEzMDIwMzA3MTczNFowDDAKBgNVHRUEAwoBAaAOMAwwCgYDVR0UBAMCAQEwCgYIKoZIzj0EAwIDRwAwRAIgAOeryDNgMNtcaYWVkBk5V77fz0zmr4ZAKrTkLQZj2vcCIBSn8YBRtsjV3Wv/R5o8aTSS9mkE///6xHNl5sivl+1V",
    )
    .unwrap();
    let crl = parse_crl(&der).expect("parses");
    let listed: Vec<RevokedEntry> = crl.revoked().collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].serial.to_hex(), "eacb");
    assert!(crl.lookup(&listed[0].serial).is_none());
    assert!(crl.lists_serial_octets(&[0xea, 0xcb]));
    assert!(!crl.lists_serial_octets(&[0x00, 0xea, 0xcb]));
}

/// Found by the `crl` fuzz target: an entry serial padded with a zero
/// octet (00 34 for 0x34) listed a certificate no lookup found, so it
/// read as "not revoked". Such a CRL is now refused.
#[test]
fn a_padded_entry_serial_makes_the_crl_malformed() {
    use base64ct::{Base64, Encoding};
    let der = Base64::decode_vec("MIHSMHsCAQEwCgYIKoZIzj0EAwIwFzEVMBMGA1UEAwwMRnV6eiBTZWVkIENBFw0yNjEyMDMwNzE3MzRaFw0yNjEyMTAwNzE3MzRaMCMwIQICADQXDTI2MTAwMzA3MTczNFowDDAKBgNVHRUEAwoBAaAOMAwwCgYDVR0UBAMCAQEwCgYIKoZIzj0EAwIDRwAwRAIgAOeryDNgMNtcaYWVLBk5V77fz0zmr4ZAKrTkLQZj2vcCIBSn8YBRtsjV3Wv/R5o8aTSS9mkE///6xHNl5sivl+1V").unwrap();
    assert!(matches!(parse_crl(&der), Err(CrlError::Malformed(m)) if m.contains("minimally")));
}

#[test]
fn malformed_input_is_an_error_never_a_panic() {
    let (key, ca) = ca(KeyAlgorithm::EcdsaP256);
    let entries = vec![entry("0a", RevocationReason::KeyCompromise)];
    let der = build_crl(&ca, &key, &params(3), &entries).unwrap();
    assert!(parse_crl(b"").is_err());
    assert!(parse_crl(b"garbage").is_err());
    assert!(parse_crl(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----").is_err());
    for cut in 0..der.len() {
        assert!(parse_crl(&der[..cut]).is_err(), "truncated at {cut}");
    }
    let mut trailing = der.clone();
    trailing.push(0);
    assert!(parse_crl(&trailing).is_err());
    // Flip every byte in turn: whatever parses must not panic later either.
    for i in 0..der.len() {
        let mut m = der.clone();
        m[i] ^= 0xff;
        if let Ok(crl) = parse_crl(&m) {
            let _ = crl.verify_signature(&ca);
            let _ = crl.revoked().count();
            let _ = crl.lookup(&Serial::from_hex("0a").unwrap());
        }
    }
}

#[test]
fn foreign_entry_extensions_take_the_generic_path() {
    use x509_cert::crl::RevokedCert;
    let (key, ca) = ca(KeyAlgorithm::EcdsaP256);
    let when = x509_cert::time::Time::from_der(&[
        0x17, 13, b'2', b'4', b'0', b'1', b'0', b'1', b'0', b'0', b'0', b'0', b'0', b'0', b'Z',
    ])
    .unwrap();
    let reason = Extension {
        extn_id: oids::CRL_REASON,
        critical: false,
        extn_value: OctetString::new(vec![0x0a, 0x01, 0x06]).unwrap(),
    };
    // invalidityDate (2.5.29.24), which another CA might add before the reason.
    let invalidity = Extension {
        extn_id: ObjectIdentifier::new_unwrap("2.5.29.24"),
        critical: false,
        extn_value: OctetString::new(
            der::asn1::GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(
                1_700_000_000,
            ))
            .unwrap()
            .to_der()
            .unwrap(),
        )
        .unwrap(),
    };
    let entry = |exts: Vec<Extension>| {
        RevokedCert {
            serial_number: Serial::from_hex("05").unwrap().to_x509().unwrap(),
            revocation_date: when,
            crl_entry_extensions: Some(exts),
        }
        .to_der()
        .unwrap()
    };
    let good = [entry(vec![invalidity.clone(), reason])];
    let der = build_crl_from_encoded(&ca, &key, &params(1), &good).unwrap();
    let crl = parse_crl(&der).unwrap();
    let found = crl.lookup(&Serial::from_hex("05").unwrap()).unwrap();
    assert_eq!(found.reason, RevocationReason::CertificateHold);
    assert_eq!(found.revoked_at.unix_timestamp(), 1_704_067_200);

    // An unknown critical entry extension makes the CRL unusable.
    let mut critical = invalidity;
    critical.extn_id = ObjectIdentifier::new_unwrap("1.2.3.4");
    critical.critical = true;
    let bad = [entry(vec![critical])];
    let der = build_crl_from_encoded(&ca, &key, &params(1), &bad).unwrap();
    assert!(matches!(parse_crl(&der), Err(CrlError::Malformed(_))));
    // A reason code outside RFC 5280 too.
    let seven = Extension {
        extn_id: oids::CRL_REASON,
        critical: false,
        extn_value: OctetString::new(vec![0x0a, 0x01, 0x07]).unwrap(),
    };
    let der = build_crl_from_encoded(&ca, &key, &params(1), &[entry(vec![seven])]).unwrap();
    assert!(parse_crl(&der).is_err());
}
