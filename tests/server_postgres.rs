//! One ca-server node and its PostgreSQL database: a node started before its
//! database, `ca-server migrate` from redb, `ca-server check` on the
//! database, the database going away under load, and TLS to the database.
//! Several nodes are in `server_cluster.rs`.

mod harness;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca_server::api::client::ApiClient;
use ca_server::store::postgres::testdb::TestCluster;
use harness::cluster::*;
use harness::server::server_bin;
use harness::{core_csr, offline, run, Server};
use hyper::body::Bytes;
use hyper::Method;
use serde_json::{json, Value};

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
    let verify = || offline(&["audit", "verify"], &s.dir);
    assert!(verify().0, "{}", verify().1);
    sql("DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)");
    let (ok, said) = verify();
    assert!(!ok && said.contains("removed from the end"), "{said}");
    sql("UPDATE audit SET entry = regexp_replace(entry, '\"target\":\"[^\"]*\"', '\"target\":\"forged\"') WHERE seq = 2");
    let (ok, said) = verify();
    assert!(!ok && said.contains("entry 2"), "{said}");
    drop(pg);
}

/// `ca-server check` follows a data directory to its PostgreSQL database
/// and reads it in one snapshot beside the running node: a sound store
/// passes, without amcheck (saying its indexes were not checked) and with
/// it (every B-tree index of the store checked); then each kind of damage
/// made with psql is named (a revoked certificate's CRL entry gone, a
/// record's DER swapped, a row's status column changed, a claimed serial
/// gone, a CRL entry for a certificate not revoked, an ACME order naming
/// what is not there, an audit entry altered, the expiry index missing a
/// live row) and the check fails.
#[test]
fn check_reads_a_postgres_store_and_names_what_is_wrong() {
    let pg = TestCluster::start().expect("a test PostgreSQL cluster");
    let url = pg.create_db("checked").expect("createdb");
    let mut s = Server::init_with(&["--postgres", &url], &[]);
    s.start();
    let issuing = s.config.issuing_ca_id.clone();
    let serials: Vec<String> = (0..4)
        .map(|i| {
            let v = relying_issue(&s, &issuing, &format!("c{i}.example.test"));
            v["serial"].as_str().expect("serial").to_string()
        })
        .collect();
    let (st, v) = s.curl(
        "POST",
        &format!("/v1/certificates/{}/revoke", serials[0]),
        Some(&json!({"reason": "SUPERSEDED"})),
    );
    assert_eq!(st, 200, "{v}");
    let check = || offline(&["check"], &s.dir);
    let (ok, said) = check();
    assert!(ok, "{said}");
    assert!(said.contains("PostgreSQL"), "{said}");
    assert!(said.contains("hash chain intact"), "{said}");
    assert!(
        said.contains("indexes not checked: amcheck is not installed"),
        "{said}"
    );
    let records = pg
        .psql("checked", "SELECT count(*) FROM certs")
        .expect("psql");
    assert!(
        said.contains(&format!("OK: {records} certificate records")),
        "{said}"
    );

    let sql = |q: &str| pg.psql("checked", q).expect("psql");
    // With amcheck, PostgreSQL's own indexes are checked too: all of them.
    sql("CREATE EXTENSION amcheck");
    let indexes = sql(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_am a ON a.oid = c.relam JOIN pg_class t ON t.oid = i.indrelid \
         WHERE a.amname = 'btree' AND t.relnamespace = 'public'::regnamespace",
    );
    let (ok, said) = check();
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!(
            "OK: amcheck: the store's {indexes} B-tree indexes"
        )),
        "{indexes} indexes: {said}"
    );
    let key = |i: usize| format!("{issuing}/{}", serials[i]);
    sql(&format!("DELETE FROM crl_entries WHERE key = '{}'", key(0)));
    sql(&format!(
        "UPDATE certs SET der = (SELECT der FROM certs WHERE key = '{}') WHERE key = '{}'",
        key(2),
        key(1)
    ));
    sql(&format!(
        "UPDATE certs SET status = 0 WHERE key = '{}'",
        key(2)
    ));
    sql(&format!(
        "DELETE FROM serials WHERE serial = '{}'",
        serials[3]
    ));
    sql(&format!(
        "INSERT INTO crl_entries (key, ca_id, entry) VALUES ('{}', '{issuing}', '\\x00')",
        key(3)
    ));
    sql(
        "INSERT INTO acme_orders (id, account, created_at, rec) VALUES ('ord-x', 'acct-x', 0, \
         '{\"id\": \"ord-x\", \"account\": \"acct-x\", \"status\": \"valid\", \
         \"authorizations\": [\"authz-x\"], \"certificate\": null}')",
    );
    sql(
        "UPDATE audit SET entry = regexp_replace(entry, '\"target\":\"[^\"]*\"', \
         '\"target\":\"forged\"') WHERE seq = 2",
    );
    // The expiry index made to miss a live row: updated (and back) while
    // PostgreSQL took the index as not ready for inserts, so the row's new
    // version went into the table's other indexes only.
    let expiry = "indexrelid = 'certs_expiry'::regclass";
    sql(&format!(
        "UPDATE pg_index SET indisready = false WHERE {expiry}"
    ));
    for step in ["+ 1", "- 1"] {
        sql(&format!(
            "UPDATE certs SET not_after = not_after {step} WHERE key = '{}'",
            key(3)
        ));
    }
    sql(&format!(
        "UPDATE pg_index SET indisready = true WHERE {expiry}"
    ));
    let (ok, said) = check();
    assert!(!ok, "{said}");
    for expected in [
        format!(
            "certificate {}: revoked and not expired, but not on its CA's CRLs",
            key(0)
        ),
        format!("certificate {}: its DER holds serial", key(1)),
        format!("certificate {}: its row's columns", key(2)),
        format!(
            "certificate {}: its serial is not in the serials index",
            key(3)
        ),
        format!(
            "CRL entry {}: its certificate is Issued, not revoked",
            key(3)
        ),
        "ACME order ord-x: names account acct-x, which has no record".to_string(),
        "ACME order ord-x: names authorization authz-x, which has no record".to_string(),
        "ACME order ord-x: valid, with no certificate".to_string(),
        "BROKEN audit trail at entry 2".to_string(),
        "PROBLEM: index certs_expiry: ".to_string(),
        "FAILED".to_string(),
    ] {
        assert!(said.contains(&expected), "{expected}: {said}");
    }
    s.stop();
    drop(pg);
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
