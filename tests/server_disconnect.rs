//! A client that resets the connection right after sending an issue or a
//! revoke cannot split an action from its audit entry or its publication:
//! 50 rounds against the real server, then the store (through the API), the
//! OCSP responder and the CRL (through openssl) and the audit trail must agree
//! on every certificate.

mod harness;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use harness::server::server_bin;
use harness::{core_csr, run, Server};
use serde_json::{json, Value};

const ROUNDS: usize = 50;

/// Send one request over mutual TLS, then reset the connection (SO_LINGER 0)
/// after `delay`, without reading the answer.
async fn send_and_reset(
    s: &Server,
    tls: &Arc<rustls::ClientConfig>,
    path: &str,
    body: &Value,
    delay: Duration,
) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::to_vec(body).expect("json");
    let tcp = tokio::net::TcpStream::connect(&s.api)
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .expect("handshake");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(&body).await.expect("write body");
    stream.flush().await.expect("flush");
    tokio::time::sleep(delay).await;
    stream.get_ref().0.set_zero_linger().expect("linger");
    // Dropped without close_notify: the kernel sends RST.
    drop(stream);
}

fn openssl(args: &[&str]) -> std::process::Output {
    run(Command::new("openssl").args(args))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, text).expect("write");
    f
}

/// What openssl's OCSP client says of a certificate: "good" or "revoked".
fn ocsp_status(
    s: &Server,
    dir: &Path,
    ca: &str,
    cert: &Path,
    issuer: &Path,
    chain: &Path,
) -> String {
    let url = format!("http://{}/ocsp/{ca}", s.public);
    let out = openssl(&[
        "ocsp",
        "-issuer",
        issuer.to_str().expect("path"),
        "-cert",
        cert.to_str().expect("path"),
        "-url",
        &url,
        "-CAfile",
        chain.to_str().expect("path"),
        "-no_nonce",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let _ = dir;
    let line = text
        .lines()
        .find(|l| l.contains(": "))
        .unwrap_or_default()
        .to_string();
    if line.ends_with("good") {
        "good".into()
    } else if line.ends_with("revoked") {
        "revoked".into()
    } else {
        format!("unexpected: {text}{}", String::from_utf8_lossy(&out.stderr))
    }
}

/// The serials a CRL lists (lower-case hex, no leading zeros).
fn crl_serials(s: &Server, dir: &Path, ca: &str) -> HashSet<String> {
    let out = run(Command::new("curl").args([
        "-sf",
        "-o",
        dir.join("crl.der").to_str().expect("path"),
        &format!("http://{}/crl/{ca}.crl", s.public),
    ]));
    assert!(out.status.success(), "CRL download");
    let out = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        dir.join("crl.der").to_str().expect("path"),
        "-noout",
        "-text",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Serial Number: "))
        .map(norm)
        .collect()
}

fn norm(serial: &str) -> String {
    let s = serial.trim().to_ascii_lowercase();
    let t = s.trim_start_matches('0');
    if t.is_empty() {
        "0".into()
    } else {
        t.to_string()
    }
}

/// Audit entries of successful calls of `action`, by target.
fn audited(s: &Server, action: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit?action={action}&limit=1000&cursor={c}"),
            None => format!("/v1/audit?action={action}&limit=1000"),
        };
        let (st, v) = s.curl("GET", &path, None);
        assert_eq!(st, 200, "{v}");
        for e in v["entries"].as_array().expect("entries") {
            if e["result"]["code"] == "success" {
                *out.entry(e["target"].as_str().unwrap_or("").to_string())
                    .or_insert(0) += 1;
            }
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_cannot_split_an_action_from_its_audit_entry() {
    let s = Server::start_new();
    let tmp = tempfile::tempdir().expect("tmp");
    let ca = s.config.issuing_ca_id.clone();
    let tls = s.tls();

    // Certificates to revoke, each asked of OCSP once first, so a stale
    // cached "good" would show.
    let (st, v) = s.curl("GET", &format!("/v1/cas/{ca}/certificate"), None);
    assert_eq!(st, 200, "{v}");
    let issuer = write(
        tmp.path(),
        "issuer.pem",
        v["certificate"].as_str().expect("ca"),
    );
    let chain_text = format!(
        "{}{}",
        v["certificate"].as_str().expect("ca"),
        v["certificate_chain"].as_str().expect("chain")
    );
    let chain = write(tmp.path(), "chain.pem", &chain_text);
    let mut victims = Vec::new();
    for i in 0..ROUNDS / 2 {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"ca_id": ca, "csr": core_csr(&format!("victim-{i}.example.internal"))})),
        );
        assert_eq!(st, 201, "{v}");
        let serial = v["serial"].as_str().expect("serial").to_string();
        let pem = write(
            tmp.path(),
            &format!("{serial}.pem"),
            v["certificate"].as_str().expect("pem"),
        );
        assert_eq!(
            ocsp_status(&s, tmp.path(), &ca, &pem, &issuer, &chain),
            "good"
        );
        victims.push((serial, pem));
    }

    // 50 rounds: issue and revoke alternately, each reset after 0-27 ms.
    for round in 0..ROUNDS {
        let delay = Duration::from_millis((round % 10) as u64 * 3);
        if round % 2 == 0 {
            let name = format!("hangup-{round}.example.internal");
            send_and_reset(
                &s,
                &tls,
                "/v1/certificates",
                &json!({"ca_id": ca, "csr": core_csr(&name)}),
                delay,
            )
            .await;
        } else {
            let (serial, _) = &victims[round / 2];
            send_and_reset(
                &s,
                &tls,
                &format!("/v1/certificates/{serial}/revoke"),
                &json!({"reason": "KEY_COMPROMISE"}),
                delay,
            )
            .await;
        }
    }
    // Requests whose clients left still run to their end.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Issued: every ISSUED certificate of the rounds has its audit entry,
    // and every audit entry its certificate.
    // (init's own certificates are audited as InternalIssueCertificate, the
    // delegated OCSP responder's as InternalIssueOcspResponderCertificate)
    let mut issued_audit = audited(&s, "IssueCertificate");
    for action in [
        "InternalIssueCertificate",
        "InternalIssueOcspResponderCertificate",
    ] {
        for (target, n) in audited(&s, action) {
            *issued_audit.entry(target).or_insert(0) += n;
        }
    }
    let (st, v) = s.curl(
        "GET",
        &format!("/v1/certificates?ca_id={ca}&limit=1000"),
        None,
    );
    assert_eq!(st, 200, "{v}");
    let mut hangup_issued = HashSet::new();
    for c in v["certificates"].as_array().expect("certs") {
        let target = format!("{ca}/{}", c["serial"].as_str().expect("serial"));
        assert_eq!(
            issued_audit.get(&target),
            Some(&1),
            "certificate {target} ({}) is stored without exactly one audit entry",
            c["sans"]
        );
        if c["sans"].to_string().contains("hangup-") {
            hangup_issued.insert(target);
        }
    }
    let listed: HashSet<String> = v["certificates"]
        .as_array()
        .expect("certs")
        .iter()
        .map(|c| format!("{ca}/{}", c["serial"].as_str().unwrap_or("")))
        .collect();
    for target in issued_audit.keys().filter(|t| t.starts_with(&ca)) {
        assert!(
            listed.contains(target),
            "audited issue {target} is not in the store"
        );
    }

    // Revoked: store, OCSP, CRL and audit agree on every victim.
    let revoked_audit = audited(&s, "RevokeCertificate");
    // The CRL builder is debounced: wait for the last revocation to show.
    let store_revoked: HashSet<String> = victims
        .iter()
        .filter(|(serial, _)| {
            let (st, v) = s.curl("GET", &format!("/v1/certificates/{serial}"), None);
            assert_eq!(st, 200, "{v}");
            v["status"] == "REVOKED"
        })
        .map(|(serial, _)| serial.clone())
        .collect();
    let mut crl = HashSet::new();
    for _ in 0..100 {
        crl = crl_serials(&s, tmp.path(), &ca);
        if store_revoked.iter().all(|sr| crl.contains(&norm(sr))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (serial, pem) in &victims {
        let in_store = store_revoked.contains(serial);
        let ocsp = ocsp_status(&s, tmp.path(), &ca, pem, &issuer, &chain);
        let in_crl = crl.contains(&norm(serial));
        let in_audit = revoked_audit
            .get(&format!("{ca}/{serial}"))
            .copied()
            .unwrap_or(0);
        assert_eq!(
            (ocsp.as_str(), in_crl, in_audit),
            if in_store { ("revoked", true, 1) } else { ("good", false, 0) },
            "{serial}: store says revoked={in_store}, OCSP {ocsp}, CRL {in_crl}, audit entries {in_audit}"
        );
    }
    eprintln!(
        "{} of {} hung-up issues and {} of {} hung-up revokes took effect; all agree",
        hangup_issued.len(),
        ROUNDS / 2,
        store_revoked.len(),
        victims.len()
    );

    // The whole trail still verifies offline.
    let mut s = s;
    s.stop();
    let out = run(Command::new(server_bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(&s.dir));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
