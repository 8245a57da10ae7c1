//! Challenge validation, from the server: `http-01` (RFC 8555 §8.3) fetches
//! `http://NAME:PORT/.well-known/acme-challenge/TOKEN` and expects the key
//! authorization. The outcome, success or failure, is written with its
//! authorization and order, and audited (`AcmeValidateChallenge`).

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::{AcmeConfig, Problem};
use crate::audit::{AuditIdentity, AuditResult, Decisions};
use crate::authority::Authority;
use crate::store::{AcmeAccount, AcmeAuthz};

/// Held while a validation's outcome is read against its order and written.
static RECORDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Largest answer read from a challenge URL.
const MAX_ANSWER: usize = 8 * 1024;
/// Attempts before a challenge fails (a responder may still be starting).
const ATTEMPTS: u32 = 3;

pub fn spawn(
    auth: Arc<Authority>,
    cfg: AcmeConfig,
    prov: String,
    account: AcmeAccount,
    authz: AcmeAuthz,
    idx: usize,
    key_authorization: String,
) {
    tokio::spawn(async move {
        let mut outcome = Err(Problem::connection("not attempted"));
        let kind = authz.challenges[idx].kind.clone();
        for attempt in 0..ATTEMPTS {
            outcome = match kind.as_str() {
                "tls-alpn-01" => tls_alpn01(&cfg, &authz.identifier, &key_authorization).await,
                "dns-01" => dns01(&cfg, &authz.identifier, &key_authorization).await,
                _ => {
                    http01(
                        &cfg,
                        &authz.identifier,
                        &authz.challenges[idx].token,
                        &key_authorization,
                    )
                    .await
                }
            };
            if outcome.is_ok() || attempt + 1 == ATTEMPTS {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if let Err(e) = record(&auth, &prov, &account, authz, idx, outcome).await {
            tracing::warn!(error = %e.detail, "acme: recording a validation failed");
        }
    });
}

/// Fetch the challenge URL and compare what it answers.
async fn http01(
    cfg: &AcmeConfig,
    name: &str,
    token: &str,
    key_authorization: &str,
) -> Result<(), Problem> {
    let timeout = Duration::from_secs(cfg.validation_timeout_secs);
    let first = format!("http://{name}/.well-known/acme-challenge/{token}");
    let walk = async {
        // Redirects are followed (RFC 8555 §8.3; port 80 → https is the
        // common set-up), at most MAX_REDIRECTS, to http or https on the two
        // validation ports only; an https hop's certificate is not checked.
        let mut url = first.clone();
        for _ in 0..=MAX_REDIRECTS {
            let (status, location, body) = fetch(cfg, &url).await?;
            if status.is_redirection() {
                let Some(next) = location else {
                    return Err(Problem::incorrect_response(format!(
                        "{url} redirects nowhere"
                    )));
                };
                url = resolve_location(&url, &next)?;
                // Only to the name being validated: a redirect elsewhere
                // would let an account make this server probe other hosts.
                let to: hyper::Uri = url
                    .parse()
                    .map_err(|_| Problem::incorrect_response("bad redirect"))?;
                if !to.host().is_some_and(|h| h.eq_ignore_ascii_case(name)) {
                    return Err(Problem::incorrect_response(format!(
                        "{first} redirects to another host; only redirects to {name} are followed"
                    )));
                }
                continue;
            }
            if !status.is_success() {
                return Err(Problem::incorrect_response(format!(
                    "{url} answered {status}"
                )));
            }
            let got = String::from_utf8_lossy(&body);
            if got.trim_end() != key_authorization {
                return Err(Problem::incorrect_response(format!(
                    "the key authorization at {url} is not this account's"
                )));
            }
            return Ok(());
        }
        Err(Problem::incorrect_response(format!(
            "{first}: more than {MAX_REDIRECTS} redirects"
        )))
    };
    tokio::time::timeout(timeout, walk)
        .await
        .unwrap_or_else(|_| {
            Err(Problem::connection(format!(
                "no answer from {first} within {timeout:?}"
            )))
        })
}

/// Most redirects one http-01 validation follows.
const MAX_REDIRECTS: usize = 10;

/// An absolute URL from a Location (absolute, or a path on the same origin).
fn resolve_location(current: &str, location: &str) -> Result<String, Problem> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return Ok(location.to_string());
    }
    if location.starts_with('/') {
        let uri: hyper::Uri = current
            .parse()
            .map_err(|_| Problem::incorrect_response("bad redirect"))?;
        let origin = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map(|a| a.as_str()).unwrap_or_default()
        );
        return Ok(format!("{origin}{location}"));
    }
    Err(Problem::incorrect_response(format!(
        "redirect to {location:?}: only http and https URLs are followed"
    )))
}

