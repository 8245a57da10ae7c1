//! Key protection end to end: CA private keys are never at rest in the clear
//! nor in any log line; a wrong master key is refused and changes nothing;
//! master-key rotation survives a crash at every stage.

mod harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use der::{Decode, Reader};
use harness::server::server_bin;
use harness::{core_csr, run, Server};
use serde_json::json;

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn hash_tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("read");
            let h = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &b);
            let hex: String = h.as_ref().iter().map(|x| format!("{x:02x}")).collect();
            (p, hex)
        })
        .collect()
}

/// Assert no needle is in any file under `dir` (which must hold something
/// to scan) or in `log`.
fn assert_found_nowhere(dir: &Path, log: &str, needles: &[(String, Vec<u8>)]) {
    let mut scanned = 0;
    for f in files_under(dir) {
        let bytes = std::fs::read(&f).expect("read");
        scanned += bytes.len();
        for (what, n) in needles {
            assert!(!contains(&bytes, n), "{what} found in {}", f.display());
        }
    }
    assert!(scanned > 10_000, "the data directory was scanned");
    for (what, n) in needles {
        assert!(!contains(log.as_bytes(), n), "{what} found in the logs");
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn base64(data: &[u8]) -> String {
    use base64ct::{Base64, Encoding};
    Base64::encode_string(data)
}

/// The raw private value inside a PKCS#8 key: the EC private scalar, the RSA
/// private exponent d, or the Ed25519 seed.
fn raw_secret(pkcs8_der: &[u8]) -> Vec<u8> {
    let info = pkcs8::PrivateKeyInfo::from_der(pkcs8_der).expect("pkcs8");
    let inner = info.private_key;
    let oid = info.algorithm.oid.to_string();
    let mut r = der::SliceReader::new(inner).expect("reader");
    match oid.as_str() {
        // id-ecPublicKey: ECPrivateKey ::= SEQUENCE { version, privateKey OCTET STRING, ... }
        "1.2.840.10045.2.1" => r
            .sequence(|r| {
                let _v: u8 = r.decode()?;
                let k: der::asn1::OctetString = r.decode()?;
                let rest = r.remaining_len();
                r.read_slice(rest)?;
                Ok(k.as_bytes().to_vec())
            })
            .expect("ECPrivateKey"),
        // rsaEncryption: RSAPrivateKey ::= SEQUENCE { version, n, e, d, ... }
        "1.2.840.113549.1.1.1" => r
            .sequence(|r| {
                let _v: u8 = r.decode()?;
                let _n: der::asn1::UintRef = r.decode()?;
                let _e: der::asn1::UintRef = r.decode()?;
                let d: der::asn1::UintRef = r.decode()?;
                let rest = r.remaining_len();
                r.read_slice(rest)?;
                Ok(d.as_bytes().to_vec())
            })
            .expect("RSAPrivateKey"),
        // Ed25519: CurvePrivateKey ::= OCTET STRING
        _ => der::asn1::OctetString::from_der(inner)
            .expect("Ed25519 key")
            .as_bytes()
            .to_vec(),
    }
}

/// A full run of API calls: CAs of each key type, issuance (CSR and server
/// key), renew, revoke, reads, policies, audit, bad input.
fn full_run(s: &Server) {
    let root = s.config.root_ca_id.clone();
    let mut cas = vec![];
    for (alg, kind) in [
        ("rsa-2048", "ROOT"),
        ("ed25519", "ROOT"),
        ("ec-p384", "SUB"),
    ] {
        let body = if kind == "ROOT" {
            json!({"type": "ROOT", "subject": format!("CN=Test {alg} Root"), "key_algorithm": alg})
        } else {
            json!({"type": "SUBORDINATE", "subject": format!("CN=Test {alg} Sub"), "key_algorithm": alg, "parent_ca_id": root, "path_len": 0})
        };
        let (st, v) = s.curl("POST", "/v1/cas", Some(&body));
        assert_eq!(st, 201, "{v}");
        cas.push(v["id"].as_str().expect("id").to_string());
    }
    let issuing = s.config.issuing_ca_id.clone();
    for ca in cas.iter().chain([&issuing]) {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates",
            Some(
                &json!({"ca_id": ca, "csr": core_csr("web.example.internal"), "validity_days": 30}),
            ),
        );
        assert_eq!(st, 201, "{v}");
        let serial = v["serial"].as_str().expect("serial").to_string();
        let (st, v) = s.curl(
            "POST",
            &format!("/v1/certificates/{serial}/renew"),
            Some(&json!({})),
        );
        assert_eq!(st, 201, "{v}");
        let (st, v) = s.curl(
            "POST",
            &format!("/v1/certificates/{serial}/revoke"),
            Some(&json!({"reason": "KEY_COMPROMISE"})),
        );
        assert_eq!(st, 200, "{v}");
        let (st, _) = s.curl("GET", &format!("/v1/cas/{ca}"), None);
        assert_eq!(st, 200);
        let (st, _) = s.curl("GET", &format!("/v1/cas/{ca}/certificate"), None);
        assert_eq!(st, 200);
    }
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates/request",
        Some(&json!({"names": ["api.example.internal"], "passphrase": "long enough passphrase"})),
    );
    assert_eq!(st, 201, "{v}");
    for (m, p) in [
        ("GET", "/v1/cas"),
        ("GET", "/v1/certificates"),
        ("GET", "/v1/policies"),
        ("GET", "/v1/audit"),
        ("GET", "/v1/nothing"),
    ] {
        s.curl(m, p, None);
    }
    let (st, _) = s.curl("POST", "/v1/cas", Some(&json!({"type": "ROOT"})));
    assert_eq!(st, 400);
    let (st, v) = s.curl("POST", "/v1/aliases/issuing/rotate", None);
    assert_eq!(st, 200, "{v}");
    issue_ok(s);
}

