//! CA cases: a new CA is one commit; keys and policies survive a restart.

use super::*;

pub(super) async fn a_new_ca_is_one_commit(b: &dyn Backend, dir: &Path) {
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

pub(super) async fn keys_and_policies_survive_a_restart(b: &dyn Backend, dir: &Path) {
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
