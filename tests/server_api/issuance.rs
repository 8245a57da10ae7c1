//! Issuance end to end: openssl verify, idempotency, server keys, restart, A-labels.

use std::process::Command;

use super::{openssl_verify, write};
use crate::harness;
use crate::harness::{code, core_csr, openssl_csr, run, Server};
use serde_json::json;

#[test]
fn issue_idempotency_disable_server_key_renew_revoke_restart() {
    let mut s = Server::start_new();
    let tmp = s.tmp.path().to_path_buf();
    let issuing = s.config.issuing_ca_id.clone();

    // A CSR from `openssl req`, issued and checked by `openssl verify`.
    let (_key, csr) = openssl_csr(
        &tmp,
        "web.example.internal",
        "DNS:web.example.internal,IP:10.0.0.7",
    );
    let body = json!({"ca_id": issuing, "csr": csr, "profile": "tls-server", "validity_days": 30, "idempotency_token": "order-1"});
    let (st, first) = s.curl("POST", "/v1/certificates", Some(&body));
    assert_eq!(st, 201, "{first}");
    assert_eq!(first["status"], "ISSUED");
    openssl_verify(&tmp, &s.root_pem(), &first);
    let text = run(Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(tmp.join("leaf.pem")));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("/crl/{issuing}.crl")), "{text}");
    assert!(text.contains(&format!("/ocsp/{issuing}")), "{text}");
    assert!(text.contains("DNS:web.example.internal"), "{text}");
    let serial = first["serial"].as_str().unwrap().to_string();

    // Same token, same request: the same certificate, not a second one.
    let (st, again) = s.curl("POST", "/v1/certificates", Some(&body));
    assert_eq!(st, 201, "{again}");
    assert_eq!(again["serial"], first["serial"]);
    assert_eq!(again["certificate"], first["certificate"]);
    // Same token, different request: conflict.
    let other = json!({"ca_id": issuing, "csr": core_csr("other.example.internal"), "idempotency_token": "order-1"});
    let (st, v) = s.curl("POST", "/v1/certificates", Some(&other));
    assert_eq!((st, code(&v)), (409, "Conflict"), "{v}");
    // Tokens belong to their caller: another client's "order-1" is its own.
    let (cert, key, _) = harness::client_identity(&s, "second", "CN=second-client,O=test");
    let (st, v) = s.curl(
        "PUT",
        "/v1/policies/second-issues",
        Some(
            &json!({"effect": "allow", "principals": [{"subject": "CN=second-client*"}],
                     "actions": ["issue"], "cas": [issuing]}),
        ),
    );
    assert_eq!(st, 200, "{v}");
    let (st, theirs) = s.curl_as(&cert, &key, "POST", "/v1/certificates", Some(&other));
    assert_eq!(st, 201, "{theirs}");
    assert_ne!(theirs["serial"], first["serial"]);
    let (st, again) = s.curl_as(&cert, &key, "POST", "/v1/certificates", Some(&other));
    assert_eq!((st, &again["serial"]), (201, &theirs["serial"]), "{again}");

    // A disabled CA issues nothing.
    let (st, v) = s.curl(
        "PATCH",
        &format!("/v1/cas/{issuing}"),
        Some(&json!({"status": "DISABLED"})),
    );
    assert_eq!((st, v["status"].as_str()), (200, Some("DISABLED")), "{v}");
    let fresh = json!({"csr": core_csr("x.example.internal")});
    let (st, v) = s.curl("POST", "/v1/certificates", Some(&fresh));
    assert_eq!((st, code(&v)), (409, "CaDisabled"), "{v}");
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates/request",
        Some(&json!({"names": ["y.example.internal"], "passphrase": "long enough"})),
    );
    assert_eq!((st, code(&v)), (409, "CaDisabled"), "{v}");
    let (st, _) = s.curl(
        "PATCH",
        &format!("/v1/cas/{issuing}"),
        Some(&json!({"status": "ACTIVE"})),
    );
    assert_eq!(st, 200);
    let (st, v) = s.curl("POST", "/v1/certificates", Some(&fresh));
    assert_eq!(st, 201, "{v}");

    // A server-made key, encrypted under the passphrase, opens with openssl.
    let (st, made) = s.curl(
        "POST",
        "/v1/certificates/request",
        Some(&json!({"names": ["api.example.internal", "10.1.2.3"], "key_algorithm": "rsa-2048", "passphrase": "correct horse battery", "profile": "tls-server-client"})),
    );
    assert_eq!(st, 201, "{made}");
    let enc = made["private_key"].as_str().unwrap();
    assert!(enc.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    write(&tmp.join("made.key"), enc);
    write(&tmp.join("made.pem"), made["certificate"].as_str().unwrap());
    let pk = run(Command::new("openssl")
        .args([
            "pkey",
            "-pubout",
            "-passin",
            "pass:correct horse battery",
            "-in",
        ])
        .arg(tmp.join("made.key")));
    assert!(
        pk.status.success(),
        "{}",
        String::from_utf8_lossy(&pk.stderr)
    );
    let cert_pub = run(Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(tmp.join("made.pem")));
    assert_eq!(
        pk.stdout, cert_pub.stdout,
        "the key does not match the certificate"
    );
    let wrong = run(Command::new("openssl")
        .args(["pkey", "-noout", "-passin", "pass:wrong passphrase", "-in"])
        .arg(tmp.join("made.key")));
    assert!(!wrong.status.success());
    openssl_verify(&tmp, &s.root_pem(), &made);
    // The server kept no copy of it: it is nowhere in the store.
    let (st, got) = s.curl(
        "GET",
        &format!("/v1/certificates/{}", made["serial"].as_str().unwrap()),
        None,
    );
    assert_eq!(st, 200);
    assert!(got.get("private_key").is_none());

    // Get, with and without the CA.
    let (st, got) = s.curl(
        "GET",
        &format!("/v1/certificates/{serial}?ca_id={issuing}"),
        None,
    );
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["certificate"], first["certificate"]);
    let (st, got) = s.curl("GET", &format!("/v1/certificates/{serial}"), None);
    assert_eq!((st, got["ca_id"].as_str()), (200, Some(issuing.as_str())));

    // Renew: same names and profile, a new serial; with a new CSR too.
    let (st, renewed) = s.curl(
        "POST",
        &format!("/v1/certificates/{serial}/renew"),
        Some(&json!({"validity_days": 60})),
    );
    assert_eq!(st, 201, "{renewed}");
    assert_ne!(renewed["serial"], first["serial"]);
    assert_eq!(renewed["sans"], first["sans"]);
    assert_eq!(renewed["profile"], "tls-server");
    assert_eq!(renewed["renewed_from"], first["serial"]);
    openssl_verify(&tmp, &s.root_pem(), &renewed);
    let (_k2, csr2) = openssl_csr(&tmp, "rekey", "DNS:rekey.example.internal");
    let (st, rekeyed) = s.curl(
        "POST",
        &format!("/v1/certificates/{serial}/renew"),
        Some(&json!({"csr": csr2})),
    );
    assert_eq!(st, 201, "{rekeyed}");
    assert_eq!(rekeyed["sans"], first["sans"], "renewal keeps the names");

    // Revoke with a reason; the same reason again is idempotent (the first
    // time stays), another one is a conflict. (KEY_COMPROMISE, which would
    // also block the key, is covered in server_revocation.)
    let (st, rev) = s.curl(
        "POST",
        &format!("/v1/certificates/{serial}/revoke"),
        Some(&json!({"reason": "SUPERSEDED"})),
    );
    assert_eq!(st, 200, "{rev}");
    assert_eq!(rev["status"], "REVOKED");
    assert_eq!(rev["revocation"]["reason_code"], 4);
    let (st, v) = s.curl(
        "POST",
        &format!("/v1/certificates/{serial}/revoke"),
        Some(&json!({"reason": 5})),
    );
    assert_eq!((st, code(&v)), (409, "Conflict"), "{v}");
    let (st, v) = s.curl(
        "POST",
        &format!("/v1/certificates/{serial}/revoke"),
        Some(&json!({"reason": 4})),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["revocation"]["reason_code"], 4, "{v}");
    assert_eq!(
        v["revocation"]["revoked_at"],
        rev["revocation"]["revoked_at"]
    );
    // A revoked certificate is not renewed, with its old key or a new one.
    for body in [json!({}), json!({"csr": csr2})] {
        let (st, v) = s.curl(
            "POST",
            &format!("/v1/certificates/{serial}/renew"),
            Some(&body),
        );
        assert_eq!(st, 409, "{v}");
        assert_eq!(v["error"]["code"], "InvalidState", "{v}");
    }

    // Listing: filters and a cursor.
    let (st, all) = s.curl(
        "GET",
        &format!("/v1/certificates?ca_id={issuing}&limit=1000"),
        None,
    );
    assert_eq!(st, 200);
    let all: Vec<String> = all["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_string())
        .collect();
    assert!(all.len() >= 6, "{all:?}");
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/certificates?ca_id={issuing}&limit=2&cursor={c}"),
            None => format!("/v1/certificates?ca_id={issuing}&limit=2"),
        };
        let (st, page) = s.curl("GET", &q, None);
        assert_eq!(st, 200, "{page}");
        for c in page["certificates"].as_array().unwrap() {
            paged.push(c["serial"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let (_, revoked) = s.curl("GET", "/v1/certificates?status=REVOKED", None);
    let revoked = revoked["certificates"].as_array().unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["serial"].as_str(), Some(serial.as_str()));
    let (_, soon) = s.curl(
        "GET",
        &format!(
            "/v1/certificates?ca_id={issuing}&expiring_before=2099-01-01T00:00:00Z&limit=1000"
        ),
        None,
    );
    assert_eq!(soon["certificates"].as_array().unwrap().len(), all.len());
    let (_, past) = s.curl(
        "GET",
        "/v1/certificates?expiring_before=2020-01-01T00:00:00Z",
        None,
    );
    assert_eq!(past["certificates"].as_array().unwrap().len(), 0);
    let mut by_expiry = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/certificates?ca_id={issuing}&expiring_before=2099-01-01T00:00:00Z&limit=3&cursor={c}"),
            None => format!("/v1/certificates?ca_id={issuing}&expiring_before=2099-01-01T00:00:00Z&limit=3"),
        };
        let (_, page) = s.curl("GET", &q, None);
        for c in page["certificates"].as_array().unwrap() {
            by_expiry.push(c["serial"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    by_expiry.sort();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(by_expiry, sorted);

    // A graceful restart (SIGTERM) keeps everything.
    let st = s.stop();
    assert!(
        st.success(),
        "ca-server exited with {st} on SIGTERM\n{}",
        s.log()
    );
    s.start();
    let (st, got) = s.curl("GET", &format!("/v1/certificates/{serial}"), None);
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["certificate"], first["certificate"]);
    assert_eq!(got["status"], "REVOKED");
    let (_, after) = s.curl(
        "GET",
        &format!("/v1/certificates?ca_id={issuing}&limit=1000"),
        None,
    );
    let after: Vec<String> = after["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(after, all);
    let (st, again) = s.curl("POST", "/v1/certificates", Some(&body));
    assert_eq!(st, 201);
    assert_eq!(
        again["serial"].as_str(),
        Some(serial.as_str()),
        "the idempotency token survives a restart"
    );
    let (_, cas) = s.curl("GET", "/v1/cas", None);
    assert_eq!(cas["certificate_authorities"].as_array().unwrap().len(), 3);
}

/// Security review L7: A-labels that do not decode to a valid U-label are
/// refused, by name and in a CSR; a real IDN is issued.
#[test]
fn names_whose_a_labels_do_not_decode_are_refused() {
    let s = Server::start_new();
    let request = |name: &str| {
        s.curl(
            "POST",
            "/v1/certificates/request",
            Some(&json!({"names": [name], "passphrase": "long enough passphrase"})),
        )
    };
    for name in ["xn--0.example.com", "xn--ls8h.example.com"] {
        let (st, v) = request(name);
        assert_eq!((st, code(&v)), (400, "InvalidRequest"), "{name}: {v}");
    }
    let (_, csr) = openssl_csr(s.tmp.path(), "idn", "DNS:xn--a.example.com");
    let (st, v) = s.curl("POST", "/v1/certificates", Some(&json!({"csr": csr})));
    assert_eq!((st, code(&v)), (400, "MalformedCsr"), "{v}");
    let (st, v) = request("xn--bcher-kva.example");
    assert_eq!(st, 201, "{v}");
}
