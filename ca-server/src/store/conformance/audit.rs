//! Audit digest cases: signed digests follow one another and bind the chain's head.

use super::*;

pub(super) async fn audit_digests_follow_one_another_and_bind_the_head(
    b: &dyn Backend,
    dir: &Path,
) {
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
