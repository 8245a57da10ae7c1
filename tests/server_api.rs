//! The real `ca-server` binary on 127.0.0.1, driven by curl, openssl and the
//! Rust client: mutual TLS refusals, issuance verified by `openssl verify`,
//! idempotency, disabled CAs, server-made keys, CA hierarchy, restart.

mod harness;

use std::process::Command;
use std::str::FromStr;

use ca_core::cert::{
    create_root, prepare, CaCertificate, CertificateRequest, Issuer, IssuerUrls, RootParams,
};
use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};
use ca_core::profile::Profile;
use ca_core::serial::Serial;
use harness::server::server_bin;
use harness::{code, core_csr, openssl_csr, run, Server};
use hyper::Method;
use serde_json::{json, Value};
use x509_cert::name::Name;

fn write(path: &std::path::Path, data: impl AsRef<[u8]>) {
    std::fs::write(path, data).expect("write");
}

/// A client certificate (tls-client) for a fresh key, signed by `issuer`,
/// optionally with its validity moved into the past.
fn client_cert(issuer: &Issuer, signer: &dyn Signer, expired: bool) -> (String, String) {
    let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
    let req = CertificateRequest {
        subject: Name::from_str("CN=someone").expect("name"),
        spki_der: key.public_key_der().to_vec(),
        sans: vec![],
        profile: Profile::TlsClient,
        validity_days: Some(30),
        name_constraints: None,
    };
    let mut p = prepare(
        issuer,
        &req,
        Serial::random().expect("serial"),
        time::OffsetDateTime::now_utc(),
        Profile::TlsClient.default_limits(),
    )
    .expect("prepare");
    if expired {
        use der::asn1::UtcTime;
        use der::Encode;
        use std::time::Duration;
        let t = |s: u64| {
            x509_cert::time::Time::UtcTime(
                UtcTime::from_unix_duration(Duration::from_secs(s)).expect("time"),
            )
        };
        // 2020-01-01 .. 2020-02-01
        p.tbs.validity.not_before = t(1_577_836_800);
        p.tbs.validity.not_after = t(1_580_515_200);
        p.tbs_der = p.tbs.to_der().expect("tbs");
    }
    let cert = p.sign(signer).expect("sign");
    (cert.to_pem(), key.to_pkcs8_pem().to_string())
}

