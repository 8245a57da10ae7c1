//! The revoked-client check of the management API: every request's client
//! certificate, against the store's status of it and of each CA above it.

use std::sync::atomic::Ordering;

use super::{read, write, RevocationError, RevocationService, MAX_CACHED};
use crate::error::{ApiError, ErrorCode};
use crate::store::SerialStatus;

impl RevocationService {
    /// Whether the management API must refuse a client certificate of the
    /// client-auth CA. It must be one this CA issued and still holds as issued
    /// (an unknown or merely reserved serial is refused, not waved through),
    /// within its validity now (a keep-alive or resumed session outlives a
    /// handshake-time check), and no CA above it may be revoked. Point reads,
    /// done on every request, so a revocation locks out at once.
    pub fn client_refusal(&self, cert: Option<&ClientCert>, now: i64) -> Option<ApiError> {
        let Some(cert) = cert else {
            return Some(ApiError::new(
                ErrorCode::Unauthenticated,
                "no usable client certificate",
            ));
        };
        if now > cert.not_after {
            return Some(ApiError::new(
                ErrorCode::Unauthenticated,
                "the client certificate has expired",
            ));
        }
        let ca_id = &self.auth.config.client_auth_ca_id;
        let key = format!("{ca_id}/{}", cert.serial);
        // Trusted only while the store is healthy: a store that cannot be
        // written may miss revocations, and then the check fails closed.
        if self.auth.store.stats().writable && read(&self.good_clients).contains(&key) {
            return None;
        }
        // A status read before a revocation is not kept after it.
        let epoch = self.epoch.load(Ordering::SeqCst);
        let status = self
            .auth
            .store
            .serial_status(ca_id, &cert.serial)
            .map_err(RevocationError::from)
            .and_then(|status| match status {
                SerialStatus::Issued => {
                    let links = self.links(ca_id)?;
                    Ok(match self.chain_revoked(&links)? {
                        Some(_) => ClientStatus::Revoked,
                        None => ClientStatus::Good,
                    })
                }
                SerialStatus::Revoked(_) => Ok(ClientStatus::Revoked),
                SerialStatus::Unknown => Ok(ClientStatus::Unknown),
            });
        match status {
            Ok(ClientStatus::Good) => {
                let mut good = write(&self.good_clients);
                if self.epoch.load(Ordering::SeqCst) == epoch && good.len() < MAX_CACHED {
                    good.insert(key);
                }
                None
            }
            Ok(ClientStatus::Revoked) => Some(ApiError::new(
                ErrorCode::ClientRevoked,
                "the client certificate has been revoked",
            )),
            Ok(ClientStatus::Unknown) => Some(ApiError::new(
                ErrorCode::Unauthenticated,
                "the client certificate is not one the client-auth CA issued",
            )),
            Err(e) => {
                // Fail closed: no answer about revocation, no access.
                tracing::error!(error = %e, "client revocation check failed");
                Some(ApiError::new(
                    ErrorCode::Unavailable,
                    format!("the client certificate's status cannot be checked now: {e}"),
                ))
            }
        }
    }
}

enum ClientStatus {
    Good,
    Revoked,
    Unknown,
}

/// What each request checks of the connection's verified client certificate.
#[derive(Clone, Debug)]
pub struct ClientCert {
    /// Lower-case hex, as stored.
    pub serial: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
}

/// The serial and notAfter of a verified client certificate.
pub fn client_certificate(
    peer: Option<&[rustls_pki_types::CertificateDer<'_>]>,
) -> Option<ClientCert> {
    use der::Decode;
    let leaf = peer?.first()?;
    let cert = x509_cert::Certificate::from_der(leaf.as_ref()).ok()?;
    let tbs = &cert.tbs_certificate;
    let serial = ca_core::serial::Serial::from_bytes(tbs.serial_number.as_bytes());
    let not_after = i64::try_from(tbs.validity.not_after.to_unix_duration().as_secs()).ok()?;
    Some(ClientCert {
        serial: serial.to_hex(),
        not_after,
    })
}
