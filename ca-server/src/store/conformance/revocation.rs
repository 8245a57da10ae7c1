//! Revocation cases: repeats, raising to keyCompromise and blocking its key, hooks told.

use super::*;

pub(super) async fn revocation_is_idempotent_raises_to_key_compromise_and_tells_hooks(
    b: &dyn Backend,
    dir: &Path,
) {
    let s = b.open(dir, "boot1");
    let seen: Arc<Mutex<Vec<Committed>>> = Arc::default();
    let sink = seen.clone();
    s.subscribe(Arc::new(move |e| {
        sink.lock().expect("lock").push(e.clone());
    }));
    for (c, serial) in [(CA1, "0a"), (CA1, "0b"), (CA2, "0c")] {
        issue_one(s.as_ref(), c, serial).await;
    }
    assert_eq!(
        s.serial_status(CA1, "0a").expect("status"),
        SerialStatus::Issued
    );
    let t1 = 1_700_000_000;
    let revoke = |serial: &'static str, r: Revocation| {
        s.revoke(CA1, serial, r, draft("RevokeCertificate", serial))
    };
    let r = revoke("0a", rv(4, t1)).await.expect("revoke");
    assert_eq!(r.revocation.as_ref().map(|r| r.reason_code), Some(4));
    // The same reason again: the first revocation stands.
    let r = revoke("0a", rv(4, t1 + 100)).await.expect("idempotent");
    assert_eq!(r.revocation.map(|r| r.revoked_at), Some(t1));
    // Another reason that is not keyCompromise: a conflict, nothing changes.
    let e = revoke("0a", rv(3, t1 + 200))
        .await
        .expect_err("changed reason");
    assert!(matches!(e, StoreError::Conflict(_)), "{e:?}");
    // No key is blocked yet (asked first, so a backend that keeps this
    // answer must forget it when the key is blocked below).
    assert!(s.blocked_key("k-0a").expect("read").is_none());
    // Raised to keyCompromise: the reason and CRL entry change, the date
    // stays, and the key is blocked in the same commit.
    let compromised = Revocation {
        key_sha256: Some("k-0a".into()),
        ..rv(1, t1 + 300)
    };
    let r = revoke("0a", compromised).await.expect("raise");
    let got = r.revocation.expect("revocation");
    assert_eq!((got.reason_code, got.revoked_at), (1, t1));
    let blocked = s.blocked_key("k-0a").expect("read").expect("blocked");
    assert_eq!(
        (blocked.ca_id.as_str(), blocked.serial.as_str()),
        (CA1, "0a")
    );
    assert!(s.blocked_key("k-other").expect("read").is_none());
    // A certificate for the blocked key, signed before the block was seen,
    // is refused when it is stored, and nothing of it is written: its serial
    // stays free for another key.
    let e = s
        .issue(
            issued(intent(CA1, "1b", "boot1")),
            b"der".to_vec(),
            "k-0a".into(),
            draft("IssueCertificate", "1b"),
        )
        .await
        .expect_err("a blocked key");
    assert!(
        matches!(&e, StoreError::KeyBlocked(b) if b.serial == "0a" && b.ca_id == CA1),
        "{e:?}"
    );
    assert_eq!(
        s.serial_status(CA1, "1b").expect("status"),
        SerialStatus::Unknown
    );
    issue_serial(s.as_ref(), CA1, "1b")
        .await
        .expect("another key");
    // keyCompromise without a key hash blocks nothing; other reasons never do.
    revoke("0b", rv(1, t1)).await.expect("revoke 0b");
    s.revoke(CA2, "0c", rv(0, t1 + 1), draft("RevokeCertificate", "0c"))
        .await
        .expect("revoke other CA");
    assert!(matches!(
        s.serial_status(CA1, "0a").expect("status"),
        SerialStatus::Revoked(r) if r.reason_code == 1
    ));
    assert_eq!(
        s.serial_status(CA1, "ff").expect("status"),
        SerialStatus::Unknown
    );
    let e = s.crl_entries(CA1, None).expect("entries");
    assert_eq!(e.count, 2);
    let mut want = crl_entry("0a", &rv(1, t1)).expect("entry");
    want.extend(crl_entry("0b", &rv(1, t1)).expect("entry"));
    assert_eq!(e.der, want);
    assert!(e.expired.is_empty());
    assert_eq!(s.crl_entries(CA2, None).expect("entries").count, 1);
    assert_eq!(s.complete_crl_entries().await.expect("complete"), 0);
    // Hooks heard every committed revocation (the repeat and the raise too,
    // not the refused change), before the revoker was answered.
    let revoked: Vec<Committed> = seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|e| matches!(e, Committed::Revoked { .. }))
        .cloned()
        .collect();
    assert_eq!(revoked.len(), 5, "{revoked:?}");
    assert_eq!(
        revoked[0],
        Committed::Revoked {
            ca_id: CA1.into(),
            serial: "0a".into()
        }
    );
    // The refused change left an audit entry only for the calls that committed.
    let revokes = audit_actions(s.as_ref())
        .into_iter()
        .filter(|(a, _)| a == "RevokeCertificate")
        .count();
    assert_eq!(revokes, 5);
    s.close();
}
