//! Backup and restore as a round trip under load: `ca-server backup` takes a
//! snapshot of a running server while four clients issue certificates;
//! `ca-server restore` makes a new data directory from it. The restored
//! trail verifies against the pinned audit key and is a prefix of the
//! original's, entry for entry; every certificate answered before the backup
//! began is in it, and so is every certificate its trail says was issued;
//! the master key is not in the backup; and a server started on the
//! restored directory (with the master key put back) issues again.

mod harness;

use std::collections::HashSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::server::server_bin;
use harness::{core_csr, free_port, run, text, Server};
use hyper::Method;
use serde_json::{json, Value};

/// Every audit entry, oldest first, through the API.
fn audit_entries(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit?limit=500&cursor={c}"),
            None => "/v1/audit?limit=500".to_string(),
        };
        let (st, page) = s.curl("GET", &path, None);
        assert_eq!(st, 200, "{page}");
        out.extend(page["entries"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

/// The number before `what` in `line` ("... 12 audit entries ...").
fn count_before(output: &str, what: &str) -> u64 {
    let at = output
        .find(what)
        .unwrap_or_else(|| panic!("{what:?} in {output}"));
    output[..at]
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count before {what:?} in {output}"))
}

#[test]
fn a_backup_under_load_restores_to_a_consistent_store() {
    let mut s = Server::start_new();
    let issuing = s.config.issuing_ca_id.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let issued: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let body = json!({"csr": core_csr("load.example.com"), "ca_id": issuing});
    let mut load = Vec::new();
    for _ in 0..4 {
        let (api, tls) = (s.api.clone(), s.tls());
        let (stop, issued, body) = (stop.clone(), issued.clone(), body.clone());
        load.push(rt.spawn(async move {
            let mut c = ca_server::api::client::ApiClient::connect(&api, tls)
                .await
                .expect("connect");
            while !stop.load(Ordering::Relaxed) {
                let (st, v) = c
                    .call(Method::POST, "/v1/certificates", Some(&body))
                    .await
                    .expect("issue");
                assert_eq!(st, 201, "{v}");
                let serial = v["serial"].as_str().expect("serial").to_string();
                issued.lock().expect("lock").push((Instant::now(), serial));
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(800));
    let backup = s.tmp.path().join("ca.cabackup");
    let began = Instant::now();
    let out = run(Command::new(server_bin())
        .args(["backup", "--data-dir"])
        .arg(&s.dir)
        .arg("--out")
        .arg(&backup));
    let ended = Instant::now();
    assert!(out.status.success(), "backup: {}", text(&out));
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        rt.block_on(t).expect("load task");
    }
    let issued = issued.lock().expect("lock").clone();
    let before: Vec<&String> = issued
        .iter()
        .filter(|(t, _)| *t < began)
        .map(|(_, s)| s)
        .collect();
    let after = issued.iter().filter(|(t, _)| *t > ended).count();
    assert!(
        before.len() >= 10 && after >= 10,
        "the load ran before ({}) and after ({after}) the backup",
        before.len()
    );

    // The master key is not in the backup; the sealed CA keys are.
    let backup_bytes = std::fs::read(&backup).expect("backup");
    let master = std::fs::read(s.dir.join("master.key")).expect("master.key");
    // master.key is 32 raw random bytes: look for exactly those.
    assert_eq!(master.len(), 32, "master.key holds the raw key");
    assert!(
        !backup_bytes
            .windows(master.len())
            .any(|w| w == master.as_slice()),
        "the master key is in the backup"
    );

    let original_audit = audit_entries(&s);
    s.stop();

    // Restore into a new directory, on new ports.
    let restored = s.tmp.path().join("restored");
    let restore_from = |from: &std::path::Path, dir: &std::path::Path| {
        run(Command::new(server_bin())
            .args(["restore", "--from"])
            .arg(from)
            .arg("--data-dir")
            .arg(dir)
            .args(["--api-addr", &format!("127.0.0.1:{}", free_port())])
            .args(["--public-addr", &format!("127.0.0.1:{}", free_port())]))
    };
    let restore = |dir: &std::path::Path| restore_from(&backup, dir);
    let out = restore(&restored);
    let said = text(&out);
    assert!(out.status.success(), "restore: {said}");
    assert!(said.contains("hash chain intact"), "{said}");
    let restored_certs = count_before(&said, "certificates");
    let restored_entries = count_before(&said, "audit entries") as usize;
    // A file that is not a backup is refused, and leaves no directory.
    let garbage = s.tmp.path().join("garbage.cabackup");
    std::fs::write(&garbage, b"not a backup").expect("garbage");
    let nowhere = s.tmp.path().join("nowhere");
    let out = restore_from(&garbage, &nowhere);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("not a ca-server backup"),
        "{}",
        text(&out)
    );
    assert!(!nowhere.exists(), "a failed restore left a directory");
    // A backup whose bytes changed (here a certificate's name, wherever it
    // is in the file) is refused: the restore checks every page of what it
    // restored, and leaves no directory behind.
    let mut damaged_bytes = std::fs::read(&backup).expect("backup");
    let flipped = harness::flip_case_of(&mut damaged_bytes, b"load.example.com");
    assert!(flipped > 0, "the name is not in the backup as it is");
    let damaged = s.tmp.path().join("damaged.cabackup");
    std::fs::write(&damaged, &damaged_bytes).expect("damaged");
    let from_damaged = s.tmp.path().join("from-damaged");
    let out = restore_from(&damaged, &from_damaged);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("integrity check failed"),
        "{}",
        text(&out)
    );
    assert!(!from_damaged.exists(), "a failed restore left a directory");
    // Not over a directory in use.
    let again = restore(&restored);
    assert!(!again.status.success());
    assert!(text(&again).contains("not empty"), "{}", text(&again));

    // The restored trail verifies against the key the operator pinned.
    let out = run(Command::new(server_bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(&restored)
        .arg("--digest-key")
        .arg(s.dir.join("audit-digest-key.pem")));
    assert!(
        out.status.success() && text(&out).contains("pinned"),
        "{}",
        text(&out)
    );

    // Start a server on it with the master key put back.
    std::fs::copy(s.dir.join("master.key"), restored.join("master.key")).expect("master key");
    // The administrator brings their own credentials (not in a backup); the
    // client-auth CA is the same, so they are accepted.
    for f in ["admin.pem", "admin.key"] {
        std::fs::copy(s.dir.join("admin").join(f), restored.join("admin").join(f)).expect(f);
    }
    s.dir = restored.clone();
    s.start();
    let restored_audit = audit_entries(&s);
    assert!(restored_entries <= original_audit.len());
    // The restored trail is the original's, entry for entry, up to the snapshot.
    for (i, (r, o)) in restored_audit
        .iter()
        .zip(&original_audit)
        .take(restored_entries)
        .enumerate()
    {
        assert_eq!(r["hash"], o["hash"], "entry {} differs", i + 1);
    }
    // Each issuance the restored trail records is in the restored store.
    let mut audited = HashSet::new();
    for e in restored_audit.iter().take(restored_entries) {
        // A committed issuance names its certificate as CA/serial.
        if e["action"] == "IssueCertificate"
            && e["target"].as_str().is_some_and(|t| t.contains('/'))
        {
            let target = e["target"].as_str().expect("target");
            let serial = target.rsplit('/').next().expect("serial").to_string();
            audited.insert(serial);
        }
    }
    assert!(audited.len() as u64 <= restored_certs);
    // Every certificate answered before the backup began is there, and
    // every one the restored trail records (one connection, many reads).
    for serial in &before {
        assert!(
            audited.contains(*serial),
            "{serial} is not in the restored trail"
        );
    }
    rt.block_on(async {
        let mut c = s.client().await;
        for serial in &audited {
            let (st, v) = c
                .call(Method::GET, &format!("/v1/certificates/{serial}"), None)
                .await
                .expect("get");
            assert_eq!(st, 200, "{serial}: {v}");
            assert!(
                v["certificate"]
                    .as_str()
                    .is_some_and(|p| p.contains("BEGIN CERTIFICATE")),
                "{v}"
            );
        }
    });
    // The restored server's keys open: it issues.
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": core_csr("after.example.com"), "ca_id": issuing})),
    );
    assert_eq!(st, 201, "{v}");
}
