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

#[test]
fn chromium_trusts_a_certificate_from_the_running_server_only_with_its_root_installed() {
    let chromium = chromium_binary();
    // The real server issues the certificate, from a key and CSR openssl made.
    let ca = Server::start_new();
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
    // The root a browser is told to trust: the one `ca-server init` handed out.
    let root_path = ca.root_pem();

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
    let _server = KillOnDrop(server);
    wait_for_port(port, "openssl s_server");
    let url = format!("https://localhost:{port}/");

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
