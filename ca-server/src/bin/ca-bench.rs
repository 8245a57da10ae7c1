//! `ca-bench`: issuance throughput of a running ca-server over keep-alive mTLS
//! connections, beside ca-core's in-process issuance rate.
//!
//!     cargo run --release -p ca-server --bin ca-bench -- [--seconds 5] [--concurrency 1,16,64]
//!
//! Without `--profile`, it initialises a temporary data directory and starts the
//! sibling `ca-server` binary itself. With `--profile DIR/admin/profile.toml` it
//! loads an existing server (issuing real certificates into its store).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ca_core::cert::{
    create_intermediate, create_root, prepare, CertificateRequest, IntermediateParams, Issuer,
    IssuerUrls, RootParams,
};
use ca_core::csr::{create_csr, parse_csr};
use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};
use ca_core::names::SanEntry;
use ca_core::profile::Profile;
use ca_core::serial::Serial;
use ca_server::api::client::{profile_config, ApiClient, ClientProfile};
use ca_server::api::wire;
use clap::Parser;
use hyper::body::Bytes;
use x509_cert::name::Name;

mod bench_support;

#[derive(Parser)]
#[command(
    name = "ca-bench",
    about = "Issuance throughput of ca-server over mTLS"
)]
struct Args {
    /// Client profile of a running server (DIR/admin/profile.toml). Without it a
    /// temporary server is started.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// Seconds per concurrency level.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Comma-separated connection counts.
    #[arg(long, default_value = "1,16,64")]
    concurrency: String,
}

struct TempServer {
    child: Child,
    dir: PathBuf,
}

impl Drop for TempServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_temp_server() -> anyhow::Result<(TempServer, ClientProfile, String)> {
    let exe = std::env::current_exe()?;
    let server = exe.with_file_name("ca-server");
    if !server.exists() {
        bail!(
            "{} not found: build it first (cargo build --release -p ca-server)",
            server.display()
        );
    }
    let dir = std::env::temp_dir().join(format!("ca-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let st = Command::new(&server)
        .args(["init", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()?;
    if !st.success() {
        bail!("ca-server init failed");
    }
    let child = Command::new(&server)
        .args(["serve", "--data-dir"])
        .arg(&dir)
        .args(["--api-addr", "127.0.0.1:0", "--public-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let guard = TempServer {
        child,
        dir: dir.clone(),
    };
    let addresses = dir.join(ca_server::server::ADDRESSES_FILE);
    let start = Instant::now();
    while !addresses.exists() {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("the server did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let a: serde_json::Value = serde_json::from_slice(&std::fs::read(&addresses)?)?;
    let api = a["api"].as_str().context("api address")?.to_string();
    let profile = ClientProfile::load(&dir.join("admin/profile.toml"))?;
    Ok((guard, profile, api))
}

/// ca-core alone on one thread: CSR parse + verify, build, lint, sign.
fn in_process_rate(csr_der: &[u8], seconds: f64) -> anyhow::Result<f64> {
    let now = time::OffsetDateTime::now_utc();
    let root_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP384)?;
    let root = create_root(
        &root_key,
        &RootParams::new(Name::from_str("CN=Bench Root")?),
        now,
    )?;
    let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
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
        std::hint::black_box(p.sign(&key)?);
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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let levels: Vec<usize> = args
        .concurrency
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .context("--concurrency must be a list of numbers")?;
    // A pre-made CSR, as a client would send.
    let client_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
    let csr_der = create_csr(
        &client_key,
        &Name::from_str("CN=bench.example.internal")?,
        &[SanEntry::parse("bench.example.internal")?],
    )?;
    let csr_pem = ca_core::pem::encode("CERTIFICATE REQUEST", &csr_der);

    let (_guard, profile, api) = match &args.profile {
        Some(p) => {
            let profile = ClientProfile::load(p)?;
            let api = profile.authority().to_string();
            (None, profile, api)
        }
        None => {
            let (g, p, a) = start_temp_server()?;
            (Some(g), p, a)
        }
    };
    let tls = profile_config(&profile)?;
    let body = Bytes::from(serde_json::to_vec(&wire::IssueCertificate {
        ca_id: profile.default_ca_id.clone(),
        csr: csr_pem,
        profile: Some("tls-server".into()),
        validity_days: None,
        idempotency_token: None,
    })?);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("ca-bench: server {api}, {cores} CPU cores shared by server and load generator");
    println!("ca-bench: issuing ECDSA P-256 tls-server certificates from a P-256 issuing CA, pre-made P-256 CSR");
    let inproc = in_process_rate(&csr_der, args.seconds.min(3.0))?;
    println!("ca-core in-process issuance (CSR verify + build + lint + sign), 1 thread: {inproc:.0} certs/s");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "{:>11} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>10}",
        "connections", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "of core", "commits"
    );
    for c in levels {
        let health_before = commits(&rt, &api, &tls);
        let mut r = rt.block_on(bench_support::run_load(
            api.clone(),
            tls.clone(),
            "/v1/certificates",
            body.clone(),
            c,
            Duration::from_secs_f64(args.seconds),
            false,
        ));
        let health_after = commits(&rt, &api, &tls);
        let (p50, p99, max) = r.percentiles_ms();
        let rate = r.rate();
        let batches = match (health_before, health_after) {
            (Some(a), Some(b)) if b.0 > a.0 => {
                format!("{:.1}/commit", (b.1 - a.1) as f64 / (b.0 - a.0) as f64)
            }
            _ => "-".into(),
        };
        println!(
            "{c:>11} {rate:>10.0} {p50:>9.2} {p99:>9.2} {max:>9.2} {:>9} {:>7.0}% {batches:>10}",
            r.errors,
            100.0 * rate / inproc
        );
    }
    Ok(())
}

/// (commits, writes) of the server's store, from /health.
fn commits(
    rt: &tokio::runtime::Runtime,
    api: &str,
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> Option<(u64, u64)> {
    rt.block_on(async {
        let mut c = ApiClient::connect(api, tls.clone()).await.ok()?;
        let h: wire::Health = c
            .request::<(), _>(hyper::Method::GET, "/health", None)
            .await
            .ok()?;
        Some((h.store.commits, h.store.writes))
    })
}
