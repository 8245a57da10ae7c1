//! Revocation through the real `ca-server` binary: CRLs checked by `openssl crl
//! -verify` and `openssl verify -crl_check`, the OCSP responder queried by
//! `openssl ocsp -url` (POST) and by curl (GET and POST), malformed OCSP input,
//! idempotent revocation, sub-CA revocation, and a revoked operator locked out
//! of the management API at once.

mod harness;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::relying::*;
use harness::{code, openssl_csr, run, KillOnDrop, Server};
use hyper::Method;
use serde_json::{json, Value};

const MALFORMED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];

#[test]
fn crls_and_ocsp_interoperate_with_openssl() {
    let mut s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let good = issue(&s, &ca, "good.example");
    let bad = issue(&s, &ca, "bad.example");
    let f = Files::new(&s, &ca, &good);
    let good_pem = f.leaf("good", &good);
    let bad_pem = f.leaf("bad", &bad);
    let bad_serial = bad["serial"].as_str().expect("serial").to_string();
    let ocsp_url = format!("http://{}/ocsp/{ca}", s.public);

    // The URLs in the certificate are the ones served.
    let out = openssl(&["x509", "-in", p(&good_pem), "-noout", "-text"]);
    let t = text(&out);
    assert!(t.contains(&crl_url(&s, &ca)), "{t}");
    assert!(t.contains(&format!("OCSP - URI:{ocsp_url}")), "{t}");

    // The first CRL: DER, verified by openssl, number n.
    let crl1 = f.dir.join("crl1.der");
    let (st, ctype, body) = public(&crl_url(&s, &ca), &[]);
    assert_eq!((st, ctype.as_str()), (200, "application/pkix-crl"));
    std::fs::write(&crl1, &body).expect("write");
    let out = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl1),
        "-CAfile",
        p(&f.chain),
        "-noout",
    ]);
    assert!(text(&out).contains("verify OK"), "{}", text(&out));
    let n1 = crl_number(&crl1);
    let out = openssl(&["crl", "-inform", "DER", "-in", p(&crl1), "-noout", "-text"]);
    let t = text(&out);
    assert!(t.contains("Next Update"), "{t}");
    assert!(t.contains("X509v3 Authority Key Identifier"), "{t}");
    assert!(t.contains("Version 2"), "{t}");

    // OCSP before revocation: good, with the nonce echoed; again without a
    // nonce (the second answer comes from the cache).
    let t = f.ocsp(&ocsp_url, &["-cert", p(&good_pem)], true);
    assert!(t.contains(&format!("{}: good", p(&good_pem))), "{t}");
    assert!(
        t.contains("This Update") && t.contains("Next Update"),
        "{t}"
    );
    for _ in 0..2 {
        let t = f.ocsp(&ocsp_url, &["-cert", p(&bad_pem)], false);
        assert!(t.contains(&format!("{}: good", p(&bad_pem))), "{t}");
    }
    // Signed by a delegated responder certificate the CA issued for it.
    let t = f.ocsp(&ocsp_url, &["-cert", p(&good_pem), "-resp_text"], true);
    assert!(t.contains("CN=OCSP Responder"), "{t}");
    assert!(
        t.contains("OCSP Signing") && t.contains("OCSP No Check"),
        "{t}"
    );
    // Review M4: that certificate is in the store and the audit trail like
    // any other the CA key signed, byte for byte what the response carried.
    let begin = t
        .find("-----BEGIN CERTIFICATE-----")
        .expect("responder certificate");
    let end = t.find("-----END CERTIFICATE-----").expect("end") + 25;
    let responder_pem = f.dir.join("responder.pem");
    std::fs::write(&responder_pem, &t[begin..end]).expect("write");
    let out = openssl(&["x509", "-in", p(&responder_pem), "-noout", "-serial"]);
    let serial = text(&out)
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    let (st, stored) = s.curl("GET", &format!("/v1/certificates/{serial}"), None);
    assert_eq!(st, 200, "{stored}");
    assert_eq!(stored["profile"], "ocsp-signing", "{stored}");
    let der = |pem: &str| ca_core::pem::decode("CERTIFICATE", pem).expect("pem");
    assert_eq!(
        der(stored["certificate"].as_str().expect("pem")),
        der(&t[begin..end])
    );
    let (_, page) = s.curl(
        "GET",
        "/v1/audit?action=InternalIssueOcspResponderCertificate",
        None,
    );
    let entry = &page["entries"][0];
    assert_eq!(entry["target"], format!("{ca}/{serial}"), "{page}");
    assert_eq!(entry["certificate"]["serial"], serial.as_str(), "{page}");
    // A serial this CA never issued: unknown.
    let t = f.ocsp(&ocsp_url, &["-serial", "0x0123456789abcdef"], true);
    assert!(t.contains("0x0123456789abcdef: unknown"), "{t}");

    // Revoke: OCSP says revoked at once, even for the cached no-nonce question.
    let (st, v) = revoke(&s, &bad_serial, "KEY_COMPROMISE");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["revocation"]["reason_code"], 1);
    let t = f.ocsp(&ocsp_url, &["-cert", p(&bad_pem)], false);
    assert!(t.contains(&format!("{}: revoked", p(&bad_pem))), "{t}");
    assert!(t.contains("Reason: keyCompromise"), "{t}");
    assert!(t.contains("Revocation Time"), "{t}");
    let t = f.ocsp(&ocsp_url, &["-cert", p(&good_pem)], true);
    assert!(t.contains(&format!("{}: good", p(&good_pem))), "{t}");

    // Twice with the same reason is idempotent; another reason is a
    // conflict; an unknown serial is NotFound.
    let (st, v) = revoke(&s, &bad_serial, "KEY_COMPROMISE");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["revocation"]["reason_code"], 1, "{v}");
    let (st, v) = revoke(&s, &bad_serial, "SUPERSEDED");
    assert_eq!((st, code(&v)), (409, "Conflict"), "{v}");
    let (st, v) = revoke(&s, "0badbadbadbad0", "KEY_COMPROMISE");
    assert_eq!((st, code(&v)), (404, "NotFound"), "{v}");

    // The next CRL lists it, with a higher number, and openssl agrees.
    let crl2 = f.dir.join("crl2.der");
    fetch_crl_listing(&s, &ca, &bad_serial, &crl2);
    let n2 = crl_number(&crl2);
    assert!(n2 > n1, "CRL number {n2} after {n1}");
    let out = openssl(&["crl", "-inform", "DER", "-in", p(&crl2), "-noout", "-text"]);
    assert!(text(&out).contains("Key Compromise"), "{}", text(&out));
    let crl_pem = f.dir.join("crl2.pem");
    let out = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl2),
        "-out",
        p(&crl_pem),
    ]);
    assert!(out.status.success());
    let verify = |leaf: &Path| {
        openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            p(&f.root),
            "-untrusted",
            p(&f.chain),
            "-CRLfile",
            p(&crl_pem),
            p(leaf),
        ])
    };
    let out = verify(&good_pem);
    assert!(out.status.success(), "{}", text(&out));
    let out = verify(&bad_pem);
    assert!(!out.status.success(), "a revoked certificate verified");
    assert!(text(&out).contains("certificate revoked"), "{}", text(&out));

    // PEM on request: ?format=pem and Accept.
    for extra in [
        (format!("{}?format=pem", crl_url(&s, &ca)), vec![]),
        (
            crl_url(&s, &ca),
            vec!["-H", "Accept: application/x-pem-file"],
        ),
    ] {
        let (st, ctype, body) = public(&extra.0, &extra.1);
        assert_eq!((st, ctype.as_str()), (200, "application/x-pem-file"));
        assert!(body.starts_with(b"-----BEGIN X509 CRL-----"));
        let file = f.dir.join("fetched.pem");
        std::fs::write(&file, &body).expect("write");
        let out = openssl(&["crl", "-in", p(&file), "-CAfile", p(&f.chain), "-noout"]);
        assert!(text(&out).contains("verify OK"), "{}", text(&out));
    }

    // GET and POST by hand (curl), read back by openssl.
    let req = f.dir.join("req.der");
    let out = openssl(&[
        "ocsp",
        "-issuer",
        p(&f.issuer),
        "-cert",
        p(&bad_pem),
        "-no_nonce",
        "-reqout",
        p(&req),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let req_der = std::fs::read(&req).expect("req");
    let get_url = format!("{ocsp_url}/{}", url_escape(&b64(&req_der)));
    let post_args = [
        "-X",
        "POST",
        "-H",
        "Content-Type: application/ocsp-request",
        "--data-binary",
    ];
    let post_body = format!("@{}", p(&req));
    for (url, extra) in [
        (get_url.as_str(), vec![]),
        (ocsp_url.as_str(), {
            let mut v = post_args.to_vec();
            v.push(&post_body);
            v
        }),
    ] {
        let (st, ctype, body) = public(url, &extra);
        assert_eq!((st, ctype.as_str()), (200, "application/ocsp-response"));
        let resp = f.dir.join("resp.der");
        std::fs::write(&resp, &body).expect("write");
        let out = openssl(&[
            "ocsp",
            "-respin",
            p(&resp),
            "-issuer",
            p(&f.issuer),
            "-cert",
            p(&bad_pem),
            "-CAfile",
            p(&f.chain),
            "-no_nonce",
        ]);
        let t = text(&out);
        assert!(t.contains("Response verify OK"), "{t}");
        assert!(t.contains(&format!("{}: revoked", p(&bad_pem))), "{t}");
    }

    // Malformed, garbage, empty and huge requests: malformedRequest, and the
    // server keeps serving.
    let garbage = f.dir.join("garbage.bin");
    std::fs::write(&garbage, b"\x30\x82\xff\xffnot an OCSP request").expect("write");
    let huge = f.dir.join("huge.bin");
    std::fs::write(&huge, vec![0x30u8; 1 << 20]).expect("write");
    let empty = f.dir.join("empty.bin");
    std::fs::write(&empty, b"").expect("write");
    for file in [&garbage, &huge, &empty, &req] {
        let mut bytes = std::fs::read(file).expect("read");
        if file == &req {
            // A valid request with its last octet cut.
            bytes.pop();
            std::fs::write(f.dir.join("cut.der"), &bytes).expect("write");
        }
        let body = if file == &req {
            format!("@{}", p(&f.dir.join("cut.der")))
        } else {
            format!("@{}", p(file))
        };
        let mut extra = post_args.to_vec();
        extra.push(&body);
        let (st, ctype, resp) = public(&ocsp_url, &extra);
        assert_eq!((st, ctype.as_str()), (200, "application/ocsp-response"));
        assert_eq!(resp, MALFORMED, "{}", file.display());
    }
    for bad_get in ["!!!notbase64", "AAAA", "%zz", ""] {
        let (st, _, resp) = public(&format!("{ocsp_url}/{bad_get}"), &[]);
        assert_eq!(st, 200);
        assert_eq!(resp, MALFORMED, "GET {bad_get:?}");
    }
    let (st, _, _) = public(&format!("http://{}/health", s.public), &[]);
    assert_eq!(st, 200, "the server stopped serving");
    // Unknown CAs and paths.
    let (st, _, _) = public(&crl_url(&s, "ca-0000000000000000"), &[]);
    assert_eq!(st, 404);
    let (st, _, _) = public(&format!("http://{}/crl/../../etc/passwd", s.public), &[]);
    assert_eq!(st, 404);

    // The last CRL survives a restart and is served at once; the next has a
    // higher number.
    s.stop();
    s.start();
    let crl3 = f.dir.join("crl3.der");
    let (st, _, body) = public(&crl_url(&s, &ca), &[]);
    assert_eq!(st, 200);
    std::fs::write(&crl3, &body).expect("write");
    assert!(crl_number(&crl3) >= n2);
    let another = issue(&s, &ca, "another.example");
    let another_serial = another["serial"].as_str().expect("serial");
    let (st, _) = revoke(&s, another_serial, "SUPERSEDED");
    assert_eq!(st, 200);
    let crl4 = f.dir.join("crl4.der");
    fetch_crl_listing(&s, &ca, another_serial, &crl4);
    assert!(crl_number(&crl4) > crl_number(&crl3));
    let out = openssl(&["crl", "-inform", "DER", "-in", p(&crl4), "-noout", "-text"]);
    let t = text(&out);
    assert!(t.contains(&bad_serial.to_ascii_uppercase()), "{t}");
}

#[test]
fn a_revoked_sub_ca_makes_its_certificates_revoked() {
    let s = Server::start_new();
    let root = s.config.root_ca_id.clone();
    let (st, sub) = s.curl(
        "POST",
        "/v1/cas",
        Some(&json!({"type": "SUBORDINATE", "subject": "CN=Doomed Issuing CA", "parent_ca_id": root, "path_len": 0})),
    );
    assert_eq!(st, 201, "{sub}");
    let sub_id = sub["id"].as_str().expect("id").to_string();
    let leaf = issue(&s, &sub_id, "leaf.example");
    let f = Files::new(&s, &sub_id, &leaf);
    let leaf_pem = f.leaf("leaf", &leaf);
    let url = format!("http://{}/ocsp/{sub_id}", s.public);
    let t = f.ocsp(&url, &["-cert", p(&leaf_pem)], false);
    assert!(t.contains(&format!("{}: good", p(&leaf_pem))), "{t}");

    let sub_serial = sub["serial"].as_str().expect("serial");
    let (st, v) = revoke(&s, sub_serial, "KEY_COMPROMISE");
    assert_eq!(st, 200, "{v}");
    let t = f.ocsp(&url, &["-cert", p(&leaf_pem)], false);
    assert!(t.contains(&format!("{}: revoked", p(&leaf_pem))), "{t}");
    assert!(t.contains("Reason: cACompromise"), "{t}");
    // The root's CRL lists the sub-CA.
    let crl = f.dir.join("root.der");
    fetch_crl_listing(&s, &root, sub_serial, &crl);
    let out = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl),
        "-CAfile",
        p(&f.root),
        "-noout",
    ]);
    assert!(text(&out).contains("verify OK"), "{}", text(&out));
    // A validator checking every link (openssl -crl_check_all, with both CRLs)
    // refuses the leaf: its issuer is revoked.
    let (st, _, sub_crl) = public(&crl_url(&s, &sub_id), &[]);
    assert_eq!(st, 200);
    let sub_der = f.dir.join("sub.der");
    std::fs::write(&sub_der, sub_crl).expect("write");
    let mut both = String::new();
    for der in [&sub_der, &crl] {
        let out = openssl(&["crl", "-inform", "DER", "-in", p(der)]);
        assert!(out.status.success(), "{}", text(&out));
        both.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let crls = f.dir.join("both.pem");
    std::fs::write(&crls, both).expect("write");
    let out = openssl(&[
        "verify",
        "-crl_check_all",
        "-CAfile",
        p(&f.root),
        "-untrusted",
        p(&f.chain),
        "-CRLfile",
        p(&crls),
        p(&leaf_pem),
    ]);
    assert!(!out.status.success(), "a leaf of a revoked CA verified");
    assert!(text(&out).contains("certificate revoked"), "{}", text(&out));
}

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

