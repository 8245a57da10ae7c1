//! What a relying party does with revocation: openssl and curl against the
//! public listener, and the files it keeps. Shared by the revocation tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{core_csr, run, Server};

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

pub fn openssl(args: &[&str]) -> Output {
    run(Command::new("openssl").args(args))
}

/// curl on the public listener: (status, content type, body).
pub fn public(url: &str, extra: &[&str]) -> (u16, String, Vec<u8>) {
    let tmp = tempfile::NamedTempFile::new().expect("tmp");
    let out = run(Command::new("curl")
        .args(["-sS", "-o"])
        .arg(tmp.path())
        .args(["-w", "%{http_code} %{content_type}"])
        .args(extra)
        .arg(url));
    // 55 (send failure): the server answered an oversized body without
    // reading all of it, and closed; the answer itself arrived.
    assert!(
        out.status.success() || out.status.code() == Some(55),
        "curl {url}: {}",
        text(&out)
    );
    let meta = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, ctype) = meta.split_once(' ').unwrap_or((&meta, ""));
    (
        status.parse().unwrap_or(0),
        ctype.to_string(),
        std::fs::read(tmp.path()).expect("body"),
    )
}

pub fn issue(s: &Server, ca_id: &str, dns: &str) -> Value {
    let (st, v) = s.curl(
        "POST",
        "/v1/certificates",
        Some(&json!({"csr": core_csr(dns), "ca_id": ca_id})),
    );
    assert_eq!(st, 201, "{v}");
    v
}

pub fn revoke(s: &Server, serial: &str, reason: &str) -> (u16, Value) {
    s.curl(
        "POST",
        &format!("/v1/certificates/{serial}/revoke"),
        Some(&json!({ "reason": reason })),
    )
}

pub fn crl_url(s: &Server, ca_id: &str) -> String {
    format!("http://{}/crl/{ca_id}.crl", s.public)
}

/// The CRL number of a DER CRL file.
pub fn crl_number(file: &Path) -> u64 {
    let out = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(file),
        "-noout",
        "-crlnumber",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    let hex = t.trim().trim_start_matches("crlNumber=0x");
    u64::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("crl number in {t:?}"))
}

/// Fetch the CRL until it lists `serial` (the builder runs shortly after a revocation).
pub fn fetch_crl_listing(s: &Server, ca_id: &str, serial: &str, file: &Path) {
    let start = Instant::now();
    loop {
        let (st, _, body) = public(&crl_url(s, ca_id), &[]);
        assert_eq!(st, 200);
        std::fs::write(file, &body).expect("write");
        let out = openssl(&["crl", "-inform", "DER", "-in", p(file), "-noout", "-text"]);
        if text(&out).contains(&serial.to_ascii_uppercase()) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "CRL never listed {serial}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Files {
    pub dir: PathBuf,
    /// The issuing CA's certificate.
    pub issuer: PathBuf,
    /// Issuing CA and root: what a relying party trusts and can chain with.
    pub chain: PathBuf,
    pub root: PathBuf,
}

impl Files {
    pub fn new(s: &Server, ca_id: &str, v: &Value) -> Files {
        let dir = s.tmp.path().join(format!("f-{ca_id}"));
        std::fs::create_dir_all(&dir).expect("dir");
        let (st, _, issuer) = public(&format!("http://{}/ca/{ca_id}.pem", s.public), &[]);
        assert_eq!(st, 200);
        let issuer_path = dir.join("issuer.pem");
        std::fs::write(&issuer_path, issuer).expect("write");
        let chain = dir.join("chain.pem");
        std::fs::write(&chain, v["certificate_chain"].as_str().expect("chain")).expect("write");
        Files {
            dir,
            issuer: issuer_path,
            chain,
            root: s.root_pem(),
        }
    }

    pub fn leaf(&self, name: &str, v: &Value) -> PathBuf {
        let f = self.dir.join(format!("{name}.pem"));
        std::fs::write(&f, v["certificate"].as_str().expect("certificate")).expect("write");
        f
    }

    /// `openssl ocsp -url` (POST) for a certificate (or `-serial`), verified
    /// against the chain; returns the combined output.
    pub fn ocsp(&self, url: &str, target: &[&str], nonce: bool) -> String {
        let mut args = vec!["ocsp", "-issuer", p(&self.issuer)];
        args.extend_from_slice(target);
        args.extend_from_slice(&["-url", url, "-CAfile", p(&self.chain)]);
        args.push(if nonce { "-nonce" } else { "-no_nonce" });
        let out = openssl(&args);
        let t = text(&out);
        assert!(out.status.success(), "{t}");
        assert!(t.contains("Response verify OK"), "{t}");
        assert!(!t.contains("WARNING"), "{t}");
        assert!(!t.contains("Nonce Verify error"), "{t}");
        t
    }
}

pub fn b64(data: &[u8]) -> String {
    use base64ct::{Base64, Encoding};
    Base64::encode_string(data)
}

pub fn url_escape(s: &str) -> String {
    s.replace('%', "%25")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}
