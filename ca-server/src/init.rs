//! `ca-server init`: bootstrap a root CA, an issuing intermediate, a client-auth
//! intermediate, the API's TLS certificate and a first administrator.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::api::client::ClientProfile;
use crate::authority::{Identity, KeyStorage, NewCa, NewKeyRequest};
use crate::config::{Config, LogFormat, CONFIG_FILE};
use crate::store::CaType;

pub struct InitOptions {
    pub data_dir: PathBuf,
    pub tls_names: Vec<String>,
    pub api_addr: String,
    pub public_addr: String,
    pub admin_name: String,
    /// Lifetime of the API TLS certificate (default: the tls-server maximum).
    pub tls_days: Option<u32>,
    pub master: crate::vault::MasterOptions,
    /// Make the CA keys in this PKCS#11 token (and keep it in config.toml).
    pub pkcs11: Option<crate::hsm::Pkcs11Config>,
    /// Where the records live (the embedded store by default).
    pub store: crate::config::StoreConfig,
}

pub struct InitSummary {
    pub config: PathBuf,
    pub root_ca_pem: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub profile: PathBuf,
    pub tls_cert: PathBuf,
    pub root_ca_id: String,
    pub issuing_ca_id: String,
    pub client_auth_ca_id: String,
    /// Where a generated master key was written (absent with a passphrase).
    pub master_key_file: PathBuf,
    /// The token and master-key label when the master key is in a token.
    pub token_master_label: Option<String>,
}

pub fn is_initialised(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).exists()
}

pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Write a file readable by its owner only, durably.
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    crate::files::write_private(path, data).with_context(|| format!("writing {}", path.display()))
}

