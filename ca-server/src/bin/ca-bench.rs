//! `ca-bench`: issuance throughput of a running ca-server over keep-alive mTLS
//! connections, beside ca-core's in-process issuance rate.
//!
//!     cargo run --release -p ca-server --bin ca-bench -- [--seconds 5] [--concurrency 1,16,64]
//!
//! With `--cfssl ADDR --cfssl-ca PEM --cfssl-pid PID` it drives a running
//! `cfssl serve` (HTTPS) with the same load generator in the same run, and
//! prints both side by side with each server's CPU time per certificate and
//! the load generator's own CPU per request (`bench/peers.sh` sets it all up).
//! `--seed N` also measures the rate with N certificates already stored.
//! `--pkcs11-module PATH --pkcs11-token LABEL --pkcs11-pin-file FILE` also
//! measures issuance with the issuing key in that PKCS#11 token, in process
//! and through a second server whose CA keys are in the token
//! (`bench/hsm.sh` sets up a SoftHSM2 token and runs it).
//! `--metrics-off-peer` also drives a server with `[metrics] enabled = false`
//! in the same run: the cost of the metrics on issuance; `--events-off-peer`
//! one with `[events] enabled = false`: the cost of the event outbox.
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
    /// A running `cfssl serve` over HTTPS (host:port) to measure beside us.
    #[arg(long)]
    cfssl: Option<String>,
    /// The CA certificate (PEM) that `cfssl serve`'s TLS certificate chains to.
    #[arg(long)]
    cfssl_ca: Option<PathBuf>,
    /// The PID of `cfssl serve`, to read its CPU time.
    #[arg(long)]
    cfssl_pid: Option<u32>,
    /// Also measure 16 connections on a store already holding this many
    /// certificates, against an empty one.
    #[arg(long)]
    seed: Option<u64>,
    /// A PKCS#11 module: also measure with the issuing key in its token.
    #[arg(long, requires_all = ["pkcs11_token", "pkcs11_pin_file"])]
    pkcs11_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long)]
    pkcs11_token: Option<String>,
    /// A file holding the token's user PIN.
    #[arg(long)]
    pkcs11_pin_file: Option<PathBuf>,
    /// Also measure a second server with metrics switched off
    /// (`[metrics] enabled = false`), for the cost of counting.
    #[arg(long)]
    metrics_off_peer: bool,
    /// Also measure a second server with events switched off
    /// (`[events] enabled = false`), for the cost of the outbox.
    #[arg(long)]
    events_off_peer: bool,
}

impl Args {
    fn pkcs11(&self) -> Option<ca_server::hsm::Pkcs11Config> {
        Some(ca_server::hsm::Pkcs11Config {
            module: self.pkcs11_module.clone()?,
            token_label: self.pkcs11_token.clone(),
            slot: None,
            pin_file: self.pkcs11_pin_file.clone(),
            sessions: None,
            master_key_label: None,
            pin: None,
        })
    }
}

struct TempServer {
    child: Child,
    dir: PathBuf,
    stopped: bool,
}

/// Distinct CSRs the load generator sends in turn.
const BENCH_CSRS: usize = 64;

/// What one target answers to, and whose CPU time to read.
struct Target {
    name: &'static str,
    addr: String,
    tls: std::sync::Arc<rustls::ClientConfig>,
    path: &'static str,
    bodies: std::sync::Arc<[Bytes]>,
    pid: Option<String>,
    /// The store file, to measure its growth per certificate.
    store_file: Option<PathBuf>,
}

struct Measured {
    rate: f64,
    p50: f64,
    p99: f64,
    errors: u64,
    server_us: Option<f64>,
    client_us: Option<f64>,
    store_bytes: Option<f64>,
    /// Bytes the server sent to the disk during the run.
    disk_bytes: Option<u64>,
}

