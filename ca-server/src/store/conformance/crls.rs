//! CRL cases: CRL numbers only go up, and each publication is told and audited once.

use super::*;

pub(super) async fn crl_numbers_only_go_up(b: &dyn Backend, dir: &Path) {
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
