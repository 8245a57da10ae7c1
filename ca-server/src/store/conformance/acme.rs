//! ACME account cases: a stale copy of an account cannot undo a newer write.

use super::*;

pub(super) async fn a_stale_acme_account_copy_cannot_undo_a_key_change_or_a_deactivation(
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
