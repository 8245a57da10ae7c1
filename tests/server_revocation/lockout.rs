//! Revoked or unknown client certificates locked out of the management API.

use std::path::Path;
use std::process::Command;

use crate::harness;
use crate::harness::relying::*;
use crate::harness::{code, openssl_csr, run, Server};
use hyper::Method;
use serde_json::{json, Value};

/// curl /health on the API with a client certificate: (HTTP status, body).
fn api_health(s: &Server, cert: &Path, key: &Path) -> (u16, Value) {
    let out = run(Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}", "--cacert"])
        .arg(s.root_pem())
        .arg("--cert")
        .arg(cert)
        .arg("--key")
        .arg(key)
        .arg(format!("https://{}/health", s.api)));
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = t.rsplit_once('\n').unwrap_or(("", &t));
    (
        status.trim().parse().unwrap_or(0),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_operator_is_locked_out_at_once() {
    let s = Server::start_new();
    let dir = s.tmp.path().to_path_buf();
    let client_ca = s.config.client_auth_ca_id.clone();
    // A second operator's client certificate, issued through the API.
    let (key, csr) = openssl_csr(&dir, "operator2", "DNS:operator2.example");
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": csr, "ca_id": client_ca, "profile": "tls-client"})),
    );
    assert_eq!(st, 201, "{v}");
    let cert = dir.join("operator2.pem");
    std::fs::write(&cert, v["certificate"].as_str().expect("certificate")).expect("write");
    let serial = v["serial"].as_str().expect("serial").to_string();
    assert_eq!(api_health(&s, &cert, &key).0, 200);

    // A keep-alive connection opened before the revocation.
    let root = std::fs::read(s.root_pem()).expect("root");
    let tls = ca_server::api::client::client_config(
        &root,
        Some(&std::fs::read(&cert).expect("cert")),
        Some(&std::fs::read(&key).expect("key")),
    )
    .expect("tls");
    let mut conn = ca_server::api::client::ApiClient::connect(&s.api, tls)
        .await
        .expect("connect");
    let (st, _) = conn.call(Method::GET, "/health", None).await.expect("call");
    assert_eq!(st, 200);

    let (st, v) = revoke(&s, &serial, "PRIVILEGE_WITHDRAWN");
    assert_eq!(st, 200, "{v}");
    // Refused at once: a new connection and the open one.
    let (st, v) = api_health(&s, &cert, &key);
    assert_eq!((st, code(&v)), (403, "ClientRevoked"), "{v}");
    let (st, v) = conn.call(Method::GET, "/v1/cas", None).await.expect("call");
    assert_eq!((st, code(&v)), (403, "ClientRevoked"), "{v}");
    // Both refusals are audited (review M4).
    let (_, page) = s.curl("GET", "/v1/audit?limit=1000", None);
    let refused = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["result"]["code"] == "ClientRevoked")
        .count();
    assert_eq!(refused, 2, "{page}");
    // The administrator is unaffected.
    let (st, _) = s.curl("GET", "/health", None);
    assert_eq!(st, 200);
    // init's administrator certificate is in the store too, so it can be revoked.
    let admin = std::fs::read_to_string(s.admin_dir().join("admin.pem")).expect("admin");
    let der = ca_core::pem::decode("CERTIFICATE", &admin).expect("pem");
    let admin_serial = ca_server::revocation::client_certificate(Some(&[der.into()]))
        .expect("client certificate")
        .serial;
    let (st, v) = s.curl(
        "GET",
        &format!("/v1/certificates/{admin_serial}?ca_id={client_ca}"),
        None,
    );
    assert_eq!(st, 200, "{v}");
}

/// Security review L2: the client lockout fails closed. A certificate the
/// client-auth CA signed but the store does not hold as issued (here: signed
/// offline with the CA's own key) passes the TLS handshake, yet every request
/// is refused; before the fix only a stored revocation refused it.
#[test]
fn a_client_certificate_the_store_does_not_hold_is_refused() {
    let mut s = Server::start_new();
    let client_ca = s.config.client_auth_ca_id.clone();
    let dir = s.tmp.path().to_path_buf();
    let (st, _, ca_pem) = public(&format!("http://{}/ca/{client_ca}.pem", s.public), &[]);
    assert_eq!(st, 200);
    // Control: a client certificate issued through the API is accepted.
    let (cert, key, _) = harness::client_identity(&s, "stored", "CN=stored,O=test");
    assert_eq!(api_health(&s, &cert, &key).0, 200);

    s.stop();
    let signer = s.ca_key(&client_ca);
    let issuer = ca_core::cert::Issuer::new(
        ca_core::cert::CaCertificate::parse(&ca_pem).expect("client-auth CA"),
        vec![],
        ca_core::cert::IssuerUrls::default(),
    );
    let (forged_key, csr) = openssl_csr(&dir, "forged", "DNS:forged.example");
    let csr = ca_core::csr::parse_csr(csr.as_bytes()).expect("csr");
    let forged = ca_core::cert::issue(
        &issuer,
        &signer,
        &ca_core::cert::CertificateRequest::from_csr(&csr, ca_core::profile::Profile::TlsClient),
        time::OffsetDateTime::now_utc(),
    )
    .expect("sign offline");
    let forged_cert = dir.join("forged.pem");
    std::fs::write(&forged_cert, forged.to_pem()).expect("write");
    s.start();

    let (st, v) = api_health(&s, &forged_cert, &forged_key);
    assert_eq!((st, code(&v)), (401, "Unauthenticated"), "{v}");
    assert!(
        v.to_string().contains("not one the client-auth CA issued"),
        "{v}"
    );
    assert_eq!(api_health(&s, &cert, &key).0, 200);
    // The refusal is in the audit trail (review M4), with who was refused.
    let (st, page) = s.curl("GET", "/v1/audit?limit=1000", None);
    assert_eq!(st, 200, "{page}");
    let refused: Vec<&Value> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["result"]["code"] == "Unauthenticated")
        .collect();
    assert_eq!(refused.len(), 1, "{page}");
    assert_eq!(refused[0]["outcome"]["decision"], "denied");
    assert_eq!(refused[0]["identity"]["subject"], "CN=forged");
}
