//! CSRs openssl accepts, and what `inspect` shows of certificates, CSRs and CRLs.

use super::*;

#[test]
fn csr_create_is_accepted_by_openssl_and_by_inspect() {
    let t = tempfile::tempdir().unwrap();
    let key = p(t.path(), "k.pem");
    ok(cli(&[
        "key",
        "generate",
        "--algorithm",
        "rsa-2048",
        "--out",
        &key,
    ]));
    let csr = p(t.path(), "req.csr");
    let o = ok(cli(&[
        "csr",
        "create",
        "--key",
        &key,
        "--subject",
        "CN=www.example.internal,O=Example",
        "--san",
        "DNS:www.example.internal",
        "--san",
        "IP:10.1.2.3",
        "--out",
        &csr,
    ]));
    assert!(stdout(&o).contains("Wrote a CSR"));
    let v = Command::new("openssl")
        .args(["req", "-in", &csr, "-verify", "-noout", "-text"])
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&v), stderr(&v));
    assert!(v.status.success(), "openssl req -verify: {text}");
    assert!(
        text.contains("verify OK") || text.contains("Certificate request self-signature verify OK"),
        "{text}"
    );
    assert!(
        text.contains("DNS:www.example.internal") && text.contains("IP Address:10.1.2.3"),
        "{text}"
    );
    let i = json(&ok(cli(&["inspect", &csr, "-o", "json"])));
    assert_eq!(i["type"], "csr");
    assert_eq!(i["ca_checks_pass"], true);
    assert_eq!(i["public_key"]["type"], "RSA-2048");
    // Without --out the PEM goes to stdout; existing files are not overwritten.
    let o = ok(cli(&[
        "csr",
        "create",
        "--key",
        &key,
        "--subject",
        "CN=a.example",
        "--san",
        "a.example",
    ]));
    assert!(stdout(&o).starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    fails(
        &cli(&[
            "csr",
            "create",
            "--key",
            &key,
            "--subject",
            "CN=a.example",
            "--out",
            &csr,
        ]),
        1,
        "already exists",
    );
    // Bad input: each gives a clear message.
    fails(
        &cli(&[
            "csr",
            "create",
            "--key",
            &key,
            "--subject",
            "nonsense",
            "--out",
            &p(t.path(), "x"),
        ]),
        2,
        "--subject",
    );
    // Numeric attribute types used to overflow (panic, exit 101) in const-oid:
    // only known short names are accepted.
    for subject in [
        "2.4294967296=x",
        "CN=a,1.2.99999999999999999999=b",
        "2.5.4.3=a",
    ] {
        fails(
            &cli(&[
                "csr",
                "create",
                "--key",
                &key,
                "--subject",
                subject,
                "--out",
                &p(t.path(), "x"),
            ]),
            2,
            "--subject",
        );
    }
    fails(
        &cli(&[
            "csr",
            "create",
            "--key",
            &key,
            "--subject",
            "CN=a",
            "--san",
            "IP:300.1.1.1",
        ]),
        2,
        "--san",
    );
    fails(
        &cli(&[
            "csr",
            "create",
            "--key",
            &fixture("p256-sha256.csr"),
            "--subject",
            "CN=a",
        ]),
        1,
        "not a usable PKCS#8 private key",
    );
    fails(
        &cli(&[
            "csr",
            "create",
            "--key",
            &p(t.path(), "missing.pem"),
            "--subject",
            "CN=a",
        ]),
        1,
        "cannot open",
    );
}