/// curl with the given client credentials; true if the request got an HTTP answer.
fn curl_with(s: &Server, cert: Option<(&str, &str)>) -> (bool, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(s.root_pem());
    if let Some((c, k)) = cert {
        cmd.args(["--cert", c, "--key", k]);
    }
    cmd.arg(format!("https://{}/health", s.api));
    let out = run(&mut cmd);
    (
        out.status.success() && String::from_utf8_lossy(&out.stdout) == "200",
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_refuses_missing_foreign_and_expired_client_certificates() {
    let mut s = Server::start_new();
    let tmp = s.tmp.path().to_path_buf();
    let tmp = tmp.as_path();

    // The administrator gets in.
    let admin = s.admin_dir();
    let (ok, err) = curl_with(
        &s,
        Some((
            admin.join("admin.pem").to_str().unwrap(),
            admin.join("admin.key").to_str().unwrap(),
        )),
    );
    assert!(ok, "admin refused: {err}");
    // TLS 1.2 is offered too.
    let out = run(Command::new("curl")
        .args([
            "-sS",
            "-f",
            "-o",
            "/dev/null",
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--cacert",
        ])
        .arg(s.root_pem())
        .arg("--cert")
        .arg(admin.join("admin.pem"))
        .arg("--key")
        .arg(admin.join("admin.key"))
        .arg(format!("https://{}/health", s.api)));
    assert!(
        out.status.success(),
        "TLS 1.2: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // No client certificate.
    let (ok, err) = curl_with(&s, None);
    assert!(!ok, "no client certificate was accepted");
    assert!(err.contains("alert") || err.contains("SSL"), "{err}");

    // A certificate from another CA.
    let foreign_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let foreign_root = create_root(
        &foreign_key,
        &RootParams::new(Name::from_str("CN=API Client CA,O=ca-server").unwrap()),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let foreign = Issuer::new(foreign_root, vec![], IssuerUrls::default());
    let (fc, fk) = client_cert(&foreign, &foreign_key, false);
    write(&tmp.join("foreign.pem"), &fc);
    write(&tmp.join("foreign.key"), &fk);
    let (ok, err) = curl_with(
        &s,
        Some((
            tmp.join("foreign.pem").to_str().unwrap(),
            tmp.join("foreign.key").to_str().unwrap(),
        )),
    );
    assert!(!ok, "a foreign-CA certificate was accepted");
    assert!(err.contains("alert") || err.contains("SSL"), "{err}");

    // An expired certificate from the right CA.
    let ca_id = &s.config.client_auth_ca_id.clone();
    let (st, v) = s.curl("GET", &format!("/v1/cas/{ca_id}/certificate"), None);
    assert_eq!(st, 200, "{v}");
    let ca_cert = CaCertificate::parse(v["certificate"].as_str().unwrap().as_bytes()).unwrap();
    let parents = ca_core::pem::decode_all("CERTIFICATE", v["certificate_chain"].as_str().unwrap())
        .unwrap()
        .iter()
        .map(|d| CaCertificate::parse(d).unwrap())
        .collect();
    // The CA key is sealed in the store: read it with the server stopped.
    s.stop();
    let ca_key = s.ca_key(ca_id);
    s.start();
    let issuer = Issuer::new(ca_cert, parents, IssuerUrls::default());
    let (ec, ek) = client_cert(&issuer, &ca_key, true);
    write(&tmp.join("expired.pem"), &ec);
    write(&tmp.join("expired.key"), &ek);
    let (ok, err) = curl_with(
        &s,
        Some((
            tmp.join("expired.pem").to_str().unwrap(),
            tmp.join("expired.key").to_str().unwrap(),
        )),
    );
    assert!(!ok, "an expired certificate was accepted");
    assert!(err.contains("alert") || err.contains("SSL"), "{err}");
    // Control: the same CA, not expired, passes the handshake; made offline,
    // the store does not hold it as issued, so the request itself is refused
    // with a JSON 401 (not a TLS alert).
    let (gc, gk) = client_cert(&issuer, &ca_key, false);
    write(&tmp.join("good.pem"), &gc);
    write(&tmp.join("good.key"), &gk);
    let out = run(Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(s.root_pem())
        .args(["--cert", tmp.join("good.pem").to_str().unwrap()])
        .args(["--key", tmp.join("good.key").to_str().unwrap()])
        .args(["-w", "\n%{http_code}"])
        .arg(format!("https://{}/health", s.api)));
    assert!(
        out.status.success(),
        "handshake refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        body.ends_with("\n401") && body.contains("Unauthenticated"),
        "{body}"
    );
    // And one issued through the API is accepted.
    let (cert, key, _) = harness::client_identity(&s, "good-stored", "CN=good-stored,O=test");
    let (ok, err) = curl_with(&s, Some((cert.to_str().unwrap(), key.to_str().unwrap())));
    assert!(ok, "a valid client certificate was refused: {err}");

    // The Rust client sees the same: refused without a certificate or with a foreign one.
    let root = std::fs::read(s.root_pem()).unwrap();
    for (cert, key) in [
        (None, None),
        (Some(fc.as_bytes()), Some(fk.as_bytes())),
        (Some(ec.as_bytes()), Some(ek.as_bytes())),
    ] {
        let tls = ca_server::api::client::client_config(&root, cert, key).unwrap();
        let refused = match ca_server::api::client::ApiClient::connect(&s.api, tls).await {
            Err(_) => true,
            Ok(mut c) => c.call(Method::GET, "/health", None).await.is_err(),
        };
        assert!(
            refused,
            "Rust client without a valid certificate got an answer"
        );
    }
    let mut c = s.client().await;
    let (st, v) = c.call(Method::GET, "/v1/whoami", None).await.unwrap();
    assert_eq!(st, 200);
    assert_eq!(v["subject"], "CN=admin,O=ca-server administrators", "{v}");
    let (st, v) = c.call(Method::GET, "/health", None).await.unwrap();
    assert_eq!(st, 200);
    assert_eq!(v["status"], "ok");
    assert!(s.log().contains("TLS handshake refused"));
}

fn openssl_verify(dir: &std::path::Path, root: &std::path::Path, v: &Value) {
    let leaf = dir.join("leaf.pem");
    let chain = dir.join("chain.pem");
    write(&leaf, v["certificate"].as_str().expect("certificate"));
    write(&chain, v["certificate_chain"].as_str().expect("chain"));
    let out = run(Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(root)
        .arg("-untrusted")
        .arg(&chain)
        .arg(&leaf));
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_hierarchy_root_subordinate_and_external_signature() {
    let s = Server::start_new();
    let tmp = s.tmp.path().to_path_buf();
    let mut c = s.client().await;

    // A new root and a subordinate signed by it, then a leaf from the subordinate.
    let (st, root) = c
        .call(Method::POST, "/v1/cas", Some(&json!({"type": "ROOT", "subject": "CN=Team Root,O=Example", "key_algorithm": "ec-p384", "validity_days": 365})))
        .await
        .unwrap();
    assert_eq!(st, 201, "{root}");
    let root_id = root["id"].as_str().unwrap().to_string();
    assert!(ca_server::ids::is_ca_id(&root_id));
    let (st, sub) = c
        .call(Method::POST, "/v1/cas", Some(&json!({"type": "SUBORDINATE", "subject": "CN=Team Issuing,O=Example", "parent_ca_id": root_id, "path_len": 0, "validity_days": 200, "name_constraints": {"permitted_dns": ["example.internal"]}})))
        .await
        .unwrap();
    assert_eq!(st, 201, "{sub}");
    assert_eq!(sub["status"], "ACTIVE");
    let sub_id = sub["id"].as_str().unwrap().to_string();
    let (st, leaf) = c
        .call(Method::POST, "/v1/certificates", Some(&json!({"ca_id": sub_id, "csr": core_csr("svc.example.internal"), "validity_days": 7})))
        .await
        .unwrap();
    assert_eq!(st, 201, "{leaf}");
    let (_, rootcert) = c
        .call(Method::GET, &format!("/v1/cas/{root_id}/certificate"), None)
        .await
        .unwrap();
    write(
        &tmp.join("team-root.pem"),
        rootcert["certificate"].as_str().unwrap(),
    );
    openssl_verify(&tmp, &tmp.join("team-root.pem"), &leaf);
    // Name constraints hold: a name outside them is refused by policy.
    let (st, v) = c
        .call(
            Method::POST,
            "/v1/certificates",
            Some(&json!({"ca_id": sub_id, "csr": core_csr("evil.example.com")})),
        )
        .await
        .unwrap();
    assert_eq!((st, code(&v)), (403, "PolicyDenied"), "{v}");

    // A subordinate pending an external signature: CSR out, signed certificate in.
    let (st, ext) = c
        .call(Method::POST, "/v1/cas", Some(&json!({"type": "SUBORDINATE", "subject": "CN=Externally Signed CA,O=Example", "external": true})))
        .await
        .unwrap();
    assert_eq!(st, 201, "{ext}");
    assert_eq!(ext["status"], "PENDING_CERTIFICATE");
    let ext_id = ext["id"].as_str().unwrap().to_string();
    let (st, v) = c
        .call(
            Method::POST,
            "/v1/certificates",
            Some(&json!({"ca_id": ext_id, "csr": core_csr("a.example.internal")})),
        )
        .await
        .unwrap();
    assert_eq!((st, code(&v)), (409, "InvalidState"), "{v}");
    let (st, csr) = c
        .call(Method::GET, &format!("/v1/cas/{ext_id}/csr"), None)
        .await
        .unwrap();
    assert_eq!(st, 200, "{csr}");
    write(&tmp.join("ext-sub.csr"), csr["csr"].as_str().unwrap());
    let out = run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "60",
            "-subj",
            "/CN=External Root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
        ])
        .arg(tmp.join("ext-root.key"))
        .arg("-out")
        .arg(tmp.join("ext-root.pem")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    write(
        &tmp.join("ext.cnf"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    );
    let out = run(Command::new("openssl")
        .args(["x509", "-req", "-days", "90", "-in"])
        .arg(tmp.join("ext-sub.csr"))
        .arg("-CA")
        .arg(tmp.join("ext-root.pem"))
        .arg("-CAkey")
        .arg(tmp.join("ext-root.key"))
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(tmp.join("ext.cnf"))
        .arg("-out")
        .arg(tmp.join("ext-sub.pem")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let signed = std::fs::read_to_string(tmp.join("ext-sub.pem")).unwrap();
    let ext_root = std::fs::read_to_string(tmp.join("ext-root.pem")).unwrap();
    // The wrong chain is refused.
    let (st, v) = c
        .call(
            Method::POST,
            &format!("/v1/cas/{ext_id}/certificate"),
            Some(&json!({"certificate": signed, "certificate_chain": rootcert["certificate"]})),
        )
        .await
        .unwrap();
    assert_eq!((st, code(&v)), (400, "MalformedCertificate"), "{v}");
    let (st, v) = c
        .call(
            Method::POST,
            &format!("/v1/cas/{ext_id}/certificate"),
            Some(&json!({"certificate": signed, "certificate_chain": ext_root})),
        )
        .await
        .unwrap();
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "ACTIVE");
    let (st, leaf) = c
        .call(Method::POST, "/v1/certificates", Some(&json!({"ca_id": ext_id, "csr": core_csr("b.example.internal"), "validity_days": 10})))
        .await
        .unwrap();
    assert_eq!(st, 201, "{leaf}");
    openssl_verify(&tmp, &tmp.join("ext-root.pem"), &leaf);
    // Importing twice is refused.
    let (st, v) = c
        .call(
            Method::POST,
            &format!("/v1/cas/{ext_id}/certificate"),
            Some(&json!({"certificate": signed, "certificate_chain": ext_root})),
        )
        .await
        .unwrap();
    assert_eq!((st, code(&v)), (409, "InvalidState"), "{v}");

    // Describe and list.
    let (st, d) = c
        .call(Method::GET, &format!("/v1/cas/{sub_id}"), None)
        .await
        .unwrap();
    assert_eq!(st, 200);
    assert_eq!(d["parent_ca_id"].as_str(), Some(root_id.as_str()));
    assert_eq!(d["type"], "SUBORDINATE");
    let (_, list) = c.call(Method::GET, "/v1/cas", None).await.unwrap();
    assert_eq!(list["certificate_authorities"].as_array().unwrap().len(), 6);

    // The public listener serves CA certificates without a client certificate.
    let out = run(Command::new("curl").args([
        "-sS",
        "-f",
        &format!("http://{}/ca/{root_id}.pem", s.public),
    ]));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        rootcert["certificate"].as_str().unwrap()
    );
    let out = run(Command::new("curl").args([
        "-sS",
        "-w",
        "\n%{http_code}",
        &format!("http://{}/health", s.public),
    ]));
    let health = String::from_utf8_lossy(&out.stdout);
    assert!(health.ends_with("\n200"), "{health}");
    let out = run(Command::new("curl").args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{}/ca/..%2f..%2fconfig.toml.pem", s.public),
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404");
}

/// Whether the kernel lets process `pid` have transparent huge pages.
fn thp_enabled(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
}

/// The server runs without transparent huge pages (it turns them off for
/// itself at start: see main.rs), as the kernel reports for its process,
/// while this test's own process has them: the kernel would give them.
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    if thp_enabled("self").as_deref() != Some("1") {
        eprintln!(
            "SKIPPED: this kernel gives this test process no transparent huge pages \
             (THP_enabled: {:?}), so a server without them proves nothing",
            thp_enabled("self")
        );
        return;
    }
    let s = Server::start_new();
    let pid = s.pid().expect("running");
    assert_eq!(thp_enabled(&pid.to_string()).as_deref(), Some("0"));
}

#[test]
fn serve_without_data_dir_initialises_the_default_directory_on_first_start() {
    let tmp = tempfile::tempdir().unwrap();
    let xdg = tmp.path().join("xdg");
    let child = Command::new(server_bin())
        .args([
            "serve",
            "--api-addr",
            "127.0.0.1:0",
            "--public-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("XDG_DATA_HOME", &xdg)
        .env_remove("CA_SERVER_DATA_DIR")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("server.log")).unwrap())
        .spawn()
        .unwrap();
    // Killed even when an assertion below fails.
    let mut child = harness::KillOnDrop(child);
    let dir = xdg.join("ca-server");
    let addresses = dir.join(ca_server::server::ADDRESSES_FILE);
    let start = std::time::Instant::now();
    while !addresses.exists() {
        assert!(start.elapsed().as_secs() < 30, "no start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    let a: Value = serde_json::from_slice(&std::fs::read(&addresses).unwrap()).unwrap();
    let api = a["api"].as_str().unwrap();
    // Everything secret is owner-only.
    use std::os::unix::fs::PermissionsExt;
    for f in [
        "config.toml",
        "ca.redb",
        "admin/admin.key",
        "admin/admin.pem",
        "tls/server.key",
    ] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} has mode {mode:o}");
    }
    // CA keys are sealed inside the store; the master key file is owner-only.
    let mode = std::fs::metadata(dir.join("master.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "master.key has mode {mode:o}");
    assert!(!dir.join("keys").exists(), "no plaintext key directory");
    let admin = dir.join("admin");
    let out = run(Command::new("curl")
        .args(["-sS", "-f", "--cacert"])
        .arg(admin.join("root.pem"))
        .arg("--cert")
        .arg(admin.join("admin.pem"))
        .arg("--key")
        .arg(admin.join("admin.key"))
        .arg(format!("https://{api}/health")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success());
    // JSON logs, and no private key in them.
    let log = std::fs::read_to_string(tmp.path().join("server.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with('{') && l.contains("\"ca-server listening\"")),
        "{log}"
    );
    assert!(!log.contains("PRIVATE KEY"));
}

/// Security review L6: no configuration makes server certificates live past
/// the CA/Browser Forum's 398 days; the server refuses to start with one.
#[test]
fn a_server_lifetime_over_398_days_is_refused_at_start() {
    let s = Server::init_with(&[], &[]);
    let path = s.dir.join("config.toml");
    let config = std::fs::read_to_string(&path).expect("config");
    let section = "[validity.tls-server]\ndefault_days = 90\nmax_days = 398\n";
    assert!(config.contains(section), "{config}");
    std::fs::write(
        &path,
        config.replace(
            section,
            "[validity.tls-server]\ndefault_days = 90\nmax_days = 3650\n",
        ),
    )
    .expect("write config");
    let mut child = harness::KillOnDrop(
        Command::new(server_bin())
            .args(["serve", "--data-dir"])
            .arg(&s.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(s.tmp.path().join("refused.log")).expect("log"))
            .spawn()
            .expect("spawn"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.0.try_wait().expect("wait") {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "the server started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(s.tmp.path().join("refused.log")).expect("log");
    assert!(log.contains("398") && log.contains("tls-server"), "{log}");
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

/// A retry with the same idempotency token that arrives after the first
/// request has signed but before it has stored the certificate waits for it
/// and gets the same certificate (the server holds the first request 400 ms
/// between signing and storing; a test-build hook). Before the fix the
/// token counted as abandoned in that window and a second certificate was
/// issued.
#[test]
fn a_retry_between_signing_and_storing_gets_the_same_certificate() {
    let s = Server::start_new_with(&[("CA_TEST_STORE_DELAY_MS", "400")]);
    let body = json!({"csr": core_csr("window.example.internal"), "idempotency_token": "window-1"});
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| s.curl("POST", "/v1/certificates", Some(&body)));
        // The first request signs within a few milliseconds, then waits.
        std::thread::sleep(std::time::Duration::from_millis(150));
        let second = scope.spawn(|| s.curl("POST", "/v1/certificates", Some(&body)));
        (first.join().expect("first"), second.join().expect("second"))
    });
    assert_eq!(first.0, 201, "{}", first.1);
    assert_eq!(second.0, 201, "{}", second.1);
    assert_eq!(
        first.1["serial"], second.1["serial"],
        "two certificates for one token"
    );
    let (_, list) = s.curl("GET", "/v1/certificates?limit=100", None);
    let named = list["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .filter(|c| c["subject"] == "CN=window.example.internal")
        .count();
    assert_eq!(named, 1, "{list}");
}

/// The same idempotency token sent by several requests at once, over HTTP:
/// with the same request, every answer is the one certificate (the others
/// wait for it); with different requests, one is issued and the rest are a
/// 409 `Conflict`. The store holds exactly one certificate either way.
#[test]
fn one_idempotency_token_sent_concurrently_issues_once() {
    let s = Server::start_new();
    let csr = core_csr("together.example.internal");
    let same = json!({"csr": csr, "idempotency_token": "together-1"});
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| s.curl("POST", "/v1/certificates", Some(&same))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let serials: std::collections::HashSet<String> = answers
        .iter()
        .map(|(st, v)| {
            assert_eq!(*st, 201, "{v}");
            v["serial"].as_str().expect("serial").to_string()
        })
        .collect();
    assert_eq!(serials.len(), 1, "{answers:?}");

    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    let body = json!({"csr": core_csr(&format!("d{i}.example.internal")),
                                      "idempotency_token": "together-2"});
                    s.curl("POST", "/v1/certificates", Some(&body))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let issued = answers.iter().filter(|(st, _)| *st == 201).count();
    let conflicts = answers
        .iter()
        .filter(|(st, v)| *st == 409 && code(v) == "Conflict")
        .count();
    assert_eq!((issued, conflicts), (1, 7), "{answers:?}");
    // What the store holds: one certificate per token.
    let (st, v) = s.curl("GET", "/v1/certificates?limit=1000", None);
    assert_eq!(st, 200, "{v}");
    let names: Vec<String> = v["certificates"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["sans"].to_string())
        .collect();
    let together = names
        .iter()
        .filter(|n| n.contains("together.example"))
        .count();
    let different = names
        .iter()
        .filter(|n| n.contains(".example.internal") && n.contains("\"DNS:d"))
        .count();
    assert_eq!((together, different), (1, 1), "{names:?}");
}
