//! CAs: their lifecycle states, their records, a new CA as one commit, and
//! the record of the master key that seals their keys.

use serde::{Deserialize, Serialize};

use super::CertRecord;

/// CA lifecycle states (ACM PCA's CertificateAuthorityStatus).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaStatus {
    PendingCertificate,
    Active,
    Disabled,
    /// Replaced behind its alias: issues nothing, still serves CRL and OCSP.
    Retired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaType {
    Root,
    Subordinate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub ca_type: CaType,
    pub status: CaStatus,
    pub subject: String,
    pub key_algorithm: String,
    /// The CA's own certificate (absent while pending an external signature).
    pub certificate_pem: Option<String>,
    /// The CA's issuer and up to the root, issuer first.
    #[serde(default)]
    pub chain_pem: Vec<String>,
    pub parent_ca_id: Option<String>,
    /// Signed by a CA outside this service.
    #[serde(default)]
    pub external: bool,
    pub csr_pem: Option<String>,
    pub serial: Option<String>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub path_len: Option<u8>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Where the CA's private key lives: absent for a sealed software key,
    /// the token key's label for a key in a PKCS#11 token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_key_label: Option<String>,
    /// No OCSP for this CA: the certificates it issues carry no OCSP URL
    /// (revocation by CRL only, as Let's Encrypt chose for privacy) and its
    /// responder answers `unauthorized`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ocsp_disabled: bool,
}

/// The master key's record: its check value, and the KDF parameters when it
/// comes from a passphrase.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyMeta {
    pub check_value: Option<String>,
    pub kdf: Option<String>,
}

/// A new CA as one commit: its record, its sealed key, and (when this
/// service signed it) its certificate's record and DER.
#[derive(Clone, Debug)]
pub struct NewCaRecord {
    pub ca: CaRecord,
    pub sealed_key: Vec<u8>,
    pub certificate: Option<(CertRecord, Vec<u8>)>,
}
