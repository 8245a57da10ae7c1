//! The backend conformance suite: what every [`Store`] must do, written
//! against the trait alone. Each backend runs every case through [`Backend`]
//! (redb below; a second backend adds one line).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ca_core::audit_chain::{AuditIdentity, AuditOutcome, AuditResult, AuditedCertificate};

use super::*;

/// How a backend opens a store at a place (the same place twice = reopen,
/// as after a crash or a restart, with another boot id).
trait Backend {
    fn open(&self, dir: &Path, boot: &str) -> Arc<dyn Store>;
}

struct Redb;

impl Backend for Redb {
    fn open(&self, dir: &Path, boot: &str) -> Arc<dyn Store> {
        Arc::new(redb::RedbStore::open(dir, boot.into()).expect("open redb"))
    }
}

/// One throwaway PostgreSQL cluster; each place is a database of its own.
struct Postgres {
    cluster: postgres::testdb::TestCluster,
    made: Mutex<std::collections::HashMap<std::path::PathBuf, String>>,
}

impl Postgres {
    fn start() -> Postgres {
        Postgres {
            cluster: postgres::testdb::TestCluster::start().expect("a test PostgreSQL cluster"),
            made: Mutex::new(Default::default()),
        }
    }

    fn url(&self, dir: &Path) -> String {
        let mut made = self.made.lock().expect("lock");
        let n = made.len();
        made.entry(dir.to_path_buf())
            .or_insert_with(|| self.cluster.create_db(&format!("c{n}")).expect("createdb"))
            .clone()
    }
}

impl Backend for Postgres {
    fn open(&self, dir: &Path, boot: &str) -> Arc<dyn Store> {
        let opts = postgres::PgOptions {
            url: self.url(dir),
            pool_size: 8,
            connect_wait: std::time::Duration::from_secs(10),
            tls: None,
        };
        Arc::new(postgres::PgStore::open(&opts, boot.into()).expect("open postgres"))
    }
}

const CA1: &str = "ca-0000000000000001";
const CA2: &str = "ca-0000000000000002";

fn draft(action: &str, target: &str) -> AuditDraft {
    AuditDraft {
        unix: 1_700_000_000,
        identity: AuditIdentity {
            subject: "CN=tester".into(),
            fingerprint: "ff".into(),
        },
        action: action.into(),
        target: target.into(),
        outcome: AuditOutcome {
            decision: "allowed".into(),
            statement: Some("s".into()),
            reason: "test".into(),
        },
        result: AuditResult {
            status: 201,
            code: "success".into(),
        },
        certificate: None,
    }
}

fn intent(ca: &str, serial: &str, boot: &str) -> CertRecord {
    CertRecord {
        ca_id: ca.into(),
        serial: serial.into(),
        status: CertStatus::Reserved,
        profile: "tls-server".into(),
        subject: "CN=x".into(),
        sans: vec![],
        key_algorithm: "ECDSA P-256".into(),
        not_before: 0,
        not_after: 100,
        tbs_sha256: format!("tbs-{serial}"),
        created_at: 0,
        requested_by: "test".into(),
        boot_id: boot.into(),
        server_generated_key: false,
        renewed_from: None,
        revocation: None,
        requester_fingerprint: None,
    }
}

fn issued(mut r: CertRecord) -> CertRecord {
    r.status = CertStatus::Issued;
    r
}

fn idem(serial: &str, hash: &str) -> IdemRecord {
    IdemRecord {
        request_sha256: hash.into(),
        ca_id: CA1.into(),
        serial: serial.into(),
    }
}

fn no_tokens() -> Arc<InFlightTokens> {
    Arc::new(InFlightTokens::default())
}

fn rv(code: u8, at: i64) -> Revocation {
    Revocation {
        reason_code: code,
        reason: "x".into(),
        revoked_at: at,
        revoked_by: "test".into(),
        key_sha256: None,
    }
}

fn ca(id: &str) -> CaRecord {
    CaRecord {
        token_key_label: None,
        ocsp_disabled: false,
        id: id.into(),
        ca_type: CaType::Root,
        status: CaStatus::Active,
        subject: "CN=Test CA".into(),
        key_algorithm: "ECDSA P-256".into(),
        certificate_pem: None,
        chain_pem: vec![],
        parent_ca_id: None,
        external: false,
        csr_pem: None,
        serial: None,
        not_before: None,
        not_after: None,
        path_len: None,
        created_at: 0,
        updated_at: 0,
    }
}

