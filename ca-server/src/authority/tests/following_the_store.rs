//! What the authority keeps beside the store (its policies, the CRLs it
//! serves) follows what the store holds: after a commit reported failed
//! that the store holds all the same, and when stored policies cannot be read.

use std::time::{Duration, Instant};

use super::*;
use crate::store::faults::{register, Fault, Registered};

/// An authority without CAs on a store in `dir` registered for faults,
/// following its stored policies as the server does.
fn authority_with_faults(dir: &tempfile::TempDir) -> (Arc<dyn Store>, Arc<Authority>, Registered) {
    let fault = register(dir.path());
    let store = crate::store::open(dir.path(), "unit-test".into()).expect("store");
    let master = ca_core::envelope::MasterKey::generate().expect("master key");
    let vault = Vault::new(store.clone(), Box::new(master)).expect("vault");
    let policies = Policies::load(store.as_ref()).expect("policies");
    let auth = Arc::new(Authority::new(
        store.clone(),
        vault,
        policies,
        config(),
        "http://127.0.0.1:8080".into(),
    ));
    assert!(crate::policy_follow::follow_stored_policies(&auth).is_none());
    (store, auth, fault)
}

/// Alice may do `action` on every CA.
fn grant(action: &str) -> StatementDto {
    StatementDto {
        id: None,
        effect: "allow".into(),
        principals: vec![PrincipalDto::Fingerprint(ALICE_FP.into())],
        actions: vec![action.into()],
        cas: vec!["*".into()],
        conditions: ConditionsDto::default(),
    }
}

/// The ids of the statements in force.
fn in_force(auth: &Authority) -> Vec<String> {
    auth.policies
        .statements()
        .into_iter()
        .map(|s| s.id)
        .collect()
}

/// The statements in force once they are `want`, or after 10 s.
async fn in_force_once(auth: &Authority, want: &[&str]) -> Vec<String> {
    let start = Instant::now();
    while in_force(auth) != want && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    in_force(auth)
}

/// A policy change its caller was told had failed, that the store holds all
/// the same (the journal's sync and its undo both failed after the write):
/// once the store has reopened by itself, the policies the server decides
/// with are the stored ones, not the ones it kept in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_follow_the_store_after_a_change_reported_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, auth, fault) = authority_with_faults(&dir);

    fault.arm(Fault::UndoFailsToo);
    auth.policies
        .put(store.as_ref(), "late-grant", grant("issue"))
        .await
        .expect_err("reported failed");
    assert!(!fault.armed(), "the fault did not fire");
    let kept = in_force_once(&auth, &["late-grant"]).await;
    let stored: Vec<String> = store
        .list_policies()
        .expect("policies")
        .unwrap_or_default()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(stored, ["late-grant"], "the store holds the change");
    assert_eq!(
        kept, stored,
        "the server decides with what it kept, not what the store holds"
    );
    store.close();
}
/// A revocation its caller was told had failed, that the store holds all the
/// same (the journal's sync and its undo both failed after the write): once
/// the store has reopened by itself, the CA's CRL is built again and lists
/// the certificate, as OCSP (read from the store) already says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reported_failed_that_the_store_holds_reaches_the_crl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fault = register(dir.path());
    let crl_dir = tempfile::tempdir().expect("tempdir");
    let f = fixture_in(dir).await;
    let view = issue(&f, &system(), "web.example.com")
        .await
        .expect("issue");
    let svc = crate::revocation::RevocationService::new(f.auth.clone(), crl_dir.path().into());
    let listed = |der: &[u8]| -> Vec<String> {
        let list = x509_cert::crl::CertificateList::from_der(der).expect("CRL");
        list.tbs_cert_list
            .revoked_certificates
            .unwrap_or_default()
            .iter()
            .map(|r| ca_core::hex::encode(r.serial_number.as_bytes()))
            .map(|s| s.trim_start_matches("00").to_string())
            .collect()
    };
    let before = svc.build(&f.sub.id).await.expect("first CRL");
    assert!(listed(&before.der).is_empty());
    // Every CRL built before the builder starts: its first pass then commits
    // nothing, and the fault below is the revocation's.
    svc.build(&f.root.id).await.expect("the root's CRL");
    let builder = svc.spawn_builder();

    fault.arm(Fault::UndoFailsToo);
    f.auth
        .revoke(
            &system(),
            None,
            &view.record.serial,
            RevocationReason::Superseded,
        )
        .await
        .expect_err("reported failed");
    assert!(!fault.armed(), "the fault did not fire");
    let serial = view.record.serial.trim_start_matches("00").to_string();
    let start = Instant::now();
    let mut served = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(crl) = svc.current_crl(&f.sub.id).await {
            served = listed(&crl.der);
            if !served.is_empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    builder.abort();
    let stored = f
        .store
        .get_cert(&f.sub.id, &view.record.serial)
        .expect("read")
        .expect("stored");
    assert_eq!(
        stored.0.status,
        CertStatus::Revoked,
        "the store holds the revocation"
    );
    assert_eq!(served, [serial], "the CRL served does not list it");
    f.store.close();
}

