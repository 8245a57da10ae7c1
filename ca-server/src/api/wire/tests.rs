//! The wire types' own tests: request bodies refuse unknown fields, answers
//! tolerate them, and defaults fill in as the server always did.

use super::*;
use serde_json::json;

#[test]
fn request_bodies_refuse_unknown_fields() {
    let r: Result<IssueCertificate, _> =
        serde_json::from_value(json!({"csr": "x", "profil": "tls-server"}));
    assert!(r.is_err());
    let r: Result<RevokeCertificate, _> = serde_json::from_value(json!({"reason": 1, "why": "x"}));
    assert!(r.is_err());
}

#[test]
fn revocation_reason_keeps_what_was_sent() {
    let r: RevokeCertificate = serde_json::from_value(json!({"reason": 1})).unwrap();
    assert_eq!(r.reason, RevocationReason::Code(1.into()));
    let r: RevokeCertificate = serde_json::from_value(json!({"reason": "KEY_COMPROMISE"})).unwrap();
    assert_eq!(r.reason, RevocationReason::Name("KEY_COMPROMISE".into()));
    let r: RevokeCertificate = serde_json::from_value(json!({"reason": [1]})).unwrap();
    assert_eq!(r.reason, RevocationReason::Other(json!([1])));
    assert_eq!(
        serde_json::to_value(RevocationReason::Code(4.into())).unwrap(),
        json!(4)
    );
}

#[test]
fn defaults_fill_in_like_the_server_always_did() {
    let c: CreateCa = serde_json::from_value(json!({"type": "ROOT", "subject": "CN=R"})).unwrap();
    assert_eq!(c.key_algorithm, DEFAULT_KEY_ALGORITHM);
    assert!(!c.external);
    assert_eq!(c.name_constraints, None);
}

#[test]
fn a_certificate_is_its_summary_plus_pem_and_optional_fields_stay_null() {
    let summary = CertificateSummary {
        ca_id: "ca".into(),
        serial: "01".into(),
        status: "ISSUED".into(),
        profile: "tls-server".into(),
        subject: "CN=a".into(),
        sans: vec!["a".into()],
        key_algorithm: "ec-p256".into(),
        not_before: "t0".into(),
        not_after: "t1".into(),
        created_at: "t0".into(),
        requested_by: "CN=admin".into(),
        renewed_from: None,
        revocation: None,
    };
    let c = Certificate {
        summary,
        certificate: "PEM".into(),
        certificate_chain: "CHAIN".into(),
    };
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["serial"], "01");
    assert_eq!(v["certificate"], "PEM");
    assert!(v.get("revocation").is_some_and(|r| r.is_null()));
    assert!(v.get("renewed_from").is_some_and(|r| r.is_null()));
    let back: Certificate = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
    // Answers tolerate fields a newer server adds.
    let mut v = serde_json::to_value(&c).unwrap();
    v["added_later"] = json!(true);
    assert!(serde_json::from_value::<Certificate>(v).is_ok());
}