async fn issue_one(s: &dyn Store, ca: &str, serial: &str) {
    issue_with(
        s,
        ca,
        serial,
        b"der".to_vec(),
        draft("IssueCertificate", serial),
    )
    .await;
}

/// Issue `serial` of `ca` (reserved before or not) with placeholder DER.
async fn issue_serial(s: &dyn Store, ca: &str, serial: &str) -> Result<(), StoreError> {
    s.issue(
        issued(intent(ca, serial, "boot1")),
        b"der".to_vec(),
        key_of(serial),
        draft("IssueCertificate", serial),
    )
    .await
}

/// The key hash the suite gives the certificate `serial`.
pub(super) fn key_of(serial: &str) -> String {
    format!("k-{serial}")
}

/// Reserve `serial`, then issue it with `der` and the audit entry `audit`.
async fn issue_with(s: &dyn Store, ca: &str, serial: &str, der: Vec<u8>, audit: AuditDraft) {
    let r = s
        .reserve(intent(ca, serial, s.boot_id()), None, no_tokens())
        .await
        .expect("reserve");
    assert!(matches!(r, ReserveOutcome::Reserved));
    s.issue(
        issued(intent(ca, serial, s.boot_id())),
        der,
        key_of(serial),
        audit,
    )
    .await
    .expect("issue");
}

fn audit_actions(s: &dyn Store) -> Vec<(String, String)> {
    let (entries, _) = s
        .audit_page(&AuditFilter {
            limit: 1000,
            ..Default::default()
        })
        .expect("audit");
    entries.into_iter().map(|e| (e.action, e.target)).collect()
}

