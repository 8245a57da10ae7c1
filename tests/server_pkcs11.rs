//! CA keys in a PKCS#11 token, through the real `ca-server` and a SoftHSM2
//! token made for each test in its own directory (`SOFTHSM2_CONF`): keys made
//! inside the token sign certificates, CRLs and OCSP responses that openssl
//! accepts; `pkcs11-tool` sees them sensitive and never extractable; the
//! store holds only references; a restart finds them again; an existing key
//! is adopted by label; a wrong PIN, a missing token or module stop the
//! server at start with the documented message; a token that goes away while
//! serving gives 503 `Unavailable`, and the server recovers when it is back.

mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use harness::relying::*;
use harness::{code, openssl_csr, run, Server};
use serde_json::{json, Value};

const PIN: &str = "31415926";

/// SoftHSM2's module, where Debian's package puts it.
fn module() -> PathBuf {
    for candidate in [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("libsofthsm2.so not found: install softhsm2 (tests/install-test-tools.sh does)");
}

/// A SoftHSM2 token in a directory of its own.
struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    fn new(label: &str) -> SoftHsm {
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("tokens");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("conf");
        let hsm = SoftHsm { dir, conf };
        let out = hsm.util(&[
            "--init-token",
            "--free",
            "--label",
            label,
            "--pin",
            PIN,
            "--so-pin",
            "27182818",
        ]);
        assert!(out.status.success(), "softhsm2-util: {}", text(&out));
        std::fs::write(hsm.pin_file(), format!("{PIN}\n")).expect("pin file");
        hsm
    }

    fn util(&self, args: &[&str]) -> Output {
        run(Command::new("softhsm2-util")
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf))
    }

    fn env(&self) -> (&'static str, String) {
        ("SOFTHSM2_CONF", self.conf.display().to_string())
    }

    fn pin_file(&self) -> PathBuf {
        self.dir.path().join("pin")
    }

    fn tokens(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// `pkcs11-tool` on the token, logged in.
    fn tool(&self, args: &[&str]) -> String {
        let out = run(Command::new("pkcs11-tool")
            .arg("--module")
            .arg(module())
            .args(["--token-label", "ca", "--login", "--pin", PIN])
            .args(args)
            .env("SOFTHSM2_CONF", &self.conf));
        assert!(out.status.success(), "pkcs11-tool {args:?}: {}", text(&out));
        text(&out)
    }
}

/// `ca-server init` with the CA keys in `hsm`'s token, then started.
fn server_with_token(hsm: &SoftHsm) -> Server {
    let mut s = init_with_token(hsm);
    s.start();
    s
}

/// `ca-server init` with the CA keys in `hsm`'s token, not started.
fn init_with_token(hsm: &SoftHsm) -> Server {
    let (k, v) = hsm.env();
    let module = module();
    let pin_file = hsm.pin_file();
    Server::init_with(
        &[
            "--pkcs11-module",
            p(&module),
            "--pkcs11-token-label",
            "ca",
            "--pkcs11-pin-file",
            p(&pin_file),
        ],
        &[(k, &v)],
    )
}

/// The private-key objects pkcs11-tool lists, as (label, access line).
fn private_keys(listing: &str) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    for block in listing.split("Private Key Object").skip(1) {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_default()
        };
        keys.push((field("label:"), field("Access:")));
    }
    keys
}

fn create_ca(s: &Server, body: Value) -> (u16, Value) {
    s.curl("POST", "/v1/cas", Some(&body))
}

/// Issue from `ca` for an openssl CSR and return (leaf PEM path, Files).
fn issue_openssl(s: &Server, ca: &str, name: &str) -> (PathBuf, Files, Value) {
    let (_, csr) = openssl_csr(s.tmp.path(), name, &format!("DNS:{name}"));
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": csr, "ca_id": ca})),
    );
    assert_eq!(st, 201, "{v}");
    let f = Files::new(s, ca, &v);
    let leaf = f.leaf(name, &v);
    (leaf, f, v)
}

/// `openssl verify` of a leaf against the root, with the chain as untrusted.
fn openssl_verifies(root: &Path, chain: &Path, leaf: &Path) -> String {
    let out = openssl(&[
        "verify",
        "-CAfile",
        p(root),
        "-untrusted",
        p(chain),
        p(leaf),
    ]);
    text(&out)
}

