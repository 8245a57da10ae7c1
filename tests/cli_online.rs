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

mod harness;
use harness::Server;

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

#[test]
fn an_externally_signed_ca_is_created_pending_signed_outside_and_imported() {
    let srv = Server::start_new();
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
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

    // --- an externally signed CA: create pending, get its CSR, sign it with an
    // outside root (openssl), import it, and issue from it.
    let ext = json(&ok(srv.cli(&[
        "ca",
        "create",
        "--type",
        "subordinate",
        "--subject",
        "CN=Ext Issuing,O=Test",
        "--external",
        "-o",
        "json",
    ])));
    let ext_id = ext["id"].as_str().expect("id").to_string();
    let ext_csr = p(d, "ext.csr");
    ok(srv.cli(&["ca", "csr", &ext_id, "--out", &ext_csr]));
    let (oroot_key, oroot) = (p(d, "outside-root.key"), p(d, "outside-root.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &oroot_key,
        "-out",
        &oroot,
        "-subj",
        "/CN=Outside Root",
        "-days",
        "365",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    let extfile = p(d, "ext.cnf");
    std::fs::write(&extfile, "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n").expect("ext");
    let signed = p(d, "ext.pem");
    openssl(&[
        "x509",
        "-req",
        "-in",
        &ext_csr,
        "-CA",
        &oroot,
        "-CAkey",
        &oroot_key,
        "-CAcreateserial",
        "-out",
        &signed,
        "-days",
        "300",
        "-sha256",
        "-extfile",
        &extfile,
    ]);
    let imported = json(&ok(srv.cli(&[
        "ca",
        "import",
        &ext_id,
        "--certificate",
        &signed,
        "--chain",
        &oroot,
        "-o",
        "json",
    ])));
    assert_eq!(imported["status"], "ACTIVE");
    let from_ext = p(d, "from-ext.pem");
    ok(srv.cli(&[
        "cert", "issue", "--csr", &csr2, "--ca", &ext_id, "--out", &from_ext,
    ]));
    ok(srv.cli(&["verify", "--root", &oroot, &from_ext]));
}

#[test]
fn settings_come_from_flags_environment_or_the_profile() {
    let srv = Server::start_new();
    let root = srv.dir.join("admin/root.pem").display().to_string();

    // --- settings: flags and environment instead of the profile.
    let admin = srv.dir.join("admin");
    let server_url = std::fs::read_to_string(srv.profile_path()).expect("profile");
    let url = server_url
        .lines()
        .find_map(|l| l.strip_prefix("server_url = "))
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();
    ok(srv.cli_env(
        &[
            "ca",
            "list",
            "--server",
            &url,
            "--client-cert",
            &p(&admin, "admin.pem"),
            "--client-key",
            &p(&admin, "admin.key"),
            "--root",
            &root,
        ],
        &[],
    ));
    ok(srv.cli_env(
        &["cert", "list"],
        &[
            ("CA_SERVER", &url),
            ("CA_CLIENT_CERT", &p(&admin, "admin.pem")),
            ("CA_CLIENT_KEY", &p(&admin, "admin.key")),
            ("CA_ROOT", &root),
        ],
    ));
    ok(srv.cli_env(
        &["ca", "list"],
        &[("CA_SERVER_DATA_DIR", srv.dir.to_str().unwrap_or_default())],
    ));
}

#[test]
fn the_walkthrough_runs_online_against_the_real_api() {
    let srv = Server::start_new();
    let root = srv.dir.join("admin/root.pem").display().to_string();
    let admin = srv.dir.join("admin");
    let profile = std::fs::read_to_string(srv.profile_path()).expect("profile");
    let url = profile
        .lines()
        .find_map(|l| l.strip_prefix("server_url = "))
        .unwrap_or_default()
        .trim_matches('"')
        .to_string();

    // --- the walk-through, online: the CA's part through the real API.
    let w = srv.cli(&["walkthrough", "--yes", "--online", "-o", "json"]);
    let v = json(&w);
    assert_eq!(w.status.code(), Some(0), "{v}\n{}", err(&w));
    assert_eq!(v["mode"], "online");
    assert_eq!(v["ok"], true, "{v}");
    let steps = v["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 8);
    assert_eq!(steps[0]["intermediate_signed_by_root"], true);
    for c in steps[2]["certificates"].as_array().expect("certs") {
        assert_eq!(c["tampered_csr_rejected"], true);
        assert!(
            c["tampered_csr_reason"]
                .as_str()
                .unwrap_or_default()
                .contains("refused"),
            "the server refused it: {c}"
        );
    }
    assert_eq!(steps[3]["rsa"]["chain_valid"], true);
    assert_eq!(steps[3]["p256"]["chain_valid"], true);
    assert_eq!(steps[4]["decrypted_matches"], true);
    assert_eq!(steps[5]["signature_valid"], true);
    for id in ["self_signed", "own_ca", "forged_issuer"] {
        assert_eq!(steps[6][id]["rejected"], true);
    }
    assert_eq!(steps[7]["refused_after_revocation"], true);
    let text = ok(srv.cli(&[
        "walkthrough",
        "--yes",
        "--server",
        &url,
        "--client-cert",
        &p(&admin, "admin.pem"),
        "--client-key",
        &p(&admin, "admin.key"),
        "--root",
        &root,
    ]));
    assert!(out(&text).contains("(online mode)") && out(&text).contains("Every step held"));
}

/// A responder that answers every request with the bytes of `file`.
fn fake_responder(file: &Path) -> (harness::KillOnDrop, String) {
    let port = harness::free_port();
    let script = r#"
import http.server, sys
body = open(sys.argv[2], "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.answer()
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer()
    def answer(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/ocsp-response")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
    let child = Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .arg(file)
        .spawn()
        .expect("python3");
    let guard = harness::KillOnDrop(child);
    harness::wait_for_port(port, "fake OCSP responder");
    (guard, format!("http://127.0.0.1:{port}/"))
}

/// `ca-cli ocsp query` believes only a response signed for this request: a
/// replayed answer (another nonce) and a forged one (altered after signing)
/// are refused with exit 3, naming why; the genuine answer, served the same
/// way, is accepted (the positive control).
#[test]
fn ocsp_query_refuses_a_replayed_or_forged_response() {
    let srv = Server::start_new();
    let t = tempfile::tempdir().expect("tempdir");
    let d = t.path();
    let (st, v) = srv.curl(
        "POST",
        "/v1/certificates/request",
        Some(&serde_json::json!({"names": ["relying.example"], "passphrase": "long enough passphrase"})),
    );
    assert_eq!(st, 201, "{v}");
    let cert = p(d, "leaf.pem");
    std::fs::write(&cert, v["certificate"].as_str().expect("pem")).expect("write");
    let issuer = p(d, "issuer.pem");
    let chain = v["certificate_chain"].as_str().expect("chain");
    let first = &chain[..chain.find("-----END CERTIFICATE-----").expect("end") + 26];
    std::fs::write(&issuer, first).expect("write");
    let url = format!("http://{}/ocsp/{}", srv.public, srv.config.issuing_ca_id);
    // Two genuine answers from the real responder: with a nonce, and without.
    let with_nonce = p(d, "nonce.der");
    let without = p(d, "plain.der");
    for (file, flag) in [(&with_nonce, "-nonce"), (&without, "-no_nonce")] {
        openssl(&[
            "ocsp",
            "-issuer",
            &issuer,
            "-cert",
            &cert,
            "-url",
            &url,
            flag,
            "-respout",
            file,
            "-noverify",
        ]);
    }
    let query = |responder: &str, nonce: bool| {
        let mut args = vec![
            "ocsp", "query", "--cert", &cert, "--issuer", &issuer, "--url", responder,
        ];
        if !nonce {
            args.push("--no-nonce");
        }
        srv.cli(&args)
    };
    // Positive control: the genuine no-nonce answer, served by the fake.
    let (_control, fake) = fake_responder(Path::new(&without));
    let o = ok(query(&fake, false));
    assert!(out(&o).contains(": good"), "{}", out(&o));
    // Replayed: an answer to another request's nonce.
    let (_replay, fake) = fake_responder(Path::new(&with_nonce));
    fails(&query(&fake, true), 3, "does not echo our nonce");
    // Forged: producedAt changed by a second after signing.
    let mut forged = std::fs::read(&without).expect("read");
    let at = forged
        .windows(2)
        .position(|w| w == [0x18, 0x0f])
        .expect("a GeneralizedTime");
    let second = at + 2 + 13; // YYYYMMDDHHMMS[S]Z: the last digit of the seconds
    forged[second] = if forged[second] == b'0' { b'1' } else { b'0' };
    let forged_file = d.join("forged.der");
    std::fs::write(&forged_file, &forged).expect("write");
    let (_forged, fake) = fake_responder(&forged_file);
    fails(&query(&fake, false), 3, "signature does not verify");
}

/// `health` (exit 3 naming the failing check), `whoami`, `alias get` and name
/// constraints on `ca create`, checked against the server and openssl.
#[test]
fn health_whoami_alias_get_and_name_constraints() {
    let mut srv = Server::start_new();
    let h = json(&ok(srv.cli(&["health", "-o", "json"])));
    assert_eq!(h["status"], "ok", "{h}");
    for check in ["store_writable", "ca_keys", "crls_fresh", "ca_expiry"] {
        assert_eq!(h["checks"][check]["ok"], true, "{check}: {h}");
    }
    let t = out(&ok(srv.cli(&["health"])));
    assert!(t.contains("store_writable") && t.contains("ok"), "{t}");

    let t = out(&ok(srv.cli(&["whoami"])));
    assert!(
        t.contains("subject: CN=admin,O=ca-server administrators"),
        "{t}"
    );
    let t = out(&ok(srv.cli(&["alias", "get", "issuing"])));
    assert_eq!(t.trim(), format!("issuing -> {}", srv.config.issuing_ca_id));
    fails(&srv.cli(&["alias", "get", "nothing-here"]), 1, "404");

    let ca = json(&ok(srv.cli(&[
        "ca",
        "create",
        "--type",
        "root",
        "--subject",
        "CN=Constrained Root",
        "--permit-dns",
        "example.com",
        "--exclude-dns",
        "bad.example.com",
        "--permit-ip",
        "10.0.0.0/8",
        "--ocsp",
        "false",
        "-o",
        "json",
    ])));
    let id = ca["id"].as_str().expect("id");
    assert_eq!(ca["ocsp"], false, "{ca}");
    let pem = srv.tmp.path().join("constrained.pem");
    let out_pem = ok(srv.cli(&["ca", "describe", id, "-o", "json"]));
    assert_eq!(json(&out_pem)["id"], id);
    let got = harness::run(std::process::Command::new("curl").args([
        "-sS",
        "-o",
        &pem.display().to_string(),
        &format!("http://{}/ca/{id}.pem", srv.public),
    ]));
    assert!(got.status.success());
    let t = harness::text(&harness::run(std::process::Command::new("openssl").args([
        "x509",
        "-in",
        &pem.display().to_string(),
        "-noout",
        "-ext",
        "nameConstraints",
    ])));
    assert!(
        t.contains("Permitted:") && t.contains("DNS:example.com"),
        "{t}"
    );
    assert!(t.contains("IP:10.0.0.0/255.0.0.0"), "{t}");
    assert!(
        t.contains("Excluded:") && t.contains("DNS:bad.example.com"),
        "{t}"
    );

    // A root inside the expiry horizon (10 years, within 4000 days) fails
    // health: exit 3, naming the check.
    srv.stop();
    let conf = srv.dir.join("config.toml");
    let c = std::fs::read_to_string(&conf).expect("config");
    assert!(c.contains("ca_expiry_horizon_days = 30"), "{c}");
    std::fs::write(
        &conf,
        c.replace(
            "ca_expiry_horizon_days = 30",
            "ca_expiry_horizon_days = 4000",
        ),
    )
    .expect("config");
    srv.start();
    let o = srv.cli(&["health"]);
    assert_eq!(o.status.code(), Some(3), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("ca_expiry       FAIL"), "{}", out(&o));
    assert!(
        err(&o).contains("failing health checks: ca_expiry"),
        "{}",
        err(&o)
    );
}
