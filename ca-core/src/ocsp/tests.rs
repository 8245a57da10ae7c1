//! Unit tests of [`super`].

use super::*;
use crate::cert::{cert_signed_by, create_root, CaCertificate, RootParams};
use crate::crl::RevocationReason;
use crate::keys::{KeyAlgorithm, Signer, SoftwareKey};
use crate::oids;
use crate::serial::Serial;
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use std::str::FromStr;
use time::OffsetDateTime;
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage};
use x509_cert::name::Name;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus, ResponderId};

struct Ca {
    key: SoftwareKey,
    cert: CaCertificate,
}

fn ca(alg: KeyAlgorithm) -> Ca {
    let key = SoftwareKey::generate(alg).unwrap();
    let name = Name::from_str("CN=OCSP Test CA,O=ca-core tests").unwrap();
    let cert = create_root(&key, &RootParams::new(name), OffsetDateTime::now_utc()).unwrap();
    Ca { key, cert }
}

fn request_der(ids: &[CertIdInfo], nonce: Option<&[u8]>) -> Vec<u8> {
    encode_request(ids, nonce).unwrap()
}

fn decode(resp: &[u8]) -> (OcspResponseStatus, Option<BasicOcspResponse>) {
    let r = OcspResponse::from_der(resp).unwrap();
    let basic = r
        .response_bytes
        .map(|b| BasicOcspResponse::from_der(b.response.as_bytes()).unwrap());
    (r.response_status, basic)
}

fn verify_basic(basic: &BasicOcspResponse, spki: &SubjectPublicKeyInfoOwned) {
    let tbs = basic.tbs_response_data.to_der().unwrap();
    let spki_der = spki.to_der().unwrap();
    let spki = spki::SubjectPublicKeyInfoRef::from_der(&spki_der).unwrap();
    crate::signature::verify_signature(
        &spki,
        &basic.signature_algorithm,
        &tbs,
        basic.signature.as_bytes().unwrap(),
    )
    .unwrap();
}

#[test]
fn status_only_responses_decode() {
    for (der, status) in [
        (
            malformed_request_response(),
            OcspResponseStatus::MalformedRequest,
        ),
        (unauthorized_response(), OcspResponseStatus::Unauthorized),
        (internal_error_response(), OcspResponseStatus::InternalError),
        (try_later_response(), OcspResponseStatus::TryLater),
    ] {
        let (s, basic) = decode(&der);
        assert_eq!(s, status);
        assert!(basic.is_none());
        assert_eq!(
            OcspResponse {
                response_status: status,
                response_bytes: None
            }
            .to_der()
            .unwrap(),
            der
        );
    }
}

#[test]
fn request_round_trip_and_issuer_matching() {
    let a = ca(KeyAlgorithm::EcdsaP256);
    let b = ca(KeyAlgorithm::EcdsaP256); // same subject name, other key
    let hashes = IssuerHashes::new(&a.cert).unwrap();
    let serial = Serial::from_hex("80aa").unwrap();
    for alg in [
        HashAlg::Sha1,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ] {
        let id = CertIdInfo::for_serial(&a.cert, &serial, alg).unwrap();
        let req = parse_request(&request_der(
            std::slice::from_ref(&id),
            Some(b"0123456789abcdef"),
        ))
        .unwrap();
        assert_eq!(req.cert_ids, vec![id.clone()]);
        assert_eq!(req.cert_ids[0].serial, serial);
        assert!(req.cert_ids[0].serial_is_positive);
        assert!(!req.cacheable());
        // extnValue is the DER OCTET STRING around the nonce.
        assert_eq!(req.nonce.as_deref().unwrap()[2..], b"0123456789abcdef"[..]);
        assert!(hashes.matches(&id), "{alg}");
        let other = CertIdInfo::for_serial(&b.cert, &serial, alg).unwrap();
        assert!(
            !hashes.matches(&other),
            "another key with the same name, {alg}"
        );
    }
}

