//! Token keys sign what openssl accepts, and never leave the token.

use std::path::{Path, PathBuf};

use super::{create_ca, openssl_verifies, private_keys, server_with_token, SoftHsm};
use crate::harness::relying::*;
use crate::harness::{openssl_csr, Server};
use serde_json::{json, Value};

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
