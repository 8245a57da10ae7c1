//! Server start: no huge pages, a default data directory, a refused lifetime.

use std::process::Command;

use crate::harness;
use crate::harness::server::server_bin;
use crate::harness::{run, Server};
use serde_json::Value;

/// Whether the kernel lets process `pid` have transparent huge pages.
fn thp_enabled(pid: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("THP_enabled:"))
        .map(|v| v.trim().to_string())
}

/// The server runs without transparent huge pages (it turns them off for
/// itself at start: see main.rs), as the kernel reports for its process,
/// while this test's own process has them: the kernel would give them.
#[test]
fn the_server_runs_without_transparent_huge_pages() {
    if thp_enabled("self").as_deref() != Some("1") {
        eprintln!(
            "SKIPPED: this kernel gives this test process no transparent huge pages \
             (THP_enabled: {:?}), so a server without them proves nothing",
            thp_enabled("self")
        );
        return;
    }
    let s = Server::start_new();
    let pid = s.pid().expect("running");
    assert_eq!(thp_enabled(&pid.to_string()).as_deref(), Some("0"));
}

#[test]
fn serve_without_data_dir_initialises_the_default_directory_on_first_start() {
    let tmp = tempfile::tempdir().unwrap();
    let xdg = tmp.path().join("xdg");
    let child = Command::new(server_bin())
        .args([
            "serve",
            "--api-addr",
            "127.0.0.1:0",
            "--public-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .env("XDG_DATA_HOME", &xdg)
        .env_remove("CA_SERVER_DATA_DIR")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("server.log")).unwrap())
        .spawn()
        .unwrap();
    // Killed even when an assertion below fails.
    let mut child = harness::KillOnDrop(child);
    let dir = xdg.join("ca-server");
    let addresses = dir.join(ca_server::server::ADDRESSES_FILE);
    let start = std::time::Instant::now();
    while !addresses.exists() {
        assert!(start.elapsed().as_secs() < 30, "no start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    let a: Value = serde_json::from_slice(&std::fs::read(&addresses).unwrap()).unwrap();
    let api = a["api"].as_str().unwrap();
    // Everything secret is owner-only.
    use std::os::unix::fs::PermissionsExt;
    for f in [
        "config.toml",
        "ca.redb",
        "admin/admin.key",
        "admin/admin.pem",
        "tls/server.key",
    ] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f} has mode {mode:o}");
    }
    // CA keys are sealed inside the store; the master key file is owner-only.
    let mode = std::fs::metadata(dir.join("master.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "master.key has mode {mode:o}");
    assert!(!dir.join("keys").exists(), "no plaintext key directory");
    let admin = dir.join("admin");
    let out = run(Command::new("curl")
        .args(["-sS", "-f", "--cacert"])
        .arg(admin.join("root.pem"))
        .arg("--cert")
        .arg(admin.join("admin.pem"))
        .arg("--key")
        .arg(admin.join("admin.key"))
        .arg(format!("https://{api}/health")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let status = child.0.wait().unwrap();
    assert!(status.success());
    // JSON logs, and no private key in them.
    let log = std::fs::read_to_string(tmp.path().join("server.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with('{') && l.contains("\"ca-server listening\"")),
        "{log}"
    );
    assert!(!log.contains("PRIVATE KEY"));
}

/// Security review L6: no configuration makes server certificates live past
/// the CA/Browser Forum's 398 days; the server refuses to start with one.
#[test]
fn a_server_lifetime_over_398_days_is_refused_at_start() {
    let s = Server::init_with(&[], &[]);
    let path = s.dir.join("config.toml");
    let config = std::fs::read_to_string(&path).expect("config");
    let section = "[validity.tls-server]\ndefault_days = 90\nmax_days = 398\n";
    assert!(config.contains(section), "{config}");
    std::fs::write(
        &path,
        config.replace(
            section,
            "[validity.tls-server]\ndefault_days = 90\nmax_days = 3650\n",
        ),
    )
    .expect("write config");
    let mut child = harness::KillOnDrop(
        Command::new(server_bin())
            .args(["serve", "--data-dir"])
            .arg(&s.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(s.tmp.path().join("refused.log")).expect("log"))
            .spawn()
            .expect("spawn"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.0.try_wait().expect("wait") {
            break st;
        }
        assert!(std::time::Instant::now() < deadline, "the server started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(s.tmp.path().join("refused.log")).expect("log");
    assert!(log.contains("398") && log.contains("tls-server"), "{log}");
}
