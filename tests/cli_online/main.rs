//! End-to-end tests of `ca-cli`'s online commands and online walk-through
//! against the real `ca-server` binary on 127.0.0.1 (free ports, temp data dir).
//!
//! `cargo test --workspace` builds every binary before the tests run, so
//! ca-server sits beside ca-cli in the target directory; when this test is run
//! alone (`cargo test -p ca-cli`), it builds ca-server first.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

#[path = "../harness/mod.rs"]
mod harness;
use harness::Server;

mod external_ca;
mod ocsp;
mod settings;
mod status;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        out(&o),
        err(&o)
    );
    o
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", out(o), err(o)))
}

fn fails(o: &Output, code: i32, needle: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        out(o),
        err(o)
    );
    let e = err(o);
    assert!(
        e.to_lowercase().contains(&needle.to_lowercase()),
        "stderr lacks {needle:?}: {e}"
    );
    assert!(!e.contains("panicked"), "{e}");
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

fn openssl(args: &[&str]) -> Output {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "openssl {args:?}: {}", err(&o));
    o
}

#[test]
fn certificates_from_issue_to_revocation_and_bad_input() {
    let srv = Server::start_new();
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    let root = srv.dir.join("admin/root.pem").display().to_string();

    // --- ca: the first command after init just works, from the profile.
    let cas = json(&ok(srv.cli(&["ca", "list", "-o", "json"])));
    let list = cas["certificate_authorities"].as_array().expect("list");
    assert_eq!(list.len(), 3, "{cas}");
    assert!(out(&ok(srv.cli(&["ca", "list"]))).contains("CN=Private Issuing CA 1"));
    let r = json(&ok(srv.cli(&[
        "ca",
        "create",
        "--type",
        "root",
        "--subject",
        "CN=Ops Root,O=Test",
        "--key-algorithm",
        "ec-p384",
        "--path-len",
        "1",
        "-o",
        "json",
    ])));
    let root_id = r["id"].as_str().expect("id").to_string();
    assert_eq!(r["type"], "ROOT");
    let s = json(&ok(srv.cli(&[
        "ca",
        "create",
        "--type",
        "subordinate",
        "--subject",
        "CN=Ops Issuing,O=Test",
        "--parent",
        &root_id,
        "--path-len",
        "0",
        "-o",
        "json",
    ])));
    let sub_id = s["id"].as_str().expect("id").to_string();
    assert_eq!(
        json(&ok(srv.cli(&["ca", "describe", &sub_id, "-o", "json"])))["parent_ca_id"],
        root_id.as_str()
    );
    assert!(out(&ok(srv.cli(&["ca", "describe", &sub_id]))).contains("CN=Ops Issuing"));
    let ca_bundle = p(d, "ops-ca.pem");
    ok(srv.cli(&["ca", "certificate", &sub_id, "--out", &ca_bundle]));
    assert!(
        std::fs::read_to_string(&ca_bundle)
            .expect("bundle")
            .matches("BEGIN CERTIFICATE")
            .count()
            >= 2
    );

    // --- cert issue from a local key and CSR; the key never leaves.
    let key = p(d, "web.key");
    let csr = p(d, "web.csr");
    let cert = p(d, "web.pem");
    ok(srv.cli(&["key", "generate", "--algorithm", "ec-p256", "--out", &key]));
    ok(srv.cli(&[
        "csr",
        "create",
        "--key",
        &key,
        "--subject",
        "CN=web.example.internal",
        "--san",
        "DNS:web.example.internal",
        "--out",
        &csr,
    ]));
    let issued =
        json(&ok(srv.cli(&[
            "cert", "issue", "--csr", &csr, "--out", &cert, "-o", "json",
        ])));
    let serial = issued["serial"].as_str().expect("serial").to_string();
    assert_eq!(issued["status"], "ISSUED");
    // The profile's default CA (the issuing CA init made) issued it; it verifies to the root.
    ok(srv.cli(&[
        "verify",
        "--root",
        &root,
        "--name",
        "web.example.internal",
        &cert,
    ]));
    fails(
        &srv.cli(&["cert", "issue", "--csr", &csr, "--out", &cert]),
        1,
        "already exists",
    );
    // From the new CA, as a client certificate.
    let c2 = json(&ok(srv.cli(&[
        "cert",
        "issue",
        "--csr",
        &csr,
        "--ca",
        &sub_id,
        "--cert-profile",
        "tls-client",
        "-o",
        "json",
    ])));
    assert_eq!(c2["ca_id"], sub_id.as_str());
    assert_eq!(c2["profile"], "tls-client");

    // --- cert get / list / renew.
    let got = json(&ok(srv.cli(&["cert", "get", &serial, "-o", "json"])));
    assert_eq!(got["serial"], serial.as_str());
    assert!(got["certificate"]
        .as_str()
        .unwrap_or_default()
        .contains("BEGIN CERTIFICATE"));
    assert!(out(&ok(srv.cli(&["cert", "get", &serial]))).contains("web.example.internal"));
    let listed = json(&ok(
        srv.cli(&["cert", "list", "--status", "issued", "-o", "json"])
    ));
    assert!(listed["certificates"]
        .as_array()
        .expect("certs")
        .iter()
        .any(|c| c["serial"] == serial.as_str()));
    let page = json(&ok(srv.cli(&["cert", "list", "--limit", "1", "-o", "json"])));
    assert_eq!(page["certificates"].as_array().map(Vec::len), Some(1));
    let renewed = json(&ok(srv.cli(&["cert", "renew", &serial, "-o", "json"])));
    assert_ne!(renewed["serial"], serial.as_str());
    assert_eq!(renewed["renewed_from"], serial.as_str());

    // --- cert request: the server makes the key and returns it encrypted.
    let pass = p(d, "pass.txt");
    std::fs::write(&pass, "correct horse battery\n").expect("pass");
    let rkey = p(d, "svc.key");
    let rcert = p(d, "svc.pem");
    let req = json(&ok(srv.cli(&[
        "cert",
        "request",
        "--name",
        "svc.example.internal",
        "--passphrase-file",
        &pass,
        "--key-out",
        &rkey,
        "--out",
        &rcert,
        "-o",
        "json",
    ])));
    assert!(!out(&ok(srv.cli(&[
        "cert",
        "get",
        req["serial"].as_str().unwrap_or_default()
    ])))
    .contains("PRIVATE KEY"));
    assert!(
        !req["private_key"]
            .as_str()
            .unwrap_or_default()
            .contains("BEGIN"),
        "the key is not printed"
    );
    assert_eq!(
        std::fs::metadata(&rkey).expect("key").permissions().mode() & 0o777,
        0o600
    );
    openssl(&[
        "pkey",
        "-in",
        &rkey,
        "-passin",
        &format!("file:{pass}"),
        "-noout",
    ]);
    ok(srv.cli(&[
        "verify",
        "--root",
        &root,
        "--name",
        "svc.example.internal",
        &rcert,
    ]));
    let short = p(d, "short.txt");
    std::fs::write(&short, "abc").expect("short");
    fails(
        &srv.cli(&[
            "cert",
            "request",
            "--name",
            "x.example",
            "--passphrase-file",
            &short,
            "--key-out",
            &p(d, "x.key"),
            "--out",
            &p(d, "x.pem"),
        ]),
        1,
        "shorter than 8",
    );
    // The key file cannot be written after issuance: the encrypted key, which
    // exists nowhere else, goes to stdout instead of being lost; exit 1.
    let lost = srv.cli(&[
        "cert",
        "request",
        "--name",
        "y.example.internal",
        "--passphrase-file",
        &pass,
        "--key-out",
        &p(d, "no-such-dir/y.key"),
        "--out",
        &p(d, "y.pem"),
    ]);
    fails(&lost, 1, "could not be written");
    assert!(err(&lost).contains("warning"), "{}", err(&lost));
    assert!(
        out(&lost).contains("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{}",
        out(&lost)
    );
    assert!(
        Path::new(&p(d, "y.pem")).exists(),
        "the certificate is saved"
    );
    // One path for both is refused before asking the server.
    fails(
        &srv.cli(&[
            "cert",
            "request",
            "--name",
            "z.example.internal",
            "--passphrase-file",
            &pass,
            "--key-out",
            &p(d, "z.pem"),
            "--out",
            &p(d, "z.pem"),
        ]),
        2,
        "same file",
    );

    // --- revoke, then the listing and (when the server publishes CRLs) the CRL say so.
    let rv = json(&ok(srv.cli(&[
        "cert",
        "revoke",
        &serial,
        "--reason",
        "keyCompromise",
        "-o",
        "json",
    ])));
    assert_eq!(rv["status"], "REVOKED");
    let revoked = json(&ok(
        srv.cli(&["cert", "list", "--status", "revoked", "-o", "json"])
    ));
    assert!(revoked["certificates"]
        .as_array()
        .expect("certs")
        .iter()
        .any(|c| c["serial"] == serial.as_str()));
    // Revoking again with the same reason is idempotent; another reason is
    // a conflict (exit 1, the server's Conflict).
    ok(srv.cli(&["cert", "revoke", &serial, "--reason", "keyCompromise"]));
    fails(
        &srv.cli(&["cert", "revoke", &serial, "--reason", "superseded"]),
        1,
        "Conflict",
    );
    // OCSP, as a relying party: URL and issuer from the certificate, the
    // signed answer verified; with a nonce (echoed) and without.
    let q = json(&ok(
        srv.cli(&["ocsp", "query", "--cert", &cert, "-o", "json"])
    ));
    assert_eq!(q["status"], "revoked", "{q}");
    assert_eq!(q["reason"], "keyCompromise", "{q}");
    assert_eq!(q["signature_verified"], true, "{q}");
    assert_eq!(q["nonce_echoed"], true, "{q}");
    assert_eq!(q["serial"], serial.as_str(), "{q}");
    let q = ok(srv.cli(&["ocsp", "query", "--cert", &cert, "--no-nonce"]));
    assert!(out(&q).contains(": revoked"), "{}", out(&q));
    fails(
        &srv.cli(&[
            "ocsp",
            "query",
            "--cert",
            &cert,
            "--url",
            "http://127.0.0.1:1/ocsp",
        ]),
        1,
        "cannot connect",
    );
    let crl_file = p(d, "web.crl");
    // The CRL is rebuilt in the background shortly after a revocation; until
    // then the previous one is served.
    let mut fetched = srv.cli(&[
        "crl", "fetch", "--cert", &cert, "--out", &crl_file, "-o", "json",
    ]);
    for _ in 0..50 {
        if !fetched.status.success()
            || json(&fetched)["revoked"]
                .to_string()
                .contains(serial.as_str())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        fetched = srv.cli(&[
            "crl", "fetch", "--cert", &cert, "--out", &crl_file, "--force", "-o", "json",
        ]);
    }
    // The server publishes CRLs: the fetch must succeed and list the serial.
    let v = json(&ok(fetched));
    assert!(
        v["revoked"]
            .as_array()
            .expect("revoked")
            .iter()
            .any(|e| e["serial"] == serial.as_str()),
        "{v}"
    );
    ok(srv.cli(&["crl", "inspect", &crl_file]));
    fails(
        &srv.cli(&["verify", "--root", &root, "--crl", &crl_file, &cert]),
        3,
        "revoked",
    );

    // --- enable / disable.
    let dis = json(&ok(srv.cli(&["ca", "disable", &sub_id, "-o", "json"])));
    assert_eq!(dis["status"], "DISABLED");
    fails(
        &srv.cli(&["cert", "issue", "--csr", &csr, "--ca", &sub_id]),
        1,
        "refused",
    );
    assert_eq!(
        json(&ok(srv.cli(&["ca", "enable", &sub_id, "-o", "json"])))["status"],
        "ACTIVE"
    );
    // web.key was revoked for keyCompromise above: never certified again.
    fails(
        &srv.cli(&["cert", "issue", "--csr", &csr, "--ca", &sub_id]),
        1,
        "BlockedKey",
    );
    let key2 = p(d, "web2.key");
    let csr2 = p(d, "web2.csr");
    ok(srv.cli(&["key", "generate", "--algorithm", "ec-p256", "--out", &key2]));
    ok(srv.cli(&[
        "csr",
        "create",
        "--key",
        &key2,
        "--subject",
        "CN=web.example.internal",
        "--san",
        "DNS:web.example.internal",
        "--out",
        &csr2,
    ]));
    ok(srv.cli(&["cert", "issue", "--csr", &csr2, "--ca", &sub_id]));

    // --- bad input and bad settings: clear messages, non-zero exits.
    // A root that is not ours, and a certificate to try to import where no
    // import is pending.
    let oroot = p(d, "other-root.pem");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &p(d, "other-root.key"),
        "-out",
        &oroot,
        "-subj",
        "/CN=Other Root",
        "-days",
        "30",
    ]);
    let signed = cert.clone();
    fails(&srv.cli_env(&["ca", "list"], &[]), 2, "no server URL");
    fails(
        &srv.cli(&["ca", "list", "--server", "https://127.0.0.1:1"]),
        1,
        "cannot connect",
    );
    fails(
        &srv.cli(&["ca", "list", "--server", "ftp://x"]),
        1,
        "https://",
    );
    fails(
        &srv.cli(&["ca", "list", "--root", &oroot]),
        1,
        "TLS handshake",
    );
    fails(
        &srv.cli(&["ca", "list", "--client-cert", &cert, "--client-key", &key]),
        1,
        "UnsupportedCertificate",
    );
    fails(
        &srv.cli(&["ca", "list", "--client-key", &csr]),
        1,
        "not a PEM private key",
    );
    fails(
        &srv.cli(&["ca", "describe", "ca-0000000000000000"]),
        1,
        "404",
    );
    fails(
        &srv.cli(&["ca", "create", "--type", "root", "--subject", "bogus"]),
        2,
        "--subject",
    );
    fails(
        &srv.cli(&[
            "ca",
            "create",
            "--type",
            "intermediate",
            "--subject",
            "CN=x",
        ]),
        2,
        "invalid value",
    );
    fails(&srv.cli(&["ca", "csr", &sub_id]), 1, "refused");
    fails(
        &srv.cli(&[
            "ca",
            "import",
            &sub_id,
            "--certificate",
            &signed,
            "--chain",
            &oroot,
        ]),
        1,
        "refused",
    );
    fails(
        &srv.cli(&["cert", "issue", "--csr", &key]),
        1,
        "CERTIFICATE REQUEST",
    );
    fails(
        &srv.cli(&["cert", "issue", "--csr", &p(d, "missing.csr")]),
        1,
        "cannot open",
    );
    fails(&srv.cli(&["cert", "get", "00ff00ff00ff00ff"]), 1, "404");
    fails(&srv.cli(&["cert", "get", "not/a serial"]), 1, "refused");
    fails(
        &srv.cli(&["cert", "renew", "00ff00ff00ff00ff"]),
        1,
        "refused",
    );
    fails(
        &srv.cli(&[
            "cert",
            "revoke",
            renewed["serial"].as_str().unwrap_or_default(),
            "--reason",
            "because",
        ]),
        1,
        "reason",
    );
    fails(&srv.cli(&["cert", "list", "--limit", "0"]), 1, "limit");
    fails(
        &srv.cli(&["cert", "list", "--expiring-before", "soon"]),
        2,
        "RFC 3339",
    );
    fails(
        &srv.cli(&["crl", "fetch", "--cert", &root]),
        1,
        "distribution point",
    );
    fails(&srv.cli(&["crl", "fetch"]), 2, "--url");
    fails(
        &srv.cli(&["crl", "fetch", "--url", "http://127.0.0.1:1/x.crl"]),
        1,
        "cannot connect",
    );
}
