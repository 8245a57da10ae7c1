//! Validations per second of a 3-certificate chain (root -> intermediate -> leaf),
//! P-256 and RSA-2048, by `ca_core::verify` and by rustls-webpki 0.103 on the same
//! chains in the same run. `cargo bench -p ca-core --bench verify`
//!
//! Beside them, the chain's two signature checks alone (aws-lc, the backend both
//! validators use) at the same rate: the floor any validator pays. What each
//! validator spends above it per chain is printed as its overhead.
//!
//! ca-core is timed twice: explaining (every check recorded with its text, the
//! default) and with `VerifyOptions::explain` off (the verdict only, as webpki).
//!
//! `BENCH_SECS` (default 2) is each contender's time per chain, spent in `BENCH_ROUNDS`
//! (default 15) interleaved rounds; `BENCH_ONLY=ca-core|verdict|webpki|floor` runs one
//! alone, for a profiler.

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

/// Calls per second of each contender, measured in interleaved rounds so that the
/// shared machine's drift lands on all of them alike; each figure is the median
/// over the rounds (`rounds` rounds of `secs / rounds` seconds each).
fn rates<const N: usize>(secs: f64, rounds: usize, fs: [&mut dyn FnMut() -> bool; N]) -> [f64; N] {
    let mut fs = fs;
    for f in fs.iter_mut() {
        let warm = Instant::now();
        while warm.elapsed() < Duration::from_millis(200) {
            assert!(f(), "validation failed during warm-up");
        }
    }
    let slice = secs / rounds as f64;
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(rounds));
    for _ in 0..rounds {
        for (f, out) in fs.iter_mut().zip(samples.iter_mut()) {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed().as_secs_f64() < slice {
                for _ in 0..16 {
                    black_box(f());
                }
                n += 16;
            }
            out.push(n as f64 / start.elapsed().as_secs_f64());
        }
    }
    samples.map(|mut v| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    })
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
    let mut explained = VerifyOptions::new(Usage::TlsServer, time::OffsetDateTime::now_utc());
    explained.peer_name = Some(PeerName::Dns("bench.example".into()));
    let verdict_only = VerifyOptions {
        explain: false,
        ..explained.clone()
    };
    let now = UnixTime::now();
    let rounds = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&r: &usize| r > 0)
        .unwrap_or(15);
    let only = std::env::var("BENCH_ONLY").ok();

    println!(
        "3-certificate chain validation (root -> intermediate -> leaf), {secs} s each, \
         same process, in {rounds} interleaved rounds (median)"
    );
    println!(
        "ca-core explained: every check recorded with its text (the default); \
         verdict only: VerifyOptions::explain = false, as webpki gives"
    );
    println!(
        "{:<10} {:>8} {:>12} {:>6} {:>12} {:>12} {:>12} {:>14} {:>13} {:>10}",
        "chain",
        "webpki/s",
        "explained/s",
        "ratio",
        "verdict/s",
        "ratio",
        "2 sigs /s",
        "µs over: expl.",
        "verdict only",
        "webpki"
    );
    for (label, alg, rsa) in [
        ("P-256", &rcgen::PKCS_ECDSA_P256_SHA256, false),
        ("RSA-2048", &rcgen::PKCS_RSA_SHA256, true),
    ] {
        let c = chain(alg);
        let checks = signature_checks(&c, rsa);
        if let Some(only) = only.as_deref() {
            // One contender alone, for a profiler: `BENCH_ONLY=ca-core perf record ...`.
            let [r] = match only {
                "ca-core" => rates(secs, 1, [&mut || ours(&c, &explained)]),
                "verdict" => rates(secs, 1, [&mut || ours(&c, &verdict_only)]),
                "webpki" => rates(secs, 1, [&mut || theirs(&c, now)]),
                _ => rates(secs, 1, [&mut || signatures_only(&checks)]),
            };
            println!("{label:<10} {only}: {r:.0}/s");
            continue;
        }
        let [a, v, b, floor] = rates(
            secs,
            rounds,
            [
                &mut || ours(&c, &explained),
                &mut || ours(&c, &verdict_only),
                &mut || theirs(&c, now),
                &mut || signatures_only(&checks),
            ],
        );
        // Microseconds per chain spent above the two signature checks.
        let over = |r: f64| 1e6 / r - 1e6 / floor;
        println!(
            "{label:<10} {b:>8.0} {a:>12.0} {:>6.2} {v:>12.0} {:>12.2} {floor:>12.0} {:>14.1} {:>13.1} {:>10.1}",
            a / b,
            v / b,
            over(a),
            over(v),
            over(b)
        );
    }
}
