//! ACME throughput: whole orders per second (new order, http-01 challenge,
//! finalize, download; each account on its own kept-alive connection) with
//! the Rust client (`ca_server::acme::client`), at 1 and 16 concurrent
//! accounts, beside the same server's direct-API issuance rate and, when
//! Debian's `pebble` and `pebble-challtestsrv` are on PATH, beside pebble
//! (Let's Encrypt's ACME test server) driven by the same client, all in one
//! run. Starts its own ca-server (the sibling binary) in a temporary directory.
//!
//! `acme-bench [--seconds S] [--concurrency 1,16] [--no-pebble]`

#[allow(dead_code)] // its load generator is ca-bench's; this bench uses server_exe
mod bench_support;

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ca_server::acme::client::{AcmeClient, Responder};
use ca_server::api::client::{profile_config, ApiClient, ClientProfile};
use clap::Parser;
use hyper::Method;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "ACME orders per second against ca-server, its direct API, and pebble")]
struct Args {
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    #[arg(long, default_value = "1,16", value_delimiter = ',')]
    concurrency: Vec<usize>,
    /// Do not measure pebble even if it is installed.
    #[arg(long)]
    no_pebble: bool,
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(StdListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_port(port: u16) -> anyhow::Result<()> {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("nothing listens on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Rate and median latency of `work` run by `n` workers for `seconds`.
struct Figure {
    rate: f64,
    p50_ms: f64,
    errors: usize,
}

/// A ca-server with ACME on `acme_port`, validating http-01 at `http01`.
fn start_server(
    dir: &Path,
    acme_port: u16,
    http01: u16,
) -> anyhow::Result<(Kill, ClientProfile, String)> {
    let server = bench_support::server_exe()?;
    let st = Command::new(&server)
        .args(["init", "--data-dir"])
        .arg(dir)
        .args(["--api-addr", &format!("127.0.0.1:{}", free_port()?)])
        .args(["--public-addr", &format!("127.0.0.1:{}", free_port()?)])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("ca-server init failed");
    }
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path)?;
    let tuned = text
        .replace(
            "[acme]\nenabled = false",
            "[acme]\nenabled = true\nresolve_to = \"127.0.0.1\"",
        )
        .replace(
            "listen = \"127.0.0.1:9443\"",
            &format!("listen = \"127.0.0.1:{acme_port}\""),
        )
        .replace("http01_port = 80", &format!("http01_port = {http01}"))
        .replace(
            "orders_per_account_per_hour = 1000",
            "orders_per_account_per_hour = 0",
        );
    std::fs::write(&path, tuned)?;
    let child = Command::new(&server)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let guard = Kill(child);
    wait_port(acme_port)?;
    let profile = ClientProfile::load(&dir.join("admin/profile.toml"))?;
    let addresses: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(ca_server::server::ADDRESSES_FILE))?)?;
    let api = addresses["api"]
        .as_str()
        .context("api address")?
        .to_string();
    Ok((guard, profile, api))
}

async fn api_client(profile: &ClientProfile, api: &str) -> anyhow::Result<ApiClient> {
    Ok(ApiClient::connect(api, profile_config(profile)?).await?)
}

/// Direct API issuance by `n` connections.
async fn direct(
    profile: &ClientProfile,
    api: &str,
    ca: &str,
    n: usize,
    seconds: f64,
) -> anyhow::Result<Figure> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let csr = ca_core::pem::encode(
        "CERTIFICATE REQUEST",
        &ca_server::acme::client::csr_for(&["direct.example.test"]).map_err(anyhow::Error::msg)?,
    );
    let mut tasks = Vec::new();
    for _ in 0..n {
        let mut c = api_client(profile, api).await?;
        let body = json!({"csr": csr, "ca_id": ca});
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0);
            while Instant::now() < deadline {
                let t = Instant::now();
                match c.call(Method::POST, "/v1/certificates", Some(&body)).await {
                    Ok((201, _)) => lat.push(t.elapsed()),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    gather(tasks, seconds).await
}

async fn gather(
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
    seconds: f64,
) -> anyhow::Result<Figure> {
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    all.sort();
    let p50_ms = all
        .get(all.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    Ok(Figure {
        rate: all.len() as f64 / seconds,
        p50_ms,
        errors,
    })
}

/// Whole ACME orders by `n` accounts.
async fn acme_orders(
    directory: &str,
    tls: Arc<rustls::ClientConfig>,
    responder: &Responder,
    n: usize,
    seconds: f64,
) -> anyhow::Result<Figure> {
    let mut clients = Vec::new();
    for _ in 0..n {
        let mut c = AcmeClient::connect(directory, tls.clone())
            .await
            .map_err(anyhow::Error::msg)?;
        c.new_account().await.map_err(anyhow::Error::msg)?;
        clients.push(c);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        let responder = responder.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors) = (Vec::new(), 0);
            let mut k = 0u64;
            while Instant::now() < deadline {
                k += 1;
                let name = format!("o{i}-{k}.example.test");
                let t = Instant::now();
                match c.obtain(&[name.as_str()], &responder).await {
                    Ok(_) => lat.push(t.elapsed()),
                    Err(e) => {
                        errors += 1;
                        if errors == 1 {
                            eprintln!("acme-bench: an order failed: {e}");
                        }
                    }
                }
            }
            (lat, errors)
        }));
    }
    gather(tasks, seconds).await
}