fn measure(rt: &tokio::runtime::Runtime, t: &Target, connections: usize, seconds: f64) -> Measured {
    let size = |f: &Option<PathBuf>| {
        f.as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
    };
    let disk = || t.pid.as_deref().and_then(bench_support::disk_write_bytes);
    let (server0, client0, store0, disk0) = (
        t.pid.as_deref().and_then(bench_support::cpu_seconds),
        bench_support::cpu_seconds("self"),
        size(&t.store_file),
        disk(),
    );
    let mut r = rt.block_on(bench_support::run_load(
        t.addr.clone(),
        t.tls.clone(),
        t.path,
        t.bodies.clone(),
        connections,
        Duration::from_secs_f64(seconds),
        false,
    ));
    let (server1, client1, store1, disk1) = (
        t.pid.as_deref().and_then(bench_support::cpu_seconds),
        bench_support::cpu_seconds("self"),
        size(&t.store_file),
        disk(),
    );
    let (p50, p99, _) = r.percentiles_ms();
    let per = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if r.ok > 0 => Some((b - a) * 1e6 / r.ok as f64),
        _ => None,
    };
    Measured {
        rate: r.rate(),
        p50,
        p99,
        errors: r.errors,
        server_us: per(server0, server1),
        client_us: per(client0, client1),
        store_bytes: match (store0, store1) {
            (Some(a), Some(b)) if r.ok > 0 => Some((b.saturating_sub(a)) as f64 / r.ok as f64),
            _ => None,
        },
        disk_bytes: match (disk0, disk1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
    }
}

/// What one durable write costs on this disk, whatever writes it: a 4 KiB
/// page overwritten in place and `fdatasync`ed, in a file beside the store.
/// Latency percentiles and CPU per sync.
struct SyncFloor {
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: f64,
}

