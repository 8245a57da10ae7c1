//! `ca-server`: `init` bootstraps a data directory; `serve` runs the service.

/// See the note on `mimalloc` in Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};

use anyhow::Context;
use ca_server::config::{Config, LogFormat, DEFAULT_API_ADDR, DEFAULT_PUBLIC_ADDR};
use ca_server::init::{init, is_initialised, InitOptions};
use ca_server::store::Verdict;
use ca_server::vault::{rotate_master_key, CrashPoint, MasterOptions};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ca-server",
    version,
    about = "Private certificate authority service (ACM-like API over mutual TLS)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: root CA, issuing CA, client-auth CA, the API's
    /// TLS certificate and a first administrator's certificate and key.
    Init(InitArgs),
    /// Run the service (initialising the data directory on first start).
    Serve(ServeArgs),
    /// Re-wrap every CA data key under a new master key (server stopped).
    RotateMasterKey(RotateArgs),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Take a consistent backup of a running server (through its API, as an
    /// administrator): the store as of one commit, config.toml and the API's
    /// TLS files. CA keys stay sealed; the master key is not in it: keep it
    /// (or the passphrase) apart.
    Backup {
        #[arg(long, env = "CA_SERVER_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The administrator's client profile (default DIR/admin/profile.toml).
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Where to write the backup (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the OpenAPI 3.1 description of the management API (JSON).
    Openapi,
    /// Make a new data directory from a backup, and check it: the audit
    /// trail verifies, and the counts are printed. Put the master key (or
    /// passphrase) in place before starting the server on it.
    Restore {
        /// The backup file (from `ca-server backup`).
        #[arg(long)]
        from: PathBuf,
        /// The new data directory (must not exist, or be empty).
        #[arg(long)]
        data_dir: PathBuf,
        /// Serve the restored directory's API on this address instead.
        #[arg(long)]
        api_addr: Option<String>,
        /// Serve its public listener on this address instead.
        #[arg(long)]
        public_addr: Option<String>,
    },
    /// Move a data directory's store from its redb file into an empty
    /// PostgreSQL database (server stopped): every record is copied in one
    /// transaction, then both stores are compared (CAs, keys, aliases,
    /// policies, certificates, CRL numbers, the audit head) and the copied
    /// audit trail is verified. On success [store] in DIR/config.toml points
    /// at the database; the redb file is left in place, unused.
    Migrate {
        /// The data directory whose redb store is copied.
        #[arg(long)]
        from: PathBuf,
        /// The target database, postgres://user@host:port/db (or the
        /// environment variable CA_SERVER_STORE_URL, which keeps a password
        /// out of config.toml).
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check the hash chain of the audit trail and its signed digests (works
    /// on a stopped server): prints OK and the counts, or the first broken
    /// entry or digest (exit status 1).
    Verify {
        #[arg(long, env = "CA_SERVER_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The audit digest key's public half (PEM), as you kept it outside
        /// the data directory: every digest must be signed by it. Without it,
        /// digests are checked with the key they name, which a rewrite of the
        /// whole store could replace.
        #[arg(long)]
        digest_key: Option<PathBuf>,
    },
}

#[derive(Args)]
struct MasterArgs {
    /// File holding the master-key passphrase (Argon2id); without it, the
    /// environment variable CA_MASTER_PASSPHRASE, else DIR/master.key.
    #[arg(long, env = "CA_MASTER_PASSPHRASE_FILE")]
    master_passphrase_file: Option<PathBuf>,
    /// The master key file, when it is not DIR/master.key: keep it outside
    /// the data directory so a backup of the directory does not hold both the
    /// sealed keys and the key that opens them. Give the same path to every
    /// command that opens the store.
    #[arg(long, env = "CA_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
}

/// CA_MASTER_PASSPHRASE, taken out of the environment before any thread starts.
static ENV_PASSPHRASE: std::sync::OnceLock<ca_server::vault::EnvSecret> =
    std::sync::OnceLock::new();
/// CA_PKCS11_PIN, likewise.
static ENV_TOKEN_PIN: std::sync::OnceLock<ca_server::vault::EnvSecret> = std::sync::OnceLock::new();

impl MasterArgs {
    fn options(&self) -> MasterOptions {
        MasterOptions {
            passphrase_file: self.master_passphrase_file.clone(),
            key_file: self.master_key_file.clone(),
            env_passphrase: ENV_PASSPHRASE.get().cloned().unwrap_or_default(),
            env_token_pin: ENV_TOKEN_PIN.get().cloned().unwrap_or_default(),
            token_master: None,
        }
    }
}

#[derive(Args)]
struct RotateArgs {
    #[arg(long, env = "CA_SERVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    master: MasterArgs,
    /// Derive the new master key from this passphrase file instead of making
    /// a new random key file.
    #[arg(long)]
    new_passphrase_file: Option<PathBuf>,
    /// Test hook: exit at a stage to simulate a crash (new-key-written, committed).
    #[arg(long, hide = true)]
    crash_after: Option<CrashPoint>,
}

#[derive(Args)]
struct InitArgs {
    /// Data directory (created with 0700 permissions).
    #[arg(long, env = "CA_SERVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// DNS names / IPs of the API's TLS certificate (repeatable).
    #[arg(long = "tls-name", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
    tls_names: Vec<String>,
    #[arg(long, default_value = DEFAULT_API_ADDR)]
    api_addr: String,
    #[arg(long, default_value = DEFAULT_PUBLIC_ADDR)]
    public_addr: String,
    /// Common name of the first administrator.
    #[arg(long, default_value = "admin")]
    admin_name: String,
    /// Lifetime in days of the API's TLS certificate, which the server renews
    /// itself (default: the tls-server maximum, 398).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    tls_days: Option<u32>,
    #[command(flatten)]
    master: MasterArgs,
    /// Keep the CA keys in a PKCS#11 token: the module (shared library),
    /// e.g. /usr/lib/softhsm/libsofthsm2.so. Written to [pkcs11] in
    /// config.toml; the root, issuing and client-auth CA keys are then made
    /// inside the token. The PIN comes from --pkcs11-pin-file or CA_PKCS11_PIN.
    #[arg(long, requires = "pkcs11_token_label")]
    pkcs11_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long, requires = "pkcs11_module")]
    pkcs11_token_label: Option<String>,
    /// A file holding the token's user PIN (kept as a path in config.toml).
    #[arg(long, requires = "pkcs11_module")]
    pkcs11_pin_file: Option<PathBuf>,
    /// Keep the master key in the token too: an AES-256 key with this label
    /// (made when absent) wraps the data keys inside the token, in place of
    /// master.key.
    #[arg(long, requires = "pkcs11_module")]
    pkcs11_master_key_label: Option<String>,
    /// Keep the records in this PostgreSQL database (postgres://user@host/db)
    /// instead of the embedded store, so that several nodes can share them
    /// (written to [store] in config.toml; see OPERATIONS.md).
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Reach that database over TLS, its certificate verified against this
    /// CA certificate (PEM); written to [store] tls_ca_file.
    #[arg(long, value_name = "FILE", requires = "postgres")]
    postgres_ca: Option<PathBuf>,
}

impl InitArgs {
    fn pkcs11(&self) -> Option<ca_server::hsm::Pkcs11Config> {
        Some(ca_server::hsm::Pkcs11Config {
            module: self.pkcs11_module.clone()?,
            token_label: self.pkcs11_token_label.clone(),
            slot: None,
            pin_file: self.pkcs11_pin_file.clone(),
            sessions: None,
            master_key_label: self.pkcs11_master_key_label.clone(),
            pin: None,
        })
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Data directory; without it, an embedded default is used and
    /// initialised on first start.
    #[arg(long, env = "CA_SERVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Config file (default DIR/config.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Management API address (mTLS), e.g. 127.0.0.1:8443 (port 0 picks a free one).
    #[arg(long)]
    api_addr: Option<String>,
    /// Public listener (CA certificates, CRLs, OCSP), e.g. 127.0.0.1:8080.
    #[arg(long)]
    public_addr: Option<String>,
    /// Base URL written into issued certificates for CRL/OCSP/caIssuers.
    #[arg(long)]
    public_base_url: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long)]
    max_body_bytes: Option<usize>,
    /// Most management requests handled at once (more get 429).
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Most open management API connections (more wait to be accepted).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Most open public listener connections (more wait to be accepted).
    #[arg(long)]
    public_max_connections: Option<usize>,
    /// Most open connections from one client address, per listener (more are closed).
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// Log format: text or json.
    #[arg(long)]
    log_format: Option<LogFormat>,
    #[command(flatten)]
    master: MasterArgs,
}

/// The same default the CLI looks in (one definition, in `api::client`).
fn default_data_dir() -> PathBuf {
    ca_server::api::client::default_data_dir().unwrap_or_else(|| PathBuf::from("ca-server-data"))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
}

/// SIGTERM and SIGINT, listened for from the moment this is called (inside
/// the runtime), not from the future's first poll: the server announces its
/// addresses before it first polls it, and a SIGTERM in between would
/// otherwise kill the process outright, leaving the store to be repaired.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = int.recv() => tracing::info!("SIGINT received"),
                _ = term.recv() => tracing::info!("SIGTERM received"),
            },
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

