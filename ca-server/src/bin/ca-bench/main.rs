//! `ca-bench`: issuance throughput of a running ca-server over keep-alive mTLS
//! connections, beside ca-core's in-process issuance rate.
//!
//!     cargo run --release -p ca-server --bin ca-bench -- [--seconds 5] [--concurrency 1,16,64]
//!
//! With `--cfssl ADDR --cfssl-ca PEM --cfssl-pid PID` it drives a running
//! `cfssl serve` (HTTPS) with the same load generator in the same run, and
//! with `--step-ca STORE,ADDR,PID[,DATABASE]` (repeatable) and the client
//! certificate options one or more running step-ca (renewals over mutual
//! TLS), and prints them side by side with each server's CPU time per
//! certificate and the load generator's own CPU per request
//! (`bench/peers.sh` sets it all up).
//! `--seed N` also measures the rate with N certificates already stored, the
//! full store and a fresh empty one (another server) taking turns, then how
//! soon the full one listens again after kill -9 under load and after a clean
//! stop. `--rounds N`
//! takes each level in N turns per target, the targets alternating and every
//! other round in reverse order, so drift lands on all alike; the crypto
//! floor is measured again after each round, and each level's CPU ratio is
//! to the median of its own.
//! `--pkcs11-module PATH --pkcs11-token LABEL --pkcs11-pin-file FILE` also
//! measures issuance with the issuing key in that PKCS#11 token, in process
//! and through a second server whose CA keys are in the token
//! (`bench/hsm.sh` sets up a SoftHSM2 token and runs it).
//! `--metrics-off-peer` also drives a server with `[metrics] enabled = false`
//! in the same run: the cost of the metrics on issuance; `--events-off-peer`
//! one with `[events] enabled = false`: the cost of the event outbox;
//! `--syncs-off-peer LIB` one run with LIB preloaded (eatmydata's, which
//! makes every sync a no-op): what durability costs, and how the server
//! would compare with CFSSL (which stores nothing) without it; the store
//! device's cache flushes per certificate, for both, show that it took.
//!
//! Without `--profile`, it initialises a temporary data directory and starts the
//! sibling `ca-server` binary itself. With `--profile DIR/admin/profile.toml` it
//! loads an existing server (issuing real certificates into its store).

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context;
use ca_core::csr::create_csr;
use ca_core::keys::{KeyAlgorithm, SoftwareKey};
use ca_core::names::SanEntry;
use ca_server::api::client::{profile_config, ApiClient, ClientProfile};
use ca_server::api::wire;
use clap::Parser;
use x509_cert::name::Name;

#[path = "../bench_support/mod.rs"]
mod bench_support;
mod floors;
mod tally;
mod targets;
mod temp_server;

use floors::{crypto_floor_us, durability_floor, in_process_rate};
use tally::{median, run_turn, switched_off_ratios, syncs_off_ratios, Measured, Tally};
use targets::{disk_usage, issue_bodies, Target, CFSSL, OURS, READS, STEP_CA, SYNCS_OFF};
use temp_server::{print_store_usage, start_temp_server};

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
    /// A running step-ca to measure beside us, as STORE,ADDR,PID[,DATABASE]
    /// (STORE names its database kind, e.g. bbolt; DATABASE, its file or
    /// directory, is measured per certificate). Repeatable.
    #[arg(long, requires_all = ["step_ca_root", "step_ca_client_chain", "step_ca_client_key"])]
    step_ca: Vec<String>,
    /// step-ca's root certificate (PEM).
    #[arg(long)]
    step_ca_root: Option<PathBuf>,
    /// A client certificate step-ca issued, then its issuer (PEM): each
    /// request renews it.
    #[arg(long)]
    step_ca_client_chain: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long)]
    step_ca_client_key: Option<PathBuf>,
    /// Also measure 16 connections on a store already holding this many
    /// certificates, against a fresh empty one (the two alternating, at least
    /// twice each), then the full one's restart after kill -9 and after a
    /// clean stop.
    #[arg(long)]
    seed: Option<u64>,
    /// Turns per target and level: the targets alternate, each turn lasting
    /// --seconds, every other round in reverse order (an even count balances
    /// who goes first), and each figure is over all of a target's turns.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
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
    /// Also measure a second server run with this library preloaded to make
    /// its syncs no-ops (Debian's eatmydata:
    /// /usr/lib/x86_64-linux-gnu/libeatmydata.so), for what durability
    /// costs in the same run. A measurement, never a way to run.
    #[arg(long, value_name = "LIBEATMYDATA")]
    syncs_off_peer: Option<PathBuf>,
    /// Also measure reads on the ca-server: `GET` of one certificate it
    /// issued first, each answered once its audit entry is durable (the
    /// row's µs/cert and disk B/cert are per read).
    #[arg(long)]
    reads: bool,
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

