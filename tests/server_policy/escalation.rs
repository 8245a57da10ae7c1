//! Escalation refused: minting a trusted subject, taking over another's certificate.

use super::csr_body;
use crate::harness;
use crate::harness::Server;
use serde_json::{json, Value};

/// Whoever may issue client certificates under name limits cannot mint one
/// whose subject a `subject` principal trusts: the escalation is refused, the
/// names it was granted still work, and `subject_patterns` opens exactly what
/// it names.
#[test]
fn a_name_limited_issuer_cannot_mint_a_trusted_subject() {
    let s = Server::start_new();
    let client_ca = s.config.client_auth_ca_id.clone();
    let put = |id: &str, body: Value| s.put_policy(id, body);
    // Operators trust a subject...
    put(
        "ops-admins",
        json!({"effect": "allow", "principals": [{"subject": "CN=*,O=ops admins"}],
               "actions": ["administer", "issue", "revoke", "read", "audit"], "cas": ["*"],
               "conditions": {"revoke_scope": "any"}}),
    );
    // ...and let a provisioning service issue client certificates for workloads.
    let (cert, key, _) = harness::client_identity(&s, "provisioner", "CN=provisioner,O=test");
    put(
        "provisioner",
        json!({"effect": "allow", "principals": [{"subject": "CN=provisioner,O=test"}],
               "actions": ["issue"], "cas": [client_ca],
               "conditions": {"name_patterns": ["*.workloads.example.internal"],
                              "profiles": ["tls-client"]}}),
    );
    let request = |subject: Option<&str>, names: &[&str]| {
        let mut body = json!({"ca_id": client_ca, "names": names, "profile": "tls-client",
                              "passphrase": "test-passphrase"});
        if let Some(subj) = subject {
            body["subject"] = json!(subj);
        }
        s.curl_as(&cert, &key, "POST", "/v1/certificates/request", Some(&body))
    };
    for forged in [
        "CN=mallory,O=ops admins",
        "CN=job.workloads.example.internal,O=ops admins",
    ] {
        let (st, v) = request(Some(forged), &["job.workloads.example.internal"]);
        assert_eq!(st, 403, "{forged}: {v}");
        assert_eq!(harness::code(&v), "PolicyDenied");
    }
    let (st, v) = request(None, &["job.workloads.example.internal"]);
    assert_eq!(st, 201, "CN = the requested name: {v}");
    let (st, v) = request(
        Some("CN=job.workloads.example.internal"),
        &["job.workloads.example.internal"],
    );
    assert_eq!(st, 201, "{v}");
    let (st, v) = request(
        Some("CN=other.workloads.example.internal"),
        &["job.workloads.example.internal"],
    );
    assert_eq!(
        (st, harness::code(&v)),
        (403, "PolicyDenied"),
        "a CN that is not a requested name: {v}"
    );
    // Names in the CLI's `DNS:` form: the default CN is the bare name.
    let (st, v) = request(None, &["DNS:job2.workloads.example.internal"]);
    assert_eq!(st, 201, "{v}");
    let der =
        ca_core::pem::decode("CERTIFICATE", v["certificate"].as_str().expect("pem")).expect("der");
    let issued = <x509_cert::Certificate as der::Decode>::from_der(&der).expect("certificate");
    assert_eq!(
        issued.tbs_certificate.subject.to_string(),
        "CN=job2.workloads.example.internal"
    );
    // Renewing someone else's client certificate with one's own CSR would copy
    // its subject onto a key one holds: refused like any other subject.
    let admin_pem = std::fs::read_to_string(s.admin_dir().join("admin.pem")).expect("admin.pem");
    let admin_der = ca_core::pem::decode("CERTIFICATE", &admin_pem).expect("der");
    let admin_cert = <x509_cert::Certificate as der::Decode>::from_der(&admin_der).expect("cert");
    let admin_serial: String = admin_cert
        .tbs_certificate
        .serial_number
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let own_csr = csr_body(
        &client_ca,
        &["job.workloads.example.internal"],
        "tls-client",
        None,
    );
    let (st, v) = s.curl_as(
        &cert,
        &key,
        "POST",
        &format!("/v1/certificates/{admin_serial}/renew"),
        Some(&json!({"csr": own_csr["csr"]})),
    );
    assert_eq!(st, 403, "renewing the admin's certificate: {v}");
    assert_eq!(harness::code(&v), "PolicyDenied");

    // subject_patterns allow exactly the subjects they name.
    put(
        "provisioner",
        json!({"effect": "allow", "principals": [{"subject": "CN=provisioner,O=test"}],
               "actions": ["issue"], "cas": [client_ca],
               "conditions": {"name_patterns": ["*.workloads.example.internal"],
                              "subject_patterns": ["CN=*,OU=batch,O=workloads"],
                              "profiles": ["tls-client"]}}),
    );
    let (st, v) = request(
        Some("CN=job-7,OU=batch,O=workloads"),
        &["job.workloads.example.internal"],
    );
    assert_eq!(st, 201, "{v}");
    let (st, v) = request(
        Some("CN=mallory,O=ops admins"),
        &["job.workloads.example.internal"],
    );
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");
    // `*` stays inside one attribute value.
    for smuggled in [
        "CN=m,OU=ops admins,OU=batch,O=workloads",
        "CN=m+O=ops admins,OU=batch,O=workloads",
    ] {
        let (st, v) = request(Some(smuggled), &["job.workloads.example.internal"]);
        assert_eq!(
            (st, harness::code(&v)),
            (403, "PolicyDenied"),
            "{smuggled}: {v}"
        );
    }
    // The patterns add to the default rule: CN = a requested name still works.
    let (st, v) = request(None, &["job.workloads.example.internal"]);
    assert_eq!(st, 201, "{v}");
}