fn print_init(s: &ca_server::init::InitSummary) {
    println!("ca-server: initialised");
    println!("  config:            {}", s.config.display());
    println!(
        "  root CA:           {} ({})",
        s.root_ca_id,
        s.root_ca_pem.display()
    );
    println!("  issuing CA:        {}", s.issuing_ca_id);
    println!("  client-auth CA:    {}", s.client_auth_ca_id);
    println!("  API TLS cert:      {}", s.tls_cert.display());
    println!("  admin certificate: {}", s.admin_cert.display());
    println!("  admin key:         {}", s.admin_key.display());
    println!("  client profile:    {}", s.profile.display());
    if let Some(label) = &s.token_master_label {
        println!("  master key:        AES key {label:?} in the PKCS#11 token (never leaves it)");
    }
    let beside_store = s.master_key_file.parent() == s.config.parent();
    if s.master_key_file.exists() && !beside_store {
        println!(
            "  master key:        {} (outside the data directory; pass --master-key-file to every command)",
            s.master_key_file.display()
        );
    }
    if s.master_key_file.exists() && beside_store {
        println!(
            "  master key:        {} -- beside {}: a backup of this directory holds both",
            s.master_key_file.display(),
            ca_server::store::STORE_FILE
        );
        println!(
            "                     the store and the key that opens it. Back the key up apart, or"
        );
        println!("                     use a passphrase (--master-passphrase-file) instead.");
    }
}

