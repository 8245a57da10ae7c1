//! A full disk is survivable: on a small tmpfs the test mounts for the data
//! directory, writes that fail for lack of space answer 503 `Unavailable`
//! naming the cause, health reports the store not writable, and writes
//! succeed again as soon as space returns, without a restart. Nothing
//! answered is lost and the audit trail still verifies. And at the store
//! itself: a lone write (committed on its caller's thread) that finds the disk
//! full still gets the store reopened by itself, with no other write to help.

mod harness;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::server::server_bin;
use harness::{code, core_csr, run, Server};
use serde_json::json;

/// A tmpfs mounted over a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let out = run(Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir));
        assert!(
            out.status.success(),
            "this test needs to mount a small tmpfs (run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run(Command::new("umount").arg("-l").arg(&self.0));
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let out = run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to));
    assert!(
        out.status.success(),
        "cp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Fill the file system until it is full; returns the filler's path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

/// Health on the mutual-TLS API listener and on the public one.
fn health(s: &Server) -> (u16, u16) {
    let (api, _) = s.curl("GET", "/health", None);
    (api, public_health(s))
}

/// Health on the public listener only: no client certificate, so nothing
/// the server does for it writes to the store (a refused API client does:
/// its refusal is audited).
fn public_health(s: &Server) -> u16 {
    let out = run(Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{}/health", s.public)));
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn a_full_disk_answers_503_and_writes_resume_when_space_returns() {
    let mut s = Server::init_with(&[], &[]);
    // Move the data directory onto a 12 MiB tmpfs.
    let orig = s.dir.with_extension("orig");
    std::fs::rename(&s.dir, &orig).expect("move");
    std::fs::create_dir(&s.dir).expect("mkdir");
    let mount = Tmpfs::mount(&s.dir, "12m");
    copy_tree(&orig, &s.dir);
    s.start();
    let ca = s.config.issuing_ca_id.clone();
    let csr = core_csr("full.example.internal");
    let issue = |s: &Server| {
        s.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"ca_id": ca, "csr": csr})),
        )
    };

    let (st, v) = issue(&s);
    assert_eq!(st, 201, "{v}");
    let mut answered = vec![v["serial"].as_str().expect("serial").to_string()];
    assert_eq!(health(&s), (200, 200));

    // Issue until the disk is full; the write that finds it full is refused
    // as Unavailable, naming the cause. Returns the filler.
    let fill_until_refused = |s: &Server, answered: &mut Vec<String>| {
        let filler = fill(&s.dir);
        let mut refusal = None;
        for _ in 0..20_000 {
            let (st, v) = issue(s);
            match st {
                201 => answered.push(v["serial"].as_str().expect("serial").to_string()),
                _ => {
                    refusal = Some((st, v));
                    break;
                }
            }
        }
        let (st, v) = refusal.expect("the disk never filled");
        assert_eq!(st, 503, "a full disk is Unavailable, not {st}: {v}");
        assert_eq!(code(&v), "Unavailable", "{v}");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(
            msg.contains("no space") || msg.contains("retrying"),
            "the message names the cause: {msg}"
        );
        filler
    };
    let recovers = |what: &str, start: Instant, done: &mut dyn FnMut() -> bool| {
        while !done() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{what} did not recover once space returned"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // First, with nothing more asked of the server than public health (no
    // client, whose refusal would be audited): health says so, and once
    // space returns the store reopens by itself and health says so.
    let filler = fill_until_refused(&s, &mut answered);
    assert_eq!(public_health(&s), 503, "health while the disk is full");
    std::fs::remove_file(&filler).expect("free space");
    recovers("health", Instant::now(), &mut || public_health(&s) == 200);
    assert_eq!(health(&s), (200, 200));

    // Then full again, and written to while full: refused again, health
    // says so on both listeners, and a read fails closed (while the store
    // cannot be read, the caller's certificate cannot be checked against
    // revocation); once space returns, writes succeed again without a
    // restart.
    let filler = fill_until_refused(&s, &mut answered);
    let (st, v) = issue(&s);
    assert_eq!(st, 503, "{v}");
    assert_eq!(health(&s), (503, 503), "health while the disk is full");
    let (st, v) = s.curl("GET", "/v1/cas", None);
    assert_eq!((st, code(&v)), (503, "Unavailable"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("client certificate's status cannot be checked"),
        "{v}"
    );
    std::fs::remove_file(&filler).expect("free space");
    let start = Instant::now();
    recovers("issuance", start, &mut || {
        let (st, v) = issue(&s);
        if st == 201 {
            answered.push(v["serial"].as_str().expect("serial").to_string());
        }
        st == 201
    });
    assert_eq!(health(&s), (200, 200), "health once space returned");
    eprintln!(
        "{} certificates answered; 503 while full; resumed after {:?}",
        answered.len(),
        start.elapsed()
    );

    // Nothing answered was lost, across a restart; the trail verifies.
    s.stop();
    let out = run(Command::new(server_bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(&s.dir));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.start();
    for serial in &answered {
        let (st, v) = s.curl("GET", &format!("/v1/certificates/{serial}"), None);
        assert_eq!(st, 200, "{serial} answered but not stored: {v}");
    }
    s.stop();
    drop(mount);
}

/// A write that comes alone is committed on its caller's thread. When that
/// commit finds the disk full, the store drops its database and only its
/// writer thread reopens it; the caller wakes the writer for that. With no
/// other write ever coming to wake it (in the server, a refused client's
/// audited refusal would), reads must still come back once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_broken_by_a_lone_write_reopens_with_no_other_write() {
    use ca_server::store::{redb::RedbStore, MarkAdvance, Store, StoreError};
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("data");
    std::fs::create_dir(&dir).expect("mkdir");
    let _mount = Tmpfs::mount(&dir, "16m");
    let store = RedbStore::open(&dir, "lone".into()).expect("open");
    let mark = |expect, set| MarkAdvance {
        name: "lone".into(),
        expect,
        set,
    };
    store
        .append_events(Vec::new(), mark(None, 1), None)
        .await
        .expect("a write with space");

    let filler = fill(&dir);
    // The journal's file is grown ahead of its records (256 KiB at a time):
    // writes fit in what it has until its next step finds no space.
    let (mut last, mut refused) = (1, None);
    for _ in 0..100_000 {
        match store
            .append_events(Vec::new(), mark(Some(last), last + 1), None)
            .await
        {
            Ok(_) => last += 1,
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let refused = refused.expect("a write refused on a full disk");
    assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
    // The store is broken: reads fail until it is reopened.
    assert!(
        matches!(store.event_mark("lone"), Err(StoreError::Unavailable(_))),
        "a read while the store is broken"
    );
    std::fs::remove_file(&filler).expect("free space");
    let start = Instant::now();
    loop {
        match store.event_mark("lone") {
            Ok(found) => {
                assert_eq!(found, Some(last), "the refused write left nothing");
                break;
            }
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(10),
                "the store did not reopen by itself once space returned: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.close();
}
