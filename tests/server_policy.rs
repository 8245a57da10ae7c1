//! Access policies end to end: a matrix of identities × actions × CAs × names,
//! each allowed or denied exactly as the policy says (0 bypasses), and exactly
//! one audit entry per call with the matching outcome.

mod harness;

use std::path::PathBuf;

use harness::server::server_bin;
use harness::Server;
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

fn csr_body(ca: &str, names: &[&str], profile: &str, days: Option<u32>) -> Value {
    // A CSR for the first name (or an IP), with every name as a SAN.
    csr_body_with_subject(ca, &format!("CN={}", names[0]), names, profile, days)
}

fn csr_body_with_subject(
    ca: &str,
    subject: &str,
    names: &[&str],
    profile: &str,
    days: Option<u32>,
) -> Value {
    use std::str::FromStr;
    let key =
        ca_core::keys::SoftwareKey::generate(ca_core::keys::KeyAlgorithm::EcdsaP256).expect("key");
    let sans: Vec<_> = names
        .iter()
        .map(|n| ca_core::names::SanEntry::parse(n).expect("san"))
        .collect();
    let der = ca_core::csr::create_csr(
        &key,
        &x509_cert::name::Name::from_str(subject).expect("name"),
        &sans,
    )
    .expect("csr");
    let mut b = json!({
        "ca_id": ca,
        "csr": ca_core::pem::encode("CERTIFICATE REQUEST", &der),
        "profile": profile,
    });
    if let Some(d) = days {
        b["validity_days"] = json!(d);
    }
    b
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

/// Whoever may issue client certificates under name limits cannot mint one
/// whose subject a `subject` principal trusts: the escalation is refused, the
/// names it was granted still work, and `subject_patterns` opens exactly what
/// it names.
#[test]
fn a_name_limited_issuer_cannot_mint_a_trusted_subject() {
    let s = Server::start_new();
    let client_ca = s.config.client_auth_ca_id.clone();
    let put = |id: &str, body: Value| s.put_policy(id, body);
    // Operators trust a subject...
    put(
        "ops-admins",
        json!({"effect": "allow", "principals": [{"subject": "CN=*,O=ops admins"}],
               "actions": ["administer", "issue", "revoke", "read", "audit"], "cas": ["*"],
               "conditions": {"revoke_scope": "any"}}),
    );
    // ...and let a provisioning service issue client certificates for workloads.
    let (cert, key, _) = harness::client_identity(&s, "provisioner", "CN=provisioner,O=test");
    put(
        "provisioner",
        json!({"effect": "allow", "principals": [{"subject": "CN=provisioner,O=test"}],
               "actions": ["issue"], "cas": [client_ca],
               "conditions": {"name_patterns": ["*.workloads.example.internal"],
                              "profiles": ["tls-client"]}}),
    );
    let request = |subject: Option<&str>, names: &[&str]| {
        let mut body = json!({"ca_id": client_ca, "names": names, "profile": "tls-client",
                              "passphrase": "test-passphrase"});
        if let Some(subj) = subject {
            body["subject"] = json!(subj);
        }
        s.curl_as(&cert, &key, "POST", "/v1/certificates/request", Some(&body))
    };
    for forged in [
        "CN=mallory,O=ops admins",
        "CN=job.workloads.example.internal,O=ops admins",
    ] {
        let (st, v) = request(Some(forged), &["job.workloads.example.internal"]);
        assert_eq!(st, 403, "{forged}: {v}");
        assert_eq!(harness::code(&v), "PolicyDenied");
    }
    let (st, v) = request(None, &["job.workloads.example.internal"]);
    assert_eq!(st, 201, "CN = the requested name: {v}");
    let (st, v) = request(
        Some("CN=job.workloads.example.internal"),
        &["job.workloads.example.internal"],
    );
    assert_eq!(st, 201, "{v}");
    let (st, v) = request(
        Some("CN=other.workloads.example.internal"),
        &["job.workloads.example.internal"],
    );
    assert_eq!(
        (st, harness::code(&v)),
        (403, "PolicyDenied"),
        "a CN that is not a requested name: {v}"
    );
    // Names in the CLI's `DNS:` form: the default CN is the bare name.
    let (st, v) = request(None, &["DNS:job2.workloads.example.internal"]);
    assert_eq!(st, 201, "{v}");
    let der =
        ca_core::pem::decode("CERTIFICATE", v["certificate"].as_str().expect("pem")).expect("der");
    let issued = <x509_cert::Certificate as der::Decode>::from_der(&der).expect("certificate");
    assert_eq!(
        issued.tbs_certificate.subject.to_string(),
        "CN=job2.workloads.example.internal"
    );
    // Renewing someone else's client certificate with one's own CSR would copy
    // its subject onto a key one holds: refused like any other subject.
    let admin_pem = std::fs::read_to_string(s.admin_dir().join("admin.pem")).expect("admin.pem");
    let admin_der = ca_core::pem::decode("CERTIFICATE", &admin_pem).expect("der");
    let admin_cert = <x509_cert::Certificate as der::Decode>::from_der(&admin_der).expect("cert");
    let admin_serial: String = admin_cert
        .tbs_certificate
        .serial_number
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let own_csr = csr_body(
        &client_ca,
        &["job.workloads.example.internal"],
        "tls-client",
        None,
    );
    let (st, v) = s.curl_as(
        &cert,
        &key,
        "POST",
        &format!("/v1/certificates/{admin_serial}/renew"),
        Some(&json!({"csr": own_csr["csr"]})),
    );
    assert_eq!(st, 403, "renewing the admin's certificate: {v}");
    assert_eq!(harness::code(&v), "PolicyDenied");

    // subject_patterns allow exactly the subjects they name.
    put(
        "provisioner",
        json!({"effect": "allow", "principals": [{"subject": "CN=provisioner,O=test"}],
               "actions": ["issue"], "cas": [client_ca],
               "conditions": {"name_patterns": ["*.workloads.example.internal"],
                              "subject_patterns": ["CN=*,OU=batch,O=workloads"],
                              "profiles": ["tls-client"]}}),
    );
    let (st, v) = request(
        Some("CN=job-7,OU=batch,O=workloads"),
        &["job.workloads.example.internal"],
    );
    assert_eq!(st, 201, "{v}");
    let (st, v) = request(
        Some("CN=mallory,O=ops admins"),
        &["job.workloads.example.internal"],
    );
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");
    // `*` stays inside one attribute value.
    for smuggled in [
        "CN=m,OU=ops admins,OU=batch,O=workloads",
        "CN=m+O=ops admins,OU=batch,O=workloads",
    ] {
        let (st, v) = request(Some(smuggled), &["job.workloads.example.internal"]);
        assert_eq!(
            (st, harness::code(&v)),
            (403, "PolicyDenied"),
            "{smuggled}: {v}"
        );
    }
    // The patterns add to the default rule: CN = a requested name still works.
    let (st, v) = request(None, &["job.workloads.example.internal"]);
    assert_eq!(st, 201, "{v}");
}

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

/// Security review L3: renewal judges before it looks, and renewing someone
/// else's certificate (which makes the renewer its owner, free to revoke it)
/// takes administer on the CA, not only the right to issue those names.
#[test]
fn only_the_owner_or_an_administrator_renews_a_certificate() {
    let s = Server::start_new();
    let issuing = s.config.issuing_ca_id.clone();
    let (a_cert, a_key, _) = harness::client_identity(&s, "alice", "CN=team-alice,O=test");
    let (b_cert, b_key, _) = harness::client_identity(&s, "bob", "CN=team-bob,O=test");
    s.put_policy(
        "team",
        json!({"effect": "allow", "principals": [{"subject": "CN=team-*"}],
               "actions": ["issue", "revoke", "read"], "cas": [issuing],
               "conditions": {"name_patterns": ["*.team.example"], "revoke_scope": "own"}}),
    );
    let as_alice = |m: &str, p: &str, b: Value| s.curl_as(&a_cert, &a_key, m, p, Some(&b));
    let as_bob = |m: &str, p: &str, b: Value| s.curl_as(&b_cert, &b_key, m, p, Some(&b));

    let (st, v) = as_alice(
        "POST",
        "/v1/certificates",
        csr_body(&issuing, &["web.team.example"], "tls-server", None),
    );
    assert_eq!(st, 201, "{v}");
    let serial = v["serial"].as_str().expect("serial").to_string();
    let renew = format!("/v1/certificates/{serial}/renew");

    // Bob may issue the same names, but not take over Alice's certificate.
    let (st, v) = as_bob("POST", &renew, json!({}));
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");
    // An unknown serial tells Bob no more than a known one.
    let (st, v) = as_bob("POST", "/v1/certificates/0123456789abcdef/renew", json!({}));
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");
    // Alice renews her own; the administrator may renew anyone's.
    let (st, v) = as_alice("POST", &renew, json!({}));
    assert_eq!(st, 201, "{v}");
    let (st, v) = s.curl("POST", &renew, Some(&json!({})));
    assert_eq!(st, 201, "{v}");
    // The administrator sees the unknown serial for what it is.
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates/0123456789abcdef/renew",
        Some(&json!({})),
    );
    assert_eq!((st, harness::code(&v)), (404, "NotFound"), "{v}");
}

