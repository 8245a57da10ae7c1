//! What the OCSP responder and CRLs answer: issuers, signer, cache headers.

use std::process::Command;
use std::time::Duration;

use crate::harness::relying::*;
use crate::harness::{run, Server};
use serde_json::json;

/// OCSP over HTTP says `unauthorized` (RFC 5019 2.2.3) when asked, at one
/// CA's URL, about another CA's certificate, or at the URL of no CA.
#[test]
fn ocsp_answers_unauthorized_for_issuers_it_does_not_serve() {
    let s = Server::start_new();
    let ca = s.config.issuing_ca_id.clone();
    let leaf = issue(&s, &ca, "asked-elsewhere.example");
    let f = Files::new(&s, &ca, &leaf);
    let leaf_pem = f.leaf("leaf", &leaf);
    let ask = |ca_in_url: &str| {
        let url = format!("http://{}/ocsp/{ca_in_url}", s.public);
        text(&openssl(&[
            "ocsp",
            "-issuer",
            p(&f.issuer),
            "-cert",
            p(&leaf_pem),
            "-url",
            &url,
            "-no_nonce",
        ]))
    };
    // Positive control: the right URL answers good.
    assert!(ask(&ca).contains(": good"), "{}", ask(&ca));
    let root = s.config.root_ca_id.clone();
    for wrong in [root.as_str(), "ca-0000000000000000"] {
        let t = ask(wrong);
        assert!(
            t.contains("Responder Error: unauthorized (6)"),
            "{wrong}: {t}"
        );
    }
}

#[test]
fn the_ca_itself_signs_ocsp_when_configured() {
    let mut s = Server::start_new();
    s.stop();
    let path = s.dir.join("config.toml");
    let cfg = std::fs::read_to_string(&path).expect("config");
    assert!(cfg.contains("ocsp_signer = \"delegated\""), "{cfg}");
    std::fs::write(
        &path,
        cfg.replace("ocsp_signer = \"delegated\"", "ocsp_signer = \"ca\""),
    )
    .expect("write");
    s.start();
    let ca = s.config.issuing_ca_id.clone();
    let leaf = issue(&s, &ca, "ca-signed.example");
    let f = Files::new(&s, &ca, &leaf);
    let leaf_pem = f.leaf("leaf", &leaf);
    let url = format!("http://{}/ocsp/{ca}", s.public);
    let t = f.ocsp(&url, &["-cert", p(&leaf_pem), "-resp_text"], true);
    assert!(t.contains(&format!("{}: good", p(&leaf_pem))), "{t}");
    // No responder certificate travels with a CA-signed response.
    assert!(!t.contains("OCSP Responder"), "{t}");
}