fn durability_floor(dir: &std::path::Path) -> anyhow::Result<SyncFloor> {
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
fn crypto_floor_us() -> anyhow::Result<f64> {
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

impl TempServer {
    /// Stop the server (its store's file lock goes with it); the directory stays.
    fn stop(&mut self) {
        if !std::mem::replace(&mut self.stopped, true) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

/// Where the store's bytes went, table by table, per stored certificate.
fn print_store_usage(dir: &std::path::Path) -> anyhow::Result<()> {
    let usage = ca_server::store::usage(dir)?;
    let certs = usage
        .tables
        .iter()
        .find(|t| t.name == "certs")
        .map_or(0, |t| t.entries);
    if certs == 0 {
        return Ok(());
    }
    let per = |b: u64| b as f64 / certs as f64;
    println!(
        "store after the run: {certs} certificates, file {:.0} B/cert; by table (B/cert: stored + page overhead + unused in pages):",
        per(usage.file_bytes)
    );
    for t in usage.tables.iter().filter(|t| t.entries > 0) {
        let total = t.stored_bytes + t.metadata_bytes + t.fragmented_bytes;
        if per(total) < 1.0 {
            continue;
        }
        println!(
            "  {:<14} {:>9} entries {:>7.0} = {:.0} + {:.0} + {:.0}",
            t.name,
            t.entries,
            per(total),
            per(t.stored_bytes),
            per(t.metadata_bytes),
            per(t.fragmented_bytes)
        );
    }
    Ok(())
}

impl Drop for TempServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_temp_server(
    seed: u64,
    pkcs11: Option<&ca_server::hsm::Pkcs11Config>,
    switched_off: Option<&str>,
) -> anyhow::Result<(TempServer, ClientProfile, String)> {
    let server = bench_support::server_exe()?;
    let dir = std::env::temp_dir().join(format!(
        "ca-bench-{}{}{}{}",
        std::process::id(),
        if pkcs11.is_some() { "-hsm" } else { "" },
        if seed > 0 { "-seeded" } else { "" },
        switched_off.map(|s| format!("-no{s}")).unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut init = Command::new(&server);
    init.args(["init", "--data-dir"]).arg(&dir);
    if let Some(p) = pkcs11 {
        init.arg("--pkcs11-module")
            .arg(&p.module)
            .arg("--pkcs11-token-label")
            .arg(p.token_label.as_deref().unwrap_or_default());
        if let Some(f) = &p.pin_file {
            init.arg("--pkcs11-pin-file").arg(std::fs::canonicalize(f)?);
        }
    }
    let st = init
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()?;
    if !st.success() {
        bail!("ca-server init failed");
    }
    if seed > 0 {
        seed_store(&dir, seed)?;
    }
    if let Some(section) = switched_off {
        let path = dir.join("config.toml");
        let text = std::fs::read_to_string(&path)?;
        let on = format!("[{section}]\nenabled = true");
        let off = text.replace(&on, &format!("[{section}]\nenabled = false"));
        if off == text {
            bail!("config.toml has no [{section}] enabled = true to switch off");
        }
        std::fs::write(&path, off)?;
    }
    // The server logs as it would in production (its default level, info,
    // unless CA_BENCH_SERVER_LOG says otherwise), to a file: what logging
    // costs is part of what is measured.
    let log = std::fs::File::create(dir.join("server.log"))?;
    let level = std::env::var("CA_BENCH_SERVER_LOG").unwrap_or_else(|_| "info".into());
    let child = Command::new(&server)
        .args(["serve", "--data-dir"])
        .arg(&dir)
        .args(["--api-addr", "127.0.0.1:0", "--public-addr", "127.0.0.1:0"])
        .env("RUST_LOG", level)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?;
    let guard = TempServer {
        child,
        dir: dir.clone(),
        stopped: false,
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

/// Store `count` issued-certificate records in a stopped server's store, in
/// batches through the store's own import, each with a real certificate's DER
/// (the server's TLS certificate) so records have their real size.
fn seed_store(dir: &std::path::Path, count: u64) -> anyhow::Result<()> {
    use ca_server::store::{CertRecord, CertStatus};
    let config = ca_server::config::Config::load(dir)?;
    // The server's TLS certificate (the first of its chain file).
    let template = ca_core::pem::decode_all(
        "CERTIFICATE",
        &std::fs::read_to_string(dir.join(&config.tls_cert))?,
    )?
    .into_iter()
    .next()
    .context("the server's TLS certificate")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = ca_server::store::open(dir, "bench-seed".into())?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let started = Instant::now();
    let mut done = 0u64;
    while done < count {
        let n = (count - done).min(10_000);
        let mut certs = Vec::with_capacity(n as usize);
        for _ in 0..n {
            // Issued before the run, in time order as the server makes them.
            let issued_at =
                time::OffsetDateTime::now_utc() - time::Duration::seconds((count - done) as i64);
            let serial = Serial::time_ordered(issued_at)?.to_hex();
            certs.push((
                CertRecord {
                    ca_id: config.issuing_ca_id.clone(),
                    serial: serial.clone(),
                    status: CertStatus::Issued,
                    profile: "tls-server".into(),
                    subject: format!("CN=seed-{serial}.example"),
                    sans: vec![format!("DNS:seed-{serial}.example")],
                    key_algorithm: "ECDSA P-256".into(),
                    not_before: now - 60,
                    not_after: now + 90 * 86400,
                    tbs_sha256: String::new(),
                    created_at: now,
                    requested_by: "ca-bench seed".into(),
                    requester_fingerprint: None,
                    boot_id: "bench-seed".into(),
                    server_generated_key: false,
                    renewed_from: None,
                    revocation: None,
                },
                template.clone(),
            ));
        }
        let draft = ca_server::audit::commit_draft("ca-bench", "ImportCertificates", "seed");
        rt.block_on(store.import_certs(certs, draft))?;
        done += n;
    }
    store.close();
    println!(
        "ca-bench: seeded {count} certificates in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// ca-core alone on one thread: CSR parse + verify, build, lint, sign.
fn in_process_rate(csr_der: &[u8], seconds: f64, key: &dyn Signer) -> anyhow::Result<f64> {
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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pkcs11 = args.pkcs11();
    let levels: Vec<usize> = args
        .concurrency
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .context("--concurrency must be a list of numbers")?;
    // Pre-made CSRs, as clients would send them: each its own key and name
    // (certificates that differ as real ones do, for the store's figures),
    // sent in turn.
    let mut csr_pems = Vec::with_capacity(BENCH_CSRS);
    let mut csr_der = Vec::new();
    for i in 0..BENCH_CSRS {
        let client_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
        let name = format!("bench-{i}.example.internal");
        let der = create_csr(
            &client_key,
            &Name::from_str(&format!("CN={name}"))?,
            &[SanEntry::parse(&name)?],
        )?;
        csr_pems.push(ca_core::pem::encode("CERTIFICATE REQUEST", &der));
        csr_der = der;
    }
    // Issuance requests for CA `ca_id`, one per CSR.
    let issue_bodies = |ca_id: &Option<String>| -> anyhow::Result<std::sync::Arc<[Bytes]>> {
        csr_pems
            .iter()
            .map(|csr| {
                Ok(Bytes::from(serde_json::to_vec(&wire::IssueCertificate {
                    ca_id: ca_id.clone(),
                    csr: csr.clone(),
                    profile: Some("tls-server".into()),
                    validity_days: None,
                    idempotency_token: None,
                })?))
            })
            .collect()
    };

    let (guard, profile, api) = match &args.profile {
        Some(p) => {
            let profile = ClientProfile::load(p)?;
            let api = profile.authority().to_string();
            (None, profile, api)
        }
        None => {
            let (g, p, a) = start_temp_server(0, None, None)?;
            (Some(g), p, a)
        }
    };
    // A second server whose CA keys (the issuing one included) are in the token.
    let hsm_server = match &pkcs11 {
        Some(cfg) => Some(start_temp_server(0, Some(cfg), None)?),
        None => None,
    };
    let tls = profile_config(&profile)?;
    let bodies = issue_bodies(&profile.default_ca_id)?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("ca-bench: server {api}, {cores} CPU cores shared by servers and load generator");
    println!("ca-bench: issuing ECDSA P-256 tls-server certificates from a P-256 issuing CA, pre-made P-256 CSR");
    let floor = crypto_floor_us()?;
    println!("crypto floor (one P-256 signature + one P-256 signature check, aws-lc, 1 core): {floor:.0} µs");
    // Beside the store when this bench made it; else in the temp directory.
    let sync_dir = guard
        .as_ref()
        .map_or_else(std::env::temp_dir, |g| g.dir.clone());
    let sync = durability_floor(&sync_dir)?;
    println!(
        "durability floor (one 4 KiB page overwritten + fdatasync, in {}): p50 {:.3} ms, p99 {:.3} ms, {:.0} µs CPU",
        sync_dir.display(),
        sync.p50_ms,
        sync.p99_ms,
        sync.cpu_us
    );
    let issuing_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
    let inproc = in_process_rate(&csr_der, args.seconds.min(3.0), &issuing_key)?;
    println!("ca-core in-process issuance (CSR verify + build + lint + sign), 1 thread: {inproc:.0} certs/s");
    if let Some(cfg) = &pkcs11 {
        let pin = cfg.pin(
            std::path::Path::new("."),
            &ca_server::vault::EnvSecret::default(),
        )?;
        let token = ca_server::hsm::Token::open(cfg, pin)?;
        let label = format!("ca-bench-{}", std::process::id());
        let reference = token.generate(KeyAlgorithm::EcdsaP256, &label)?;
        let signer = token.signer(&reference)?;
        let hsm = in_process_rate(&csr_der, args.seconds.min(3.0), &signer)?;
        println!(
            "ca-core in-process issuance, issuing P-256 key in the PKCS#11 token, 1 thread: {hsm:.0} certs/s = {:.2}× the software key's",
            hsm / inproc.max(1e-9)
        );
        // Two threads on the one token: the session pool lets them sign at once.
        let both: Vec<f64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| in_process_rate(&csr_der, args.seconds.min(3.0), &signer)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("bench thread"))
                        .and_then(|r| r)
                })
                .collect::<anyhow::Result<_>>()
        })?;
        let sum: f64 = both.iter().sum();
        println!(
            "ca-core in-process issuance, token key, 2 threads: {sum:.0} certs/s ({} token sessions open)",
            token.sessions_open()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ours = Target {
        name: "ca-server",
        addr: api.clone(),
        tls: tls.clone(),
        path: "/v1/certificates",
        bodies: bodies.clone(),
        pid: guard.as_ref().map(|g| g.child.id().to_string()),
        store_file: guard
            .as_ref()
            .map(|g| g.dir.join(ca_server::store::STORE_FILE)),
    };
    let mut targets = vec![ours];
    if let Some((g, p, a)) = &hsm_server {
        targets.push(Target {
            name: "ca-server+hsm",
            addr: a.clone(),
            tls: profile_config(p)?,
            path: "/v1/certificates",
            bodies: issue_bodies(&p.default_ca_id)?,
            pid: Some(g.child.id().to_string()),
            store_file: Some(g.dir.join(ca_server::store::STORE_FILE)),
        });
    }
    let mut switched_off_servers = Vec::new();
    for (wanted, section, name) in [
        (args.metrics_off_peer, "metrics", "no-metrics"),
        (args.events_off_peer, "events", "no-events"),
    ] {
        if !wanted {
            continue;
        }
        let (g, p, a) = start_temp_server(0, None, Some(section))?;
        targets.push(Target {
            name,
            addr: a,
            tls: profile_config(&p)?,
            path: "/v1/certificates",
            bodies: issue_bodies(&p.default_ca_id)?,
            pid: Some(g.child.id().to_string()),
            store_file: Some(g.dir.join(ca_server::store::STORE_FILE)),
        });
        switched_off_servers.push(g);
    }
    if let Some(addr) = &args.cfssl {
        let ca = args
            .cfssl_ca
            .as_ref()
            .context("--cfssl needs --cfssl-ca (the CA of its TLS certificate)")?;
        let mut roots = rustls::RootCertStore::empty();
        for der in ca_core::pem::decode_all("CERTIFICATE", &std::fs::read_to_string(ca)?)? {
            roots.add(rustls_pki_types::CertificateDer::from(der))?;
        }
        let cfssl_tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        targets.push(Target {
            name: "cfssl",
            addr: addr.clone(),
            tls: std::sync::Arc::new(cfssl_tls),
            path: "/api/v1/cfssl/sign",
            bodies: csr_pems
                .iter()
                .map(|csr| {
                    Ok(Bytes::from(serde_json::to_vec(
                        &serde_json::json!({ "certificate_request": csr }),
                    )?))
                })
                .collect::<anyhow::Result<_>>()?,
            pid: args.cfssl_pid.map(|p| p.to_string()),
            store_file: None,
        });
    }
    println!(
        "{:>11} {:>10} {:>9} {:>8} {:>8} {:>7} {:>15} {:>14} {:>13}",
        "connections",
        "server",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "server µs/cert",
        "client µs/req",
        "store B/cert"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let mut at16: Option<f64> = None;
    for c in levels {
        let mut results = Vec::new();
        // (durable commits, store writes) during our server's run.
        let mut commit_counts = None;
        for t in &targets {
            let before = (t.name == "ca-server")
                .then(|| commits(&rt, &api, &tls))
                .flatten();
            let m = measure(&rt, t, c, args.seconds);
            if let (Some(a), Some(b)) = (before, commits(&rt, &api, &tls)) {
                if t.name == "ca-server" && b.0 > a.0 {
                    commit_counts = Some((b.0 - a.0, b.1.saturating_sub(a.1)));
                }
            }
            println!(
                "{c:>11} {:>10} {:>9.0} {:>8.2} {:>8.2} {:>7} {:>15} {:>14} {:>13}",
                t.name,
                m.rate,
                m.p50,
                m.p99,
                m.errors,
                opt(m.server_us),
                opt(m.client_us),
                opt(m.store_bytes)
            );
            results.push(m);
        }
        if c == 16 {
            at16 = Some(results[0].rate);
        }
        let ours = &results[0];
        let mut ratios = vec![];
        if let Some(us) = ours.server_us {
            ratios.push(format!(
                "ca-server CPU/cert = {:.1}× the crypto floor",
                us / floor
            ));
        }
        if let Some((commits, writes)) = commit_counts {
            ratios.push(format!(
                "{:.1} store writes per durable commit",
                writes as f64 / commits as f64
            ));
            if let Some(d) = ours.disk_bytes {
                let per_commit = d as f64 / commits as f64;
                ratios.push(format!(
                    "{:.0} KiB to disk per commit ({:.1} pages of 4 KiB)",
                    per_commit / 1024.0,
                    per_commit / 4096.0
                ));
            }
        }
        if c == 1 {
            ratios.push(format!(
                "p50 {:.1}× the durability floor's",
                ours.p50 / sync.p50_ms.max(1e-9)
            ));
        }
        for (t, peer) in targets.iter().zip(&results).skip(1) {
            if t.name == "cfssl" {
                ratios.push(format!(
                    "throughput {:.2}× CFSSL's, p50 {:.2}× CFSSL's",
                    ours.rate / peer.rate.max(1e-9),
                    ours.p50 / peer.p50.max(1e-9)
                ));
                if let (Some(a), Some(b)) = (ours.server_us, peer.server_us) {
                    ratios.push(format!("server CPU/cert {:.2}× CFSSL's", a / b));
                }
            } else if t.name == "no-metrics" {
                ratios.push(format!(
                    "metrics on: throughput {:.3}× metrics off's",
                    ours.rate / peer.rate.max(1e-9)
                ));
                if let (Some(a), Some(b)) = (ours.server_us, peer.server_us) {
                    ratios.push(format!("server CPU/cert {:.3}× metrics off's", a / b));
                }
                continue;
            } else if t.name == "no-events" {
                ratios.push(format!(
                    "events on: throughput {:.3}× events off's",
                    ours.rate / peer.rate.max(1e-9)
                ));
                if let (Some(a), Some(b)) = (ours.server_us, peer.server_us) {
                    ratios.push(format!("server CPU/cert {:.3}× events off's", a / b));
                }
                if let (Some(a), Some(b)) = (ours.store_bytes, peer.store_bytes) {
                    ratios.push(format!("store bytes/cert {a:.0} vs {b:.0} events off"));
                }
                continue;
            } else {
                ratios.push(format!(
                    "{}: throughput {:.2}× the software key's",
                    t.name,
                    peer.rate / ours.rate.max(1e-9)
                ));
                if let (Some(a), Some(b)) = (peer.server_us, ours.server_us) {
                    ratios.push(format!("server CPU/cert {:.2}×", a / b));
                }
            }
        }
        println!("{:>11} {}", "", ratios.join("; "));
    }
    if let Some(count) = args.seed {
        let empty_rate = match at16 {
            Some(r) => r,
            None => measure(&rt, &targets[0], 16, args.seconds).rate,
        };
        let (seeded, seeded_profile, seeded_api) = start_temp_server(count, None, None)?;
        let seeded_target = Target {
            name: "seeded",
            addr: seeded_api,
            tls: profile_config(&seeded_profile)?,
            path: "/v1/certificates",
            bodies: issue_bodies(&seeded_profile.default_ca_id)?,
            pid: Some(seeded.child.id().to_string()),
            store_file: Some(seeded.dir.join(ca_server::store::STORE_FILE)),
        };
        let size = std::fs::metadata(seeded.dir.join(ca_server::store::STORE_FILE))?.len();
        let m = measure(&rt, &seeded_target, 16, args.seconds);
        println!(
            "with {count} certificates stored ({:.0} MB, {:.0} B each): 16 connections {:.0} req/s, p99 {:.2} ms = {:.2}× the empty store's {:.0} req/s",
            size as f64 / 1e6,
            size as f64 / count as f64,
            m.rate,
            m.p99,
            m.rate / empty_rate.max(1e-9),
            empty_rate
        );
    }
    drop(targets);
    if let Some(mut g) = guard {
        g.stop();
        print_store_usage(&g.dir)?;
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