fn main() -> anyhow::Result<()> {
    // No transparent huge pages for this process: mimalloc asks for them on
    // its arenas, so memory it gave back to the kernel and touched again
    // came back as a fresh 2 MiB page to be zeroed. Under load that was 1-2%
    // of the server's CPU and stalls seen in p99 (measured with ca-bench, 16
    // connections). Where the kernel refuses, nothing else changes.
    let thp_refused = rustix::thread::disable_transparent_huge_pages(true).err();
    // First, while this is the only thread.
    let _ = ENV_PASSPHRASE.set(ca_server::vault::EnvSecret::take());
    let _ = ENV_TOKEN_PIN.set(ca_server::vault::EnvSecret::take_var(
        ca_server::hsm::PIN_ENV,
    ));
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match cli.command {
        Command::Init(a) => {
            init_logging(LogFormat::Text);
            let pkcs11 = a.pkcs11();
            let dir = a.data_dir.unwrap_or_else(default_data_dir);
            let summary = rt.block_on(init(InitOptions {
                data_dir: dir,
                pkcs11,
                tls_names: a.tls_names,
                api_addr: a.api_addr,
                public_addr: a.public_addr,
                admin_name: a.admin_name,
                tls_days: a.tls_days,
                master: a.master.options(),
                store: match a.postgres {
                    Some(url) => ca_server::config::StoreConfig {
                        backend: ca_server::config::StoreBackend::Postgres,
                        url: Some(url),
                        tls_ca_file: a
                            .postgres_ca
                            .map(|p| {
                                std::fs::canonicalize(&p).with_context(|| p.display().to_string())
                            })
                            .transpose()?,
                        ..Default::default()
                    },
                    None => Default::default(),
                },
            }))?;
            print_init(&summary);
            Ok(())
        }
        Command::Serve(a) => {
            let dir = a.data_dir.unwrap_or_else(default_data_dir);
            if a.config.is_none() && !is_initialised(&dir) {
                init_logging(a.log_format.unwrap_or_default());
                tracing::info!(data_dir = %dir.display(), "first start: initialising");
                let summary = rt.block_on(init(InitOptions {
                    data_dir: dir.clone(),
                    tls_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
                    api_addr: a
                        .api_addr
                        .clone()
                        .unwrap_or_else(|| DEFAULT_API_ADDR.into()),
                    public_addr: a
                        .public_addr
                        .clone()
                        .unwrap_or_else(|| DEFAULT_PUBLIC_ADDR.into()),
                    admin_name: "admin".into(),
                    tls_days: None,
                    master: a.master.options(),
                    pkcs11: None,
                    store: Default::default(),
                }))?;
                print_init(&summary);
            }
            let mut config = match &a.config {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    toml::from_str::<Config>(&text)
                        .with_context(|| format!("parsing {}", path.display()))?
                }
                None => Config::load(&dir)?,
            };
            if let Some(v) = a.api_addr {
                config.api_addr = v;
            }
            if let Some(v) = a.public_addr {
                config.public_addr = v;
            }
            if let Some(v) = a.public_base_url {
                config.public_base_url = Some(v);
            }
            if let Some(v) = a.max_body_bytes {
                config.max_body_bytes = v;
            }
            if let Some(v) = a.max_in_flight {
                config.max_in_flight = v;
            }
            if let Some(v) = a.max_connections {
                config.max_connections = v;
            }
            if let Some(v) = a.public_max_connections {
                config.public_max_connections = v;
            }
            if let Some(v) = a.max_connections_per_ip {
                config.max_connections_per_ip = Some(v);
            }
            if let Some(v) = a.log_format {
                config.log_format = v;
            }
            config.check()?;
            init_logging(config.log_format);
            if let Some(e) = &thp_refused {
                tracing::info!(error = %e, "transparent huge pages stay on for this process");
            }
            rt.block_on(async {
                let shutdown = shutdown_signal();
                ca_server::server::serve(dir, config, a.master.options(), shutdown).await
            })
        }
        Command::RotateMasterKey(a) => {
            init_logging(LogFormat::Text);
            let dir = a.data_dir.unwrap_or_else(default_data_dir);
            // A token in the config may hold the master key (or be where a
            // rotation moves it).
            let config = ca_server::config::Config::load(&dir)
                .with_context(|| format!("reading {}", dir.display()))?;
            let (_token, master) =
                ca_server::vault::with_configured_token(&dir, &config, &a.master.options())?;
            let n = rotate_master_key(
                &dir,
                &master,
                a.new_passphrase_file.as_deref(),
                a.crash_after,
            )
            .with_context(|| {
                format!(
                    "rotating the master key of {} (the server must be stopped)",
                    dir.display()
                )
            })?;
            println!("ca-server: master key rotated; {n} sealed key(s) re-wrapped (CA keys and the audit digest key)");
            Ok(())
        }
        Command::Backup {
            data_dir,
            profile,
            out,
        } => {
            init_logging(LogFormat::Text);
            let dir = data_dir.unwrap_or_else(default_data_dir);
            backup(&rt, &dir, profile, &out)
        }
        Command::Openapi => {
            print!("{}", ca_server::openapi::document_text());
            Ok(())
        }
        Command::Migrate { from, to } => {
            init_logging(LogFormat::Text);
            migrate(&from, to)
        }
        Command::Restore {
            from,
            data_dir,
            api_addr,
            public_addr,
        } => {
            init_logging(LogFormat::Text);
            let fresh = !data_dir.exists();
            let result = restore(&from, &data_dir, api_addr, public_addr);
            if result.is_err() && fresh {
                // Leave no half-made data directory behind.
                let _ = std::fs::remove_dir_all(&data_dir);
            }
            result
        }
        Command::Audit(AuditCommand::Verify {
            data_dir,
            digest_key,
        }) => {
            init_logging(LogFormat::Text);
            let dir = data_dir.unwrap_or_else(default_data_dir);
            let pinned =
                match &digest_key {
                    Some(path) => {
                        let pem = std::fs::read_to_string(path)
                            .with_context(|| format!("reading {}", path.display()))?;
                        Some(ca_core::pem::decode("PUBLIC KEY", &pem).with_context(|| {
                            format!("{} is not a PEM public key", path.display())
                        })?)
                    }
                    None => None,
                };
            match ca_server::store::open_offline(&dir, false)
                .and_then(|s| s.verify_audit(pinned.as_deref()))
                .with_context(|| {
                    format!(
                        "reading the audit trail in {} (the server must be stopped)",
                        dir.display()
                    )
                })? {
                Verdict::Ok {
                    count,
                    digests,
                    covered,
                } => {
                    println!("OK: {count} audit entries, hash chain intact");
                    let key = if pinned.is_some() {
                        "each signed by the pinned audit key"
                    } else {
                        "each signed by the key it names (not pinned: pass --digest-key)"
                    };
                    println!(
                        "OK: {digests} signed digest(s), {key}; they cover entries 1 to {covered}, {} newer",
                        count.saturating_sub(covered)
                    );
                    Ok(())
                }
                Verdict::Broken { seq, why } => {
                    println!("BROKEN at entry {seq}: {why}");
                    std::process::exit(1);
                }
            }
        }
    }
}

