//! CAs created with token keys: adopted by label, extractable refused, no token.

use super::{create_ca, private_keys, server_with_token, SoftHsm};
use crate::harness::relying::*;
use crate::harness::{code, Server};
use serde_json::{json, Value};

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
