//! Several ca-server nodes on one PostgreSQL database: a throwaway cluster
//! (initdb as the postgres user, on a free loopback port), three real server
//! processes, real clients (the Rust API client, openssl ocsp and crl, curl).

mod harness;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca_server::api::client::ApiClient;
use ca_server::store::postgres::testdb::TestCluster;
use harness::server::server_bin;
use harness::{core_csr, free_port, run, Server};
use hyper::body::Bytes;
use hyper::Method;
use serde_json::{json, Value};

/// A second node: a copy of the first node's data directory (its config with
/// the database URL, its master key, its API TLS key and certificate) on
/// ports of its own. Nothing of the store is in the directory.
fn another_node(first: &Server) -> Server {
    let mut node = Server::init_with(&[], &[]);
    std::fs::remove_dir_all(&node.dir).expect("clear");
    copy_dir(&first.dir, &node.dir);
    let _ = std::fs::remove_dir_all(node.dir.join("crls"));
    node.profile = first.profile.clone();
    node.config = first.config.clone();
    node.extra_args = vec![
        "--api-addr".into(),
        format!("127.0.0.1:{}", free_port()),
        "--public-addr".into(),
        format!("127.0.0.1:{}", free_port()),
    ];
    node
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

async fn issue_on(client: &mut ApiClient, name: &str) -> Result<(String, String), String> {
    let body = serde_json::to_vec(&json!({"csr": core_csr(name)})).expect("json");
    let (st, b) = client
        .send(Method::POST, "/v1/certificates", Bytes::from(body), true)
        .await
        .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
    if st != 201 {
        return Err(format!("{st}: {v}"));
    }
    let serial = v["serial"].as_str().ok_or("no serial")?.to_string();
    let pem = v["certificate"]
        .as_str()
        .ok_or("no certificate")?
        .to_string();
    Ok((serial, pem))
}

fn openssl(args: &[&str]) -> String {
    let out = run(Command::new("openssl").args(args));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// (CRL number, SHA-256 of the DER) served by a node now.
fn crl_of(node: &Server, ca: &str, tmp: &Path) -> (u64, String) {
    let file = tmp.join(format!("crl-{}.der", free_port()));
    let out = run(Command::new("curl")
        .args(["-sSf", "-o"])
        .arg(&file)
        .arg(format!("http://{}/crl/{ca}.crl", node.public)));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let der = std::fs::read(&file).expect("crl");
    let t = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-noout",
        "-crlnumber",
        "-in",
        file.to_str().unwrap(),
    ]);
    let hex = t
        .trim()
        .strip_prefix("crlNumber=0x")
        .unwrap_or_else(|| panic!("{t}"));
    let number = u64::from_str_radix(hex, 16).expect("crl number");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
    (number, ca_core::hex::encode(digest.as_ref()))
}

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

#[test]
fn a_node_started_before_its_database_waits_for_it_then_serves() {
    let pg = Arc::new(TestCluster::start().expect("a test PostgreSQL cluster"));
    let url = pg.create_db("ca").expect("createdb");
    let mut a = Server::init_with(&["--postgres", &url], &[]);
    pg.stop(true).expect("stop PostgreSQL");
    let later = {
        let pg = pg.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            pg.restart()
        })
    };
    let started = Instant::now();
    a.start();
    let waited = started.elapsed();
    later.join().expect("thread").expect("restart PostgreSQL");
    assert!(
        waited >= Duration::from_millis(2500),
        "it did not wait: {waited:?}"
    );
    assert!(a.log().contains("not reachable yet"), "{}", a.log());
    let (st, v) = a.curl("GET", "/v1/cas", None);
    assert_eq!(st, 200, "{v}");
}