/// `ca-server backup`: ask the running server for a snapshot, then move it
/// to `out`.
fn backup(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    profile: Option<PathBuf>,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use ca_server::api::client::{profile_config, ApiClient, ClientProfile};
    if out.exists() {
        anyhow::bail!("{} exists: give a new file", out.display());
    }
    let profile_path = profile.unwrap_or_else(|| dir.join("admin/profile.toml"));
    let profile = ClientProfile::load(&profile_path)
        .with_context(|| format!("loading the client profile {}", profile_path.display()))?;
    let tls = profile_config(&profile).context("the client profile's TLS settings")?;
    eprintln!(
        "ca-server backup: asking {} for a snapshot",
        profile.authority()
    );
    let (status, answer) = rt.block_on(async {
        let mut c = ApiClient::connect(profile.authority(), tls).await?;
        c.call(hyper::Method::POST, "/v1/backups", None).await
    })?;
    if status != 201 {
        anyhow::bail!("the server refused the backup ({status}): {answer}");
    }
    let made: ca_server::authority::backup::BackupMade =
        serde_json::from_value(answer).context("the server's answer")?;
    // The server wrote it into its data directory; take it from there.
    if std::fs::rename(&made.path, out).is_err() {
        std::fs::copy(&made.path, out)
            .with_context(|| format!("copying {} to {}", made.path.display(), out.display()))?;
        std::fs::File::open(out)?.sync_all()?;
        std::fs::remove_file(&made.path)?;
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    println!(
        "backup: {} ({} bytes, sha256 {})\n  as of {}: {} CAs, {} certificates, {} audit entries\n  CA keys are sealed in it; the master key is not: keep it apart",
        out.display(),
        made.size_bytes,
        made.sha256,
        made.created_at,
        made.certificate_authorities,
        made.certificates,
        made.audit_entries
    );
    Ok(())
}

/// `ca-server restore`: a new data directory from a backup, checked.
fn restore(
    from: &std::path::Path,
    dir: &std::path::Path,
    api_addr: Option<String>,
    public_addr: Option<String>,
) -> anyhow::Result<()> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "{} is not empty: restore into a new directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let files = ca_server::store::restore_snapshot(from, dir)
        .with_context(|| format!("restoring {}", from.display()))?;
    for (rel, bytes) in &files {
        let rel_path = std::path::Path::new(rel);
        // Only the names a backup carries: never a path out of the directory.
        if !ca_server::authority::backup::CARRIED_FILES.contains(&rel.as_str()) {
            anyhow::bail!("the backup carries an unexpected file {rel:?}; refusing it");
        }
        let path = dir.join(rel_path);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(if rel.ends_with(".key") { 0o600 } else { 0o644 });
        }
        use std::io::Write;
        let mut f = opts
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    if api_addr.is_some() || public_addr.is_some() {
        let mut config = Config::load(dir).context("the restored config.toml")?;
        if let Some(a) = api_addr {
            config.api_addr = a;
        }
        if let Some(a) = public_addr {
            config.public_addr = a;
        }
        let text = toml::to_string(&config).context("encoding config.toml")?;
        std::fs::write(dir.join("config.toml"), text).context("writing config.toml")?;
    }
    let store = ca_server::store::open_read_only(dir).context("opening the restored store")?;
    let certs = store.count_certs()?;
    let cas = store.list_cas()?.len();
    match store.verify_audit(None)? {
        Verdict::Ok { count, .. } => {
            println!(
                "restored into {}: {cas} CAs, {certs} certificates, {count} audit entries (hash chain intact)",
                dir.display()
            );
        }
        Verdict::Broken { seq, why } => {
            anyhow::bail!("the restored audit trail is broken at entry {seq}: {why}");
        }
    }
    println!(
        "next: put the master key in place ({}/master.key, --master-key-file, or the passphrase), then `ca-server serve --data-dir {}`",
        dir.display(),
        dir.display()
    );
    Ok(())
}

