//! `cluster-bench`: several ca-server nodes on one PostgreSQL, one run.
//!
//!     bash bench/cluster.sh [--seconds 5] [--connections 16]
//!
//! (the script starts a PostgreSQL cluster with its production defaults,
//! fsync on, and passes `--pg-url`). It prints:
//!
//! 1. issuance throughput, p50 and p99 with `--connections` keep-alive mTLS
//!    connections per node, for 1, 2 and 3 nodes on one database, beside one
//!    node on the embedded redb store measured in the same run, with the CPU
//!    each part used per certificate (ca-server nodes, PostgreSQL, the load
//!    generator) and how busy the machine was;
//! 2. revoke-to-OCSP propagation across nodes: a certificate's "good" answer
//!    is cached on node B, node A revokes it, and B's OCSP is polled until it
//!    answers "revoked" (p50, p99, max over `--revokes` certificates);
//! 3. kill -9 to served again: a client that knows all three node addresses
//!    issues continuously; the node it uses is killed; the time until it has
//!    its next certificate from another node (each of `--kills` trials).

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ca_core::cert::CaCertificate;
use ca_core::csr::create_csr;
use ca_core::keys::{KeyAlgorithm, SoftwareKey};
use ca_core::names::SanEntry;
use ca_core::ocsp::{encode_request, CertIdInfo, HashAlg};
use ca_core::serial::Serial;
use ca_server::api::client::{profile_config, ApiClient, ClientProfile};
use ca_server::api::wire;
use clap::Parser;
use der::Decode;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use x509_cert::name::Name;

#[path = "../bench_support/mod.rs"]
mod bench_support;
mod node;

use node::{admin_sql, copy_dir, init, machine_jiffies, postgres_cpu, Node};

#[derive(Parser)]
#[command(name = "cluster-bench", about = "ca-server nodes on one PostgreSQL")]
struct Args {
    /// A PostgreSQL server to create the bench databases in
    /// (postgres://user@host:port, a user allowed to CREATE DATABASE).
    #[arg(long)]
    pg_url: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Keep-alive connections per node.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Node counts to measure.
    #[arg(long, default_value = "1,2,3")]
    nodes: String,
    /// Revocations timed for propagation.
    #[arg(long, default_value_t = 200)]
    revokes: usize,
    /// kill -9 trials.
    #[arg(long, default_value_t = 5)]
    kills: usize,
}

struct Row {
    label: String,
    rate: f64,
    p50: f64,
    p99: f64,
    errors: u64,
    server_us: f64,
    pg_us: f64,
    client_us: f64,
    busy: f64,
}

/// Drive every node with `connections` connections at once.
fn measure(
    rt: &tokio::runtime::Runtime,
    label: String,
    nodes: &[Node],
    tls: Arc<rustls::ClientConfig>,
    body: Bytes,
    connections: usize,
    seconds: f64,
) -> Row {
    let pids: Vec<String> = nodes.iter().filter_map(Node::pid).collect();
    let server_cpu = || {
        pids.iter()
            .filter_map(|p| bench_support::cpu_seconds(p))
            .sum::<f64>()
    };
    let (s0, pg0, c0, m0) = (
        server_cpu(),
        postgres_cpu(),
        bench_support::cpu_seconds("self").unwrap_or(0.0),
        machine_jiffies(),
    );
    let reports = rt.block_on(async {
        let runs: Vec<_> = nodes
            .iter()
            .map(|n| {
                tokio::spawn(bench_support::run_load(
                    n.api.clone(),
                    tls.clone(),
                    bench_support::Call::post("/v1/certificates"),
                    std::sync::Arc::from([body.clone()]),
                    connections,
                    Duration::from_secs_f64(seconds),
                    false,
                ))
            })
            .collect();
        let mut out = Vec::new();
        for r in runs {
            if let Ok(r) = r.await {
                out.push(r);
            }
        }
        out
    });
    let (s1, pg1, c1, m1) = (
        server_cpu(),
        postgres_cpu(),
        bench_support::cpu_seconds("self").unwrap_or(0.0),
        machine_jiffies(),
    );
    let mut all = bench_support::LoadReport::default();
    let mut elapsed = Duration::ZERO;
    for r in reports {
        all.ok += r.ok;
        all.errors += r.errors;
        all.latencies_us.extend(r.latencies_us);
        elapsed = elapsed.max(r.elapsed);
    }
    all.elapsed = elapsed;
    let (p50, p99, _) = all.percentiles_ms();
    let per = |d: f64| d * 1e6 / all.ok.max(1) as f64;
    Row {
        label,
        rate: all.rate(),
        p50,
        p99,
        errors: all.errors,
        server_us: per(s1 - s0),
        pg_us: per(pg1 - pg0),
        client_us: per(c1 - c0),
        busy: (m1.0 - m0.0) / (m1.1 - m0.1).max(1.0),
    }
}

