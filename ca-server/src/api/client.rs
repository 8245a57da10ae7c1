//! The one client of the management API: mutual TLS (hyper 1 over
//! tokio-rustls, aws-lc-rs) on a keep-alive connection, typed requests and
//! answers from [`super::wire`], and the `profile.toml` that `ca-server init`
//! writes so a client knows where and as whom to connect. `ca-cli`, the
//! benches and the end-to-end tests all connect through it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::wire::ErrorBody;

/// Largest answer accepted (a big CRL fits; a runaway server does not).
pub const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// Why a call did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("reading {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing the profile {}: {source}", path.display())]
    Profile {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("the {0} is not a PEM certificate")]
    NotPemCertificate(&'static str),
    #[error("the client key is not a PEM private key")]
    NotPemKey,
    #[error("the {0} holds no PEM certificate")]
    NoCertificate(&'static str),
    #[error("the root certificate is not a usable trust anchor: {0}")]
    BadRoot(rustls::Error),
    #[error("the client certificate and key do not go together: {0}")]
    ClientAuth(rustls::Error),
    #[error("TLS settings: {0}")]
    Tls(rustls::Error),
    #[error("{0}")]
    BadUrl(String),
    #[error("{0:?} is not a valid server name")]
    ServerName(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {addr} failed: {source}")]
    Handshake {
        addr: String,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("building the request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("reading the answer: {0}")]
    Body(String),
    #[error("encoding the request: {0}")]
    Encode(serde_json::Error),
    #[error("the answer ({status}) does not fit what was asked: {source}")]
    Decode {
        status: u16,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Api(#[from] ApiFailure),
}

/// An error answer of the API: its status, stable code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl ApiFailure {
    /// The failure a non-2xx answer describes; a body that is not the API's
    /// error shape (a proxy's page) is kept, shortened, as the message.
    pub fn from_answer(status: u16, body: &[u8]) -> ApiFailure {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => ApiFailure {
                status,
                code: e.error.code,
                message: e.error.message,
            },
            Err(_) => ApiFailure {
                status,
                code: "unknown".into(),
                message: String::from_utf8_lossy(body).chars().take(200).collect(),
            },
        }
    }
}

// ------------------------------------------------------------ profile.toml

/// What `ca-server init` writes to `DATA_DIR/admin/profile.toml` and every
/// client reads to reach the API. Relative paths are relative to the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientProfile {
    /// e.g. `https://127.0.0.1:8443`
    pub server_url: String,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub root_ca: PathBuf,
    /// The CA (or alias) certificates are issued from unless a request names another.
    #[serde(default)]
    pub default_ca_id: Option<String>,
}

/// The profile's file name inside the data directory.
pub const PROFILE_FILE: &str = "admin/profile.toml";

impl ClientProfile {
    /// Read and parse a profile, resolving its paths against its directory.
    pub fn load(path: &Path) -> Result<ClientProfile, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClientError::Read {
            what: "the profile",
            path: path.to_path_buf(),
            source,
        })?;
        ClientProfile::parse(&text, path)
    }

    /// Parse a profile's text; `path` is where it came from.
    pub fn parse(text: &str, path: &Path) -> Result<ClientProfile, ClientError> {
        let mut p: ClientProfile = toml::from_str(text).map_err(|source| ClientError::Profile {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for f in [&mut p.client_cert, &mut p.client_key, &mut p.root_ca] {
            if f.is_relative() {
                *f = base.join(&*f);
            }
        }
        Ok(p)
    }

    /// `host:port` of `server_url`.
    pub fn authority(&self) -> &str {
        let s = self
            .server_url
            .strip_prefix("https://")
            .unwrap_or(&self.server_url);
        s.split('/').next().unwrap_or(s)
    }
}

/// Where `ca-server` keeps its data when not told otherwise:
/// `$CA_SERVER_DATA_DIR`, else `$XDG_DATA_HOME/ca-server`, else
/// `~/.local/share/ca-server`.
pub fn default_data_dir() -> Option<PathBuf> {
    let set = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = set("CA_SERVER_DATA_DIR") {
        Some(PathBuf::from(d))
    } else if let Some(x) = set("XDG_DATA_HOME") {
        Some(PathBuf::from(x).join("ca-server"))
    } else {
        set("HOME").map(|h| PathBuf::from(h).join(".local/share/ca-server"))
    }
}

/// The default data directory's profile, if there is one.
pub fn default_profile_path() -> Option<PathBuf> {
    let p = default_data_dir()?.join(PROFILE_FILE);
    p.exists().then_some(p)
}

// -------------------------------------------------------------------- TLS

/// TLS client settings: trust the certificates in `root_pem`; present
/// `cert_pem` + `key_pem` when both are given (the API refuses a client
/// without them, which tests check).
pub fn client_config(
    root_pem: &[u8],
    cert_pem: Option<&[u8]>,
    key_pem: Option<&[u8]>,
) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(root_pem) {
        let c = c.map_err(|_| ClientError::NotPemCertificate("root certificate"))?;
        roots.add(c).map_err(ClientError::BadRoot)?;
    }
    if roots.is_empty() {
        return Err(ClientError::NoCertificate("root certificate file"));
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(ClientError::Tls)?
    .with_root_certificates(roots);
    let mut cfg = match (cert_pem, key_pem) {
        (Some(c), Some(k)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(c)
                .collect::<Result<_, _>>()
                .map_err(|_| ClientError::NotPemCertificate("client certificate"))?;
            if chain.is_empty() {
                return Err(ClientError::NoCertificate("client certificate file"));
            }
            let key = PrivateKeyDer::from_pem_slice(k).map_err(|_| ClientError::NotPemKey)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(ClientError::ClientAuth)?
        }
        _ => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// TLS client settings from the files a profile names.
pub fn profile_config(p: &ClientProfile) -> Result<Arc<ClientConfig>, ClientError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| ClientError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })
    };
    let root = read("the root certificate", &p.root_ca)?;
    let cert = read("the client certificate", &p.client_cert)?;
    let key = zeroize::Zeroizing::new(read("the client key", &p.client_key)?);
    client_config(&root, Some(&cert), Some(&key))
}

// ------------------------------------------------------------------- URLs

/// `scheme://host:port/...` split into (host, port); IPv6 hosts lose their brackets.
pub fn host_port(url: &str, scheme: &str, default_port: u16) -> Result<(String, u16), ClientError> {
    let bad = |why: &str| ClientError::BadUrl(format!("{url:?} {why}"));
    let rest = url
        .strip_prefix(&format!("{scheme}://"))
        .ok_or_else(|| bad(&format!("is not an {scheme}:// URL")))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("has no usable host"));
    }
    let port = |p: &str| p.parse::<u16>().map_err(|_| bad("has a bad port"));
    if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("has an unclosed ["))?;
        let p = match after.strip_prefix(':') {
            Some(p) => port(p)?,
            None => default_port,
        };
        return Ok((h.to_string(), p));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Ok((h.to_string(), port(p)?)),
        None => Ok((authority.to_string(), default_port)),
    }
}

