//! A wrong PIN or module, a token gone while serving or missing at start.

use std::time::{Duration, Instant};

use super::{
    create_ca, init_with_token, module, openssl_verifies, serve_expecting_failure,
    server_with_token, SoftHsm, PIN,
};
use crate::harness;
use crate::harness::code;
use crate::harness::relying::*;
use serde_json::{json, Value};

#[test]
fn a_wrong_pin_or_module_stops_the_server_at_start_and_a_missing_token_leaves_it_serving() {
    let hsm = SoftHsm::new("ca");
    let mut s = server_with_token(&hsm);
    s.stop();
    let conf = s.dir.join("config.toml");
    let original = std::fs::read_to_string(&conf).expect("config");
    let env = vec![("SOFTHSM2_CONF", hsm.conf.display().to_string())];

    // Wrong PIN: refused once, not retried (tokens lock after a few).
    std::fs::write(hsm.pin_file(), "00000000\n").expect("pin");
    let (status, out) = serve_expecting_failure(&s, &env);
    assert_ne!(status, Some(0), "{out}");
    assert!(out.contains("the token refused the PIN"), "{out}");
    assert!(!out.contains("00000000"), "the PIN was printed: {out}");

    // The PIN from the environment instead of a file works.
    std::fs::write(
        &conf,
        original.replace(
            &format!("pin_file = \"{}\"\n", hsm.pin_file().display()),
            "",
        ),
    )
    .expect("config");
    assert!(!std::fs::read_to_string(&conf)
        .expect("config")
        .contains("pin_file"));
    let (status, out) = serve_expecting_failure(&s, &env);
    assert_ne!(status, Some(0), "{out}");
    assert!(out.contains("no PIN for the token"), "{out}");
    s.env.push(("CA_PKCS11_PIN".into(), PIN.into()));
    s.start();
    let (st, v) = s.curl("GET", "/v1/cas", None);
    assert_eq!(st, 200, "{v}");
    let issuing = s.config.issuing_ca_id.clone();
    issue(&s, &issuing, "env-pin.example");
    s.stop();
    std::fs::write(&conf, &original).expect("config");
    std::fs::write(hsm.pin_file(), format!("{PIN}\n")).expect("pin");

    // A token label the module does not have (a token not plugged in, a
    // network HSM down): the server starts and serves what needs no token
    // key; the token's CAs answer 503 naming the tokens it does see.
    std::fs::write(
        &conf,
        original.replace("token_label = \"ca\"", "token_label = \"elsewhere\""),
    )
    .expect("config");
    s.start();
    let (st, h) = s.curl("GET", "/health", None);
    assert_eq!((st, h["status"].as_str()), (503, Some("degraded")), "{h}");
    assert_eq!(h["checks"]["ca_keys"]["ok"], false, "{h}");
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": harness::core_csr("missing.example"), "ca_id": issuing})),
    );
    assert_eq!((st, code(&v)), (503, "Unavailable"), "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("no token labelled \"elsewhere\""), "{v}");
    assert!(msg.contains("\"ca\" in slot"), "{v}");
    let (st, soft) = create_ca(
        &s,
        json!({"type": "ROOT", "subject": "CN=Software meanwhile"}),
    );
    assert_eq!(st, 201, "{soft}");
    issue(&s, soft["id"].as_str().expect("id"), "software.example");
    assert!(s.log().contains("unavailable at start"), "{}", s.log());
    s.stop();

    // A module that is not there.
    std::fs::write(
        &conf,
        original.replace(p(&module()), "/nonexistent/libpkcs11.so"),
    )
    .expect("config");
    let (status, out) = serve_expecting_failure(&s, &env);
    assert_ne!(status, Some(0), "{out}");
    assert!(
        out.contains("cannot load the PKCS#11 module /nonexistent/libpkcs11.so"),
        "{out}"
    );

    // A PIN in the config file itself is refused.
    std::fs::write(
        &conf,
        original.replace("[pkcs11]\n", "[pkcs11]\npin = \"31415926\"\n"),
    )
    .expect("config");
    let (status, out) = serve_expecting_failure(&s, &env);
    assert_ne!(status, Some(0), "{out}");
    assert!(out.contains("[pkcs11] must not hold the PIN"), "{out}");

    // Back to the real configuration: it starts and signs.
    std::fs::write(&conf, &original).expect("config");
    s.env.retain(|(k, _)| k != "CA_PKCS11_PIN");
    s.start();
    issue(&s, &issuing, "back.example");
}

