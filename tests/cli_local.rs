//! End-to-end tests of `ca-cli`'s local tools and offline walk-through: they run
//! the real binary and check files, exit codes, text and JSON output, and use
//! `openssl` as an independent judge where one helps.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ca-cli");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> String {
    repo().join("fixtures/csr").join(name).display().to_string()
}

fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("run ca-cli")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

fn ok(o: Output) -> Output {
    assert_eq!(
        code(&o),
        0,
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// A failing run: the exit code, and a readable message (no panic, no backtrace).
fn fails(o: &Output, expected_code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(
        code(o),
        expected_code,
        "stdout: {}\nstderr: {err}",
        stdout(o)
    );
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "stderr lacks {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Run the offline walk-through once, keeping its files as fixtures
/// (a root, Bob's chains, Mallory's certificates, a CRL revoking Bob's P-256 one).
fn walkthrough_files(dir: &Path) -> PathBuf {
    let keep = dir.join("wt");
    ok(cli(&[
        "walkthrough",
        "--yes",
        "--keep",
        keep.to_str().unwrap_or_default(),
    ]));
    keep
}

#[test]
fn key_generate_writes_private_keys_0600_and_never_overwrites() {
    let t = tempfile::tempdir().unwrap();
    for alg in ["ec-p256", "ec-p384", "rsa-2048", "ed25519"] {
        let key = p(t.path(), &format!("{alg}.key"));
        let o = ok(cli(&[
            "key",
            "generate",
            "--algorithm",
            alg,
            "--out",
            &key,
            "-o",
            "json",
        ]));
        let v = json(&o);
        assert_eq!(v["algorithm"], alg);
        assert_eq!(v["public_key_sha256"].as_str().map(str::len), Some(64));
        // The private key goes to the file only.
        assert!(!stdout(&o).contains("PRIVATE KEY"));
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{alg} key mode");
        let pem = std::fs::read_to_string(&key).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        // openssl reads it as a valid PKCS#8 key.
        let check = Command::new("openssl")
            .args(["pkey", "-in", &key, "-noout"])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "openssl pkey {alg}: {}",
            stderr(&check)
        );
    }
    let key = p(t.path(), "ec-p256.key");
    let before = std::fs::read(&key).unwrap();
    fails(
        &cli(&["key", "generate", "--out", &key]),
        1,
        "already exists",
    );
    assert_eq!(std::fs::read(&key).unwrap(), before, "file untouched");
    // --force replaces it, still 0600, with a public key beside it.
    let public = p(t.path(), "ec-p256.pub");
    ok(cli(&[
        "key",
        "generate",
        "--out",
        &key,
        "--public-out",
        &public,
        "--force",
    ]));
    assert_ne!(std::fs::read(&key).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&public)
        .unwrap()
        .contains("BEGIN PUBLIC KEY"));
    // Bad input.
    fails(
        &cli(&["key", "generate", "--algorithm", "rsa-1024", "--out", &key]),
        2,
        "invalid value",
    );
    fails(
        &cli(&["key", "generate", "--out", "/nonexistent/dir/k.pem"]),
        1,
        "cannot create",
    );
    fails(&cli(&["key", "generate"]), 2, "--out");
}

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

#[test]
fn walkthrough_offline_establishes_every_fact() {
    let t = tempfile::tempdir().unwrap();
    let keep = t.path().join("kept");
    let o = ok(cli(&[
        "walkthrough",
        "--yes",
        "--output",
        "json",
        "--keep",
        keep.to_str().unwrap_or_default(),
    ]));
    let v = json(&o);
    assert_eq!(v["mode"], "offline");
    assert_eq!(v["ok"], true);
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 8);
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i + 1);
        assert_eq!(s["ok"], true, "step {}: {s}", i + 1);
    }
    // 1: root -> intermediate, Alice trusts the root only.
    assert_eq!(steps[0]["intermediate_signed_by_root"], true);
    assert_eq!(steps[0]["alice_trusts"].as_array().map(Vec::len), Some(1));
    // 2: an RSA and a P-256 key, no private key sent anywhere.
    let keys = steps[1]["bob_keys"].as_array().unwrap();
    assert_eq!(keys[0]["key"], "RSA-2048");
    assert_eq!(keys[1]["key"], "ECDSA P-256");
    // 3: proof of possession checked, a swapped key refused (for the failed
    // CSR signature), certificates issued.
    for c in steps[2]["certificates"].as_array().unwrap() {
        assert_eq!(c["proof_of_possession_verified"], true);
        assert_eq!(c["tampered_csr_rejected"], true);
        let reason = c["tampered_csr_reason"].as_str().unwrap_or_default();
        assert!(reason.contains("signature"), "{reason}");
        assert_eq!(c["subject"], "CN=bob.example,O=Bob's Bakery");
        assert_eq!(c["serial"].as_str().map(str::len), Some(32));
    }
    // 4: Alice's validation passes for both.
    for id in ["rsa", "p256"] {
        assert_eq!(steps[3][id]["chain_valid"], true);
        assert_eq!(steps[3][id]["path"].as_array().map(Vec::len), Some(3));
    }
    // 5: decryption gives back the plaintext; another key cannot.
    assert_eq!(steps[4]["decrypted_matches"], true);
    assert_eq!(steps[4]["rsa"]["scheme"], "RSA-OAEP-SHA256 + AES-256-GCM");
    assert_eq!(
        steps[4]["p256"]["scheme"],
        "ECDH-P256 + HKDF-SHA256 + AES-256-GCM"
    );
    for id in ["rsa", "p256"] {
        assert_eq!(steps[4][id]["decrypted_matches"], true);
        assert_eq!(steps[4][id]["other_key_cannot_decrypt"], true);
    }
    // 6: the signature verifies, an altered reply does not.
    for id in ["rsa", "p256"] {
        assert_eq!(steps[5][id]["signature_valid"], true);
        assert_eq!(steps[5][id]["altered_reply_rejected"], true);
    }
    // 7: each of Mallory's substitutions is caught, with the validator's reason.
    for id in ["self_signed", "own_ca", "forged_issuer"] {
        assert_eq!(steps[6][id]["rejected"], true, "{id}");
        assert!(!steps[6][id]["reason"].as_str().unwrap().is_empty());
    }
    assert!(steps[6]["forged_issuer"]["reason"]
        .as_str()
        .unwrap()
        .contains("signature"));
    // 8: valid before, refused after revocation, because of the CRL.
    assert_eq!(steps[7]["valid_before_revocation"], true);
    assert_eq!(steps[7]["crl_lists_serial"], true);
    assert_eq!(steps[7]["refused_after_revocation"], true);
    assert!(steps[7]["reason"].as_str().unwrap().contains("revoked"));
    // What the kept files show to openssl, not what the tool says of itself.
    let f = |name: &str| keep.join(name).to_str().unwrap_or_default().to_string();
    for id in ["rsa", "p256"] {
        // Bob's CSR carries a valid proof of possession.
        let o = Command::new("openssl")
            .args([
                "req",
                "-in",
                &f(&format!("bob-{id}.csr")),
                "-verify",
                "-noout",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{id} CSR: {}", stderr(&o));
        // Bob's certificate chains to the root Alice trusts.
        let o = Command::new("openssl")
            .args(["verify", "-CAfile", &f("root.pem"), "-untrusted"])
            .args([&f(&format!("bob-{id}.pem")), &f(&format!("bob-{id}.pem"))])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{id} chain: {}{}",
            stdout(&o),
            stderr(&o)
        );
        // The certificate certifies the key Bob kept, and only Bob can read it.
        let cert_key = Command::new("openssl")
            .args([
                "x509",
                "-in",
                &f(&format!("bob-{id}.pem")),
                "-noout",
                "-pubkey",
            ])
            .output()
            .unwrap();
        let own_key = Command::new("openssl")
            .args(["pkey", "-in", &f(&format!("bob-{id}.key")), "-pubout"])
            .output()
            .unwrap();
        assert!(own_key.status.success(), "{}", stderr(&own_key));
        assert_eq!(stdout(&cert_key), stdout(&own_key), "{id}");
        let mode = std::fs::metadata(f(&format!("bob-{id}.key")))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{id} key mode");
    }
}

