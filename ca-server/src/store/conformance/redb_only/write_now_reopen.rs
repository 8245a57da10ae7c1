//! A write on the caller's thread (`write_now`: key metadata, key imports)
//! while the store is being reopened after a failed write.

use super::*;
use std::sync::atomic::AtomicBool;

/// A gate a commit hook waits at (for at most ten seconds, so that a
/// failing test ends).
#[derive(Default)]
struct Gate {
    reached: AtomicBool,
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl Gate {
    fn wait(&self) {
        self.reached.store(true, Ordering::SeqCst);
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .opened
            .wait_timeout_while(open, std::time::Duration::from_secs(10), |open| !*open);
    }

    fn open(&self) {
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.opened.notify_all();
    }
}

/// The reopen tells the commit hooks to read again before it takes writes,
/// so that no write's own update of what they keep lands before their
/// re-read (and is undone by it). A `write_now` arriving meanwhile (the
/// store open again, its hooks not yet told) is refused as unavailable,
/// not made; once they are told, it is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_write_now_is_refused_until_the_reopen_has_told_the_hooks() {
    use self::redb::journal::fault::{register, Fault};
    let dir = tempfile::tempdir().expect("tempdir");
    let fault = register(&dir.path().join(redb::DB_FILE));
    let s: Arc<dyn Store> = Arc::new(redb::RedbStore::open(dir.path(), "a".into()).expect("open"));
    let gate = Arc::new(Gate::default());
    let at_gate = gate.clone();
    s.subscribe(Arc::new(move |event| {
        if matches!(event, Committed::Resync) {
            at_gate.wait();
        }
    }));
    s.put_alias("issuing", CA1, draft("PutAlias", "issuing"))
        .await
        .expect("alias");

    fault.arm(Fault::SyncFails);
    let failed = s
        .put_alias("issuing", CA2, draft("PutAlias", "issuing"))
        .await
        .expect_err("reported failed");
    assert!(matches!(failed, StoreError::Unavailable(_)), "{failed:?}");
    assert!(!fault.armed(), "the fault did not fire");

    // The writer has reopened the store and is telling the hooks.
    let start = std::time::Instant::now();
    while !gate.reached.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the store did not reopen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let meta = |check: &str| KeyMeta {
        check_value: Some(check.into()),
        kdf: None,
    };
    let refused = s
        .set_key_meta(&meta("refused"), draft("RotateMasterKey", "master-key"))
        .expect_err("made while the hooks were not yet told");
    assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");

    // Once the hooks are told the reopen takes writes (reads came back
    // before: they are no sign of it). Refusals meanwhile leave nothing.
    gate.open();
    let start = std::time::Instant::now();
    while let Err(e) = s.set_key_meta(&meta("made"), draft("RotateMasterKey", "master-key")) {
        assert!(
            matches!(e, StoreError::Unavailable(_))
                && start.elapsed() < std::time::Duration::from_secs(10),
            "not made once the hooks were told: {e:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(s.key_meta().expect("key meta"), meta("made"));
    let actions: Vec<String> = audit_actions(s.as_ref()).into_iter().map(|a| a.0).collect();
    assert_eq!(
        actions,
        ["PutAlias", "RotateMasterKey"],
        "the refused write left an audit entry, or the made one none"
    );
}
