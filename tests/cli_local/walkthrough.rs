//! The offline walk-through: every fact it establishes, and its story.

use super::*;

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