#[test]
fn token_keys_sign_certificates_crls_and_ocsp_and_never_leave_the_token() {
    let hsm = SoftHsm::new("ca");
    let mut s = server_with_token(&hsm);

    // init made the root, issuing and client-auth keys in the token.
    let (st, v) = s.curl("GET", "/v1/cas", None);
    assert_eq!(st, 200, "{v}");
    let cas = v["certificate_authorities"]
        .as_array()
        .expect("cas")
        .clone();
    assert_eq!(cas.len(), 3, "{v}");
    for ca in &cas {
        assert_eq!(ca["key_storage"], "pkcs11", "{ca}");
        assert_eq!(ca["key_label"], ca["id"], "{ca}");
    }

    // Through the API: a P-384 root and an RSA-3072 subordinate in the token;
    // an Ed25519 root too, which SoftHSM2 supports.
    let (st, root) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=HSM Root", "key_algorithm": "ec-p384", "key_storage": "pkcs11"}),
    );
    assert_eq!(st, 201, "{root}");
    let root_id = root["id"].as_str().expect("id").to_string();
    let (st, sub) = create_ca(
        &s,
        json!({"type": "SUBORDINATE", "subject": "CN=HSM Issuing RSA", "key_algorithm": "rsa-3072",
               "parent_ca_id": root_id, "key_storage": "pkcs11"}),
    );
    assert_eq!(st, 201, "{sub}");
    let sub_id = sub["id"].as_str().expect("id").to_string();
    assert_eq!(sub["key_storage"], "pkcs11");
    let (st, ed) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=HSM Ed25519 Root", "key_algorithm": "ed25519", "key_storage": "pkcs11"}),
    );
    assert_eq!(st, 201, "{ed}");
    let ed_id = ed["id"].as_str().expect("id").to_string();

    // What the world sees: openssl accepts certificates from each token CA.
    let dir = s.tmp.path().to_path_buf();
    let root_of = |id: &str| {
        let (st, _, pem) = public(&format!("http://{}/ca/{id}.pem", s.public), &[]);
        assert_eq!(st, 200);
        let path = dir.join(format!("{id}.pem"));
        std::fs::write(&path, pem).expect("write");
        path
    };
    let hsm_root = root_of(&root_id);
    let (leaf, f, _) = issue_openssl(&s, &sub_id, "rsa-leaf.example");
    let t = openssl_verifies(&hsm_root, &f.chain, &leaf);
    assert!(t.contains(": OK"), "{t}");
    // The certificate is signed with the token's RSA key (sha256WithRSA).
    let t = text(&openssl(&["x509", "-in", p(&leaf), "-noout", "-text"]));
    assert!(t.contains("sha256WithRSAEncryption"), "{t}");
    let ed_root = root_of(&ed_id);
    let t = text(&openssl(&["verify", "-CAfile", p(&ed_root), p(&ed_root)]));
    assert!(t.contains(": OK"), "{t}");
    // And from init's issuing CA, chained to init's root.
    let issuing = s.config.issuing_ca_id.clone();
    let (good, fi, _) = issue_openssl(&s, &issuing, "good.example");
    let (bad, _, bad_v) = issue_openssl(&s, &issuing, "bad.example");
    let t = openssl_verifies(&s.root_pem(), &fi.chain, &good);
    assert!(t.contains(": OK"), "{t}");

    // CRL and OCSP, signed by the token keys, verified by openssl.
    let bad_serial = bad_v["serial"].as_str().expect("serial").to_string();
    let (st, v) = revoke(&s, &bad_serial, "KEY_COMPROMISE");
    assert_eq!(st, 200, "{v}");
    let crl = dir.join("issuing.crl");
    fetch_crl_listing(&s, &issuing, &bad_serial, &crl);
    let out = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl),
        "-CAfile",
        p(&fi.chain),
        "-noout",
    ]);
    assert!(text(&out).contains("verify OK"), "{}", text(&out));
    let ocsp_url = format!("http://{}/ocsp/{issuing}", s.public);
    let t = fi.ocsp(&ocsp_url, &["-cert", p(&bad)], true);
    assert!(t.contains(&format!("{}: revoked", p(&bad))), "{t}");
    let t = fi.ocsp(&ocsp_url, &["-cert", p(&good)], true);
    assert!(t.contains(&format!("{}: good", p(&good))), "{t}");
    // The RSA subordinate's CRL too.
    let crl_rsa = dir.join("rsa.crl");
    let (st, _, body) = public(&crl_url(&s, &sub_id), &[]);
    assert_eq!(st, 200);
    std::fs::write(&crl_rsa, body).expect("write");
    let both = dir.join("rsa-chain.pem");
    std::fs::write(
        &both,
        [
            std::fs::read(&f.issuer).expect("issuer"),
            std::fs::read(&hsm_root).expect("root"),
        ]
        .concat(),
    )
    .expect("write");
    let out = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl_rsa),
        "-CAfile",
        p(&both),
        "-noout",
    ]);
    assert!(text(&out).contains("verify OK"), "{}", text(&out));

    // The token holds every CA key, sensitive and never extractable.
    let listing = hsm.tool(&["--list-objects", "--type", "privkey"]);
    let keys = private_keys(&listing);
    let ca_ids: Vec<String> = cas
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .chain([root_id.clone(), sub_id.clone(), ed_id.clone()])
        .collect();
    for id in &ca_ids {
        let (_, access) = keys
            .iter()
            .find(|(label, _)| label == id)
            .unwrap_or_else(|| panic!("no token key labelled {id}:\n{listing}"));
        assert!(
            access.contains("sensitive")
                && access.contains("always sensitive")
                && access.contains("never extractable"),
            "{id}: {access}"
        );
    }
    // The store keeps references, not keys; logs and files name no key.
    s.stop();
    for id in &ca_ids {
        let err = ca_server::vault::open_sealed_offline(
            &s.dir,
            &ca_server::vault::MasterOptions::default(),
            id,
        )
        .expect_err("a token key opened from the store");
        assert!(err.to_string().contains("PKCS#11 token"), "{id}: {err}");
    }
    let mut leaks = Vec::new();
    scan_for_private_keys(&s.dir, &mut leaks);
    assert!(
        leaks
            .iter()
            .all(|f| f.ends_with("admin/admin.key") || f.ends_with("tls/server.key")),
        "private keys beyond the admin's and the API's TLS key: {leaks:?}"
    );
    assert!(!s.log().contains("PRIVATE KEY"), "{}", s.log());

    // Restart: the server finds its keys in the token again and signs.
    s.start();
    let (again, f2, _) = issue_openssl(&s, &sub_id, "after-restart.example");
    let t = openssl_verifies(&hsm_root, &f2.chain, &again);
    assert!(t.contains(": OK"), "{t}");
    let (again, f3, _) = issue_openssl(&s, &issuing, "after-restart2.example");
    let t = openssl_verifies(&s.root_pem(), &f3.chain, &again);
    assert!(t.contains(": OK"), "{t}");
}

