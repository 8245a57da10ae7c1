//! What happens as time passes, on a server whose wall clock is moved with
//! libfaketime (timers keep the real monotonic clock): certificates expire in
//! listings and at the connection, an expired issuer stops issuing, and the
//! scheduled work (OCSP responder renewal, CRL refresh) runs.

mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::relying::*;
use harness::{code, core_csr, run, Server};
use serde_json::{json, Value};

/// libfaketime, which the test command installs (Debian's `faketime`).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A started server whose wall clock follows the offset written to the
/// returned file (`+2d`), through libfaketime.
fn server_on_a_movable_clock() -> (Server, PathBuf) {
    server_on_a_movable_clock_with(|config| config)
}

/// [`server_on_a_movable_clock`] with `edit` applied to its config.toml first.
fn server_on_a_movable_clock_with(edit: impl Fn(String) -> String) -> (Server, PathBuf) {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: run tests/install-test-tools.sh"
    );
    let mut s = Server::init_with(&[], &[]);
    let path = s.dir.join("config.toml");
    let config = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, edit(config)).expect("config");
    let clock = s.tmp.path().join("faketime");
    std::fs::write(&clock, "+0d\n").expect("clock");
    for (k, v) in [
        ("LD_PRELOAD", LIBFAKETIME.to_string()),
        ("FAKETIME_TIMESTAMP_FILE", clock.display().to_string()),
        ("FAKETIME_NO_CACHE", "1".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1".to_string()),
    ] {
        s.env.push((k.to_string(), v));
    }
    s.start();
    (s, clock)
}