#[test]
fn malformed_requests_are_typed_errors() {
    let a = ca(KeyAlgorithm::EcdsaP256);
    let id =
        CertIdInfo::for_serial(&a.cert, &Serial::from_hex("01").unwrap(), HashAlg::Sha1).unwrap();
    let good = request_der(std::slice::from_ref(&id), None);
    assert!(matches!(parse_request(&[]), Err(OcspError::Empty)));
    assert!(matches!(
        parse_request(&vec![0x30; MAX_REQUEST_BYTES + 1]),
        Err(OcspError::TooLarge { .. })
    ));
    assert!(matches!(
        parse_request(b"garbage"),
        Err(OcspError::Malformed(_))
    ));
    for cut in 0..good.len() {
        assert!(parse_request(&good[..cut]).is_err(), "cut {cut}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(parse_request(&trailing).is_err());
    for i in 0..good.len() {
        let mut m = good.clone();
        m[i] ^= 0xff;
        let _ = parse_request(&m);
    }
    assert!(matches!(
        parse_request(&request_der(&[], None)),
        Err(OcspError::NoCertIds)
    ));
    let many = vec![id.clone(); MAX_CERT_IDS + 1];
    assert!(matches!(
        parse_request(&request_der(&many, None)),
        Err(OcspError::TooManyCertIds(_))
    ));
    assert!(matches!(
        parse_request(&request_der(std::slice::from_ref(&id), Some(&[7u8; 129]))),
        Err(OcspError::BadNonce(129))
    ));
    assert!(matches!(
        parse_request(&request_der(&[id], Some(&[]))),
        Err(OcspError::BadNonce(0))
    ));
    assert!(OcspError::Empty.is_request_error());
    assert_eq!(
        OcspError::BadGetEncoding.to_response(),
        malformed_request_response()
    );
    assert_eq!(
        OcspError::SignerMismatch.to_response(),
        internal_error_response()
    );
}

#[test]
fn get_encoding_variants_decode() {
    let data: Vec<u8> = (0u8..=255).collect();
    let std_b64 = der::pem::encode_string("X", der::pem::LineEnding::LF, &data).unwrap();
    let body: String = std_b64
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert_eq!(decode_get_request(&body).unwrap(), data);
    let escaped = body
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    assert_eq!(decode_get_request(&escaped).unwrap(), data);
    let url_safe = body.replace('+', "-").replace('/', "_").replace('=', "");
    assert_eq!(decode_get_request(&url_safe).unwrap(), data);
    for bad in ["%", "%zz", "a", "ab!c", "abc===", "%C3%A9AA"] {
        assert!(decode_get_request(bad).is_err(), "{bad}");
    }
    assert!(decode_get_request(&"A".repeat(MAX_REQUEST_BYTES * 2 + 1)).is_err());
}

#[test]
fn responses_for_good_revoked_unknown_sign_and_echo() {
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Ed25519,
    ] {
        let a = ca(alg);
        let identity = ResponderIdentity::ca(&a.cert).unwrap();
        let hashes = IssuerHashes::new(&a.cert).unwrap();
        let responder = Responder {
            identity: &identity,
            signer: &a.key,
            issuer: &hashes,
            validity: time::Duration::hours(1),
        };
        let good = Serial::from_hex("01").unwrap();
        let revoked = Serial::from_hex("02").unwrap();
        let when = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let ids: Vec<_> = ["01", "02", "03"]
            .iter()
            .map(|s| {
                CertIdInfo::for_serial(&a.cert, &Serial::from_hex(s).unwrap(), HashAlg::Sha256)
                    .unwrap()
            })
            .collect();
        let req = request_der(&ids, Some(b"nonce-nonce-nonce"));
        let now = OffsetDateTime::now_utc();
        let resp = respond(
            &req,
            &responder,
            |s| {
                if *s == good {
                    CertStatusInput::Good
                } else if *s == revoked {
                    CertStatusInput::Revoked {
                        time: when,
                        reason: RevocationReason::KeyCompromise,
                    }
                } else {
                    CertStatusInput::Unknown
                }
            },
            now,
        );
        let (status, basic) = decode(&resp);
        assert_eq!(status, OcspResponseStatus::Successful);
        let basic = basic.unwrap();
        verify_basic(&basic, &a.cert.cert.tbs_certificate.subject_public_key_info);
        assert!(basic.certs.is_none(), "CA-signed responses carry no certs");
        let data = &basic.tbs_response_data;
        assert_eq!(
            data.nonce().unwrap().0.as_bytes(),
            b"nonce-nonce-nonce",
            "{alg}"
        );
        assert!(matches!(data.responder_id, ResponderId::ByKey(_)));
        assert_eq!(data.responses.len(), 3);
        assert_eq!(data.responses[0].cert_status, CertStatus::good());
        match data.responses[1].cert_status {
            CertStatus::Revoked(info) => {
                assert_eq!(
                    info.revocation_reason,
                    Some(x509_cert::ext::pkix::CrlReason::KeyCompromise)
                );
                assert_eq!(
                    info.revocation_time.0.to_unix_duration().as_secs(),
                    1_700_000_000
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(data.responses[2].cert_status, CertStatus::unknown());
        for (single, id) in data.responses.iter().zip(&ids) {
            assert_eq!(single.cert_id, id.raw);
            let this = single.this_update.0.to_unix_duration().as_secs();
            let next = single.next_update.unwrap().0.to_unix_duration().as_secs();
            assert_eq!(next - this, 3600);
        }
    }
}

#[test]
fn cache_keys_only_for_single_nonceless_requests() {
    let a = ca(KeyAlgorithm::EcdsaP256);
    let id = |hex: &str| {
        CertIdInfo::for_serial(&a.cert, &Serial::from_hex(hex).unwrap(), HashAlg::Sha1).unwrap()
    };
    let one = parse_request(&request_der(&[id("01")], None)).unwrap();
    assert_eq!(one.cache_key(), Some(id("01").to_der().unwrap()));
    assert_ne!(one.cache_key(), Some(id("02").to_der().unwrap()));
    let nonce = parse_request(&request_der(&[id("01")], Some(b"n"))).unwrap();
    assert_eq!(nonce.cache_key(), None);
    let two = parse_request(&request_der(&[id("01"), id("02")], None)).unwrap();
    assert_eq!(two.cache_key(), None);
    // A cached response for the key answers the request it came from.
    let identity = ResponderIdentity::ca(&a.cert).unwrap();
    let hashes = IssuerHashes::new(&a.cert).unwrap();
    let responder = Responder {
        identity: &identity,
        signer: &a.key,
        issuer: &hashes,
        validity: time::Duration::hours(1),
    };
    let resp = respond_to(
        &one,
        &responder,
        |_| CertStatusInput::Good,
        OffsetDateTime::now_utc(),
    );
    let basic = decode(&resp).1.unwrap();
    assert_eq!(
        basic.tbs_response_data.responses[0]
            .cert_id
            .to_der()
            .unwrap(),
        one.cache_key().unwrap()
    );
}

#[test]
fn respond_maps_problems_to_status_responses() {
    let a = ca(KeyAlgorithm::EcdsaP256);
    let b = ca(KeyAlgorithm::EcdsaP256);
    let identity = ResponderIdentity::ca(&a.cert).unwrap();
    let hashes = IssuerHashes::new(&a.cert).unwrap();
    let responder = Responder {
        identity: &identity,
        signer: &a.key,
        issuer: &hashes,
        validity: time::Duration::hours(1),
    };
    let now = OffsetDateTime::now_utc();
    let good = |_: &Serial| CertStatusInput::Good;
    assert_eq!(
        respond(b"junk", &responder, good, now),
        malformed_request_response()
    );
    let foreign =
        CertIdInfo::for_serial(&b.cert, &Serial::from_hex("01").unwrap(), HashAlg::Sha1).unwrap();
    assert_eq!(
        respond(
            &request_der(std::slice::from_ref(&foreign), None),
            &responder,
            good,
            now
        ),
        unauthorized_response()
    );
    // Mixed: ours answered, the foreign one unknown.
    let ours =
        CertIdInfo::for_serial(&a.cert, &Serial::from_hex("01").unwrap(), HashAlg::Sha1).unwrap();
    let resp = respond(&request_der(&[ours, foreign], None), &responder, good, now);
    let basic = decode(&resp).1.unwrap();
    assert_eq!(
        basic.tbs_response_data.responses[0].cert_status,
        CertStatus::good()
    );
    assert_eq!(
        basic.tbs_response_data.responses[1].cert_status,
        CertStatus::unknown()
    );
    assert!(basic.tbs_response_data.response_extensions.is_none());
    // Wrong signer: internalError, not a panic.
    let wrong = Responder {
        signer: &b.key,
        ..responder
    };
    let ours =
        CertIdInfo::for_serial(&a.cert, &Serial::from_hex("01").unwrap(), HashAlg::Sha1).unwrap();
    assert_eq!(
        respond(&request_der(&[ours], None), &wrong, good, now),
        internal_error_response()
    );
}

#[test]
fn delegated_responder_certificate_and_responses() {
    let a = ca(KeyAlgorithm::EcdsaP384);
    let b = ca(KeyAlgorithm::EcdsaP384);
    let responder_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let now = OffsetDateTime::now_utc();
    let subject = Name::from_str("CN=OCSP Responder,O=ca-core tests").unwrap();
    let issued = create_ocsp_signing_certificate(
        &a.cert,
        &a.key,
        responder_key.public_key_der(),
        &subject,
        30,
        now,
    )
    .unwrap();
    let cert = Certificate::from_der(&issued.der).unwrap();
    let tbs = &cert.tbs_certificate;
    assert!(cert_signed_by(
        &cert,
        &a.cert.cert.tbs_certificate.subject_public_key_info
    ));
    let eku = tbs.get::<ExtendedKeyUsage>().unwrap().unwrap().1;
    assert_eq!(eku.0, vec![oids::KP_OCSP_SIGNING]);
    assert!(tbs
        .extensions
        .iter()
        .flatten()
        .any(|e| e.extn_id == oids::OCSP_NOCHECK && e.extn_value.as_bytes() == [5, 0]));
    assert!(!tbs.get::<BasicConstraints>().unwrap().unwrap().1.ca);
    assert!(issued.not_after - issued.not_before <= time::Duration::days(31));

    assert!(matches!(
        create_ocsp_signing_certificate(
            &a.cert,
            &a.key,
            responder_key.public_key_der(),
            &subject,
            0,
            now
        ),
        Err(OcspError::InvalidValidity(0))
    ));
    assert!(matches!(
        create_ocsp_signing_certificate(
            &a.cert,
            &b.key,
            responder_key.public_key_der(),
            &subject,
            30,
            now
        ),
        Err(OcspError::SignerMismatch)
    ));
    // Only the issuing CA's delegate is accepted, and never a CA certificate.
    assert!(ResponderIdentity::delegated(&issued.der, &b.cert).is_err());
    assert!(ResponderIdentity::delegated(&a.cert.der, &a.cert).is_err());

    let identity = ResponderIdentity::delegated(&issued.der, &a.cert).unwrap();
    assert!(identity.is_delegated());
    let id =
        CertIdInfo::for_serial(&a.cert, &Serial::from_hex("05").unwrap(), HashAlg::Sha1).unwrap();
    let single = SingleResponseInput {
        cert_id: id,
        status: CertStatusInput::Revoked {
            time: now,
            reason: RevocationReason::Unspecified,
        },
        this_update: now,
        next_update: None,
    };
    assert!(matches!(
        build_response(&identity, &a.key, std::slice::from_ref(&single), None, now),
        Err(OcspError::SignerMismatch)
    ));
    assert!(matches!(
        build_response(&identity, &responder_key, &[], None, now),
        Err(OcspError::NoResponses)
    ));
    assert!(matches!(
        build_response(
            &identity,
            &responder_key,
            std::slice::from_ref(&single),
            None,
            now + time::Duration::days(60)
        ),
        Err(OcspError::ResponderNotValid(_))
    ));
    let resp = build_response(&identity, &responder_key, &[single], None, now).unwrap();
    let basic = decode(&resp).1.unwrap();
    verify_basic(&basic, &cert.tbs_certificate.subject_public_key_info);
    assert_eq!(basic.certs.as_deref(), Some(std::slice::from_ref(&cert)));
    match basic.tbs_response_data.responses[0].cert_status {
        CertStatus::Revoked(info) => assert_eq!(info.revocation_reason, None),
        other => panic!("{other:?}"),
    }
}
