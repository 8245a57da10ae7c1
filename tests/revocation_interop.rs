//! CRLs and OCSP responses made by ca-core, checked by OpenSSL: `openssl crl
//! -verify`, `openssl verify -crl_check`, and `openssl ocsp` reading requests it
//! made itself and the responses we built for them (CA-signed and delegated).
//! No server runs here: bytes go through files.

mod harness;

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ca_core::cert::{issue, CertificateRequest, IssuedCertificate};
use ca_core::crl::{
    build_crl, build_crl_from_encoded, encode_revoked_entry, parse_crl, to_pem, CrlParams,
    RevocationReason, RevokedEntry,
};
use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};
use ca_core::names::SanEntry;
use ca_core::ocsp::{
    create_ocsp_signing_certificate, decode_get_request, malformed_request_response, parse_request,
    respond, CertStatusInput, IssuerHashes, Responder, ResponderIdentity, MAX_REQUEST_BYTES,
};
use ca_core::profile::Profile;
use ca_core::serial::Serial;
use harness::pki::Hierarchy;
use harness::{run_program, text};
use time::{Duration, OffsetDateTime};
use x509_cert::name::Name;

fn leaf(h: &Hierarchy, name: &str) -> IssuedCertificate {
    let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).expect("leaf key");
    let req = CertificateRequest {
        subject: Name::from_str(&format!("CN={name}")).expect("name"),
        spki_der: key.public_key_der().to_vec(),
        sans: vec![SanEntry::Dns(name.into())],
        profile: Profile::TlsServer,
        validity_days: None,
        name_constraints: None,
    };
    issue(&h.issuer, &h.issuer_key, &req, OffsetDateTime::now_utc()).expect("leaf")
}

fn write(dir: &Path, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, data).expect("write");
    p
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn params(n: u64) -> CrlParams {
    let now = OffsetDateTime::now_utc();
    CrlParams {
        crl_number: n,
        this_update: now - Duration::minutes(1),
        next_update: now + Duration::days(1),
    }
}