/// curl a public URL: (status, lower-cased headers, body).
fn public_with_headers(url: &str, extra: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let out = run(Command::new("curl")
        .args(["-sS", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"])
        .args(extra)
        .arg(url));
    assert!(out.status.success(), "curl {url}: {}", text(&out));
    let headers = std::fs::read_to_string(&head)
        .expect("headers")
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (status, headers, std::fs::read(&body).unwrap_or_default())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// CRLs carry an ETag and may be cached up to their nextUpdate; a conditional
/// GET with the current ETag gets 304 and no body, and a new CRL (after a
/// revocation) a new ETag. OCSP answers to GET may be cached a short,
/// configured time; answers to POST not at all.
#[test]
fn crls_and_ocsp_carry_cache_headers_and_crls_answer_conditional_gets() {
    let mut s = Server::init_with(&[], &[]);
    let conf = s.dir.join("config.toml");
    let c = std::fs::read_to_string(&conf).expect("config");
    assert!(c.contains("ocsp_max_age_secs = 300"), "{c}");
    std::fs::write(
        &conf,
        c.replace("ocsp_max_age_secs = 300", "ocsp_max_age_secs = 120"),
    )
    .expect("config");
    s.start();
    let ca = s.config.issuing_ca_id.clone();
    let url = crl_url(&s, &ca);
    // Start-up may sign a CRL twice (the builder's first pass and a first
    // request); wait until the served one stays put.
    let mut last = String::new();
    let (st, h, body) = loop {
        let (st, h, body) = public_with_headers(&url, &[]);
        let tag = header(&h, "etag").to_string();
        if tag == last {
            break (st, h, body);
        }
        last = tag;
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(st, 200);
    assert!(!body.is_empty());
    let etag = header(&h, "etag").to_string();
    assert!(
        etag.starts_with(&format!("\"{ca}-")) && etag.ends_with('"'),
        "{h:?}"
    );
    let cc = header(&h, "cache-control");
    let max_age: i64 = cc
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no max-age in {cc:?}"));
    // Up to nextUpdate: the CRL lives 24 h, so close to 86400 s now.
    assert!((86_000..=86_400).contains(&max_age), "{cc}");
    assert!(header(&h, "expires").ends_with(" GMT"), "{h:?}");
    assert!(header(&h, "last-modified").ends_with(" GMT"), "{h:?}");
    // The PEM form is another representation: another ETag.
    let (_, hp, _) = public_with_headers(&format!("{url}?format=pem"), &[]);
    assert_eq!(
        header(&hp, "etag"),
        format!("{}-pem\"", etag.trim_end_matches('"'))
    );

    // Conditional GET: 304, no body; a stale or other tag gets the CRL.
    let inm = format!("If-None-Match: {etag}");
    let (st, h2, body) = public_with_headers(&url, &["-H", &inm]);
    assert_eq!((st, body.len()), (304, 0), "{h2:?}");
    assert_eq!(header(&h2, "etag"), etag);
    let (st, _, body) = public_with_headers(&url, &["-H", "If-None-Match: \"other\""]);
    assert_eq!(st, 200);
    assert!(!body.is_empty());

    // A revocation makes a new CRL, with a new tag: the old one no longer matches.
    let leaf = issue(&s, &ca, "cached.example");
    let serial = leaf["serial"].as_str().expect("serial").to_string();
    let (st, v) = revoke(&s, &serial, "KEY_COMPROMISE");
    assert_eq!(st, 200, "{v}");
    let f = Files::new(&s, &ca, &leaf);
    fetch_crl_listing(&s, &ca, &serial, &f.dir.join("new.crl"));
    let (st, h3, body) = public_with_headers(&url, &["-H", &inm]);
    assert_eq!(st, 200, "{h3:?}");
    assert!(!body.is_empty());
    assert_ne!(header(&h3, "etag"), etag);

    // OCSP: GET cacheable for the configured 120 s; POST not cacheable.
    let leaf_pem = f.leaf("cached", &leaf);
    let req = f.dir.join("req.der");
    let out = openssl(&[
        "ocsp",
        "-issuer",
        p(&f.issuer),
        "-cert",
        p(&leaf_pem),
        "-no_nonce",
        "-reqout",
        p(&req),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let req_der = std::fs::read(&req).expect("req");
    let ocsp_url = format!("http://{}/ocsp/{ca}", s.public);
    let (st, h, _) =
        public_with_headers(&format!("{ocsp_url}/{}", url_escape(&b64(&req_der))), &[]);
    assert_eq!(st, 200);
    assert_eq!(
        header(&h, "cache-control"),
        "max-age=120, public, no-transform, must-revalidate"
    );
    let post_body = format!("@{}", p(&req));
    let (st, h, _) = public_with_headers(
        &ocsp_url,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/ocsp-request",
            "--data-binary",
            &post_body,
        ],
    );
    assert_eq!((st, header(&h, "cache-control")), (200, "no-cache"));
}

/// A CA made with `"ocsp": false` (Let's Encrypt's choice): what it issues
/// names its CRL and no OCSP responder, its responder answers `unauthorized`,
/// and its CRL serves as usual.
#[test]
fn a_ca_without_ocsp_issues_no_ocsp_url_and_its_responder_refuses() {
    let s = Server::start_new();
    let root = s.config.root_ca_id.clone();
    let (st, sub) = s.curl(
        "POST",
        "/v1/cas",
        Some(&json!({"type": "SUBORDINATE", "subject": "CN=CRL-only CA", "parent_ca_id": root, "path_len": 0, "ocsp": false})),
    );
    assert_eq!(st, 201, "{sub}");
    assert_eq!(sub["ocsp"], false, "{sub}");
    let ca = sub["id"].as_str().expect("id").to_string();
    let leaf = issue(&s, &ca, "crl-only.example");
    let f = Files::new(&s, &ca, &leaf);
    let leaf_pem = f.leaf("crl-only", &leaf);
    let t = text(&openssl(&["x509", "-in", p(&leaf_pem), "-noout", "-text"]));
    assert!(t.contains(&crl_url(&s, &ca)), "{t}");
    assert!(
        !t.contains("OCSP - URI"),
        "an OCSP URL in a CRL-only CA's certificate: {t}"
    );
    assert!(t.contains("CA Issuers - URI"), "{t}");
    // A CA with OCSP (init's issuing CA) still names its responder.
    let other = issue(&s, &s.config.issuing_ca_id, "with-ocsp.example");
    let fo = Files::new(&s, &s.config.issuing_ca_id, &other);
    let t = text(&openssl(&[
        "x509",
        "-in",
        p(&fo.leaf("with-ocsp", &other)),
        "-noout",
        "-text",
    ]));
    assert!(t.contains("OCSP - URI"), "{t}");
    // Asked anyway, the responder is not authoritative for it.
    let url = format!("http://{}/ocsp/{ca}", s.public);
    let t = text(&openssl(&[
        "ocsp",
        "-issuer",
        p(&f.issuer),
        "-cert",
        p(&leaf_pem),
        "-url",
        &url,
        "-no_nonce",
    ]));
    assert!(t.contains("Responder Error: unauthorized (6)"), "{t}");
    // Revocation works through the CRL.
    let serial = leaf["serial"].as_str().expect("serial").to_string();
    let (st, v) = revoke(&s, &serial, "KEY_COMPROMISE");
    assert_eq!(st, 200, "{v}");
    fetch_crl_listing(&s, &ca, &serial, &f.dir.join("crl-only.crl"));
}
