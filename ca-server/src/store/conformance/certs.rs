//! Certificate cases: serials, tokens, one commit per action and entry, orphans, paging, bytes.

use super::*;

fn idem(serial: &str, hash: &str) -> IdemRecord {
    IdemRecord {
        request_sha256: hash.into(),
        ca_id: CA1.into(),
        serial: serial.into(),
    }
}

pub(super) async fn serials_are_never_reused_and_tokens_bind_requests(b: &dyn Backend, dir: &Path) {
    let s = b.open(dir, "boot1");
    let r = s
        .reserve(intent(CA1, "01", "boot1"), None, no_tokens())
        .await;
    assert!(matches!(r, Ok(ReserveOutcome::Reserved)));
    let r = s
        .reserve(intent(CA1, "01", "boot1"), None, no_tokens())
        .await;
    assert!(matches!(r, Err(StoreError::SerialTaken)), "{r:?}");
    // A token binds a request; the same token while its request still runs
    // in this process is in progress.
    let tokens = no_tokens();
    let _first = tokens.enter("tok");
    let tok = |serial: &str, hash: &str| Some(("tok".to_string(), idem(serial, hash)));
    let r = s
        .reserve(intent(CA1, "02", "boot1"), tok("02", "h1"), tokens.clone())
        .await
        .expect("reserve with token");
    assert!(matches!(r, ReserveOutcome::Reserved));
    let _retry = tokens.enter("tok");
    let r = s
        .reserve(intent(CA1, "03", "boot1"), tok("03", "h1"), tokens.clone())
        .await
        .expect("replay");
    assert!(matches!(r, ReserveOutcome::InProgress(ref rec) if rec.serial == "02"));
    // The same token with another request: conflict.
    let r = s
        .reserve(intent(CA1, "04", "boot1"), tok("04", "h2"), tokens.clone())
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    // Once issued, a replay returns the certificate.
    issue_serial(s.as_ref(), CA1, "02").await.expect("issue");
    let r = s
        .reserve(intent(CA1, "05", "boot1"), tok("05", "h1"), no_tokens())
        .await
        .expect("replay");
    assert!(matches!(r, ReserveOutcome::Existing(ref rec) if rec.serial == "02"));
    // Issuing twice is refused; without a reservation, a serial another
    // certificate holds is refused.
    let again = issue_serial(s.as_ref(), CA1, "02").await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let unreserved = issue_serial(s.as_ref(), CA2, "02").await;
    assert!(
        matches!(unreserved, Err(StoreError::SerialTaken)),
        "{unreserved:?}"
    );
    s.close();
}

pub(super) async fn an_action_and_its_audit_entry_commit_together(b: &dyn Backend, dir: &Path) {
    let s = b.open(dir, "boot1");
    issue_one(s.as_ref(), CA1, "0a").await;
    // A refused issue (its serial is taken, here by another CA's
    // certificate) writes neither certificate nor entry.
    let refused = issue_serial(s.as_ref(), CA2, "0a").await;
    assert!(
        matches!(refused, Err(StoreError::SerialTaken)),
        "{refused:?}"
    );
    assert!(s.get_cert(CA2, "0a").expect("read").is_none());
    // With no intent (the one-commit path) a fresh serial is stored and
    // claimed in the same commit.
    issue_serial(s.as_ref(), CA1, "0c")
        .await
        .expect("one commit");
    assert_eq!(s.ca_of_serial("0c").expect("read").as_deref(), Some(CA1));
    let again = s
        .reserve(intent(CA2, "0c", "boot1"), None, no_tokens())
        .await;
    assert!(matches!(again, Err(StoreError::SerialTaken)), "{again:?}");
    s.revoke(CA1, "0a", rv(1, 5), draft("RevokeCertificate", "0a"))
        .await
        .expect("revoke");
    let unknown = s
        .revoke(CA1, "ff", rv(1, 5), draft("RevokeCertificate", "ff"))
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound(_))));
    s.put_alias("issuing", CA1, draft("PutAlias", "issuing"))
        .await
        .expect("alias");
    s.put_policy("p1", b"{}".to_vec(), draft("PutPolicy", "p1"))
        .await
        .expect("policy");
    assert!(s
        .delete_policy("p1", draft("DeletePolicy", "p1"))
        .await
        .expect("delete"));
    s.append_audit(draft("GetCertificate", "0a"))
        .await
        .expect("append");
    assert_eq!(
        audit_actions(s.as_ref()),
        vec![
            ("IssueCertificate".into(), "0a".into()),
            ("IssueCertificate".into(), "0c".into()),
            ("RevokeCertificate".into(), "0a".into()),
            ("PutAlias".into(), "issuing".into()),
            ("PutPolicy".into(), "p1".into()),
            ("DeletePolicy".into(), "p1".into()),
            ("GetCertificate".into(), "0a".into()),
        ]
    );
    assert_eq!(
        s.verify_audit(None).expect("verify"),
        Verdict::Ok {
            count: 7,
            digests: 0,
            covered: 0
        }
    );
    s.close();
}