/// OCSP over HTTP says `unauthorized` (RFC 5019 2.2.3) when asked, at one
/// CA's URL, about another CA's certificate, or at the URL of no CA.
#[test]
fn ocsp_answers_unauthorized_for_issuers_it_does_not_serve() {
    let s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let leaf = issue(&s, &ca, "asked-elsewhere.example");
    let f = Files::new(&s, &ca, &leaf);
    let leaf_pem = f.leaf("leaf", &leaf);
    let ask = |ca_in_url: &str| {
        let url = format!("http://{}/ocsp/{ca_in_url}", s.public);
        text(&openssl(&[
            "ocsp",
            "-issuer",
            p(&f.issuer),
            "-cert",
            p(&leaf_pem),
            "-url",
            &url,
            "-no_nonce",
        ]))
    };
    // Positive control: the right URL answers good.
    assert!(ask(&ca).contains(": good"), "{}", ask(&ca));
    let root = s.config.root_ca_id.clone();
    for wrong in [root.as_str(), "ca-0000000000000000"] {
        let t = ask(wrong);
        assert!(
            t.contains("Responder Error: unauthorized (6)"),
            "{wrong}: {t}"
        );
    }
}

#[test]
fn the_ca_itself_signs_ocsp_when_configured() {
    let mut s = Server::start_new();
    s.stop();
    let path = s.dir.join("config.toml");
    let cfg = std::fs::read_to_string(&path).expect("config");
    assert!(cfg.contains("ocsp_signer = \"delegated\""), "{cfg}");
    std::fs::write(
        &path,
        cfg.replace("ocsp_signer = \"delegated\"", "ocsp_signer = \"ca\""),
    )
    .expect("write");
    s.start();
    let ca = s.config.issuing_ca_id.clone();
    let leaf = issue(&s, &ca, "ca-signed.example");
    let f = Files::new(&s, &ca, &leaf);
    let leaf_pem = f.leaf("leaf", &leaf);
    let url = format!("http://{}/ocsp/{ca}", s.public);
    let t = f.ocsp(&url, &["-cert", p(&leaf_pem), "-resp_text"], true);
    assert!(t.contains(&format!("{}: good", p(&leaf_pem))), "{t}");
    // No responder certificate travels with a CA-signed response.
    assert!(!t.contains("OCSP Responder"), "{t}");
}

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

