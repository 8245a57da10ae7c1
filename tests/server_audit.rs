//! The audit trail end to end: every call is recorded (denied and failed ones
//! too), readable through the API with filters, and `ca-server audit verify`
//! finds an entry altered, removed or reordered directly in the redb file;
//! `ca-server check` finds damaged pages and index entries missing or astray.

mod harness;

use std::path::Path;
use std::process::Command;

use ca_server::store::redb::forensics;
use harness::{core_csr, offline, run, Server};
use serde_json::{json, Value};

fn verify(dir: &Path) -> (bool, String) {
    offline(&["audit", "verify"], dir)
}

use harness::server::{copy_data_dir as copy_dir, store_check as check};

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
    let (st, v) = s.curl("POST", "/v1/certificates", Some(&json!({"csr": "junk"})));
    assert_eq!((st, harness::code(&v)), (400, "MalformedCsr"), "{v}");
    let (st, v) = s.curl("GET", "/v1/no-such-thing", None);
    assert_eq!((st, harness::code(&v)), (404, "NotFound"), "{v}");
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
    assert_eq!((st, harness::code(&v)), (403, "PolicyDenied"), "{v}");

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
    let (st, v) = s.curl("GET", "/v1/audit?since=yesterday", None);
    assert_eq!((st, harness::code(&v)), (400, "InvalidRequest"), "{v}");
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

/// `ca-server audit verify` with a pinned digest key.
fn verify_pinned(dir: &Path, key: &Path) -> (bool, String) {
    let key = key.to_str().expect("a UTF-8 path");
    offline(&["audit", "verify", "--digest-key", key], dir)
}

/// Rewrite the trail from entry `from` on, every hash recomputed and the head
/// record updated: the hash chain alone cannot tell.
fn rewrite_consistently(dir: &Path, from: u64, count: u64) -> Vec<String> {
    use ca_core::audit_chain::AuditEntry;
    let mut prev: AuditEntry = serde_json::from_slice(&get(dir, from - 1)).expect("entry");
    let mut hashes = Vec::new();
    for seq in from..=count {
        let mut e: AuditEntry = serde_json::from_slice(&get(dir, seq)).expect("entry");
        if seq == from {
            e.identity.subject = "CN=someone else".into();
        }
        e.prev_hash = prev.hash.clone();
        e.hash = e.compute_hash().expect("hash");
        set(dir, seq, Some(&serde_json::to_vec(&e).expect("json")));
        hashes.push(e.hash.clone());
        prev = e;
    }
    forensics::set_audit_head(dir, count, &prev.hash).expect("head");
    hashes
}

