//! CA rotation behind an alias: clients that issue by alias keep working, the
//! old CA is retired (issues nothing) yet its certificates stay revocable and
//! its certificate stays published; policies may name the alias.

mod harness;

use harness::{core_csr, Server};
use serde_json::json;

#[test]
fn rotating_the_issuing_alias_keeps_clients_working() {
    let s = Server::start_new();
    let old = s.config.issuing_ca_id.clone();
    let (st, v) = s.curl("GET", "/v1/aliases/issuing", None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["ca_id"], old.as_str());

    // Issue by alias and by default: both from the current CA.
    let issue = |ca: Option<&str>| {
        let mut b = json!({"csr": core_csr("svc.example.internal")});
        if let Some(c) = ca {
            b["ca_id"] = json!(c);
        }
        s.curl("POST", "/v1/certificates", Some(&b))
    };
    let (st, v) = issue(Some("issuing"));
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["ca_id"], old.as_str());
    let old_serial = v["serial"].as_str().expect("serial").to_string();

    let (st, v) = s.curl("POST", "/v1/aliases/issuing/rotate", None);
    assert_eq!(st, 200, "{v}");
    let new = v["ca_id"].as_str().expect("new id").to_string();
    assert_ne!(new, old);
    assert_eq!(v["retired"]["status"], "RETIRED");
    assert_eq!(v["new"]["status"], "ACTIVE");
    assert_eq!(v["new"]["parent_ca_id"], s.config.root_ca_id.as_str());

    for ca in [Some("issuing"), None] {
        let (st, v) = issue(ca);
        assert_eq!(st, 201, "{v}");
        assert_eq!(v["ca_id"], new.as_str(), "issued by the new CA");
    }
    // A certificate of the retired CA renews through the alias, from the new CA
    // (what the CLI does: its profile names the alias).
    let (st, v) = s.curl(
        "POST",
        &format!("/v1/certificates/{old_serial}/renew"),
        Some(&json!({"ca_id": "issuing"})),
    );
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["ca_id"], new.as_str());
    let (st, v) = s.curl(
        "GET",
        &format!("/v1/certificates/{old_serial}?ca_id=issuing"),
        None,
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["ca_id"], old.as_str());
    // The old CA issues nothing, but stays readable, published and revocable.
    let (st, v) = issue(Some(&old));
    assert_eq!((st, harness::code(&v)), (409, "InvalidState"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("retired"),
        "{v}"
    );
    let (st, v) = s.curl("GET", &format!("/v1/cas/{old}"), None);
    assert_eq!(st, 200);
    assert_eq!(v["status"], "RETIRED");
    let (st, v) = s.curl(
        "POST",
        &format!("/v1/certificates/{old_serial}/revoke"),
        Some(&json!({"reason": "SUPERSEDED"})),
    );
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.curl(
        "PATCH",
        &format!("/v1/cas/{old}"),
        Some(&json!({"status": "ACTIVE"})),
    );
    assert_eq!(
        (st, harness::code(&v)),
        (409, "Conflict"),
        "a retired CA stays retired: {v}"
    );
    let out = harness::run(std::process::Command::new("curl").args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{}/ca/{old}.pem", s.public),
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");

    // A policy naming the alias: an identity may issue through it.
    let (cert, key, _) = harness::client_identity(&s, "svc", "CN=svc-by-alias,O=test");
    let (st, v) = s.curl(
        "PUT",
        "/v1/policies/by-alias",
        Some(
            &json!({"effect": "allow", "principals": [{"subject": "CN=svc-by-alias*"}],
                     "actions": ["issue"], "cas": ["issuing"]}),
        ),
    );
    assert_eq!(st, 200, "{v}");
    let body = json!({"ca_id": "issuing", "csr": core_csr("x.example.internal")});
    let (st, v) = s.curl_as(&cert, &key, "POST", "/v1/certificates", Some(&body));
    assert_eq!(st, 201, "{v}");
    let body = json!({"ca_id": s.config.root_ca_id, "csr": core_csr("x.example.internal")});
    let (st, v) = s.curl_as(&cert, &key, "POST", "/v1/certificates", Some(&body));
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");
    // Bad aliases.
    let (st, v) = s.curl("POST", "/v1/aliases/nope/rotate", None);
    assert_eq!((st, harness::code(&v)), (404, "NotFound"), "{v}");
    let (st, v) = s.curl("PUT", "/v1/aliases/Bad!", Some(&json!({"ca_id": new})));
    assert_eq!((st, harness::code(&v)), (400, "InvalidRequest"), "{v}");
    let (st, v) = s.curl("GET", "/v1/aliases", None);
    assert_eq!(st, 200);
    assert_eq!(v["aliases"], json!([{"alias": "issuing", "ca_id": new}]));
}

/// Security review H1: whoever may change an alias must not be able to issue
/// from any CA through it. Repointing is judged by CA id on both the current
/// and the new target, and moving `issuing` or pointing at a root or the
/// client-auth CA needs administer over everything.
#[test]
fn an_alias_grant_cannot_repoint_its_alias_at_a_ca_it_does_not_administer() {
    let s = Server::start_new();
    let root = s.config.root_ca_id.clone();
    let client_ca = s.config.client_auth_ca_id.clone();
    let sub = |name: &str| {
        let (st, v) = s.curl(
            "POST",
            "/v1/cas",
            Some(&json!({"type": "SUBORDINATE", "subject": format!("CN={name}"), "parent_ca_id": root, "path_len": 0})),
        );
        assert_eq!(st, 201, "{v}");
        v["id"].as_str().expect("id").to_string()
    };
    let team = sub("Team CA");
    let team2 = sub("Team CA 2");
    let (st, v) = s.curl("PUT", "/v1/aliases/team", Some(&json!({"ca_id": team})));
    assert_eq!(st, 200, "{v}");
    let (lead_cert, lead_key, _) = harness::client_identity(&s, "lead", "CN=team-lead,O=test");
    let (st, v) = s.curl(
        "PUT",
        "/v1/policies/team-lead",
        Some(
            &json!({"effect": "allow", "principals": [{"subject": "CN=team-lead*"}],
                     "actions": ["administer", "issue", "read"], "cas": ["team", team2],
                     "conditions": {"name_patterns": ["*.team.example"]}}),
        ),
    );
    assert_eq!(st, 200, "{v}");
    let lead = |method: &str, path: &str, body: serde_json::Value| {
        s.curl_as(&lead_cert, &lead_key, method, path, Some(&body))
    };
    // The attacks of the review: each refused, the alias left where it was.
    for (alias, target) in [
        ("team", client_ca.as_str()),
        ("team", root.as_str()),
        ("issuing", team.as_str()),
        ("issuing", team2.as_str()),
    ] {
        let (st, v) = lead(
            "PUT",
            &format!("/v1/aliases/{alias}"),
            json!({"ca_id": target}),
        );
        assert_eq!(st, 403, "{alias} -> {target}: {v}");
        assert_eq!(harness::code(&v), "PolicyDenied", "{v}");
    }
    let (_, v) = s.curl("GET", "/v1/aliases/team", None);
    assert_eq!(v["ca_id"], team.as_str());
    let (_, v) = s.curl("GET", "/v1/aliases/issuing", None);
    assert_eq!(v["ca_id"], s.config.issuing_ca_id.as_str());
    // A grant on an alias is about the CA it points to now (review M1), so
    // the lead administers `team`'s CA and team2 (by id): moving `team`
    // between those two is allowed, and nothing else above was.
    let (st, v) = lead("PUT", "/v1/aliases/team", json!({"ca_id": team2}));
    assert_eq!(st, 200, "{v}");
    // Now `team` names team2; the first team CA is no longer the lead's to
    // administer, so it cannot move the alias back there.
    let (st, v) = lead("PUT", "/v1/aliases/team", json!({"ca_id": team}));
    assert_eq!(st, 403, "{v}");
    assert_eq!(harness::code(&v), "PolicyDenied", "{v}");
    // The administrator (administer on *) may still move `issuing`.
    let (st, v) = s.curl("PUT", "/v1/aliases/issuing", Some(&json!({"ca_id": team2})));
    assert_eq!(st, 200, "{v}");
}