#[test]
fn openssl_accepts_crls_and_rejects_revoked_certificates() {
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Ed25519,
    ] {
        let h = Hierarchy::new(alg);
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let root_pem = h.issuer.parents[0].to_pem();
        let inter_pem = h.issuer.certificate.to_pem();
        let inter = write(d, "inter.pem", &inter_pem);
        let chain = write(d, "chain.pem", format!("{root_pem}{inter_pem}"));
        let good = leaf(&h, "good.example");
        let bad = leaf(&h, "revoked.example");
        let good_path = write(d, "good.pem", good.to_pem());
        let bad_path = write(d, "revoked.pem", bad.to_pem());

        let entries = vec![RevokedEntry {
            serial: bad.serial.clone(),
            revoked_at: OffsetDateTime::now_utc() - Duration::seconds(30),
            reason: RevocationReason::KeyCompromise,
        }];
        let der =
            build_crl(&h.issuer.certificate, &h.issuer_key, &params(5), &entries).expect("CRL");
        // The incremental path yields an equally acceptable CRL.
        let chunks: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| encode_revoked_entry(e).expect("entry"))
            .collect();
        let der_incr =
            build_crl_from_encoded(&h.issuer.certificate, &h.issuer_key, &params(6), &chunks)
                .expect("CRL from chunks");
        // The root's own (empty) CRL, for -crl_check_all through the sub-CA.
        let root_crl =
            build_crl(&h.issuer.parents[0], &h.root_key, &params(1), &[]).expect("root CRL");

        for (n, der) in [(5u64, &der), (6, &der_incr)] {
            let crl_pem = write(d, "crl.pem", to_pem(der));
            let crl_der = write(d, "crl.der", der);
            let out = run_program(
                "openssl",
                &[
                    "crl",
                    "-verify",
                    "-CAfile",
                    s(&inter),
                    "-in",
                    s(&crl_pem),
                    "-noout",
                ],
            );
            assert!(out.status.success(), "{alg} crl -verify: {}", text(&out));
            assert!(text(&out).contains("verify OK"), "{alg}: {}", text(&out));
            let out = run_program(
                "openssl",
                &[
                    "crl",
                    "-inform",
                    "DER",
                    "-in",
                    s(&crl_der),
                    "-noout",
                    "-text",
                ],
            );
            let t = text(&out);
            assert!(out.status.success(), "{alg}: {t}");
            assert!(t.contains("Version 2"), "{alg}: {t}");
            assert!(
                t.contains(&format!("X509v3 CRL Number: \n                {n}")),
                "{alg}: {t}"
            );
            assert!(t.contains("X509v3 Authority Key Identifier"), "{alg}: {t}");
            assert!(t.contains("Key Compromise"), "{alg}: {t}");
            assert!(
                t.contains(&bad.serial.to_hex().to_uppercase()),
                "{alg}: serial missing: {t}"
            );

            let verify = |cert: &Path, extra: &[&str]| {
                let mut args = vec!["verify", "-crl_check", "-CAfile", s(&chain)];
                args.extend_from_slice(extra);
                args.extend_from_slice(&["-CRLfile", s(&crl_pem), s(cert)]);
                run_program("openssl", &args)
            };
            let out = verify(&good_path, &[]);
            assert!(out.status.success(), "{alg} good: {}", text(&out));
            let out = verify(&bad_path, &[]);
            assert!(!out.status.success(), "{alg}: revoked certificate accepted");
            assert!(
                text(&out).contains("certificate revoked"),
                "{alg}: {}",
                text(&out)
            );
        }
        // Every CA on the path checked: the root's CRL clears the intermediate.
        let root_crl_pem = write(d, "root-crl.pem", to_pem(&root_crl));
        let crl_pem = write(d, "crl.pem", to_pem(&der));
        let out = run_program(
            "openssl",
            &[
                "verify",
                "-crl_check_all",
                "-CAfile",
                s(&chain),
                "-CRLfile",
                s(&crl_pem),
                "-CRLfile",
                s(&root_crl_pem),
                s(&good_path),
            ],
        );
        assert!(out.status.success(), "{alg} crl_check_all: {}", text(&out));

        // Our parser reads what we wrote, and checks its signature.
        let parsed = parse_crl(to_pem(&der).as_bytes()).expect("parse");
        parsed.verify_signature(&h.issuer.certificate).expect("sig");
        assert!(parsed.is_revoked(&bad.serial));
        assert!(!parsed.is_revoked(&good.serial));
        assert!(parsed.verify_signature(&h.issuer.parents[0]).is_err());
    }
}

/// `openssl ocsp` made the request; we answer it; `openssl ocsp` checks the answer.
struct OcspCase<'a> {
    dir: &'a Path,
    inter: PathBuf,
    chain: PathBuf,
    leaf: PathBuf,
}

impl OcspCase<'_> {
    fn request(&self, nonce: bool) -> Vec<u8> {
        let req = self.dir.join("req.der");
        let mut args = vec![
            "ocsp",
            "-issuer",
            s(&self.inter),
            "-cert",
            s(&self.leaf),
            "-reqout",
            s(&req),
        ];
        args.push(if nonce { "-nonce" } else { "-no_nonce" });
        let out = run_program("openssl", &args);
        assert!(out.status.success(), "{}", text(&out));
        fs::read(&req).expect("request")
    }

    /// Status line and full text, after checking signature and nonce.
    fn check(&self, resp: &[u8]) -> String {
        let resp_path = write(self.dir, "resp.der", resp);
        let req = self.dir.join("req.der");
        // With the original request: verifies the signature and the nonce.
        let out = run_program(
            "openssl",
            &[
                "ocsp",
                "-reqin",
                s(&req),
                "-respin",
                s(&resp_path),
                "-CAfile",
                s(&self.chain),
                // A relying party knows the issuer; CA-signed responses carry no certs.
                "-verify_other",
                s(&self.inter),
                "-resp_text",
            ],
        );
        let t1 = text(&out);
        assert!(out.status.success(), "{t1}");
        assert!(t1.contains("Response verify OK"), "{t1}");
        assert!(!t1.contains("Nonce Verify error"), "{t1}");
        // With the certificate: the per-certificate status summary.
        let out = run_program(
            "openssl",
            &[
                "ocsp",
                "-respin",
                s(&resp_path),
                "-issuer",
                s(&self.inter),
                "-cert",
                s(&self.leaf),
                "-CAfile",
                s(&self.chain),
                "-no_nonce",
            ],
        );
        let t2 = text(&out);
        assert!(out.status.success(), "{t2}");
        assert!(t2.contains("Response verify OK"), "{t2}");
        format!("{t1}\n{t2}")
    }
}