/// Security review M4: the server signs digests of the trail (at start, every
/// interval, at shutdown) with an audit key whose public half an operator
/// pins. A consistent rewrite of the chain is found by the digests; digests
/// re-signed with another key are found by the pin.
#[test]
fn signed_digests_find_a_consistent_rewrite_of_the_trail() {
    let mut s = Server::init_with(&[], &[]);
    let config_path = s.dir.join("config.toml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    let interval = "audit_digest_interval_secs = 600\n";
    assert!(config.contains(interval), "{config}");
    std::fs::write(
        &config_path,
        config.replace(interval, "audit_digest_interval_secs = 1\n"),
    )
    .expect("config");
    s.start();
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": core_csr("digest.example.internal")})),
    );
    assert_eq!(st, 201, "{v}");
    // The operator keeps the key's public half outside the data directory.
    let pinned = s.tmp.path().join("pinned-audit-key.pem");
    std::fs::copy(s.dir.join("audit-digest-key.pem"), &pinned).expect("pin");
    let (_, page) = s.curl("GET", "/v1/audit?action=IssueCertificate", None);
    let issued_at = page["entries"][0]["seq"].as_u64().expect("issuance entry");
    // Within a few intervals a digest covers the issuance.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (st, page) = s.curl("GET", "/v1/audit/digests", None);
        assert_eq!(st, 200, "{page}");
        let covered = page["digests"]
            .as_array()
            .and_then(|d| d.last())
            .and_then(|d| d["head_seq"].as_u64())
            .unwrap_or(0);
        if covered >= issued_at {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no digest: {page}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = s.cli(&[
        "audit",
        "verify",
        "--digest-key",
        pinned.to_str().expect("path"),
    ]);
    let said = harness::text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("by the pinned audit key"), "{said}");
    assert_eq!(s.stop().code(), Some(0));
    let (ok, said) = verify_pinned(&s.dir, &pinned);
    assert!(ok, "{said}");
    // At shutdown the last digest covers every entry.
    let count: u64 = said
        .split("OK: ")
        .nth(1)
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("count");
    assert!(
        said.contains(&format!("cover entries 1 to {count}, 0 newer")),
        "{said}"
    );

    // Rewrite the trail from entry 5 on, consistently.
    let bad = s.tmp.path().join("rewritten");
    copy_dir(&s.dir, &bad);
    let hashes = rewrite_consistently(&bad, 5, count);
    let (ok, said) = verify(&bad);
    assert!(!ok, "a rewrite under a signed digest passed: {said}");
    assert!(said.contains("the trail was rewritten"), "{said}");

    // Re-sign every digest over the rewritten chain with a key of one's own:
    // consistent, so only the pin finds it.
    use ca_core::audit_digest::{AuditDigest, DigestDraft};
    let forger =
        ca_core::keys::SoftwareKey::generate(ca_core::keys::KeyAlgorithm::EcdsaP256).expect("key");
    let store = ca_server::store::open_read_only(&s.dir).expect("store");
    let digests = store.audit_digests(0, 1000).expect("digests");
    drop(store);
    let mut prev = ca_core::audit_chain::GENESIS.to_string();
    for d in digests {
        let head_hash = if d.head_seq >= 5 {
            hashes[(d.head_seq - 5) as usize].clone()
        } else {
            d.head_hash.clone()
        };
        let forged = AuditDigest::sign(
            DigestDraft {
                number: d.number,
                time: time::OffsetDateTime::now_utc(),
                head_seq: d.head_seq,
                head_hash,
                prev_digest: prev.clone(),
            },
            &forger,
        )
        .expect("sign");
        prev = forged.record_hash().expect("hash");
        forensics::set_audit_digest(&bad, d.number, &serde_json::to_vec(&forged).expect("json"))
            .expect("set");
    }
    let (ok, said) = verify(&bad);
    assert!(ok, "unpinned, consistent forged digests pass: {said}");
    assert!(said.contains("not pinned"), "{said}");
    let (ok, said) = verify_pinned(&bad, &pinned);
    assert!(!ok, "forged digests passed the pinned key: {said}");
    assert!(said.contains("not by the pinned audit key"), "{said}");
}

/// Every audit entry of a stopped server's store, parsed.
fn all_entries(dir: &Path) -> Vec<Value> {
    (1..)
        .map_while(|seq| forensics::audit_entry(dir, seq).expect("read"))
        .map(|b| serde_json::from_slice(&b).expect("entry"))
        .collect()
}

/// Security review M4: failed TLS handshakes on the management API are
/// audited, within a budget per window; the rest are counted and summarised
/// in one entry, so a flood cannot grow the trail without bound.
#[test]
fn failed_handshakes_are_audited_within_a_budget_and_summarised() {
    let mut s = Server::init_with(&[], &[]);
    let config_path = s.dir.join("config.toml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    let budget = "refusal_audit_window_secs = 60\nrefusal_audit_per_window = 60\n";
    assert!(config.contains(budget), "{config}");
    std::fs::write(
        &config_path,
        config.replace(
            budget,
            "refusal_audit_window_secs = 3600\nrefusal_audit_per_window = 5\n",
        ),
    )
    .expect("config");
    s.start();
    // openssl without a client certificate: the server refuses the handshake.
    for _ in 0..12 {
        let out = run(Command::new("openssl")
            .args(["s_client", "-connect", &s.api, "-CAfile"])
            .arg(s.root_pem())
            .stdin(std::process::Stdio::null()));
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // openssl may exit before the server's alert arrives; what the
        // server recorded is checked below.
        assert!(said.contains("CONNECTED"), "{said}");
    }
    assert_eq!(s.stop().code(), Some(0));
    let entries = all_entries(&s.dir);
    let handshakes: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "TlsHandshake")
        .collect();
    assert_eq!(handshakes.len(), 5, "{handshakes:?}");
    for e in &handshakes {
        assert_eq!(e["target"], "127.0.0.1", "{e}");
        assert_eq!(e["outcome"]["decision"], "denied", "{e}");
        assert!(
            e["outcome"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("TLS handshake refused"),
            "{e}"
        );
    }
    let summaries: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "InternalSummariseRefusals")
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    let reason = summaries[0]["outcome"]["reason"]
        .as_str()
        .unwrap_or_default();
    assert!(
        reason.starts_with("7 refusals") && reason.contains("TlsHandshake 7 (127.0.0.1 ×7)"),
        "{reason}"
    );
    let (ok, said) = verify(&s.dir);
    assert!(ok, "{said}");
}

