//! The temporary server `ca-bench` measures when given no `--profile`: a
//! fresh data directory, optionally seeded with stored certificates, and the
//! sibling `ca-server` binary serving it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ca_core::serial::Serial;
use ca_server::api::client::ClientProfile;

use crate::bench_support;

pub(crate) struct TempServer {
    pub child: Child,
    pub dir: PathBuf,
    stopped: bool,
    /// Where the last start's lines begin in DIR/server.log.
    log_from: u64,
    /// A library preloaded into the server (see `start_temp_server`).
    preload: Option<PathBuf>,
}

impl TempServer {
    /// Stop the server (its store's file lock goes with it); the directory stays.
    pub(crate) fn stop(&mut self) {
        if !std::mem::replace(&mut self.stopped, true) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

/// Where the store's bytes went, table by table, per stored certificate.
pub(crate) fn print_store_usage(dir: &std::path::Path) -> anyhow::Result<()> {
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
    let on_disk = crate::targets::disk_usage(&dir.join(ca_server::store::STORE_FILE))
        .map_or("-".to_string(), |b| format!("{:.0}", per(b)));
    println!(
        "store after the run: {certs} certificates, {on_disk} B/cert on disk (file {:.0} B/cert long); by table (B/cert: stored + page overhead + unused in pages):",
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

/// Removes a directory when dropped, unless disarmed.
struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Initialise a fresh data directory (seeded with `seed` stored certificates,
/// CA keys in `pkcs11`'s token, the `switched_off` config section disabled) and
/// serve it: the guard, the administrator's profile and the API address.
/// `preload`: a library the server runs with (`LD_PRELOAD`), such as
/// eatmydata's, which makes every sync a no-op: checked to be loaded.
pub(crate) fn start_temp_server(
    seed: u64,
    pkcs11: Option<&ca_server::hsm::Pkcs11Config>,
    switched_off: Option<&str>,
    preload: Option<&Path>,
) -> anyhow::Result<(TempServer, ClientProfile, String)> {
    // Each server its own directory, however many of one kind are started.
    static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nth = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let server = bench_support::server_exe()?;
    let dir = std::env::temp_dir().join(format!(
        "ca-bench-{}-{nth}{}{}{}{}",
        std::process::id(),
        if pkcs11.is_some() { "-hsm" } else { "" },
        if seed > 0 { "-seeded" } else { "" },
        switched_off.map(|s| format!("-no{s}")).unwrap_or_default(),
        if preload.is_some() { "-preload" } else { "" }
    ));
    let _ = std::fs::remove_dir_all(&dir);
    // Until the server runs (and its guard takes over), a failed step removes
    // the directory: a failed seed would otherwise leave a gigabyte behind.
    let unfinished = RemoveOnDrop(Some(dir.clone()));
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
    let preload = match preload {
        Some(lib) => Some(
            std::fs::canonicalize(lib)
                .with_context(|| format!("the library to preload, {}", lib.display()))?,
        ),
        None => None,
    };
    let guard = TempServer {
        child: spawn_serve(&dir, preload.as_deref())?,
        dir: dir.clone(),
        stopped: false,
        log_from: 0,
        preload,
    };
    unfinished.disarm();
    let api = listening_at(&dir, Duration::from_secs(30))?;
    if let Some(lib) = &guard.preload {
        if let Err(e) = check_loaded(guard.child.id(), lib) {
            // The loader said why on the server's stderr, in the directory
            // the guard removes.
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            let said: Vec<&str> = tail.into_iter().rev().collect();
            return Err(e.context(format!("the server's log ends: {}", said.join(" | "))));
        }
    }
    let profile = ClientProfile::load(&dir.join("admin/profile.toml"))?;
    Ok((guard, profile, api))
}

/// `ca-server serve` on `dir`, on free ports. The server logs as it would in
/// production (its default level, info, unless CA_BENCH_SERVER_LOG says
/// otherwise), to DIR/server.log: what logging costs is part of what is
/// measured.
fn spawn_serve(dir: &Path, preload: Option<&Path>) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))?;
    let level = std::env::var("CA_BENCH_SERVER_LOG").unwrap_or_else(|_| "info".into());
    let mut serve = Command::new(bench_support::server_exe()?);
    serve
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--api-addr", "127.0.0.1:0", "--public-addr", "127.0.0.1:0"])
        .env("RUST_LOG", level)
        .stdout(std::process::Stdio::null())
        .stderr(log);
    // Only where asked: a preload in ca-bench's own environment (say, it
    // was run under eatmydata) would otherwise make every server unsynced.
    match preload {
        Some(lib) => serve.env("LD_PRELOAD", lib),
        None => serve.env_remove("LD_PRELOAD"),
    };
    Ok(serve.spawn()?)
}

/// Fail unless the process `pid` has `lib` mapped: a preload the loader
/// skipped (it only warns) would measure the server as it is.
fn check_loaded(pid: u32, lib: &Path) -> anyhow::Result<()> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .with_context(|| format!("reading the server's memory map (pid {pid})"))?;
    let name = lib.to_string_lossy();
    if !maps.lines().any(|l| l.ends_with(name.as_ref())) {
        bail!("the server runs without {name}: LD_PRELOAD did not take");
    }
    Ok(())
}

/// Wait (at most `patience`) for the server on `dir` to listen; its API address.
fn listening_at(dir: &std::path::Path, patience: Duration) -> anyhow::Result<String> {
    let addresses = dir.join(ca_server::server::ADDRESSES_FILE);
    let start = Instant::now();
    while !addresses.exists() {
        if start.elapsed() > patience {
            bail!("the server did not start");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let a: serde_json::Value = serde_json::from_slice(&std::fs::read(&addresses)?)?;
    Ok(a["api"].as_str().context("api address")?.to_string())
}

impl TempServer {
    /// Stop the server (kill -9 when `crash`, else SIGTERM and wait), start
    /// it again on its directory, and time it from the start until it
    /// listens (its store opened, repaired and redone).
    pub(crate) fn restart(&mut self, crash: bool) -> anyhow::Result<Duration> {
        if crash {
            self.child.kill()?;
            self.child.wait()?;
            self.stopped = true;
        } else {
            self.stop();
        }
        let _ = std::fs::remove_file(self.dir.join(ca_server::server::ADDRESSES_FILE));
        self.log_from = std::fs::metadata(self.dir.join("server.log")).map_or(0, |m| m.len());
        let started = Instant::now();
        self.child = spawn_serve(&self.dir, self.preload.as_deref())?;
        self.stopped = false;
        listening_at(&self.dir, Duration::from_secs(600))?;
        Ok(started.elapsed())
    }

    /// Where the last restart's store open spent its time recovering the
    /// store, as the server's log says (`store: opened with recovery`).
    pub(crate) fn restart_recovery(&self) -> Option<String> {
        let log = std::fs::read(self.dir.join("server.log")).ok()?;
        let since_restart = String::from_utf8_lossy(log.get(self.log_from as usize..)?);
        let line = since_restart
            .lines()
            .find(|l| l.contains("store: opened with recovery"))?;
        let field = |key: &str| -> Option<String> {
            let (_, rest) = line.split_once(&format!(" {key}="))?;
            Some(rest.split(' ').next()?.trim_matches('"').to_string())
        };
        Some(format!(
            "journal read {} s, redb's open {} s of which its repair {} s, redo {} s",
            field("journal_read")?,
            field("redb_open")?,
            field("redb_repair")?,
            field("redo")?
        ))
    }
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