/// A replayed policy the server cannot read (reported failed, held all the
/// same, and not a statement): no statement is in force, not the ones kept
/// from before, until the policies read again, which the server retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_policy_is_in_force_while_the_stored_ones_cannot_be_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, auth, fault) = authority_with_faults(&dir);
    auth.policies
        .put(store.as_ref(), "grant", grant("issue"))
        .await
        .expect("policy");
    assert_eq!(in_force(&auth), ["grant"]);

    fault.arm(Fault::UndoFailsToo);
    let draft = || crate::audit::commit_draft("ca-server", "PutPolicy", "unreadable");
    store
        .put_policy("unreadable", b"{not json".to_vec(), draft())
        .await
        .expect_err("reported failed");
    assert!(!fault.armed(), "the fault did not fire");
    assert_eq!(
        in_force_once(&auth, &[]).await,
        Vec::<String>::new(),
        "the kept statements stayed in force"
    );

    // What cannot be read goes (here through the store, as the test put it
    // there; an operator has no command for it, only a restore): the retry
    // then reads the rest.
    let start = Instant::now();
    loop {
        match store.delete_policy("unreadable", draft()).await {
            Ok(existed) => {
                assert!(existed, "the store does not hold the replayed policy");
                break;
            }
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(10),
                "the store did not reopen: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        in_force_once(&auth, &["grant"]).await,
        ["grant"],
        "the policies were not read again"
    );
    store.close();
}

/// While the policies are withheld a change still commits, but is not put in
/// force alone (the set it belongs to could deny what it grants): the next
/// read of the store brings it with the rest.
#[tokio::test]
async fn a_policy_change_while_withheld_waits_for_the_read() {
    let f = fixture().await;
    let policies = &f.auth.policies;
    policies
        .put(f.store.as_ref(), "first", grant("issue"))
        .await
        .expect("policy");
    policies.withhold();
    assert!(in_force(&f.auth).is_empty());
    policies
        .put(f.store.as_ref(), "second", grant("revoke"))
        .await
        .expect("a change commits while withheld");
    assert!(
        in_force(&f.auth).is_empty(),
        "one statement was put in force alone"
    );
    assert!(policies.reload(f.store.as_ref()).expect("reload"));
    assert_eq!(in_force(&f.auth), ["first", "second"]);
    assert!(!policies.is_withheld());
}

/// A stored statement that no longer converts: an allow statement is left
/// out (access only narrows); a deny statement fails the load (leaving it
/// out would widen access).
#[tokio::test]
async fn a_deny_statement_that_does_not_convert_is_not_left_out() {
    let f = fixture().await;
    let stored = |effect: &str| {
        serde_json::to_vec(&serde_json::json!({
            "effect": effect,
            "principals": [{"fingerprint": ALICE_FP}],
            "actions": ["no-such-action"],
            "cas": ["*"]
        }))
        .expect("json")
    };
    let draft = |id: &str| crate::audit::commit_draft("ca-server", "PutPolicy", id);
    f.store
        .put_policy("odd-allow", stored("allow"), draft("odd-allow"))
        .await
        .expect("stored");
    let loaded = Policies::load(f.store.as_ref()).expect("an allow statement is left out");
    assert!(loaded.statements().is_empty());
    f.store
        .put_policy("odd-deny", stored("deny"), draft("odd-deny"))
        .await
        .expect("stored");
    let refused = Policies::load(f.store.as_ref())
        .err()
        .expect("a deny statement was left out");
    assert!(refused.to_string().contains("odd-deny"), "{refused}");
}

/// A reload that read the store before a change made by this process landed
/// in the cache does not install what it read (that would take the change
/// out of force until the next reload): it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_does_not_undo_a_change_made_while_it_read() {
    let f = fixture().await;
    let (auth, store) = (f.auth.clone(), f.store.clone());
    let runtime = tokio::runtime::Handle::current();
    let change = Box::new(move || {
        runtime
            .block_on(
                auth.policies
                    .put(store.as_ref(), "alice-late", grant("issue")),
            )
            .expect("put");
    });
    *f.auth
        .policies
        .between_read_and_install
        .lock()
        .expect("hook") = Some(change);
    let (auth, store) = (f.auth.clone(), f.store.clone());
    // Off the runtime's threads: the change blocks on the runtime.
    std::thread::spawn(move || auth.policies.reload(store.as_ref()))
        .join()
        .expect("reload thread")
        .expect("reload");
    assert!(
        f.auth
            .policies
            .between_read_and_install
            .lock()
            .expect("hook")
            .is_none(),
        "the change was not made during the reload"
    );
    let ids = in_force(&f.auth);
    assert!(ids.iter().any(|id| id == "alice-late"), "{ids:?}");
}