/// One GET of `url` (http, or https without certificate checks) on one of
/// the validation ports: status, Location, body.
async fn fetch(
    cfg: &AcmeConfig,
    url: &str,
) -> Result<(hyper::StatusCode, Option<String>, Bytes), Problem> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|_| Problem::incorrect_response(format!("{url:?} is not a URL")))?;
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(Problem::incorrect_response(format!(
                "{url}: only http and https"
            )))
        }
    };
    let name = uri
        .host()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    // Ports in URLs stand for the validation ports: 80 → http01_port, 443 →
    // tls_alpn01_port (they are those ports outside tests).
    let port = match (https, uri.port_u16()) {
        (false, None | Some(80)) => cfg.http01_port,
        (true, None | Some(443)) => cfg.tls_alpn01_port,
        (_, Some(p)) if p == cfg.http01_port || p == cfg.tls_alpn01_port => p,
        (_, Some(p)) => {
            return Err(Problem::incorrect_response(format!(
                "{url}: redirects may only go to the validation ports, not {p}"
            )))
        }
    };
    let host = cfg.resolve_to.clone().unwrap_or_else(|| name.clone());
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| Problem::connection(format!("connecting to {name}:{port}: {e}")))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let host_header = uri
        .authority()
        .map(|a| a.as_str())
        .unwrap_or(&name)
        .to_string();
    let req = Request::builder()
        .uri(path)
        .header(hyper::header::HOST, host_header)
        .header(
            hyper::header::USER_AGENT,
            concat!("ca-server-acme/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| Problem::server(e.to_string()))?;
    let send = |e: hyper::Error| Problem::connection(format!("GET {url}: {e}"));
    let resp = if https {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Problem::server(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ReadOnly(provider)))
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let sni = rustls_pki_types::ServerName::try_from(name.clone())
            .map_err(|_| Problem::incorrect_response(format!("{name:?} is not a server name")))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(sni, tcp)
            .await
            .map_err(|e| Problem::connection(format!("TLS with {name}:{port}: {e}")))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(send)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.send_request(req).await.map_err(send)?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(send)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.send_request(req).await.map_err(send)?
    };
    let status = resp.status();
    let location = resp
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = Limited::new(resp.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|_| {
            Problem::incorrect_response(format!("{url}: the answer is too large or cut off"))
        })?
        .to_bytes();
    Ok((status, location, body))
}