#[test]
fn ca_private_keys_are_in_no_file_and_no_log_line() {
    let mut s = Server::start_new_with(&[("RUST_LOG", "debug")]);
    full_run(&s);
    assert_eq!(s.stop().code(), Some(0));
    let opts = ca_server::vault::MasterOptions::default();
    let ids = ca_server::vault::sealed_ids_offline(&s.dir).expect("sealed ids");
    // root, issuing, client-auth (init) + the three made above + the rotated
    // issuing CA, and the audit digest key (scanned for like the CA keys).
    assert_eq!(ids.len(), 8, "{ids:?}");
    assert!(ids
        .iter()
        .any(|id| id == ca_server::vault::AUDIT_DIGEST_KEY_ID));
    assert!(
        !s.dir.join("keys").exists(),
        "no plaintext key directory any more"
    );
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    let store = ca_server::store::open_read_only(&s.dir).expect("store");
    for id in &ids {
        let der = ca_server::vault::open_sealed_offline(&s.dir, &opts, id).expect("open");
        let key = ca_core::keys::SoftwareKey::from_pkcs8_der(&der).expect("key");
        // The needles are the real keys: each opened key's public half is the
        // one in its CA's certificate (or the pinned audit key's file), so
        // the scan cannot pass by searching for something the vault made up.
        use ca_core::keys::Signer;
        let expected_spki = if id == ca_server::vault::AUDIT_DIGEST_KEY_ID {
            let pem = std::fs::read_to_string(s.dir.join("audit-digest-key.pem")).expect("pem");
            ca_core::pem::decode("PUBLIC KEY", &pem).expect("public key")
        } else {
            let ca = store.get_ca(id).expect("read").expect("CA record");
            let cert_der = ca_core::pem::decode(
                "CERTIFICATE",
                ca.certificate_pem.as_deref().expect("certificate"),
            )
            .expect("pem");
            let cert = <x509_cert::Certificate as der::Decode>::from_der(&cert_der).expect("cert");
            der::Encode::to_der(&cert.tbs_certificate.subject_public_key_info).expect("spki")
        };
        assert_eq!(key.public_key_der(), expected_spki.as_slice(), "{id}");
        let raw = raw_secret(&der);
        assert!(raw.len() >= 32, "{id}: raw secret too short");
        needles.push((format!("{id} DER"), der.to_vec()));
        needles.push((format!("{id} PEM"), key.to_pkcs8_pem().as_bytes().to_vec()));
        needles.push((format!("{id} base64 DER"), base64(&der).into_bytes()));
        // The first full PEM body line: a PEM wrapped differently still holds it.
        needles.push((
            format!("{id} PEM line"),
            base64(&der).as_bytes()[..64].to_vec(),
        ));
        needles.push((format!("{id} raw private value"), raw));
    }
    store.close();
    // Positive control: the same needles find the admin's key (not a CA key,
    // stored in the clear on purpose for the CLI) in its file.
    let admin_pem = std::fs::read_to_string(s.dir.join("admin/admin.key")).expect("admin key");
    let admin = ca_core::keys::SoftwareKey::from_pkcs8_pem(&admin_pem).expect("admin key");
    let admin_der = admin.to_pkcs8_der();
    assert!(contains(
        admin_pem.as_bytes(),
        &base64(&admin_der).as_bytes()[..64]
    ));
    assert!(contains(
        admin_pem.as_bytes(),
        admin.to_pkcs8_pem().as_bytes()
    ));
    let log = s.log();
    assert!(log.contains("DEBUG"), "the run logged at debug level");
    assert_found_nowhere(&s.dir, &log, &needles);
}