/// `host:port`, with brackets around an IPv6 host: what `connect` and the
/// `Host` header take.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The path (and query) of a URL, `/` if none.
pub fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    match rest.find('/') {
        Some(i) => rest[i..].to_string(),
        None => "/".into(),
    }
}

// ----------------------------------------------------------------- client

/// One keep-alive connection to the API.
pub struct ApiClient {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl ApiClient {
    /// Connect to `addr` (`host:port`, IPv6 in brackets) and complete the TLS handshake.
    pub async fn connect(addr: &str, tls: Arc<ClientConfig>) -> Result<ApiClient, ClientError> {
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(addr)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = ServerName::try_from(host.clone()).map_err(|_| ClientError::ServerName(host))?;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        // Requests are small and answered one at a time: no Nagle delay.
        tcp.set_nodelay(true)
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|source| ClientError::Handshake {
                addr: addr.to_string(),
                source,
            })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the client is dropped or the server
            // hangs up; a request in flight then sees the error itself.
            let _ = conn.await;
        });
        Ok(ApiClient {
            sender,
            host: addr.to_string(),
        })
    }

    /// Send `body` as is; the status and the raw answer (at most [`MAX_RESPONSE`]).
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        json: bool,
    ) -> Result<(u16, Bytes), ClientError> {
        self.sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if json {
            req = req.header("content-type", "application/json");
        }
        let resp = self.sender.send_request(req.body(Full::new(body))?).await?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| ClientError::Body(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    }

    /// One typed call: `body` as JSON (if any), the answer decoded as `R` on
    /// 2xx, an [`ApiFailure`] otherwise.
    pub async fn request<B: Serialize + ?Sized, R: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R, ClientError> {
        let bytes = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).map_err(ClientError::Encode)?),
            None => Bytes::new(),
        };
        let (status, answer) = self.send(method, path, bytes, body.is_some()).await?;
        if !(200..300).contains(&status) {
            return Err(ApiFailure::from_answer(status, &answer).into());
        }
        serde_json::from_slice(&answer).map_err(|source| ClientError::Decode { status, source })
    }

    /// Untyped call for tests that probe the API with bodies no type allows:
    /// the status and the JSON answer (`Null` if empty, a string if not JSON).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), ClientError> {
        let bytes = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v).map_err(ClientError::Encode)?),
            None => Bytes::new(),
        };
        self.call_raw(method, path, bytes, body.is_some()).await
    }

    /// [`ApiClient::call`] with the body as raw bytes (malformed JSON, huge bodies).
    pub async fn call_raw(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        json: bool,
    ) -> Result<(u16, Value), ClientError> {
        let (status, body) = self.send(method, path, body, json).await?;
        let v = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        Ok((status, v))
    }
}

