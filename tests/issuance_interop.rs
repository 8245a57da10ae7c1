//! Chains issued by ca-core, checked by real relying parties: OpenSSL's
//! `verify` and `x509 -text`, and rustls-webpki, for every key type.

mod harness;

use std::fs;

use ca_core::cert::{issue, CertificateRequest};
use ca_core::csr::{parse_csr, CsrError};
use ca_core::keys::{KeyAlgorithm, KeyError};
use ca_core::profile::Profile;
use harness::pki::Hierarchy;
use harness::{fixture, run_program, text};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Good CSRs made by `openssl req` (fixtures/make-fixtures.sh).
const GOOD_CSRS: &[&str] = &[
    "p256-sha256.csr",
    "p384-sha256.csr",
    "p256-sha384.csr",
    "rsa2048.csr",
    "rsa4096.csr",
    "ed25519.csr",
    "p256-cn-only.csr",
    "p256-extras.csr",
    "p256-sha256.der",
];

#[test]
fn good_fixture_csrs_parse_and_prove_possession() {
    for name in GOOD_CSRS {
        let csr = parse_csr(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!csr.spki_der.is_empty(), "{name}");
    }
    let sans = parse_csr(&fixture("p256-extras.csr"))
        .unwrap()
        .requested_sans;
    assert_eq!(
        sans.len(),
        3,
        "SANs are read from a CSR that also asks for other extensions"
    );
}

#[test]
fn bad_fixture_csrs_are_refused_with_the_reason() {
    type Expectation = fn(&CsrError) -> bool;
    let cases: &[(&str, Expectation)] = &[
        ("empty.csr", |e| matches!(e, CsrError::Empty)),
        ("garbage.der", |e| matches!(e, CsrError::Malformed(_))),
        ("truncated.der", |e| matches!(e, CsrError::Malformed(_))),
        ("bad-pem.csr", |e| matches!(e, CsrError::Pem(_))),
        ("bad-signature.der", |e| {
            matches!(e, CsrError::BadSignature(_))
        }),
        ("rsa1024.csr", |e| {
            matches!(e, CsrError::Key(KeyError::WeakRsa(1024)))
        }),
        ("p521.csr", |e| {
            matches!(e, CsrError::Key(KeyError::UnsupportedCurve(_)))
        }),
    ];
    for (name, expected) in cases {
        let err = parse_csr(&fixture(name)).expect_err(name);
        assert!(expected(&err), "{name}: unexpected error {err:?}");
    }
    let huge = vec![b'A'; ca_core::csr::MAX_CSR_BYTES + 1];
    assert!(matches!(parse_csr(&huge), Err(CsrError::TooLarge { .. })));
}

fn webpki_verify(leaf: &[u8], chain: &[Vec<u8>], root: &[u8], usage: webpki::KeyUsage, name: &str) {
    let root = CertificateDer::from(root.to_vec());
    let anchor = webpki::anchor_from_trusted_cert(&root).expect("anchor");
    let leaf = CertificateDer::from(leaf.to_vec());
    let ee = webpki::EndEntityCert::try_from(&leaf).expect("end entity parses");
    let inters: Vec<CertificateDer<'_>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &inters,
        UnixTime::now(),
        usage,
        None,
        None,
    )
    .unwrap_or_else(|e| panic!("webpki rejected the chain: {e:?}"));
    let server_name = ServerName::try_from(name).expect("name");
    ee.verify_is_valid_for_subject_name(&server_name)
        .unwrap_or_else(|e| panic!("webpki name {name}: {e:?}"));
}