async fn serials_are_never_reused_and_tokens_bind_requests(b: &dyn Backend, dir: &Path) {
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

async fn an_action_and_its_audit_entry_commit_together(b: &dyn Backend, dir: &Path) {
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

async fn revocation_is_idempotent_raises_to_key_compromise_and_tells_hooks(
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

async fn an_intent_orphaned_by_a_crash_frees_its_token_not_its_serial(b: &dyn Backend, dir: &Path) {
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

async fn paging_walks_every_certificate_once(b: &dyn Backend, dir: &Path) {
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

async fn concurrent_writers_each_get_their_own_answer(b: &dyn Backend, dir: &Path) {
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

async fn a_new_ca_is_one_commit(b: &dyn Backend, dir: &Path) {
    let s = b.open(dir, "boot1");
    let new = NewCaRecord {
        ca: ca(CA1),
        sealed_key: b"sealed".to_vec(),
        certificate: None,
    };
    s.create_ca(new.clone(), draft("CreateCertificateAuthority", CA1))
        .await
        .expect("create");
    let twice = s
        .create_ca(new, draft("CreateCertificateAuthority", CA1))
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))));
    assert_eq!(s.sealed_key(CA1).expect("key"), Some(b"sealed".to_vec()));
    // A sub-CA whose certificate cannot be stored (its serial names a
    // certificate already stored): nothing of it is kept.
    issue_one(s.as_ref(), CA1, "0c").await;
    let orphan = NewCaRecord {
        ca: ca(CA2),
        sealed_key: b"k2".to_vec(),
        certificate: Some((issued(intent(CA1, "0c", "boot1")), b"der".to_vec())),
    };
    assert!(s
        .create_ca(orphan, draft("CreateCertificateAuthority", CA2))
        .await
        .is_err());
    assert_eq!(s.get_ca(CA2).expect("get"), None);
    assert_eq!(s.sealed_key(CA2).expect("key"), None);
    // Rotation: the new CA, the retired old one and the alias move together.
    s.put_alias("issuing", CA1, draft("PutAlias", "issuing"))
        .await
        .expect("alias");
    let rotated = NewCaRecord {
        ca: ca(CA2),
        sealed_key: b"k2".to_vec(),
        certificate: None,
    };
    let retired = s
        .rotate_alias(
            "issuing",
            CA1,
            rotated.clone(),
            draft("RotateAlias", "issuing"),
        )
        .await
        .expect("rotate");
    assert_eq!(retired.status, CaStatus::Retired);
    assert_eq!(s.get_alias("issuing").expect("alias"), Some(CA2.into()));
    let moved = s
        .rotate_alias("issuing", CA1, rotated, draft("RotateAlias", "issuing"))
        .await;
    assert!(matches!(moved, Err(StoreError::Conflict(_))));
    let actions: Vec<String> = audit_actions(s.as_ref()).into_iter().map(|a| a.0).collect();
    assert_eq!(
        actions,
        [
            "CreateCertificateAuthority",
            "IssueCertificate",
            "PutAlias",
            "RotateAlias"
        ]
    );
    s.close();
}

async fn keys_and_policies_survive_a_restart(b: &dyn Backend, dir: &Path) {
    {
        let s = b.open(dir, "boot1");
        assert_eq!(s.list_policies().expect("policies"), None);
        assert_eq!(s.key_meta().expect("meta"), KeyMeta::default());
        s.set_key_meta(
            &KeyMeta {
                check_value: Some("cv".into()),
                kdf: None,
            },
            draft("CreateMasterKey", "master-key"),
        )
        .expect("meta");
        s.import_sealed_keys(
            &[(CA1.into(), b"k1".to_vec())],
            draft("SealPlaintextKeys", "ca-keys"),
        )
        .expect("import");
        s.put_policy("p", b"{\"a\":1}".to_vec(), draft("PutPolicy", "p"))
            .await
            .expect("policy");
        s.close();
    }
    let s = b.open(dir, "boot2");
    assert_eq!(
        s.list_policies().expect("policies"),
        Some(vec![("p".into(), b"{\"a\":1}".to_vec())])
    );
    let calls = AtomicUsize::new(0);
    let mut rewrap = |id: &str, old: &[u8]| {
        calls.fetch_add(1, Ordering::Relaxed);
        Ok([id.as_bytes(), old].concat())
    };
    let meta = KeyMeta {
        check_value: Some("cv2".into()),
        kdf: Some("kdf".into()),
    };
    assert_eq!(
        s.rewrap_keys(&mut rewrap, &meta, draft("RotateMasterKey", "master-key"))
            .expect("rewrap"),
        1
    );
    // Each key operation left its entry, in the same commits.
    let actions: Vec<String> = audit_actions(s.as_ref()).into_iter().map(|a| a.0).collect();
    assert_eq!(
        actions,
        [
            "CreateMasterKey",
            "SealPlaintextKeys",
            "PutPolicy",
            "RotateMasterKey"
        ]
    );
    assert_eq!(s.key_meta().expect("meta"), meta);
    assert_eq!(
        s.sealed_key(CA1).expect("key"),
        Some([CA1.as_bytes(), b"k1"].concat())
    );
    assert_eq!(s.sealed_key_ids().expect("ids"), vec![CA1.to_string()]);
    s.close();
}

async fn audit_digests_follow_one_another_and_bind_the_head(b: &dyn Backend, dir: &Path) {
    use ca_core::audit_digest::{AuditDigest, DigestDraft};
    let s = b.open(dir, "boot1");
    assert_eq!(
        s.audit_head().expect("head"),
        (0, ca_core::audit_chain::GENESIS.to_string())
    );
    issue_one(s.as_ref(), CA1, "0a").await;
    let (seq, hash) = s.audit_head().expect("head");
    assert_eq!(seq, 1);
    let key =
        ca_core::keys::SoftwareKey::generate(ca_core::keys::KeyAlgorithm::EcdsaP256).expect("key");
    let sign = |number: u64, prev: String| {
        AuditDigest::sign(
            DigestDraft {
                number,
                time: time::OffsetDateTime::UNIX_EPOCH,
                head_seq: seq,
                head_hash: hash.clone(),
                prev_digest: prev,
            },
            &key,
        )
        .expect("sign")
    };
    let first = sign(1, ca_core::audit_chain::GENESIS.to_string());
    // Digest 2 before digest 1, or digest 1 twice: refused.
    let early = s.append_audit_digest(sign(2, String::new())).await;
    assert!(matches!(early, Err(StoreError::Conflict(_))), "{early:?}");
    s.append_audit_digest(first.clone())
        .await
        .expect("digest 1");
    let twice = s.append_audit_digest(first.clone()).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(s.last_audit_digest().expect("last"), Some(first.clone()));
    assert_eq!(s.audit_digests(0, 10).expect("list"), vec![first.clone()]);
    assert!(s.audit_digests(1, 10).expect("list").is_empty());
    let pin = ca_core::keys::Signer::public_key_der(&key).to_vec();
    assert_eq!(
        s.verify_audit(Some(&pin)).expect("verify"),
        Verdict::Ok {
            count: 1,
            digests: 1,
            covered: 1
        }
    );
    // Signed by a key other than the pinned one: broken.
    let other =
        ca_core::keys::SoftwareKey::generate(ca_core::keys::KeyAlgorithm::EcdsaP256).expect("key");
    let other_pin = ca_core::keys::Signer::public_key_der(&other).to_vec();
    assert!(matches!(
        s.verify_audit(Some(&other_pin)).expect("verify"),
        Verdict::Broken { seq: 1, .. }
    ));
    s.close();
}

fn event(unix: i64, kind: &str) -> EventRecord {
    EventRecord {
        seq: 0,
        id: format!("evt-{unix}-{kind}"),
        event_type: kind.into(),
        time: String::new(),
        unix,
        ca_id: CA1.into(),
        detail: EventDetail::default(),
        audit_seq: None,
    }
}

fn mark(name: &str, expect: Option<u64>, set: u64) -> MarkAdvance {
    MarkAdvance {
        name: name.into(),
        expect,
        set,
    }
}

/// `n` real certificates from one issuer, as DER (names and keys differ).
fn real_certificates(issuer_cn: &str, n: usize) -> Vec<Vec<u8>> {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, issuer_cn);
    let issuer = rcgen::Issuer::new(ca, ca_key);
    (0..n)
        .map(|i| {
            let key = rcgen::KeyPair::generate().expect("key");
            let name = format!("host-{i}.example.internal");
            let mut p = rcgen::CertificateParams::new(vec![name.clone()]).expect("leaf");
            p.distinguished_name.push(rcgen::DnType::CommonName, name);
            p.use_authority_key_identifier_extension = true;
            p.signed_by(&key, &issuer).expect("sign").der().to_vec()
        })
        .collect()
}

/// Every certificate reads back byte for byte, whichever CA issued it and
/// in whatever order (a store may keep them packed against one another),
/// also after a restart.
async fn certificates_read_back_byte_for_byte(b: &dyn Backend, dir: &Path) {
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

/// The projector's events: an issuance's event, made from its audit entry,
/// reads back as it was made (a store may keep it as the entry's number),
/// also after a restart and beside an event that was altered.
async fn events_made_from_audit_entries_read_back_as_made(b: &dyn Backend, dir: &Path) {
    let s = b.open(dir, "a");
    for serial in ["0a", "0b"] {
        let mut d = draft("IssueCertificate", &format!("{CA1}/{serial}"));
        d.certificate = Some(AuditedCertificate {
            serial: serial.into(),
            sans: vec!["DNS:a.example".into()],
            not_after: "2027-01-01T00:00:00Z".into(),
            tbs_sha256: "ab".repeat(32),
        });
        issue_with(s.as_ref(), CA1, serial, b"der".to_vec(), d).await;
    }
    let (entries, _) = s
        .audit_page(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .expect("audit");
    let made: Vec<EventRecord> = entries
        .iter()
        .filter_map(|e| issuance_event(e, format!("evt-{:032x}", e.seq)))
        .collect();
    assert_eq!(made.len(), 2, "{entries:?}");
    assert!(made.iter().all(|e| e.audit_seq.is_some()));
    // The second is altered after it was made: it no longer is its entry's
    // event, and must read back altered, not as the entry says.
    let mut events = made.clone();
    events[1].detail.sans.push("DNS:extra.example".into());
    s.append_events(events.clone(), mark("audit", None, 2), None)
        .await
        .expect("append");
    let want: Vec<EventRecord> = events
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.seq = i as u64 + 1;
            e.audit_seq = None;
            e
        })
        .collect();
    assert_eq!(s.events_after(0, 10).expect("events"), want);
    s.close();
    let s = b.open(dir, "b");
    assert_eq!(s.events_after(0, 10).expect("events"), want);
}

async fn the_outbox_numbers_events_moves_marks_once_and_tracks_webhooks(
    b: &dyn Backend,
    dir: &Path,
) {
    let s = b.open(dir, "a");
    // A webhook made before any event starts at 0.
    let mut hook = WebhookRecord {
        id: "wh-0000000000000001".into(),
        url: "https://example.com/hook".into(),
        secret: "s".repeat(32),
        event_types: vec![],
        created_at: 0,
        created_by: "CN=tester".into(),
        delivered_seq: 99,
    };
    let stored = s
        .create_webhook(hook.clone(), draft("CreateWebhook", &hook.id))
        .await
        .expect("webhook");
    assert_eq!(
        stored.delivered_seq, 0,
        "a new webhook starts at the newest event"
    );
    assert!(matches!(
        s.create_webhook(hook.clone(), draft("CreateWebhook", &hook.id))
            .await,
        Err(StoreError::Conflict(_))
    ));

    let last = s
        .append_events(
            vec![event(100, "A"), event(200, "B")],
            mark("audit", None, 7),
            None,
        )
        .await
        .expect("append");
    assert_eq!(last, 2);
    assert_eq!(s.event_mark("audit").expect("mark"), Some(7));
    // A second producer that read the mark before it moved writes nothing.
    assert!(matches!(
        s.append_events(vec![event(300, "C")], mark("audit", None, 9), None)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.events_after(0, 10).expect("events").len(), 2);

    // Pruning drops the old prefix; numbers never come round again.
    s.append_events(vec![event(300, "C")], mark("audit", Some(7), 8), Some(250))
        .await
        .expect("append and prune");
    let left = s.events_after(0, 10).expect("events");
    assert_eq!(
        left.iter()
            .map(|e| (e.seq, e.event_type.as_str()))
            .collect::<Vec<_>>(),
        vec![(3, "C")]
    );
    assert_eq!(s.events_after(3, 10).expect("events"), vec![]);

    // A webhook made now starts after event 3; delivery never moves back.
    hook.id = "wh-0000000000000002".into();
    let second = s
        .create_webhook(hook.clone(), draft("CreateWebhook", &hook.id))
        .await
        .expect("webhook");
    assert_eq!(second.delivered_seq, 3);
    s.webhook_delivered("wh-0000000000000001", 2)
        .await
        .expect("delivered");
    s.webhook_delivered("wh-0000000000000001", 1)
        .await
        .expect("delivered");
    s.close();
    let s = b.open(dir, "b");
    let hooks = s.list_webhooks().expect("hooks");
    assert_eq!(hooks.len(), 2);
    assert_eq!(
        hooks[0].delivered_seq, 2,
        "progress survives a restart and never moves back"
    );
    assert_eq!(s.event_mark("audit").expect("mark"), Some(8));
    assert!(s
        .delete_webhook(
            "wh-0000000000000001",
            draft("DeleteWebhook", "wh-0000000000000001")
        )
        .await
        .expect("delete"));
    assert!(matches!(
        s.webhook_delivered("wh-0000000000000001", 3).await,
        Err(StoreError::NotFound(_))
    ));
    let actions: Vec<String> = audit_actions(s.as_ref())
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(actions, ["CreateWebhook", "CreateWebhook", "DeleteWebhook"]);
    s.close();
}

async fn a_stale_acme_account_copy_cannot_undo_a_key_change_or_a_deactivation(
    b: &dyn Backend,
    dir: &Path,
) {
    let s = b.open(dir, "a");
    let account = AcmeAccount {
        id: "acct-1".into(),
        provisioner: "default".into(),
        status: "valid".into(),
        thumbprint: "k1".into(),
        jwk: "{}".into(),
        contact: vec![],
        created_at: 0,
        eab_kid: None,
    };
    s.acme_create_account(account.clone(), draft("AcmeNewAccount", "acct-1"))
        .await
        .expect("create");
    // Key change k1 -> k2.
    let mut moved = account.clone();
    moved.thumbprint = "k2".into();
    s.acme_update_account(moved.clone(), "k1".into(), draft("AcmeKeyChange", "acct-1"))
        .await
        .expect("key change");
    // A copy read before the change (key k1) cannot write k1 back.
    let mut stale = account.clone();
    stale.contact = vec!["mailto:x@example.com".into()];
    assert!(matches!(
        s.acme_update_account(stale, "k1".into(), draft("AcmeUpdateAccount", "acct-1")).await,
        Err(StoreError::Conflict(why)) if why.starts_with("stale:")
    ));
    assert_eq!(
        s.acme_account_by_key("k2").expect("read").map(|a| a.id),
        Some("acct-1".into())
    );
    assert_eq!(s.acme_account_by_key("k1").expect("read"), None);
    // Deactivated; a copy still marked valid cannot revive it.
    let mut gone = moved.clone();
    gone.status = "deactivated".into();
    s.acme_update_account(gone, "k2".into(), draft("AcmeDeactivateAccount", "acct-1"))
        .await
        .expect("deactivate");
    assert!(matches!(
        s.acme_update_account(moved, "k2".into(), draft("AcmeUpdateAccount", "acct-1"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.acme_account("acct-1").expect("read").map(|a| a.status),
        Some("deactivated".into())
    );
    s.close();
}

async fn crl_numbers_only_go_up(b: &dyn Backend, dir: &Path) {
    let s = b.open(dir, "boot1");
    let meta = |n: u64| CrlMeta {
        crl_number: n,
        this_update: 1,
        next_update: 2,
        entries: 0,
    };
    let told = Arc::new(Mutex::new(Vec::new()));
    {
        let told = told.clone();
        s.subscribe(Arc::new(move |e| {
            told.lock().expect("lock").push(e.clone())
        }));
    }
    s.put_crl_meta(
        CA1,
        meta(1),
        b"crl-1".to_vec(),
        vec![],
        draft("SignCrl", "1"),
    )
    .await
    .expect("first CRL");
    // Another signer with the same number (or an older one) is refused and
    // leaves nothing behind: not the record, not an audit entry.
    for n in [1, 0] {
        let r = s
            .put_crl_meta(
                CA1,
                meta(n),
                b"other".to_vec(),
                vec![],
                draft("SignCrl", "x"),
            )
            .await;
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{r:?}");
    }
    assert_eq!(
        s.crl_meta(CA1).expect("meta").map(|m| m.crl_number),
        Some(1)
    );
    s.put_crl_meta(
        CA1,
        meta(2),
        b"crl-2".to_vec(),
        vec![],
        draft("SignCrl", "2"),
    )
    .await
    .expect("next CRL");
    // Where the backend keeps the DER, it is the published one.
    if let Some(der) = s.crl_der(CA1, 2).expect("der") {
        assert_eq!(der, b"crl-2");
    }
    assert_eq!(
        *told.lock().expect("lock"),
        vec![
            Committed::CrlPublished {
                ca_id: CA1.into(),
                number: 1
            },
            Committed::CrlPublished {
                ca_id: CA1.into(),
                number: 2
            }
        ]
    );
    let signed: Vec<_> = audit_actions(s.as_ref())
        .into_iter()
        .filter(|(a, _)| a == "SignCrl")
        .collect();
    assert_eq!(signed.len(), 2, "{signed:?}");
    s.close();
}

async fn run_all(b: &dyn Backend) {
    macro_rules! case {
        ($f:ident) => {{
            let dir = tempfile::tempdir().expect("tempdir");
            $f(b, dir.path()).await;
        }};
    }
    case!(serials_are_never_reused_and_tokens_bind_requests);
    case!(an_action_and_its_audit_entry_commit_together);
    case!(revocation_is_idempotent_raises_to_key_compromise_and_tells_hooks);
    case!(an_intent_orphaned_by_a_crash_frees_its_token_not_its_serial);
    case!(paging_walks_every_certificate_once);
    case!(concurrent_writers_each_get_their_own_answer);
    case!(a_new_ca_is_one_commit);
    case!(keys_and_policies_survive_a_restart);
    case!(audit_digests_follow_one_another_and_bind_the_head);
    case!(the_outbox_numbers_events_moves_marks_once_and_tracks_webhooks);
    case!(events_made_from_audit_entries_read_back_as_made);
    case!(certificates_read_back_byte_for_byte);
    case!(a_stale_acme_account_copy_cannot_undo_a_key_change_or_a_deactivation);
    case!(crl_numbers_only_go_up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_passes_the_conformance_suite() {
    run_all(&Redb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_conformance_suite() {
    run_all(&Postgres::start()).await;
}

mod postgres_only;
mod redb_only;