/// Security review L3: renewal judges before it looks, and renewing someone
/// else's certificate (which makes the renewer its owner, free to revoke it)
/// takes administer on the CA, not only the right to issue those names.
#[test]
fn only_the_owner_or_an_administrator_renews_a_certificate() {
    let s = Server::start_new();
    let issuing = s.config.issuing_ca_id.clone();
    let (a_cert, a_key, _) = harness::client_identity(&s, "alice", "CN=team-alice,O=test");
    let (b_cert, b_key, _) = harness::client_identity(&s, "bob", "CN=team-bob,O=test");
    s.put_policy(
        "team",
        json!({"effect": "allow", "principals": [{"subject": "CN=team-*"}],
               "actions": ["issue", "revoke", "read"], "cas": [issuing],
               "conditions": {"name_patterns": ["*.team.example"], "revoke_scope": "own"}}),
    );
    let as_alice = |m: &str, p: &str, b: Value| s.curl_as(&a_cert, &a_key, m, p, Some(&b));
    let as_bob = |m: &str, p: &str, b: Value| s.curl_as(&b_cert, &b_key, m, p, Some(&b));

    let (st, v) = as_alice(
        "POST",
        "/v1/certificates",
        csr_body(&issuing, &["web.team.example"], "tls-server", None),
    );
    assert_eq!(st, 201, "{v}");
    let serial = v["serial"].as_str().expect("serial").to_string();
    let renew = format!("/v1/certificates/{serial}/renew");

    // Bob may issue the same names, but not take over Alice's certificate.
    let (st, v) = as_bob("POST", &renew, json!({}));
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");
    // An unknown serial tells Bob no more than a known one.
    let (st, v) = as_bob("POST", "/v1/certificates/0123456789abcdef/renew", json!({}));
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");
    // Alice renews her own; the administrator may renew anyone's.
    let (st, v) = as_alice("POST", &renew, json!({}));
    assert_eq!(st, 201, "{v}");
    let (st, v) = s.curl("POST", &renew, Some(&json!({})));
    assert_eq!(st, 201, "{v}");
    // The administrator sees the unknown serial for what it is.
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates/0123456789abcdef/renew",
        Some(&json!({})),
    );
    assert_eq!((st, harness::code(&v)), (404, "NotFound"), "{v}");
}
