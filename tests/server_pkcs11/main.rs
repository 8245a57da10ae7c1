//! CA keys in a PKCS#11 token, through the real `ca-server` and a SoftHSM2
//! token made for each test in its own directory (`SOFTHSM2_CONF`): keys made
//! inside the token sign certificates, CRLs and OCSP responses that openssl
//! accepts; `pkcs11-tool` sees them sensitive and never extractable; the
//! store holds only references; a restart finds them again; an existing key
//! is adopted by label; a wrong PIN, a missing token or module stop the
//! server at start with the documented message; a token that goes away while
//! serving gives 503 `Unavailable`, and the server recovers when it is back.

#[path = "../harness/mod.rs"]
mod harness;

mod availability;
mod ca_creation;
mod master_key;
mod signing;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use harness::relying::*;
use harness::{run, Server};
use serde_json::Value;

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
