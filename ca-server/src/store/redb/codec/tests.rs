//! Round trips of the compact encoding, the usual and unusual forms, and
//! damage: errors, never panics.

use super::*;

fn no_audit(_: u64) -> Result<Option<AuditEntry>, StoreError> {
    Ok(None)
}

fn cert() -> CertRecord {
    CertRecord {
        ca_id: "ca-b908c4b33fe91007".into(),
        serial: "01a24049134fb77a0a7430118c92d9b9".into(),
        status: CertStatus::Issued,
        profile: "tls-server".into(),
        subject: "CN=bench.example.internal".into(),
        sans: vec!["DNS:bench.example.internal".into(), "IP:10.0.0.1".into()],
        key_algorithm: "ECDSA P-256".into(),
        not_before: 1_796_374_560,
        not_after: 1_830_761_759,
        tbs_sha256: "0702112c868e532cee1da3dce4c726bc4873af98a2f83b47b6a55554758b733d".into(),
        created_at: 1_796_374_860,
        requested_by: "CN=admin,O=ca-server administrators".into(),
        boot_id: "bc2eb96b3372d0bc".into(),
        server_generated_key: false,
        renewed_from: Some("01a24049134fb77a0a7430118c92d9b8".into()),
        revocation: Some(Revocation {
            reason_code: 1,
            reason: "KEY_COMPROMISE".into(),
            revoked_at: -5,
            revoked_by: "x".into(),
            key_sha256: Some("ab".into()),
        }),
        requester_fingerprint: Some("Not-Hex".into()),
    }
}

#[test]
fn certificates_round_trip_and_read_old_json() {
    let r = cert();
    let b = encode_cert(&r, Some(300)).expect("encode");
    assert_eq!(
        decode_cert_and_der_seq(&b).expect("decode"),
        (r.clone(), Some(300))
    );
    let j = json(&r).expect("json");
    assert!(b.len() * 10 < j.len() * 6, "{} vs {}", b.len(), j.len());
    assert_eq!(decode_cert(&j).expect("json decode"), r);
}

#[test]
fn audit_entries_round_trip_with_the_same_hash() {
    let mut a = AuditEntry {
        seq: 300,
        time: "2026-12-04T09:01:00Z".into(),
        unix: 1_796_374_860,
        identity: AuditIdentity {
            subject: "CN=admin".into(),
            fingerprint: String::new(),
        },
        action: "IssueCertificate".into(),
        target: "ca-1/01".into(),
        outcome: AuditOutcome {
            decision: "allowed".into(),
            statement: Some("admins".into()),
            reason: "r".into(),
        },
        result: AuditResult {
            status: 200,
            code: "success".into(),
        },
        certificate: Some(AuditedCertificate {
            serial: "01".into(),
            sans: vec!["DNS:a".into()],
            not_after: "2027-01-01T00:00:00Z".into(),
            tbs_sha256: "ABCD".into(),
        }),
        prev_hash: "00".repeat(32),
        hash: String::new(),
    };
    a.hash = a.compute_hash().expect("hash");
    let back = decode_audit(&encode_audit(&a)).expect("decode");
    assert_eq!(back, a);
    assert_eq!(back.compute_hash().expect("hash"), a.hash);
}

/// An issuance's audit entry and event as the server writes them.
fn issued_audit_and_event() -> (AuditEntry, EventRecord) {
    let mut a = AuditEntry {
        seq: 123_456,
        time: "2026-12-04T09:01:00Z".into(),
        unix: 1_796_374_860,
        identity: AuditIdentity {
            subject: "CN=admin,O=ca-server administrators".into(),
            fingerprint: "5f".repeat(32),
        },
        action: "IssueCertificate".into(),
        target: "ca-b908c4b33fe91007/01a24049134fb77a0a7430118c92d9b9".into(),
        outcome: AuditOutcome {
            decision: "allowed".into(),
            statement: Some("admin-all".into()),
            reason: "allowed by statement admin-all".into(),
        },
        result: AuditResult {
            status: 200,
            code: "success".into(),
        },
        certificate: Some(AuditedCertificate {
            serial: "01a24049134fb77a0a7430118c92d9b9".into(),
            sans: vec!["DNS:bench.example.internal".into()],
            not_after: "2027-12-04T09:01:00Z".into(),
            tbs_sha256: "07".repeat(32),
        }),
        prev_hash: "aa".repeat(32),
        hash: String::new(),
    };
    a.hash = a.compute_hash().expect("hash");
    let v = EventRecord {
        seq: 123_000,
        id: format!("evt-{}", "3c".repeat(16)),
        event_type: "CertificateIssued".into(),
        time: a.time.clone(),
        unix: a.unix,
        ca_id: "ca-b908c4b33fe91007".into(),
        detail: EventDetail {
            serial: Some("01a24049134fb77a0a7430118c92d9b9".into()),
            sans: vec!["DNS:bench.example.internal".into()],
            not_after: Some("2027-12-04T09:01:00Z".into()),
            by: Some("CN=admin,O=ca-server administrators".into()),
            ..Default::default()
        },
        audit_seq: None,
    };
    (a, v)
}

