//! The API client: HTTPS with a client certificate (hyper 1 over tokio-rustls,
//! aws-lc-rs), and connection settings from flags, environment or the profile
//! file that `ca-server init` writes beside the administrator's credentials.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long one request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body accepted (a big CRL fits; a runaway server does not).
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

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

/// The profile file `ca-server init` writes (DATA_DIR/admin/profile.toml).
#[derive(Deserialize, Debug)]
struct Profile {
    server_url: String,
    client_cert: PathBuf,
    client_key: PathBuf,
    root_ca: PathBuf,
    #[serde(default)]
    default_ca_id: Option<String>,
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

/// Where `ca-server` keeps its data when not told otherwise (mirrors its own default).
fn default_profile() -> Option<PathBuf> {
    let dir = if let Some(d) = std::env::var_os("CA_SERVER_DATA_DIR").filter(|v| !v.is_empty()) {
        PathBuf::from(d)
    } else if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        PathBuf::from(x).join("ca-server")
    } else {
        PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?)
            .join(".local/share/ca-server")
    };
    let p = dir.join("admin/profile.toml");
    p.exists().then_some(p)
}

fn load_profile(path: &Path) -> Result<Profile> {
    let text = crate::files::read_text(path)
        .with_context(|| format!("reading the profile {}", path.display()))?;
    let mut p: Profile =
        toml::from_str(&text).with_context(|| format!("parsing the profile {}", path.display()))?;
    // Paths in the profile are relative to the profile's directory.
    let base = path.parent().unwrap_or(Path::new("."));
    for f in [&mut p.client_cert, &mut p.client_key, &mut p.root_ca] {
        if f.is_relative() {
            *f = base.join(&*f);
        }
    }
    Ok(p)
}

impl ConnArgs {
    pub fn resolve(&self) -> Result<Conn> {
        let profile_path = self.profile.clone().or_else(default_profile);
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
            anyhow::Error::from(crate::UsageError(format!(
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

/// `https://host:port/...` split into (host, port).
fn host_port(url: &str, scheme: &str, default_port: u16) -> Result<(String, u16)> {
    let rest = url
        .strip_prefix(&format!("{scheme}://"))
        .ok_or_else(|| anyhow!("{url:?} is not an {scheme}:// URL"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.is_empty() || authority.contains('@') {
        bail!("{url:?} has no usable host");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| anyhow!("{url:?}: unclosed ["))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| anyhow!("{url:?}: bad port"))?,
            None => default_port,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| anyhow!("{url:?}: bad port"))?,
            ),
            None => (authority.to_string(), default_port),
        }
    };
    Ok((host, port))
}

/// The path (and query) of a URL, `/` if none.
fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    match rest.find('/') {
        Some(i) => rest[i..].to_string(),
        None => "/".into(),
    }
}

/// An error answer of the API: its status, stable code and message.
#[derive(Debug)]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the server refused ({} {}): {}",
            self.status, self.code, self.message
        )
    }
}

impl std::error::Error for ApiFailure {}

fn tls_config(conn: &Conn) -> Result<Arc<ClientConfig>> {
    let root_pem = crate::files::read_input(&conn.root)
        .context("reading the root certificate (--root / CA_ROOT)")?;
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&root_pem) {
        roots
            .add(c.with_context(|| format!("{} is not a PEM certificate", conn.root.display()))?)
            .with_context(|| format!("{} is not a usable root", conn.root.display()))?;
    }
    if roots.is_empty() {
        bail!("{} holds no PEM certificate", conn.root.display());
    }
    let cert_pem = crate::files::read_input(&conn.client_cert)
        .context("reading the client certificate (--client-cert)")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate", conn.client_cert.display()))?;
    if chain.is_empty() {
        bail!("{} holds no PEM certificate", conn.client_cert.display());
    }
    let key_pem = zeroize::Zeroizing::new(
        crate::files::read_input(&conn.client_key)
            .context("reading the client key (--client-key)")?,
    );
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| anyhow!("{} is not a PEM private key", conn.client_key.display()))?;
    let mut cfg = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .context("the client certificate and key do not go together")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A connection to the management API, driven synchronously from the CLI.
pub struct Api {
    rt: tokio::runtime::Runtime,
    tls: Arc<ClientConfig>,
    host: String,
    port: u16,
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
            host,
            port,
            conn,
        })
    }

    /// One request; a JSON answer on 2xx, an [`ApiFailure`] otherwise.
    pub fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let (status, bytes) = self
            .rt
            // The timer must be created inside the runtime, hence the async block.
            .block_on(async {
                tokio::time::timeout(TIMEOUT, self.send(method.clone(), path, body)).await
            })
            .map_err(|_| anyhow!("{} {path}: no answer within {}s", method, TIMEOUT.as_secs()))??;
        let v: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if !(200..300).contains(&status) {
            let code = v
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            let message = v
                .pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string().chars().take(200).collect());
            return Err(ApiFailure {
                status,
                code,
                message,
            }
            .into());
        }
        Ok(v)
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(u16, Bytes)> {
        let addr = format!(
            "{}:{}",
            if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            },
            self.port
        );
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .with_context(|| {
                format!(
                    "cannot connect to {addr} (is ca-server running? settings from {})",
                    self.conn.source
                )
            })?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|_| anyhow!("{:?} is not a valid server name", self.host))?;
        let stream = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS handshake with {addr} failed"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let data = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v)?),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &addr);
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let resp = sender
            .send_request(req.body(Full::new(data))?)
            .await
            .context("sending the request")?;
        let status = resp.status().as_u16();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| anyhow!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// GET a public, unauthenticated resource (a CRL, a CA certificate) over plain
/// HTTP, as relying parties do: it is signed data, so TLS adds nothing.
pub fn http_get(url: &str) -> Result<Vec<u8>> {
    let (host, port) = host_port(url, "http", 80)?;
    let path = url_path(url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let fetch = async move {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(Method::GET)
            .uri(&path)
            .header("host", format!("{host}:{port}"))
            .body(Full::new(Bytes::new()))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| anyhow!("reading the answer: {e}"))?
            .to_bytes();
        if !(200..300).contains(&status) {
            let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            bail!("GET {url} answered {status}: {text}");
        }
        Ok(body.to_vec())
    };
    rt.block_on(async { tokio::time::timeout(TIMEOUT, fetch).await })
        .map_err(|_| anyhow!("GET {url}: no answer within {}s", TIMEOUT.as_secs()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split() {
        assert_eq!(
            host_port("https://127.0.0.1:8443", "https", 443).ok(),
            Some(("127.0.0.1".into(), 8443))
        );
        assert_eq!(
            host_port("https://ca.example/", "https", 443).ok(),
            Some(("ca.example".into(), 443))
        );
        assert_eq!(
            host_port("https://[::1]:9/x", "https", 443).ok(),
            Some(("::1".into(), 9))
        );
        assert!(host_port("http://x", "https", 443).is_err());
        assert!(host_port("https://h:port", "https", 443).is_err());
        assert_eq!(url_path("http://h:1/crl/a.crl"), "/crl/a.crl");
        assert_eq!(url_path("http://h:1"), "/");
    }
}
