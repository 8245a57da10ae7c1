//! Accounts: a key change, external account binding, revocation by the
//! certificate key or the account, and deactivation.

use super::*;

#[test]
fn an_account_moves_to_a_new_key_and_the_old_one_stops_working() {
    let mut a = setup();
    let mut c = a.account();
    let kid = c.kid.clone().expect("kid");
    let old_jwk = c.jwk.clone();
    // A request signed with the old key, sent after the change.
    let signed_before = a.rt.block_on(async {
        let n = c.nonce().await.expect("nonce");
        c.jws(&c.header(&kid, &n), None).expect("jws")
    });
    let answer = a.rt.block_on(c.change_key()).expect("keyChange");
    assert_eq!(answer.0, 200, "{}", String::from_utf8_lossy(&answer.2));
    assert_ne!(c.jwk, old_jwk);
    let late =
        a.rt.block_on(c.post_jws(&kid, signed_before))
            .expect("post");
    assert_eq!(
        problem(&late),
        "malformed",
        "the old key no longer signs for the account"
    );
    // The new key works: it finds its account and gets certificates.
    let pem =
        a.rt.block_on(c.obtain(&["moved.example.test"], &a.responder))
            .expect("obtain with the new key");
    assert!(pem.contains("BEGIN CERTIFICATE"));
    let url = c.url("newAccount");
    let found = a.rt.block_on(async {
        c.kid = None;
        let r = c
            .post(&url, Some(&json!({"onlyReturnExisting": true})))
            .await;
        c.kid = Some(kid.clone());
        r
    });
    let found = found.expect("post");
    assert_eq!(
        found.1.get("location").and_then(|v| v.to_str().ok()),
        Some(kid.as_str())
    );
    assert_eq!(a.audited("AcmeKeyChange"), 1);
    // A second account cannot take a key another account has.
    let mut other = a.account();
    let stolen = a.rt.block_on(async {
        let url = other.url("keyChange");
        let nonce = other.nonce().await.expect("nonce");
        // The inner JWS is signed by c's current key, claiming to move
        // `other` onto it.
        let inner: Value = serde_json::from_slice(
            &c.jws(
                &json!({"alg": "ES256", "jwk": c.jwk, "url": url}),
                Some(&json!({"account": other.kid, "oldKey": other.jwk})),
            )
            .expect("inner"),
        )
        .expect("json");
        let outer = other
            .jws(&other.header(&url, &nonce), Some(&inner))
            .expect("outer");
        other.post_jws(&url, outer).await.expect("post")
    });
    assert_eq!(stolen.0, 409, "{}", String::from_utf8_lossy(&stolen.2));
    assert_eq!(
        stolen.1.get("location").and_then(|v| v.to_str().ok()),
        Some(kid.as_str())
    );
    // The key index followed the change.
    a.s.stop();
    let (ok, out) = harness::server::store_check(&a.s.dir);
    assert!(ok, "{out}");
}

