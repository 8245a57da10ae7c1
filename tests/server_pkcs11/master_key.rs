//! The master key in the token: wrapping, rotation, moving a key file in.

use std::process::{Command, Output};

use super::{create_ca, module, serve_expecting_failure, SoftHsm};
use crate::harness;
use crate::harness::relying::*;
use crate::harness::{run, Server};
use serde_json::json;

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