fn print_row(r: &Row, base: f64) {
    println!(
        "{:<28} {:>8.0} {:>7.2}× {:>8.2} {:>8.2} {:>7} {:>9.0} {:>9.0} {:>9.0} {:>6.0}%",
        r.label,
        r.rate,
        r.rate / base.max(1e-9),
        r.p50,
        r.p99,
        r.errors,
        r.server_us,
        r.pg_us,
        r.client_us,
        r.busy * 100.0
    );
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

/// One OCSP answer from `public` for `serial`: Some(true) when revoked.
async fn ocsp_revoked(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    public: &str,
    path: &str,
    request: &[u8],
) -> anyhow::Result<bool> {
    sender.ready().await?;
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", public)
        .header("content-type", "application/ocsp-request")
        .body(Full::new(Bytes::from(request.to_vec())))?;
    let body = sender
        .send_request(req)
        .await?
        .into_body()
        .collect()
        .await?;
    let resp = x509_ocsp::OcspResponse::from_der(&body.to_bytes())?;
    let bytes = resp.response_bytes.context("no response bytes")?;
    let basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes())?;
    let single = basic
        .tbs_response_data
        .responses
        .first()
        .context("no single response")?;
    Ok(matches!(
        single.cert_status,
        x509_ocsp::CertStatus::Revoked(_)
    ))
}

