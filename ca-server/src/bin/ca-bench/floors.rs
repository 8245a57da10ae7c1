//! What one issuance cannot cost less than on this machine, measured in the
//! same run as the load: the crypto floor (one signature and one check), the
//! durability floor (one page synced), and ca-core's in-process issuance rate.

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::Context;
use ca_core::cert::{
    create_intermediate, create_root, prepare, CertificateRequest, IntermediateParams, Issuer,
    IssuerUrls, RootParams,
};
use ca_core::csr::parse_csr;
use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};
use ca_core::profile::Profile;
use ca_core::serial::Serial;
use x509_cert::name::Name;

use crate::bench_support;

/// What one durable write costs on this disk, whatever writes it: a 4 KiB
/// page overwritten in place and `fdatasync`ed, in a file beside the store.
/// Latency percentiles and CPU per sync.
pub(crate) struct SyncFloor {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub cpu_us: f64,
}

pub(crate) fn durability_floor(dir: &std::path::Path) -> anyhow::Result<SyncFloor> {
    use std::os::unix::fs::FileExt;
    const PAGE: usize = 4096;
    const PAGES: usize = 256;
    let path = dir.join(format!(".ca-bench-sync-{}", std::process::id()));
    let result = (|| -> anyhow::Result<SyncFloor> {
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        // Real blocks, not a sparse file: the store overwrites pages it has.
        file.write_all_at(&vec![0u8; PAGE * PAGES], 0)?;
        file.sync_all()?;
        let page = [0x5au8; PAGE];
        let mut latencies = Vec::new();
        let cpu0 = bench_support::cpu_seconds("self");
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(700) {
            let offset = (latencies.len() % PAGES * PAGE) as u64;
            let t = Instant::now();
            file.write_all_at(&page, offset)?;
            file.sync_data()?;
            latencies.push(t.elapsed());
        }
        let cpu1 = bench_support::cpu_seconds("self");
        latencies.sort_unstable();
        let n = latencies.len();
        let at = |q: f64| latencies[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e3;
        Ok(SyncFloor {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            cpu_us: match (cpu0, cpu1) {
                (Some(a), Some(b)) => (b - a) * 1e6 / n as f64,
                _ => f64::NAN,
            },
        })
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// The cryptographic floor of one issuance: one P-256 signature and one
/// P-256 signature check (the CSR's), in microseconds on one core.
pub(crate) fn crypto_floor_us() -> anyhow::Result<f64> {
    use der::Decode;
    let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
    let message = [7u8; 600];
    let signature = key.sign(&message)?;
    let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(key.public_key_der())?;
    let alg = ca_core::signature::SignatureAlgorithm::default_for(key.kind());
    let time_of = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(700) {
            f()?;
            n += 1;
        }
        Ok(start.elapsed().as_secs_f64() * 1e6 / n as f64)
    };
    let sign = time_of(&mut || {
        std::hint::black_box(key.sign(&message)?);
        Ok(())
    })?;
    let verify = time_of(&mut || {
        ca_core::signature::verify_with(&spki, alg, &message, &signature)?;
        Ok(())
    })?;
    Ok(sign + verify)
}

/// ca-core alone on one thread: CSR parse + verify, build, lint, sign.
pub(crate) fn in_process_rate(
    csr_der: &[u8],
    seconds: f64,
    key: &dyn Signer,
) -> anyhow::Result<f64> {
    let now = time::OffsetDateTime::now_utc();
    let root_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP384)?;
    let root = create_root(
        &root_key,
        &RootParams::new(Name::from_str("CN=Bench Root")?),
        now,
    )?;
    let params = IntermediateParams {
        subject: Name::from_str("CN=Bench Issuing CA")?,
        validity_days: Some(365),
        path_len: Some(0),
        name_constraints: None,
    };
    let root_issuer = Issuer::new(root, vec![], IssuerUrls::default());
    let inter = create_intermediate(&root_issuer, &root_key, key.public_key_der(), &params, now)?;
    let issuer = Issuer::new(
        inter,
        vec![root_issuer.certificate.clone()],
        IssuerUrls {
            crl: Some("http://127.0.0.1:8080/crl/ca-0000000000000000.crl".into()),
            ocsp: Some("http://127.0.0.1:8080/ocsp/ca-0000000000000000".into()),
            ca_issuers: Some("http://127.0.0.1:8080/ca/ca-0000000000000000.der".into()),
        },
    );
    let limits = Profile::TlsServer.default_limits();
    let once = || -> anyhow::Result<()> {
        let csr = parse_csr(csr_der)?;
        let req = CertificateRequest::from_csr(&csr, Profile::TlsServer);
        let p = prepare(
            &issuer,
            &req,
            Serial::random()?,
            time::OffsetDateTime::now_utc(),
            limits,
        )?;
        std::hint::black_box(p.sign(key)?);
        Ok(())
    };
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(300) {
        once()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        once()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}
