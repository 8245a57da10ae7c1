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
//! Both validators get their trust anchor prepared once, as a service validating
//! many chains holds it (webpki's `TrustAnchor`, ca-core's `TrustAnchors`, which
//! also keeps the anchor's public key parsed, and the keys of the last
//! intermediates it validated through); ca-core's `verify_chain`, which
//! decodes the anchor on every call, is timed beside them, and so is a second
//! floor with both issuers' keys parsed once.
//!
//! `BENCH_SECS` (default 2) is each contender's time per chain, spent in `BENCH_ROUNDS`
//! (default 15) interleaved rounds; `BENCH_ONLY=ca-core|verdict|per-call|webpki|floor`
//! runs one alone, for a profiler, and `BENCH_ALG=P-256|RSA-2048` one key type.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ca_core::verify::{verify_chain, PeerName, TrustAnchors, Usage, VerifyOptions};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SignatureAlgorithm,
};
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};

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

/// The same two checks with both issuers' keys parsed once beforehand, as
/// `TrustAnchors` keeps them: the floor for a validator that may do that.
fn signatures_keys_parsed(
    checks: &[SignedBy; 2],
    int_key: &aws_lc_rs::signature::ParsedPublicKey,
    root_key: &aws_lc_rs::signature::ParsedPublicKey,
) -> bool {
    let [leaf_by_int, int_by_root] = checks;
    int_key
        .verify_sig(&leaf_by_int.tbs, &leaf_by_int.signature)
        .is_ok()
        && root_key
            .verify_sig(&int_by_root.tbs, &int_by_root.signature)
            .is_ok()
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

/// ca-core against anchors decoded once (`TrustAnchors`), as a service
/// validating many chains holds them.
fn ours(c: &Chain, anchors: &TrustAnchors<'_>, opts: &VerifyOptions) -> bool {
    anchors
        .verify(
            black_box(&c.leaf),
            std::slice::from_ref(&c.intermediate),
            opts,
        )
        .is_ok()
}

/// ca-core decoding the root on every call (`verify_chain`).
fn ours_anchor_per_call(c: &Chain, opts: &VerifyOptions) -> bool {
    verify_chain(
        black_box(&c.leaf),
        std::slice::from_ref(&c.intermediate),
        std::slice::from_ref(&c.root),
        opts,
    )
    .is_ok()
}

/// webpki against anchors made once, as rustls's `RootCertStore` holds them.
fn theirs(c: &Chain, anchors: &[TrustAnchor<'_>], now: UnixTime) -> bool {
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
        anchors,
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
    let alg_only = std::env::var("BENCH_ALG").ok();
    if let Some(a) = alg_only
        .as_deref()
        .filter(|a| !["P-256", "RSA-2048"].contains(a))
    {
        eprintln!("BENCH_ALG={a}: not P-256 or RSA-2048; nothing to measure");
        std::process::exit(2);
    }

    println!(
        "3-certificate chain validation (root -> intermediate -> leaf), {secs} s each, \
         same process, in {rounds} interleaved rounds (median). Both validators hold \
         their trust anchor prepared once (webpki: TrustAnchor; ca-core: TrustAnchors, \
         which also keeps the anchor's key and recent intermediates' keys parsed); \
         ca-core's verify_chain, which \
         decodes the anchor on every call, is timed beside them."
    );
    println!(
        "Floors: the chain's two signature checks alone, with both keys parsed per \
         call (all webpki can do: its API takes key bytes) and with both issuers' keys \
         parsed once. 'above floor' is each one's time per chain above its own floor."
    );
    for (label, alg, rsa) in [
        ("P-256", &rcgen::PKCS_ECDSA_P256_SHA256, false),
        ("RSA-2048", &rcgen::PKCS_RSA_SHA256, true),
    ] {
        if alg_only.as_deref().is_some_and(|a| a != label) {
            continue;
        }
        let c = chain(alg);
        let checks = signature_checks(&c, rsa);
        let parsed = |check: &SignedBy| {
            aws_lc_rs::signature::ParsedPublicKey::new(check.alg, check.issuer_key.as_slice())
                .expect("bench issuer key")
        };
        let (int_key, root_key) = (parsed(&checks[0]), parsed(&checks[1]));
        let ours_anchors = TrustAnchors::new(std::slice::from_ref(&c.root));
        let root_der = CertificateDer::from(c.root.as_slice());
        let their_anchors = [webpki::anchor_from_trusted_cert(&root_der)
            .expect("bench root as a webpki anchor")
            .to_owned()];
        if let Some(only) = only.as_deref() {
            // One contender alone, for a profiler: `BENCH_ONLY=ca-core perf record ...`.
            let [r] = match only {
                "ca-core" => rates(secs, 1, [&mut || ours(&c, &ours_anchors, &explained)]),
                "verdict" => rates(secs, 1, [&mut || ours(&c, &ours_anchors, &verdict_only)]),
                "per-call" => rates(secs, 1, [&mut || ours_anchor_per_call(&c, &verdict_only)]),
                "webpki" => rates(secs, 1, [&mut || theirs(&c, &their_anchors, now)]),
                _ => rates(secs, 1, [&mut || signatures_only(&checks)]),
            };
            println!("{label:<10} {only}: {r:.0}/s");
            continue;
        }
        let [webpki, verdict, explained_rate, per_call, floor, floor_parsed] = rates(
            secs,
            rounds,
            [
                &mut || theirs(&c, &their_anchors, now),
                &mut || ours(&c, &ours_anchors, &verdict_only),
                &mut || ours(&c, &ours_anchors, &explained),
                &mut || ours_anchor_per_call(&c, &verdict_only),
                &mut || signatures_only(&checks),
                &mut || signatures_keys_parsed(&checks, &int_key, &root_key),
            ],
        );
        // Microseconds per chain spent above a floor.
        let over = |r: f64, floor: f64| 1e6 / r - 1e6 / floor;
        println!("{label}");
        let row = |name: &str, r: f64, above: String| {
            println!(
                "  {name:<46} {r:>8.0}/s {:>6.2}x webpki {above}",
                r / webpki
            )
        };
        row(
            "webpki, anchor made once",
            webpki,
            format!("{:>5.1} µs above floor", over(webpki, floor)),
        );
        row(
            "ca-core verdict only, TrustAnchors",
            verdict,
            format!(
                "{:>5.1} µs above floor (keys parsed)",
                over(verdict, floor_parsed)
            ),
        );
        row(
            "ca-core explained, TrustAnchors",
            explained_rate,
            format!(
                "{:>5.1} µs above floor (keys parsed)",
                over(explained_rate, floor_parsed)
            ),
        );
        row(
            "ca-core verdict only, verify_chain (per call)",
            per_call,
            format!("{:>5.1} µs above floor", over(per_call, floor)),
        );
        row("floor: 2 signature checks", floor, String::new());
        row(
            "floor: 2 signature checks, keys parsed",
            floor_parsed,
            String::new(),
        );
    }
}