#[test]
fn walkthrough_text_tells_the_story_and_rejects_bad_input() {
    let t = tempfile::tempdir().unwrap();
    let long = "x".repeat(100_000);
    let o = ok(cli(&["walkthrough", "--yes", "--message", &long]));
    let text = stdout(&o);
    for n in 1..=8 {
        assert!(text.contains(&format!("Step {n}.")), "step {n} missing");
    }
    assert!(text.contains("Why it matters"));
    assert!(text.contains("Every step held"));
    // Not a terminal: no colour codes, no pause.
    assert!(!text.contains('\x1b'));
    // Bad input.
    fails(
        &cli(&["walkthrough", "--yes", "--message", ""]),
        2,
        "message",
    );
    let keep = p(t.path(), "k");
    std::fs::create_dir(&keep).unwrap();
    fails(
        &cli(&["walkthrough", "--yes", "--keep", &keep]),
        1,
        "must not exist",
    );
    fails(&cli(&["walkthrough", "--bogus"]), 2, "unexpected argument");
}

#[test]
fn completions_and_usage_errors() {
    let o = ok(cli(&["completions", "bash"]));
    assert!(stdout(&o).contains("ca-cli"));
    ok(cli(&["completions", "zsh"]));
    fails(&cli(&["completions", "tcsh"]), 2, "invalid value");
    fails(&cli(&["frobnicate"]), 2, "unrecognized subcommand");
    fails(&cli(&[]), 2, "Usage");
    let h = ok(cli(&["--help"]));
    assert!(stdout(&h).contains("Exit codes"));
    fails(&cli(&["inspect", "-o", "yaml", "x"]), 2, "invalid value");
    // Checks made after clap are usage errors too (exit 2), and come before
    // any file is read.
    fails(
        &cli(&[
            "verify",
            "--root",
            "/nonexistent/root.pem",
            "--name",
            " ",
            "/nonexistent/leaf.pem",
        ]),
        2,
        "--name is empty",
    );
}