/// Files under `dir` holding a PEM private key.
fn scan_for_private_keys(dir: &Path, found: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = e.path();
        if path.is_dir() {
            scan_for_private_keys(&path, found);
        } else if let Ok(bytes) = std::fs::read(&path) {
            if bytes.windows(11).any(|w| w == b"PRIVATE KEY") {
                found.push(path);
            }
        }
    }
}

#[test]
fn an_existing_token_key_is_adopted_by_label_and_an_extractable_one_is_refused() {
    let hsm = SoftHsm::new("ca");
    let s = server_with_token(&hsm);
    hsm.tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "made-by-the-operator",
        "--id",
        "a1b2c3",
        "--sensitive",
        "--usage-sign",
    ]);
    // pkcs11-tool's public key, for comparison with the CA certificate.
    let pub_der = s.tmp.path().join("adopted-pub.der");
    hsm.tool(&[
        "--read-object",
        "--type",
        "pubkey",
        "--label",
        "made-by-the-operator",
        "--output-file",
        p(&pub_der),
    ]);
    // The algorithm must match the key.
    let (st, v) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Adopted", "key_algorithm": "ec-p384",
               "key_storage": "pkcs11", "key_label": "made-by-the-operator"}),
    );
    assert_eq!((st, code(&v)), (400, "InvalidRequest"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("is ec-p256"),
        "{v}"
    );
    let (st, v) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Adopted", "key_algorithm": "ec-p256",
               "key_storage": "pkcs11", "key_label": "made-by-the-operator"}),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["key_label"], "made-by-the-operator");
    let id = v["id"].as_str().expect("id");
    let (st, _, pem) = public(&format!("http://{}/ca/{id}.pem", s.public), &[]);
    assert_eq!(st, 200);
    let cert = s.tmp.path().join("adopted.pem");
    std::fs::write(&cert, pem).expect("write");
    let spki = text(&openssl(&["x509", "-in", p(&cert), "-noout", "-pubkey"]));
    let theirs = text(&openssl(&[
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        p(&pub_der),
    ]));
    assert_eq!(spki.trim(), theirs.trim(), "the CA certifies another key");
    let t = text(&openssl(&["verify", "-CAfile", p(&cert), p(&cert)]));
    assert!(t.contains(": OK"), "{t}");
    // One key, one CA: the same label again is refused, and so is the
    // label of a key the server made for another CA.
    let (st, v) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Twin", "key_algorithm": "ec-p256",
               "key_storage": "pkcs11", "key_label": "made-by-the-operator"}),
    );
    assert_eq!((st, code(&v)), (409, "Conflict"), "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap_or("").contains(id),
        "{v}"
    );
    let (st, made) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Made", "key_storage": "pkcs11"}),
    );
    assert_eq!(st, 201, "{made}");
    let made_id = made["id"].as_str().expect("id");
    let (st, v) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Twin", "key_algorithm": "ec-p256",
               "key_storage": "pkcs11", "key_label": made_id}),
    );
    assert_eq!((st, code(&v)), (409, "Conflict"), "{v}");

    // An extractable key is refused, naming why.
    hsm.tool(&[
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "extractable",
        "--id",
        "d4e5f6",
        "--extractable",
        "--usage-sign",
    ]);
    let (st, v) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Leaky", "key_storage": "pkcs11", "key_label": "extractable"}),
    );
    assert_eq!((st, code(&v)), (400, "InvalidRequest"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("may leave the token"),
        "{v}"
    );
    // A label the token does not hold.
    let (st, v) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Nobody", "key_storage": "pkcs11", "key_label": "no-such-key"}),
    );
    assert_eq!((st, code(&v)), (400, "InvalidRequest"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("no key pair labelled \"no-such-key\""),
        "{v}"
    );
    // The CLI: a key made in the token, and an operator's key adopted by label.
    hsm.tool(&[
        "--keypairgen",
        "--key-type",
        "EC:secp384r1",
        "--label",
        "cli-adopted",
        "--id",
        "c11c11",
        "--sensitive",
        "--usage-sign",
    ]);
    let cli = |args: &[&str]| {
        let out = s.cli(args);
        assert!(out.status.success(), "ca-cli {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let made: Value = serde_json::from_str(&cli(&[
        "ca",
        "create",
        "--type",
        "root",
        "--subject",
        "CN=CLI Token Root",
        "--key-storage",
        "pkcs11",
        "-o",
        "json",
    ]))
    .expect("json");
    assert_eq!(
        (made["key_storage"].as_str(), made["key_label"].as_str()),
        (Some("pkcs11"), made["id"].as_str()),
        "{made}"
    );
    let adopted: Value = serde_json::from_str(&cli(&[
        "ca",
        "create",
        "--type",
        "root",
        "--subject",
        "CN=CLI Adopted Root",
        "--key-algorithm",
        "ec-p384",
        "--key-storage",
        "pkcs11",
        "--key-label",
        "cli-adopted",
        "-o",
        "json",
    ]))
    .expect("json");
    assert_eq!(adopted["key_label"], "cli-adopted", "{adopted}");
    let listing = cli(&["ca", "list"]);
    assert!(
        listing.contains("in PKCS#11 token as \"cli-adopted\""),
        "{listing}"
    );
    let keys = private_keys(&hsm.tool(&["--list-objects", "--type", "privkey"]));
    assert!(
        keys.iter()
            .any(|(l, _)| Some(l.as_str()) == made["id"].as_str()),
        "{keys:?}"
    );

    // A software CA beside the token ones still works.
    let (st, v) = create_ca(&s, json!({"type": "ROOT", "subject": "CN=Software"}));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["key_storage"], "software", "{v}");
}