/// `ca-server check` reads a stopped server's store end to end: it refuses a
/// running server's; it passes an intact store (a revoked certificate in
/// it, issued with an idempotency token), with its counts; it names a
/// certificate whose serial and expiry index entries are gone, a serial
/// claimed with no record, a revoked certificate missing from its CA's CRL
/// entries and an idempotency token naming no certificate; and it finds a
/// page whose bytes changed (its
/// checksum no longer matches), where the server's own start would not look.
#[test]
fn check_finds_damaged_pages_and_indexes() {
    let mut s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": core_csr("checked.example.internal")})),
    );
    assert_eq!(st, 201, "{v}");
    let serial = v["serial"].as_str().expect("serial").to_string();
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({
            "csr": core_csr("revoked.example.internal"),
            "idempotency_token": "check-test",
        })),
    );
    assert_eq!(st, 201, "{v}");
    let revoked = v["serial"].as_str().expect("serial").to_string();
    let (st, v) = harness::relying::revoke(&s, &revoked, "KEY_COMPROMISE");
    assert_eq!(st, 200, "{v}");
    let (st, v) = s.curl("GET", "/v1/certificates?limit=1000", None);
    assert_eq!(st, 200, "{v}");
    let listed = v["certificates"].as_array().map_or(0, Vec::len);

    let (ok, out) = check(&s.dir);
    assert!(!ok && out.contains("the server must be stopped"), "{out}");
    // A store a crash left is recovered in memory, its files left as they are.
    s.kill9();
    let files =
        |dir: &Path| ["ca.redb", "ca.redb.journal"].map(|f| std::fs::read(dir.join(f)).expect(f));
    let before = files(&s.dir);
    let (ok, out) = check(&s.dir);
    assert!(ok, "{out}");
    assert!(before == files(&s.dir), "check changed the store's files");
    s.start();
    s.stop();
    let (ok, out) = check(&s.dir);
    assert!(ok, "{out}");
    assert!(out.contains("OK: redb's integrity check"), "{out}");
    // Listed certificates, and the subordinate CAs' own (stored as certificates of their issuer).
    let records: usize = out
        .split("OK: ")
        .nth(2)
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of certificate records: {out}"));
    assert!(
        records >= listed,
        "{records} records, {listed} listed: {out}"
    );
    assert!(out.contains("hash chain intact"), "{out}");

    let tmp = tempfile::tempdir().expect("tempdir");
    let indexes = tmp.path().join("indexes");
    copy_dir(&s.dir, &indexes);
    forensics::drop_index_entries(&indexes, &ca, &serial).expect("drop index entries");
    forensics::claim_serial(&indexes, &ca, "0badc0de").expect("claim");
    forensics::drop_crl_entry(&indexes, &ca, &revoked).expect("drop the CRL entry");
    forensics::put_idempotency_token(&indexes, "fp/orphan", &ca, "0badbeef").expect("token");
    let (ok, out) = check(&indexes);
    assert!(!ok, "{out}");
    for said in [
        format!("PROBLEM: certificate {ca}/{serial}: its serial is not in the serials index"),
        format!("PROBLEM: certificate {ca}/{serial}: not in the expiry index"),
        format!("PROBLEM: serial 0badc0de (CA {ca}): claimed, with neither"),
        format!("PROBLEM: certificate {ca}/{revoked}: revoked and not expired, but not on its CA's CRLs"),
        format!("PROBLEM: idempotency token fp/orphan: names certificate {ca}/0badbeef, which has no record"),
        "FAILED".to_string(),
    ] {
        assert!(out.contains(&said), "missing {said:?}:\n{out}");
    }

    let pages = tmp.path().join("pages");
    copy_dir(&s.dir, &pages);
    let file = pages.join("ca.redb");
    let mut bytes = std::fs::read(&file).expect("read");
    let flipped = harness::flip_case_of(&mut bytes, b"checked.example.internal");
    assert!(flipped > 0, "the name is not in the file as it is");
    std::fs::write(&file, &bytes).expect("write");
    let (ok, out) = check(&pages);
    assert!(!ok, "{out}");
    assert!(out.contains("redb's integrity check failed"), "{out}");
}