#[test]
fn external_account_binding_is_checked_by_the_server() {
    let mut a = setup();
    let eab_dir = a.directory.replace("/acme/default/", "/acme/eab/");
    let out = a.s.cli(&[
        "-o",
        "json",
        "acme",
        "eab",
        "create",
        "--provisioner",
        "eab",
    ]);
    assert!(out.status.success(), "{}", harness::text(&out));
    let made: Value = serde_json::from_slice(&out.stdout).expect("json");
    let kid = made["key"]["key_id"].as_str().expect("kid").to_string();
    let hmac = made["hmac_key"].as_str().expect("hmac").to_string();
    let root = std::fs::read(a.s.root_pem()).expect("root");
    let tls = ca_server::api::client::client_config(&root, None, None).expect("tls");
    let connect = || {
        a.rt.block_on(AcmeClient::connect(&eab_dir, tls.clone()))
            .expect("connect")
    };
    let mut c = connect();
    assert_eq!(c.directory["meta"]["externalAccountRequired"], true);
    // None, a wrong MAC key, an unknown key id: refused, nothing made.
    let url = c.url("newAccount");
    let none =
        a.rt.block_on(c.post(&url, Some(&json!({"termsOfServiceAgreed": true}))))
            .expect("post");
    assert_eq!(problem(&none), "externalAccountRequired");
    let wrong =
        a.rt.block_on(c.new_account_with_eab(&kid, &b64(&[7u8; 32])))
            .expect("post");
    assert_eq!(problem(&wrong), "unauthorized");
    let unknown =
        a.rt.block_on(c.new_account_with_eab("eab-0000000000000000", &hmac))
            .expect("post");
    assert_eq!(problem(&unknown), "unauthorized");
    // The right one binds; the same key cannot bind a second account.
    let ok =
        a.rt.block_on(c.new_account_with_eab(&kid, &hmac))
            .expect("post");
    assert_eq!(ok.0, 201, "{}", String::from_utf8_lossy(&ok.2));
    let mut second = connect();
    let again =
        a.rt.block_on(second.new_account_with_eab(&kid, &hmac))
            .expect("post");
    assert_eq!(problem(&again), "unauthorized");
    assert_eq!(a.audited("AcmeNewAccount"), 1);
    // The account and its key name each other in the store.
    a.s.stop();
    let (ok, out) = harness::server::store_check(&a.s.dir);
    assert!(ok, "{out}");
}

#[test]
fn revocation_by_the_certificate_key_or_the_account_and_deactivation() {
    let a = setup();
    let mut c = a.account();
    let (pem, key, jwk) =
        a.rt.block_on(c.obtain_keeping_key(&["rk.example.test"], &a.responder))
            .expect("obtain");
    let der = ca_core::pem::decode_all("CERTIFICATE", &pem)
        .expect("pem")
        .remove(0);
    // Another account may not revoke it; an unknown reason is refused.
    let mut stranger = a.account();
    let r =
        a.rt.block_on(stranger.revoke(&der, 0, None))
            .expect("revoke");
    assert_eq!(problem(&r), "unauthorized");
    let r = a.rt.block_on(c.revoke(&der, 7, None)).expect("revoke");
    assert_eq!(problem(&r), "badRevocationReason");
    // Signed by the key of another certificate: refused.
    let (_, other_key, other_jwk) =
        a.rt.block_on(stranger.obtain_keeping_key(&["other.example.test"], &a.responder))
            .expect("obtain");
    let r =
        a.rt.block_on(stranger.revoke(&der, 1, Some((&other_key, &other_jwk))))
            .expect("revoke");
    assert_eq!(problem(&r), "unauthorized");
    // Signed by the certificate's own key (no account): revoked.
    let r =
        a.rt.block_on(stranger.revoke(&der, 1, Some((&key, &jwk))))
            .expect("revoke");
    assert_eq!(r.0, 200, "{}", String::from_utf8_lossy(&r.2));
    let serial = {
        use der::Decode;
        let cert = x509_cert::Certificate::from_der(&der).expect("cert");
        ca_core::hex::encode(cert.tbs_certificate.serial_number.as_bytes())
    };
    let (st, v) = a.s.curl(
        "GET",
        &format!("/v1/certificates/{}", serial.trim_start_matches("00")),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "REVOKED", "{v}");
    let again = a.rt.block_on(c.revoke(&der, 0, None)).expect("revoke");
    assert_eq!(problem(&again), "alreadyRevoked");

    // A deactivated account can do nothing more.
    let kid = c.kid.clone().expect("kid");
    let r =
        a.rt.block_on(c.post(&kid, Some(&json!({"status": "deactivated"}))))
            .expect("deactivate");
    assert_eq!(r.0, 200);
    let url = c.url("newOrder");
    let r =
        a.rt.block_on(c.post(
            &url,
            Some(&json!({"identifiers": [{"type": "dns", "value": "late.example.test"}]})),
        ))
        .expect("order");
    assert_eq!(problem(&r), "unauthorized");
    assert_eq!(a.audited("AcmeDeactivateAccount"), 1);
}
