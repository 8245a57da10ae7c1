//! Issuance throughput on one core, beside the raw signature rate of the same
//! issuer key, so everything that is not the signature shows as a ratio.
//!
//!     cargo bench -p ca-core --bench issue
//!
//! Set BENCH_SECONDS to change the time per measurement (default 2).

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ca_core::cert::{
    create_intermediate, create_root, prepare, CertificateRequest, IntermediateParams, Issuer,
    IssuerUrls, RootParams,
};
use ca_core::csr::parse_csr;
use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};
use ca_core::profile::Profile;
use ca_core::serial::Serial;
use x509_cert::name::Name;

fn rate(seconds: f64, mut op: impl FnMut()) -> f64 {
    // Warm up caches and lazy initialisation before timing.
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        op();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        op();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn issuer_for(alg: KeyAlgorithm) -> (Issuer, SoftwareKey) {
    let now = time::OffsetDateTime::now_utc();
    let root_key = SoftwareKey::generate(alg).expect("root key");
    let root = create_root(
        &root_key,
        &RootParams::new(Name::from_str("CN=Bench Root").expect("name")),
        now,
    )
    .expect("root");
    let key = SoftwareKey::generate(alg).expect("issuer key");
    let params = IntermediateParams {
        subject: Name::from_str("CN=Bench Issuing CA").expect("name"),
        validity_days: Some(365),
        path_len: Some(0),
        name_constraints: None,
    };
    let root_issuer = Issuer::new(root.clone(), vec![], IssuerUrls::default());
    let inter = create_intermediate(&root_issuer, &root_key, key.public_key_der(), &params, now)
        .expect("intermediate");
    let urls = IssuerUrls {
        crl: Some("http://127.0.0.1:8080/crl/bench.crl".into()),
        ocsp: Some("http://127.0.0.1:8080/ocsp/bench".into()),
        ca_issuers: None,
    };
    (Issuer::new(inter, vec![root], urls), key)
}

fn main() {
    let seconds: f64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let csr_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/csr/p256-sha256.csr"
    );
    let csr_bytes = std::fs::read(csr_path).expect("fixture CSR");
    let parsed = parse_csr(&csr_bytes).expect("fixture CSR parses");
    println!("ca-core issuance, one thread, {seconds} s per figure; leaf CSR: P-256 (openssl req)");
    println!(
        "{:<10} {:>12} {:>16} {:>8} {:>18} {:>8} {:>22}",
        "issuer",
        "sign/s",
        "raw CSR cert/s",
        "ratio",
        "parsed CSR cert/s",
        "ratio",
        "build+lint only µs"
    );
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
    ] {
        let (issuer, key) = issuer_for(alg);
        let limits = Profile::TlsServer.default_limits();
        let now = time::OffsetDateTime::now_utc();
        let sample = prepare(
            &issuer,
            &CertificateRequest::from_csr(&parsed, Profile::TlsServer),
            Serial::random().expect("rng"),
            now,
            limits,
        )
        .expect("prepare");
        let tbs = sample.tbs_der.clone();
        let sign = rate(seconds, || {
            black_box(key.sign(black_box(&tbs)).expect("sign"));
        });
        let from_raw = rate(seconds, || {
            let csr = parse_csr(black_box(&csr_bytes)).expect("csr");
            let req = CertificateRequest::from_csr(&csr, Profile::TlsServer);
            let p = prepare(&issuer, &req, Serial::random().expect("rng"), now, limits)
                .expect("prepare");
            black_box(p.sign(&key).expect("sign"));
        });
        // Building and linting alone (no signature), from the parsed CSR.
        let prepare_only = rate(seconds, || {
            let req = CertificateRequest::from_csr(black_box(&parsed), Profile::TlsServer);
            black_box(
                prepare(&issuer, &req, Serial::random().expect("rng"), now, limits)
                    .expect("prepare"),
            );
        });
        let from_parsed = rate(seconds, || {
            let req = CertificateRequest::from_csr(black_box(&parsed), Profile::TlsServer);
            let p = prepare(&issuer, &req, Serial::random().expect("rng"), now, limits)
                .expect("prepare");
            black_box(p.sign(&key).expect("sign"));
        });
        println!(
            "{:<10} {:>12.0} {:>16.0} {:>8.2} {:>18.0} {:>8.2} {:>22.2}",
            alg.name(),
            sign,
            from_raw,
            from_raw / sign,
            from_parsed,
            from_parsed / sign,
            1e6 / prepare_only
        );
    }
    println!("ratio = certificates/s divided by the issuer key's raw signatures/s (1.00 = signing is all the cost)");
}
