//! The hand-read decodings beside der's, for the tests and the fuzz target
//! `lean_decode`: each function panics when the two disagree.

use der::Decode;

use super::{ext_shape, lean, lean_shape};

/// Field by field, as read (an explicit FALSE critical flag is kept in the
/// lean form's bytes where x509-cert drops it on re-encoding, so whole
/// re-encodings are not compared).
pub(crate) fn same_fields(t: &x509_cert::Certificate, o: &lean::LeanCertificate<'_>) {
    use der::Encode;
    let der = |e: &dyn Fn() -> der::Result<Vec<u8>>| e().unwrap();
    let (tt, ot) = (&t.tbs_certificate, &o.tbs_certificate);
    assert_eq!(tt.version, ot.version);
    assert_eq!(tt.serial_number.as_bytes(), ot.serial_number.as_bytes());
    assert_eq!(tt.signature, ot.signature);
    assert_eq!(Some(&tt.issuer), ot.issuer.decoded().as_ref());
    let validity = &tt.validity;
    assert_eq!(
        (
            lean::LeanTime::from(&validity.not_before),
            lean::LeanTime::from(&validity.not_after)
        ),
        (ot.validity.not_before, ot.validity.not_after)
    );
    assert_eq!(Some(&tt.subject), ot.subject.decoded().as_ref());
    assert_eq!(
        der(&|| tt.subject_public_key_info.to_der()),
        der(&|| ot.subject_public_key_info.to_der())
    );
    for (theirs, ours) in [
        (&tt.issuer_unique_id, &ot.issuer_unique_id),
        (&tt.subject_unique_id, &ot.subject_unique_id),
    ] {
        assert_eq!(
            theirs.as_ref().map(|b| der(&|| b.to_der())),
            ours.as_ref().map(|b| der(&|| b.to_der()))
        );
    }
    let theirs: Option<Vec<_>> = tt.extensions.as_ref().map(|l| {
        l.iter()
            .map(|e| (e.extn_id, e.critical, e.extn_value.as_bytes()))
            .collect()
    });
    let ours: Option<Vec<_>> = ot.extensions.as_ref().map(|l| {
        l.list
            .iter()
            .map(|e| (e.extn_id, e.critical, e.extn_value.as_bytes()))
            .collect()
    });
    assert_eq!(theirs, ours);
    assert_eq!(t.signature_algorithm, o.signature_algorithm);
    assert_eq!(der(&|| t.signature.to_der()), der(&|| o.signature.to_der()));
}

/// Whatever the hand-read path accepts x509-cert accepts, with the same
/// fields; and the whole lean decoding (hand-read or der's) accepts exactly
/// what x509-cert accepts. True when the hand-read path took it.
pub fn certificate_agrees(der: &[u8]) -> bool {
    let theirs = x509_cert::Certificate::from_der(der);
    let hand_read = lean_shape::certificate_and_raw(der).map(|(ours, raw)| {
        let sliced =
            crate::der_util::raw_cert(der).expect("raw_cert slices what the hand path read");
        assert_eq!(
            (raw.tbs, raw.issuer, raw.subject),
            (sliced.tbs, sliced.issuer, sliced.subject)
        );
        assert_eq!(
            (raw.tbs_signature, raw.signature_algorithm),
            (sliced.tbs_signature, sliced.signature_algorithm)
        );
        ours
    });
    if let Some(ours) = &hand_read {
        match &theirs {
            Ok(t) => same_fields(t, ours),
            Err(e) => panic!(
                "x509-cert rejects ({e}) what the hand-read path accepts: {}",
                crate::hex::encode(der)
            ),
        }
    }
    match (&theirs, lean::LeanCertificate::decode(der)) {
        (Ok(t), Ok(o)) => {
            same_fields(t, &o);
            let raw = crate::der_util::raw_cert(der).expect("raw_cert slices what der read");
            assert_eq!(
                raw.tbs_signature == raw.signature_algorithm,
                t.tbs_certificate.signature == t.signature_algorithm,
                "the algorithms compare alike as bytes and as values: {}",
                crate::hex::encode(der)
            );
        }
        (Err(_), Err(_)) => {}
        (t, o) => panic!(
            "x509-cert {} but the lean decoding {}: {}",
            if t.is_ok() { "accepts" } else { "rejects" },
            if o.is_ok() { "accepts" } else { "rejects" },
            crate::hex::encode(der)
        ),
    }
    hand_read.is_some()
}

/// An extension value of type `oid` read by hand, when its shape is one the
/// hand-read paths know, reads as x509-cert's decoder reads it. True when
/// the hand-read path took it.
pub fn extension_agrees(oid: const_oid::ObjectIdentifier, value: &[u8]) -> bool {
    use x509_cert::ext::pkix::{
        AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, SubjectAltName,
    };
    let agrees = match oid {
        crate::oids::BASIC_CONSTRAINTS => ext_shape::basic_constraints(value)
            .map(|ours| Some(ours) == BasicConstraints::from_der(value).ok()),
        crate::oids::AUTHORITY_KEY_IDENTIFIER => ext_shape::authority_key_identifier(value)
            .map(|ours| Some(ours) == AuthorityKeyIdentifier::from_der(value).ok()),
        crate::oids::EXT_KEY_USAGE => ext_shape::ext_key_usage(value)
            .map(|ours| Some(ours) == ExtendedKeyUsage::from_der(value).ok().map(|e| e.0)),
        crate::oids::SUBJECT_ALT_NAME => ext_shape::subject_alt_name(value)
            .map(|ours| Some(ours) == SubjectAltName::from_der(value).ok().map(|s| s.0)),
        _ => None,
    };
    if agrees == Some(false) {
        panic!("{oid} read by hand differs: {}", crate::hex::encode(value));
    }
    agrees.is_some()
}

/// A PKCS #1 RSA public key the hand-read path sizes is sized the same by
/// der's reading. True when the hand-read path took it.
pub fn rsa_key_agrees(pkcs1: &[u8]) -> bool {
    crate::public_key::rsa_modulus_bits_agree(pkcs1)
}