/// GET a public, unauthenticated resource (a CRL, a CA certificate) over plain
/// HTTP, as relying parties do: it is signed data, so TLS adds nothing.
/// A non-2xx answer is an [`ApiFailure`] whose message is the start of the body.
pub async fn get_public(url: &str) -> Result<Vec<u8>, ClientError> {
    let (host, port) = host_port(url, "http", 80)?;
    let addr = join_host_port(&host, port);
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|source| ClientError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .method(Method::GET)
        .uri(url_path(url))
        .header("host", addr)
        .body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| ClientError::Body(e.to_string()))?
        .to_bytes();
    if !(200..300).contains(&status) {
        return Err(ApiFailure {
            status,
            code: "http".into(),
            message: String::from_utf8_lossy(&body).chars().take(200).collect(),
        }
        .into());
    }
    Ok(body.to_vec())
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
        assert_eq!(join_host_port("::1", 9), "[::1]:9");
    }

    #[test]
    fn error_answers_become_failures() {
        let f =
            ApiFailure::from_answer(403, br#"{"error":{"code":"PolicyDenied","message":"no"}}"#);
        assert_eq!(
            (f.code.as_str(), f.message.as_str()),
            ("PolicyDenied", "no")
        );
        assert!(f.to_string().contains("refused"));
        let f = ApiFailure::from_answer(502, b"<html>bad gateway</html>");
        assert_eq!(f.code, "unknown");
        assert!(f.message.contains("bad gateway"));
    }

    #[test]
    fn profile_paths_are_relative_to_the_file() {
        let p = ClientProfile::parse(
            "server_url = \"https://127.0.0.1:8443\"\nclient_cert = \"admin.pem\"\n\
             client_key = \"/abs/admin.key\"\nroot_ca = \"root.pem\"\n",
            Path::new("/data/admin/profile.toml"),
        )
        .unwrap();
        assert_eq!(p.client_cert, Path::new("/data/admin/admin.pem"));
        assert_eq!(p.client_key, Path::new("/abs/admin.key"));
        assert_eq!(p.default_ca_id, None);
        assert_eq!(p.authority(), "127.0.0.1:8443");
    }
}