#[test]
fn a_server_without_a_token_refuses_token_storage_with_a_clear_error() {
    let s = Server::start_new();
    let (st, v) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Nowhere", "key_storage": "pkcs11"}),
    );
    assert_eq!((st, code(&v)), (409, "InvalidState"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("[pkcs11]"),
        "{v}"
    );
    let (st, v) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Nowhere", "key_storage": "vault"}),
    );
    assert_eq!((st, code(&v)), (400, "InvalidRequest"), "{v}");
}

/// `ca-server serve` that must fail at start: its exit status and output
/// (a server still running after 20 s fails the test).
fn serve_expecting_failure(s: &Server, env: &[(&str, String)]) -> (Option<i32>, String) {
    let mut cmd = Command::new("timeout");
    cmd.arg("20")
        .arg(harness::server::server_bin())
        .args(["serve", "--data-dir"])
        .arg(&s.dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert_ne!(
        out.status.code(),
        Some(124),
        "the server was still running after 20 s: {}",
        text(&out)
    );
    (out.status.code(), text(&out))
}

#[test]
fn a_wrong_pin_or_module_stops_the_server_at_start_and_a_missing_token_leaves_it_serving() {
    let hsm = SoftHsm::new("ca");
    let mut s = server_with_token(&hsm);
    s.stop();
    let conf = s.dir.join("config.toml");
    let original = std::fs::read_to_string(&conf).expect("config");
    let env = vec![("SOFTHSM2_CONF", hsm.conf.display().to_string())];

    // Wrong PIN: refused once, not retried (tokens lock after a few).
    std::fs::write(hsm.pin_file(), "00000000\n").expect("pin");
    let (status, out) = serve_expecting_failure(&s, &env);
    assert_ne!(status, Some(0), "{out}");
    assert!(out.contains("the token refused the PIN"), "{out}");
    assert!(!out.contains("00000000"), "the PIN was printed: {out}");

    // The PIN from the environment instead of a file works.
    std::fs::write(
        &conf,
        original.replace(
            &format!("pin_file = \"{}\"\n", hsm.pin_file().display()),
            "",
        ),
    )
    .expect("config");
    assert!(!std::fs::read_to_string(&conf)
        .expect("config")
        .contains("pin_file"));
    let (status, out) = serve_expecting_failure(&s, &env);
    assert_ne!(status, Some(0), "{out}");
    assert!(out.contains("no PIN for the token"), "{out}");
    s.env.push(("CA_PKCS11_PIN".into(), PIN.into()));
    s.start();
    let (st, v) = s.curl("GET", "/v1/cas", None);
    assert_eq!(st, 200, "{v}");
    let issuing = s.config.issuing_ca_id.clone();
    issue(&s, &issuing, "env-pin.example");
    s.stop();
    std::fs::write(&conf, &original).expect("config");
    std::fs::write(hsm.pin_file(), format!("{PIN}\n")).expect("pin");

    // A token label the module does not have (a token not plugged in, a
    // network HSM down): the server starts and serves what needs no token
    // key; the token's CAs answer 503 naming the tokens it does see.
    std::fs::write(
        &conf,
        original.replace("token_label = \"ca\"", "token_label = \"elsewhere\""),
    )
    .expect("config");
    s.start();
    let (st, h) = s.curl("GET", "/health", None);
    assert_eq!((st, h["status"].as_str()), (503, Some("degraded")), "{h}");
    assert_eq!(h["checks"]["ca_keys"]["ok"], false, "{h}");
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": harness::core_csr("missing.example"), "ca_id": issuing})),
    );
    assert_eq!((st, code(&v)), (503, "Unavailable"), "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("no token labelled \"elsewhere\""), "{v}");
    assert!(msg.contains("\"ca\" in slot"), "{v}");
    let (st, soft) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Software meanwhile"}),
    );
    assert_eq!(st, 201, "{soft}");
    issue(&s, soft["id"].as_str().expect("id"), "software.example");
    assert!(s.log().contains("unavailable at start"), "{}", s.log());
    s.stop();

    // A module that is not there.
    std::fs::write(
        &conf,
        original.replace(p(&module()), "/nonexistent/libpkcs11.so"),
    )
    .expect("config");
    let (status, out) = serve_expecting_failure(&s, &env);
    assert_ne!(status, Some(0), "{out}");
    assert!(
        out.contains("cannot load the PKCS#11 module /nonexistent/libpkcs11.so"),
        "{out}"
    );

    // A PIN in the config file itself is refused.
    std::fs::write(
        &conf,
        original.replace("[pkcs11]\n", "[pkcs11]\npin = \"31415926\"\n"),
    )
    .expect("config");
    let (status, out) = serve_expecting_failure(&s, &env);
    assert_ne!(status, Some(0), "{out}");
    assert!(out.contains("[pkcs11] must not hold the PIN"), "{out}");

    // Back to the real configuration: it starts and signs.
    std::fs::write(&conf, &original).expect("config");
    s.env.retain(|(k, _)| k != "CA_PKCS11_PIN");
    s.start();
    issue(&s, &issuing, "back.example");
}

