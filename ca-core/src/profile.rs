//! Certificate profiles: what the CA decides about a certificate, whatever the
//! request asked for (CA-ness, key usages, extended key usages, lifetime).

use std::fmt;

use const_oid::ObjectIdentifier;
use x509_cert::ext::pkix::{KeyUsage, KeyUsages};

use crate::keys::PublicKeyKind;
use crate::oids;

/// CA/B Baseline Requirements 6.3.2: a TLS server certificate lives at most
/// 398 days, whatever an operator configures.
pub const SERVER_CEILING_DAYS: u32 = 398;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    TlsServer,
    TlsClient,
    TlsServerClient,
    /// An intermediate CA; `path_len` limits how many CAs may follow it.
    SubordinateCa {
        path_len: Option<u8>,
    },
}

/// How long certificates of a profile live unless asked otherwise, and at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValidityLimits {
    pub default_days: u32,
    pub max_days: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown profile {0:?} (expected tls-server, tls-client, tls-server-client or subordinate-ca)"
)]
pub struct UnknownProfile(pub String);

impl Profile {
    pub const LEAF_PROFILES: [Profile; 3] = [
        Profile::TlsServer,
        Profile::TlsClient,
        Profile::TlsServerClient,
    ];

    /// Stable name used in the API, CLI and storage.
    pub fn name(self) -> &'static str {
        match self {
            Profile::TlsServer => "tls-server",
            Profile::TlsClient => "tls-client",
            Profile::TlsServerClient => "tls-server-client",
            Profile::SubordinateCa { .. } => "subordinate-ca",
        }
    }

    pub fn is_ca(self) -> bool {
        matches!(self, Profile::SubordinateCa { .. })
    }

    /// Server profiles must name the server in a DNS or IP SAN (browsers ignore the CN).
    pub fn requires_server_san(self) -> bool {
        matches!(self, Profile::TlsServer | Profile::TlsServerClient)
    }

    /// The longest lifetime any configuration may give this profile: the CA/
    /// Browser Forum's 398 days for certificates a browser would accept for a
    /// server; `None` where no outside rule caps it.
    pub fn ceiling_days(self) -> Option<u32> {
        self.requires_server_san().then_some(SERVER_CEILING_DAYS)
    }

    /// Defaults: leaves 90 days (at most 398, the CA/Browser Forum ceiling);
    /// subordinate CAs 5 years (at most 10).
    pub fn default_limits(self) -> ValidityLimits {
        if self.is_ca() {
            ValidityLimits {
                default_days: 1825,
                max_days: 3650,
            }
        } else {
            ValidityLimits {
                default_days: 90,
                max_days: 398,
            }
        }
    }

    pub fn extended_key_usages(self) -> Vec<ObjectIdentifier> {
        match self {
            Profile::TlsServer => vec![oids::KP_SERVER_AUTH],
            Profile::TlsClient => vec![oids::KP_CLIENT_AUTH],
            Profile::TlsServerClient => vec![oids::KP_SERVER_AUTH, oids::KP_CLIENT_AUTH],
            // No EKU on intermediates: unrestricted, as our own CAs issue every profile.
            Profile::SubordinateCa { .. } => vec![],
        }
    }

    /// keyUsage by profile and subject key type: CAs sign certificates, CRLs and
    /// OCSP responses; RSA leaves also allow key encipherment (TLS 1.2 RSA key
    /// exchange); EC and Ed25519 leaves only sign.
    pub fn key_usage(self, key: PublicKeyKind) -> KeyUsage {
        if self.is_ca() {
            return KeyUsage(
                KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature,
            );
        }
        match key {
            PublicKeyKind::Rsa { .. } => {
                KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment)
            }
            _ => KeyUsage(KeyUsages::DigitalSignature.into()),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Profile {
    type Err = UnknownProfile;
    fn from_str(s: &str) -> Result<Self, UnknownProfile> {
        match s {
            "tls-server" => Ok(Profile::TlsServer),
            "tls-client" => Ok(Profile::TlsClient),
            "tls-server-client" => Ok(Profile::TlsServerClient),
            "subordinate-ca" => Ok(Profile::SubordinateCa { path_len: Some(0) }),
            other => Err(UnknownProfile(other.chars().take(40).collect())),
        }
    }
}
