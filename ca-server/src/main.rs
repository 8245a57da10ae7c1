//! `ca-server`: `init` bootstraps a data directory; `serve` runs the service.
//! The command line (its clap types) is here; the subcommands' bodies are in
//! [`cli`], group by group.

/// See the note on `mimalloc` in Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

use std::path::PathBuf;

use anyhow::Context;
use ca_server::config::{LogFormat, DEFAULT_API_ADDR, DEFAULT_PUBLIC_ADDR};
use ca_server::vault::{CrashPoint, MasterOptions};
use clap::{Args, Parser, Subcommand};

use cli::backup::{backup, migrate, restore};
use cli::maintenance::{run_audit_verify, run_check, run_rotate_master_key};
use cli::policy::{run_policy_list, run_policy_remove};
use cli::start::{run_init, run_serve};

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
    /// Check a stopped server's store end to end, changing nothing: every
    /// page against its checksum and redb's allocator state (redb's integrity
    /// check), every certificate record against its serial, DER and expiry
    /// index entries and its DER against the record, every index entry
    /// against its record, and the audit trail (as `audit verify`). A store
    /// a crash left is recovered in memory first. Prints what it checked, or
    /// each problem (exit status 1).
    Check {
        #[arg(long, env = "CA_SERVER_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// The stored access policy statements, without the API: for an
    /// operator it no longer lets in (a deny statement that shuts out every
    /// administrator, or one this version cannot read, which keeps the
    /// server from starting).
    #[command(subcommand)]
    Policy(PolicyCommand),
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
    /// Make a new data directory from a backup, and check it as `check`
    /// does (every page, every certificate's indexes, the audit trail); the
    /// counts are printed. Put the master key (or passphrase) in place
    /// before starting the server on it.
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

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print every stored statement, one per line: its id, a tab, its JSON
    /// as stored (redb: the server must be stopped).
    List {
        #[arg(long, env = "CA_SERVER_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Remove one stored statement, recorded in the audit trail with the
    /// user who ran this (redb: the server must be stopped; PostgreSQL: the
    /// running nodes follow the change). No policy is asked: whoever can
    /// open the store can change it.
    Remove {
        #[arg(long, env = "CA_SERVER_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// The statement's id (as `policy list` prints it).
        id: String,
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
        Command::Init(a) => run_init(&rt, a),
        Command::Serve(a) => run_serve(&rt, a, thp_refused),
        Command::RotateMasterKey(a) => run_rotate_master_key(a),
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
        Command::Check { data_dir } => run_check(data_dir),
        Command::Audit(AuditCommand::Verify {
            data_dir,
            digest_key,
        }) => run_audit_verify(data_dir, digest_key),
        Command::Policy(PolicyCommand::List { data_dir }) => run_policy_list(data_dir),
        Command::Policy(PolicyCommand::Remove { data_dir, id }) => {
            run_policy_remove(&rt, data_dir, &id)
        }
    }
}