fn migrate(dir: &Path, to: Option<String>) -> anyhow::Result<()> {
    use ca_server::config::{StoreBackend, STORE_URL_ENV};
    let mut config = Config::load(dir)
        .with_context(|| format!("{} is not a ca-server data directory", dir.display()))?;
    if config.store.is_postgres() {
        anyhow::bail!("{} already keeps its records in PostgreSQL", dir.display());
    }
    if !ca_server::store::exists(dir) {
        anyhow::bail!("{} has no store to migrate", dir.display());
    }
    let from_env = std::env::var(STORE_URL_ENV).ok().filter(|u| !u.is_empty());
    let url = match (&to, &from_env) {
        (Some(u), _) | (None, Some(u)) => u.clone(),
        (None, None) => {
            anyhow::bail!("name the target database: --to postgres://… or {STORE_URL_ENV}")
        }
    };
    config.store.backend = StoreBackend::Postgres;
    // A URL given on the command line is kept; one from the environment
    // stays there (it may carry a password).
    config.store.url = to;
    let opts = config.store.postgres_in(dir)?;
    let opts = ca_server::store::postgres::PgOptions { url, ..opts };
    eprintln!("copying the store of {} into the database…", dir.display());
    let report = ca_server::store::migrate::redb_to_postgres(
        dir,
        &opts,
        Box::new(|n| eprintln!("  {n} certificates copied")),
    )?;
    let text = toml::to_string(&config).context("encoding config.toml")?;
    // Replaced whole or not at all: a crash leaves the old or the new file.
    let tmp = dir.join("config.toml.migrate");
    ca_server::files::write_private(&tmp, text.as_bytes()).context("writing config.toml")?;
    std::fs::rename(&tmp, dir.join("config.toml")).context("replacing config.toml")?;
    ca_server::files::sync_dir(dir).context("syncing the data directory")?;
    let rows: u64 = report.rows.values().sum();
    println!(
        "migrated {} in {:.1} s: {} rows; {} CAs, {} certificates, {} audit entries and {} signed digests, compared and verified (hash chain intact)",
        dir.display(),
        report.elapsed.as_secs_f64(),
        rows,
        report.cas,
        report.certificates,
        report.audit_entries,
        report.audit_digests,
    );
    println!(
        "{}/config.toml now says [store] backend = \"postgres\"; start the server as before. The redb file is left in place, unused.",
        dir.display()
    );
    Ok(())
}
