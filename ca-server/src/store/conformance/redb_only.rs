//! The redb store's own cases: what the shared suite cannot say about a
//! backend (its schema versions, how full its pages are, how it packs).

use super::*;

mod projected_events;
mod quick_repair;
mod write_now_reopen;

#[tokio::test]
async fn redb_refuses_a_newer_schema_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    Redb.open(dir.path(), "a").close();
    {
        use ::redb::ReadableDatabase as _;
        let db = ::redb::Database::create(dir.path().join(redb::DB_FILE)).expect("db");
        let txn = db.begin_write().expect("txn");
        txn.open_table(::redb::TableDefinition::<&str, u64>::new("meta"))
            .expect("meta")
            .insert("schema_version", redb::SCHEMA_VERSION + 1)
            .expect("insert");
        txn.commit().expect("commit");
        let _ = db.begin_read();
    }
    let err = redb::RedbStore::open(dir.path(), "b".into())
        .err()
        .expect("refused");
    assert!(
        matches!(err, StoreError::NewerSchema { found, .. } if found == redb::SCHEMA_VERSION + 1)
    );
    assert!(err.to_string().contains("newer than this server supports"));
    let err = redb::RedbStore::open_read_only(dir.path())
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::NewerSchema { .. }));
}

/// A store written before the binary records (schema 1: every record JSON)
/// opens, reads and verifies as before, takes new records beside the old,
/// and is marked schema 2 so an older binary refuses it.
#[tokio::test]
async fn redb_reads_a_version_1_store_of_json_records() {
    use ::redb::{ReadableDatabase as _, ReadableTable as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Redb.open(dir.path(), "a");
    issue_one(s.as_ref(), CA1, "0a").await;
    s.close();
    drop(s);
    let meta = ::redb::TableDefinition::<&str, u64>::new("meta");
    let certs = ::redb::TableDefinition::<&str, &[u8]>::new("certs");
    let audit = ::redb::TableDefinition::<u64, &[u8]>::new("audit");
    let events = ::redb::TableDefinition::<u64, &[u8]>::new("events");
    // Rewrite what schema 2 wrote as schema 1 did: JSON, and version 1.
    let old_cert = issued(intent(CA1, "0a", "a"));
    {
        let db = ::redb::Database::create(dir.path().join(redb::DB_FILE)).expect("db");
        let txn = db.begin_write().expect("txn");
        {
            let key = cert_key(CA1, "0a");
            let mut t = txn.open_table(certs).expect("certs");
            assert_ne!(
                t.get(key.as_str()).expect("get").expect("cert").value()[0],
                b'{'
            );
            let j = serde_json::to_vec(&old_cert).expect("json");
            t.insert(key.as_str(), j.as_slice()).expect("insert");
            // Schema 1 kept the DER by certificate key.
            let der = txn
                .open_table(::redb::TableDefinition::<u64, &[u8]>::new("cert_der_seq"))
                .expect("cert_der_seq")
                .remove(1)
                .expect("remove")
                .expect("the DER")
                .value()
                .to_vec();
            txn.open_table(::redb::TableDefinition::<&str, &[u8]>::new("cert_der"))
                .expect("cert_der")
                .insert(key.as_str(), der.as_slice())
                .expect("insert");
            let mut a = txn.open_table(audit).expect("audit");
            let entries: Vec<(u64, AuditEntry)> = s_entries(&a);
            assert!(!entries.is_empty());
            for (seq, e) in entries {
                let j = serde_json::to_vec(&e).expect("json");
                a.insert(seq, j.as_slice()).expect("insert");
            }
            let mut ev = txn.open_table(events).expect("events");
            let j = serde_json::to_vec(&event(5, "CertificateIssued")).expect("json");
            ev.insert(1, j.as_slice()).expect("insert");
            txn.open_table(meta)
                .expect("meta")
                .insert("schema_version", 1)
                .expect("insert");
        }
        txn.commit().expect("commit");
    }
    fn s_entries(t: &::redb::Table<u64, &[u8]>) -> Vec<(u64, AuditEntry)> {
        t.iter()
            .expect("iter")
            .map(|i| {
                let (k, v) = i.expect("item");
                (
                    k.value(),
                    redb::decode_audit_for_tests(v.value()).expect("decode"),
                )
            })
            .collect()
    }
    let s = Redb.open(dir.path(), "b");
    let (rec, der) = s.get_cert(CA1, "0a").expect("read").expect("cert");
    assert_eq!(rec, old_cert);
    assert_eq!(der.as_deref(), Some(&b"der"[..]));
    assert!(matches!(
        s.verify_audit(None).expect("verify"),
        Verdict::Ok { .. }
    ));
    let ev = s.events_after(0, 10).expect("events");
    assert_eq!(ev[0].event_type, "CertificateIssued");
    // New records, binary, beside the old; the chain runs on through both.
    issue_one(s.as_ref(), CA1, "0b").await;
    assert!(matches!(
        s.verify_audit(None).expect("verify"),
        Verdict::Ok { count, .. } if count >= 2
    ));
    assert_eq!(audit_actions(s.as_ref()).len(), 2);
    s.close();
    drop(s);
    let db = ::redb::Database::create(dir.path().join(redb::DB_FILE)).expect("db");
    let r = db.begin_read().expect("read");
    let v = r
        .open_table(meta)
        .expect("meta")
        .get("schema_version")
        .expect("get")
        .map(|v| v.value());
    assert_eq!(v, Some(redb::SCHEMA_VERSION));
}

/// Certificates take a fraction of their DER in redb, also after what they
/// look like changed (here: another issuer name under the same CA id, as
/// when a CA's URLs change): the store takes a new dictionary then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_keeps_certificates_packed_when_they_change_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Redb.open(dir.path(), "a");
    let before = real_certificates("Issuing CA, the old way", 1);
    let after = real_certificates("Issuing CA One, with its new name and URLs", 100);
    let mut der_bytes = 0;
    for (n, der) in before.iter().chain(&after).enumerate() {
        let serial = format!("{:04x}", n + 1);
        der_bytes += der.len() as u64;
        s.issue(
            issued(intent(CA1, &serial, "a")),
            der.clone(),
            key_of(&serial),
            draft("IssueCertificate", &serial),
        )
        .await
        .expect("issue");
    }
    for (n, der) in before.iter().chain(&after).enumerate() {
        let (_, got) = s
            .get_cert(CA1, &format!("{:04x}", n + 1))
            .expect("read")
            .expect("stored");
        assert_eq!(got.as_ref(), Some(der));
    }
    s.close();
    drop(s);
    let usage = redb::store_usage(dir.path()).expect("usage");
    let table = |name: &str| usage.tables.iter().find(|t| t.name == name).expect(name);
    let kept = table("cert_der_seq").stored_bytes + table("der_dicts").stored_bytes;
    // Each certificate's key, signature, serial and dates (~45% of an rcgen
    // leaf) are its own; the rest is shared.
    assert!(
        kept * 100 < der_bytes * 65,
        "{kept} bytes kept for {der_bytes} bytes of DER"
    );
}