#[test]
fn a_token_that_goes_away_while_serving_gives_503_and_the_server_recovers() {
    let hsm = SoftHsm::new("ca");
    let mut s = init_with_token(&hsm);
    // CRLs refreshed every second, so a CRL that could not be signed while
    // the token was away is seen to follow soon after it is back.
    let conf = s.dir.join("config.toml");
    let c = std::fs::read_to_string(&conf).expect("config");
    assert!(c.contains("crl_refresh_secs = 60"), "{c}");
    std::fs::write(
        &conf,
        c.replace("crl_refresh_secs = 60", "crl_refresh_secs = 1"),
    )
    .expect("config");
    s.start();
    let issuing = s.config.issuing_ca_id.clone();
    let before = issue(&s, &issuing, "before.example");
    let before_serial = before["serial"].as_str().expect("serial").to_string();
    // The first CRL is signed now (the builder's first pass may not have run
    // yet), so there is one to serve while the token is away.
    let (st, _, _) = public(&crl_url(&s, &issuing), &[]);
    assert_eq!(st, 200);

    // Pull the token: SoftHSM2 keeps each token in a directory.
    let token_dir = std::fs::read_dir(hsm.tokens())
        .expect("tokens")
        .flatten()
        .next()
        .expect("one token")
        .path();
    let away = hsm.dir.path().join("away");
    std::fs::rename(&token_dir, &away).expect("pull the token");
    for _ in 0..3 {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"csr": harness::core_csr("during.example"), "ca_id": issuing})),
        );
        assert_eq!((st, code(&v)), (503, "Unavailable"), "{v}");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains("unavailable"), "{v}");
    }
    // The server is up: reads and the public listener answer. A revocation
    // needs no CA key: it is committed (its CRL waits for the token).
    let (st, v) = s.curl("GET", "/v1/cas", None);
    assert_eq!(st, 200, "{v}");
    let (st, _, _) = public(&crl_url(&s, &issuing), &[]);
    assert_eq!(st, 200);
    let (st, v) = revoke(&s, &before_serial, "SUPERSEDED");
    assert_eq!(st, 200, "{v}");
    // Health says the token is away.
    let (st, h) = s.curl("GET", "/health", None);
    assert_eq!(st, 503, "{h}");
    assert_eq!(
        (h["status"].as_str(), h["pkcs11"]["connected"].as_bool()),
        (Some("degraded"), Some(false)),
        "{h}"
    );
    // The failing check names the CAs whose token is away; the public
    // listener's health says the same to a load balancer.
    let detail = h["checks"]["ca_keys"]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(&format!(
            "{issuing}: its key's PKCS#11 token is not connected"
        )),
        "{h}"
    );
    let (st, _, body) = public(&format!("http://{}/health", s.public), &[]);
    let ph: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        (st, ph["checks"]["ca_keys"]["ok"].as_bool()),
        (503, Some(false)),
        "{ph}"
    );
    assert_eq!(ph["checks"]["store_writable"]["ok"], true, "{ph}");

    // Put it back: issuance works again, without a restart.
    std::fs::rename(&away, &token_dir).expect("put the token back");
    let start = Instant::now();
    loop {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"csr": harness::core_csr("after.example"), "ca_id": issuing})),
        );
        if st == 201 {
            break;
        }
        assert_eq!((st, code(&v)), (503, "Unavailable"), "{v}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the server did not recover: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The CRL signed after the token came back lists the revocation made
    // while it was away, and openssl accepts its signature.
    let crl = s.tmp.path().join("after.crl");
    fetch_crl_listing(&s, &issuing, &before_serial, &crl);
    let (st, _, chain) = public(&format!("http://{}/ca/{issuing}.pem", s.public), &[]);
    assert_eq!(st, 200);
    let chain_file = s.tmp.path().join("issuing-chain.pem");
    std::fs::write(
        &chain_file,
        [chain, std::fs::read(s.root_pem()).expect("root")].concat(),
    )
    .expect("write");
    let out = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl),
        "-CAfile",
        p(&chain_file),
        "-noout",
    ]);
    assert!(text(&out).contains("verify OK"), "{}", text(&out));
    let (st, h) = s.curl("GET", "/health", None);
    assert_eq!(st, 200, "{h}");
    assert_eq!(
        (h["status"].as_str(), h["pkcs11"]["connected"].as_bool()),
        (Some("ok"), Some(true)),
        "{h}"
    );
    let log = s.log();
    assert!(log.contains("the PKCS#11 token is unavailable"), "{log}");
    assert!(log.contains("the PKCS#11 token is back"), "{log}");
    assert!(!log.contains(PIN), "the PIN was logged");
}

