//! What a start after a crash must rebuild: redb's allocator state, which
//! the commits made now and then record (quick repair) so that no walk of
//! every table is needed.

use super::*;

/// Why the store as a crash would leave it now needs redb's repair (a walk
/// of every table), if it does: redb's open, told to abort any repair,
/// opens a copy (in memory, the journal replayed), and redb's integrity
/// check then compares the allocator state it loaded with the one it
/// rebuilds.
fn repair_needed(dir: &std::path::Path, after: &str) -> Option<String> {
    let image = crash_image(dir);
    let journal = redb::journal::JournalBackend::open_read_only(&image.path().join(redb::DB_FILE))
        .expect("journal");
    let opened = ::redb::Builder::new()
        .set_repair_callback(|session| session.abort())
        .create_with_backend(journal.into_scratch());
    match opened {
        Ok(mut db) => (!db.check_integrity().expect("integrity check"))
            .then(|| format!("after {after}: the loaded allocator state did not match")),
        Err(e) => Some(format!("after {after}: {e}")),
    }
}

/// Wait (5 s at most) for the writer to record redb's allocator state, as
/// it does once writes pause for 0.1 s.
async fn recorded_after_a_pause(dir: &std::path::Path, after: &str) {
    let paused = std::time::Instant::now();
    while let Some(e) = repair_needed(dir, after) {
        assert!(paused.elapsed() < std::time::Duration::from_secs(5), "{e}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The durable commits made now and then record redb's allocator state
/// (quick repair), so the store as a crash leaves it after one needs no
/// walk: redb's open, told to abort any repair, opens it (in memory, the
/// journal replayed), and redb's integrity check then finds the loaded state
/// matching the one it rebuilds. Without the record, redb walks every table
/// to rebuild that state, about a second per million certificates. Checked
/// after the open, after the events' projection following a request's own
/// durable writes (which record nothing: it would cost them twice the
/// time), after a pause following such a write, and after the commit
/// falling due after a MiB of redo records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_a_crash_after_the_commits_made_now_and_then_needs_no_repair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repair_needed = |after: &str| repair_needed(dir.path(), after);
    let needs_no_repair = |after: &str| {
        if let Some(e) = repair_needed(after) {
            panic!("{e}");
        }
    };
    let concrete = Arc::new(redb::RedbStore::open(dir.path(), "a".into()).expect("open"));
    let s: Arc<dyn Store> = concrete.clone();
    needs_no_repair("the open");
    s.put_policy("p", b"{}".to_vec(), draft("PutPolicy", "p"))
        .await
        .expect("a durable commit by the writer");
    s.set_key_meta(&KeyMeta::default(), draft("CreateMasterKey", "master-key"))
        .expect("a durable commit by write_now");
    let mark = MarkAdvance {
        name: "audit".into(),
        expect: None,
        set: 2,
    };
    s.append_events(Vec::new(), mark, None)
        .await
        .expect("the events' projection");
    needs_no_repair("the events' projection");
    s.put_policy("q", b"{}".to_vec(), draft("PutPolicy", "q"))
        .await
        .expect("a durable commit by the writer");
    recorded_after_a_pause(dir.path(), "a pause after a request's own durable write").await;
    let n = issue_to_the_durable_mark(&s, &concrete).await;
    let redo_records = || concrete.journal_stats().expect("stats").redo_records;
    let before = redo_records();
    issue_numbered(s.clone(), n).await.expect("issue");
    assert_eq!(
        redo_records(),
        before,
        "the issuance past the mark went by a redo record, not a durable commit"
    );
    needs_no_repair("the durable commit falling due");
}

/// A failed write leaves the store's file as it may: the reopen that
/// follows does not know whether the last durable commit recorded redb's
/// allocator state, so the writer records it once writes pause, and a crash
/// after that needs no walk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_a_crash_after_a_reopen_and_a_pause_needs_no_repair() {
    use self::redb::journal::fault::{register, Fault};
    let dir = tempfile::tempdir().expect("tempdir");
    let fault = register(&dir.path().join(redb::DB_FILE));
    let s: Arc<dyn Store> = Arc::new(redb::RedbStore::open(dir.path(), "a".into()).expect("open"));
    s.put_policy("p", b"{}".to_vec(), draft("PutPolicy", "p"))
        .await
        .expect("a durable commit");
    recorded_after_a_pause(dir.path(), "a policy").await;
    fault.arm(Fault::UndoFailsToo);
    s.put_policy("q", b"{}".to_vec(), draft("PutPolicy", "q"))
        .await
        .expect_err("reported failed");
    assert!(!fault.armed(), "the fault did not fire");
    reopened(s.as_ref()).await;
    recorded_after_a_pause(dir.path(), "the reopen after a failed write").await;
    // The recording commit took nothing with it: the write reported failed
    // is held (its record reached the journal), before and after a restart,
    // and the whole store checks.
    let ids = |s: &dyn Store| -> Vec<String> {
        let rows = s.list_policies().expect("policies").unwrap_or_default();
        rows.into_iter().map(|(id, _)| id).collect()
    };
    assert_eq!(ids(s.as_ref()), ["p", "q"]);
    s.close();
    drop(s);
    let s = redb::RedbStore::open(dir.path(), "a".into()).expect("reopen");
    assert_eq!(ids(&s), ["p", "q"]);
    s.close();
    let report = redb::check::check(dir.path(), &mut |_, _| {}).expect("check");
    assert!(report.ok() && !report.recovered, "{report:?}");
}