#[test]
fn chains_for_every_key_type_pass_openssl_and_webpki() {
    let dir = tempfile::tempdir().expect("tempdir");
    for alg in KeyAlgorithm::ALL {
        let h = Hierarchy::new(alg);
        let root_path = dir.path().join(format!("{alg}-root.pem"));
        let inter_path = dir.path().join(format!("{alg}-inter.pem"));
        fs::write(
            &root_path,
            ca_core::pem::encode("CERTIFICATE", h.root_der()),
        )
        .unwrap();
        fs::write(&inter_path, h.issuer.certificate.to_pem()).unwrap();
        let leaf_csrs = GOOD_CSRS.iter().map(|n| (*n, Profile::TlsServer)).chain([
            ("p256-client.csr", Profile::TlsClient),
            ("rsa2048.csr", Profile::TlsServerClient),
        ]);
        for (csr_name, profile) in leaf_csrs {
            let csr = parse_csr(&fixture(csr_name)).expect("csr");
            let req = CertificateRequest::from_csr(&csr, profile);
            let leaf = issue(
                &h.issuer,
                &h.issuer_key,
                &req,
                time::OffsetDateTime::now_utc(),
            )
            .unwrap_or_else(|e| panic!("{alg} {csr_name}: {e}"));
            let leaf_path = dir.path().join(format!("{alg}-{csr_name}-{profile}.pem"));
            fs::write(&leaf_path, leaf.to_pem()).unwrap();
            let (purpose, wusage, name) = match profile {
                Profile::TlsClient => (
                    "sslclient",
                    webpki::KeyUsage::client_auth(),
                    "alice.example.internal",
                ),
                _ => ("sslserver", webpki::KeyUsage::server_auth(), "localhost"),
            };
            let out = run_program(
                "openssl",
                &[
                    "verify",
                    "-x509_strict",
                    "-purpose",
                    purpose,
                    "-CAfile",
                    root_path.to_str().unwrap(),
                    "-untrusted",
                    inter_path.to_str().unwrap(),
                    leaf_path.to_str().unwrap(),
                ],
            );
            assert!(
                out.status.success(),
                "openssl verify {alg} {csr_name}: {}",
                text(&out)
            );
            if profile == Profile::TlsServerClient {
                let out = run_program(
                    "openssl",
                    &[
                        "verify",
                        "-purpose",
                        "sslclient",
                        "-CAfile",
                        root_path.to_str().unwrap(),
                        "-untrusted",
                        inter_path.to_str().unwrap(),
                        leaf_path.to_str().unwrap(),
                    ],
                );
                assert!(
                    out.status.success(),
                    "openssl verify sslclient {alg} {csr_name}: {}",
                    text(&out)
                );
            }
            let out = run_program(
                "openssl",
                &[
                    "x509",
                    "-noout",
                    "-text",
                    "-in",
                    leaf_path.to_str().unwrap(),
                ],
            );
            let dump = text(&out);
            assert!(
                out.status.success(),
                "openssl x509 -text {alg} {csr_name}: {dump}"
            );
            assert!(dump.contains("X509v3 Authority Key Identifier"), "{dump}");
            assert!(
                dump.contains("CA Issuers - URI:http://127.0.0.1:8080/ca/test.der"),
                "{dump}"
            );
            assert!(
                !dump.contains("Code Signing"),
                "a CSR's EKU request must not be honoured: {dump}"
            );
            let chain = h.issuer.chain_der();
            webpki_verify(&leaf.der, &chain[..1], h.root_der(), wusage, name);
            if profile == Profile::TlsServerClient {
                webpki_verify(
                    &leaf.der,
                    &chain[..1],
                    h.root_der(),
                    webpki::KeyUsage::client_auth(),
                    name,
                );
            }
        }
    }
}