/// Write the outcome: the challenge and its authorization valid or invalid,
/// and the order ready once all its authorizations are valid (or invalid
/// with the failure).
async fn record(
    auth: &Arc<Authority>,
    prov: &str,
    account: &AcmeAccount,
    mut authz: AcmeAuthz,
    idx: usize,
    outcome: Result<(), Problem>,
) -> Result<(), Problem> {
    // Two authorizations of one order validated at once must not both read
    // the other as unfinished and leave the order pending: outcomes are
    // recorded one at a time (in this process).
    let _one_at_a_time = RECORDING.lock().await;
    let now = auth.now().unix_timestamp();
    let who = format!("URI:acme:{prov}/{}", account.id);
    let mut order = auth
        .store
        .acme_order(&authz.order)?
        .ok_or_else(|| Problem::server("the authorization's order is gone"))?;
    let failure = outcome.as_ref().err().map(|p| p.to_json());
    match &outcome {
        Ok(()) => {
            authz.challenges[idx].status = "valid".into();
            authz.challenges[idx].validated = Some(now);
            authz.status = "valid".into();
        }
        Err(p) => {
            authz.challenges[idx].status = "invalid".into();
            authz.challenges[idx].error = Some(p.to_json().to_string());
            authz.status = "invalid".into();
        }
    }
    if order.status == "pending" {
        match &failure {
            Some(problem) => {
                order.status = "invalid".into();
                order.error = Some(problem_of(problem, &authz.identifier));
            }
            None => {
                let mut all_valid = true;
                for id in order.authorizations.iter().filter(|id| **id != authz.id) {
                    let other = auth.store.acme_authz(id)?;
                    all_valid &= other.is_some_and(|a| a.status == "valid");
                }
                if all_valid {
                    order.status = "ready".into();
                }
            }
        }
    }
    let d = Decisions {
        identity: Some(AuditIdentity {
            subject: who.clone(),
            fingerprint: account.thumbprint.clone(),
        }),
        action: "AcmeValidateChallenge".into(),
        target: format!("{}/{}", authz.id, authz.identifier),
        success_status: 200,
        ..Default::default()
    };
    let failed = outcome.as_ref().err().map(|p| p.kind);
    let (r, _) = crate::audit::with_call(d, async {
        let mut draft = crate::audit::commit_draft(&who, "AcmeValidateChallenge", "");
        draft.outcome.reason = match &outcome {
            Ok(()) => format!(
                "{} answered with the key authorization",
                authz.challenges[idx].kind
            ),
            Err(p) => p.detail.clone(),
        };
        if let Some(kind) = failed {
            draft.result = AuditResult {
                status: 403,
                code: kind.to_string(),
            };
        }
        auth.store
            .acme_put(Some(order), vec![authz], Some(draft))
            .await
    })
    .await;
    r.map_err(Problem::from)
}

/// The order's error: the challenge's problem, naming the identifier.
fn problem_of(p: &Value, identifier: &str) -> String {
    let mut p = p.clone();
    if let Some(d) = p.get("detail").and_then(Value::as_str) {
        p["detail"] = Value::String(format!("{identifier}: {d}"));
    }
    p.to_string()
}

/// `tls-alpn-01` (RFC 8737): a TLS handshake with the name as SNI and ALPN
/// `acme-tls/1`; the certificate shown must name exactly that name and carry
/// the critical acmeIdentifier extension holding SHA-256 of the key
/// authorization. The certificate is self-signed by design: it is read, not
/// trusted.
pub(super) async fn tls_alpn01(
    cfg: &AcmeConfig,
    name: &str,
    key_authorization: &str,
) -> Result<(), Problem> {
    let host = cfg.resolve_to.clone().unwrap_or_else(|| name.to_string());
    let port = cfg.tls_alpn01_port;
    let timeout = Duration::from_secs(cfg.validation_timeout_secs);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Problem::server(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ReadOnly(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    let sni = rustls_pki_types::ServerName::try_from(name.to_string())
        .map_err(|_| Problem::malformed(format!("{name:?} is not a server name")))?;
    let handshake = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| Problem::connection(format!("connecting to {name}:{port}: {e}")))?;
        tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(sni, tcp)
            .await
            .map_err(|e| Problem::connection(format!("TLS with {name}:{port}: {e}")))
    };
    let stream = tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or_else(|_| {
            Err(Problem::connection(format!(
                "no TLS answer from {name}:{port} within {timeout:?}"
            )))
        })?;
    let (_, conn) = stream.get_ref();
    if conn.alpn_protocol() != Some(ACME_TLS_ALPN) {
        return Err(Problem::incorrect_response(format!(
            "{name}:{port} did not negotiate acme-tls/1"
        )));
    }
    let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) else {
        return Err(Problem::incorrect_response("no certificate was shown"));
    };
    check_alpn_certificate(leaf.as_ref(), name, key_authorization)
}

/// The ALPN protocol of tls-alpn-01.
const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// id-pe-acmeIdentifier.
const ACME_IDENTIFIER: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.31");

