//! Prometheus metrics: `/metrics` on a live server passes `promtool check
//! metrics` (Debian's prometheus package), and its figures follow what the
//! test did through the API: certificates issued, a revocation, calls by
//! action and outcome, certificates about to expire, CRLs and the audit
//! trail. Moved to a listener of its own, the public listener no longer
//! serves it.

mod harness;

use std::process::{Command, Stdio};

use harness::{code, core_csr, free_port, run, Server};
use serde_json::json;

/// GET a public URL with curl: (status, body).
fn get(url: &str, accept: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-w", "\n%{http_code}"]);
    if let Some(a) = accept {
        cmd.args(["-H", &format!("Accept: {a}")]);
    }
    let out = run(cmd.arg(url));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (status.trim().parse().expect("status"), body.to_string())
}

/// `promtool check metrics` on the text: its exit status and what it said.
fn promtool(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (the test command installs Debian's prometheus package)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// The value of the sample whose name and labels are exactly `series`
/// (labels in the order the server writes them).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_pass_promtool_and_follow_issuance_revocation_and_expiry() {
    let s = Server::start_new();
    let issuing = s.config.issuing_ca_id.clone();
    let url = format!("http://{}/metrics", s.public);

    // Two certificates: one expiring within 7 days, one within 30; a third
    // expiring in 20 days is revoked, so it is not "about to expire".
    let mut serials = vec![];
    for (name, days) in [
        ("a.example.com", 5),
        ("b.example.com", 20),
        ("c.example.com", 20),
    ] {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates",
            Some(&json!({"csr": core_csr(name), "ca_id": issuing, "validity_days": days})),
        );
        assert_eq!(st, 201, "{v}");
        serials.push(v["serial"].as_str().expect("serial").to_string());
    }
    let (st, v) = harness::relying::revoke(&s, &serials[2], "SUPERSEDED");
    assert_eq!(st, 200, "{v}");
    // A refused call is counted under its error code.
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": "not a CSR", "ca_id": issuing})),
    );
    assert_eq!(st, 400, "{v}");
    let refused = code(&v).to_string();
    // The CRL is fetched once, so its size is known.
    let (st, _) = get(&format!("http://{}/crl/{issuing}.crl", s.public), None);
    assert_eq!(st, 200);

    let (st, text) = get(&url, None);
    assert_eq!(st, 200, "{text}");
    let (ok, said) = promtool(&text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");

    let issued = format!(
        "ca_certificates_issued_total{{ca=\"{issuing}\",profile=\"tls-server\",key_type=\"ECDSA P-256\"}}"
    );
    assert_eq!(sample(&text, &issued), Some(3.0), "{text}");
    let revoked = format!("ca_revocations_total{{ca=\"{issuing}\",reason=\"SUPERSEDED\"}}");
    assert_eq!(sample(&text, &revoked), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "ca_api_requests_total{action=\"IssueCertificate\",outcome=\"success\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("ca_api_requests_total{{action=\"IssueCertificate\",outcome=\"{refused}\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "ca_certificates_expiring{within=\"7d\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "ca_certificates_expiring{within=\"30d\"}"),
        Some(2.0),
        "{text}"
    );
    let crl_bytes = sample(&text, &format!("ca_crl_size_bytes{{ca=\"{issuing}\"}}"));
    assert!(crl_bytes.is_some_and(|b| b > 100.0), "{text}");
    let commits = sample(&text, "ca_store_commit_duration_seconds_count").unwrap_or(0.0);
    assert!(commits >= 4.0, "{text}");
    assert_eq!(
        sample(
            &text,
            "ca_public_requests_total{route=\"crl\",status=\"200\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // The trail's length is the store's: the audit API's newest entry.
    let (st, page) = s.curl("GET", "/v1/audit?limit=1000", None);
    assert_eq!(st, 200, "{page}");
    let newest = page["entries"]
        .as_array()
        .and_then(|e| e.last())
        .and_then(|e| e["seq"].as_f64())
        .expect("entries");
    let counted = sample(&text, "ca_audit_entries").expect("ca_audit_entries");
    // The audit read itself may be recorded after the scrape: at most one more.
    assert!(
        newest == counted || newest == counted + 1.0,
        "{newest} vs {counted}"
    );
    let not_after = sample(
        &text,
        &format!("ca_authority_not_after_timestamp_seconds{{ca=\"{issuing}\"}}"),
    );
    assert!(not_after.is_some_and(|t| t > 1.7e9), "{text}");

    // OpenMetrics for scrapers that ask for it.
    let (st, om) = get(&url, Some("application/openmetrics-text; version=1.0.0"));
    assert_eq!(st, 200);
    assert!(om.trim_end().ends_with("# EOF"), "{om}");
    assert!(om.contains("# TYPE ca_certificates_issued counter"), "{om}");
}

#[test]
fn metrics_move_to_their_own_listener_or_switch_off() {
    let mut s = Server::init_with(&[], &[]);
    let port = free_port();
    let config = s.dir.join("config.toml");
    let original = std::fs::read_to_string(&config).expect("config");
    assert!(original.contains("listen = \"public\""), "{original}");
    std::fs::write(
        &config,
        original.replace(
            "listen = \"public\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        ),
    )
    .expect("config");
    s.start();
    let (st, _) = get(&format!("http://{}/metrics", s.public), None);
    assert_eq!(st, 404, "the public listener no longer serves metrics");
    let (st, text) = get(&format!("http://127.0.0.1:{port}/metrics"), None);
    assert_eq!(st, 200, "{text}");
    let (ok, said) = promtool(&text);
    assert!(ok, "promtool: {said}");
    let (st, _) = get(&format!("http://127.0.0.1:{port}/health"), None);
    assert_eq!(st, 404, "the metrics listener serves /metrics only");

    // Switched off: no listener, nothing on the public one.
    s.stop();
    std::fs::write(
        &config,
        original.replace("enabled = true\nlisten", "enabled = false\nlisten"),
    )
    .expect("config");
    s.start();
    let (st, _) = get(&format!("http://{}/metrics", s.public), None);
    assert_eq!(st, 404);
}
