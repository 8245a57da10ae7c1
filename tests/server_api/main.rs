//! The real `ca-server` binary on 127.0.0.1, driven by curl, openssl and the
//! Rust client: mutual TLS refusals, issuance verified by `openssl verify`,
//! idempotency, disabled CAs, server-made keys, CA hierarchy, restart.

#[path = "../harness/mod.rs"]
mod harness;

mod hierarchy;
mod idempotency;
mod issuance;
mod mtls;
mod startup;

use std::process::Command;

use harness::run;
use serde_json::Value;

fn write(path: &std::path::Path, data: impl AsRef<[u8]>) {
    std::fs::write(path, data).expect("write");
}

fn openssl_verify(dir: &std::path::Path, root: &std::path::Path, v: &Value) {
    let leaf = dir.join("leaf.pem");
    let chain = dir.join("chain.pem");
    write(&leaf, v["certificate"].as_str().expect("certificate"));
    write(&chain, v["certificate_chain"].as_str().expect("chain"));
    let out = run(Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(root)
        .arg("-untrusted")
        .arg(&chain)
        .arg(&leaf));
    assert!(
        out.status.success(),
        "openssl verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
