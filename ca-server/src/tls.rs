//! TLS for the management API: TLS 1.3 and 1.2, client certificates required
//! and verified against the client-auth CA.

use std::sync::Arc;

use anyhow::Context;
use der::Decode;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::CertificateDer;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

use crate::authority::Identity;
use crate::error::{ApiError, ErrorCode};

pub fn server_config(
    certificate: Arc<crate::api_tls::ApiCertSlot>,
    client_ca_der: &[u8],
) -> anyhow::Result<Arc<ServerConfig>> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(client_ca_der.to_vec()))
        .context("client-auth CA certificate")?;
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .context("client certificate verifier")?;
    let mut cfg = ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_client_cert_verifier(verifier)
    .with_cert_resolver(certificate);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// TLS for the ACME listener: the API's certificate (renewed with it), no
/// client certificate.
pub fn acme_server_config(
    certificate: Arc<crate::api_tls::ApiCertSlot>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let mut cfg = ServerConfig::builder_with_protocol_versions(&[
        &rustls::version::TLS13,
        &rustls::version::TLS12,
    ])
    .with_no_client_auth()
    .with_cert_resolver(certificate);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The caller's identity: subject and SANs of its verified client certificate.
/// A certificate rustls accepted but that does not parse here is refused: an
/// empty identity could still match policies (e.g. "anyone"), so no fallback.
pub fn identity_of(peer: Option<&[CertificateDer<'_>]>) -> Result<Identity, ApiError> {
    let refuse = |why: &str| ApiError::new(ErrorCode::Unauthenticated, why);
    let Some(leaf) = peer.and_then(|p| p.first()) else {
        return Err(refuse("a client certificate is required"));
    };
    let Ok(cert) = Certificate::from_der(leaf.as_ref()) else {
        return Err(refuse("the client certificate could not be parsed"));
    };
    let sans = match cert.tbs_certificate.get::<SubjectAltName>() {
        // Typed, as policies match them: DNS:, email:, IP: and URI:.
        Ok(Some((_, san))) => san
            .0
            .iter()
            .filter_map(|name| match name {
                x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(u) => {
                    Some(format!("URI:{}", u.as_str()))
                }
                other => ca_core::names::SanEntry::from_general_name(other).map(|s| s.to_string()),
            })
            .collect(),
        _ => vec![],
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_ref());
    Ok(Identity {
        subject: ca_core::names::rfc4514(&cert.tbs_certificate.subject),
        sans,
        fingerprint: ca_core::hex::encode(digest.as_ref()),
        internal: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unparsable_or_missing_client_certificate_is_refused() {
        let code = |r: Result<Identity, ApiError>| r.err().map(|e| e.code);
        assert_eq!(code(identity_of(None)), Some(ErrorCode::Unauthenticated));
        assert_eq!(
            code(identity_of(Some(&[]))),
            Some(ErrorCode::Unauthenticated)
        );
        let garbage = [CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01])];
        assert_eq!(
            code(identity_of(Some(&garbage))),
            Some(ErrorCode::Unauthenticated)
        );
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["client.example.internal".into()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "client");
        let cert = params.self_signed(&key).expect("cert");
        let good = [cert.der().clone()];
        let who = identity_of(Some(&good)).expect("identity");
        assert_eq!(who.subject, "CN=client");
        assert_eq!(who.sans, vec!["DNS:client.example.internal".to_string()]);
        assert_eq!(who.fingerprint.len(), 64);
    }
}
