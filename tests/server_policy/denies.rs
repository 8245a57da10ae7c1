//! Deny statements hold however the request or the caller is named.

use super::{csr_body, csr_body_with_subject};
use crate::harness;
use crate::harness::Server;
use serde_json::{json, Value};

/// Security review M1: an explicit deny holds however the request is phrased.
/// Each case was issued (201) before the fix.
#[test]
fn denies_hold_by_ca_id_at_any_depth_on_every_common_name_and_on_mapped_addresses() {
    let s = Server::start_new();
    let issuing = s.config.issuing_ca_id.clone();
    let (cert, key, _) = harness::client_identity(&s, "wide", "CN=svc-wide,O=test");
    let put = |id: &str, body: Value| s.put_policy(id, body);
    put(
        "wide-issue",
        json!({"effect": "allow", "principals": [{"subject": "CN=svc-wide*"}],
               "actions": ["issue"], "cas": ["*"]}),
    );
    // Named by alias; the request below names the CA by its id.
    put(
        "no-blocked-on-issuing",
        json!({"effect": "deny", "principals": [{"subject": "CN=svc-wide*"}],
               "actions": ["issue"], "cas": ["issuing"],
               "conditions": {"name_patterns": ["*.blocked.example"]}}),
    );
    put(
        "no-secret",
        json!({"effect": "deny", "principals": [{"subject": "CN=svc-wide*"}],
               "actions": ["issue"], "cas": ["*"],
               "conditions": {"name_patterns": ["*.secret.example", "evil.example"],
                              "ip_ranges": ["192.168.0.0/16"]}}),
    );
    let issue = |body: Value| s.curl_as(&cert, &key, "POST", "/v1/certificates", Some(&body));

    // Positive control: the same caller, CA and shape of request, allowed.
    let (st, v) = issue(csr_body(&issuing, &["ok.example"], "tls-server", None));
    assert_eq!(st, 201, "control: {v}");
    let stored = || {
        let (st, v) = s.curl("GET", "/v1/certificates?limit=1000", None);
        assert_eq!(st, 200, "{v}");
        v["certificates"].as_array().expect("list").len()
    };
    let before = stored();

    // The deny names the alias; the request names the CA's id.
    let (st, v) = issue(csr_body(
        &issuing,
        &["x.blocked.example"],
        "tls-server",
        None,
    ));
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "by id: {v}");
    assert!(v.to_string().contains("no-blocked-on-issuing"), "{v}");

    // `*.secret.example` covers the apex and any depth.
    for name in ["secret.example", "a.b.secret.example"] {
        let (st, v) = issue(csr_body(&issuing, &[name], "tls-server", None));
        assert_eq!(
            (st, harness::code(&v)),
            (403, "PolicyDenied"),
            "{name}: {v}"
        );
        assert!(v.to_string().contains("no-secret"), "{name}: {v}");
    }

    // A second CN naming a denied name: refused by the deny.
    let body = csr_body_with_subject(
        &issuing,
        "CN=evil.example,CN=ok.example",
        &["ok.example"],
        "tls-server",
        None,
    );
    let (st, v) = issue(body);
    assert_eq!(
        (st, harness::code(&v)),
        (403, "PolicyDenied"),
        "second CN: {v}"
    );
    // Two CNs of allowed names: refused all the same (CA/B BR 7.1.4.3).
    let body = csr_body_with_subject(
        &issuing,
        "CN=b.ok.example,CN=a.ok.example",
        &["a.ok.example", "b.ok.example"],
        "tls-server",
        None,
    );
    let (st, v) = issue(body);
    assert_eq!(
        (st, harness::code(&v)),
        (403, "PolicyDenied"),
        "two CNs: {v}"
    );
    assert!(v.to_string().contains("single_common_name"), "{v}");

    // An IPv4-mapped IPv6 address inside a denied IPv4 range, through a CSR
    // (openssl writes it) and through a server-made key.
    let (_, csr) = harness::openssl_csr(
        s.tmp.path(),
        "mapped",
        "DNS:mapped.example,IP:::ffff:192.168.1.1",
    );
    let (st, v) = issue(json!({"ca_id": issuing, "csr": csr, "profile": "tls-server"}));
    assert_eq!(
        (st, harness::code(&v)),
        (400, "MalformedCsr"),
        "mapped address by CSR: {v}"
    );
    assert!(v.to_string().contains("IPv4-mapped"), "{v}");
    let (st, v) = s.curl_as(
        &cert,
        &key,
        "POST",
        "/v1/certificates/request",
        Some(
            &json!({"ca_id": issuing, "names": ["mapped.example", "::ffff:192.168.1.1"],
                     "profile": "tls-server", "passphrase": "test-passphrase"}),
        ),
    );
    assert_eq!(
        (st, harness::code(&v)),
        (400, "InvalidRequest"),
        "mapped address by request: {v}"
    );

    // Nothing refused above reached the store.
    assert_eq!(stored(), before);
}

/// Security review M2: SAN principals are typed and match. A statement
/// written `{"san": "host.example"}` matched nothing before (the caller's SANs
/// are recorded as `DNS:host.example`), so such a deny failed open.
#[test]
fn san_principals_are_typed_and_a_san_deny_holds() {
    let s = Server::start_new();
    let (cert, key, _) = harness::server::client_identity_with_names(
        &s,
        "svc",
        "CN=svc-a,O=test",
        &["host-a.svc.example"],
    );
    let put = |id: &str, body: Value| s.curl("PUT", &format!("/v1/policies/{id}"), Some(&body));
    let ca_path = format!("/v1/cas/{}", s.config.issuing_ca_id);
    let as_svc = || s.curl_as(&cert, &key, "GET", &ca_path, None);
    // Nothing names it yet: deny by default.
    let (st, v) = as_svc();
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");
    // A bare `san` names the DNS SAN.
    let (st, v) = put(
        "by-san",
        json!({"effect": "allow", "principals": [{"san": "host-a.svc.example"}],
               "actions": ["read"], "cas": ["*"]}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = as_svc();
    assert_eq!(st, 200, "allowed by its DNS SAN: {v}");
    // A deny by a one-label DNS pattern holds.
    let (st, v) = put(
        "no-svc",
        json!({"effect": "deny", "principals": [{"dns": "*.svc.example"}],
               "actions": ["read"], "cas": ["*"]}),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = as_svc();
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");
    assert!(v.to_string().contains("no-svc"), "{v}");
    // Patterns that would not mean what they say are refused when put.
    for bad in [
        json!({"dns": "*.*.svc.example"}),
        json!({"email": "a*@x.example"}),
        json!({"uri": "no-scheme"}),
    ] {
        let (st, v) = put(
            "bad",
            json!({"effect": "allow", "principals": [bad], "actions": ["read"], "cas": ["*"]}),
        );
        assert_eq!((st, harness::code(&v)), (400, "InvalidRequest"), "{v}");
    }
}