#[test]
fn openssl_ocsp_says_good_then_revoked_for_ca_and_delegated_responders() {
    for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
        let h = Hierarchy::new(alg);
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let root_pem = h.issuer.parents[0].to_pem();
        let inter_pem = h.issuer.certificate.to_pem();
        let leaf_cert = leaf(&h, "ocsp.example");
        let case = OcspCase {
            dir: d,
            inter: write(d, "inter.pem", &inter_pem),
            chain: write(d, "chain.pem", format!("{root_pem}{inter_pem}")),
            leaf: write(d, "leaf.pem", leaf_cert.to_pem()),
        };
        let ca = &h.issuer.certificate;
        let hashes = IssuerHashes::new(ca).expect("hashes");

        let delegate_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
        let delegate = create_ocsp_signing_certificate(
            ca,
            &h.issuer_key,
            delegate_key.public_key_der(),
            &Name::from_str("CN=Test OCSP Responder").expect("name"),
            7,
            OffsetDateTime::now_utc(),
        )
        .expect("delegated cert");
        let ca_identity = ResponderIdentity::ca(ca).expect("identity");
        let delegated_identity =
            ResponderIdentity::delegated(&delegate.der, ca).expect("delegated identity");
        let responders = [
            ("CA-signed", &ca_identity, &h.issuer_key as &dyn Signer),
            (
                "delegated",
                &delegated_identity,
                &delegate_key as &dyn Signer,
            ),
        ];

        for (label, identity, signer) in responders {
            let responder = Responder {
                identity,
                signer,
                issuer: &hashes,
                validity: Duration::hours(1),
            };
            for nonce in [true, false] {
                let req = case.request(nonce);
                let info = parse_request(&req).expect("openssl request parses");
                assert_eq!(info.cert_ids.len(), 1);
                assert_eq!(info.cert_ids[0].serial, leaf_cert.serial);
                assert!(hashes.matches(&info.cert_ids[0]), "{alg} {label}");
                assert_eq!(info.nonce.is_some(), nonce);

                let now = OffsetDateTime::now_utc();
                let good = respond(&req, &responder, |_| CertStatusInput::Good, now);
                let t = case.check(&good);
                assert!(t.contains("leaf.pem: good"), "{alg} {label}: {t}");
                assert!(t.contains("Next Update:"), "{alg} {label}: {t}");
                assert_eq!(t.contains("OCSP Nonce"), nonce, "{alg} {label}: {t}");
                if identity.is_delegated() {
                    assert!(
                        t.contains("CN = Test OCSP Responder")
                            || t.contains("CN=Test OCSP Responder"),
                        "{t}"
                    );
                }

                // After revocation.
                let revoked_at = now - Duration::seconds(10);
                let serial = leaf_cert.serial.clone();
                let lookup = |s: &Serial| {
                    if *s == serial {
                        CertStatusInput::Revoked {
                            time: revoked_at,
                            reason: RevocationReason::KeyCompromise,
                        }
                    } else {
                        CertStatusInput::Unknown
                    }
                };
                let revoked = respond(&req, &responder, lookup, now);
                let t = case.check(&revoked);
                assert!(t.contains("leaf.pem: revoked"), "{alg} {label}: {t}");
                assert!(t.contains("Reason: keyCompromise"), "{alg} {label}: {t}");
                assert!(t.contains("Revocation Time:"), "{alg} {label}: {t}");

                // Unknown serial (same issuer).
                let unknown = respond(&req, &responder, |_| CertStatusInput::Unknown, now);
                let t = case.check(&unknown);
                assert!(t.contains("leaf.pem: unknown"), "{alg} {label}: {t}");
            }
        }

        // GET form of the same request decodes to the same bytes.
        let req = case.request(false);
        let out = run_program("openssl", &["base64", "-A", "-in", s(&d.join("req.der"))]);
        let b64 = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let url = b64
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(decode_get_request(&url).expect("GET decodes"), req);
    }
}