/// Certificates issued concurrently with time-ordered serials, arriving a
/// little out of order, fill redb's pages instead of leaving them half
/// empty: the writer runs each batch in key order and the DER goes in by
/// commit order, so inserts append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_pages_stay_full_under_concurrent_issuance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Redb.open(dir.path(), "a");
    // Real certificates, so their DER packs as the server's does.
    let ders = Arc::new(real_certificates("Issuing CA One", 960));
    let mut tasks = Vec::new();
    for task in 0..16 {
        let s = s.clone();
        let ders = ders.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..60 {
                let serial = ca_core::serial::Serial::time_ordered(time::OffsetDateTime::now_utc())
                    .expect("serial")
                    .to_hex();
                // Requests finish signing out of the order they drew their
                // serials in: a few yields, as many as the serial's last digit says.
                let delay = u32::from_str_radix(&serial[serial.len() - 1..], 16).unwrap_or(0);
                for _ in 0..delay {
                    tokio::task::yield_now().await;
                }
                let mut rec = issued(intent(CA1, &serial, "a"));
                rec.tbs_sha256 = "ab".repeat(32);
                let der = ders[task * 60 + n].clone();
                s.issue(
                    rec,
                    der,
                    key_of(&serial),
                    draft("IssueCertificate", &serial),
                )
                .await
                .expect("issue");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    s.close();
    drop(s);
    let usage = redb::store_usage(dir.path()).expect("usage");
    for name in ["certs", "cert_der_seq", "serials"] {
        let t = usage.tables.iter().find(|t| t.name == name).expect("table");
        assert_eq!(t.entries, 960, "{name}");
        // Half-empty pages (midpoint splits) would show as about as many
        // unused bytes as stored ones.
        assert!(
            t.fragmented_bytes * 4 < t.stored_bytes,
            "{name}: {} bytes unused in pages for {} stored",
            t.fragmented_bytes,
            t.stored_bytes
        );
    }
}

/// Wait until `count` has reached `n` (the hooks are told just after the
/// store reads again, on the thread that reopened it).
async fn reaches(count: &AtomicUsize, n: usize) -> bool {
    let start = std::time::Instant::now();
    while count.load(Ordering::SeqCst) < n {
        if start.elapsed() > std::time::Duration::from_secs(10) {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    count.load(Ordering::SeqCst) == n
}

/// Wait for the store to answer from itself again (the audit head is read
/// from the store, not memory) after a write broke it; its head then.
async fn reopened(s: &dyn Store) -> (u64, String) {
    let start = std::time::Instant::now();
    loop {
        match s.audit_head() {
            Ok(head) => return head,
            Err(e) => assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "the store did not reopen by itself: {e}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A commit its caller is told has failed: its journal record may be on
/// disk all the same (the sync reporting failure after the write). The
/// journal undoes the record, so the store, reopening by itself, does not
/// replay it. If the undo fails too, the record is replayed: the store then
/// answers what it holds, the alias it had kept in memory included, and the
/// action's audit entry came with it. Each reopen tells the commit hooks
/// (what the server keeps beside the store) to read again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_answers_what_it_holds_after_a_commit_reported_failed() {
    use self::redb::journal::fault::{register, Fault};
    let dir = tempfile::tempdir().expect("tempdir");
    let fault = register(&dir.path().join(redb::DB_FILE));
    let s = Redb.open(dir.path(), "boot1");
    let resyncs = Arc::new(AtomicUsize::new(0));
    let heard = resyncs.clone();
    s.subscribe(Arc::new(move |event| {
        if matches!(event, Committed::Resync) {
            heard.fetch_add(1, Ordering::SeqCst);
        }
    }));
    for id in [CA1, CA2] {
        let new = NewCaRecord {
            ca: ca(id),
            sealed_key: b"sealed".to_vec(),
            certificate: None,
        };
        s.create_ca(new, draft("CreateCertificateAuthority", id))
            .await
            .expect("create");
    }
    s.put_alias("issuing", CA1, draft("PutAlias", "issuing"))
        .await
        .expect("alias");
    // Read once, so the store keeps the aliases in memory.
    assert_eq!(s.get_alias("issuing").expect("alias"), Some(CA1.into()));
    let move_alias = || s.put_alias("issuing", CA2, draft("PutAlias", "issuing"));

    fault.arm(Fault::SyncFails);
    let failed = move_alias().await.expect_err("reported failed");
    assert!(matches!(failed, StoreError::Unavailable(_)), "{failed:?}");
    assert!(!fault.armed(), "the fault did not fire");
    assert_eq!(
        reopened(s.as_ref()).await.0,
        3,
        "the undone record was replayed"
    );
    assert_eq!(s.get_alias("issuing").expect("alias"), Some(CA1.into()));
    assert!(reaches(&resyncs, 1).await, "the hooks were not told once");

    fault.arm(Fault::UndoFailsToo);
    let failed = move_alias().await.expect_err("reported failed");
    assert!(matches!(failed, StoreError::Unavailable(_)), "{failed:?}");
    assert!(!fault.armed(), "the fault did not fire");
    assert_eq!(
        reopened(s.as_ref()).await.0,
        4,
        "the record was not replayed"
    );
    assert!(reaches(&resyncs, 2).await, "the hooks were not told again");
    assert_eq!(
        s.get_alias("issuing").expect("alias"),
        Some(CA2.into()),
        "the reopened store answers from what it kept in memory, not what it holds"
    );
    assert_eq!(
        s.list_aliases().expect("aliases"),
        vec![("issuing".to_string(), CA2.to_string())]
    );
    assert!(matches!(
        s.verify_audit(None).expect("verify"),
        Verdict::Ok { count: 4, .. }
    ));
    s.close();
    drop(s);

    // The file says the same to a fresh reader.
    let r = redb::RedbStore::open_read_only(dir.path()).expect("read-only");
    assert_eq!(r.get_alias("issuing").expect("alias"), Some(CA2.into()));
    let actions: Vec<String> = audit_actions(&r).into_iter().map(|a| a.0).collect();
    assert_eq!(
        actions,
        [
            "CreateCertificateAuthority",
            "CreateCertificateAuthority",
            "PutAlias",
            "PutAlias"
        ]
    );
}

/// Issuances, and audit entries alone (a read's), are made durable by
/// journal redo records: the store's files as a crash leaves them (copied
/// while it is open) open to the same certificates and the same audit
/// trail, hash for hash, whether opened for writing (redone durably),
/// read-only (redone in memory) or recovered on its file before a look
/// (the master key's check). Some come one at a time, some concurrently
/// (several to a record, issuances and audit entries together), with a
/// refused one among them, and a durable commit between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_redoes_after_a_crash_exactly_what_was_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let concrete = Arc::new(redb::RedbStore::open(dir.path(), "a".into()).expect("open"));
    let s: Arc<dyn Store> = concrete.clone();
    let ders = Arc::new(real_certificates("Issuing CA One", 60));
    let serial = |n: usize| format!("{:04x}", n + 1);
    let issue = |s: Arc<dyn Store>, ders: Arc<Vec<Vec<u8>>>, n: usize| async move {
        let serial = format!("{:04x}", n + 1);
        let rec = issued(intent(CA1, &serial, "a"));
        let audit = draft("IssueCertificate", &serial);
        s.issue(rec, ders[n].clone(), key_of(&serial), audit).await
    };
    let read = |s: Arc<dyn Store>, n: usize| async move {
        let audit = draft("GetCertificate", &format!("{:04x}", n + 1));
        s.append_audit(audit).await.map(|_| ())
    };
    let mut reads = 0;
    for n in 0..20 {
        issue(s.clone(), ders.clone(), n).await.expect("issue");
        if n % 3 == 0 {
            read(s.clone(), n).await.expect("audit a read");
            reads += 1;
        }
        if n == 9 {
            // A durable commit between them: what follows is redone on it.
            s.revoke(CA1, &serial(0), rv(1, 100), draft("RevokeCertificate", "r"))
                .await
                .expect("revoke");
        }
    }
    let mut tasks = Vec::new();
    for task in 0..8 {
        let (s, ders) = (s.clone(), ders.clone());
        tasks.push(tokio::spawn(async move {
            for n in (20 + task * 5)..(25 + task * 5) {
                issue(s.clone(), ders.clone(), n).await.expect("issue");
                read(s.clone(), n).await.expect("audit a read");
            }
            // Already stored: refused, its batch goes on.
            if task == 3 {
                issue(s.clone(), ders.clone(), 21)
                    .await
                    .expect_err("stored twice");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let stats = concrete.journal_stats().expect("stats");
    assert!(stats.redo_records > 0, "no issuance went by a redo record");
    let copies: Vec<tempfile::TempDir> = (0..3).map(|_| crash_image(dir.path())).collect();
    let state = |s: &dyn Store| {
        let certs: Vec<_> = (0..ders.len())
            .map(|n| s.get_cert(CA1, &serial(n)).expect("read"))
            .collect();
        let filter = AuditFilter {
            limit: 1000,
            ..Default::default()
        };
        let (trail, _) = s.audit_page(&filter).expect("trail");
        (certs, trail)
    };
    reads += 8 * 5;
    let done = state(s.as_ref());
    assert_eq!(done.1.len(), ders.len() + 1 + reads);
    s.close();
    let redone = Redb.open(copies[0].path(), "b");
    assert!(state(redone.as_ref()) == done, "reopened for writing");
    redone.close();
    drop(redone);
    let again = redb::RedbStore::open_read_only(copies[0].path()).expect("read-only");
    assert!(state(&again) == done, "after the redo was committed");
    let read_only = redb::RedbStore::open_read_only(copies[1].path()).expect("read-only");
    assert!(state(&read_only) == done, "read-only, redone in memory");
    // The look before an open for writing: refused until recovered on the
    // file, which redoes exactly what was done and closes the store clean.
    let third = copies[2].path();
    assert!(
        redb::RedbStore::open_read_only_if_clean(third)
            .expect("look")
            .is_none(),
        "a store a crash left looked clean"
    );
    crate::store::recover(third).expect("recover");
    let recovered = redb::RedbStore::open_read_only_if_clean(third)
        .expect("look")
        .expect("clean after the recovery");
    assert!(state(&recovered) == done, "recovered on its file");
}

/// Issuances answered but not yet committed to redb (carried on in the
/// writer's transaction, durable by their redo records alone) survive a
/// later write that fails and breaks the store: aborting that transaction
/// takes them out of memory, and the reopen redoes them from the journal.
/// The failed one, whose record the journal took back, is not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_keeps_answered_issuances_when_a_later_write_breaks_the_store() {
    use self::redb::journal::fault::{register, Fault};
    let dir = tempfile::tempdir().expect("tempdir");
    let fault = register(&dir.path().join(redb::DB_FILE));
    let s = Redb.open(dir.path(), "a");
    let ders = real_certificates("Issuing CA One", 4);
    let serial = |n: usize| format!("{:04x}", n + 1);
    let issue = |n: usize| {
        let rec = issued(intent(CA1, &serial(n), "a"));
        let audit = draft("IssueCertificate", &serial(n));
        s.issue(rec, ders[n].clone(), key_of(&serial(n)), audit)
    };
    // One at a time and nothing read between: none is published.
    for n in 0..3 {
        issue(n).await.expect("issue");
    }
    fault.arm(Fault::SyncFails);
    let failed = issue(3).await.expect_err("reported failed");
    assert!(matches!(failed, StoreError::Unavailable(_)), "{failed:?}");
    assert!(!fault.armed(), "the fault did not fire");
    assert_eq!(reopened(s.as_ref()).await.0, 3, "the audit trail's head");
    let held = |s: &dyn Store| {
        (0..4)
            .map(|n| s.get_cert(CA1, &serial(n)).expect("read").is_some())
            .collect::<Vec<_>>()
    };
    assert_eq!(held(s.as_ref()), [true, true, true, false]);
    assert!(matches!(
        s.verify_audit(None).expect("verify"),
        Verdict::Ok { count: 3, .. }
    ));
    s.close();
    drop(s);
    let r = redb::RedbStore::open_read_only(dir.path()).expect("read-only");
    assert_eq!(held(&r), [true, true, true, false], "in the file");
}

/// Under a steady stream of issuances (the writer never idle, its
/// transaction carried from batch to batch), a read that starts after an
/// issuance was answered sees it, every time, and waits for the writer to
/// publish rather than for the stream to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_reads_see_every_answered_issuance_under_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Redb.open(dir.path(), "a");
    let ders = Arc::new(real_certificates("Issuing CA One", 400));
    let issue = |s: Arc<dyn Store>, ders: Arc<Vec<Vec<u8>>>, n: usize| async move {
        let serial = format!("{:04x}", n + 1);
        let rec = issued(intent(CA1, &serial, "a"));
        let audit = draft("IssueCertificate", &serial);
        s.issue(rec, ders[n].clone(), key_of(&serial), audit).await
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for task in 0..6 {
        let (s, ders, stop) = (s.clone(), ders.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut n = 100 + task * 50;
            while !stop.load(Ordering::SeqCst) && n < 150 + task * 50 {
                issue(s.clone(), ders.clone(), n).await.expect("issue");
                n += 1;
            }
        }));
    }
    let (mut slow, mut most_batches) = (std::time::Duration::ZERO, 0);
    for n in 0..100 {
        issue(s.clone(), ders.clone(), n).await.expect("issue");
        let (started, batches_before) = (std::time::Instant::now(), s.stats().commits);
        let found = s.get_cert(CA1, &format!("{:04x}", n + 1)).expect("read");
        slow = slow.max(started.elapsed());
        most_batches = most_batches.max(s.stats().commits - batches_before);
        assert!(found.is_some(), "issuance {n} answered, then not read back");
    }
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.await.expect("load");
    }
    // Many to a batch: each kept its own DER, under its own number.
    for n in 0..400 {
        let serial = format!("{:04x}", n + 1);
        if let Some((_, der)) = s.get_cert(CA1, &serial).expect("read") {
            assert_eq!(der.as_ref(), Some(&ders[n]), "the DER of {serial}");
        }
    }
    assert!(
        slow < std::time::Duration::from_secs(2),
        "a read waited {slow:?} for its publication"
    );
    // However busy the writer, it publishes before its next batch while a
    // read waits: a read waits out the batch under way (and one that began
    // as it arrived), not a stream of them. Counted in batches, not time,
    // with room for a reader descheduled around its read (a batch can take
    // tens of µs): without that publishing, reads here waited out 90 to 100.
    assert!(
        most_batches <= 20,
        "a read waited out {most_batches} of the writer's batches"
    );
}

/// A write that is not an issuance and fails (here, revoking a certificate
/// whose stored record is damaged) fails alone: it does not take the
/// answered issuances carried before it out of memory, so the store does
/// not break and reopen for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_a_failed_write_after_carried_issuances_fails_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = Redb.open(dir.path(), "a");
    issue_one(s.as_ref(), CA1, "0a").await;
    s.close();
    drop(s);
    {
        let certs = ::redb::TableDefinition::<&str, &[u8]>::new("certs");
        let db = ::redb::Database::create(dir.path().join(redb::DB_FILE)).expect("db");
        let txn = db.begin_write().expect("txn");
        txn.open_table(certs)
            .expect("certs")
            .insert(cert_key(CA1, "0a").as_str(), &b"damaged"[..])
            .expect("damage");
        txn.commit().expect("commit");
    }
    let s = Redb.open(dir.path(), "a");
    let ders = real_certificates("Issuing CA One", 3);
    let issue = |n: usize| {
        let serial = format!("{:04x}", n + 1);
        let rec = issued(intent(CA1, &serial, "a"));
        let audit = draft("IssueCertificate", &serial);
        s.issue(rec, ders[n].clone(), key_of(&serial), audit)
    };
    // Carried: nothing read between.
    issue(0).await.expect("issue");
    issue(1).await.expect("issue");
    let failed = s
        .revoke(CA1, "0a", rv(1, 100), draft("RevokeCertificate", "0a"))
        .await
        .expect_err("a damaged record");
    assert!(
        matches!(failed, StoreError::Corrupt(_)),
        "the failure is the revocation's own, the store not broken: {failed:?}"
    );
    issue(2).await.expect("the next write goes straight on");
    for serial in ["0001", "0002", "0003"] {
        assert!(s.get_cert(CA1, serial).expect("read").is_some(), "{serial}");
    }
}

/// Issuance number `n` (serial `n` in hex) from CA1, with its audit entry.
async fn issue_numbered(s: Arc<dyn Store>, n: usize) -> Result<(), StoreError> {
    let serial = format!("{n:06x}");
    let rec = issued(intent(CA1, &serial, "a"));
    let audit = draft("IssueCertificate", &serial);
    s.issue(rec, vec![0x30; 1000], key_of(&serial), audit).await
}

/// An audit entry alone (a read's, a refusal's) is made durable by a
/// small redo record, as an issuance is, not by one of redb's durable
/// commits (a page record in the journal), and is published once
/// answered: the next read need not publish it, waiting for the writer.
/// An issuance alone stays carried on (see `redo`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_an_audit_entry_alone_goes_by_a_redo_record_published_once_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let concrete = Arc::new(redb::RedbStore::open(dir.path(), "a".into()).expect("open"));
    let s: Arc<dyn Store> = concrete.clone();
    let stats = || concrete.journal_stats().expect("stats");
    issue_numbered(s.clone(), 1).await.expect("issue");
    let before = stats();
    // Carried on: the audit entry's batch goes on with its transaction.
    issue_numbered(s.clone(), 2).await.expect("issue");
    assert!(
        concrete.holds_unpublished(),
        "an issuance alone is carried on"
    );
    let entry = s
        .append_audit(draft("GetCertificate", "ca/000001"))
        .await
        .expect("audit a read");
    // (Before `stats`, whose read of the journal publishes.)
    assert!(
        !concrete.holds_unpublished(),
        "the audit entry was left for a reader to publish"
    );
    let after = stats();
    assert_eq!(
        (after.redo_records, after.records),
        (before.redo_records + 2, before.records),
        "a redo record each for the issuance and the audit entry, and no page record"
    );
    // What the store now shows: the entry, after the issuance's, chained.
    let (trail, _) = s
        .audit_page(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .expect("trail");
    let last = trail.iter().max_by_key(|e| e.seq).expect("entries");
    assert_eq!((last.seq, &last.hash), (entry.seq, &entry.hash));
    // Many at once go to the writer thread, which answers a batch before it
    // publishes it.
    let before = stats();
    let appends: Vec<_> = (0..32)
        .map(|n| {
            let s = s.clone();
            tokio::spawn(async move {
                let audit = draft("GetCertificate", &format!("ca/{n:06x}"));
                s.append_audit(audit).await
            })
        })
        .collect();
    for a in appends {
        a.await.expect("task").expect("audit a read");
    }
    concrete.settle();
    assert!(
        !concrete.holds_unpublished(),
        "audit entries batched by the writer were left for a reader to publish"
    );
    let after = stats();
    assert_eq!(
        after.records, before.records,
        "a page record for audit entries alone"
    );
    assert!(after.redo_records > before.redo_records);
    assert!(
        matches!(
            s.verify_audit(None).expect("verify"),
            Verdict::Ok { count: 35, .. }
        ),
        "the chain verifies"
    );
}

/// Issue up to the mark (1 MiB of redo records) in batches, every one made
/// durable by a redo record: no durable commit yet. Then one at a time, so
/// that the one passing it is the last: the next commit is due to be
/// durable. Returns the next issuance's number.
async fn issue_to_the_durable_mark(s: &Arc<dyn Store>, concrete: &redb::RedbStore) -> usize {
    let redo_bytes = || concrete.journal_stats().expect("stats").redo_bytes;
    let mut n = 0;
    while redo_bytes() < (1 << 20) - (64 << 10) {
        let batch: Vec<_> = (n..n + 32)
            .map(|n| tokio::spawn(issue_numbered(s.clone(), n)))
            .collect();
        for task in batch {
            task.await.expect("task").expect("issue");
        }
        n += 32;
    }
    while redo_bytes() < 1 << 20 {
        issue_numbered(s.clone(), n).await.expect("issue");
        n += 1;
    }
    n
}

/// Any durable commit settles the one falling due: once the redo records
/// since the last durable commit pass the mark, the next commit is to be
/// durable, and a durable commit made meanwhile outside the writer (here a
/// key-metadata change, by `write_now`) is that commit. The issuance after
/// it goes by a redo record again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_any_durable_commit_settles_the_one_falling_due() {
    let dir = tempfile::tempdir().expect("tempdir");
    let concrete = Arc::new(redb::RedbStore::open(dir.path(), "a".into()).expect("open"));
    let s: Arc<dyn Store> = concrete.clone();
    let stats = || concrete.journal_stats().expect("stats");
    let issue = |n: usize| issue_numbered(s.clone(), n);
    let n = issue_to_the_durable_mark(&s, &concrete).await;
    let before = stats().redo_records;
    s.set_key_meta(&KeyMeta::default(), draft("CreateMasterKey", "master-key"))
        .expect("a durable commit by write_now");
    issue(n).await.expect("issue");
    assert_eq!(
        stats().redo_records,
        before + 1,
        "the issuance after a durable commit is made durable by its redo record alone"
    );
}

/// The reopen after a failed write starts the journal's count of redo
/// records afresh (redoing what it held in a durable commit), so a durable
/// commit that fell due before the failure is due no more: the next issuance
/// is made durable by its redo record alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_a_reopen_settles_the_durable_commit_falling_due() {
    use self::redb::journal::fault::{register, Fault};
    let dir = tempfile::tempdir().expect("tempdir");
    let fault = register(&dir.path().join(redb::DB_FILE));
    let concrete = Arc::new(redb::RedbStore::open(dir.path(), "a".into()).expect("open"));
    let s: Arc<dyn Store> = concrete.clone();
    let stats = || concrete.journal_stats().expect("stats");
    let issue = |n: usize| issue_numbered(s.clone(), n);
    let mut n = issue_to_the_durable_mark(&s, &concrete).await;
    fault.arm(Fault::SyncFails);
    issue(n).await.expect_err("reported failed");
    n += 1;
    assert!(!fault.armed(), "the fault did not fire");
    reopened(s.as_ref()).await;
    let before = stats().redo_records;
    issue(n).await.expect("issue after the reopen");
    assert_eq!(
        stats().redo_records,
        before + 1,
        "the issuance after the reopen is made durable by its redo record alone"
    );
}

/// The store's files as a crash would leave them now (copied while it is
/// open), in a directory of their own.
fn crash_image(dir: &std::path::Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    let db = dir.join(redb::DB_FILE);
    let journal = redb::journal::journal_path(&db);
    for from in [db, journal] {
        let name = from.file_name().expect("name");
        std::fs::copy(&from, copy.path().join(name)).expect("copy");
    }
    copy
}