/// Holds `count` connections to `addr` from 127.0.0.2, each an OCSP POST that
/// announces 500 bytes and sends 10: a slowloris from one address. Prints
/// `ready N` once they are open and holds them until its stdin closes.
const SLOW_CLIENTS: &str = r#"
import resource, socket, sys
host, port, count, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 64)), hard))
held = []
head = ("POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
        "Content-Length: 500\r\n\r\n0123456789").encode()
for _ in range(count):
    s = socket.socket()
    try:
        s.bind(("127.0.0.2", 0))
        s.settimeout(5)
        s.connect((host, port))
        s.sendall(head)
        held.append(s)
    except OSError:
        s.close()
print("ready", len(held), flush=True)
sys.stdin.read()
"#;

/// Security review M3: one unauthenticated client holding 5,000 slow OCSP
/// connections cannot take the revocation service offline (per-address
/// connection limit, body and header timeouts), and asking again about an
/// unknown serial costs no new signature (the answer is cached).
#[test]
fn revocation_stays_answered_while_one_client_holds_5000_slow_connections() {
    use std::io::{BufRead, BufReader};
    let s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let v = issue(&s, &ca, "probe.example");
    let f = Files::new(&s, &ca, &v);

    // An OCSP GET for a serial the store does not know, asked twice: the same
    // signed bytes come back (ECDSA signatures differ each time they are made).
    let req = f.dir.join("unknown.req");
    let out = openssl(&[
        "ocsp",
        "-issuer",
        p(&f.issuer),
        "-serial",
        "0x0badc0ffee0badc0ffee",
        "-no_nonce",
        "-reqout",
        p(&req),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let req_der = std::fs::read(&req).expect("request");
    let get_url = format!(
        "http://{}/ocsp/{ca}/{}",
        s.public,
        url_escape(&b64(&req_der))
    );
    let (st, _, first) = public(&get_url, &[]);
    let (_, _, second) = public(&get_url, &[]);
    assert_eq!(st, 200);
    assert!(first.len() > 5, "a signed answer");
    assert_eq!(first, second, "the unknown-serial answer was signed afresh");

    let host_port = s.public.rsplit_once(':').expect("host:port");
    let mut slow = KillOnDrop(
        Command::new("python3")
            .args(["-c", SLOW_CLIENTS, host_port.0, host_port.1, "5000"])
            .arg(format!("/ocsp/{ca}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    let mut line = String::new();
    BufReader::new(slow.0.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    assert!(line.starts_with("ready"), "{line}");

    // Meanwhile, from another address: CRL and OCSP answer, quickly.
    let crl = crl_url(&s, &ca);
    let mut times = Vec::new();
    for _ in 0..10 {
        for url in [&crl, &get_url] {
            let start = Instant::now();
            let (st, _, body) = public(url, &["--max-time", "5"]);
            times.push(start.elapsed());
            assert_eq!(st, 200, "{url} while {line}");
            assert!(!body.is_empty());
        }
    }
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < Duration::from_millis(100),
        "median {median:?} (all: {times:?}) while {line}"
    );
    let log = s.log();
    assert!(
        log.contains("per-address connection limit reached"),
        "{log}"
    );
}

/// Security review M3: an OCSP POST whose body never arrives in full is cut
/// off (hyper's header timeout does not cover bodies; before the fix such a
/// connection was still open after 180 s).
#[test]
fn a_trickled_ocsp_body_is_cut_off() {
    use std::io::{Read, Write};
    let s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let mut conn = std::net::TcpStream::connect(&s.public).expect("connect");
    write!(
        conn,
        "POST /ocsp/{ca} HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\nContent-Length: 500\r\n\r\n0123456789"
    )
    .expect("send");
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let start = Instant::now();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(20),
        "still open after {waited:?}"
    );
    // Answered with a malformedRequest OCSP response, or simply closed.
    let text = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || text.starts_with("HTTP/1.1 200"),
        "{text}"
    );
}

/// curl a public URL: (status, lower-cased headers, body).
fn public_with_headers(url: &str, extra: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = run(Command::new("curl")
        .args(["-sS", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(extra)
        .arg(url));
    assert!(out.status.success(), "curl {url}: {}", text(&out));
    let headers = std::fs::read_to_string(&head)
        .expect("headers")
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (status, headers, std::fs::read(&body).unwrap_or_default())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// CRLs carry an ETag and may be cached up to their nextUpdate; a conditional
/// GET with the current ETag gets 304 and no body, and a new CRL (after a
/// revocation) a new ETag. OCSP answers to GET may be cached a short,
/// configured time; answers to POST not at all.
#[test]
fn crls_and_ocsp_carry_cache_headers_and_crls_answer_conditional_gets() {
    let mut s = Server::init_with(&[], &[]);
    let conf = s.dir.join("config.toml");
    let c = std::fs::read_to_string(&conf).expect("config");
    assert!(c.contains("ocsp_max_age_secs = 300"), "{c}");
    std::fs::write(
        &conf,
        c.replace("ocsp_max_age_secs = 300", "ocsp_max_age_secs = 120"),
    )
    .expect("config");
    s.start();
    let ca = s.config.issuing_ca_id.clone();
    let url = crl_url(&s, &ca);
    // Start-up may sign a CRL twice (the builder's first pass and a first
    // request); wait until the served one stays put.
    let mut last = String::new();
    let (st, h, body) = loop {
        let (st, h, body) = public_with_headers(&url, &[]);
        let tag = header(&h, "etag").to_string();
        if tag == last {
            break (st, h, body);
        }
        last = tag;
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(st, 200);
    assert!(!body.is_empty());
    let etag = header(&h, "etag").to_string();
    assert!(
        etag.starts_with(&format!("\"{ca}-")) && etag.ends_with('"'),
        "{h:?}"
    );
    let cc = header(&h, "cache-control");
    let max_age: i64 = cc
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no max-age in {cc:?}"));
    // Up to nextUpdate: the CRL lives 24 h, so close to 86400 s now.
    assert!((86_000..=86_400).contains(&max_age), "{cc}");
    assert!(header(&h, "expires").ends_with(" GMT"), "{h:?}");
    assert!(header(&h, "last-modified").ends_with(" GMT"), "{h:?}");
    // The PEM form is another representation: another ETag.
    let (_, hp, _) = public_with_headers(&format!("{url}?format=pem"), &[]);
    assert_eq!(
        header(&hp, "etag"),
        format!("{}-pem\"", etag.trim_end_matches('"'))
    );

    // Conditional GET: 304, no body; a stale or other tag gets the CRL.
    let inm = format!("If-None-Match: {etag}");
    let (st, h2, body) = public_with_headers(&url, &["-H", &inm]);
    assert_eq!((st, body.len()), (304, 0), "{h2:?}");
    assert_eq!(header(&h2, "etag"), etag);
    let (st, _, body) = public_with_headers(&url, &["-H", "If-None-Match: \"other\""]);
    assert_eq!(st, 200);
    assert!(!body.is_empty());

    // A revocation makes a new CRL, with a new tag: the old one no longer matches.
    let leaf = issue(&s, &ca, "cached.example");
    let serial = leaf["serial"].as_str().expect("serial").to_string();
    let (st, v) = revoke(&s, &serial, "KEY_COMPROMISE");
    assert_eq!(st, 200, "{v}");
    let f = Files::new(&s, &ca, &leaf);
    fetch_crl_listing(&s, &ca, &serial, &f.dir.join("new.crl"));
    let (st, h3, body) = public_with_headers(&url, &["-H", &inm]);
    assert_eq!(st, 200, "{h3:?}");
    assert!(!body.is_empty());
    assert_ne!(header(&h3, "etag"), etag);

    // OCSP: GET cacheable for the configured 120 s; POST not cacheable.
    let leaf_pem = f.leaf("cached", &leaf);
    let req = f.dir.join("req.der");
    let out = openssl(&[
        "ocsp",
        "-issuer",
        p(&f.issuer),
        "-cert",
        p(&leaf_pem),
        "-no_nonce",
        "-reqout",
        p(&req),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let req_der = std::fs::read(&req).expect("req");
    let ocsp_url = format!("http://{}/ocsp/{ca}", s.public);
    let (st, h, _) =
        public_with_headers(&format!("{ocsp_url}/{}", url_escape(&b64(&req_der))), &[]);
    assert_eq!(st, 200);
    assert_eq!(
        header(&h, "cache-control"),
        "max-age=120, public, no-transform, must-revalidate"
    );
    let post_body = format!("@{}", p(&req));
    let (st, h, _) = public_with_headers(
        &ocsp_url,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/ocsp-request",
            "--data-binary",
            &post_body,
        ],
    );
    assert_eq!((st, header(&h, "cache-control")), (200, "no-cache"));
}

/// A CA made with `"ocsp": false` (Let's Encrypt's choice): what it issues
/// names its CRL and no OCSP responder, its responder answers `unauthorized`,
/// and its CRL serves as usual.
#[test]
fn a_ca_without_ocsp_issues_no_ocsp_url_and_its_responder_refuses() {
    let s = Server::start_new();
    let root = s.config.root_ca_id.clone();
    let (st, sub) = s.curl(
        "POST",
        "/v1/cas",
        Some(&json!({"type": "SUBORDINATE", "subject": "CN=CRL-only CA", "parent_ca_id": root, "path_len": 0, "ocsp": false})),
    );
    assert_eq!(st, 201, "{sub}");
    assert_eq!(sub["ocsp"], false, "{sub}");
    let ca = sub["id"].as_str().expect("id").to_string();
    let leaf = issue(&s, &ca, "crl-only.example");
    let f = Files::new(&s, &ca, &leaf);
    let leaf_pem = f.leaf("crl-only", &leaf);
    let t = text(&openssl(&["x509", "-in", p(&leaf_pem), "-noout", "-text"]));
    assert!(t.contains(&crl_url(&s, &ca)), "{t}");
    assert!(
        !t.contains("OCSP - URI"),
        "an OCSP URL in a CRL-only CA's certificate: {t}"
    );
    assert!(t.contains("CA Issuers - URI"), "{t}");
    // A CA with OCSP (init's issuing CA) still names its responder.
    let other = issue(&s, &s.config.issuing_ca_id, "with-ocsp.example");
    let fo = Files::new(&s, &s.config.issuing_ca_id, &other);
    let t = text(&openssl(&[
        "x509",
        "-in",
        p(&fo.leaf("with-ocsp", &other)),
        "-noout",
        "-text",
    ]));
    assert!(t.contains("OCSP - URI"), "{t}");
    // Asked anyway, the responder is not authoritative for it.
    let url = format!("http://{}/ocsp/{ca}", s.public);
    let t = text(&openssl(&[
        "ocsp",
        "-issuer",
        p(&f.issuer),
        "-cert",
        p(&leaf_pem),
        "-url",
        &url,
        "-no_nonce",
    ]));
    assert!(t.contains("Responder Error: unauthorized (6)"), "{t}");
    // Revocation works through the CRL.
    let serial = leaf["serial"].as_str().expect("serial").to_string();
    let (st, v) = revoke(&s, &serial, "KEY_COMPROMISE");
    assert_eq!(st, 200, "{v}");
    fetch_crl_listing(&s, &ca, &serial, &f.dir.join("crl-only.crl"));
}