/// `ca-server migrate`: a redb deployment with certificates, a revocation
/// (key compromise), a published CRL and a policy moves into PostgreSQL; the
/// server started on it serves the same certificates and revocation, keeps
/// CRL numbers going up, continues the same audit trail and issues on.
#[test]
fn a_redb_deployment_migrates_into_postgres_and_serves_on() {
    let pg = TestCluster::start().expect("a test PostgreSQL cluster");
    let url = pg.create_db("moved").expect("createdb");
    let mut s = Server::start_new();
    let tmp = s.tmp.path().to_path_buf();
    let issuing = s.config.issuing_ca_id.clone();
    let mut issued = Vec::new();
    for i in 0..5 {
        let v = relying_issue(&s, &issuing, &format!("m{i}.example.test"));
        issued.push((
            v["serial"].as_str().unwrap().to_string(),
            v["certificate"].as_str().unwrap().to_string(),
        ));
    }
    let victim = issued[1].0.clone();
    let (st, v) = s.curl(
        "POST",
        &format!("/v1/certificates/{victim}/revoke"),
        Some(&json!({"reason": "KEY_COMPROMISE"})),
    );
    assert_eq!(st, 200, "{v}");
    s.put_policy(
        "readers",
        json!({"effect": "allow", "principals": [{"subject": "CN=svc-reader*"}],
               "actions": ["read"], "cas": ["*"]}),
    );
    let (crl_before, _) = crl_of(&s, &issuing, &tmp);
    s.stop();
    // A copy of the directory, still on redb, for the refusal below.
    let twin = tmp.join("twin");
    copy_dir(&s.dir, &twin);
    // The trail as redb holds it, read offline.
    let out = run(Command::new(server_bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(&twin));
    let trail_before = first_number(&String::from_utf8_lossy(&out.stdout));

    let out = run(Command::new(server_bin())
        .args(["migrate", "--from"])
        .arg(&s.dir)
        .args(["--to", &url]));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("hash chain intact"), "{said}");
    let config = std::fs::read_to_string(s.dir.join("config.toml")).expect("config");
    assert!(config.contains("backend = \"postgres\""), "{config}");

    // What the database holds, read with psql.
    let sql = |q: &str| pg.psql("moved", q).expect("psql");
    let ours = issued
        .iter()
        .map(|(serial, _)| format!("'{serial}'"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        sql(&format!(
            "SELECT count(*) FROM certs WHERE serial IN ({ours}) AND der IS NOT NULL"
        )),
        "5"
    );
    assert_eq!(
        sql(&format!(
            "SELECT status FROM certs WHERE serial = '{victim}'"
        )),
        "2"
    );
    assert_eq!(sql("SELECT count(*) FROM blocked_keys"), "1");
    assert_eq!(
        sql("SELECT count(*) FROM policies WHERE id = 'readers'"),
        "1"
    );
    assert_eq!(
        sql("SELECT count(*) FROM audit"),
        trail_before.to_string(),
        "every audit entry copied"
    );

    // The server on PostgreSQL serves what redb held.
    s.start();
    for (serial, pem) in &issued {
        let (st, v) = s.curl("GET", &format!("/v1/certificates/{serial}"), None);
        assert_eq!(st, 200, "{serial}: {v}");
        assert_eq!(v["certificate"].as_str(), Some(pem.as_str()), "{serial}");
    }
    let (st, v) = s.curl("GET", &format!("/v1/certificates/{victim}"), None);
    assert_eq!(st, 200);
    assert_eq!(v["status"], "REVOKED", "{v}");
    let (st, v) = s.curl("GET", "/v1/policies/readers", None);
    assert_eq!(st, 200, "the migrated policy: {v}");
    let fresh = relying_issue(&s, &issuing, "after.example.test");
    let fresh_serial = fresh["serial"].as_str().unwrap();
    assert!(issued.iter().all(|(serial, _)| serial != fresh_serial));
    let (st, _) = s.curl(
        "POST",
        &format!("/v1/certificates/{}/revoke", issued[2].0),
        Some(&json!({"reason": "SUPERSEDED"})),
    );
    assert_eq!(st, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (n, _) = crl_of(&s, &issuing, &tmp);
        if n > crl_before {
            break;
        }
        assert!(Instant::now() < deadline, "CRL number stayed at {n}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The trail goes on from the migrated head and verifies as one chain.
    let out = s.cli(&["audit", "verify", "--server", &format!("https://{}", s.api)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(audit_count(&s) > trail_before);

    // The offline tools follow the data directory to its database:
    // `audit verify` (a node may keep running meanwhile) and, with the node
    // stopped, `rotate-master-key`, after which the node opens its keys with
    // the new master key and issues on.
    let out = run(Command::new(server_bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(&s.dir));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(first_number(&said) > trail_before, "{said}");
    s.stop();
    let old_master = std::fs::read(s.dir.join("master.key")).expect("master key");
    let out = run(Command::new(server_bin())
        .args(["rotate-master-key", "--data-dir"])
        .arg(&s.dir));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        std::fs::read(s.dir.join("master.key")).expect("key"),
        old_master
    );
    s.start();
    relying_issue(&s, &issuing, "rotated.example.test");

    // Into a database that holds records already: refused, nothing changed.
    let rows_before = sql("SELECT count(*) FROM certs");
    let out = run(Command::new(server_bin())
        .args(["migrate", "--from"])
        .arg(&twin)
        .args(["--to", &url]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds records"), "{err}");
    assert_eq!(sql("SELECT count(*) FROM certs"), rows_before);
    let twin_config = std::fs::read_to_string(twin.join("config.toml")).expect("config");
    assert!(!twin_config.contains("postgres"), "{twin_config}");
    // And a directory already on PostgreSQL is not migrated again.
    s.stop();
    let out = run(Command::new(server_bin())
        .args(["migrate", "--from"])
        .arg(&s.dir)
        .args(["--to", &url]));
    assert!(!out.status.success());

    // An entry cut from the end, then one altered, in the database: the
    // verification reads what PostgreSQL holds and names the damage (a cut
    // shows both against the recorded head and against the last signed
    // digest, which covers the entry removed).
    let verify = || {
        let out = run(Command::new(server_bin())
            .args(["audit", "verify", "--data-dir"])
            .arg(&s.dir));
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    assert!(verify().0, "{}", verify().1);
    sql("DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)");
    let (ok, said) = verify();
    assert!(!ok && said.contains("removed from the end"), "{said}");
    sql("UPDATE audit SET entry = regexp_replace(entry, '\"target\":\"[^\"]*\"', '\"target\":\"forged\"') WHERE seq = 2");
    let (ok, said) = verify();
    assert!(!ok && said.contains("entry 2"), "{said}");
    drop(pg);
}

fn relying_issue(s: &Server, ca_id: &str, dns: &str) -> Value {
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": core_csr(dns), "ca_id": ca_id})),
    );
    assert_eq!(st, 201, "{v}");
    v
}

/// Entries in the audit trail, counted through the API.
fn audit_count(s: &Server) -> u64 {
    let out = s.cli(&["audit", "verify", "--server", &format!("https://{}", s.api)]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    first_number(&text)
}

fn first_number(text: &str) -> u64 {
    text.split(|c: char| !c.is_ascii_digit())
        .find_map(|w| w.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no count in {text}"))
}

/// The database stops (immediate shutdown, as a crash) while clients issue:
/// requests fail with 503 `Unavailable`, nothing is half-written, and the
/// node serves again once the database is back, without a restart.
#[test]
fn the_database_going_away_under_load_fails_requests_with_503_and_the_node_recovers() {
    let pg = Arc::new(TestCluster::start().expect("a test PostgreSQL cluster"));
    let url = pg.create_db("ca").expect("createdb");
    let mut a = Server::init_with(&["--postgres", &url], &[]);
    a.start();
    let issuing = a.config.issuing_ca_id.clone();
    let tls = a.tls();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let statuses: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = rt.spawn({
        let (received, statuses, stop, api) = (
            received.clone(),
            statuses.clone(),
            stop.clone(),
            a.api.clone(),
        );
        async move {
            let mut tasks = Vec::new();
            for k in 0..4 {
                let (received, statuses, stop, api, tls) = (
                    received.clone(),
                    statuses.clone(),
                    stop.clone(),
                    api.clone(),
                    tls.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    let mut client = ApiClient::connect(&api, tls.clone()).await.ok();
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        i += 1;
                        let Some(cl) = client.as_mut() else {
                            client = ApiClient::connect(&api, tls.clone()).await.ok();
                            continue;
                        };
                        let body = serde_json::to_vec(
                            &json!({"csr": core_csr(&format!("d{k}-{i}.example.test"))}),
                        )
                        .expect("json");
                        match cl
                            .send(Method::POST, "/v1/certificates", Bytes::from(body), true)
                            .await
                        {
                            Ok((201, b)) => {
                                let v: Value = serde_json::from_slice(&b).expect("json");
                                received
                                    .lock()
                                    .unwrap()
                                    .push(v["serial"].as_str().expect("serial").to_string());
                                statuses.lock().unwrap().push((201, String::new()));
                            }
                            Ok((st, b)) => {
                                let v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                                let code = v["error"]["code"]
                                    .as_str()
                                    .or(v["code"].as_str())
                                    .unwrap_or("")
                                    .to_string();
                                if st != 503 || code != "Unavailable" {
                                    eprintln!("refused otherwise: {st} {v}");
                                }
                                statuses.lock().unwrap().push((st, code));
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(_) => {
                                client = ApiClient::connect(&api, tls.clone()).await.ok();
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
    let wait_for = |n: usize| {
        let start = Instant::now();
        while received.lock().unwrap().len() < n {
            assert!(start.elapsed() < Duration::from_secs(60), "no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(20);
    let outage = statuses.lock().unwrap().len();
    pg.stop(true).expect("stop PostgreSQL");
    let down_at = received.lock().unwrap().len();
    std::thread::sleep(Duration::from_secs(3));
    let during: Vec<(u16, String)> = statuses.lock().unwrap()[outage..].to_vec();
    pg.restart().expect("restart PostgreSQL");
    let back = Instant::now();
    wait_for(down_at + 20);
    let recovered_in = back.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rt.block_on(load).expect("load");

    // While it was down: refusals, all 503 Unavailable (a request already in
    // flight when it stopped may have been answered 201).
    let refused: Vec<&(u16, String)> = during.iter().filter(|(st, _)| *st != 201).collect();
    assert!(!refused.is_empty(), "no request was refused: {during:?}");
    for (st, code) in &refused {
        assert_eq!((*st, code.as_str()), (503, "Unavailable"), "{during:?}");
    }
    eprintln!(
        "database down 3 s: {} requests refused with 503; served again {recovered_in:?} after it came back",
        refused.len()
    );
    // Nothing half-written: every certificate a client received is stored
    // with its DER, every stored certificate has its audit entry, and the
    // trail verifies.
    let sql = |q: &str| pg.psql("ca", q).expect("psql");
    let serials = received.lock().unwrap().clone();
    let listed = serials
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        sql(&format!(
            "SELECT count(*) FROM certs WHERE serial IN ({listed}) AND status = 1 AND der IS NOT NULL"
        )),
        serials.len().to_string()
    );
    let unaudited = sql(&format!(
        "SELECT count(*) FROM certs c WHERE c.ca_id = '{issuing}' AND c.status = 1 AND NOT EXISTS \
         (SELECT 1 FROM audit a WHERE a.entry LIKE '%' || c.serial || '%' AND a.entry LIKE '%\"code\":\"success\"%')"
    ));
    assert_eq!(
        unaudited, "0",
        "issued certificates without their audit entry"
    );
    let out = a.cli(&["audit", "verify", "--server", &format!("https://{}", a.api)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Poll `check` until it holds; how long it took, failing past `limit`.
fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
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

/// A CA and a server certificate for 127.0.0.1 made with openssl: the
/// database's TLS identity. Returns (CA PEM path, certificate, key).
fn openssl_server_identity(dir: &Path, name: &str) -> (std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let p = |f: &str| dir.join(format!("{name}-{f}"));
    let ok = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    ok(run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
        ])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .arg("-keyout")
        .arg(p("ca.key"))
        .arg("-out")
        .arg(p("ca.pem"))));
    ok(run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-subj", "/CN=127.0.0.1"])
        .arg("-keyout")
        .arg(p("server.key"))
        .arg("-out")
        .arg(p("server.csr"))));
    std::fs::write(
        p("ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    ok(run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2"])
        .arg("-in")
        .arg(p("server.csr"))
        .arg("-CA")
        .arg(p("ca.pem"))
        .arg("-CAkey")
        .arg(p("ca.key"))
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(p("ext"))
        .arg("-out")
        .arg(p("server.pem"))));
    (
        p("ca.pem"),
        std::fs::read(p("server.pem")).expect("cert"),
        std::fs::read(p("server.key")).expect("key"),
    )
}

/// `[store] tls_ca_file`: the node reaches a database that accepts TLS only,
/// with its certificate verified; a node given another CA refuses it.
#[test]
fn a_node_reaches_its_database_over_verified_tls() {
    let pg = TestCluster::start().expect("a test PostgreSQL cluster");
    let tmp = tempfile::tempdir().expect("tmp");
    let (ca, cert, key) = openssl_server_identity(tmp.path(), "db");
    pg.require_tls(&cert, &key).expect("TLS on");
    let url = pg.create_db("ca").expect("createdb over TLS");
    let mut a = Server::init_with(
        &["--postgres", &url, "--postgres-ca", ca.to_str().unwrap()],
        &[],
    );
    a.start();
    let issuing = a.config.issuing_ca_id.clone();
    relying_issue(&a, &issuing, "tls.example.test");
    // Every connection of the node is encrypted (plaintext would be refused
    // by pg_hba anyway); the listener is one of them.
    let sql = |q: &str| pg.psql("ca", q).expect("psql");
    assert_eq!(
        sql(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = '{}' AND s.ssl",
            ca_server::store::postgres::LISTENER_NAME
        )),
        "1"
    );
    // A node that trusts another CA does not talk to this database.
    let (other_ca, _, _) = openssl_server_identity(tmp.path(), "other");
    let mut b = another_node(&a);
    let config = std::fs::read_to_string(b.dir.join("config.toml")).expect("config");
    let ca_line = format!("tls_ca_file = \"{}\"", ca.display());
    assert!(config.contains(&ca_line), "{config}");
    let config = config
        .replace(
            &ca_line,
            &format!("tls_ca_file = \"{}\"", other_ca.display()),
        )
        .replace("connect_wait_secs = 60", "connect_wait_secs = 1");
    std::fs::write(b.dir.join("config.toml"), config).expect("config");
    let out = run(Command::new(server_bin())
        .args(["serve", "--data-dir"])
        .arg(&b.dir)
        .args(&b.extra_args));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    b.extra_args.clear();
    drop(pg);
}

/// A plain-HTTP webhook receiver on `port`: (event id, event type, body) of
/// every POST, answered 200 after 300 ms.
fn http_receiver(port: u16, got: Arc<Mutex<Vec<(String, String, String)>>>) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .expect("bind receiver");
            ready_tx.send(()).expect("ready");
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let got = got.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let got = got.clone();
                            async move {
                                use http_body_util::BodyExt;
                                let h = |n: &str| {
                                    req.headers()
                                        .get(n)
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or_default()
                                        .to_string()
                                };
                                let (id, kind) = (h("CA-Event-Id"), h("CA-Event-Type"));
                                let body = req.into_body().collect().await?.to_bytes();
                                // A slow receiver: two nodes delivering
                                // would both be sending the same event.
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                got.lock().unwrap().push((
                                    id,
                                    kind,
                                    String::from_utf8_lossy(&body).into_owned(),
                                ));
                                Ok::<_, hyper::Error>(hyper::Response::new(
                                    http_body_util::Full::new(Bytes::from_static(b"ok")),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("receiver started");
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