#[test]
fn malformed_ocsp_requests_get_malformed_request_and_openssl_reads_it() {
    let h = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let ca = &h.issuer.certificate;
    let identity = ResponderIdentity::ca(ca).expect("identity");
    let hashes = IssuerHashes::new(ca).expect("hashes");
    let responder = Responder {
        identity: &identity,
        signer: &h.issuer_key,
        issuer: &hashes,
        validity: Duration::hours(1),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let leaf_cert = leaf(&h, "m.example");
    let inter = write(d, "inter.pem", ca.to_pem());
    let leaf_path = write(d, "leaf.pem", leaf_cert.to_pem());
    let req_path = d.join("req.der");
    let out = run_program(
        "openssl",
        &[
            "ocsp",
            "-issuer",
            s(&inter),
            "-cert",
            s(&leaf_path),
            "-reqout",
            s(&req_path),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let req = fs::read(&req_path).expect("req");

    let now = OffsetDateTime::now_utc();
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        vec![0x30; MAX_REQUEST_BYTES + 1],
        vec![0xff; 1 << 20],
    ];
    inputs.extend((0..req.len()).map(|cut| req[..cut].to_vec()));
    let mut trailing = req.clone();
    trailing.extend_from_slice(&[0, 0]);
    inputs.push(trailing);
    for bad in &inputs {
        assert_eq!(
            respond(bad, &responder, |_| CertStatusInput::Good, now),
            malformed_request_response(),
            "input of {} bytes",
            bad.len()
        );
    }
    // Byte flips never panic; whatever still parses gets a signed or status answer.
    for i in 0..req.len() {
        let mut m = req.clone();
        m[i] ^= 0x55;
        let resp = respond(&m, &responder, |_| CertStatusInput::Good, now);
        assert!(!resp.is_empty());
    }
    let resp = write(d, "malformed.der", malformed_request_response());
    let out = run_program("openssl", &["ocsp", "-respin", s(&resp), "-resp_text"]);
    let t = text(&out);
    assert!(t.to_lowercase().contains("malformedrequest"), "{t}");
}

/// ca-core's own validator, given the CRLs, refuses a leaf whose issuing sub-CA
/// its parent has revoked, though the leaf itself is not listed anywhere.
#[test]
fn ca_core_validator_treats_certificates_of_a_revoked_sub_ca_as_revoked() {
    use ca_core::verify::{verify_chain, PeerName, Usage, VerifyOptions};
    let h = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let leaf = leaf(&h, "leaf.example.internal");
    let inter = &h.issuer.certificate;
    let root = &h.issuer.parents[0];
    let sub_crl = build_crl(inter, &h.issuer_key, &params(1), &[]).expect("sub-CA CRL");
    let clean_root_crl = build_crl(root, &h.root_key, &params(1), &[]).expect("root CRL");
    let revoked_sub = RevokedEntry {
        serial: inter.serial(),
        revoked_at: OffsetDateTime::now_utc() - Duration::seconds(30),
        reason: RevocationReason::CaCompromise,
    };
    let revoking_root_crl =
        build_crl(root, &h.root_key, &params(2), &[revoked_sub]).expect("root CRL");
    let mut opts = VerifyOptions::new(Usage::TlsServer, OffsetDateTime::now_utc());
    opts.peer_name = Some(PeerName::Dns("leaf.example.internal".into()));
    opts.crls = vec![sub_crl.clone(), clean_root_crl];
    verify_chain(
        &leaf.der,
        std::slice::from_ref(&inter.der),
        std::slice::from_ref(&root.der),
        &opts,
    )
    .unwrap_or_else(|e| panic!("with clean CRLs the chain is valid: {e}"));
    opts.crls = vec![sub_crl, revoking_root_crl];
    let err = verify_chain(
        &leaf.der,
        std::slice::from_ref(&inter.der),
        std::slice::from_ref(&root.der),
        &opts,
    )
    .expect_err("the revoked sub-CA's leaf must be refused");
    assert!(err.to_string().to_lowercase().contains("revoked"), "{err}");
}