/// Security review L4: listings filter by what the caller may read before
/// paging, so no page is short and no cursor names a certificate of a CA the
/// caller cannot read.
#[test]
fn list_cursors_never_name_certificates_the_caller_cannot_read() {
    let s = Server::start_new();
    let a = s.config.issuing_ca_id.clone();
    let root = s.config.root_ca_id.clone();
    let (st, v) = s.curl(
        "POST",
        "/v1/cas",
        Some(&json!({"type": "SUBORDINATE", "subject": "CN=Hidden CA", "parent_ca_id": root, "path_len": 0})),
    );
    assert_eq!(st, 201, "{v}");
    let hidden = v["id"].as_str().expect("id").to_string();
    for i in 0..3 {
        for ca in [&a, &hidden] {
            let name = format!("n{i}.example");
            let (st, v) = s.curl(
                "POST",
                "/v1/certificates",
                Some(&csr_body(ca, &[name.as_str()], "tls-server", None)),
            );
            assert_eq!(st, 201, "{v}");
        }
    }
    let (cert, key, _) = harness::client_identity(&s, "reader", "CN=reader-a,O=test");
    s.put_policy(
        "reader-a",
        json!({"effect": "allow", "principals": [{"subject": "CN=reader-a*"}],
               "actions": ["read"], "cas": [a]}),
    );
    let readable_count = {
        let (st, v) = s.curl(
            "GET",
            &format!("/v1/certificates?ca_id={a}&limit=1000"),
            None,
        );
        assert_eq!(st, 200, "{v}");
        v["certificates"].as_array().expect("list").len()
    };
    let mut seen = 0usize;
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            Some(c) => format!("/v1/certificates?limit=1&cursor={c}"),
            None => "/v1/certificates?limit=1".to_string(),
        };
        let (st, v) = s.curl_as(&cert, &key, "GET", &path, None);
        assert_eq!(st, 200, "{v}");
        let page = v["certificates"].as_array().expect("list");
        for c in page {
            assert_eq!(c["ca_id"], a.as_str(), "{c}");
        }
        seen += page.len();
        match v["next_cursor"].as_str() {
            Some(c) => {
                let decoded = String::from_utf8(
                    (0..c.len())
                        .step_by(2)
                        .filter_map(|i| u8::from_str_radix(c.get(i..i + 2)?, 16).ok())
                        .collect(),
                )
                .unwrap_or_default();
                assert!(
                    !decoded.contains(&hidden),
                    "cursor {decoded:?} names the hidden CA"
                );
                // Sealed: it names no CA and no certificate at all, so even
                // a page cut short by the store's scan limit (which stops
                // wherever the scan is) reveals nothing.
                // (Undo every layer of hex, as a curious client would.)
                let mut layer = c.to_string();
                while let Some(next) = (layer.len() % 2 == 0)
                    .then(|| {
                        (0..layer.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(layer.get(i..i + 2)?, 16).ok())
                            .collect::<Option<Vec<u8>>>()
                    })
                    .flatten()
                    .and_then(|b| String::from_utf8(b).ok())
                {
                    layer = next;
                }
                assert!(
                    !layer.contains(&a) && !layer.contains(&hidden) && !layer.contains('/'),
                    "cursor {layer:?} names a store key"
                );
                assert!(!page.is_empty(), "a short page before the end");
                // An altered cursor is refused, not followed.
                let flipped: String = c
                    .char_indices()
                    .map(|(i, ch)| match (i, ch) {
                        (20, '0') => '1',
                        (20, _) => '0',
                        _ => ch,
                    })
                    .collect();
                let (st, v) = s.curl_as(
                    &cert,
                    &key,
                    "GET",
                    &format!("/v1/certificates?limit=1&cursor={flipped}"),
                    None,
                );
                assert_eq!((st, harness::code(&v)), (400, "InvalidRequest"), "{v}");
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    assert_eq!(seen, readable_count);
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