#[test]
fn cert_request_refuses_one_path_for_key_and_certificate() {
    let t = tempfile::tempdir().unwrap();
    let pass = p(t.path(), "pass");
    std::fs::write(&pass, "correct horse battery\n").unwrap();
    let same = p(t.path(), "svc.pem");
    let sub = t.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    // Written differently, one file: the check compares canonical directories.
    let other_spelling = sub.join("..").join("svc.pem").display().to_string();
    for out in [same.as_str(), other_spelling.as_str()] {
        // Refused before any connection: the server address is unreachable and
        // no profile or client certificate exists.
        fails(
            &cli(&[
                "cert",
                "--server",
                "https://127.0.0.1:1",
                "request",
                "--name",
                "svc.example.internal",
                "--passphrase-file",
                &pass,
                "--key-out",
                &same,
                "--out",
                out,
            ]),
            2,
            "same file",
        );
    }
    assert!(!t.path().join("svc.pem").exists());
}

/// A reader that goes away (`ca-cli inspect ... | head -1`) ends the output
/// quietly with exit 0, as with other Unix tools, rather than a panic (101).
#[test]
fn closed_stdout_is_not_a_panic() {
    let csr = fixture("p256-sha256.csr");
    // More output than a pipe buffers, so a write fails even if the child
    // starts writing before the read end is closed.
    let files = vec![csr.as_str(); 400];
    for format in ["text", "json"] {
        let mut child = Command::new(BIN)
            .arg("inspect")
            .args(["-o", format])
            .args(&files)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{format}: {err}");
        assert_eq!(code(&o), 0, "{format}: {err}");
    }
}