#[test]
fn a_token_that_goes_away_while_serving_gives_503_and_the_server_recovers() {
    let hsm = SoftHsm::new("ca");
    let mut s = init_with_token(&hsm);
    // CRLs refreshed every second, so a CRL that could not be signed while
    // the token was away is seen to follow soon after it is back.
    let conf = s.dir.join("config.toml");
    let c = std::fs::read_to_string(&conf).expect("config");
    assert!(c.contains("crl_refresh_secs = 60"), "{c}");
    std::fs::write(
        &conf,
        c.replace("crl_refresh_secs = 60", "crl_refresh_secs = 1"),
    )
    .expect("config");
    s.start();
    let issuing = s.config.issuing_ca_id.clone();
    let before = issue(&s, &issuing, "before.example");
    let before_serial = before["serial"].as_str().expect("serial").to_string();
    // The first CRL is signed now (the builder's first pass may not have run
    // yet), so there is one to serve while the token is away.
    let (st, _, _) = public(&crl_url(&s, &issuing), &[]);
    assert_eq!(st, 200);

    // Pull the token: SoftHSM2 keeps each token in a directory.
    let token_dir = std::fs::read_dir(hsm.tokens())
        .expect("tokens")
        .flatten()
        .next()
        .expect("one token")
        .path();
    let away = hsm.dir.path().join("away");
    std::fs::rename(&token_dir, &away).expect("pull the token");
    for _ in 0..3 {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"csr": harness::core_csr("during.example"), "ca_id": issuing})),
        );
        assert_eq!((st, code(&v)), (503, "Unavailable"), "{v}");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        assert!(msg.contains("unavailable"), "{v}");
    }
    // The server is up: reads and the public listener answer. A revocation
    // needs no CA key: it is committed (its CRL waits for the token).
    let (st, v) = s.curl("GET", "/v1/cas", None);
    assert_eq!(st, 200, "{v}");
    let (st, _, _) = public(&crl_url(&s, &issuing), &[]);
    assert_eq!(st, 200);
    let (st, v) = revoke(&s, &before_serial, "SUPERSEDED");
    assert_eq!(st, 200, "{v}");
    // Health says the token is away.
    let (st, h) = s.curl("GET", "/health", None);
    assert_eq!(st, 503, "{h}");
    assert_eq!(
        (h["status"].as_str(), h["pkcs11"]["connected"].as_bool()),
        (Some("degraded"), Some(false)),
        "{h}"
    );
    // The failing check names the CAs whose token is away; the public
    // listener's health says the same to a load balancer.
    let detail = h["checks"]["ca_keys"]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(&format!(
            "{issuing}: its key's PKCS#11 token is not connected"
        )),
        "{h}"
    );
    let (st, _, body) = public(&format!("http://{}/health", s.public), &[]);
    let ph: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        (st, ph["checks"]["ca_keys"]["ok"].as_bool()),
        (503, Some(false)),
        "{ph}"
    );
    assert_eq!(ph["checks"]["store_writable"]["ok"], true, "{ph}");

    // Put it back: issuance works again, without a restart.
    std::fs::rename(&away, &token_dir).expect("put the token back");
    let start = Instant::now();
    loop {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"csr": harness::core_csr("after.example"), "ca_id": issuing})),
        );
        if st == 201 {
            break;
        }
        assert_eq!((st, code(&v)), (503, "Unavailable"), "{v}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the server did not recover: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The CRL signed after the token came back lists the revocation made
    // while it was away, and openssl accepts its signature.
    let crl = s.tmp.path().join("after.crl");
    fetch_crl_listing(&s, &issuing, &before_serial, &crl);
    let (st, _, chain) = public(&format!("http://{}/ca/{issuing}.pem", s.public), &[]);
    assert_eq!(st, 200);
    let chain_file = s.tmp.path().join("issuing-chain.pem");
    std::fs::write(
        &chain_file,
        [chain, std::fs::read(s.root_pem()).expect("root")].concat(),
    )
    .expect("write");
    let out = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl),
        "-CAfile",
        p(&chain_file),
        "-noout",
    ]);
    assert!(text(&out).contains("verify OK"), "{}", text(&out));
    let (st, h) = s.curl("GET", "/health", None);
    assert_eq!(st, 200, "{h}");
    assert_eq!(
        (h["status"].as_str(), h["pkcs11"]["connected"].as_bool()),
        (Some("ok"), Some(true)),
        "{h}"
    );
    let log = s.log();
    assert!(log.contains("the PKCS#11 token is unavailable"), "{log}");
    assert!(log.contains("the PKCS#11 token is back"), "{log}");
    assert!(!log.contains(PIN), "the PIN was logged");
}

#[test]
fn a_token_missing_at_start_is_picked_up_when_it_appears() {
    let hsm = SoftHsm::new("ca");
    let mut s = server_with_token(&hsm);
    let issuing = s.config.issuing_ca_id.clone();
    s.stop();
    let token_dir = std::fs::read_dir(hsm.tokens())
        .expect("tokens")
        .flatten()
        .next()
        .expect("one token")
        .path();
    let away = hsm.dir.path().join("away");
    std::fs::rename(&token_dir, &away).expect("unplug");
    s.start();
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": harness::core_csr("early.example"), "ca_id": issuing})),
    );
    assert_eq!((st, code(&v)), (503, "Unavailable"), "{v}");
    std::fs::rename(&away, &token_dir).expect("plug in");
    let start = Instant::now();
    loop {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"csr": harness::core_csr("late.example"), "ca_id": issuing})),
        );
        if st == 201 {
            let f = Files::new(&s, &issuing, &v);
            let leaf = f.leaf("late", &v);
            let t = openssl_verifies(&s.root_pem(), &f.chain, &leaf);
            assert!(t.contains(": OK"), "{t}");
            break;
        }
        assert_eq!((st, code(&v)), (503, "Unavailable"), "{v}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never picked up: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (st, h) = s.curl("GET", "/health", None);
    assert_eq!((st, h["status"].as_str()), (200, Some("ok")), "{h}");
}