#[test]
fn inspect_shows_certificates_csrs_and_crls() {
    let t = tempfile::tempdir().unwrap();
    let wt = walkthrough_files(t.path());
    // A certificate bundle: leaf, intermediate, root.
    let o = ok(cli(&["inspect", &p(&wt, "bob-p256.pem")]));
    let text = stdout(&o);
    for needle in [
        "Certificate",
        "Subject:    CN=bob.example",
        "Issuer:     CN=Walkthrough Issuing CA",
        "valid, expires in",
        "ECDSA P-256",
        "subjectAltName: DNS:bob.example",
        "extendedKeyUsage: serverAuth",
        "keyUsage (critical): digitalSignature",
        "basicConstraints (critical): CA:TRUE, pathlen:0",
        "SHA-256: ",
        "SHA-1:   ",
        "(self-issued)",
    ] {
        assert!(text.contains(needle), "inspect lacks {needle:?}:\n{text}");
    }
    let v = json(&ok(cli(&[
        "inspect",
        &p(&wt, "bob-p256.pem"),
        "-o",
        "json",
    ])));
    let certs = v.as_array().expect("a bundle gives an array");
    assert_eq!(certs.len(), 3);
    assert_eq!(certs[0]["subject"], "CN=bob.example,O=Bob's Bakery");
    assert_eq!(certs[0]["validity"]["status"], "valid");
    assert!(certs[0]["validity"]["seconds_left"].as_i64().unwrap() > 80 * 86_400);
    assert_eq!(certs[2]["self_issued"], true);
    // The SHA-256 fingerprint agrees with openssl's.
    let root = p(&wt, "root.pem");
    let fp = Command::new("openssl")
        .args(["x509", "-in", &root, "-noout", "-fingerprint", "-sha256"])
        .output()
        .unwrap();
    let r = json(&ok(cli(&["inspect", &root, "-o", "json"])));
    let ours = r["fingerprints"]["sha256"].as_str().unwrap().to_string();
    assert!(
        stdout(&fp).contains(&ours),
        "openssl: {} ours: {ours}",
        stdout(&fp)
    );
    // DER certificate, via openssl.
    let der = p(t.path(), "root.der");
    assert!(Command::new("openssl")
        .args(["x509", "-in", &root, "-outform", "DER", "-out", &der])
        .status()
        .unwrap()
        .success());
    let d = json(&ok(cli(&["inspect", &der, "-o", "json"])));
    assert_eq!(d["fingerprints"]["sha256"], r["fingerprints"]["sha256"]);
    // A CRL listing the revoked serial with its reason.
    let c = json(&ok(cli(&["inspect", &p(&wt, "crl.pem"), "-o", "json"])));
    assert_eq!(c["type"], "crl");
    assert_eq!(c["revoked"].as_array().map(Vec::len), Some(1));
    assert_eq!(c["revoked"][0]["reason"], "KeyCompromise");
    let ct = stdout(&ok(cli(&["inspect", &p(&wt, "crl.pem")])));
    assert!(
        ct.contains("Certificate revocation list") && ct.contains("Revoked certificates: 1"),
        "{ct}"
    );
    // CSR fixtures made by openssl: good ones pass the CA's checks, weak ones are explained.
    let g = json(&ok(cli(&[
        "inspect",
        &fixture("p256-sha256.csr"),
        "-o",
        "json",
    ])));
    assert_eq!(g["ca_checks_pass"], true);
    assert!(g["requested_extensions"][0]["value"]
        .to_string()
        .contains("DNS:bob.example.internal"));
    let g = json(&ok(cli(&[
        "inspect",
        &fixture("p256-sha256.der"),
        "-o",
        "json",
    ])));
    assert_eq!(g["type"], "csr");
    let w = json(&ok(cli(&[
        "inspect",
        &fixture("rsa1024.csr"),
        "-o",
        "json",
    ])));
    assert_eq!(w["ca_checks_pass"], false);
    assert!(w["ca_checks"].as_str().unwrap().contains("1024"), "{w}");
    let b = json(&ok(cli(&[
        "inspect",
        &fixture("bad-signature.der"),
        "-o",
        "json",
    ])));
    assert_eq!(b["ca_checks_pass"], false);
    // Bad input.
    fails(
        &cli(&["inspect", &fixture("garbage.der")]),
        1,
        "not a certificate, CSR or CRL",
    );
    fails(
        &cli(&["inspect", &fixture("truncated.der")]),
        1,
        "not a certificate, CSR or CRL",
    );
    fails(&cli(&["inspect", &fixture("bad-pem.csr")]), 1, "PEM");
    fails(&cli(&["inspect", &fixture("empty.csr")]), 1, "empty");
    fails(
        &cli(&["inspect", &p(t.path(), "nope.pem")]),
        1,
        "cannot open",
    );
    fails(
        &cli(&["inspect", &fixture("p256-sha256.key.pem")]),
        1,
        "private key",
    );
    assert!(!stdout(&cli(&["inspect", &fixture("p256-sha256.key.pem")])).contains("PRIVATE"));
    fails(&cli(&["inspect"]), 2, "required");
}
