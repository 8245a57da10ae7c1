//! One idempotency token under concurrency issues one certificate.

use crate::harness::{code, core_csr, Server};
use serde_json::{json, Value};

/// A retry with the same idempotency token that arrives after the first
/// request has signed but before it has stored the certificate waits for it
/// and gets the same certificate (the server holds the first request 400 ms
/// between signing and storing; a test-build hook). Before the fix the
/// token counted as abandoned in that window and a second certificate was
/// issued.
#[test]
fn a_retry_between_signing_and_storing_gets_the_same_certificate() {
    let s = Server::start_new_with(&[("CA_TEST_STORE_DELAY_MS", "400")]);
    let body = json!({"csr": core_csr("window.example.internal"), "idempotency_token": "window-1"});
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| s.curl("POST", "/v1/certificates", Some(&body)));
        // The first request signs within a few milliseconds, then waits.
        std::thread::sleep(std::time::Duration::from_millis(150));
        let second = scope.spawn(|| s.curl("POST", "/v1/certificates", Some(&body)));
        (first.join().expect("first"), second.join().expect("second"))
    });
    assert_eq!(first.0, 201, "{}", first.1);
    assert_eq!(second.0, 201, "{}", second.1);
    assert_eq!(
        first.1["serial"], second.1["serial"],
        "two certificates for one token"
    );
    let (_, list) = s.curl("GET", "/v1/certificates?limit=100", None);
    let named = list["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .filter(|c| c["subject"] == "CN=window.example.internal")
        .count();
    assert_eq!(named, 1, "{list}");
}

/// The same idempotency token sent by several requests at once, over HTTP:
/// with the same request, every answer is the one certificate (the others
/// wait for it); with different requests, one is issued and the rest are a
/// 409 `Conflict`. The store holds exactly one certificate either way.
#[test]
fn one_idempotency_token_sent_concurrently_issues_once() {
    let s = Server::start_new();
    let csr = core_csr("together.example.internal");
    let same = json!({"csr": csr, "idempotency_token": "together-1"});
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| s.curl("POST", "/v1/certificates", Some(&same))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let serials: std::collections::HashSet<String> = answers
        .iter()
        .map(|(st, v)| {
            assert_eq!(*st, 201, "{v}");
            v["serial"].as_str().expect("serial").to_string()
        })
        .collect();
    assert_eq!(serials.len(), 1, "{answers:?}");

    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    let body = json!({"csr": core_csr(&format!("d{i}.example.internal")),
                                      "idempotency_token": "together-2"});
                    s.curl("POST", "/v1/certificates", Some(&body))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let issued = answers.iter().filter(|(st, _)| *st == 201).count();
    let conflicts = answers
        .iter()
        .filter(|(st, v)| *st == 409 && code(v) == "Conflict")
        .count();
    assert_eq!((issued, conflicts), (1, 7), "{answers:?}");
    // What the store holds: one certificate per token.
    let (st, v) = s.curl("GET", "/v1/certificates?limit=1000", None);
    assert_eq!(st, 200, "{v}");
    let names: Vec<String> = v["certificates"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["sans"].to_string())
        .collect();
    let together = names
        .iter()
        .filter(|n| n.contains("together.example"))
        .count();
    let different = names
        .iter()
        .filter(|n| n.contains(".example.internal") && n.contains("\"DNS:d"))
        .count();
    assert_eq!((together, different), (1, 1), "{names:?}");
}
