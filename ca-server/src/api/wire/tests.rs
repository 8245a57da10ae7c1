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

/// The certificate answer, serialised by hand, is byte for byte what going
/// through `serde_json::Value` gives for the summary's derived fields and
/// the two PEMs (every field, keys sorted, `null`s kept), revoked or not,
/// renewed or not; it reads back as it was, and has every field the
/// schema documents.
#[test]
fn certificate_answer_is_written_as_through_value() {
    let summary = CertificateSummary {
        ca_id: "ca-1".into(),
        serial: "0a1b".into(),
        status: "ISSUED".into(),
        profile: "tls-server".into(),
        subject: "CN=a.example".into(),
        sans: vec!["DNS:a.example".into(), "IP:192.0.2.1".into()],
        key_algorithm: "ECDSA P-256".into(),
        not_before: "2026-01-01T00:00:00Z".into(),
        not_after: "2026-04-01T00:00:00Z".into(),
        created_at: "2026-01-01T00:00:01Z".into(),
        requested_by: "CN=admin \"x\"".into(),
        renewed_from: None,
        revocation: None,
    };
    let mut revoked = summary.clone();
    revoked.status = "REVOKED".into();
    revoked.renewed_from = Some("ca-1/09".into());
    revoked.revocation = Some(RevocationInfo {
        reason_code: 1,
        reason: "keyCompromise".into(),
        revoked_at: "2026-02-01T00:00:00Z".into(),
        revoked_by: "CN=admin".into(),
    });
    for summary in [summary, revoked] {
        let cert = Certificate {
            summary,
            certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
            certificate_chain: "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n"
                .into(),
        };
        let direct = serde_json::to_vec(&cert).unwrap();
        // The summary's derived fields (all of them, whatever is added
        // later) and the two PEMs, sorted by `Value`.
        let mut expected = serde_json::to_value(&cert.summary).unwrap();
        let fields = expected.as_object_mut().unwrap();
        fields.insert("certificate".into(), json!(cert.certificate));
        fields.insert("certificate_chain".into(), json!(cert.certificate_chain));
        let through_value = serde_json::to_vec(&expected).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&direct),
            String::from_utf8_lossy(&through_value)
        );
        let back: Certificate = serde_json::from_slice(&direct).unwrap();
        assert_eq!(back, cert);
        // And a field added to `Certificate` itself: its schema (derived,
        // the OpenAPI document's) names every field the answer must have.
        let schema = serde_json::to_value(schemars::schema_for!(Certificate)).unwrap();
        let documented: std::collections::BTreeSet<&String> =
            schema["properties"].as_object().unwrap().keys().collect();
        let written: serde_json::Value = serde_json::from_slice(&direct).unwrap();
        let written: std::collections::BTreeSet<&String> =
            written.as_object().unwrap().keys().collect();
        assert_eq!(written, documented);
    }
}
