//! Several ca-server nodes on one PostgreSQL database: a throwaway cluster
//! (initdb as the postgres user, on a free loopback port), real server
//! processes, real clients (the Rust API client, openssl ocsp and crl, curl).
//! What one node does with its database (waiting for it, migrating into it,
//! losing it, reaching it over TLS) is in `server_postgres.rs`.

mod harness;

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca_server::api::client::ApiClient;
use ca_server::store::postgres::testdb::TestCluster;
use harness::cluster::*;
use harness::server::server_bin;
use harness::{core_csr, free_port, run, Server};
use serde_json::json;

#[test]
fn three_nodes_on_one_database_survive_a_kill_and_agree_on_serials_revocations_crls_and_the_trail()
{
    let pg = TestCluster::start().expect("a test PostgreSQL cluster");
    let url = pg.create_db("ca").expect("createdb");
    let mut a = Server::init_with(&["--postgres", &url], &[]);
    a.start();
    let mut b = another_node(&a);
    b.start();
    let mut c = another_node(&a);
    c.start();
    let tmp = a.tmp.path().to_path_buf();
    let issuing = a.config.issuing_ca_id.clone();

    // A node initialised against a database that has CAs already is refused.
    let refused = run(Command::new(server_bin())
        .args(["init", "--data-dir"])
        .arg(tmp.join("late"))
        .args(["--postgres", &url]));
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("already holds CAs"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Load spread over the three nodes; each client knows every address and
    // moves to the next when its node fails. Node C is killed mid-load.
    let addrs = [a.api.clone(), b.api.clone(), c.api.clone()];
    let tls = a.tls();
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let failovers: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let per_client = 40;
    let load = rt.spawn({
        let (received, failovers, tls) = (received.clone(), failovers.clone(), tls.clone());
        async move {
            let mut tasks = Vec::new();
            for k in 0..3 {
                let (addrs, received, failovers, tls) = (
                    addrs.clone(),
                    received.clone(),
                    failovers.clone(),
                    tls.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut at = k;
                    let mut client = ApiClient::connect(&addrs[at], tls.clone()).await.ok();
                    let mut done = 0;
                    let mut failed_since: Option<Instant> = None;
                    while done < per_client {
                        let r = match client.as_mut() {
                            Some(cl) => issue_on(cl, &format!("n{k}-{done}.example.test")).await,
                            None => Err("not connected".into()),
                        };
                        match r {
                            Ok((serial, _pem)) => {
                                received.lock().unwrap().push(serial);
                                done += 1;
                                if let Some(t) = failed_since.take() {
                                    failovers.lock().unwrap().push(t.elapsed());
                                }
                            }
                            Err(_) => {
                                failed_since.get_or_insert_with(Instant::now);
                                at = (at + 1) % addrs.len();
                                client = ApiClient::connect(&addrs[at], tls.clone()).await.ok();
                            }
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.expect("client task");
            }
        }
    });
    // Kill C once the load is well under way.
    let start = Instant::now();
    while received.lock().unwrap().len() < 30 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    c.kill9();
    rt.block_on(load).expect("load");
    let serials = received.lock().unwrap().clone();
    assert_eq!(serials.len(), 3 * per_client);
    let unique: HashSet<&String> = serials.iter().collect();
    assert_eq!(unique.len(), serials.len(), "a serial was handed out twice");
    // Every certificate a client received is in the store, seen from B.
    for serial in &serials {
        let (st, v) = b.curl("GET", &format!("/v1/certificates/{serial}"), None);
        assert_eq!(st, 200, "{serial} missing: {v}");
    }
    let failovers = failovers.lock().unwrap().clone();
    assert!(!failovers.is_empty(), "the kill did not interrupt a client");
    eprintln!("kill -9 to served again (per interrupted client): {failovers:?}");

    // A revocation through A shows in B's OCSP within a second; B's CRL
    // follows, and every CRL number served means one CRL.
    let (st, issuer) = a.curl("GET", &format!("/v1/cas/{issuing}/certificate"), None);
    assert_eq!(st, 200);
    let issuer_pem = tmp.join("issuer.pem");
    std::fs::write(&issuer_pem, issuer["certificate"].as_str().unwrap()).unwrap();
    let victim = &serials[5];
    let ocsp_b = |serial: &str| {
        openssl(&[
            "ocsp",
            "-issuer",
            issuer_pem.to_str().unwrap(),
            "-serial",
            &format!("0x{serial}"),
            "-url",
            &format!("http://{}/ocsp/{issuing}", b.public),
            "-no_nonce",
            "-CAfile",
            a.root_pem().to_str().unwrap(),
        ])
    };
    assert!(ocsp_b(victim).contains(": good"), "{}", ocsp_b(victim));
    let mut seen_crls: Vec<(u64, String)> =
        vec![crl_of(&a, &issuing, &tmp), crl_of(&b, &issuing, &tmp)];
    let (st, v) = a.curl(
        "POST",
        &format!("/v1/certificates/{victim}/revoke"),
        Some(&json!({"reason": "SUPERSEDED"})),
    );
    assert_eq!(st, 200, "{v}");
    let revoked_at = Instant::now();
    loop {
        let t = ocsp_b(victim);
        if t.contains(": revoked") {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "B still answers: {t}"
        );
    }
    eprintln!(
        "revoke on A to revoked in B's OCSP: {:?}",
        revoked_at.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (na, ha) = crl_of(&a, &issuing, &tmp);
        let (nb, hb) = crl_of(&b, &issuing, &tmp);
        seen_crls.push((na, ha.clone()));
        seen_crls.push((nb, hb.clone()));
        if na == nb && na > seen_crls[0].0.max(seen_crls[1].0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the nodes did not converge on one CRL"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for (n, h) in &seen_crls {
        for (m, g) in &seen_crls {
            assert!(
                n != m || h == g,
                "two different CRLs were served as number {n}"
            );
        }
    }

    // One audit trail, whichever node wrote each entry, still verifies.
    let out = b.cli(&["audit", "verify", "--server", &format!("https://{}", b.api)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(pg);
}

/// A policy, alias or CA status change made on node A holds on node B within
/// a second; and a revocation whose notification B never heard (its
/// listening connection was cut at that moment) still reaches B's OCSP once
/// B listens again.
#[test]
fn changes_on_one_node_hold_on_another_within_a_second_even_after_a_lost_notification() {
    let pg = TestCluster::start().expect("a test PostgreSQL cluster");
    let url = pg.create_db("ca").expect("createdb");
    let mut a = Server::init_with(&["--postgres", &url], &[]);
    a.start();
    let mut b = another_node(&a);
    b.start();
    let issuing = a.config.issuing_ca_id.clone();
    let tmp = a.tmp.path().to_path_buf();
    let some = relying_issue(&a, &issuing, "seen.example.test");
    let some_serial = some["serial"].as_str().unwrap().to_string();

    // Policy: a reader may read once A grants it, on B too.
    let (cert, key, _) = harness::client_identity(&a, "reader", "CN=svc-reader,O=test");
    let read_on_b = || {
        b.curl_as(
            &cert,
            &key,
            "GET",
            &format!("/v1/certificates/{some_serial}"),
            None,
        )
        .0
    };
    assert_eq!(read_on_b(), 403);
    a.put_policy(
        "readers",
        json!({"effect": "allow", "principals": [{"subject": "CN=svc-reader*"}],
               "actions": ["read"], "cas": ["*"]}),
    );
    let policy = within(Duration::from_secs(1), "policy on B", || read_on_b() == 200);
    let (st, _) = a.curl("DELETE", "/v1/policies/readers", None);
    assert_eq!(st, 200);
    within(Duration::from_secs(1), "policy removal on B", || {
        read_on_b() == 403
    });

    // Alias: made on A, issued through on B.
    let (st, v) = a.curl("PUT", "/v1/aliases/team", Some(&json!({"ca_id": issuing})));
    assert_eq!(st, 200, "{v}");
    let alias = within(Duration::from_secs(1), "alias on B", || {
        b.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"csr": core_csr("team.example.test"), "ca_id": "team"})),
        )
        .0 == 201
    });

    // CA status: disabled on A, refused on B; active again, issued on B.
    let status = |s: &str| {
        let (st, v) = a.curl(
            "PATCH",
            &format!("/v1/cas/{issuing}"),
            Some(&json!({ "status": s })),
        );
        assert_eq!(st, 200, "{v}");
    };
    let issue_on_b = || {
        let (st, v) = b.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"csr": core_csr("s.example.test"), "ca_id": issuing})),
        );
        (st, v["error"]["code"].as_str().unwrap_or("").to_string())
    };
    status("DISABLED");
    let disabled = within(Duration::from_secs(1), "CA status on B", || {
        issue_on_b() == (409, "CaDisabled".to_string())
    });
    status("ACTIVE");
    within(Duration::from_secs(1), "CA active on B", || {
        issue_on_b().0 == 201
    });
    // A client certificate revoked on A is refused by B at once (B had
    // found it good on earlier requests).
    a.put_policy(
        "readers",
        json!({"effect": "allow", "principals": [{"subject": "CN=svc-reader*"}],
               "actions": ["read"], "cas": ["*"]}),
    );
    within(Duration::from_secs(1), "policy on B", || read_on_b() == 200);
    let serial = openssl(&["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()]);
    let serial = serial
        .trim()
        .strip_prefix("serial=")
        .unwrap_or_else(|| panic!("{serial}"))
        .to_lowercase();
    let (st, v) = a.curl(
        "POST",
        &format!("/v1/certificates/{serial}/revoke"),
        Some(&json!({"reason": "PRIVILEGE_WITHDRAWN"})),
    );
    assert_eq!(st, 200, "{v}");
    let locked_out = within(Duration::from_secs(1), "client revocation on B", || {
        read_on_b() == 403
    });
    eprintln!(
        "A to B: policy {policy:?}, alias {alias:?}, CA status {disabled:?}, client lockout {locked_out:?}"
    );

    // A lost notification: B's OCSP has "good" cached for a certificate;
    // B's listening connection is cut, and A revokes while B is deaf.
    let (st, issuer) = a.curl("GET", &format!("/v1/cas/{issuing}/certificate"), None);
    assert_eq!(st, 200);
    let issuer_pem = tmp.join("issuer.pem");
    std::fs::write(&issuer_pem, issuer["certificate"].as_str().unwrap()).unwrap();
    let ocsp_b = || {
        openssl(&[
            "ocsp",
            "-issuer",
            issuer_pem.to_str().unwrap(),
            "-serial",
            &format!("0x{some_serial}"),
            "-url",
            &format!("http://{}/ocsp/{issuing}", b.public),
            "-no_nonce",
            "-CAfile",
            a.root_pem().to_str().unwrap(),
        ])
    };
    assert!(ocsp_b().contains(": good"));
    assert!(ocsp_b().contains(": good"));
    let listeners = format!(
        "SELECT pid FROM pg_stat_activity WHERE application_name = '{}'",
        ca_server::store::postgres::LISTENER_NAME
    );
    let pids = pg.psql("ca", &listeners).expect("psql");
    assert_eq!(pids.lines().count(), 2, "one listener per node: {pids}");
    pg.psql(
        "ca",
        &format!("SELECT pg_terminate_backend(pid) FROM ({listeners}) l"),
    )
    .expect("terminate");
    within(Duration::from_secs(2), "listeners gone", || {
        let now = pg.psql("ca", &listeners).expect("psql");
        pids.lines().all(|p| !now.lines().any(|q| q == p))
    });
    let (st, v) = a.curl(
        "POST",
        &format!("/v1/certificates/{some_serial}/revoke"),
        Some(&json!({"reason": "SUPERSEDED"})),
    );
    assert_eq!(st, 200, "{v}");
    let healed = within(Duration::from_secs(5), "revocation on B's OCSP", || {
        ocsp_b().contains(": revoked")
    });
    assert!(b.log().contains("listening again"), "{}", b.log());
    eprintln!("lost notification: B's OCSP answered revoked after {healed:?}");
    drop(pg);
}

/// Webhooks with two nodes on one database: one node delivers, so each
/// event reaches the receiver once rather than once per node; when that node
/// is killed, the other takes the role over and delivery goes on.
#[test]
fn with_two_nodes_each_event_reaches_a_webhook_once_and_delivery_survives_a_kill() {
    let pg = TestCluster::start().expect("a test PostgreSQL cluster");
    let url = pg.create_db("ca").expect("createdb");
    let mut a = Server::init_with(&["--postgres", &url], &[]);
    let config = a.dir.join("config.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let tuned = text
        .replace("allow_http = false", "allow_http = true")
        .replace("retry_initial_ms = 1000", "retry_initial_ms = 200")
        .replace("retry_max_secs = 300", "retry_max_secs = 1");
    assert_ne!(tuned, text);
    std::fs::write(&config, tuned).expect("config");
    a.start();
    let mut b = another_node(&a);
    b.start();
    let issuing = a.config.issuing_ca_id.clone();

    let port = free_port();
    let got: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    http_receiver(port, got.clone());
    let out = a.cli(&[
        "webhook",
        "create",
        "--url",
        &format!("http://127.0.0.1:{port}/hook"),
        "--server",
        &format!("https://{}", a.api),
    ]);
    assert!(out.status.success(), "{}", harness::text(&out));

    // Every node lists webhooks at least every 5 s: by now each would run
    // this one's delivery, were it not for the role.
    std::thread::sleep(Duration::from_secs(6));
    let issued_reach = |serials: &[String], limit: Duration| {
        within(limit, "CertificateIssued at the receiver", || {
            let g = got.lock().unwrap();
            serials.iter().all(|s| {
                g.iter()
                    .any(|(_, kind, body)| kind == "CertificateIssued" && body.contains(s.as_str()))
            })
        })
    };
    let mut serials = Vec::new();
    for i in 0..16 {
        let node = if i % 2 == 0 { &a } else { &b };
        let v = relying_issue(node, &issuing, &format!("w{i}.example.test"));
        serials.push(v["serial"].as_str().unwrap().to_string());
    }
    issued_reach(&serials, Duration::from_secs(30));
    // Time for a second node's copies, were it delivering too.
    std::thread::sleep(Duration::from_secs(3));
    {
        let g = got.lock().unwrap();
        let mut ids: Vec<&String> = g.iter().map(|(id, _, _)| id).collect();
        let all = ids.len();
        ids.sort();
        ids.dedup();
        let seen: Vec<(&String, &String)> = g.iter().map(|(id, kind, _)| (id, kind)).collect();
        assert_eq!(ids.len(), all, "an event was delivered twice: {seen:?}");
    }

    // Kill the node that delivers; the other takes over.
    let lead = "now delivers webhooks";
    let (leader, other) = match (a.log().contains(lead), b.log().contains(lead)) {
        (true, false) => (&mut a, &b),
        (false, true) => (&mut b, &a),
        seen => panic!("exactly one node leads: {seen:?}"),
    };
    // The same node publishes the CRLs: revocations through the other node
    // reach the CRL both serve, signed by the leader alone.
    let built = |node: &Server| -> u64 {
        let out = run(Command::new("curl")
            .args(["-sSf"])
            .arg(format!("http://{}/metrics", node.public)));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find(|l| l.contains("crls_built") && !l.starts_with('#'))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no crls_built in {text}"))
    };
    let tmp = other.tmp.path().to_path_buf();
    let (before, _) = crl_of(other, &issuing, &tmp);
    let (leader_built, other_built) = (built(leader), built(other));
    for serial in &serials[..3] {
        let (st, v) = other.curl(
            "POST",
            &format!("/v1/certificates/{serial}/revoke"),
            Some(&json!({"reason": "SUPERSEDED"})),
        );
        assert_eq!(st, 200, "{v}");
    }
    within(Duration::from_secs(20), "a newer CRL on both nodes", || {
        crl_of(other, &issuing, &tmp).0 > before && crl_of(leader, &issuing, &tmp).0 > before
    });
    assert!(
        built(leader) > leader_built,
        "the leader signed the new CRL"
    );
    assert_eq!(built(other), other_built, "the other node signed no CRL");
    leader.kill9();
    let mut later = Vec::new();
    for i in 0..3 {
        let v = relying_issue(other, &issuing, &format!("after{i}.example.test"));
        later.push(v["serial"].as_str().unwrap().to_string());
    }
    let took_over = issued_reach(&later, Duration::from_secs(20));
    assert!(other.log().contains(lead), "{}", other.log());
    eprintln!("delivery resumed on the other node {took_over:?} after the leader's kill");
    drop(pg);
}