/// pebble with its DNS test server (every name → 127.0.0.1), validating
/// http-01 at `http01`, with a TLS certificate from our CA.
fn start_pebble(
    dir: &Path,
    cert: &Path,
    key: &Path,
    http01: u16,
) -> anyhow::Result<(Kill, Kill, String)> {
    let (dns, mgmt, port, pmgmt) = (free_port()?, free_port()?, free_port()?, free_port()?);
    let chall = Command::new("pebble-challtestsrv")
        .args(["-dns01", &format!("127.0.0.1:{dns}")])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(["-management", &format!("127.0.0.1:{mgmt}")])
        // The responder listens on 127.0.0.1 only: answer A queries alone.
        .args(["-defaultIPv6", ""])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let chall = Kill(chall);
    let config = dir.join("pebble.json");
    std::fs::write(
        &config,
        json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{pmgmt}"),
            "certificate": cert, "privateKey": key,
            "httpPort": http01, "tlsPort": free_port()?,
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
        }})
        .to_string(),
    )?;
    let pebble = Command::new("pebble")
        .arg("-config")
        .arg(&config)
        .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
        // No artificial validation delay, no deliberately refused nonces.
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_AUTHZREUSE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pebble = Kill(pebble);
    wait_port(port)?;
    Ok((chall, pebble, format!("https://127.0.0.1:{port}/dir")))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let tmp = std::env::temp_dir().join(format!("acme-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let result = rt.block_on(run(&args, &tmp));
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

async fn run(args: &Args, tmp: &Path) -> anyhow::Result<()> {
    let responder = Responder::default();
    let http01 = free_port()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", http01)).await?;
    tokio::spawn(responder.clone().serve(listener));
    let acme_port = free_port()?;
    let data = tmp.join("data");
    let (_server, profile, api) = start_server(&data, acme_port, http01)?;
    let mut admin = api_client(&profile, &api).await?;
    let ca = profile
        .default_ca_id
        .clone()
        .context("the profile names no default CA")?;
    let (st, v) = admin
        .call(
            Method::PUT,
            "/v1/policies/acme-bench",
            Some(&json!({"effect": "allow", "principals": [{"uri": "acme:default/*"}],
                "actions": ["issue"], "cas": [ca], "conditions": {"name_patterns": ["*.example.test"]}})),
        )
        .await?;
    if st != 200 {
        bail!("policy: {st} {v}");
    }
    let root = std::fs::read(&profile.root_ca)?;
    let tls = ca_server::api::client::client_config(&root, None, None)?;
    let directory = format!("https://127.0.0.1:{acme_port}/acme/default/directory");

    // pebble, with a certificate from our CA so the same client trusts both.
    let pebble = if args.no_pebble || !on_path("pebble") || !on_path("pebble-challtestsrv") {
        println!("acme-bench: pebble not measured (install Debian's pebble package, or drop --no-pebble)");
        None
    } else {
        let key = ca_core::keys::SoftwareKey::generate(ca_core::keys::KeyAlgorithm::EcdsaP256)?;
        let csr = ca_core::csr::create_csr(
            &key,
            &x509_cert::name::Name::default(),
            &[ca_core::names::SanEntry::parse("IP:127.0.0.1")?],
        )?;
        let (st, v) = admin
            .call(
                Method::POST,
                "/v1/certificates",
                Some(
                    &json!({"csr": ca_core::pem::encode("CERTIFICATE REQUEST", &csr), "ca_id": ca}),
                ),
            )
            .await?;
        if st != 201 {
            bail!("pebble's certificate: {st} {v}");
        }
        let mut chain = v["certificate"].as_str().unwrap_or_default().to_string();
        if let Some(c) = v["certificate_chain"].as_str() {
            chain.push_str(c);
        }
        let (cert, keyf) = (tmp.join("pebble.pem"), tmp.join("pebble.key"));
        std::fs::write(&cert, chain)?;
        std::fs::write(&keyf, key.to_pkcs8_pem().as_bytes())?;
        Some(start_pebble(tmp, &cert, &keyf, http01)?)
    };

    println!("acme-bench: 2 CPU cores shared by the servers and this client; http-01 answered by an in-process responder");
    println!(
        "{:>8} {:>22} {:>10} {:>9} {:>7}",
        "accounts", "what", "per s", "p50 ms", "errors"
    );
    for &n in &args.concurrency {
        let d = direct(&profile, &api, &ca, n, args.seconds).await?;
        let a = acme_orders(&directory, tls.clone(), &responder, n, args.seconds).await?;
        let row = |what: &str, f: &Figure| {
            println!(
                "{n:>8} {what:>22} {:>10.1} {:>9.2} {:>7}",
                f.rate, f.p50_ms, f.errors
            )
        };
        row("ca-server API issue", &d);
        row("ca-server ACME order", &a);
        let mut ratios = vec![format!(
            "ACME orders/s = {:.3}× direct API issuance",
            a.rate / d.rate.max(1e-9)
        )];
        if let Some((_, _, pebble_dir)) = &pebble {
            let p = acme_orders(pebble_dir, tls.clone(), &responder, n, args.seconds).await?;
            row("pebble ACME order", &p);
            ratios.push(format!(
                "ca-server ACME = {:.2}× pebble",
                a.rate / p.rate.max(1e-9)
            ));
        }
        println!("{:>8} {}", "", ratios.join("; "));
    }
    Ok(())
}
