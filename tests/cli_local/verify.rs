//! `verify`: its explanations and exit code 3 for an invalid chain.

use super::*;

#[test]
fn verify_explains_and_uses_exit_code_3_for_invalid() {
    let t = tempfile::tempdir().unwrap();
    let wt = walkthrough_files(t.path());
    let root = p(&wt, "root.pem");
    // Bob's RSA chain is valid for his name.
    let o = ok(cli(&[
        "verify",
        "--root",
        &root,
        "--name",
        "bob.example",
        &p(&wt, "bob-rsa.pem"),
    ]));
    let text = stdout(&o);
    assert!(
        text.contains("VALID") && text.contains("✓ signature") && text.contains("[trust anchor]"),
        "{text}"
    );
    let v = json(&ok(cli(&[
        "verify",
        "--root",
        &root,
        "-o",
        "json",
        &p(&wt, "bob-rsa.pem"),
    ])));
    assert_eq!(v["valid"], true);
    assert_eq!(
        v["explanation"]["certificates"].as_array().map(Vec::len),
        Some(3)
    );
    // Leaf alone plus --intermediates works too.
    let leaf = p(t.path(), "leaf.pem");
    assert!(Command::new("openssl")
        .args(["x509", "-in", &p(&wt, "bob-rsa.pem"), "-out", &leaf])
        .status()
        .unwrap()
        .success());
    ok(cli(&[
        "verify",
        "--root",
        &root,
        "--intermediates",
        &p(&wt, "intermediate.pem"),
        &leaf,
    ]));
    // Without the intermediate there is no path.
    let o = cli(&["verify", "--root", &root, &leaf]);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    // Wrong name, wrong usage, Mallory, revoked: exit 3 with the reason.
    let o = cli(&[
        "verify",
        "--root",
        &root,
        "--name",
        "alice.example",
        &p(&wt, "bob-rsa.pem"),
    ]);
    fails(&o, 3, "peer name");
    assert!(stdout(&o).contains("NOT VALID"));
    fails(
        &cli(&[
            "verify",
            "--root",
            &root,
            "--usage",
            "client",
            &p(&wt, "bob-rsa.pem"),
        ]),
        3,
        "extended key usage",
    );
    fails(
        &cli(&[
            "verify",
            "--root",
            &root,
            &p(&wt, "mallory-self-signed.pem"),
        ]),
        3,
        "no trust anchor",
    );
    fails(
        &cli(&["verify", "--root", &root, &p(&wt, "mallory-own-ca.pem")]),
        3,
        "no trust anchor",
    );
    fails(
        &cli(&[
            "verify",
            "--root",
            &root,
            &p(&wt, "mallory-forged-issuer.pem"),
        ]),
        3,
        "signature",
    );
    let o = cli(&[
        "verify",
        "--root",
        &root,
        "--crl",
        &p(&wt, "crl.pem"),
        "-o",
        "json",
        &p(&wt, "bob-p256.pem"),
    ]);
    assert_eq!(code(&o), 3);
    let v = json(&o);
    assert_eq!(v["valid"], false);
    assert!(v["reason"].as_str().unwrap().contains("revoked"), "{v}");
    // The same CRL does not affect the RSA certificate.
    ok(cli(&[
        "verify",
        "--root",
        &root,
        "--crl",
        &p(&wt, "crl.pem"),
        &p(&wt, "bob-rsa.pem"),
    ]));
    // In a year, Bob's 90-day certificate has expired.
    fails(
        &cli(&[
            "verify",
            "--root",
            &root,
            "--at",
            "2099-01-01T00:00:00Z",
            &p(&wt, "bob-rsa.pem"),
        ]),
        3,
        "validity",
    );
    // Bad input is an error (1) or usage error (2), not a verification failure.
    fails(
        &cli(&[
            "verify",
            "--root",
            &fixture("garbage.der"),
            &p(&wt, "bob-rsa.pem"),
        ]),
        1,
        "trust anchors",
    );
    fails(
        &cli(&["verify", "--root", &root, &fixture("p256-sha256.csr")]),
        1,
        "other than certificates",
    );
    fails(
        &cli(&[
            "verify",
            "--root",
            &root,
            "--crl",
            &root,
            &p(&wt, "bob-rsa.pem"),
        ]),
        1,
        "other than CRLs",
    );
    fails(
        &cli(&[
            "verify",
            "--root",
            &root,
            "--at",
            "yesterday",
            &p(&wt, "bob-rsa.pem"),
        ]),
        2,
        "RFC 3339",
    );
    fails(&cli(&["verify", &p(&wt, "bob-rsa.pem")]), 2, "--root");
}
