//! A small mTLS API client (hyper over tokio-rustls), used by the bench, the
//! tests and, later, the CLI.

use std::sync::Arc;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::ClientProfile;

/// TLS client settings: trust `root_pem`, present `cert_pem` + `key_pem`.
pub fn client_config(
    root_pem: &[u8],
    cert_pem: Option<&[u8]>,
    key_pem: Option<&[u8]>,
) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(root_pem) {
        roots.add(c.context("root certificate")?)?;
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let mut cfg = match (cert_pem, key_pem) {
        (Some(c), Some(k)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(c)
                .collect::<Result<_, _>>()
                .context("client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(k).context("client key")?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

pub fn profile_config(p: &ClientProfile) -> anyhow::Result<Arc<ClientConfig>> {
    let root = std::fs::read(&p.root_ca).context("root CA file")?;
    let cert = std::fs::read(&p.client_cert).context("client certificate file")?;
    let key = zeroize::Zeroizing::new(std::fs::read(&p.client_key).context("client key file")?);
    client_config(&root, Some(&cert), Some(&key))
}

/// One keep-alive connection to the API.
pub struct ApiClient {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl ApiClient {
    /// Connect to `addr` (`host:port`) and complete the TLS handshake.
    pub async fn connect(addr: &str, tls: Arc<ClientConfig>) -> anyhow::Result<ApiClient> {
        let host = addr
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(addr)
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let name = ServerName::try_from(host.clone()).context("server name")?;
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let stream = TlsConnector::from(tls).connect(name, tcp).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(ApiClient {
            sender,
            host: addr.to_string(),
        })
    }

    /// Send one request; returns the status and the JSON body (Null if empty).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let bytes = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v)?),
            None => Bytes::new(),
        };
        self.call_raw(method, path, bytes, body.is_some()).await
    }

    pub async fn call_raw(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
        json: bool,
    ) -> anyhow::Result<(u16, Value)> {
        self.sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        if json {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(body))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        let v = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
        };
        Ok((status, v))
    }
}
