//! How the CLI reaches the API: the connection flags (`--server`, ...), their
//! resolution against environment and `profile.toml`, and a synchronous
//! facade over `ca_server::api::client`, which does the TLS, HTTP and typed
//! JSON for the CLI, the benches and the tests alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use ca_server::api::client::{
    self as api, client_config, default_profile_path, host_port, join_host_port, ApiClient,
    ClientError, ClientProfile,
};
use hyper::Method;
use rustls::ClientConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Connection flags, shared by every online command (and inherited by their
/// subcommands). Flags win over environment variables, which win over the profile.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// API base URL, e.g. https://127.0.0.1:8443.
    #[arg(long, global = true, env = "CA_SERVER")]
    pub server: Option<String>,
    /// Client certificate (PEM) that identifies you to the API.
    #[arg(long, global = true, env = "CA_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,
    /// Private key of the client certificate (PKCS#8 PEM).
    #[arg(long, global = true, env = "CA_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,
    /// Root certificate the API's TLS certificate must chain to.
    #[arg(long, global = true, env = "CA_ROOT")]
    pub root: Option<PathBuf>,
    /// Profile file (TOML) written by `ca-server init`; default: the server's
    /// default data directory's admin/profile.toml, if present.
    #[arg(long, global = true, env = "CA_PROFILE")]
    pub profile: Option<PathBuf>,
}

/// Resolved connection settings.
#[derive(Debug, Clone)]
pub struct Conn {
    pub server: String,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub root: PathBuf,
    pub default_ca_id: Option<String>,
    /// Where the settings came from, for error messages.
    pub source: String,
}

fn load_profile(path: &Path) -> Result<ClientProfile> {
    // Read through the CLI's size-limited reader; the schema is the server's.
    let text = crate::files::read_text(path)
        .with_context(|| format!("reading the profile {}", path.display()))?;
    Ok(ClientProfile::parse(&text, path)?)
}

impl ConnArgs {
    pub fn resolve(&self) -> Result<Conn> {
        let profile_path = self.profile.clone().or_else(default_profile_path);
        let profile = match &profile_path {
            Some(p) => Some(load_profile(p)?),
            None => None,
        };
        let source = match &profile_path {
            Some(p) => format!("flags, environment and profile {}", p.display()),
            None => "flags and environment (no profile found)".to_string(),
        };
        // A missing setting is a usage error (exit 2), like a missing flag.
        let missing = |what: &str, flag: &str, env: &str| {
            anyhow::Error::from(crate::exit::UsageError(format!(
                "no {what}: pass {flag}, set {env}, or point --profile at the profile.toml that `ca-server init` wrote"
            )))
        };
        let server = self
            .server
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.server_url.clone()))
            .ok_or_else(|| missing("server URL", "--server", "CA_SERVER"))?;
        let client_cert = self
            .client_cert
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.client_cert.clone()))
            .ok_or_else(|| missing("client certificate", "--client-cert", "CA_CLIENT_CERT"))?;
        let client_key = self
            .client_key
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.client_key.clone()))
            .ok_or_else(|| missing("client key", "--client-key", "CA_CLIENT_KEY"))?;
        let root = self
            .root
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.root_ca.clone()))
            .ok_or_else(|| missing("root certificate", "--root", "CA_ROOT"))?;
        Ok(Conn {
            server,
            client_cert,
            client_key,
            root,
            default_ca_id: profile.and_then(|p| p.default_ca_id),
            source,
        })
    }
}

fn tls_config(conn: &Conn) -> Result<Arc<ClientConfig>> {
    let root_pem = crate::files::read_input(&conn.root)
        .context("reading the root certificate (--root / CA_ROOT)")?;
    let cert_pem = crate::files::read_input(&conn.client_cert)
        .context("reading the client certificate (--client-cert)")?;
    let key_pem = zeroize::Zeroizing::new(
        crate::files::read_input(&conn.client_key)
            .context("reading the client key (--client-key)")?,
    );
    client_config(&root_pem, Some(&cert_pem), Some(&key_pem)).with_context(|| {
        format!(
            "TLS client settings from --root {}, --client-cert {}, --client-key {}",
            conn.root.display(),
            conn.client_cert.display(),
            conn.client_key.display()
        )
    })
}

/// A connection to the management API, driven synchronously from the CLI.
pub struct Api {
    rt: tokio::runtime::Runtime,
    tls: Arc<ClientConfig>,
    /// `host:port`, IPv6 in brackets.
    addr: String,
    pub conn: Conn,
}

impl Api {
    pub fn new(conn: Conn) -> Result<Api> {
        let (host, port) = host_port(&conn.server, "https", 443).context("the server URL")?;
        let tls = tls_config(&conn)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        Ok(Api {
            rt,
            tls,
            addr: join_host_port(&host, port),
            conn,
        })
    }

    /// One request: `body` as JSON, the answer decoded as `R` on 2xx, an
    /// [`api::ApiFailure`] otherwise.
    pub fn call<B: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R> {
        let what = format!("{method} {path}");
        let exchange = async {
            let mut c = ApiClient::connect(&self.addr, self.tls.clone()).await?;
            c.request(method, path, body).await
        };
        let answer = self
            .rt
            // The timer must be created inside the runtime, hence the async block.
            .block_on(async { tokio::time::timeout(TIMEOUT, exchange).await })
            .map_err(|_| anyhow!("{what}: no answer within {}s", TIMEOUT.as_secs()))?;
        answer.map_err(|e| match e {
            ClientError::Connect { addr, source } => anyhow::Error::new(source).context(format!(
                "cannot connect to {addr} (is ca-server running? settings from {})",
                self.conn.source
            )),
            other => anyhow::Error::new(other),
        })
    }

    /// One request whose answer is read whatever its status: (status, JSON).
    pub fn call_value(&self, method: Method, path: &str) -> Result<(u16, serde_json::Value)> {
        let what = format!("{method} {path}");
        let exchange = async {
            let mut c = ApiClient::connect(&self.addr, self.tls.clone()).await?;
            c.call(method, path, None).await
        };
        self.rt
            .block_on(async { tokio::time::timeout(TIMEOUT, exchange).await })
            .map_err(|_| anyhow!("{what}: no answer within {}s", TIMEOUT.as_secs()))?
            .map_err(|e| match e {
                ClientError::Connect { addr, source } => {
                    anyhow::Error::new(source).context(format!(
                        "cannot connect to {addr} (is ca-server running? settings from {})",
                        self.conn.source
                    ))
                }
                other => anyhow::Error::new(other),
            })
    }

    /// A GET, decoded as `R`.
    pub fn get<R: DeserializeOwned>(&self, path: &str) -> Result<R> {
        self.call::<(), R>(Method::GET, path, None)
    }
}

/// GET a public, unauthenticated resource (a CRL, a CA certificate) over plain
/// HTTP, as relying parties do: it is signed data, so TLS adds nothing.
pub fn http_get(url: &str) -> Result<Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let body = rt
        .block_on(async { tokio::time::timeout(TIMEOUT, api::get_public(url)).await })
        .map_err(|_| anyhow!("GET {url}: no answer within {}s", TIMEOUT.as_secs()))?;
    body.map_err(|e| match e {
        ClientError::Api(f) => anyhow!("GET {url} answered {}: {}", f.status, f.message),
        other => anyhow::Error::new(other).context(format!("GET {url}")),
    })
}