fn start_fails(s: &Server, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(server_bin());
    cmd.args(["serve", "--data-dir"]).arg(&s.dir).args([
        "--api-addr",
        "127.0.0.1:0",
        "--public-addr",
        "127.0.0.1:0",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    assert!(!out.status.success(), "the server started with a wrong key");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn issue_ok(s: &Server) {
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": core_csr("after.example.internal")})),
    );
    assert_eq!(st, 201, "{v}");
}

#[test]
fn a_wrong_master_key_is_refused_and_changes_nothing() {
    let mut s = Server::start_new();
    issue_ok(&s);
    s.stop();
    let key_file = s.dir.join("master.key");
    let meta = std::fs::metadata(&key_file).expect("master.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let good = std::fs::read(&key_file).expect("read");
    assert_eq!(good.len(), 32);
    std::fs::write(&key_file, [7u8; 32]).expect("write");
    let before = hash_tree(&s.dir);
    let err = start_fails(&s, &[]);
    assert!(
        err.contains("the master key does not match this data directory"),
        "{err}"
    );
    assert_eq!(before, hash_tree(&s.dir), "the data directory changed");
    // A missing key file is a clear error too.
    std::fs::remove_file(&key_file).expect("rm");
    let before = hash_tree(&s.dir);
    let err = start_fails(&s, &[]);
    assert!(err.contains("master.key is missing"), "{err}");
    assert_eq!(before, hash_tree(&s.dir));
    std::fs::write(&key_file, &good).expect("restore");
    s.start();
    issue_ok(&s);

    // On a store a crash left, the check first recovers it (the journal
    // redone; redb's repair, unless the last durable commit recorded its
    // allocator state, as the events' projection after the issuance above
    // may have) and closes it: that is all a wrong key changes, so a second
    // try changes nothing, and the right key finds every answered
    // certificate without recovering the store again.
    let (st, v) = s.curl("GET", "/v1/certificates?limit=1000", None);
    assert_eq!(st, 200, "{v}");
    let stored = v["certificates"].as_array().map(Vec::len);
    s.kill9();
    std::fs::write(&key_file, [7u8; 32]).expect("write");
    let err = start_fails(&s, &[]);
    assert!(
        err.contains("the master key does not match this data directory"),
        "{err}"
    );
    let recovered = hash_tree(&s.dir);
    start_fails(&s, &[]);
    assert_eq!(
        recovered,
        hash_tree(&s.dir),
        "a second wrong key changed it"
    );
    std::fs::write(&key_file, &good).expect("restore");
    let log_before = s.log().len();
    s.start();
    let start_log = &s.log()[log_before..];
    assert!(
        !start_log.contains("redb is checking and repairing")
            && !start_log.contains("redid the writes the journal held"),
        "recovered twice:\n{}",
        s.log()
    );
    let (st, v) = s.curl("GET", "/v1/certificates?limit=1000", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["certificates"].as_array().map(Vec::len), stored, "{v}");
}

#[test]
fn a_passphrase_master_key_works_and_a_wrong_one_is_refused() {
    let mut s = Server::start_new_with(&[("CA_MASTER_PASSPHRASE", "correct horse battery")]);
    issue_ok(&s);
    s.stop();
    assert!(
        !s.dir.join("master.key").exists(),
        "no key file in passphrase mode"
    );
    let before = hash_tree(&s.dir);
    let err = start_fails(&s, &[("CA_MASTER_PASSPHRASE", "wrong horse battery")]);
    assert!(err.contains("does not match"), "{err}");
    let err = start_fails(&s, &[]);
    assert!(err.contains("passphrase"), "{err}");
    assert_eq!(before, hash_tree(&s.dir));
    // The passphrase from a file works as well.
    let pf = s.tmp.path().join("pass.txt");
    std::fs::write(&pf, "correct horse battery\n").expect("write");
    s.env = vec![("CA_MASTER_PASSPHRASE_FILE".into(), pf.display().to_string())];
    s.start();
    issue_ok(&s);
}

fn rotate(s: &Server, extra: &[&str]) -> std::process::Output {
    run(Command::new(server_bin())
        .args(["rotate-master-key", "--data-dir"])
        .arg(&s.dir)
        .args(extra))
}

#[test]
fn master_key_rotation_is_atomic_at_every_crash_point() {
    let mut s = Server::start_new();
    issue_ok(&s);
    s.stop();
    let key = |s: &Server| std::fs::read(s.dir.join("master.key")).expect("key");
    let k0 = key(&s);

    // Crash after the new key file is written, before the commit: old state.
    let out = rotate(&s, &["--crash-after", "new-key-written"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(s.dir.join("master.key.new").exists());
    s.start();
    issue_ok(&s);
    s.stop();
    assert_eq!(key(&s), k0, "the old key is still the key");
    assert!(
        !s.dir.join("master.key.new").exists(),
        "leftover cleaned up"
    );

    // Crash after the commit, before the rename: new state.
    let out = rotate(&s, &["--crash-after", "committed"]);
    assert_eq!(out.status.code(), Some(3));
    let k_new = std::fs::read(s.dir.join("master.key.new")).expect("new key");
    s.start();
    issue_ok(&s);
    s.stop();
    assert_eq!(key(&s), k_new, "the rotation was finished at start");
    assert!(!s.dir.join("master.key.new").exists());

    // A clean rotation.
    let out = rotate(&s, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // root, issuing and client-auth CA keys, and the audit digest key.
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 sealed key(s) re-wrapped"));
    assert_ne!(key(&s), k_new);
    s.start();
    issue_ok(&s);
    s.stop();

    // To a passphrase, crashing after the commit: the passphrase is the key
    // now, and the stale key file is removed at start.
    let pf = s.tmp.path().join("new-pass.txt");
    std::fs::write(&pf, "a new master passphrase\n").expect("write");
    let out = rotate(
        &s,
        &[
            "--new-passphrase-file",
            pf.to_str().expect("path"),
            "--crash-after",
            "committed",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(s.dir.join("master.key").exists());
    let err = start_fails(&s, &[]);
    assert!(err.contains("passphrase"), "{err}");
    s.env = vec![("CA_MASTER_PASSPHRASE_FILE".into(), pf.display().to_string())];
    s.start();
    issue_ok(&s);
    s.stop();
    assert!(!s.dir.join("master.key").exists());

    // Passphrase to passphrase, cleanly.
    let pf2 = s.tmp.path().join("newer-pass.txt");
    std::fs::write(&pf2, "an even newer passphrase\n").expect("write");
    let out = rotate(
        &s,
        &[
            "--master-passphrase-file",
            pf.to_str().expect("path"),
            "--new-passphrase-file",
            pf2.to_str().expect("path"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = start_fails(
        &s,
        &[("CA_MASTER_PASSPHRASE_FILE", pf.to_str().expect("path"))],
    );
    assert!(err.contains("does not match"), "{err}");
    s.env = vec![(
        "CA_MASTER_PASSPHRASE_FILE".into(),
        pf2.display().to_string(),
    )];
    s.start();
    issue_ok(&s);
}

#[test]
fn an_older_data_directory_is_migrated_to_sealed_keys_and_policies() {
    use ca_server::store::redb::forensics;
    let mut s = Server::start_new();
    s.stop();
    // Rebuild the old layout: the issuing CA's key as a plaintext PKCS#8 file,
    // no sealed record, no policies table.
    let issuing = s.config.issuing_ca_id.clone();
    let der = ca_server::vault::open_sealed_offline(
        &s.dir,
        &ca_server::vault::MasterOptions::default(),
        &issuing,
    )
    .expect("open");
    std::fs::create_dir_all(s.dir.join("keys")).expect("mkdir");
    let legacy = s.dir.join("keys").join(format!("{issuing}.p8"));
    std::fs::write(&legacy, der.as_slice()).expect("write");
    forensics::remove_sealed_key(&s.dir, &issuing).expect("remove key");
    forensics::drop_policies(&s.dir).expect("drop policies");
    s.start();
    issue_ok(&s);
    s.stop();
    assert!(!legacy.exists(), "the plaintext key file is gone");
    let store = ca_server::store::open_read_only(&s.dir).expect("store");
    assert!(
        store.sealed_key(&issuing).expect("get").is_some(),
        "sealed again"
    );
    store.close();
    for f in files_under(&s.dir) {
        let bytes = std::fs::read(&f).expect("read");
        assert!(!contains(&bytes, &der), "plaintext key in {}", f.display());
    }
}

/// A corrupt sealed key record fails that CA's signing with a JSON 500
/// `Internal` (details only in the log, never key material), and nothing
/// else: the server keeps serving, and other CAs keep issuing.
#[test]
fn a_corrupt_sealed_key_fails_only_its_ca() {
    use ca_server::store::redb::forensics;
    let mut s = Server::start_new();
    s.stop();
    let issuing = s.config.issuing_ca_id.clone();
    let store = ca_server::store::open_read_only(&s.dir).expect("store");
    let mut sealed = store.sealed_key(&issuing).expect("get").expect("sealed");
    store.close();
    let middle = sealed.len() / 2;
    sealed[middle] ^= 0x40;
    forensics::set_sealed_key(&s.dir, &issuing, &sealed).expect("corrupt");
    s.start();
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": core_csr("corrupt.example.internal")})),
    );
    assert_eq!((st, harness::code(&v)), (500, "Internal"), "{v}");
    assert!(
        !v.to_string().contains("ca_keys") && v["error"]["message"].as_str().is_some(),
        "{v}"
    );
    // Still serving, and the client-auth CA still issues.
    let (st, v) = s.curl("GET", "/v1/cas", None);
    assert_eq!(st, 200, "{v}");
    let (_cert, _key, fp) = harness::client_identity(&s, "after", "CN=after,O=test");
    assert_eq!(fp.len(), 64);
    assert!(
        s.log().contains(&issuing),
        "the log names the CA whose key failed"
    );
    // OCSP for that CA cannot be signed: the responder says tryLater
    // (RFC 6960 2.3), rather than failing the connection or answering wrongly.
    let issuer = s.tmp.path().join("issuer.pem");
    let out = run(Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o"])
        .arg(&issuer)
        .arg(format!("http://{}/ca/{issuing}.pem", s.public)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(Command::new("openssl")
        .args(["ocsp", "-no_nonce", "-issuer"])
        .arg(&issuer)
        .args(["-serial", "0x0123456789abcdef", "-url"])
        .arg(format!("http://{}/ocsp/{issuing}", s.public)));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("Responder Error: trylater (3)"), "{said}");
}

/// Security review L5: a new master passphrase must be long enough; a
/// generated key file is called out at init, because it sits beside the store
/// it opens.
#[test]
fn a_short_new_passphrase_is_refused_and_init_warns_about_the_key_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let out = run(Command::new(server_bin())
        .args(["init", "--data-dir"])
        .arg(&dir)
        .env("CA_MASTER_PASSPHRASE", "too short"));
    assert!(
        !out.status.success(),
        "a 9-character passphrase was accepted"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 12 characters"), "{err}");

    let s = Server::init_with(&[], &[]);
    let log = s.log();
    assert!(log.contains("beside ca.redb"), "{log}");
    let s = Server::init_with(&[], &[("CA_MASTER_PASSPHRASE", "a long enough passphrase")]);
    assert!(!s.log().contains("beside ca.redb"), "{}", s.log());
}

/// The README's promise: a key the server makes for a client comes back once,
/// encrypted, and is kept nowhere: not in the store or any other file of the
/// data directory, not in the logs (at debug level), in any encoding.
#[test]
fn server_made_leaf_keys_are_never_stored_or_logged() {
    let mut s = Server::start_new_with(&[("RUST_LOG", "debug")]);
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, alg) in ["ec-p256", "rsa-2048", "ed25519"].iter().enumerate() {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates/request",
            Some(&json!({"names": [format!("leaf{i}.example.internal")],
                         "key_algorithm": alg, "passphrase": "long enough passphrase"})),
        );
        assert_eq!(st, 201, "{alg}: {v}");
        let enc = ca_core::pem::decode(
            "ENCRYPTED PRIVATE KEY",
            v["private_key"].as_str().expect("key"),
        )
        .expect("pem");
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(enc.as_slice()).expect("pkcs8");
        let der = info.decrypt("long enough passphrase").expect("decrypt");
        let der = der.as_bytes().to_vec();
        let raw = raw_secret(&der);
        assert!(raw.len() >= 32, "{alg}: raw secret too short");
        needles.push((format!("{alg} DER"), der.clone()));
        needles.push((
            format!("{alg} PEM line"),
            base64(&der).as_bytes()[..64].to_vec(),
        ));
        needles.push((format!("{alg} raw"), raw.clone()));
        needles.push((
            format!("{alg} raw hex"),
            ca_core::hex::encode(&raw).into_bytes(),
        ));
        needles.push((
            format!("{alg} DER hex"),
            ca_core::hex::encode(&der).into_bytes(),
        ));
    }
    assert_eq!(s.stop().code(), Some(0));
    // Positive control: the needles do find a key written in the clear.
    let control = s.tmp.path().join("control.pem");
    let (_, der) = &needles[0];
    std::fs::write(
        &control,
        ca_core::pem::encode("PRIVATE KEY", der).as_bytes(),
    )
    .expect("write");
    let control = std::fs::read(&control).expect("read");
    assert!(
        contains(&control, &needles[1].1),
        "the PEM-line needle works"
    );
    let log = s.log();
    assert!(log.contains("DEBUG"), "the run logged at debug level");
    assert_found_nowhere(&s.dir, &log, &needles);
}

/// An RSA-2048 key and CSR made by `openssl req`.
fn openssl_rsa_csr(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let out = run(Command::new("openssl")
        .args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .args(["-subj", &format!("/CN={name}"), "-addext"])
        .arg(format!("subjectAltName=DNS:{name}"))
        .arg("-out")
        .arg(&csr));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (key, std::fs::read_to_string(&csr).expect("csr"))
}

/// Security review M5: keys on an operator's list in Debian's
/// openssl-blacklist format are refused. The list line is made the way the
/// format's own header says, with openssl and sha1sum, so the test checks
/// compatibility with the real lists, not with our own hashing.
#[test]
fn keys_on_a_debian_format_weak_key_list_are_refused() {
    let mut s = Server::init_with(&[], &[]);
    let (listed_key, listed_csr) = openssl_rsa_csr(s.tmp.path(), "listed.example");
    let (_, other_csr) = openssl_rsa_csr(s.tmp.path(), "other.example");
    let out = run(Command::new("sh").arg("-c").arg(format!(
        "openssl rsa -noout -modulus -in '{}' | sha1sum | cut -d ' ' -f 1 | cut -c 21-",
        listed_key.display()
    )));
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(line.len(), 20, "{line}");
    std::fs::create_dir(s.dir.join("weak")).expect("dir");
    std::fs::write(
        s.dir.join("weak/blacklist.RSA-2048"),
        format!("# known weak keys\n#\n00005890bc78bcbee3ca\n{line}\n3c3fbae22fb5042dae07\n"),
    )
    .expect("list");
    let config_path = s.dir.join("config.toml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    // A top-level key goes before the first [section].
    let with_list = format!("weak_key_lists = [\"weak/blacklist.RSA-2048\"]\n{config}");
    std::fs::write(&config_path, &with_list).expect("config");
    s.start();
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": listed_csr})),
    );
    assert_eq!((st, harness::code(&v)), (403, "BlockedKey"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("weak keys"),
        "{v}"
    );
    let (st, v) = s.curl("POST", "/v1/certificates", Some(&json!({"csr": other_csr})));
    assert_eq!(st, 201, "{v}");
    s.stop();
    // A list that does not parse stops the server at start.
    std::fs::write(s.dir.join("weak/blacklist.RSA-2048"), "not a fingerprint\n").expect("list");
    let log = start_fails(&s, &[]);
    assert!(
        log.contains("blacklist.RSA-2048") && log.contains("line 1"),
        "{log}"
    );
}

/// Security review L5: the master key file can live outside the data
/// directory (`--master-key-file`, `CA_MASTER_KEY_FILE`), so a backup of the
/// directory does not hold both the sealed keys and the key that opens them.
#[test]
fn the_master_key_can_live_outside_the_data_directory() {
    let keys = tempfile::tempdir().expect("tempdir");
    let key_path = keys.path().join("ca-master.key");
    let key_arg = key_path.display().to_string();
    let mut s = Server::init_with(&[], &[("CA_MASTER_KEY_FILE", key_arg.as_str())]);
    assert!(!s.dir.join("master.key").exists());
    let meta = std::fs::metadata(&key_path).expect("key file");
    assert_eq!(meta.len(), 32);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let log = s.log();
    assert!(
        log.contains("outside the data directory") && !log.contains("beside ca.redb"),
        "{log}"
    );
    // Without the path the server does not start, and says what it missed.
    let err = start_fails(&s, &[]);
    assert!(err.contains("master.key"), "{err}");
    s.start();
    issue_ok(&s);
    assert_eq!(s.stop().code(), Some(0));
    // Rotation writes the new key at the same place.
    let before = std::fs::read(&key_path).expect("key");
    let out = rotate(&s, &["--master-key-file", &key_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(std::fs::read(&key_path).expect("key"), before);
    assert!(!keys.path().join("ca-master.key.new").exists());
    assert!(!s.dir.join("master.key").exists());
    s.start();
    issue_ok(&s);
}
