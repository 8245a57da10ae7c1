//! The API's own TLS certificate is renewed by the server before it expires:
//! same names, from the issuing CA, served at once (also while running) and
//! kept on disk; a failed renewal never stops the server; a renewal cut short
//! by a crash is finished or dropped at the next start.

mod harness;

use std::path::Path;
use std::process::Command;

use der::{Decode, Encode};
use harness::server::server_bin;
use harness::{run, Server};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

/// The leaf the API serves, as seen by `openssl s_client` (with the admin's
/// client certificate), after checking that openssl validated the chain.
fn served_leaf(s: &Server) -> Vec<u8> {
    let admin = s.admin_dir();
    let out = run(Command::new("openssl")
        .args(["s_client", "-connect", &s.api, "-servername", "localhost"])
        .arg("-cert")
        .arg(admin.join("admin.pem"))
        .arg("-key")
        .arg(admin.join("admin.key"))
        .arg("-CAfile")
        .arg(s.root_pem())
        .args(["-verify_return_error", "-verify_hostname", "localhost"])
        .stdin(std::process::Stdio::null()));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "openssl s_client did not validate the API certificate:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    first_certificate(&text)
}

fn first_certificate(pem_text: &str) -> Vec<u8> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let end = "-----END CERTIFICATE-----";
    let start = pem_text.find(begin).expect("a certificate");
    let stop = pem_text[start..].find(end).expect("end of certificate") + start + end.len();
    ca_core::pem::decode("CERTIFICATE", &pem_text[start..stop]).expect("PEM")
}

fn file_leaf(s: &Server) -> Vec<u8> {
    first_certificate(&std::fs::read_to_string(s.dir.join("tls/server.pem")).expect("server.pem"))
}

fn lifetime_days(der: &[u8]) -> u64 {
    let c = Certificate::from_der(der).expect("certificate");
    let v = &c.tbs_certificate.validity;
    let secs = v.not_after.to_unix_duration() - v.not_before.to_unix_duration();
    secs.as_secs() / 86_400
}

fn sans(der: &[u8]) -> Vec<u8> {
    let c = Certificate::from_der(der).expect("certificate");
    let (_, san) = c
        .tbs_certificate
        .get::<SubjectAltName>()
        .expect("SAN decodes")
        .expect("SAN present");
    san.to_der().expect("encode")
}

fn renewals(s: &Server) -> usize {
    s.log().matches("renewed the API TLS certificate").count()
}

