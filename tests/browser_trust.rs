//! A browser that trusts our root accepts a server certificate we issue, and
//! the same browser without the root refuses it: headless Chromium, with an NSS
//! database (certutil) holding the root, loading a page from `openssl s_server`.

mod support;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ca_core::cert::{issue, CertificateRequest};
use ca_core::csr::parse_csr;
use ca_core::keys::KeyAlgorithm;
use ca_core::profile::Profile;
use support::{fixture, repo_root, run, text, Hierarchy};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "s_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

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
    let out = run("certutil", &["-d", &db_arg, "-N", "--empty-password"]);
    assert!(out.status.success(), "certutil -N: {}", text(&out));
    if let Some(root) = root_pem {
        let out = run(
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
fn chromium_trusts_an_issued_server_certificate_only_with_the_root_installed() {
    let chromium = chromium_binary();
    let dir = tempfile::tempdir().expect("tempdir");
    let h = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let csr = parse_csr(&fixture("p256-sha256.csr")).expect("csr");
    let leaf = issue(
        &h.issuer,
        &h.issuer_key,
        &CertificateRequest::from_csr(&csr, Profile::TlsServer),
        time::OffsetDateTime::now_utc(),
    )
    .expect("issue");
    let leaf_path = dir.path().join("leaf.pem");
    let chain_path = dir.path().join("chain.pem");
    let root_path = dir.path().join("root.pem");
    fs::write(&leaf_path, leaf.to_pem()).expect("write");
    fs::write(&chain_path, h.issuer.certificate.to_pem()).expect("write");
    fs::write(
        &root_path,
        ca_core::pem::encode("CERTIFICATE", h.root_der()),
    )
    .expect("write");
    let key_path = repo_root().join("fixtures/csr/p256-sha256.key.pem");

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
    wait_for_port(port);
    let url = format!("https://localhost:{port}/");

    let trusting = dir.path().join("trusting");
    make_nssdb(&trusting, Some(&root_path));
    let (page, log) = load_page(&chromium, &trusting, &url);
    assert!(
        page.contains("Ciphers supported"),
        "Chromium with our root did not load the page:\n{page}\n{log}"
    );

    let untrusting = dir.path().join("untrusting");
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