#[test]
fn the_usual_forms_are_compact_and_read_back_exactly() {
    let (a, v) = issued_audit_and_event();
    let ab = encode_audit(&a);
    let back = decode_audit(&ab).expect("decode");
    assert_eq!(back, a);
    assert_eq!(back.compute_hash().expect("hash"), a.hash);
    let vb = encode_event(&v);
    assert_eq!(decode_event(&vb, &mut no_audit).expect("decode"), v);
    // Words, times, ids and targets cost a few bytes: the entry is its
    // digests, serials, names and subject, little else.
    assert!(ab.len() <= 280, "audit entry: {} bytes", ab.len());
    assert!(vb.len() <= 160, "event: {} bytes", vb.len());
    let mut c = cert();
    c.revocation = None;
    c.renewed_from = None;
    c.requester_fingerprint = Some("5f".repeat(32));
    let cb = encode_cert(&c, Some(123_000)).expect("encode");
    assert_eq!(decode_cert(&cb).expect("decode"), c);
    assert!(cb.len() <= 260, "certificate: {} bytes", cb.len());
}

#[test]
fn an_issuance_event_is_kept_as_its_audit_entry() {
    let (a, _) = issued_audit_and_event();
    let mut v = issuance_event(&a, format!("evt-{}", "3c".repeat(16))).expect("issuance");
    v.seq = 77;
    let b = encode_event_ref(&v, a.seq);
    assert!(b.len() <= 32, "{} bytes", b.len());
    let mut lookup = |seq: u64| Ok((seq == a.seq).then(|| a.clone()));
    v.audit_seq = None;
    assert_eq!(decode_event(&b, &mut lookup).expect("decode"), v);
    // Without its entry, or with an entry that is no issuance, it is
    // corrupt, not some other event.
    assert!(decode_event(&b, &mut no_audit).is_err());
    let mut other = a.clone();
    other.certificate = None;
    let mut lookup = |_: u64| Ok(Some(other.clone()));
    assert!(decode_event(&b, &mut lookup).is_err());
    for cut in 0..b.len() {
        assert!(
            decode_event(&b[..cut], &mut no_audit).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn unusual_forms_read_back_exactly() {
    let (mut a, mut v) = issued_audit_and_event();
    // A time with a fraction, one not of its Unix seconds, upper-case
    // hex, words outside the dictionary, a reason of its own.
    a.time = "2026-12-04T09:01:00.5Z".into();
    a.target = "ca-1/01A2".into();
    a.action = "SomethingNew".into();
    a.outcome.reason = "allowed by statement other".into();
    a.result.code = "".into();
    if let Some(c) = a.certificate.as_mut() {
        c.not_after = "2027-12-04T10:01:00+01:00".into();
    }
    a.hash = a.compute_hash().expect("hash");
    let back = decode_audit(&encode_audit(&a)).expect("decode");
    assert_eq!(back, a);
    assert_eq!(back.compute_hash().expect("hash"), a.hash);
    for (time, target) in [("not a time", "ca-1/crl/5"), ("", "/"), ("", "ca-1/")] {
        a.time = time.into();
        a.target = target.into();
        a.outcome.statement = None;
        assert_eq!(decode_audit(&encode_audit(&a)).expect("decode"), a);
    }
    v.id = "evt-XY".into();
    v.time = "2026-12-04T09:01:01Z".into();
    v.event_type = "Other".into();
    v.detail.profile = Some("custom".into());
    v.detail.next_update = Some("soon".into());
    assert_eq!(
        decode_event(&encode_event(&v), &mut no_audit).expect("decode"),
        v
    );
    v.id = "evt-".into();
    assert_eq!(
        decode_event(&encode_event(&v), &mut no_audit).expect("decode"),
        v
    );
    let mut c = cert();
    c.profile = "custom".into();
    c.key_algorithm = "ml-dsa-44".into();
    let b = encode_cert(&c, None).expect("encode");
    assert_eq!(decode_cert(&b).expect("decode"), c);
}

#[test]
fn events_round_trip() {
    let v = EventRecord {
        seq: 9,
        id: "evt-1".into(),
        event_type: "CertificateIssued".into(),
        time: "t".into(),
        unix: 3,
        ca_id: "ca-1".into(),
        detail: EventDetail {
            serial: Some("0a".into()),
            days_to_expiry: Some(-3),
            crl_number: Some(u64::MAX),
            ..Default::default()
        },
        audit_seq: None,
    };
    assert_eq!(
        decode_event(&encode_event(&v), &mut no_audit).expect("decode"),
        v
    );
}

#[test]
fn damaged_records_are_errors_not_panics() {
    let b = encode_cert(&cert(), None).expect("encode");
    for cut in 0..b.len() {
        assert!(decode_cert(&b[..cut]).is_err(), "cut at {cut}");
    }
    let mut longer = b.clone();
    longer.push(0);
    assert!(decode_cert(&longer).is_err());
    assert!(
        decode_cert(&[V1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01])
            .is_err()
    );
    assert!(decode_audit(&[7]).is_err());
    assert!(decode_event(&[], &mut no_audit).is_err());
}

/// A redo record's audit write, encoded from the draft, is byte for byte
/// the draft's entry encoded (what redo decodes and gives the chain).
#[test]
fn a_draft_encodes_as_its_entry() {
    let (a, _) = issued_audit_and_event();
    let mut d = AuditDraft {
        unix: a.unix,
        identity: a.identity.clone(),
        action: a.action.clone(),
        target: a.target.clone(),
        outcome: a.outcome.clone(),
        result: a.result.clone(),
        certificate: a.certificate.clone(),
    };
    let same = |d: &AuditDraft| {
        assert_eq!(
            encode_audit_draft(d),
            encode_audit(&d.entry(0, String::new()))
        )
    };
    same(&d);
    d.target = "ca-1/01A2".into();
    d.action = "SomethingNew".into();
    d.identity.fingerprint = "not hex".into();
    d.outcome.statement = None;
    d.certificate = None;
    d.unix = -1;
    same(&d);
}