async fn ocsp_connection(
    public: &str,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(public).await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn issue(client: &mut ApiClient, body: &Bytes) -> anyhow::Result<wire::Certificate> {
    let (st, b) = client
        .send(Method::POST, "/v1/certificates", body.clone(), true)
        .await?;
    if st != 201 {
        bail!("issuance answered {st}: {}", String::from_utf8_lossy(&b));
    }
    Ok(serde_json::from_slice(&b)?)
}

/// Revoke on A, poll B's OCSP (whose "good" answer was cached) until it
/// says revoked: milliseconds per revocation.
async fn propagation(
    a: &Node,
    b: &Node,
    tls: Arc<rustls::ClientConfig>,
    body: &Bytes,
    count: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut client = ApiClient::connect(&a.api, tls).await?;
    // The CA the profile's default (perhaps an alias) issues from.
    let ca_id = issue(&mut client, body).await?.summary.ca_id;
    let (st, v) = client
        .send(
            Method::GET,
            &format!("/v1/cas/{ca_id}/certificate"),
            Bytes::new(),
            false,
        )
        .await?;
    if st != 200 {
        bail!("the issuing CA's certificate: {st}");
    }
    let v: serde_json::Value = serde_json::from_slice(&v)?;
    let ca = CaCertificate::parse(v["certificate"].as_str().unwrap_or_default().as_bytes())?;
    let path = format!("/ocsp/{ca_id}");
    let mut ocsp = ocsp_connection(&b.public).await?;
    let revoke = Bytes::from(serde_json::to_vec(
        &serde_json::json!({"reason": "SUPERSEDED"}),
    )?);
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let cert = issue(&mut client, body).await?;
        let id =
            CertIdInfo::for_serial(&ca, &Serial::from_hex(&cert.summary.serial)?, HashAlg::Sha1)?;
        let request = encode_request(&[id], None)?;
        // Twice: the second answer comes from B's cache.
        for _ in 0..2 {
            if ocsp_revoked(&mut ocsp, &b.public, &path, &request).await? {
                bail!("revoked before its revocation");
            }
        }
        let (st, _) = client
            .send(
                Method::POST,
                &format!("/v1/certificates/{}/revoke", cert.summary.serial),
                revoke.clone(),
                true,
            )
            .await?;
        if st != 200 {
            bail!("revocation answered {st}");
        }
        let t = Instant::now();
        while !ocsp_revoked(&mut ocsp, &b.public, &path, &request).await? {
            if t.elapsed() > Duration::from_secs(10) {
                bail!("B did not see a revocation within 10 s");
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(times)
}

/// Issue through `addrs` (starting at `at`); kill node `at` and time the
/// next certificate served by another node.
async fn failover(
    addrs: Vec<String>,
    at: usize,
    tls: Arc<rustls::ClientConfig>,
    body: Bytes,
    kill: impl FnOnce(),
) -> anyhow::Result<Duration> {
    let mut client = ApiClient::connect(&addrs[at], tls.clone()).await?;
    issue(&mut client, &body).await?;
    kill();
    let killed = Instant::now();
    let mut i = at;
    loop {
        if killed.elapsed() > Duration::from_secs(30) {
            bail!("no node served within 30 s");
        }
        match issue(&mut client, &body).await {
            Ok(_) if i != at => return Ok(killed.elapsed()),
            Ok(_) => {}
            Err(_) => {
                i = (i + 1) % addrs.len();
                if let Ok(c) = ApiClient::connect(&addrs[i], tls.clone()).await {
                    client = c;
                }
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let counts: Vec<usize> = args
        .nodes
        .split(',')
        .map(|s| s.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .context("--nodes must be a list of numbers")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let work = std::env::temp_dir().join(format!("cluster-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = run(&args, &counts, &rt, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run(
    args: &Args,
    counts: &[usize],
    rt: &tokio::runtime::Runtime,
    work: &Path,
) -> anyhow::Result<()> {
    let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
    let csr = create_csr(
        &key,
        &Name::from_str("CN=bench.example.internal")?,
        &[SanEntry::parse("bench.example.internal")?],
    )?;
    let csr_pem = ca_core::pem::encode("CERTIFICATE REQUEST", &csr);
    let body_for = |profile: &ClientProfile| -> anyhow::Result<Bytes> {
        Ok(Bytes::from(serde_json::to_vec(&wire::IssueCertificate {
            ca_id: profile.default_ca_id.clone(),
            csr: csr_pem.clone(),
            profile: Some("tls-server".into()),
            validity_days: None,
            idempotency_token: None,
        })?))
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "cluster-bench: {cores} CPU cores shared by PostgreSQL, every node and the load generator; {} connections per node, {} s each",
        args.connections, args.seconds
    );
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9} {:>7}",
        "store",
        "certs/s",
        "vs redb",
        "p50 ms",
        "p99 ms",
        "errors",
        "node µs",
        "pg µs",
        "load µs",
        "busy"
    );

    // The embedded baseline, same machine, same run.
    let redb_dir = work.join("redb");
    init(&redb_dir, None)?;
    let redb = Node::start(&redb_dir)?;
    let profile = ClientProfile::load(&redb_dir.join("admin/profile.toml"))?;
    let tls = profile_config(&profile)?;
    let body = body_for(&profile)?;
    let base = measure(
        rt,
        "redb, 1 node".into(),
        std::slice::from_ref(&redb),
        tls,
        body,
        args.connections,
        args.seconds,
    );
    print_row(&base, base.rate);
    drop(redb);

    let mut last: Option<(Vec<Node>, ClientProfile)> = None;
    for &n in counts {
        if n == 0 {
            continue;
        }
        let db = format!("bench_{}_{n}", std::process::id());
        rt.block_on(admin_sql(&args.pg_url, &format!("CREATE DATABASE {db}")))?;
        let url = format!("{}/{db}", args.pg_url);
        let first = work.join(format!("pg{n}-0"));
        init(&first, Some(&url))?;
        let mut nodes = vec![Node::start(&first)?];
        for k in 1..n {
            let dir = work.join(format!("pg{n}-{k}"));
            copy_dir(&first, &dir)?;
            let _ = std::fs::remove_dir_all(dir.join("crls"));
            nodes.push(Node::start(&dir)?);
        }
        let profile = ClientProfile::load(&first.join("admin/profile.toml"))?;
        let tls = profile_config(&profile)?;
        let body = body_for(&profile)?;
        let row = measure(
            rt,
            format!("PostgreSQL, {n} node{}", if n == 1 { "" } else { "s" }),
            &nodes,
            tls,
            body,
            args.connections,
            args.seconds,
        );
        print_row(&row, base.rate);
        last = Some((nodes, profile));
    }
    println!("(node µs, pg µs, load µs: CPU per certificate of all ca-server nodes, of PostgreSQL, of this load generator; busy: the whole machine)");

    let Some((mut nodes, profile)) = last else {
        return Ok(());
    };
    if nodes.len() < 2 {
        return Ok(());
    }
    let tls = profile_config(&profile)?;
    let body = body_for(&profile)?;
    let mut times = rt.block_on(propagation(
        &nodes[0],
        &nodes[1],
        tls.clone(),
        &body,
        args.revokes,
    ))?;
    let max = times.iter().copied().fold(0.0, f64::max);
    println!(
        "revoke on node A to 'revoked' in node B's OCSP (B had 'good' cached), {} revocations: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        times.len(),
        pct(&mut times, 0.50),
        pct(&mut times, 0.99),
        max
    );

    let mut served = Vec::new();
    for trial in 0..args.kills {
        let at = trial % nodes.len();
        let addrs: Vec<String> = nodes.iter().map(|n| n.api.clone()).collect();
        let victim = &mut nodes[at];
        let took = rt.block_on(failover(addrs, at, tls.clone(), body.clone(), || {
            victim.kill9()
        }))?;
        served.push(took.as_secs_f64() * 1000.0);
        nodes[at].restart()?;
    }
    let max = served.iter().copied().fold(0.0, f64::max);
    println!(
        "kill -9 of the node a client uses to its next certificate from another node ({} trials, client knows {} addresses): p50 {:.1} ms, max {:.1} ms",
        served.len(),
        nodes.len(),
        pct(&mut served, 0.50),
        max
    );
    Ok(())
}