fn check_alpn_certificate(
    der_cert: &[u8],
    name: &str,
    key_authorization: &str,
) -> Result<(), Problem> {
    use der::Decode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    let bad = |why: String| Problem::incorrect_response(why);
    let cert = x509_cert::Certificate::from_der(der_cert)
        .map_err(|e| bad(format!("the certificate does not parse: {e}")))?;
    let sans = match cert.tbs_certificate.get::<SubjectAltName>() {
        Ok(Some((_, san))) => san.0,
        _ => return Err(bad("the certificate has no subjectAltName".into())),
    };
    let only_name = matches!(sans.as_slice(), [GeneralName::DnsName(d)] if d.as_str().eq_ignore_ascii_case(name));
    if !only_name {
        return Err(bad(format!(
            "the certificate must name exactly {name} (one dNSName)"
        )));
    }
    let ext = cert
        .tbs_certificate
        .extensions
        .as_ref()
        .and_then(|exts| exts.iter().find(|e| e.extn_id == ACME_IDENTIFIER))
        .ok_or_else(|| bad("the certificate has no acmeIdentifier extension".into()))?;
    if !ext.critical {
        return Err(bad("the acmeIdentifier extension is not critical".into()));
    }
    let inner = der::asn1::OctetString::from_der(ext.extn_value.as_bytes())
        .map_err(|_| bad("the acmeIdentifier extension is not an OCTET STRING".into()))?;
    let want = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    if inner.as_bytes() != want.as_ref() {
        return Err(bad(
            "the acmeIdentifier does not hold this account's key authorization".into(),
        ));
    }
    Ok(())
}

/// Accepts any certificate chain (it is checked by content afterwards) but
/// still checks that the peer holds the certificate's key.
#[derive(Debug)]
struct ReadOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for ReadOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        verify_with_certificate(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        verify_with_certificate(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Check a handshake signature with the key of a certificate that webpki
/// would refuse to parse (tls-alpn-01 certificates carry a critical
/// extension it does not know).
fn verify_with_certificate(
    message: &[u8],
    cert: &rustls_pki_types::CertificateDer<'_>,
    dss: &rustls::DigitallySignedStruct,
) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
    use aws_lc_rs::signature as sig;
    use der::Decode;
    use rustls::SignatureScheme as S;
    let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
    let parsed = x509_cert::Certificate::from_der(cert.as_ref()).map_err(|_| bad())?;
    let key = parsed
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .as_bytes()
        .ok_or_else(bad)?;
    let alg: &dyn sig::VerificationAlgorithm = match dss.scheme {
        S::ECDSA_NISTP256_SHA256 => &sig::ECDSA_P256_SHA256_ASN1,
        S::ECDSA_NISTP384_SHA384 => &sig::ECDSA_P384_SHA384_ASN1,
        S::ED25519 => &sig::ED25519,
        S::RSA_PSS_SHA256 => &sig::RSA_PSS_2048_8192_SHA256,
        S::RSA_PSS_SHA384 => &sig::RSA_PSS_2048_8192_SHA384,
        S::RSA_PSS_SHA512 => &sig::RSA_PSS_2048_8192_SHA512,
        S::RSA_PKCS1_SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        S::RSA_PKCS1_SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        S::RSA_PKCS1_SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        _ => {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ))
        }
    };
    sig::UnparsedPublicKey::new(alg, key)
        .verify(message, dss.signature())
        .map(|()| rustls::client::danger::HandshakeSignatureValid::assertion())
        .map_err(|_| bad())
}

/// `dns-01` (RFC 8555 §8.4): a TXT record at `_acme-challenge.NAME` holding
/// base64url(SHA-256(key authorization)).
pub(super) async fn dns01(
    cfg: &AcmeConfig,
    name: &str,
    key_authorization: &str,
) -> Result<(), Problem> {
    let resolver = super::dns::resolver(cfg.dns_resolver.as_deref()).map_err(Problem::server)?;
    let timeout = Duration::from_secs(cfg.validation_timeout_secs);
    let at = format!("_acme-challenge.{name}");
    let records = super::dns::txt_records(resolver, &at, timeout)
        .await
        .map_err(|e| Problem::dns(format!("{at}: {e}")))?;
    let want = super::jws::b64(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes())
            .as_ref(),
    );
    if records.iter().any(|r| r == &want) {
        Ok(())
    } else if records.is_empty() {
        Err(Problem::unauthorized(format!("no TXT record at {at}")))
    } else {
        Err(Problem::incorrect_response(format!(
            "none of the {} TXT records at {at} holds this account's key authorization digest",
            records.len()
        )))
    }
}
