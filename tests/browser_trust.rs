//! A browser that trusts our root accepts a server certificate the running
//! ca-server issued, and the same browser without the root refuses it: headless
//! Chromium, with an NSS database (certutil) holding the root `ca-server init`
//! handed out, loading a page from `openssl s_server`.

mod harness;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use harness::{free_port, openssl_csr, run_program, text, wait_for_port, KillOnDrop, Server};

fn chromium_binary() -> String {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return candidate.to_string();
        }
    }
    panic!("no Chromium found. Install the test tools with: bash tests/install-test-tools.sh");
}

/// Load `url` in a fresh headless Chromium whose HOME is `home` (so its NSS
/// database is `home/.pki/nssdb`); returns the page's DOM and Chromium's log.
fn load_page(chromium: &str, home: &Path, url: &str) -> (String, String) {
    let profile = home.join("profile");
    let out = Command::new(chromium)
        .env("HOME", home)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .output()
        .expect("run chromium");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn make_nssdb(home: &Path, root_pem: Option<&Path>) {
    let db = home.join(".pki/nssdb");
    fs::create_dir_all(&db).expect("nssdb dir");
    let db_arg = format!("sql:{}", db.display());
    let out = run_program("certutil", &["-d", &db_arg, "-N", "--empty-password"]);
    assert!(out.status.success(), "certutil -N: {}", text(&out));
    if let Some(root) = root_pem {
        let out = run_program(
            "certutil",
            &[
                "-d",
                &db_arg,
                "-A",
                "-n",
                "ca-core test root",
                "-t",
                "C,,",
                "-i",
                root.to_str().expect("path"),
            ],
        );
        assert!(out.status.success(), "certutil -A: {}", text(&out));
    }
}

/// A certificate for localhost issued by the running server (key and CSR
/// from openssl), served by `openssl s_server`: its URL, the server process,
/// and the leaf and chain files.
fn serve_issued_leaf(ca: &Server) -> (String, KillOnDrop, std::path::PathBuf, std::path::PathBuf) {
    let dir = ca.tmp.path();
    let (key_path, csr) = openssl_csr(dir, "localhost", "DNS:localhost");
    let (status, issued) = ca.curl(
        "POST",
        "/v1/certificates",
        Some(&serde_json::json!({ "csr": csr, "profile": "tls-server" })),
    );
    assert_eq!(status, 201, "issue: {issued}");
    let leaf_path = dir.join("leaf.pem");
    let chain_path = dir.join("chain.pem");
    fs::write(
        &leaf_path,
        issued["certificate"].as_str().expect("certificate"),
    )
    .expect("write");
    fs::write(
        &chain_path,
        issued["certificate_chain"].as_str().expect("chain"),
    )
    .expect("write");
    let port = free_port();
    let server = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&leaf_path)
        .arg("-cert_chain")
        .arg(&chain_path)
        .arg("-key")
        .arg(&key_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let server = KillOnDrop(server);
    wait_for_port(port, "openssl s_server");
    (
        format!("https://localhost:{port}/"),
        server,
        leaf_path,
        chain_path,
    )
}

#[test]
fn chromium_trusts_a_certificate_from_the_running_server_only_with_its_root_installed() {
    let chromium = chromium_binary();
    let ca = Server::start_new();
    let dir = ca.tmp.path();
    let (url, _server, _, _) = serve_issued_leaf(&ca);
    // The root a browser is told to trust: the one `ca-server init` handed out.
    let root_path = ca.root_pem();

    let trusting = dir.join("trusting");
    make_nssdb(&trusting, Some(&root_path));
    let (page, log) = load_page(&chromium, &trusting, &url);
    assert!(
        page.contains("Ciphers supported"),
        "Chromium with our root did not load the page:\n{page}\n{log}"
    );

    let untrusting = dir.join("untrusting");
    make_nssdb(&untrusting, None);
    let (page, log) = load_page(&chromium, &untrusting, &url);
    assert!(
        !page.contains("Ciphers supported"),
        "Chromium without our root loaded the page:\n{page}"
    );
    // The refusal must be about trust, not a connection or TLS failure.
    assert!(
        log.contains("ERR_CERT_AUTHORITY_INVALID"),
        "unexpected failure without the root:\n{log}"
    );
}

/// Removes a system-store entry the test added, whatever happens.
struct SystemStoreEntry(std::path::PathBuf);

impl Drop for SystemStoreEntry {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = fs::remove_file(&self.0);
            let _ = Command::new("update-ca-certificates")
                .arg("--fresh")
                .output();
        }
    }
}

/// `ca-cli trust install` makes Chromium (through ~/.pki/nssdb) and openssl
/// (through the system store, /etc/ssl/certs) accept a certificate the
/// running server issued; `trust uninstall` takes both back.
#[test]
fn trust_install_and_uninstall_change_what_chromium_and_the_system_store_accept() {
    let chromium = chromium_binary();
    let ca = Server::start_new();
    let dir = ca.tmp.path();
    let (url, _server, leaf, chain) = serve_issued_leaf(&ca);
    let home = dir.join("home");
    fs::create_dir_all(&home).expect("home");
    let system_verify = || {
        let out = run_program(
            "openssl",
            &[
                "verify",
                "-CApath",
                "/etc/ssl/certs",
                "-untrusted",
                &chain.to_string_lossy(),
                &leaf.to_string_lossy(),
            ],
        );
        (out.status.success(), text(&out))
    };
    let trust = |action: &str| {
        let out = Command::new(harness::binary("ca-cli"))
            .env("HOME", &home)
            .args(["trust", action, "--cert"])
            .arg(ca.root_pem())
            .output()
            .expect("ca-cli");
        assert!(out.status.success(), "trust {action}: {}", text(&out));
        text(&out)
    };
    let fresh_profile = || {
        let _ = fs::remove_dir_all(home.join("profile"));
    };
    // Before: neither trusts it.
    let (ok, said) = system_verify();
    assert!(!ok, "the system store trusts our root already: {said}");

    let said = trust("install");
    let entry = fs::read_dir("/usr/local/share/ca-certificates")
        .expect("system store")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("ca-server-root-"))
        .unwrap_or_else(|| panic!("no system store entry: {said}"));
    let _cleanup = SystemStoreEntry(entry.clone());
    let (ok, out) = system_verify();
    assert!(ok, "openssl with the system store after install: {out}");
    fresh_profile();
    let (page, log) = load_page(&chromium, &home, &url);
    assert!(
        page.contains("Ciphers supported"),
        "Chromium after trust install did not load the page:\n{said}\n{page}\n{log}"
    );

    trust("uninstall");
    assert!(!entry.exists(), "uninstall left {}", entry.display());
    let (ok, out) = system_verify();
    assert!(!ok, "openssl still trusts the root after uninstall: {out}");
    fresh_profile();
    let (page, log) = load_page(&chromium, &home, &url);
    assert!(
        !page.contains("Ciphers supported") && log.contains("ERR_CERT_AUTHORITY_INVALID"),
        "Chromium after trust uninstall:\n{page}\n{log}"
    );
}