fn set_api_tls(dir: &Path, section: &str) {
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let text = match text.find("[api_tls]") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    std::fs::write(&path, format!("{text}\n[api_tls]\n{section}")).expect("config");
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn set_issuing_status(s: &Server, status: &str) {
    let path = format!("/v1/cas/{}", s.config.issuing_ca_id);
    let (st, v) = s.curl(
        "PATCH",
        &path,
        Some(&serde_json::json!({ "status": status })),
    );
    assert_eq!(st, 200, "{status}: {v}");
}

#[test]
fn the_api_certificate_is_renewed_before_it_expires() {
    let mut s = Server::init_with(&["--tls-days", "2"], &[]);
    s.start();
    let first = served_leaf(&s);
    assert_eq!(first, file_leaf(&s), "serves the certificate on disk");
    assert!(
        lifetime_days(&first) <= 2,
        "init honours --tls-days: {} days",
        lifetime_days(&first)
    );
    assert_eq!(renewals(&s), 0, "a fresh certificate is not due");
    let old_pair = (
        std::fs::read(s.dir.join("tls/server.pem")).expect("pem"),
        std::fs::read(s.dir.join("tls/server.key")).expect("key"),
    );

    // Due (fewer than renew_before_days left) while the issuing CA is disabled:
    // the renewal fails, and the server still starts with the current certificate.
    set_issuing_status(&s, "DISABLED");
    assert!(s.stop().success());
    set_api_tls(
        &s.dir,
        "validity_days = 30\nrenew_before_days = 10\ncheck_interval_secs = 1\n",
    );
    s.start();
    assert!(
        s.log().contains("renewing the API TLS certificate failed"),
        "{}",
        s.log()
    );
    assert_eq!(
        served_leaf(&s),
        first,
        "the current certificate stays served"
    );

    // Once the CA issues again, the running server renews at its next check
    // and new handshakes get the new certificate, without a restart.
    set_issuing_status(&s, "ACTIVE");
    let started = std::time::Instant::now();
    let second = loop {
        let leaf = served_leaf(&s);
        if leaf != first {
            break leaf;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "not renewed while running:\n{}",
            s.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(renewals(&s), 1, "renewed once:\n{}", s.log());
    assert_eq!(second, file_leaf(&s), "and stored");
    assert_eq!(sans(&second), sans(&first), "with the same names");
    let days = lifetime_days(&second);
    assert!((29..=30).contains(&days), "lifetime {days} days");
    assert_eq!(mode(&s.dir.join("tls/server.key")), 0o600);
    assert_eq!(mode(&s.dir.join("tls/server.pem")), 0o600);
    let (status, body) = s.curl("GET", "/v1/cas", None);
    assert_eq!(
        status, 200,
        "the API works over the new certificate: {body}"
    );

    // Not due again: a restart serves the same certificate.
    assert!(s.stop().success());
    s.start();
    assert_eq!(renewals(&s), 1, "no second renewal");
    assert_eq!(served_leaf(&s), second);

    // A crash while writing the new files: an incomplete pair is dropped.
    assert!(s.stop().success());
    std::fs::write(s.dir.join("tls/server.pem.new"), b"-----BEGIN CERT").expect("write");
    std::fs::write(s.dir.join("tls/server.key.new"), &old_pair.1[..40]).expect("write");
    s.start();
    assert!(s.log().contains("dropping an incomplete renewal"));
    assert!(!s.dir.join("tls/server.pem.new").exists());
    assert!(!s.dir.join("tls/server.key.new").exists());
    assert_eq!(served_leaf(&s), second, "the current pair stays");

    // A crash after both files were written, before any rename: the complete
    // pending pair is put in place. (The pair used here is the first, 2-day
    // one, which is due, so it is then renewed at once.)
    assert!(s.stop().success());
    std::fs::write(s.dir.join("tls/server.pem.new"), &old_pair.0).expect("write");
    std::fs::write(s.dir.join("tls/server.key.new"), &old_pair.1).expect("write");
    s.start();
    assert_eq!(
        s.log().matches("finishing an interrupted renewal").count(),
        1,
        "{}",
        s.log()
    );
    assert_eq!(renewals(&s), 2, "the finished 2-day pair was renewed");
    let third = served_leaf(&s);
    assert!(third != first && third != second);

    // A crash between the two renames (certificate replaced, key not yet):
    // the pending key matches the certificate, so the renewal is finished.
    assert!(s.stop().success());
    std::fs::write(s.dir.join("tls/server.pem"), &old_pair.0).expect("write");
    std::fs::write(s.dir.join("tls/server.key.new"), &old_pair.1).expect("write");
    s.start();
    assert_eq!(
        s.log().matches("finishing an interrupted renewal").count(),
        2
    );
    assert!(!s.dir.join("tls/server.key.new").exists());
    assert_eq!(renewals(&s), 3);
    let fourth = served_leaf(&s);
    assert!(fourth != first && fourth != third);
    assert_eq!(fourth, file_leaf(&s));
    let (status, _) = s.curl("GET", "/v1/cas", None);
    assert_eq!(status, 200);
}

#[test]
fn an_impossible_renewal_setting_is_refused_at_start() {
    let mut s = Server::init_with(&[], &[]);
    set_api_tls(&s.dir, "validity_days = 30\nrenew_before_days = 30\n");
    let out = run(Command::new(server_bin())
        .args(["serve", "--data-dir"])
        .arg(&s.dir)
        .args(["--api-addr", "127.0.0.1:0", "--public-addr", "127.0.0.1:0"]));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("renew_before_days"), "{err}");
    // A sound setting starts.
    set_api_tls(&s.dir, "validity_days = 30\nrenew_before_days = 7\n");
    s.start();
}
