//! `revocation-bench`: revocation at scale, one run.
//!
//!     cargo build --release -p ca-server
//!     cargo run --release -p ca-server --bin revocation-bench -- --count 1000000
//!
//! 1. `ca-server init` a temporary data dir; start-up time (process start →
//!    public `/health` answers) with the store nearly empty.
//! 2. Seed `--count` issued-and-revoked certificate records into the issuing CA
//!    straight through the store API, in large group commits, through the same
//!    `reserve` / `store_issued` / `revoke` operations the server runs (so each
//!    record has its pre-encoded CRL entry). Every record shares ONE template
//!    certificate DER (a real certificate the server issued); serials, subjects
//!    and revocation data are per record. Plus `--revokes` issued, unrevoked
//!    records to revoke later.
//! 3. Start-up time with the seeded store.
//! 4. Revoke latency: `--revokes` revocations through the real mTLS API, one
//!    keep-alive connection, while the background builder rebuilds the CRL.
//! 5. OCSP over HTTP on the public listener, keep-alive, `--concurrency`
//!    connections: cached (the same nonce-less request) and uncached (a fresh
//!    nonce and a random seeded serial per request: a store read and a signature).
//! 6. CRL build time and size through the server's builder path
//!    (`RevocationService::build`, in-process on the same data dir).

#[allow(dead_code)] // its load generator is ca-bench's; this bench uses server_exe
mod bench_support;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ca_core::cert::CaCertificate;
use ca_core::ocsp::{encode_request, CertIdInfo, HashAlg};
use ca_core::serial::Serial;
use ca_server::api::client::{profile_config, ApiClient, ClientProfile};
use ca_server::api::wire;
use ca_server::config::Config;
use ca_server::store::{self, CertRecord, CertStatus, Revocation};
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;

#[derive(Parser)]
#[command(
    name = "revocation-bench",
    about = "CRL / OCSP / revoke figures at scale"
)]
struct Args {
    /// Revoked certificates to seed.
    #[arg(long, default_value_t = 1_000_000)]
    count: usize,
    /// Revocations to time through the API.
    #[arg(long, default_value_t = 1000)]
    revokes: usize,
    /// Seconds per OCSP run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Concurrent OCSP connections.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Keep the data directory (prints its path).
    #[arg(long)]
    keep: bool,
    /// The share of seeded revocations whose certificates have already
    /// expired (expired two days ago, revoked three days ago): the CRL is
    /// then also built with expired entries kept and dropped (CRL hygiene).
    #[arg(long, default_value_t = 0.0)]
    expired_fraction: f64,
}