/// Distinct CSRs the load generator sends in turn.
const BENCH_CSRS: usize = 64;

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
    let (guard, profile, api) = match &args.profile {
        Some(p) => {
            let profile = ClientProfile::load(p)?;
            let api = profile.authority().to_string();
            (None, profile, api)
        }
        None => {
            let (g, p, a) = start_temp_server(0, None, None, None)?;
            (Some(g), p, a)
        }
    };
    // A second server whose CA keys (the issuing one included) are in the token.
    let hsm_server = match &pkcs11 {
        Some(cfg) => Some(start_temp_server(0, Some(cfg), None, None)?),
        None => None,
    };
    let tls = profile_config(&profile)?;
    let bodies = issue_bodies(&csr_pems, &profile.default_ca_id)?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!("ca-bench: server {api}, {cores} CPU cores shared by servers and load generator");
    println!("ca-bench: issuing ECDSA P-256 tls-server certificates from a P-256 issuing CA, pre-made P-256 CSR");
    let floor = crypto_floor_us()?;
    println!("crypto floor (one P-256 signature + one P-256 signature check, aws-lc, 1 core): {floor:.0} µs");
    // Every floor measured in the run, for the spread printed at the end.
    let mut all_floors = vec![floor];
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
        name: OURS.into(),
        addr: api.clone(),
        tls: tls.clone(),
        call: bench_support::Call::post("/v1/certificates"),
        bodies: bodies.clone(),
        pid: guard.as_ref().map(|g| g.child.id().to_string()),
        store: guard
            .as_ref()
            .map(|g| g.dir.join(ca_server::store::STORE_FILE)),
    };
    let mut targets = vec![ours];
    if args.reads {
        let reads = Target::reads_of(&rt, &targets[0])?;
        targets.push(reads);
    }
    if let Some((g, p, a)) = &hsm_server {
        targets.push(Target::temp_server("ca-server+hsm", &csr_pems, g, p, a)?);
    }
    let mut switched_off_servers = Vec::new();
    for (wanted, section, name) in [
        (args.metrics_off_peer, "metrics", "no-metrics"),
        (args.events_off_peer, "events", "no-events"),
    ] {
        if !wanted {
            continue;
        }
        let (g, p, a) = start_temp_server(0, None, Some(section), None)?;
        targets.push(Target::temp_server(name, &csr_pems, &g, &p, &a)?);
        switched_off_servers.push(g);
    }
    if let Some(lib) = &args.syncs_off_peer {
        let (g, p, a) = start_temp_server(0, None, None, Some(lib))?;
        targets.push(Target::temp_server(SYNCS_OFF, &csr_pems, &g, &p, &a)?);
        switched_off_servers.push(g);
    }
    if let Some(addr) = &args.cfssl {
        let ca = args
            .cfssl_ca
            .as_ref()
            .context("--cfssl needs --cfssl-ca (the CA of its TLS certificate)")?;
        targets.push(Target::cfssl(addr, ca, args.cfssl_pid, &csr_pems)?);
    }
    if let (Some(root), Some(chain), Some(key)) = (
        &args.step_ca_root,
        &args.step_ca_client_chain,
        &args.step_ca_client_key,
    ) {
        for spec in &args.step_ca {
            targets.push(Target::step_ca(spec, root, chain, key)?);
        }
    }
    println!(
        "(disk B/cert: what each store's file(s) took on disk from a level's first turn to its \
         last, per certificate; ca-server's counts its store file, whose changed pages wait in \
         its journal for up to 64 MiB between checkpoints, so one level's figure may run behind \
         or ahead; the store line after the run, taken after a clean close, is exact)"
    );
    println!(
        "{:>11} {:>14} {:>9} {:>8} {:>8} {:>7} {:>15} {:>14} {:>13}",
        "connections",
        "server",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "server µs/cert",
        "client µs/req",
        "disk B/cert"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    for c in levels {
        // (durable commits, store writes) over our server's turns; None once
        // any turn's count could not be read (no figure from part of them).
        let mut commit_counts: Option<(u64, u64)> = Some((0, 0));
        let mut tallies: Vec<Tally> = targets.iter().map(|_| Tally::default()).collect();
        // The crypto floor again after every round, so that this level's
        // ratio is to the machine's speed while the level ran.
        let mut level_floors = Vec::new();
        // The stores' disk before the level's first turn and after its last
        // (not turn by turn: what a store does between turns, such as
        // badger's compactions, counts too).
        let stores = || -> Vec<Option<u64>> {
            targets
                .iter()
                .map(|t| t.store.as_deref().and_then(disk_usage))
                .collect()
        };
        let stores_before = stores();
        // The targets take turns, so that the shared machine's drift lands on
        // all of them alike; every other round in reverse order (A B, B A), so
        // that a steady drift does not favour whoever goes first.
        for round in 0..args.rounds {
            let mut order: Vec<usize> = (0..targets.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (t, tally) = (&targets[i], &mut tallies[i]);
                if t.name != OURS {
                    tally.add(run_turn(&rt, t, c, args.seconds));
                    continue;
                }
                let before = commits(&rt, &api, &tls);
                tally.add(run_turn(&rt, t, c, args.seconds));
                let after = commits(&rt, &api, &tls);
                commit_counts = match (commit_counts, before, after) {
                    (Some((n, w)), Some(a), Some(b)) => {
                        Some((n + b.0.saturating_sub(a.0), w + b.1.saturating_sub(a.1)))
                    }
                    _ => None,
                };
            }
            level_floors.push(crypto_floor_us()?);
        }
        let level_floor = median(&mut level_floors).unwrap_or(floor);
        all_floors.extend_from_slice(&level_floors);
        let commit_counts = commit_counts.filter(|(n, _)| *n > 0);
        let stores_after = stores();
        let results: Vec<Measured> = tallies
            .into_iter()
            .zip(stores_before.iter().zip(&stores_after))
            .map(|(tally, (before, after))| {
                let growth = before.zip(*after).map(|(b, a)| a as i64 - b as i64);
                tally.measured(growth)
            })
            .collect();
        for (t, m) in targets.iter().zip(&results) {
            println!(
                "{c:>11} {:>14} {:>9.0} {:>8.2} {:>8.2} {:>7} {:>15} {:>14} {:>13}",
                t.name,
                m.rate,
                m.p50,
                m.p99,
                m.errors,
                opt(m.server_us),
                opt(m.client_us),
                opt(m.store_bytes)
            );
        }
        let ours = &results[0];
        let mut ratios = vec![];
        if let Some(us) = ours.server_us {
            ratios.push(format!(
                "ca-server CPU/cert = {:.1}× the crypto floor ({level_floor:.0} µs, median of {} taken between its turns)",
                us / level_floor,
                level_floors.len()
            ));
        }
        if let Some((commits, writes)) = commit_counts.filter(|&(commits, _)| commits > 0) {
            ratios.push(format!(
                "{:.1} store writes per durable commit",
                writes as f64 / commits as f64
            ));
            if let (Some(d), Some(what)) = (ours.disk_bytes, ours.disk_counted) {
                let per_commit = d as f64 / commits as f64;
                ratios.push(format!(
                    "{:.1} KiB to disk per commit ({:.1} pages of 4 KiB, {what})",
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
        let cfssl = targets
            .iter()
            .zip(&results)
            .find(|(t, _)| t.name == CFSSL)
            .map(|(_, m)| m);
        let mut syncs_off = None;
        for (t, peer) in targets.iter().zip(&results).skip(1) {
            if t.name == CFSSL || t.name.starts_with(STEP_CA) {
                let whose = if t.name == CFSSL { "CFSSL" } else { &t.name };
                ratios.push(format!(
                    "throughput {:.2}× {whose}'s, p50 {:.2}× {whose}'s",
                    ours.rate / peer.rate.max(1e-9),
                    ours.p50 / peer.p50.max(1e-9)
                ));
                if let (Some(a), Some(b)) = (ours.server_us, peer.server_us) {
                    ratios.push(format!("server CPU/cert {:.2}× {whose}'s", a / b));
                }
            } else if t.name == READS {
                ratios.push(format!(
                    "reads: {:.2}× the issuance rate, p50 {:.2}× its",
                    peer.rate / ours.rate.max(1e-9),
                    peer.p50 / ours.p50.max(1e-9)
                ));
            } else if t.name == "no-metrics" {
                switched_off_ratios(&mut ratios, "metrics", ours, peer);
            } else if t.name == SYNCS_OFF {
                // Printed last: after the figures against the peers.
                syncs_off = Some(peer);
            } else if t.name == "no-events" {
                switched_off_ratios(&mut ratios, "events", ours, peer);
                if let (Some(a), Some(b)) = (ours.store_bytes, peer.store_bytes) {
                    ratios.push(format!("store bytes/cert {a:.0} vs {b:.0} events off"));
                }
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
        if let Some(peer) = syncs_off {
            syncs_off_ratios(&mut ratios, ours, peer, cfssl);
        }
        println!("{:>11} {}", "", ratios.join("; "));
    }
    if all_floors.len() > 1 {
        let low = all_floors.iter().copied().fold(f64::INFINITY, f64::min);
        let high = all_floors.iter().copied().fold(0.0, f64::max);
        let mid = median(&mut all_floors).unwrap_or(floor);
        println!(
            "crypto floor over the run: {} measurements, median {mid:.0} µs, {low:.0}–{high:.0} µs",
            all_floors.len()
        );
    }
    if let Some(count) = args.seed {
        // The baseline is a fresh empty store, not the one the levels above
        // filled (with 5 s turns and --rounds 3, a quarter of a million).
        let (empty_store, empty_profile, empty_api) = start_temp_server(0, None, None, None)?;
        let empty_target =
            Target::temp_server("empty", &csr_pems, &empty_store, &empty_profile, &empty_api)?;
        let (mut seeded, seeded_profile, seeded_api) = start_temp_server(count, None, None, None)?;
        let seeded_target =
            Target::temp_server("seeded", &csr_pems, &seeded, &seeded_profile, &seeded_api)?;
        let store_file = seeded.dir.join(ca_server::store::STORE_FILE);
        let length = std::fs::metadata(&store_file)?.len();
        let size = disk_usage(&store_file).context("the seeded store's disk usage")?;
        // The empty store and the full one take turns (at least twice each,
        // the first to go alternating), so the ratio is not the machine's
        // drift between two measurements.
        let rounds = args.rounds.max(2);
        let (mut empty, mut full) = (Tally::default(), Tally::default());
        let mut per_round = Vec::new();
        for round in 0..rounds {
            let (e, f) = if round % 2 == 0 {
                let e = run_turn(&rt, &empty_target, 16, args.seconds);
                (e, run_turn(&rt, &seeded_target, 16, args.seconds))
            } else {
                let f = run_turn(&rt, &seeded_target, 16, args.seconds);
                (run_turn(&rt, &empty_target, 16, args.seconds), f)
            };
            per_round.push(format!(
                "{:.2}",
                f.report.rate() / e.report.rate().max(1e-9)
            ));
            empty.add(e);
            full.add(f);
        }
        let (e, f) = (empty.measured(None), full.measured(None));
        println!(
            "with {count} certificates stored ({:.0} MB on disk, {:.0} B each; file {:.0} MB long): 16 connections {:.0} req/s, p99 {:.2} ms = {:.2}× a fresh empty store's {:.0} req/s (p99 {:.2} ms); {rounds} turns each of {} s, taken alternately: {}",
            size as f64 / 1e6,
            size as f64 / count as f64,
            length as f64 / 1e6,
            f.rate,
            f.p99,
            f.rate / e.rate.max(1e-9),
            e.rate,
            e.p99,
            args.seconds,
            per_round.join(", ")
        );
        // How soon the seeded store serves again after a crash under load
        // (redb repairs a store not closed cleanly by walking its tables,
        // then the journal's records are redone), against a clean stop.
        let crashed = std::thread::scope(|scope| {
            let load = scope.spawn(|| run_turn(&rt, &seeded_target, 16, 2.0));
            std::thread::sleep(std::time::Duration::from_secs(1));
            let restarted = seeded.restart(true);
            let _ = load.join();
            restarted
        })?;
        let spent = seeded
            .restart_recovery()
            .unwrap_or_else(|| "the server logged no recovery".into());
        let clean = seeded.restart(false)?;
        println!(
            "restart with {count} certificates stored, until it listens: {:.2} s after kill -9 under load at 16 connections ({spent}), {:.2} s after a clean stop",
            crashed.as_secs_f64(),
            clean.as_secs_f64()
        );
    }
    drop(targets);
    if let Some(mut g) = guard {
        g.stop();
        if args.reads {
            println!("(the store's figures below count the reads' audit entries too)");
        }
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
