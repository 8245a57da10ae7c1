//! The audit trail end to end: every call is recorded (denied and failed ones
//! too), readable through the API with filters, and `ca-server audit verify`
//! finds an entry altered, removed or reordered directly in the redb file.

mod harness;

use std::path::Path;
use std::process::Command;

use ca_server::store::redb::forensics;
use harness::server::server_bin;
use harness::{core_csr, run, Server};
use serde_json::{json, Value};

fn verify(dir: &Path) -> (bool, String) {
    let out = run(Command::new(server_bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(dir));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A copy of the data directory to tamper with.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_file() {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

fn get(dir: &Path, seq: u64) -> Vec<u8> {
    forensics::audit_entry(dir, seq)
        .expect("get")
        .expect("entry")
}

fn set(dir: &Path, seq: u64, bytes: Option<&[u8]>) {
    forensics::set_audit_entry(dir, seq, bytes).expect("set");
}

#[test]
fn every_call_is_audited_and_tampering_is_found() {
    let mut s = Server::start_new();
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": core_csr("a.example.internal")})),
    );
    assert_eq!(st, 201, "{v}");
    let serial = v["serial"].as_str().expect("serial").to_string();
    let (st, _) = s.curl("GET", &format!("/v1/certificates/{serial}"), None);
    assert_eq!(st, 200);
    let (st, _) = s.curl("POST", "/v1/certificates", Some(&json!({"csr": "junk"})));
    assert_eq!(st, 400);
    let (st, _) = s.curl("GET", "/v1/no-such-thing", None);
    assert_eq!(st, 404);
    // A client with no policy: denied, and audited as denied.
    let (cert, key, fp) = harness::client_identity(&s, "nobody", "CN=nobody,O=test");
    let (st, v) = s.curl_as(&cert, &key, "GET", "/v1/cas", None);
    assert_eq!(st, 200, "listing is filtered, not refused: {v}");
    assert_eq!(v["certificate_authorities"], json!([]));
    let (st, v) = s.curl_as(
        &cert,
        &key,
        "GET",
        &format!("/v1/cas/{}", s.config.issuing_ca_id),
        None,
    );
    assert_eq!(st, 403, "{v}");
    assert_eq!(harness::code(&v), "PolicyDenied");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("deny by default"),
        "{v}"
    );
    let (st, v) = s.curl_as(&cert, &key, "GET", "/v1/audit", None);
    assert_eq!(st, 403, "{v}");

    // Read back through the API with filters.
    let (st, v) = s.curl("GET", "/v1/audit?action=IssueCertificate", None);
    assert_eq!(st, 200, "{v}");
    let entries = v["entries"].as_array().expect("entries").clone();
    assert_eq!(entries.len(), 2, "{v}");
    assert_eq!(entries[0]["outcome"]["decision"], "allowed");
    assert_eq!(entries[0]["outcome"]["statement"], "bootstrap-admin");
    assert_eq!(entries[0]["result"]["code"], "success");
    assert_eq!(entries[1]["outcome"]["decision"], "not_evaluated");
    assert_eq!(entries[1]["result"]["code"], "MalformedCsr");
    let (st, v) = s.curl("GET", &format!("/v1/audit?identity={fp}"), None);
    assert_eq!(st, 200);
    let mine: Vec<&Value> = v["entries"].as_array().expect("entries").iter().collect();
    assert_eq!(mine.len(), 3, "{v}");
    assert_eq!(mine[1]["outcome"]["decision"], "denied");
    assert_eq!(mine[1]["result"]["status"], 403);
    assert_eq!(mine[1]["target"], s.config.issuing_ca_id.as_str());
    let (st, v) = s.curl("GET", "/v1/audit?since=2999-01-01T00:00:00Z", None);
    assert_eq!(st, 200);
    assert_eq!(v["entries"], json!([]));
    let (st, v) = s.curl("GET", "/v1/audit?limit=2", None);
    assert_eq!(st, 200);
    assert_eq!(v["entries"].as_array().map(Vec::len), Some(2));
    let cursor = v["next_cursor"].as_str().expect("cursor").to_string();
    let (st, v) = s.curl("GET", &format!("/v1/audit?limit=2&cursor={cursor}"), None);
    assert_eq!(st, 200);
    assert_eq!(v["entries"][0]["seq"], 3);
    let (st, _) = s.curl("GET", "/v1/audit?since=yesterday", None);
    assert_eq!(st, 400);
    s.stop();

    let (ok, out) = verify(&s.dir);
    assert!(ok, "{out}");
    assert!(out.contains("OK"), "{out}");
    let total: u64 = out
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .expect("count");
    assert!(total >= 14, "{out}");

    // Alter one byte of entry 5's action.
    let altered = s.tmp.path().join("altered");
    copy_dir(&s.dir, &altered);
    let raw = String::from_utf8(get(&altered, 5)).expect("utf8");
    let changed = raw.replacen("\"action\":\"", "\"action\":\"X", 1);
    assert_ne!(raw, changed);
    set(&altered, 5, Some(changed.as_bytes()));
    let (ok, out) = verify(&altered);
    assert!(!ok, "{out}");
    assert!(out.contains("entry 5"), "{out}");
    assert!(out.contains("altered"), "{out}");

    // Remove entry 4.
    let removed = s.tmp.path().join("removed");
    copy_dir(&s.dir, &removed);
    set(&removed, 4, None);
    let (ok, out) = verify(&removed);
    assert!(!ok, "{out}");
    assert!(out.contains("entry 4"), "{out}");

    // Swap entries 6 and 7 (with their keys: a plain reorder).
    let reordered = s.tmp.path().join("reordered");
    copy_dir(&s.dir, &reordered);
    let (a, b) = (get(&reordered, 6), get(&reordered, 7));
    set(&reordered, 6, Some(&b));
    set(&reordered, 7, Some(&a));
    let (ok, out) = verify(&reordered);
    assert!(!ok, "{out}");
    assert!(out.contains("entry 6"), "{out}");

    // Remove the newest entry: the recorded head catches it.
    let truncated = s.tmp.path().join("truncated");
    copy_dir(&s.dir, &truncated);
    set(&truncated, total, None);
    let (ok, out) = verify(&truncated);
    assert!(!ok, "{out}");
    assert!(out.contains(&format!("entry {total}")), "{out}");

    // The original still verifies, and the server still starts on it.
    let (ok, out) = verify(&s.dir);
    assert!(ok, "{out}");
    s.start();
    let (st, _) = s.curl("GET", "/v1/cas", None);
    assert_eq!(st, 200);
}

/// Security review M4 (in part): an issuance entry says what was certified,
/// its serial, SANs, notAfter and the hash of the to-be-signed certificate,
/// checked here against the certificate the client received, and the chain
/// still verifies.
#[test]
fn an_issuance_entry_records_the_certificate_it_made() {
    use der::{Decode, Encode};
    let mut s = Server::start_new();
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": core_csr("audited.example.internal")})),
    );
    assert_eq!(st, 201, "{v}");
    let serial = v["serial"].as_str().expect("serial").to_string();
    let der =
        ca_core::pem::decode("CERTIFICATE", v["certificate"].as_str().expect("pem")).expect("der");
    let cert = x509_cert::Certificate::from_der(&der).expect("certificate");
    let tbs = cert.tbs_certificate.to_der().expect("tbs");
    let tbs_sha256 =
        ca_core::hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &tbs).as_ref());
    let not_after = ca_core::fmt_time(
        time::OffsetDateTime::from_unix_timestamp(
            cert.tbs_certificate
                .validity
                .not_after
                .to_unix_duration()
                .as_secs() as i64,
        )
        .expect("time"),
    );

    let (st, page) = s.curl("GET", "/v1/audit?action=IssueCertificate&limit=100", None);
    assert_eq!(st, 200, "{page}");
    let entry = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["target"].as_str().is_some_and(|t| t.ends_with(&serial)))
        .unwrap_or_else(|| panic!("no entry for {serial}: {page}"))
        .clone();
    let c = &entry["certificate"];
    assert_eq!(c["serial"], serial.as_str(), "{entry}");
    assert_eq!(
        c["sans"],
        json!(["DNS:audited.example.internal"]),
        "{entry}"
    );
    assert_eq!(c["not_after"], not_after.as_str(), "{entry}");
    assert_eq!(c["tbs_sha256"], tbs_sha256.as_str(), "{entry}");
    // The chain, with the new field, verifies.
    s.stop();
    let (ok, out) = verify(&s.dir);
    assert!(ok, "{out}");
}
