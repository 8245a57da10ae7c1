//! End-to-end tests of `ca-cli`'s local tools and offline walk-through: they run
//! the real binary and check files, exit codes, text and JSON output, and use
//! `openssl` as an independent judge where one helps.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod files;
mod verify;
mod walkthrough;

const BIN: &str = env!("CARGO_BIN_EXE_ca-cli");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> String {
    repo().join("fixtures/csr").join(name).display().to_string()
}

fn cli(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("run ca-cli")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

fn ok(o: Output) -> Output {
    assert_eq!(
        code(&o),
        0,
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// A failing run: the exit code, and a readable message (no panic, no backtrace).
fn fails(o: &Output, expected_code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(
        code(o),
        expected_code,
        "stdout: {}\nstderr: {err}",
        stdout(o)
    );
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "stderr lacks {needle:?}: {err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// Run the offline walk-through once, keeping its files as fixtures
/// (a root, Bob's chains, Mallory's certificates, a CRL revoking Bob's P-256 one).
fn walkthrough_files(dir: &Path) -> PathBuf {
    let keep = dir.join("wt");
    ok(cli(&[
        "walkthrough",
        "--yes",
        "--keep",
        keep.to_str().unwrap_or_default(),
    ]));
    keep
}

#[test]
fn key_generate_writes_private_keys_0600_and_never_overwrites() {
    let t = tempfile::tempdir().unwrap();
    for alg in ["ec-p256", "ec-p384", "rsa-2048", "ed25519"] {
        let key = p(t.path(), &format!("{alg}.key"));
        let o = ok(cli(&[
            "key",
            "generate",
            "--algorithm",
            alg,
            "--out",
            &key,
            "-o",
            "json",
        ]));
        let v = json(&o);
        assert_eq!(v["algorithm"], alg);
        assert_eq!(v["public_key_sha256"].as_str().map(str::len), Some(64));
        // The private key goes to the file only.
        assert!(!stdout(&o).contains("PRIVATE KEY"));
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{alg} key mode");
        let pem = std::fs::read_to_string(&key).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        // openssl reads it as a valid PKCS#8 key.
        let check = Command::new("openssl")
            .args(["pkey", "-in", &key, "-noout"])
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "openssl pkey {alg}: {}",
            stderr(&check)
        );
    }
    let key = p(t.path(), "ec-p256.key");
    let before = std::fs::read(&key).unwrap();
    fails(
        &cli(&["key", "generate", "--out", &key]),
        1,
        "already exists",
    );
    assert_eq!(std::fs::read(&key).unwrap(), before, "file untouched");
    // --force replaces it, still 0600, with a public key beside it.
    let public = p(t.path(), "ec-p256.pub");
    ok(cli(&[
        "key",
        "generate",
        "--out",
        &key,
        "--public-out",
        &public,
        "--force",
    ]));
    assert_ne!(std::fs::read(&key).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(std::fs::read_to_string(&public)
        .unwrap()
        .contains("BEGIN PUBLIC KEY"));
    // Bad input.
    fails(
        &cli(&["key", "generate", "--algorithm", "rsa-1024", "--out", &key]),
        2,
        "invalid value",
    );
    fails(
        &cli(&["key", "generate", "--out", "/nonexistent/dir/k.pem"]),
        1,
        "cannot create",
    );
    fails(&cli(&["key", "generate"]), 2, "--out");
}

#[test]
fn completions_and_usage_errors() {
    let o = ok(cli(&["completions", "bash"]));
    assert!(stdout(&o).contains("ca-cli"));
    ok(cli(&["completions", "zsh"]));
    fails(&cli(&["completions", "tcsh"]), 2, "invalid value");
    fails(&cli(&["frobnicate"]), 2, "unrecognized subcommand");
    fails(&cli(&[]), 2, "Usage");
    let h = ok(cli(&["--help"]));
    assert!(stdout(&h).contains("Exit codes"));
    fails(&cli(&["inspect", "-o", "yaml", "x"]), 2, "invalid value");
    // Checks made after clap are usage errors too (exit 2), and come before
    // any file is read.
    fails(
        &cli(&[
            "verify",
            "--root",
            "/nonexistent/root.pem",
            "--name",
            " ",
            "/nonexistent/leaf.pem",
        ]),
        2,
        "--name is empty",
    );
}

#[test]
fn cert_request_refuses_one_path_for_key_and_certificate() {
    let t = tempfile::tempdir().unwrap();
    let pass = p(t.path(), "pass");
    std::fs::write(&pass, "correct horse battery\n").unwrap();
    let same = p(t.path(), "svc.pem");
    let sub = t.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    // Written differently, one file: the check compares canonical directories.
    let other_spelling = sub.join("..").join("svc.pem").display().to_string();
    for out in [same.as_str(), other_spelling.as_str()] {
        // Refused before any connection: the server address is unreachable and
        // no profile or client certificate exists.
        fails(
            &cli(&[
                "cert",
                "--server",
                "https://127.0.0.1:1",
                "request",
                "--name",
                "svc.example.internal",
                "--passphrase-file",
                &pass,
                "--key-out",
                &same,
                "--out",
                out,
            ]),
            2,
            "same file",
        );
    }
    assert!(!t.path().join("svc.pem").exists());
}

/// A reader that goes away (`ca-cli inspect ... | head -1`) ends the output
/// quietly with exit 0, as with other Unix tools, rather than a panic (101).
#[test]
fn closed_stdout_is_not_a_panic() {
    let csr = fixture("p256-sha256.csr");
    // More output than a pipe buffers, so a write fails even if the child
    // starts writing before the read end is closed.
    let files = vec![csr.as_str(); 400];
    for format in ["text", "json"] {
        let mut child = Command::new(BIN)
            .arg("inspect")
            .args(["-o", format])
            .args(&files)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert!(!err.contains("panicked"), "{format}: {err}");
        assert_eq!(code(&o), 0, "{format}: {err}");
    }
}