#[test]
fn server_certificate_without_a_name_is_refused() {
    let h = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let csr = parse_csr(&fixture("p256-client.csr")).unwrap();
    let mut req = CertificateRequest::from_csr(&csr, Profile::TlsServer);
    req.sans
        .retain(|s| matches!(s, ca_core::SanEntry::Email(_)));
    let err = issue(
        &h.issuer,
        &h.issuer_key,
        &req,
        time::OffsetDateTime::now_utc(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("DNS or IP subjectAltName"),
        "{err}"
    );
}

#[test]
fn validity_is_capped_by_profile_and_issuer() {
    let h = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let csr = parse_csr(&fixture("p256-sha256.csr")).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let mut req = CertificateRequest::from_csr(&csr, Profile::TlsServer);
    req.validity_days = Some(10_000);
    let leaf = issue(&h.issuer, &h.issuer_key, &req, now).unwrap();
    // Backdated 5 minutes; the issuer (365 days) ends before the profile's
    // 398 days would, so the leaf ends exactly where its issuer does.
    let whole_now = now.replace_nanosecond(0).unwrap();
    assert_eq!(leaf.not_before, whole_now - time::Duration::minutes(5));
    assert_eq!(leaf.not_after, h.issuer.certificate.not_after);
    // A lifetime within both: exactly that many days, counting both ends
    // (RFC 5280's notAfter is inclusive).
    req.validity_days = Some(30);
    let leaf = issue(&h.issuer, &h.issuer_key, &req, now).unwrap();
    assert_eq!(
        leaf.not_after - leaf.not_before + time::Duration::SECOND,
        time::Duration::days(30)
    );
    // The intermediate lives 365 days: a sub-CA certificate asking for more
    // ends exactly where its issuer does.
    let mut sub = CertificateRequest::from_csr(&csr, Profile::SubordinateCa { path_len: Some(0) });
    sub.validity_days = Some(3000);
    let inter = issue(&h.issuer, &h.issuer_key, &sub, now).unwrap();
    assert_eq!(inter.not_after, h.issuer.certificate.not_after);
    req.validity_days = Some(0);
    assert!(matches!(
        issue(&h.issuer, &h.issuer_key, &req, now),
        Err(ca_core::cert::IssueError::InvalidValidity(0))
    ));
}

#[test]
fn externally_signed_intermediate_is_imported_only_when_it_matches() {
    use ca_core::cert::{
        create_intermediate, import_signed_ca, CaCertError, IntermediateParams, Issuer, IssuerUrls,
    };
    use ca_core::keys::{Signer, SoftwareKey};
    use std::str::FromStr;
    use x509_cert::name::Name;

    let now = time::OffsetDateTime::now_utc();
    // "External" root: another hierarchy whose root signs our pending CA's CSR.
    let external = Hierarchy::new(KeyAlgorithm::EcdsaP384);
    let root = external.issuer.parents[0].clone();
    let root_issuer = Issuer::new(root.clone(), vec![], IssuerUrls::default());
    let pending = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let subject = Name::from_str("CN=Pending Issuing CA,O=ca-core tests").unwrap();
    let csr_der = ca_core::csr::create_csr(&pending, &subject, &[]).unwrap();
    let csr = parse_csr(&csr_der).expect("our own CA CSR parses and proves possession");
    let params = IntermediateParams {
        subject: csr.subject.clone(),
        validity_days: Some(365),
        path_len: Some(0),
        name_constraints: None,
    };
    let signed = create_intermediate(
        &root_issuer,
        &external.root_key,
        &csr.spki_der,
        &params,
        now,
    )
    .unwrap();

    let imported = import_signed_ca(
        &signed.der,
        pending.public_key_der(),
        std::slice::from_ref(&root),
        now,
    )
    .unwrap();
    assert_eq!(imported.spki_der(), csr.spki_der);
    // The imported CA issues, and its bundle chains leaf → intermediate → root.
    let issuer = Issuer::new(imported, vec![root.clone()], IssuerUrls::default());
    let leaf_csr = parse_csr(&fixture("p256-sha256.csr")).unwrap();
    let leaf = issue(
        &issuer,
        &pending,
        &CertificateRequest::from_csr(&leaf_csr, Profile::TlsServer),
        now,
    )
    .unwrap();
    let bundle = ca_core::cert::CertificateBundle {
        leaf_der: leaf.der.clone(),
        chain_der: issuer.chain_der(),
    };
    assert_eq!(bundle.all_der().len(), 3);
    assert_eq!(
        bundle
            .to_pem()
            .matches("-----BEGIN CERTIFICATE-----")
            .count(),
        3
    );
    webpki_verify(
        &leaf.der,
        &issuer.chain_der()[..1],
        &root.der,
        webpki::KeyUsage::server_auth(),
        "localhost",
    );

    // A certificate for another key, a non-CA certificate, or one that does not chain is refused.
    let other = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let err = import_signed_ca(
        &signed.der,
        other.public_key_der(),
        std::slice::from_ref(&root),
        now,
    )
    .unwrap_err();
    assert!(matches!(err, CaCertError::KeyMismatch), "{err}");
    let err = import_signed_ca(
        &leaf.der,
        pending.public_key_der(),
        std::slice::from_ref(&root),
        now,
    )
    .unwrap_err();
    assert!(matches!(err, CaCertError::NotCa), "{err}");
    let stranger = Hierarchy::new(KeyAlgorithm::EcdsaP256);
    let err = import_signed_ca(
        &signed.der,
        pending.public_key_der(),
        &stranger.issuer.parents,
        now,
    )
    .unwrap_err();
    assert!(matches!(err, CaCertError::NotSignedBy(_)), "{err}");
}
