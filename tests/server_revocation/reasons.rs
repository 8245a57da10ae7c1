//! Revocation reason rules, and a compromised key never certified again.

use std::time::{Duration, Instant};

use crate::harness::relying::*;
use crate::harness::{code, openssl_csr, Server};
use serde_json::json;

/// Security review L1, L8 and M5: the revocation reason rules, and a key
/// revoked for keyCompromise is never certified again, by CSR or by renewal.
#[test]
fn reasons_follow_the_rules_and_a_compromised_key_is_blocked() {
    let s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let dir = s.tmp.path().join("blocked");
    std::fs::create_dir_all(&dir).expect("dir");
    // Two certificates for one key (openssl made it), and one for another key.
    let (_, csr) = openssl_csr(&dir, "shared.example", "DNS:shared.example");
    let by_csr = |csr: &str| {
        s.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"csr": csr, "ca_id": ca})),
        )
    };
    let (st, first) = by_csr(&csr);
    assert_eq!(st, 201, "{first}");
    let (st, second) = by_csr(&csr);
    assert_eq!(st, 201, "{second}");
    let other = issue(&s, &ca, "other.example");
    let serial = first["serial"].as_str().expect("serial");

    // certificateHold and CA compromise on a leaf are refused outright.
    for reason in [
        "CERTIFICATE_HOLD",
        "CERTIFICATE_AUTHORITY_COMPROMISE",
        "A_A_COMPROMISE",
    ] {
        let (st, v) = revoke(&s, serial, reason);
        assert_eq!((st, code(&v)), (400, "InvalidRequest"), "{reason}: {v}");
    }
    // Revoked; the same reason again is idempotent.
    let (st, v) = revoke(&s, serial, "SUPERSEDED");
    assert_eq!(st, 200, "{v}");
    let revoked_at = v["revocation"]["revoked_at"].clone();
    let (st, v) = revoke(&s, serial, "SUPERSEDED");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["revocation"]["revoked_at"], revoked_at, "{v}");
    // Another reason is a conflict...
    let (st, v) = revoke(&s, serial, "AFFILIATION_CHANGED");
    assert_eq!((st, code(&v)), (409, "Conflict"), "{v}");
    // ...except keyCompromise, which raises it and keeps the date.
    let (st, v) = revoke(&s, serial, "KEY_COMPROMISE");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["revocation"]["reason"], "KEY_COMPROMISE", "{v}");
    assert_eq!(v["revocation"]["revoked_at"], revoked_at, "{v}");

    // The CRL and OCSP say keyCompromise (what relying parties see).
    let crl_file = dir.join("ca.crl");
    let start = Instant::now();
    loop {
        fetch_crl_listing(&s, &ca, serial, &crl_file);
        let out = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            p(&crl_file),
            "-noout",
            "-text",
        ]);
        if text(&out).contains("Key Compromise") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "CRL never showed keyCompromise:\n{}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Signing that CRL is in the audit trail (review M4), by its number.
    let number = crl_number(&crl_file);
    let (_, page) = s.curl("GET", "/v1/audit?action=InternalSignCrl&limit=1000", None);
    let signed: Vec<&str> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert!(
        signed.contains(&format!("{ca}/crl/{number}").as_str()),
        "{signed:?}"
    );
    let f = Files::new(&s, &ca, &first);
    let leaf = f.leaf("first", &first);
    let t = f.ocsp(
        &format!("http://{}/ocsp/{ca}", s.public),
        &["-cert", p(&leaf)],
        true,
    );
    assert!(t.contains("Reason: keyCompromise"), "{t}");

    // The key is blocked: a new CSR with it, and renewing the other
    // certificate that carries it, are refused; nothing is stored.
    let (st, v) = by_csr(&csr);
    assert_eq!((st, code(&v)), (403, "BlockedKey"), "{v}");
    assert!(v.to_string().contains(serial), "{v}");
    let second_serial = second["serial"].as_str().expect("serial");
    let (st, v) = s.curl(
        "POST",
        &format!("/v1/certificates/{second_serial}/renew"),
        Some(&json!({})),
    );
    assert_eq!((st, code(&v)), (403, "BlockedKey"), "{v}");
    // Another key is unaffected.
    let other_serial = other["serial"].as_str().expect("serial");
    let (st, v) = s.curl(
        "POST",
        &format!("/v1/certificates/{other_serial}/renew"),
        Some(&json!({})),
    );
    assert_eq!(st, 201, "{v}");
}