/// The AES secret keys in the token, as (label, ID, access line).
fn secret_keys(hsm: &SoftHsm) -> Vec<(String, String, String)> {
    let listing = hsm.tool(&["--list-objects", "--type", "secrkey"]);
    listing
        .split("Secret Key Object")
        .skip(1)
        .map(|block| {
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                    .unwrap_or_default()
            };
            (field("label:"), field("ID:"), field("Access:"))
        })
        .collect()
}

fn rotate(s: &Server, env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(harness::server::server_bin());
    cmd.args(["rotate-master-key", "--data-dir"]).arg(&s.dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

#[test]
fn the_master_key_lives_in_the_token_wraps_software_keys_there_and_rotates_there() {
    let hsm = SoftHsm::new("ca");
    let (k, v) = hsm.env();
    let module = module();
    let pin_file = hsm.pin_file();
    let mut s = Server::init_with(
        &[
            "--pkcs11-module",
            p(&module),
            "--pkcs11-token-label",
            "ca",
            "--pkcs11-pin-file",
            p(&pin_file),
            "--pkcs11-master-key-label",
            "ca-master",
        ],
        &[(k, &v)],
    );
    let env = vec![("SOFTHSM2_CONF", v.clone())];
    // No master key file: the key is an AES key in the token.
    assert!(!s.dir.join("master.key").exists());
    let keys = secret_keys(&hsm);
    assert_eq!(keys.len(), 1, "{keys:?}");
    let (label, first_id, access) = keys[0].clone();
    assert_eq!(label, "ca-master");
    assert!(
        access.contains("sensitive") && access.contains("never extractable"),
        "{access}"
    );

    // A software CA beside the token ones: its key is sealed under a data
    // key that the token wraps.
    s.start();
    let (st, soft) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Sealed by the token"}),
    );
    assert_eq!(st, 201, "{soft}");
    assert_eq!(soft["key_storage"], "software");
    let soft_id = soft["id"].as_str().expect("id").to_string();
    // Restart: the data key is unwrapped by the token, the CA key opens and
    // signs (a fresh process has nothing cached). The audit digest key is
    // sealed the same way and signs at start.
    s.stop();
    s.start();
    let (st, sub) = create_ca(
        &s,
        json!({"type": "SUBORDINATE", "subject": "CN=Signed after restart", "parent_ca_id": soft_id}),
    );
    assert_eq!(st, 201, "{sub}");
    s.stop();
    let out = run(Command::new(harness::server::server_bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(&s.dir));
    assert!(out.status.success(), "{}", text(&out));

    // Rotation in the token: a new AES key under the same label, every data
    // key re-wrapped, the old key destroyed.
    let out = rotate(&s, &env);
    assert!(out.status.success(), "{}", text(&out));
    // The audit digest key and the two software CAs' keys; not the token CA keys.
    assert!(
        text(&out).contains("3 sealed key(s) re-wrapped"),
        "{}",
        text(&out)
    );
    let keys = secret_keys(&hsm);
    assert_eq!(keys.len(), 1, "the old master key is still there: {keys:?}");
    assert_eq!(keys[0].0, "ca-master");
    assert_ne!(keys[0].1, first_id, "the master key did not change");
    assert!(!s.dir.join("master.key").exists());
    s.start();
    let (st, v) = create_ca(
        &s,
        json!({"type": "SUBORDINATE", "subject": "CN=Signed after rotation", "parent_ca_id": soft_id}),
    );
    assert_eq!(st, 201, "{v}");
    s.stop();

    // Without master_key_label the server cannot open its store, and says how.
    let conf = s.dir.join("config.toml");
    let original = std::fs::read_to_string(&conf).expect("config");
    std::fs::write(
        &conf,
        original.replace("master_key_label = \"ca-master\"\n", ""),
    )
    .expect("config");
    let (status, out) = serve_expecting_failure(&s, &env);
    assert_ne!(status, Some(0), "{out}");
    assert!(
        out.contains("master key is in a PKCS#11 token (labelled \"ca-master\")"),
        "{out}"
    );
    std::fs::write(&conf, &original).expect("config");

    // Another AES key put in the old one's place under the same label is not
    // taken for it.
    let id = keys[0].1.clone();
    hsm.tool(&["--delete-object", "--type", "secrkey", "--id", &id]);
    hsm.tool(&[
        "--keygen",
        "--key-type",
        "AES:32",
        "--label",
        "ca-master",
        "--id",
        &id,
        "--sensitive",
    ]);
    let (status, out) = serve_expecting_failure(&s, &env);
    assert_ne!(status, Some(0), "{out}");
    assert!(out.contains("does not match this data directory"), "{out}");
}

#[test]
fn a_key_file_master_moves_into_the_token_by_rotation() {
    let hsm = SoftHsm::new("ca");
    // A server with a key file and software CA keys...
    let (k, v) = hsm.env();
    let mut s = Server::init_with(&[], &[(k, &v)]);
    s.start();
    let issuing = s.config.issuing_ca_id.clone();
    issue(&s, &issuing, "before.example");
    s.stop();
    assert!(s.dir.join("master.key").exists());
    // ...is given a token with master_key_label: it refuses to start until
    // the key is moved.
    let conf = s.dir.join("config.toml");
    let mut text_conf = std::fs::read_to_string(&conf).expect("config");
    text_conf.push_str(&format!(
        "\n[pkcs11]\nmodule = \"{}\"\ntoken_label = \"ca\"\npin_file = \"{}\"\nmaster_key_label = \"moved-master\"\n",
        module().display(),
        hsm.pin_file().display()
    ));
    std::fs::write(&conf, text_conf).expect("config");
    let env = vec![("SOFTHSM2_CONF", v.clone())];
    let (status, out) = serve_expecting_failure(&s, &env);
    assert_ne!(status, Some(0), "{out}");
    assert!(out.contains("run `ca-server rotate-master-key`"), "{out}");
    let out = rotate(&s, &env);
    assert!(out.status.success(), "{}", text(&out));
    // Four sealed keys: three CA keys and the audit digest key.
    assert!(
        text(&out).contains("4 sealed key(s) re-wrapped"),
        "{}",
        text(&out)
    );
    assert!(
        !s.dir.join("master.key").exists(),
        "the old key file is still there"
    );
    assert_eq!(secret_keys(&hsm).len(), 1);
    s.env.push(("SOFTHSM2_CONF".into(), v));
    s.start();
    issue(&s, &issuing, "after.example");
}

#[test]
fn a_token_missing_at_start_is_picked_up_when_it_appears() {
    let hsm = SoftHsm::new("ca");
    let mut s = server_with_token(&hsm);
    let issuing = s.config.issuing_ca_id.clone();
    s.stop();
    let token_dir = std::fs::read_dir(hsm.tokens())
        .expect("tokens")
        .flatten()
        .next()
        .expect("one token")
        .path();
    let away = hsm.dir.path().join("away");
    std::fs::rename(&token_dir, &away).expect("unplug");
    s.start();
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": harness::core_csr("early.example"), "ca_id": issuing})),
    );
    assert_eq!((st, code(&v)), (503, "Unavailable"), "{v}");
    std::fs::rename(&away, &token_dir).expect("plug in");
    let start = Instant::now();
    loop {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"csr": harness::core_csr("late.example"), "ca_id": issuing})),
        );
        if st == 201 {
            let f = Files::new(&s, &issuing, &v);
            let leaf = f.leaf("late", &v);
            let t = openssl_verifies(&s.root_pem(), &f.chain, &leaf);
            assert!(t.contains(": OK"), "{t}");
            break;
        }
        assert_eq!((st, code(&v)), (503, "Unavailable"), "{v}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never picked up: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (st, h) = s.curl("GET", "/health", None);
    assert_eq!((st, h["status"].as_str()), (200, Some("ok")), "{h}");
}