pub(super) async fn an_intent_orphaned_by_a_crash_frees_its_token_not_its_serial(
    b: &dyn Backend,
    dir: &Path,
) {
    {
        let s = b.open(dir, "boot1");
        s.reserve(
            intent(CA1, "0a", "boot1"),
            Some(("tok".into(), idem("0a", "h"))),
            no_tokens(),
        )
        .await
        .expect("reserve");
        s.close();
    }
    let s = b.open(dir, "boot2");
    let r = s
        .reserve(
            intent(CA1, "0b", "boot2"),
            Some(("tok".into(), idem("0b", "h"))),
            no_tokens(),
        )
        .await
        .expect("re-reserve");
    assert!(matches!(r, ReserveOutcome::Reserved));
    let r = s
        .reserve(intent(CA1, "0a", "boot2"), None, no_tokens())
        .await;
    assert!(matches!(r, Err(StoreError::SerialTaken)));
    // The orphan is listed nowhere a client looks, and serves as unknown.
    assert_eq!(
        s.serial_status(CA1, "0a").expect("status"),
        SerialStatus::Unknown
    );
    s.close();
}

pub(super) async fn paging_walks_every_certificate_once(b: &dyn Backend, dir: &Path) {
    let s = b.open(dir, "boot1");
    for i in 0..25u32 {
        let serial = format!("{:02x}", i + 1);
        let mut r = intent(CA1, &serial, "boot1");
        r.not_after = 1000 + i64::from(i % 5);
        s.reserve(r.clone(), None, no_tokens())
            .await
            .expect("reserve");
        s.issue(
            issued(r),
            b"d".to_vec(),
            key_of(&serial),
            draft("IssueCertificate", &serial),
        )
        .await
        .expect("issue");
    }
    issue_one(s.as_ref(), CA2, "ff").await;
    for expiring in [None, Some(2000)] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let f = CertFilter {
                ca_id: Some(CA1.into()),
                expiring_before: expiring,
                limit: 7,
                cursor: cursor.clone(),
                ..Default::default()
            };
            let (page, next) = s.list_certs(&f, &|_| true).expect("page");
            assert!(page.len() <= 7);
            seen.extend(page.into_iter().map(|r| r.serial));
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 25, "expiring {expiring:?}: {seen:?}");
    }
    let bad = CertFilter {
        cursor: Some("zz".into()),
        limit: 5,
        ..Default::default()
    };
    assert!(s.list_certs(&bad, &|_| true).is_err());
    assert_eq!(s.count_certs().expect("count"), 26);
    s.close();
}

pub(super) async fn concurrent_writers_each_get_their_own_answer(b: &dyn Backend, dir: &Path) {
    let s = b.open(dir, "boot1");
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let serial = format!("{:04x}", i % 48);
            let r = s
                .reserve(intent(CA1, &serial, "boot1"), None, no_tokens())
                .await;
            (serial, r.is_ok())
        }));
    }
    let mut won = 0;
    for t in tasks {
        let (_, ok) = t.await.expect("task");
        won += usize::from(ok);
    }
    // 48 distinct serials: 48 reservations win, 16 duplicates lose.
    assert_eq!(won, 48);
    // Issuances with their audit entries at once, a quarter of them for a
    // serial another one takes: the refused ones leave no entry (even when
    // committed beside others), the rest each leave one, in one chain.
    let (before, _) = s.audit_head().expect("head");
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let serial = format!("b{:03x}", i % 48);
            let r = issue_serial(s.as_ref(), CA1, &serial).await;
            r.is_ok()
        }));
    }
    let mut issued_now = 0u64;
    for t in tasks {
        issued_now += u64::from(t.await.expect("task"));
    }
    assert_eq!(issued_now, 48);
    let (after, _) = s.audit_head().expect("head");
    assert_eq!(after - before, 48, "one audit entry per issued certificate");
    assert!(matches!(
        s.verify_audit(None).expect("verify"),
        Verdict::Ok { .. }
    ));
    s.close();
}

/// Every certificate reads back byte for byte, whichever CA issued it and
/// in whatever order (a store may keep them packed against one another),
/// also after a restart.
pub(super) async fn certificates_read_back_byte_for_byte(b: &dyn Backend, dir: &Path) {
    let s = b.open(dir, "a");
    let first = real_certificates("Issuing CA One", 5);
    let second = real_certificates("Issuing CA Two", 3);
    let mut issued = Vec::new();
    // Interleaved: each CA's first certificate, then the rest in turn.
    let mut n = 0u32;
    for (ca, der) in first
        .iter()
        .map(|d| (CA1, d))
        .zip(
            second
                .iter()
                .map(|d| (CA2, d))
                .chain(std::iter::repeat_n((CA2, &first[0]), 2)),
        )
        .flat_map(|(a, b)| [a, b])
    {
        n += 1;
        let serial = format!("{n:02x}");
        let audit = draft("IssueCertificate", &serial);
        issue_with(s.as_ref(), ca, &serial, der.clone(), audit).await;
        issued.push((ca, serial, der.clone()));
    }
    // Odd bytes too: empty-ish and ones that start as a packed value would.
    for (i, odd) in [vec![1u8, 2, 3], vec![2u8], vec![0x30; 3]]
        .into_iter()
        .enumerate()
    {
        let serial = format!("f{i}");
        let audit = draft("IssueCertificate", &serial);
        issue_with(s.as_ref(), CA1, &serial, odd.clone(), audit).await;
        issued.push((CA1, serial, odd));
    }
    let check = |s: &dyn Store| {
        for (ca, serial, der) in &issued {
            let (_, got) = s.get_cert(ca, serial).expect("read").expect("stored");
            assert_eq!(got.as_ref(), Some(der), "{ca}/{serial}");
        }
    };
    check(s.as_ref());
    s.close();
    let s = b.open(dir, "b");
    check(s.as_ref());
}
