//! Validations per second of a 3-certificate chain (root -> intermediate -> leaf),
//! P-256 and RSA-2048, by `ca_core::verify` and by rustls-webpki 0.103 on the same
//! chains in the same run. `cargo bench -p ca-core --bench verify`
//!
//! Beside them, the chain's two signature checks alone (aws-lc, the backend both
//! validators use) at the same rate: the floor any validator pays. What each
//! validator spends above it per chain is printed as its overhead.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ca_core::verify::{verify_chain, PeerName, Usage, VerifyOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SignatureAlgorithm,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

struct Chain {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    leaf: Vec<u8>,
}

/// One signature check, its inputs sliced out before the clock starts.
struct SignedBy {
    alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
    issuer_key: Vec<u8>,
    tbs: Vec<u8>,
    signature: Vec<u8>,
}

/// The chain's two checks: the leaf by the intermediate, the intermediate by the root.
fn signature_checks(c: &Chain, rsa: bool) -> [SignedBy; 2] {
    use der::{Decode, Encode};
    let decode = |der: &[u8]| x509_cert::Certificate::from_der(der).expect("bench certificate");
    let (root, int, leaf) = (decode(&c.root), decode(&c.intermediate), decode(&c.leaf));
    let alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = if rsa {
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256
    } else {
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1
    };
    let check = |child: &x509_cert::Certificate, issuer: &x509_cert::Certificate| SignedBy {
        alg,
        issuer_key: issuer
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec(),
        tbs: child.tbs_certificate.to_der().expect("tbs"),
        signature: child.signature.raw_bytes().to_vec(),
    };
    [check(&leaf, &int), check(&int, &root)]
}

fn signatures_only(checks: &[SignedBy; 2]) -> bool {
    checks.iter().all(|c| {
        aws_lc_rs::signature::UnparsedPublicKey::new(c.alg, black_box(&c.issuer_key))
            .verify(&c.tbs, &c.signature)
            .is_ok()
    })
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.use_authority_key_identifier_extension = true;
    p
}

fn chain(alg: &'static SignatureAlgorithm) -> Chain {
    let root_key = KeyPair::generate_for(alg).expect("root key");
    let root_params = ca_params("Bench Root");
    let root = root_params.self_signed(&root_key).expect("root");
    let root_issuer = Issuer::new(root_params, root_key);

    let int_key = KeyPair::generate_for(alg).expect("intermediate key");
    let int_params = ca_params("Bench Issuing CA");
    let intermediate = int_params
        .signed_by(&int_key, &root_issuer)
        .expect("intermediate");
    let int_issuer = Issuer::new(int_params, int_key);

    let leaf_key = KeyPair::generate_for(alg).expect("leaf key");
    let mut leaf_params = CertificateParams::new(vec!["bench.example".to_string()]).expect("leaf");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "bench.example");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf = leaf_params.signed_by(&leaf_key, &int_issuer).expect("leaf");
    Chain {
        root: root.der().to_vec(),
        intermediate: intermediate.der().to_vec(),
        leaf: leaf.der().to_vec(),
    }
}

/// Run `f` for ~`secs` after a warm-up, returning calls per second.
fn rate(secs: f64, mut f: impl FnMut() -> bool) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(300) {
        assert!(f(), "validation failed during warm-up");
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..16 {
            black_box(f());
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn ours(c: &Chain, opts: &VerifyOptions) -> bool {
    verify_chain(
        black_box(&c.leaf),
        std::slice::from_ref(&c.intermediate),
        std::slice::from_ref(&c.root),
        opts,
    )
    .is_ok()
}

fn theirs(c: &Chain, now: UnixTime) -> bool {
    let root = CertificateDer::from(c.root.as_slice());
    let anchors = match webpki::anchor_from_trusted_cert(&root) {
        Ok(a) => [a.to_owned()],
        Err(_) => return false,
    };
    let leaf = CertificateDer::from(black_box(c.leaf.as_slice()));
    let ee = match webpki::EndEntityCert::try_from(&leaf) {
        Ok(e) => e,
        Err(_) => return false,
    };
    let intermediates = [CertificateDer::from(c.intermediate.as_slice())];
    let name = match ServerName::try_from("bench.example") {
        Ok(n) => n,
        Err(_) => return false,
    };
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &intermediates,
        now,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .is_ok()
        && ee.verify_is_valid_for_subject_name(&name).is_ok()
}

fn main() {
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let mut opts = VerifyOptions::new(Usage::TlsServer, time::OffsetDateTime::now_utc());
    opts.peer_name = Some(PeerName::Dns("bench.example".into()));
    let now = UnixTime::now();

    println!("3-certificate chain validation (root -> intermediate -> leaf), {secs} s each, same process");
    println!(
        "{:<10} {:>11} {:>11} {:>12} {:>12} {:>15} {:>15}",
        "chain",
        "ca-core /s",
        "webpki /s",
        "ours/webpki",
        "2 sigs /s",
        "ours over µs",
        "webpki over µs"
    );
    for (label, alg, rsa) in [
        ("P-256", &rcgen::PKCS_ECDSA_P256_SHA256, false),
        ("RSA-2048", &rcgen::PKCS_RSA_SHA256, true),
    ] {
        let c = chain(alg);
        let checks = signature_checks(&c, rsa);
        let a = rate(secs, || ours(&c, &opts));
        let b = rate(secs, || theirs(&c, now));
        let floor = rate(secs, || signatures_only(&checks));
        // Microseconds per chain spent above the two signature checks.
        let over = |r: f64| 1e6 / r - 1e6 / floor;
        println!(
            "{label:<10} {a:>11.0} {b:>11.0} {:>12.2} {floor:>12.0} {:>15.1} {:>15.1}",
            a / b,
            over(a),
            over(b)
        );
    }
}
