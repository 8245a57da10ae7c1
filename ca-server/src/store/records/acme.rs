//! ACME state: accounts, external account binding keys, orders and
//! authorizations with their challenges.

use serde::{Deserialize, Serialize};

/// An ACME account (RFC 8555 §7.1.2), keyed by its id; its key is found by
/// the key's JWK thumbprint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAccount {
    pub id: String,
    pub provisioner: String,
    /// `valid`, `deactivated` or `revoked`.
    pub status: String,
    /// RFC 7638 thumbprint of the account key, base64url.
    pub thumbprint: String,
    /// The account key as a JWK (JSON).
    pub jwk: String,
    pub contact: Vec<String>,
    pub created_at: i64,
    /// The external account binding key it was made with, if any.
    #[serde(default)]
    pub eab_kid: Option<String>,
}

/// An external account binding key (RFC 8555 §7.3.4): made by an operator,
/// shown once, bound to the one account made with it, revocable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeEabKey {
    pub kid: String,
    pub provisioner: String,
    /// The HMAC key, base64url.
    pub hmac_key: String,
    pub created_at: i64,
    pub created_by: String,
    pub revoked: bool,
    /// The account made with it.
    pub account: Option<String>,
    /// The policy statement made with it (names its accounts may get).
    pub policy_statement: Option<String>,
}

/// An ACME order (RFC 8555 §7.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeOrder {
    pub id: String,
    pub account: String,
    pub provisioner: String,
    /// `pending`, `ready`, `processing`, `valid` or `invalid`.
    pub status: String,
    /// DNS names (lower case).
    pub identifiers: Vec<String>,
    pub authorizations: Vec<String>,
    pub expires: i64,
    /// The issued certificate: (CA id, serial).
    pub certificate: Option<(String, String)>,
    /// An ACME problem document (JSON) when invalid.
    pub error: Option<String>,
    pub created_at: i64,
    /// The finalize CSR (PEM), kept from `processing` on so an interrupted
    /// issuance can be finished.
    #[serde(default)]
    pub csr: Option<String>,
}

/// An ACME authorization (RFC 8555 §7.1.4) with its challenges.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeAuthz {
    pub id: String,
    pub account: String,
    /// The order it was made for.
    pub order: String,
    /// DNS name (lower case), without the `*.` of a wildcard.
    pub identifier: String,
    /// For `*.identifier`: only dns-01 proves it.
    #[serde(default)]
    pub wildcard: bool,
    /// `pending`, `valid`, `invalid`, `deactivated`, `expired` or `revoked`.
    pub status: String,
    pub expires: i64,
    pub challenges: Vec<AcmeChallenge>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmeChallenge {
    pub id: String,
    /// `http-01`, `tls-alpn-01` or `dns-01`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `pending`, `processing`, `valid` or `invalid`.
    pub status: String,
    pub token: String,
    pub validated: Option<i64>,
    /// An ACME problem document (JSON) when invalid.
    pub error: Option<String>,
}
