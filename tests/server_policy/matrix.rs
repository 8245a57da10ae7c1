//! The policy matrix: identities × actions × CAs × names, no bypass, every call audited.

use std::path::PathBuf;

use super::{csr_body, csr_body_with_subject};
use crate::harness;
use crate::harness::server::server_bin;
use crate::harness::Server;
use serde_json::{json, Value};

struct Who {
    name: &'static str,
    cert: PathBuf,
    key: PathBuf,
    fp: String,
}

struct Call {
    who: usize,
    method: &'static str,
    path: String,
    body: Option<Value>,
    allowed: bool,
    what: String,
}

#[test]
fn policy_matrix_has_no_bypass_and_every_call_is_audited() {
    let mut s = Server::start_new();
    let a = s.config.issuing_ca_id.clone();
    let root = s.config.root_ca_id.clone();
    // CA B: a second issuing CA.
    let (st, v) = s.curl(
        "POST",
        "/v1/cas",
        Some(&json!({"type": "SUBORDINATE", "subject": "CN=Issuing B", "parent_ca_id": root, "path_len": 0})),
    );
    assert_eq!(st, 201, "{v}");
    let b = v["id"].as_str().expect("id").to_string();

    let admin = Who {
        name: "admin",
        cert: s.admin_dir().join("admin.pem"),
        key: s.admin_dir().join("admin.key"),
        fp: {
            let pem = std::fs::read_to_string(s.admin_dir().join("admin.pem")).expect("pem");
            let der = ca_core::pem::decode("CERTIFICATE", &pem).expect("der");
            let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
            d.as_ref().iter().map(|x| format!("{x:02x}")).collect()
        },
    };
    let mk = |name: &'static str, subject: &str| {
        let (cert, key, fp) = harness::client_identity(&s, name, subject);
        Who {
            name,
            cert,
            key,
            fp,
        }
    };
    let issuer = mk("issuer", "CN=svc-issuer,O=test");
    let reader = mk("reader", "CN=svc-reader,O=test");
    let auditor = mk("auditor", "CN=svc-auditor,O=test");
    let nobody = mk("nobody", "CN=svc-nobody,O=test");
    let pinned = mk("pinned", "CN=ops,O=test");
    // Same subject as the pinned identity, another certificate.
    let impostor = mk("impostor", "CN=ops,O=test");

    let put = |id: &str, body: Value| s.put_policy(id, body);
    put(
        "issuer-a",
        json!({"effect": "allow", "principals": [{"subject": "CN=svc-issuer*"}],
               "actions": ["issue"], "cas": [a],
               "conditions": {"name_patterns": ["*.svc.example.internal"], "ip_ranges": ["10.0.0.0/8"],
                              "profiles": ["tls-server"], "max_validity_days": 30}}),
    );
    put(
        "issuer-revoke-own",
        json!({"effect": "allow", "principals": [{"subject": "CN=svc-issuer*"}],
               "actions": ["revoke", "read"], "cas": [a]}),
    );
    put(
        "reader",
        json!({"effect": "allow", "principals": [{"subject": "CN=svc-reader*"}],
               "actions": ["read"], "cas": ["*"]}),
    );
    put(
        "auditor",
        json!({"effect": "allow", "principals": [{"subject": "CN=svc-auditor*"}],
               "actions": ["audit"], "cas": ["*"]}),
    );
    put(
        "ops-pinned",
        json!({"effect": "allow", "principals": [{"fingerprint": pinned.fp}],
               "actions": ["revoke", "read"], "cas": [a],
               "conditions": {"revoke_scope": "any"}}),
    );
    // An explicit deny beats the reader's allow on CA B for the auditor... and
    // nobody else: the reader keeps B.
    put(
        "no-audit-reads-b",
        json!({"effect": "deny", "principals": [{"subject": "CN=svc-auditor*"}],
               "actions": ["read"], "cas": [b]}),
    );
    let (st, v) = s.curl("GET", "/v1/policies", None);
    assert_eq!(st, 200);
    assert_eq!(v["statements"].as_array().map(Vec::len), Some(7), "{v}");
    let (st, v) = s.curl(
        "PUT",
        "/v1/policies/bad",
        Some(&json!({"effect": "maybe", "principals": ["anyone"], "actions": ["read"], "cas": ["*"]})),
    );
    assert_eq!((st, harness::code(&v)), (400, "InvalidRequest"), "{v}");

    // Certificates to revoke: two by the issuer on A, one by the admin on A.
    let issue_as = |w: &Who, body: &Value| {
        let (st, v) = s.curl_as(&w.cert, &w.key, "POST", "/v1/certificates", Some(body));
        assert_eq!(st, 201, "{}: {v}", w.name);
        v["serial"].as_str().expect("serial").to_string()
    };
    let own1 = issue_as(
        &issuer,
        &csr_body(&a, &["x1.svc.example.internal"], "tls-server", Some(30)),
    );
    let own2 = issue_as(
        &issuer,
        &csr_body(&a, &["x2.svc.example.internal"], "tls-server", Some(30)),
    );
    let own3 = issue_as(
        &issuer,
        &csr_body(&a, &["x3.svc.example.internal"], "tls-server", Some(30)),
    );
    let admins = issue_as(
        &admin,
        &csr_body(&a, &["adm.example.internal"], "tls-server", None),
    );
    let (st, v) = s.curl("GET", "/v1/audit?limit=1000", None);
    assert_eq!(st, 200);
    let before = v["entries"].as_array().map(Vec::len).expect("entries");

    let who = [
        &admin, &issuer, &reader, &auditor, &nobody, &pinned, &impostor,
    ];
    let (adm, iss, rdr, aud, nob, pin, imp) = (0, 1, 2, 3, 4, 5, 6);
    let mut calls: Vec<Call> = Vec::new();
    let mut add = |who: usize,
                   method: &'static str,
                   path: String,
                   body: Option<Value>,
                   allowed: bool,
                   what: &str| {
        calls.push(Call {
            who,
            method,
            path,
            body,
            allowed,
            what: what.to_string(),
        })
    };
    for (w, me) in who.iter().enumerate() {
        // Create a CA under the root: administer only.
        add(
            w,
            "POST",
            "/v1/cas".into(),
            Some(
                json!({"type": "SUBORDINATE", "subject": format!("CN=Made by {}", me.name), "parent_ca_id": root, "path_len": 0}),
            ),
            w == adm,
            "create CA",
        );
        for (ca, is_a) in [(&a, true), (&b, false)] {
            let issuer_ok = w == adm || (w == iss && is_a);
            add(
                w,
                "POST",
                "/v1/certificates".into(),
                Some(csr_body(
                    ca,
                    &["web.svc.example.internal"],
                    "tls-server",
                    Some(30),
                )),
                issuer_ok,
                "issue allowed name",
            );
            // An allowed name under a subject that names someone else: the
            // name limits bind the subject too.
            add(
                w,
                "POST",
                "/v1/certificates".into(),
                Some(csr_body_with_subject(
                    ca,
                    "CN=svc-auditor,O=test",
                    &["web.svc.example.internal"],
                    "tls-server",
                    Some(30),
                )),
                w == adm,
                "issue allowed name under a forged subject",
            );
            add(
                w,
                "POST",
                "/v1/certificates".into(),
                Some(csr_body(
                    ca,
                    &["a.b.svc.example.internal"],
                    "tls-server",
                    Some(30),
                )),
                w == adm,
                "issue name two labels deep",
            );
            add(
                w,
                "POST",
                "/v1/certificates".into(),
                Some(csr_body(
                    ca,
                    &["db.example.internal"],
                    "tls-server",
                    Some(30),
                )),
                w == adm,
                "issue forbidden name",
            );
            add(
                w,
                "POST",
                "/v1/certificates".into(),
                Some(csr_body(
                    ca,
                    &["ip.svc.example.internal", "10.1.2.3"],
                    "tls-server",
                    Some(30),
                )),
                issuer_ok,
                "issue allowed IP",
            );
            add(
                w,
                "POST",
                "/v1/certificates".into(),
                Some(csr_body(
                    ca,
                    &["ip.svc.example.internal", "192.0.2.1"],
                    "tls-server",
                    Some(30),
                )),
                w == adm,
                "issue forbidden IP",
            );
            add(
                w,
                "POST",
                "/v1/certificates".into(),
                Some(csr_body(
                    ca,
                    &["c.svc.example.internal"],
                    "tls-client",
                    Some(30),
                )),
                w == adm,
                "issue forbidden profile",
            );
            add(
                w,
                "POST",
                "/v1/certificates".into(),
                Some(csr_body(
                    ca,
                    &["l.svc.example.internal"],
                    "tls-server",
                    Some(31),
                )),
                w == adm,
                "issue too long",
            );
            add(
                w,
                "POST",
                "/v1/certificates".into(),
                Some(csr_body(
                    ca,
                    &["d.svc.example.internal"],
                    "tls-server",
                    None,
                )),
                w == adm,
                "issue default validity (above 30 days)",
            );
            let reads = w == adm || w == rdr || ((w == iss || w == pin) && is_a);
            add(
                w,
                "GET",
                format!("/v1/cas/{ca}"),
                None,
                reads,
                "describe CA",
            );
            add(
                w,
                "GET",
                format!("/v1/certificates?ca_id={ca}"),
                None,
                reads,
                "list certificates of CA",
            );
            add(
                w,
                "PATCH",
                format!("/v1/cas/{ca}"),
                Some(json!({"status": "ACTIVE"})),
                w == adm,
                "update CA",
            );
        }
        add(
            w,
            "GET",
            format!("/v1/certificates/{admins}"),
            None,
            w == adm || w == rdr || w == iss || w == pin,
            "get certificate on A",
        );
        for target in [a.as_str(), "issuing", b.as_str()] {
            add(
                w,
                "POST",
                "/v1/certificates/request".into(),
                Some(
                    json!({"ca_id": target, "names": ["rq.svc.example.internal"],
                            "profile": "tls-server", "validity_days": 30,
                            "passphrase": "long enough passphrase"}),
                ),
                w == adm || (w == iss && target != b),
                "request with a server-made key",
            );
            add(
                w,
                "POST",
                "/v1/certificates/request".into(),
                Some(json!({"ca_id": target, "names": ["rq.example.internal"],
                            "profile": "tls-server", "validity_days": 30,
                            "passphrase": "long enough passphrase"})),
                w == adm,
                "request a forbidden name with a server-made key",
            );
        }
        add(
            w,
            "POST",
            format!("/v1/certificates/{own3}/renew"),
            Some(json!({"validity_days": 30})),
            w == adm || w == iss,
            "renew an allowed certificate",
        );
        add(
            w,
            "POST",
            format!("/v1/certificates/{admins}/renew"),
            Some(json!({"validity_days": 30})),
            w == adm,
            "renew a certificate with a forbidden name",
        );
        add(
            w,
            "GET",
            "/v1/audit".into(),
            None,
            w == adm || w == aud,
            "audit list",
        );
        add(
            w,
            "GET",
            "/v1/policies".into(),
            None,
            w == adm,
            "policy list",
        );
        add(
            w,
            "PUT",
            format!("/v1/policies/tmp-{w}"),
            Some(
                json!({"effect": "allow", "principals": ["anyone"], "actions": ["read"], "cas": ["none"]}),
            ),
            w == adm,
            "policy edit",
        );
        // Admin-only routes, refused to everyone else. (The administrator's
        // own calls to them are exercised elsewhere: they change the CAs
        // the rest of this matrix relies on.)
        if w != adm {
            add(
                w,
                "PUT",
                "/v1/aliases/team".into(),
                Some(json!({"ca_id": a})),
                false,
                "alias set",
            );
            add(
                w,
                "POST",
                "/v1/aliases/issuing/rotate".into(),
                None,
                false,
                "alias rotate",
            );
            add(
                w,
                "GET",
                format!("/v1/cas/{b}/csr"),
                None,
                false,
                "a CA's CSR",
            );
            add(
                w,
                "POST",
                format!("/v1/cas/{b}/certificate"),
                Some(
                    json!({"certificate": "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
                            "certificate_chain": ""}),
                ),
                false,
                "CA certificate import",
            );
            add(
                w,
                "DELETE",
                "/v1/policies/issuer".into(),
                None,
                false,
                "policy delete",
            );
        }
    }
    // No probing: an unknown serial is refused, not "not found", without the grant.
    let unknown = "0123456789abcdef0123456789abcdef";
    add(
        nob,
        "GET",
        format!("/v1/certificates/{unknown}"),
        None,
        false,
        "probe an unknown serial",
    );
    add(
        iss,
        "POST",
        format!("/v1/certificates/{unknown}/revoke"),
        Some(json!({"reason": 0})),
        false,
        "probe-revoke an unknown serial",
    );
    // The auditor's explicit deny on B.
    add(
        aud,
        "GET",
        format!("/v1/cas/{b}"),
        None,
        false,
        "explicit deny",
    );
    // Revocation: own vs other's; pinned any; impostor nothing.
    let revoke = json!({"reason": "SUPERSEDED"});
    add(
        imp,
        "POST",
        format!("/v1/certificates/{own1}/revoke"),
        Some(revoke.clone()),
        false,
        "impostor revokes",
    );
    add(
        rdr,
        "POST",
        format!("/v1/certificates/{own1}/revoke"),
        Some(revoke.clone()),
        false,
        "reader revokes",
    );
    add(
        nob,
        "POST",
        format!("/v1/certificates/{own1}/revoke"),
        Some(revoke.clone()),
        false,
        "nobody revokes",
    );
    add(
        iss,
        "POST",
        format!("/v1/certificates/{admins}/revoke"),
        Some(revoke.clone()),
        false,
        "issuer revokes other's",
    );
    add(
        iss,
        "POST",
        format!("/v1/certificates/{own1}/revoke"),
        Some(revoke.clone()),
        true,
        "issuer revokes own",
    );
    add(
        pin,
        "POST",
        format!("/v1/certificates/{own2}/revoke"),
        Some(revoke.clone()),
        true,
        "pinned revokes any",
    );
    add(
        adm,
        "POST",
        format!("/v1/certificates/{own3}/revoke"),
        Some(revoke.clone()),
        true,
        "admin revokes",
    );
    add(
        pin,
        "POST",
        format!("/v1/certificates/{admins}/revoke"),
        Some(revoke.clone()),
        true,
        "pinned revokes admin's",
    );

    let mut failures = Vec::new();
    for c in &calls {
        let w = who[c.who];
        let (st, v) = s.curl_as(&w.cert, &w.key, c.method, &c.path, c.body.as_ref());
        let ok = (200..300).contains(&st);
        let denied = st == 403 && harness::code(&v) == "PolicyDenied";
        if (c.allowed && !ok) || (!c.allowed && !denied) {
            failures.push(format!(
                "{} {} ({} {}): expected {}, got {st} {v}",
                w.name,
                c.what,
                c.method,
                c.path,
                if c.allowed { "allowed" } else { "denied" }
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} bypass(es) or wrong refusals:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // One audit entry per call, in order, with the right identity and outcome.
    s.stop();
    let (entries, _) = ca_server::store::open_read_only(&s.dir)
        .expect("store")
        .audit_page(&ca_server::store::AuditFilter {
            limit: 100_000,
            ..Default::default()
        })
        .expect("audit");
    // The server's own work (CRLs it signs after the matrix's revocations)
    // interleaves as `Internal…` entries: the calls are the rest. The admin's
    // `GET /v1/audit` above was one more entry before the matrix.
    let calls_audited: Vec<_> = entries[before..]
        .iter()
        .filter(|e| !e.action.starts_with("Internal"))
        .cloned()
        .collect();
    let matrix = &calls_audited[1..];
    assert_eq!(matrix.len(), calls.len(), "one audit entry per call");
    for (c, e) in calls.iter().zip(matrix) {
        let w = who[c.who];
        assert_eq!(e.identity.fingerprint, w.fp, "{}", c.what);
        let want = if c.allowed { "allowed" } else { "denied" };
        assert_eq!(e.outcome.decision, want, "{} {}: {e:?}", w.name, c.what);
        if c.allowed {
            assert_eq!(e.result.code, "success", "{} {}", w.name, c.what);
        } else {
            assert_eq!(e.result.code, "PolicyDenied", "{} {}", w.name, c.what);
            assert_eq!(e.result.status, 403);
        }
    }
    let denied_by_statement = matrix
        .iter()
        .find(|e| e.outcome.statement.as_deref() == Some("no-audit-reads-b"))
        .expect("the explicit deny is named");
    assert_eq!(denied_by_statement.outcome.decision, "denied");

    let (ok, out) = {
        let o = harness::run(
            std::process::Command::new(server_bin())
                .args(["audit", "verify", "--data-dir"])
                .arg(&s.dir),
        );
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    assert!(ok, "{out}");
}