pub async fn init(opts: InitOptions) -> anyhow::Result<InitSummary> {
    let dir = &opts.data_dir;
    if is_initialised(dir) {
        anyhow::bail!(
            "{} is already initialised ({} exists)",
            dir.display(),
            CONFIG_FILE
        );
    }
    create_private_dir(dir)?;
    let mut config = Config {
        api_addr: opts.api_addr.clone(),
        public_addr: opts.public_addr.clone(),
        public_base_url: None,
        max_body_bytes: crate::config::DEFAULT_MAX_BODY_BYTES,
        max_in_flight: crate::config::DEFAULT_MAX_IN_FLIGHT,
        max_connections: crate::config::DEFAULT_MAX_CONNECTIONS,
        public_max_connections: crate::config::DEFAULT_PUBLIC_MAX_CONNECTIONS,
        max_connections_per_ip: None,
        log_format: LogFormat::Text,
        client_auth_ca_id: String::new(),
        issuing_ca_id: String::new(),
        root_ca_id: String::new(),
        tls_cert: PathBuf::from("tls/server.pem"),
        tls_key: PathBuf::from("tls/server.key"),
        validity: Config::default_validity(),
        revocation: Default::default(),
        api_tls: crate::config::ApiTlsConfig {
            validity_days: opts.tls_days,
            ..Default::default()
        },
        weak_key_lists: Vec::new(),
        audit_digest_interval_secs: 600,
        refusal_audit_window_secs: 60,
        refusal_audit_per_window: 60,
        pkcs11: opts.pkcs11.clone(),
        health: Default::default(),
        metrics: Default::default(),
        events: Default::default(),
        acme: Default::default(),
        store: opts.store.clone(),
    };
    let key_storage = if opts.pkcs11.is_some() {
        KeyStorage::Pkcs11
    } else {
        KeyStorage::Software
    };
    config.check()?;
    let base = format!("http://{}", opts.public_addr);
    // A shared database initialised by another node already has its CAs (and
    // its master key): further nodes copy that node's data directory instead.
    if config.store.is_postgres() {
        let store = crate::store::open_configured(dir, &config.store, crate::ids::boot_id())?;
        let taken = store.list_cas().map(|cas| !cas.is_empty());
        store.close();
        if taken? {
            anyhow::bail!(
                "the database already holds CAs (initialised by another node); to add a node, copy the first node's data directory instead (see OPERATIONS.md)"
            );
        }
    }
    let auth = crate::authority::open(dir, config.clone(), base, &opts.master).await?;
    let who = Identity::internal("ca-server init");
    let e =
        |what: &'static str| move |err: crate::error::ApiError| anyhow::anyhow!("{what}: {err}");
    let root = auth
        .create_ca(
            &who,
            NewCa {
                ca_type: CaType::Root,
                subject: "CN=Private Root CA,O=ca-server".into(),
                key_algorithm: "ec-p384".into(),
                parent_ca_id: None,
                external: false,
                validity_days: Some(3650),
                path_len: Some(1),
                name_constraints: None,
                key_storage: key_storage.clone(),
                ocsp_disabled: false,
            },
        )
        .await
        .map_err(e("root CA"))?;
    let sub = |subject: &str| NewCa {
        ca_type: CaType::Subordinate,
        subject: subject.into(),
        key_algorithm: "ec-p256".into(),
        parent_ca_id: Some(root.id.clone()),
        external: false,
        validity_days: Some(1825),
        path_len: Some(0),
        name_constraints: None,
        key_storage: key_storage.clone(),
        ocsp_disabled: false,
    };
    // The issuing CA last: CA ids ascend, and the certificates of the CA with
    // the largest id are the ones the store appends (see `ids::new_ca_id`).
    let client_ca = auth
        .create_ca(&who, sub("CN=API Client CA,O=ca-server"))
        .await
        .map_err(e("client-auth CA"))?;
    let issuing = auth
        .create_ca(&who, sub("CN=Private Issuing CA 1,O=ca-server"))
        .await
        .map_err(e("issuing CA"))?;
    // Clients issue through the alias, so rotating the CA changes nothing for them.
    auth.set_alias(&who, crate::alias::DEFAULT_ALIAS, &issuing.id)
        .await
        .map_err(e("issuing alias"))?;

    // The API's own TLS certificate.
    let server_days = config.api_tls_validity_days();
    let (tls_view, tls_key) = auth
        .issue_with_new_key(
            &who,
            &issuing.id,
            &NewKeyRequest {
                names: &opts.tls_names,
                subject: None,
                profile: "tls-server",
                key_algorithm: "ec-p256",
                validity_days: Some(server_days),
            },
        )
        .await
        .map_err(e("API TLS certificate"))?;
    create_private_dir(&dir.join("tls"))?;
    let chain = crate::api_tls::chain_pem(&tls_view.der, &tls_view.chain_der());
    crate::api_tls::store(dir, &config, &chain, &tls_key.to_pkcs8_pem())?;
    drop(tls_key);

    // The first administrator.
    let client_days = config.limits(ca_core::profile::Profile::TlsClient).max_days;
    let admin_subject = format!("CN={},O=ca-server administrators", opts.admin_name);
    let (admin_view, admin_key) = auth
        .issue_with_new_key(
            &who,
            &client_ca.id,
            &NewKeyRequest {
                names: &[],
                subject: Some(&admin_subject),
                profile: "tls-client",
                key_algorithm: "ec-p256",
                validity_days: Some(client_days),
            },
        )
        .await
        .map_err(e("administrator certificate"))?;
    let admin_dir = dir.join("admin");
    create_private_dir(&admin_dir)?;
    let admin_cert = admin_dir.join("admin.pem");
    let admin_key_path = admin_dir.join("admin.key");
    let root_pem = admin_dir.join("root.pem");
    write_private(
        &admin_cert,
        ca_core::pem::encode("CERTIFICATE", &admin_view.der).as_bytes(),
    )?;
    write_private(&admin_key_path, admin_key.to_pkcs8_pem().as_bytes())?;
    drop(admin_key);
    // The bootstrap administrator holds every permission, pinned to its certificate.
    let admin_fp = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &admin_view.der);
    let admin_fp = ca_core::hex::encode(admin_fp.as_ref());
    auth.policies
        .put(
            auth.store.as_ref(),
            "bootstrap-admin",
            crate::policy::bootstrap_admin(&admin_fp),
        )
        .await
        .map_err(e("bootstrap policy"))?;
    write_private(
        &root_pem,
        root.certificate_pem
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
    )?;
    let host = match opts.api_addr.parse::<std::net::SocketAddr>() {
        Ok(a) if a.port() != 0 => a.to_string(),
        _ => opts.api_addr.clone(),
    };
    let profile = ClientProfile {
        server_url: format!("https://{host}"),
        client_cert: PathBuf::from("admin.pem"),
        client_key: PathBuf::from("admin.key"),
        root_ca: PathBuf::from("root.pem"),
        // The alias: the CLI keeps issuing from the current CA across rotations.
        default_ca_id: Some(crate::alias::DEFAULT_ALIAS.to_string()),
    };
    let profile_path = admin_dir.join("profile.toml");
    write_private(&profile_path, toml::to_string(&profile)?.as_bytes())?;

    config.root_ca_id = root.id.clone();
    config.issuing_ca_id = issuing.id.clone();
    config.client_auth_ca_id = client_ca.id.clone();
    let config_path = dir.join(CONFIG_FILE);
    write_private(&config_path, toml::to_string(&config)?.as_bytes())?;
    auth.store.close();
    Ok(InitSummary {
        config: config_path,
        root_ca_pem: root_pem,
        admin_cert,
        admin_key: admin_key_path,
        profile: profile_path,
        tls_cert: dir.join(&config.tls_cert),
        root_ca_id: root.id,
        issuing_ca_id: issuing.id,
        client_auth_ca_id: client_ca.id,
        master_key_file: opts.master.key_path(dir),
        token_master_label: opts
            .pkcs11
            .as_ref()
            .and_then(|p| p.master_key_label.clone()),
    })
}
