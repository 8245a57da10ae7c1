//! What a validation is asked for and what it answers: the leaf's usage and
//! peer name, the options, the validated path and why validation failed.

use std::net::IpAddr;

use const_oid::ObjectIdentifier;
use time::OffsetDateTime;

use super::{CheckKind, Explanation};
use crate::oids;

/// What the leaf certificate is to be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A TLS server: serverAuth EKU, CA/B Forum profile rules.
    TlsServer,
    /// A TLS client: clientAuth EKU.
    TlsClient,
    /// No particular purpose: RFC 5280 rules only.
    Any,
}

impl Usage {
    pub(super) fn eku(self) -> Option<ObjectIdentifier> {
        match self {
            Usage::TlsServer => Some(oids::KP_SERVER_AUTH),
            Usage::TlsClient => Some(oids::KP_CLIENT_AUTH),
            Usage::Any => None,
        }
    }

    pub(super) fn is_tls(self) -> bool {
        self != Usage::Any
    }
}

/// The identity the leaf must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerName {
    Dns(String),
    Ip(IpAddr),
    Email(String),
}

impl std::fmt::Display for PeerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerName::Dns(d) => write!(f, "DNS:{d}"),
            PeerName::Ip(ip) => write!(f, "IP:{ip}"),
            PeerName::Email(e) => write!(f, "email:{e}"),
        }
    }
}

/// keyUsage bits (RFC 5280 4.2.1.3 numbering: bit 0 is digitalSignature).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyUsageBits(pub u16);

impl KeyUsageBits {
    pub const DIGITAL_SIGNATURE: KeyUsageBits = KeyUsageBits(1);
    pub const NON_REPUDIATION: KeyUsageBits = KeyUsageBits(1 << 1);
    pub const KEY_ENCIPHERMENT: KeyUsageBits = KeyUsageBits(1 << 2);
    pub const DATA_ENCIPHERMENT: KeyUsageBits = KeyUsageBits(1 << 3);
    pub const KEY_AGREEMENT: KeyUsageBits = KeyUsageBits(1 << 4);
    pub const KEY_CERT_SIGN: KeyUsageBits = KeyUsageBits(1 << 5);
    pub const CRL_SIGN: KeyUsageBits = KeyUsageBits(1 << 6);
    pub const ENCIPHER_ONLY: KeyUsageBits = KeyUsageBits(1 << 7);
    pub const DECIPHER_ONLY: KeyUsageBits = KeyUsageBits(1 << 8);

    /// The bit for an RFC 5280 keyUsage name such as `digitalSignature`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "digitalSignature" => Self::DIGITAL_SIGNATURE,
            "nonRepudiation" | "contentCommitment" => Self::NON_REPUDIATION,
            "keyEncipherment" => Self::KEY_ENCIPHERMENT,
            "dataEncipherment" => Self::DATA_ENCIPHERMENT,
            "keyAgreement" => Self::KEY_AGREEMENT,
            "keyCertSign" => Self::KEY_CERT_SIGN,
            "cRLSign" => Self::CRL_SIGN,
            "encipherOnly" => Self::ENCIPHER_ONLY,
            "decipherOnly" => Self::DECIPHER_ONLY,
            _ => return None,
        })
    }

    #[must_use]
    pub fn union(self, other: KeyUsageBits) -> KeyUsageBits {
        KeyUsageBits(self.0 | other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Parameters of one validation.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The time at which every certificate must be valid.
    pub time: OffsetDateTime,
    pub usage: Usage,
    /// The name the leaf must be valid for; `None` skips name matching.
    pub peer_name: Option<PeerName>,
    /// Purposes the leaf's extKeyUsage must list (when it has one), besides the usage's.
    pub required_ekus: Vec<ObjectIdentifier>,
    /// keyUsage bits the leaf must have (when it has the extension).
    pub required_key_usage: KeyUsageBits,
    /// Most intermediates, not counting self-issued ones (as pathLenConstraint).
    pub max_depth: Option<usize>,
    /// DER CRLs to check every non-anchor certificate against.
    pub crls: Vec<Vec<u8>>,
    /// Record every check made, passed ones included, in the [`Explanation`]
    /// (the default). Off, only failed checks are recorded and the subjects of
    /// certificates that passed everything are left empty: the same verdict,
    /// without the cost of texts nobody reads (a TLS handshake's validation).
    pub explain: bool,
}

impl VerifyOptions {
    /// Validate for `usage` at `time`, with no other requirement.
    pub fn new(usage: Usage, time: OffsetDateTime) -> Self {
        VerifyOptions {
            time,
            usage,
            peer_name: None,
            required_ekus: Vec::new(),
            required_key_usage: KeyUsageBits::default(),
            max_depth: None,
            crls: Vec::new(),
            explain: true,
        }
    }
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions::new(Usage::TlsServer, OffsetDateTime::now_utc())
    }
}

/// A validated path.
#[derive(Clone, Debug)]
pub struct VerifiedPath {
    /// DER certificates, leaf first, trust anchor last.
    pub chain: Vec<Vec<u8>>,
    pub explanation: Explanation,
}

/// Why validation failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("leaf certificate is malformed: {0}")]
    MalformedLeaf(String),
    #[error("no trust anchor or intermediate issued {0}")]
    UnknownIssuer(String),
    #[error("{subject}: {kind} check failed: {detail}")]
    Check {
        kind: CheckKind,
        subject: String,
        detail: String,
    },
    #[error("path building gave up: {0}")]
    BudgetExhausted(String),
}

/// A failed validation: the reason, and the explanation of the best attempt.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{reason}")]
pub struct VerifyError {
    pub reason: Reason,
    pub explanation: Explanation,
}