/// Listing by status follows the clock: a certificate past its notAfter is
/// EXPIRED (and no longer ISSUED), one still valid is ISSUED.
#[test]
fn listing_by_status_follows_expiry() {
    let (s, clock) = server_on_a_movable_clock();
    let ca = s.config.issuing_ca_id.clone();
    let issue_for = |name: &str, days: u32| {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates/request",
            Some(&json!({"ca_id": ca, "names": [name], "validity_days": days,
                         "passphrase": "long enough passphrase"})),
        );
        assert_eq!(st, 201, "{v}");
        v["serial"].as_str().expect("serial").to_string()
    };
    let brief = issue_for("brief.example", 1);
    let lasting = issue_for("lasting.example", 30);
    let listed = |status: &str| -> Vec<String> {
        let (st, v) = s.curl(
            "GET",
            &format!("/v1/certificates?ca_id={ca}&status={status}&limit=1000"),
            None,
        );
        assert_eq!(st, 200, "{v}");
        v["certificates"]
            .as_array()
            .expect("list")
            .iter()
            .map(|c| c["serial"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert!(listed("ISSUED").contains(&brief));
    assert!(listed("EXPIRED").is_empty());
    std::fs::write(&clock, "+2d\n").expect("clock");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(listed("EXPIRED"), vec![brief.clone()]);
    let issued = listed("ISSUED");
    assert!(
        issued.contains(&lasting) && !issued.contains(&brief),
        "{issued:?}"
    );
    let (st, v) = s.curl("GET", &format!("/v1/certificates/{brief}"), None);
    assert_eq!((st, v["status"].as_str()), (200, Some("EXPIRED")), "{v}");
}

/// The responder's serial in `openssl ocsp -resp_text` output.
fn responder_serial(t: &str) -> String {
    let begin = t
        .find("-----BEGIN CERTIFICATE-----")
        .expect("responder certificate");
    let end = t.find("-----END CERTIFICATE-----").expect("end") + 25;
    let der = ca_core::pem::decode("CERTIFICATE", &t[begin..end]).expect("pem");
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(&der).expect("certificate");
    ca_core::hex::encode(cert.tbs_certificate.serial_number.as_bytes())
}

/// As time passes, the scheduled work happens: the delegated OCSP responder
/// certificate is renewed past half its life (a new one, stored), and a CRL
/// past half its validity is signed again with a higher number.
#[test]
fn the_responder_certificate_and_the_crl_are_renewed_as_time_passes() {
    let (s, clock) = server_on_a_movable_clock_with(|c| {
        assert!(c.contains("crl_refresh_secs = 60"), "{c}");
        c.replace("crl_refresh_secs = 60", "crl_refresh_secs = 1")
    });
    let ca = s.config.issuing_ca_id.clone();
    let leaf = issue(&s, &ca, "renewals.example");
    let f = Files::new(&s, &ca, &leaf);
    let leaf_pem = f.leaf("leaf", &leaf);
    let url = format!("http://{}/ocsp/{ca}", s.public);
    // openssl checks times with the real clock, so the signature is checked
    // here (against the chain) only before the clock moves.
    let first = f.ocsp(&url, &["-cert", p(&leaf_pem), "-resp_text"], true);
    let crl1 = f.dir.join("crl1.der");
    let (st, _, body) = public(&crl_url(&s, &ca), &[]);
    assert_eq!(st, 200);
    std::fs::write(&crl1, &body).expect("write");

    std::fs::write(&clock, "+16d\n").expect("clock");
    let deadline = Instant::now() + Duration::from_secs(20);
    let crl2 = f.dir.join("crl2.der");
    loop {
        let (st, _, body) = public(&crl_url(&s, &ca), &[]);
        assert_eq!(st, 200);
        std::fs::write(&crl2, &body).expect("write");
        if crl_number(&crl2) > crl_number(&crl1) {
            break;
        }
        assert!(Instant::now() < deadline, "the CRL was not refreshed");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = openssl(&[
        "ocsp",
        "-issuer",
        p(&f.issuer),
        "-cert",
        p(&leaf_pem),
        "-url",
        &url,
        "-no_nonce",
        "-resp_text",
        "-noverify",
    ]);
    let second = text(&out);
    assert!(second.contains(": good"), "{second}");
    let (a, b) = (responder_serial(&first), responder_serial(&second));
    assert_ne!(a, b, "the responder certificate was not renewed");
    // Both are certificates the store holds and the trail records.
    for serial in [&a, &b] {
        let (st, v) = s.curl("GET", &format!("/v1/certificates/{serial}"), None);
        assert_eq!(
            (st, v["profile"].as_str()),
            (200, Some("ocsp-signing")),
            "{v}"
        );
    }
}

/// A CA past its notAfter issues nothing: 409 `InvalidState`, naming its
/// expiry; the CA beside it still issues.
#[test]
fn an_expired_issuer_refuses_to_issue() {
    let (s, clock) = server_on_a_movable_clock();
    let (st, v) = s.curl(
        "POST",
        "/v1/cas",
        Some(&json!({"type": "SUBORDINATE", "subject": "CN=Brief CA",
                     "parent_ca_id": s.config.root_ca_id, "path_len": 0, "validity_days": 1})),
    );
    assert_eq!(st, 201, "{v}");
    let brief = v["id"].as_str().expect("id").to_string();
    let by = |ca: &str| issue_as_status(&s, ca, "after.example");
    assert_eq!(by(&brief).0, 201);
    std::fs::write(&clock, "+2d\n").expect("clock");
    std::thread::sleep(Duration::from_millis(300));
    let (st, v) = by(&brief);
    assert_eq!((st, code(&v)), (409, "InvalidState"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{v}"
    );
    assert_eq!(by(&s.config.issuing_ca_id).0, 201);
}

fn issue_as_status(s: &Server, ca_id: &str, dns: &str) -> (u16, Value) {
    s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": core_csr(dns), "ca_id": ca_id})),
    )
}

/// Security review L2: a client certificate's notAfter is checked on every
/// request, so a connection kept alive past it is refused at its next
/// request, and a new connection fails its handshake. The server's clock is
/// moved with libfaketime (wall clock only; timers keep the real monotonic
/// clock), since no certificate expiring within seconds can be issued.
#[test]
fn a_client_certificate_that_expires_on_a_kept_alive_connection_is_refused() {
    let (s, clock) = server_on_a_movable_clock();
    let (cert, key, _) =
        harness::server::client_identity_valid_for(&s, "brief", "CN=brief,O=test", 1);
    s.put_policy(
        "brief",
        json!({"effect": "allow", "principals": [{"subject": "CN=brief*"}],
               "actions": ["read"], "cas": ["*"]}),
    );
    // One keep-alive connection: a request, the clock moved two days on (past
    // the certificate's notAfter, within everything else's), a second request
    // on the same connection; then a new connection.
    let script = r#"
import http.client, ssl, sys, time
host, port = sys.argv[1].rsplit(":", 1)
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
conn.request("GET", "/v1/whoami")
r = conn.getresponse(); r.read(); print("before", r.status)
open(sys.argv[5], "w").write("+2d\n")
time.sleep(0.3)
conn.request("GET", "/v1/whoami")
r = conn.getresponse(); body = r.read().decode(); print("after", r.status, body)
try:
    c2 = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    c2.request("GET", "/v1/whoami")
    r = c2.getresponse(); r.read(); print("new", r.status)
except Exception as e:
    print("new refused", type(e).__name__)
"#;
    let out = run(Command::new("python3")
        .args(["-c", script, &s.api])
        .arg(s.root_pem())
        .arg(&cert)
        .arg(&key)
        .arg(&clock));
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("before 200"), "{said}");
    assert!(
        said.contains(r#"after 401 {"error":{"code":"Unauthenticated","message":"the client certificate has expired"}}"#),
        "{said}"
    );
    // rustls checks validity at the handshake with the same (moved) clock.
    assert!(said.contains("new refused SSLError"), "{said}");
    // The refusal is in the trail (the clock moved back first, so the
    // administrator's own certificate is valid again).
    std::fs::write(&clock, "+0d\n").expect("clock");
    std::thread::sleep(Duration::from_millis(300));
    let (st, page) = s.curl("GET", "/v1/audit?limit=1000", None);
    assert_eq!(st, 200, "{page}");
    let refused = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| {
            e["result"]["code"] == "Unauthenticated"
                && e["identity"]["subject"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("brief")
        })
        .count();
    assert_eq!(refused, 1, "{page}");
}

/// `/health` on the public listener as (status, body).
fn public_health(s: &Server) -> (u16, Value) {
    let (st, _, body) = public(&format!("http://{}/health", s.public), &[]);
    (st, serde_json::from_slice(&body).expect("health json"))
}

/// Health names what fails as time passes: a CRL past its nextUpdate (the
/// builder told to wait an hour), then CAs within the expiry horizon; the
/// liveness probe answers throughout.
#[test]
fn health_fails_naming_a_stale_crl_and_a_ca_near_expiry() {
    let (s, clock) = server_on_a_movable_clock_with(|c| {
        assert!(c.contains("crl_refresh_secs = 60"), "{c}");
        c.replace("crl_refresh_secs = 60", "crl_refresh_secs = 3600")
    });
    let issuing = s.config.issuing_ca_id.clone();
    // The first CRLs (root, issuing, client-auth) are built at start.
    let start = Instant::now();
    let (st, h) = loop {
        let (st, h) = public_health(&s);
        let published = h["checks"]["crls_fresh"]["detail"].as_str().unwrap_or("");
        if published.starts_with("3 CRL(s)") || start.elapsed() > Duration::from_secs(10) {
            break (st, h);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(st, 200, "{h}");
    for check in ["store_writable", "ca_keys", "crls_fresh", "ca_expiry"] {
        assert_eq!(h["checks"][check]["ok"], true, "{check}: {h}");
    }

    // Two days on: every CRL (24 h) is past its nextUpdate.
    std::fs::write(&clock, "+2d\n").expect("clock");
    let (st, h) = public_health(&s);
    assert_eq!((st, h["status"].as_str()), (503, Some("degraded")), "{h}");
    assert_eq!(h["checks"]["crls_fresh"]["ok"], false, "{h}");
    let detail = h["checks"]["crls_fresh"]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(&format!("{issuing}: the CRL's nextUpdate passed")),
        "{h}"
    );
    assert_eq!(h["checks"]["ca_expiry"]["ok"], true, "{h}");

    // Ten days before the issuing CA's notAfter (init makes it for 1825
    // days): inside the 30-day horizon.
    std::fs::write(&clock, "+1815d\n").expect("clock");
    let (st, h) = public_health(&s);
    assert_eq!(st, 503, "{h}");
    assert_eq!(h["checks"]["ca_expiry"]["ok"], false, "{h}");
    let detail = h["checks"]["ca_expiry"]["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(&format!(
            "{issuing} (CN=Private Issuing CA 1,O=ca-server) expires in"
        )),
        "{h}"
    );
    let (st, _, body) = public(&format!("http://{}/livez", s.public), &[]);
    assert_eq!(
        (st, body.as_slice()),
        (200, br#"{"status":"alive"}"#.as_slice())
    );
}

/// The CRL fetched until its number passes `after`; returns (number, text).
fn next_crl(s: &Server, ca: &str, file: &Path, after: u64) -> (u64, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (st, _, body) = public(&crl_url(s, ca), &[]);
        assert_eq!(st, 200);
        std::fs::write(file, &body).expect("write");
        let n = crl_number(file);
        if n > after {
            let t = text(&openssl(&[
                "crl",
                "-inform",
                "DER",
                "-in",
                p(file),
                "-noout",
                "-text",
            ]));
            return (n, t);
        }
        assert!(Instant::now() < deadline, "no CRL after number {after}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// CRL hygiene (RFC 5280 §3.3, as ACM does): a revoked certificate that has
/// expired stays on the first CRL published after its expiry, then leaves;
/// a revoked certificate still valid stays. The CRL size follows live
/// revocations, not history.
#[test]
fn an_expired_certificate_leaves_the_crl_after_one_more_crl() {
    let (s, clock) = server_on_a_movable_clock_with(|c| {
        assert!(c.contains("crl_refresh_secs = 60"), "{c}");
        c.replace("crl_refresh_secs = 60", "crl_refresh_secs = 1")
    });
    let ca = s.config.issuing_ca_id.clone();
    let issue_for = |name: &str, days: u32| {
        let (st, v) = s.curl(
            "POST",
            "/v1/certificates/request",
            Some(&json!({"ca_id": ca, "names": [name], "validity_days": days,
                         "passphrase": "long enough passphrase"})),
        );
        assert_eq!(st, 201, "{v}");
        v["serial"].as_str().expect("serial").to_string()
    };
    let short = issue_for("short-lived.example", 1);
    let long = issue_for("long-lived.example", 90);
    for serial in [&short, &long] {
        let (st, v) = revoke(&s, serial, "KEY_COMPROMISE");
        assert_eq!(st, 200, "{v}");
    }
    let dir = s.tmp.path().to_path_buf();
    let crl = dir.join("hygiene.crl");
    fetch_crl_listing(&s, &ca, &short, &crl);
    fetch_crl_listing(&s, &ca, &long, &crl);
    // openssl prints serials in upper case.
    let (short, long) = (short.to_uppercase(), long.to_uppercase());
    let n0 = crl_number(&crl);

    // Two days on, the short-lived certificate has expired: the first CRL
    // published since still lists it.
    std::fs::write(&clock, "+2d\n").expect("clock");
    let (n1, t1) = next_crl(&s, &ca, &crl, n0);
    assert!(t1.contains(&short) && t1.contains(&long), "{t1}");
    // The next CRL does not; the still-valid one stays.
    std::fs::write(&clock, "+3d\n").expect("clock");
    let (_, t2) = next_crl(&s, &ca, &crl, n1);
    assert!(
        !t2.contains(&short),
        "an expired certificate stayed on the CRL: {t2}"
    );
    assert!(t2.contains(&long), "{t2}");
    // The certificate itself is still recorded as revoked.
    let (st, v) = s.curl(
        "GET",
        &format!("/v1/certificates/{}", short.to_lowercase()),
        None,
    );
    assert_eq!((st, v["status"].as_str()), (200, Some("REVOKED")), "{v}");
    assert!(
        s.log()
            .contains("expired certificates' entries left the CRL"),
        "{}",
        s.log()
    );
}
