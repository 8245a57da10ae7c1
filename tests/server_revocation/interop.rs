//! CRLs and OCSP checked by openssl and curl; a revoked sub-CA's certificates.

use std::path::Path;

use crate::harness::relying::*;
use crate::harness::{code, Server};
use serde_json::json;

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
