//! `ca-server init` and `ca-server serve`: making a data directory, and
//! running the service on one (initialising it on first start), with the
//! signals that stop it and the summary `init` prints.

use anyhow::Context;
use ca_server::config::{Config, LogFormat, DEFAULT_API_ADDR, DEFAULT_PUBLIC_ADDR};
use ca_server::init::{init, is_initialised, InitOptions};

use crate::{default_data_dir, init_logging, InitArgs, ServeArgs};

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
    let on_postgres = s.config.parent().is_some_and(ca_server::store::is_postgres);
    if s.master_key_file.exists() && beside_store && on_postgres {
        println!(
            "  master key:        {} -- the CA keys in the database are sealed under it: keep",
            s.master_key_file.display()
        );
        println!("                     it out of the database's backups, or use a passphrase");
        println!("                     (--master-passphrase-file) instead.");
    } else if s.master_key_file.exists() && beside_store {
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

/// `ca-server init`.
pub(crate) fn run_init(rt: &tokio::runtime::Runtime, a: InitArgs) -> anyhow::Result<()> {
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
                    .map(|p| std::fs::canonicalize(&p).with_context(|| p.display().to_string()))
                    .transpose()?,
                ..Default::default()
            },
            None => Default::default(),
        },
    }))?;
    print_init(&summary);
    Ok(())
}

/// `ca-server serve`; `thp_refused` is why transparent huge pages stay on,
/// if the kernel refused to turn them off.
pub(crate) fn run_serve(
    rt: &tokio::runtime::Runtime,
    a: ServeArgs,
    thp_refused: Option<rustix::io::Errno>,
) -> anyhow::Result<()> {
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
