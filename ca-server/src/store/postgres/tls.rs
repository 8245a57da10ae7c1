//! TLS to PostgreSQL with rustls: required when configured, the server's
//! certificate verified against the configured CA and its name checked.

use std::sync::Arc;

use super::R;
use crate::store::StoreError;

/// TLS to PostgreSQL: required, and the server's certificate verified.
#[derive(Clone, Debug)]
pub struct PgTls {
    /// CA certificate(s), PEM, the server's certificate must chain to; its
    /// name (the URL's host) is checked too.
    pub ca_file: std::path::PathBuf,
    /// A client certificate and key (PEM) for PostgreSQL's `cert` auth.
    pub client: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl PgTls {
    pub(super) fn connector(&self) -> R<tokio_postgres_rustls::MakeRustlsConnect> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
            StoreError::Db(format!("[store] {what} {}: {e}", path.display()))
        };
        let certs = |path: &std::path::Path| -> R<Vec<CertificateDer<'static>>> {
            let pem = std::fs::read(path).map_err(|e| bad("cannot read", path, &e))?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("holds no PEM certificate:", path, &e))?;
            if certs.is_empty() {
                return Err(bad("holds no certificate:", path, &"empty"));
            }
            Ok(certs)
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(&self.ca_file)? {
            roots
                .add(c)
                .map_err(|e| bad("tls_ca_file", &self.ca_file, &e))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Db(format!("TLS: {e}")))?
        .with_root_certificates(roots);
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = certs(cert)?;
                let pem = zeroize::Zeroizing::new(
                    std::fs::read(key).map_err(|e| bad("cannot read", key, &e))?,
                );
                let key_der = PrivateKeyDer::from_pem_slice(&pem)
                    .map_err(|e| bad("tls_client_key", key, &e))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| bad("tls_client_cert", cert, &e))?
            }
        };
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}
