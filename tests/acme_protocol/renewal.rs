//! Renewal information (ARI) and the hourly order limit.

use super::*;

/// RFC 9773's certID of a PEM certificate: base64url(AKI).base64url(serial).
fn cert_id(pem: &str) -> String {
    use der::{Decode, Encode};
    let der = ca_core::pem::decode_all("CERTIFICATE", pem)
        .expect("pem")
        .remove(0);
    let cert = x509_cert::Certificate::from_der(&der).expect("cert");
    let (_, aki) = cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::AuthorityKeyIdentifier>()
        .expect("aki")
        .expect("aki");
    let serial = cert.tbs_certificate.serial_number.to_der().expect("serial");
    // The INTEGER's content octets (after tag and length).
    let content = &serial[2..];
    format!(
        "{}.{}",
        b64(aki.key_identifier.expect("key id").as_bytes()),
        b64(content)
    )
}

#[test]
fn renewal_information_suggests_a_window_and_now_once_revoked() {
    let a = setup();
    let mut c = a.account();
    let pem =
        a.rt.block_on(c.obtain(&["ari.example.test"], &a.responder))
            .expect("obtain");
    let id = cert_id(&pem);
    let url = format!("{}/{id}", c.url("renewalInfo"));
    let ask = |c: &mut AcmeClient| {
        a.rt.block_on(c.send(hyper::Method::GET, &url, None))
            .expect("renewalInfo")
    };
    let (st, h, body) = ask(&mut c);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert!(
        h.get("retry-after").is_some(),
        "Retry-After tells when to ask again"
    );
    let v: Value = serde_json::from_slice(&body).expect("json");
    let t = |s: &Value| {
        time::OffsetDateTime::parse(
            s.as_str().expect("time"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("RFC 3339")
    };
    let (start, end) = (
        t(&v["suggestedWindow"]["start"]),
        t(&v["suggestedWindow"]["end"]),
    );
    let now = time::OffsetDateTime::now_utc();
    assert!(now < start && start < end, "a window ahead: {v}");

    // An order may say which certificate it replaces; another account's is refused.
    let order =
        json!({"identifiers": [{"type": "dns", "value": "ari.example.test"}], "replaces": id});
    let new_order = c.url("newOrder");
    let (st, _, body) =
        a.rt.block_on(c.post(&new_order, Some(&order)))
            .expect("order");
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    let mut other = a.account();
    let refused =
        a.rt.block_on(other.post(&new_order, Some(&order)))
            .expect("order");
    assert_eq!(problem(&refused), "unauthorized");

    // Revoked: renew now.
    let serial = {
        use der::Decode;
        let der = ca_core::pem::decode_all("CERTIFICATE", &pem)
            .expect("pem")
            .remove(0);
        let cert = x509_cert::Certificate::from_der(&der).expect("cert");
        ca_core::hex::encode(cert.tbs_certificate.serial_number.as_bytes())
    };
    let (st, v) = harness::relying::revoke(&a.s, serial.trim_start_matches("00"), "SUPERSEDED");
    assert_eq!(st, 200, "{v}");
    let (_, _, body) = ask(&mut c);
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert!(
        t(&v["suggestedWindow"]["start"]) <= time::OffsetDateTime::now_utc(),
        "{v}"
    );

    // Not ours: 404.
    let bogus = format!(
        "{}/{}.{}",
        c.url("renewalInfo"),
        b64(b"nope"),
        b64(&[1, 2, 3])
    );
    let (st, _, _) =
        a.rt.block_on(c.send(hyper::Method::GET, &bogus, None))
            .expect("renewalInfo");
    assert_eq!(st, 404);
}

#[test]
fn orders_past_the_hourly_limit_are_refused_with_retry_after() {
    let mut a = setup();
    a.s.stop();
    let config = a.s.dir.join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let tuned = text.replace(
        "orders_per_account_per_hour = 1000",
        "orders_per_account_per_hour = 2",
    );
    assert_ne!(tuned, text);
    std::fs::write(&config, tuned).expect("config");
    a.s.start();
    let port: u16 = a
        .directory
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("port");
    harness::wait_for_port(port, "ACME listener");
    let mut c = a.account();
    let url = c.url("newOrder");
    let order = json!({"identifiers": [{"type": "dns", "value": "busy.example.test"}]});
    for _ in 0..2 {
        let (st, _, body) = a.rt.block_on(c.post(&url, Some(&order))).expect("order");
        assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    }
    let third = a.rt.block_on(c.post(&url, Some(&order))).expect("order");
    assert_eq!(third.0, 429);
    assert_eq!(problem(&third), "rateLimited");
    assert!(third.1.get("retry-after").is_some());
    // Another account has its own allowance.
    let mut other = a.account();
    let (st, _, _) =
        a.rt.block_on(other.post(&url, Some(&order)))
            .expect("order");
    assert_eq!(st, 201);

    // A directory-wide limit holds across accounts.
    a.s.stop();
    let text = std::fs::read_to_string(&config).expect("config");
    let tuned = text.replace(
        "name = \"default\"\n",
        "name = \"default\"\norders_per_hour = 3\n",
    );
    assert_ne!(tuned, text);
    std::fs::write(&config, tuned).expect("config");
    a.s.start();
    harness::wait_for_port(port, "ACME listener");
    let mut answers = Vec::new();
    for _ in 0..4 {
        let mut c = a.account();
        answers.push(a.rt.block_on(c.post(&url, Some(&order))).expect("order").0);
    }
    assert_eq!(
        answers,
        [201, 201, 201, 429],
        "three orders an hour through the directory"
    );
}