struct Running {
    child: Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Start the server; return it, its public and API addresses, and the time
/// from spawn to the first 200 from the public `/health`.
fn start(dir: &Path) -> anyhow::Result<(Running, String, String, Duration)> {
    let addresses = dir.join(ca_server::server::ADDRESSES_FILE);
    let _ = std::fs::remove_file(&addresses);
    let t = Instant::now();
    let child = Command::new(bench_support::server_exe()?)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--api-addr", "127.0.0.1:0", "--public-addr", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let running = Running { child };
    loop {
        if t.elapsed() > Duration::from_secs(60) {
            bail!("the server did not start");
        }
        if let Ok(b) = std::fs::read(&addresses) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
                let public = v["public"].as_str().unwrap_or_default().to_string();
                let api = v["api"].as_str().unwrap_or_default().to_string();
                if health(&public) {
                    return Ok((running, public, api, t.elapsed()));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn health(public: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(public) else {
        return false;
    };
    let req = format!("GET /health HTTP/1.1\r\nhost: {public}\r\nconnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200")
}

fn pct(v: &mut [u64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 * q) as usize).min(v.len() - 1);
    v.get(i).copied().unwrap_or(0) as f64 / 1000.0
}

/// One OCSP run: `(ok, errors, latencies µs, elapsed)`.
async fn ocsp_load(
    public: String,
    path: String,
    make: Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>,
    concurrency: usize,
    seconds: f64,
) -> anyhow::Result<(u64, u64, Vec<u64>, Duration)> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let (public, path, make) = (public.clone(), path.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let tcp = tokio::net::TcpStream::connect(&public).await?;
            tcp.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let (mut ok, mut errors, mut lat) = (0u64, 0u64, Vec::new());
            let mut i = w as u64 * 1_000_000_000;
            while Instant::now() < deadline {
                i += 1;
                let body = Bytes::from(make(i));
                let t = Instant::now();
                sender.ready().await?;
                let req = Request::builder()
                    .method(Method::POST)
                    .uri(&path)
                    .header("host", &public)
                    .header("content-type", "application/ocsp-request")
                    .body(Full::new(body))?;
                let resp = sender.send_request(req).await?;
                let body = resp.into_body().collect().await?.to_bytes();
                // responseStatus successful (0) right after the outer header.
                if body.len() > 16 && body.windows(3).take(6).any(|w| w == [0x0a, 0x01, 0x00]) {
                    ok += 1;
                    lat.push(t.elapsed().as_micros() as u64);
                } else {
                    errors += 1;
                }
            }
            Ok::<_, anyhow::Error>((ok, errors, lat))
        }));
    }
    let (mut ok, mut errors, mut lat) = (0, 0, Vec::new());
    for t in tasks {
        let (o, e, l) = t.await??;
        ok += o;
        errors += e;
        lat.extend(l);
    }
    Ok((ok, errors, lat, start.elapsed()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("revocation-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let st = Command::new(bench_support::server_exe()?)
        .args(["init", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()?;
    if !st.success() {
        bail!("ca-server init failed");
    }
    let result = rt.block_on(run(&args, &dir));
    if args.keep {
        println!("data dir kept: {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run(args: &Args, dir: &Path) -> anyhow::Result<()> {
    if args.expired_fraction > 0.0 {
        // The server run before step 6 keeps expired entries, so step 6 can
        // build the CRL both ways from the same store.
        let path = dir.join(ca_server::config::CONFIG_FILE);
        let text = std::fs::read_to_string(&path)?;
        std::fs::write(
            &path,
            text.replace(
                "drop_expired_crl_entries = true",
                "drop_expired_crl_entries = false",
            ),
        )?;
    }
    let config = Config::load(dir)?;
    let ca_id = config.issuing_ca_id.clone();
    let profile = ClientProfile::load(&dir.join("admin/profile.toml"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "revocation-bench: {} revoked records, {cores} CPU cores shared by server and load",
        args.count
    );

    // 1. Start-up, nearly empty; one real certificate as the seeding template.
    let (server, _, api, startup_empty) = start(dir)?;
    let tls = profile_config(&profile)?;
    let mut client = ApiClient::connect(&api, tls.clone()).await?;
    let csr = {
        use std::str::FromStr;
        let key = ca_core::keys::SoftwareKey::generate(ca_core::keys::KeyAlgorithm::EcdsaP256)?;
        let der = ca_core::csr::create_csr(
            &key,
            &x509_cert::name::Name::from_str("CN=template.example")?,
            &[ca_core::names::SanEntry::parse("template.example")?],
        )?;
        ca_core::pem::encode("CERTIFICATE REQUEST", &der)
    };
    let issued: wire::Certificate = client
        .request(
            Method::POST,
            "/v1/certificates",
            Some(&wire::IssueCertificate {
                ca_id: Some(ca_id.clone()),
                csr,
                profile: None,
                validity_days: None,
                idempotency_token: None,
            }),
        )
        .await
        .context("template issuance failed")?;
    let template = ca_core::pem::decode("CERTIFICATE", &issued.certificate)?;
    drop(client);
    drop(server);

    // 2. Seed.
    let t = Instant::now();
    let store = store::open(dir, "bench-seed".into())?;
    let template = Arc::new(template);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut revoked_serials: Vec<String> = Vec::with_capacity(args.count);
    let mut to_revoke: Vec<String> = Vec::with_capacity(args.revokes);
    const BATCH: usize = 20_000;
    let total = args.count + args.revokes;
    let mut done = 0;
    while done < total {
        let n = BATCH.min(total - done);
        let mut batch = Vec::with_capacity(n);
        for i in 0..n {
            let serial = Serial::random()?.to_hex();
            let revoke = done + i < args.count;
            if revoke {
                revoked_serials.push(serial.clone());
            } else {
                to_revoke.push(serial.clone());
            }
            // The first revocations seeded are the expired ones.
            let expired = ((done + i) as f64) < args.expired_fraction * args.count as f64;
            batch.push((serial, revoke, expired));
        }
        let mut certs = Vec::with_capacity(n);
        for (serial, revoke, expired) in batch {
            let rec = CertRecord {
                ca_id: ca_id.clone(),
                serial: serial.clone(),
                status: if revoke {
                    CertStatus::Revoked
                } else {
                    CertStatus::Issued
                },
                profile: "tls-server".into(),
                subject: format!("CN=seed-{serial}.example"),
                sans: vec![format!("seed-{serial}.example")],
                key_algorithm: "ECDSA P-256".into(),
                not_before: if expired {
                    now - 30 * 86400
                } else {
                    now - 3600
                },
                not_after: if expired {
                    now - 2 * 86400
                } else {
                    now + 90 * 86400
                },
                tbs_sha256: String::new(),
                created_at: now,
                requested_by: "revocation-bench".into(),
                requester_fingerprint: None,
                boot_id: "bench-seed".into(),
                server_generated_key: false,
                renewed_from: None,
                revocation: revoke.then(|| Revocation {
                    reason_code: 1,
                    reason: "KEY_COMPROMISE".into(),
                    revoked_at: if expired { now - 3 * 86400 } else { now - 60 },
                    revoked_by: "revocation-bench".into(),
                    key_sha256: None,
                }),
            };
            certs.push((rec, template.as_ref().clone()));
        }
        let draft =
            ca_server::audit::commit_draft("revocation-bench", "ImportCertificates", &ca_id);
        store.import_certs(certs, draft).await?;
        done += n;
    }
    let ca_pem = store
        .get_ca(&ca_id)?
        .and_then(|r| r.certificate_pem)
        .context("issuing CA certificate")?;
    store.close();
    drop(store);
    let seed_time = t.elapsed();
    let db_size = store::size_on_disk(dir)?;
    println!(
        "seeded {} revoked + {} issued records in {:.1} s ({:.0}/s), store {:.0} MiB",
        args.count,
        args.revokes,
        seed_time.as_secs_f64(),
        total as f64 / seed_time.as_secs_f64(),
        db_size as f64 / 1048576.0
    );

    // 3. Start-up with the seeded store.
    let (server, public, api, startup_full) = start(dir)?;

    // 4. Revoke latency through the API.
    let mut client = ApiClient::connect(&api, tls.clone()).await?;
    let body = Bytes::from(serde_json::to_vec(&wire::RevokeCertificate {
        ca_id: Some(ca_id.clone()),
        reason: wire::RevocationReason::Name("KEY_COMPROMISE".into()),
    })?);
    let mut revoke_lat = Vec::with_capacity(to_revoke.len());
    let t = Instant::now();
    for serial in &to_revoke {
        let path = format!("/v1/certificates/{serial}/revoke");
        let t = Instant::now();
        let (st, v) = client
            .call_raw(Method::POST, &path, body.clone(), true)
            .await?;
        if st != 200 {
            bail!("revoke {serial}: {st} {v}");
        }
        revoke_lat.push(t.elapsed().as_micros() as u64);
    }
    let revoke_total = t.elapsed();
    drop(client);

    // 5. OCSP, cached and uncached.
    let ca = CaCertificate::parse(ca_pem.as_bytes())?;
    let ocsp_path = format!("/ocsp/{ca_id}");
    let first = revoked_serials.first().context("no serials")?.clone();
    let cached_req = encode_request(
        &[CertIdInfo::for_serial(
            &ca,
            &Serial::from_hex(&first)?,
            HashAlg::Sha1,
        )?],
        None,
    )?;
    let cached: Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync> = Arc::new(move |_| cached_req.clone());
    // Pre-built CertIDs of random seeded serials (the generator must stay cheap).
    let mut ids = Vec::with_capacity(4096);
    for k in 0..4096usize {
        let pick = (k.wrapping_mul(2_654_435_761)) % revoked_serials.len();
        let s = revoked_serials.get(pick).context("serial")?;
        ids.push(CertIdInfo::for_serial(
            &ca,
            &Serial::from_hex(s)?,
            HashAlg::Sha1,
        )?);
    }
    let ids = Arc::new(ids);
    let uncached: Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync> = Arc::new(move |i| {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&i.to_be_bytes());
        let id = ids.get((i as usize) % ids.len());
        encode_request(
            id.map(std::slice::from_ref).unwrap_or_default(),
            Some(&nonce),
        )
        .unwrap_or_default()
    });
    // Warm-up: the delegated responder certificate is made on first use.
    ocsp_load(public.clone(), ocsp_path.clone(), cached.clone(), 1, 0.3).await?;
    let (c_ok, c_err, mut c_lat, c_el) = ocsp_load(
        public.clone(),
        ocsp_path.clone(),
        cached,
        args.concurrency,
        args.seconds,
    )
    .await?;
    let (u_ok, u_err, mut u_lat, u_el) = ocsp_load(
        public.clone(),
        ocsp_path.clone(),
        uncached,
        args.concurrency,
        args.seconds,
    )
    .await?;
    drop(server);

    // 6. CRL build through the builder path, in-process. With expired
    // revocations seeded: first with hygiene off (every entry), then on.
    let mut hygiene = Vec::new();
    if args.expired_fraction > 0.0 {
        for (label, drop_expired) in [
            ("expired entries kept (hygiene off)", false),
            (
                "expired entries dropped and pruned (hygiene on, first CRL)",
                true,
            ),
            ("hygiene on, next CRL (pruned store)", true),
        ] {
            let mut cfg = config.clone();
            cfg.revocation.drop_expired_crl_entries = drop_expired;
            let auth = ca_server::server::open_authority(
                dir,
                cfg,
                format!("http://{public}"),
                &ca_server::vault::MasterOptions::default(),
            )
            .await?;
            let svc = ca_server::revocation::RevocationService::new(
                auth.clone(),
                dir.join(ca_server::server::CRL_DIR),
            );
            let t = Instant::now();
            let crl = svc.build(&ca_id).await?;
            hygiene.push((label, t.elapsed(), crl.meta.entries, crl.der.len()));
            auth.store.close();
        }
    }
    let auth = ca_server::server::open_authority(
        dir,
        config.clone(),
        format!("http://{public}"),
        &ca_server::vault::MasterOptions::default(),
    )
    .await?;
    let svc = ca_server::revocation::RevocationService::new(
        auth.clone(),
        dir.join(ca_server::server::CRL_DIR),
    );
    let t = Instant::now();
    let crl = svc.build(&ca_id).await?;
    let build_time = t.elapsed();
    let crl_entries = crl.meta.entries;
    let crl_size = crl.der.len();
    let crl_number = crl.meta.crl_number;
    let parse_ok = ca_core::crl::parse_crl(&crl.der)
        .map(|p| p.revoked_count() as u64 == crl_entries)
        .unwrap_or(false);
    auth.store.close();

    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| start-up, ~0 certificates stored (spawn → public /health 200) | {:.0} ms |",
        startup_empty.as_secs_f64() * 1000.0
    );
    println!(
        "| start-up, {} certificates stored | {:.0} ms |",
        total + 3,
        startup_full.as_secs_f64() * 1000.0
    );
    println!(
        "| revoke latency via mTLS API, {} revocations, {} already revoked: p50 / p99 / max | {:.2} / {:.2} / {:.2} ms ({:.0} revokes/s) |",
        to_revoke.len(),
        args.count,
        pct(&mut revoke_lat.clone(), 0.5),
        pct(&mut revoke_lat.clone(), 0.99),
        pct(&mut revoke_lat, 1.0),
        to_revoke.len() as f64 / revoke_total.as_secs_f64()
    );
    for (label, took, entries, size) in &hygiene {
        println!(
            "| CRL build, {} of {} revocations expired: {label}, {entries} entries | {:.2} s, {:.1} MiB DER |",
            (args.expired_fraction * args.count as f64) as u64,
            args.count,
            took.as_secs_f64(),
            *size as f64 / 1048576.0
        );
    }
    println!(
        "| CRL build through the builder (range scan + sign + fsync file + commit record + swap), {crl_entries} entries, CRL #{crl_number} | {:.2} s, {:.1} MiB DER (parses: {parse_ok}) |",
        build_time.as_secs_f64(),
        crl_size as f64 / 1048576.0
    );
    println!(
        "| OCSP cached (same no-nonce request), {} conns: p50 / p99 | {:.3} / {:.3} ms, {:.0} req/s, {} errors |",
        args.concurrency,
        pct(&mut c_lat.clone(), 0.5),
        pct(&mut c_lat, 0.99),
        c_ok as f64 / c_el.as_secs_f64(),
        c_err
    );
    println!(
        "| OCSP uncached (nonce, random revoked serial: store read + ECDSA sign), {} conns: p50 / p99 | {:.3} / {:.3} ms, {:.0} req/s, {} errors |",
        args.concurrency,
        pct(&mut u_lat.clone(), 0.5),
        pct(&mut u_lat, 0.99),
        u_ok as f64 / u_el.as_secs_f64(),
        u_err
    );
    Ok(())
}
