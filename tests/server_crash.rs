//! Crash safety: kill -9 the server while a load generator issues
//! certificates, restart, several times over. Every certificate a client
//! received is in the store afterwards, and no serial repeats.

mod harness;
// The bench's load generator, compiled into this test: it is not part of the library.
#[allow(dead_code)]
#[path = "../ca-server/src/bin/bench_support/mod.rs"]
mod bench_support;

use std::collections::HashSet;
use std::time::Duration;

use harness::{core_csr, Server};
use hyper::body::Bytes;
use hyper::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_issued_certificate_and_reuses_no_serial() {
    let mut s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let body = Bytes::from(
        serde_json::to_vec(
            &json!({"ca_id": ca, "csr": core_csr("load.example.internal"), "validity_days": 7}),
        )
        .unwrap(),
    );
    let mut received: Vec<String> = Vec::new();
    for round in 0..3 {
        let load = tokio::spawn(bench_support::run_load(
            s.api.clone(),
            s.tls(),
            "/v1/certificates",
            body.clone(),
            16,
            Duration::from_millis(2500),
            true,
        ));
        // Let the load build up, then pull the plug mid-flight.
        tokio::time::sleep(Duration::from_millis(1200 + 300 * round)).await;
        s.kill9();
        let report = load.await.unwrap();
        assert!(
            report.ok > 50,
            "round {round}: the load generator got only {} certificates",
            report.ok
        );
        assert!(
            report.errors > 0,
            "round {round}: the kill did not interrupt any request"
        );
        eprintln!(
            "round {round}: {} certificates received, {} failed requests",
            report.ok, report.errors
        );
        received.extend(report.serials);
        s.start();
    }

    // A graceful stop (SIGTERM) under load: in-flight requests finish, the
    // store closes cleanly, the process exits 0.
    let load = tokio::spawn(bench_support::run_load(
        s.api.clone(),
        s.tls(),
        "/v1/certificates",
        body.clone(),
        16,
        Duration::from_millis(2000),
        true,
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let st = s.stop();
    assert!(st.success(), "SIGTERM under load: exit {st}\n{}", s.log());
    let report = load.await.unwrap();
    assert!(report.ok > 50);
    eprintln!("graceful round: {} certificates received", report.ok);
    received.extend(report.serials);
    s.start();

    // Everything received is listed, issued, exactly once.
    let mut client = s.client().await;
    let mut listed: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/certificates?ca_id={ca}&limit=1000&cursor={c}"),
            None => format!("/v1/certificates?ca_id={ca}&limit=1000"),
        };
        let (st, page) = client.call(Method::GET, &path, None).await.unwrap();
        assert_eq!(st, 200, "{page}");
        for c in page["certificates"].as_array().unwrap() {
            assert_eq!(c["status"], "ISSUED");
            listed.push(c["serial"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let listed_set: HashSet<&String> = listed.iter().collect();
    assert_eq!(listed_set.len(), listed.len(), "a serial is listed twice");
    let received_set: HashSet<&String> = received.iter().collect();
    assert_eq!(
        received_set.len(),
        received.len(),
        "a serial was handed out twice"
    );
    let missing: Vec<&&String> = received_set.difference(&listed_set).collect();
    assert!(
        missing.is_empty(),
        "{} received certificates are not in the store: {missing:?}",
        missing.len()
    );
    // Intents of requests cut off by the kills stay reserved: their serials are never reused.
    let (st, reserved) = client
        .call(
            Method::GET,
            &format!("/v1/certificates?ca_id={ca}&status=RESERVED&limit=1000"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(st, 200);
    for r in reserved["certificates"].as_array().unwrap() {
        assert!(!listed_set.contains(&r["serial"].as_str().unwrap().to_string()));
    }
    eprintln!(
        "received {}, listed {}, reserved by cut-off requests {}",
        received.len(),
        listed.len(),
        reserved["certificates"].as_array().unwrap().len()
    );
    // And each received certificate can be fetched whole.
    for serial in received.iter().take(20) {
        let (st, v) = client
            .call(Method::GET, &format!("/v1/certificates/{serial}"), None)
            .await
            .unwrap();
        assert_eq!(st, 200, "{v}");
        assert!(v["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
    }
    // A kill between an action and its audit entry cannot leave one without
    // the other: every stored certificate has exactly one IssueCertificate
    // entry, and every such entry its certificate.
    // (init's own TLS certificate is audited as InternalIssueCertificate)
    let mut audited: Vec<String> = Vec::new();
    for action in ["IssueCertificate", "InternalIssueCertificate"] {
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/audit?action={action}&limit=1000&cursor={c}"),
                None => format!("/v1/audit?action={action}&limit=1000"),
            };
            let (st, page) = client.call(Method::GET, &path, None).await.unwrap();
            assert_eq!(st, 200, "{page}");
            for e in page["entries"].as_array().unwrap() {
                let target = e["target"].as_str().unwrap();
                if e["result"]["code"] == "success" && target.starts_with(ca.as_str()) {
                    audited.push(target.to_string());
                }
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
    }
    let audited_set: HashSet<&String> = audited.iter().collect();
    assert_eq!(
        audited_set.len(),
        audited.len(),
        "a certificate audited twice"
    );
    let stored: HashSet<String> = listed.iter().map(|s| format!("{ca}/{s}")).collect();
    let unaudited: Vec<&String> = stored.iter().filter(|t| !audited_set.contains(t)).collect();
    assert!(
        unaudited.is_empty(),
        "stored without an audit entry: {unaudited:?}"
    );
    let phantom: Vec<&&String> = audited_set
        .iter()
        .filter(|t| !stored.contains(**t))
        .collect();
    assert!(phantom.is_empty(), "audited but not stored: {phantom:?}");
    eprintln!(
        "{} certificates, {} audit entries: one each",
        stored.len(),
        audited.len()
    );
}
