//! The PostgreSQL store's own cases: what the shared suite cannot say about a
//! backend (its schema versions, how writes on several nodes are ordered).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refuses_a_newer_schema_with_a_clear_message() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    pg.open(dir.path(), "a").close();
    let url = pg.url(dir.path());
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            &url,
            "-c",
            "UPDATE ca_schema SET version = version + 1",
        ])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opts = postgres::PgOptions {
        url,
        pool_size: 2,
        connect_wait: std::time::Duration::from_secs(5),
        tls: None,
    };
    let err = postgres::PgStore::open(&opts, "b".into())
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1));
}

/// On PostgreSQL, another node's keyCompromise revocation still committing
/// when an issuance for that key is stored: every write takes the audit head
/// row's lock before its first statement, so the issuance waits for the
/// revocation's commit and then sees the block (each statement of a READ
/// COMMITTED transaction reads what was committed before it began). The
/// other node is played by a plain connection, holding the lock and the
/// blocked key uncommitted for as long as the test says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_orders_an_issuance_after_another_nodes_block_of_its_key() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let s = pg.open(dir.path(), "a");
    let (other_node, connection) =
        tokio_postgres::connect(&pg.url(dir.path()), tokio_postgres::NoTls)
            .await
            .expect("connect");
    tokio::spawn(connection);
    let blocked = serde_json::to_string(&BlockedKey {
        ca_id: CA1.into(),
        serial: "0a".into(),
        blocked_at: 1_700_000_000,
    })
    .expect("json");
    other_node
        .batch_execute(&format!(
            "BEGIN; SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE; \
             INSERT INTO blocked_keys (key_sha256, rec) VALUES ('{}', '{blocked}')",
            key_of("1b")
        ))
        .await
        .expect("the other node's revocation, uncommitted");

    let store = s.clone();
    let issuing = tokio::spawn(async move { issue_serial(store.as_ref(), CA1, "1b").await });
    // The issuance must come to wait on the other node's lock (not merely be
    // slow to start): PostgreSQL shows that wait.
    let start = std::time::Instant::now();
    loop {
        // pg_stat_activity is read once per transaction unless cleared.
        other_node
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .expect("clear the statistics snapshot");
        let waiting: i64 = other_node
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            !issuing.is_finished(),
            "the issuance did not wait for the other node's write"
        );
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the issuance never came to wait on the lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!issuing.is_finished(), "finished while waiting on the lock");
    other_node.batch_execute("COMMIT").await.expect("commit");
    let e = issuing
        .await
        .expect("join")
        .expect_err("stored although its key was blocked first");
    assert!(
        matches!(&e, StoreError::KeyBlocked(b) if b.serial == "0a"),
        "{e:?}"
    );
    assert_eq!(
        s.serial_status(CA1, "1b").expect("status"),
        SerialStatus::Unknown
    );
    s.close();
}

/// On PostgreSQL, a batch of projected events alone commits without waiting
/// for the WAL's flush (what PostgreSQL reports of `synchronous_commit`
/// inside its transaction); any other write waits for it. Both read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_commits_projected_events_without_waiting_for_the_flush() {
    let pg = Postgres::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = postgres::PgOptions {
        url: pg.url(dir.path()),
        pool_size: 2,
        connect_wait: std::time::Duration::from_secs(10),
        tls: None,
    };
    let s = postgres::PgStore::open(&opts, "a".into()).expect("open");
    let mark = |expect, set| MarkAdvance {
        name: "audit".into(),
        expect,
        set,
    };
    let last = s
        .append_projected_events(vec![event(100, "A"), event(200, "B")], mark(None, 3))
        .await
        .expect("projected");
    assert_eq!(last, 2);
    assert_eq!(s.last_synchronous_commit().as_deref(), Some("off"));
    s.put_policy("p", b"{}".to_vec(), draft("PutPolicy", "p"))
        .await
        .expect("a write that waits");
    assert_eq!(s.last_synchronous_commit().as_deref(), Some("on"));
    let ids: Vec<String> = s
        .events_after(0, 10)
        .expect("events")
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["evt-100-A", "evt-200-B"]);
    assert_eq!(s.event_mark("audit").expect("mark"), Some(3));
    s.close();
}
