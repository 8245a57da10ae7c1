//! The JSON of the management API, as types: every request body and every
//! answer, shared by the server (which serialises the answers and parses the
//! requests) and by `ca-cli` (which does the opposite), so the two cannot
//! drift apart and neither reads fields by string key.
//!
//! Request bodies refuse unknown fields (a misspelt option must not be
//! silently ignored); answers accept them, so an older client keeps working
//! against a newer server. Optional answer fields are written as `null`, never
//! left out: scripts rely on every field being present.
//!
//! States and types travel as their API names (`ACTIVE`, `ROOT`, `ISSUED`),
//! kept as strings here so that a newer server's new state does not break an
//! older client; the server's store owns the enums behind them.
//!
//! The webhook and event types are in `webhooks`, ACME administration's in
//! `acme`; both are re-exported here.

mod acme;
mod webhooks;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

pub use self::acme::*;
pub use self::webhooks::*;
pub use crate::policy::StatementDto as PolicyStatement;
pub use ca_core::audit_chain::AuditEntry;

/// Key algorithm the server picks when a request names none.
pub const DEFAULT_KEY_ALGORITHM: &str = "ec-p256";

fn default_key_algorithm() -> String {
    DEFAULT_KEY_ALGORITHM.into()
}

// ---------------------------------------------------------------- requests

/// `POST /v1/cas`: create a root or subordinate CA (ACM PCA CreateCertificateAuthority).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCa {
    /// `ROOT` or `SUBORDINATE`.
    #[serde(rename = "type")]
    pub ca_type: String,
    /// RFC 4514 subject.
    pub subject: String,
    #[serde(default = "default_key_algorithm")]
    pub key_algorithm: String,
    pub parent_ca_id: Option<String>,
    /// Signed outside this service: the CA waits for an imported certificate.
    #[serde(default)]
    pub external: bool,
    pub validity_days: Option<u32>,
    pub path_len: Option<u8>,
    pub name_constraints: Option<NameConstraints>,
    /// `software` (default: sealed into the store) or `pkcs11` (made inside
    /// the server's PKCS#11 token, never extractable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_storage: Option<String>,
    /// With `pkcs11`: adopt the existing token key with this label instead
    /// of making one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_label: Option<String>,
    /// `false`: no OCSP for this CA; what it issues names only its CRL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocsp: Option<bool>,
}

/// RFC 5280 name constraints of a new CA.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NameConstraints {
    #[serde(default)]
    pub permitted_dns: Vec<String>,
    #[serde(default)]
    pub excluded_dns: Vec<String>,
    #[serde(default)]
    pub permitted_ip: Vec<String>,
    #[serde(default)]
    pub excluded_ip: Vec<String>,
}

/// `PATCH /v1/cas/{id}`: enable or disable a CA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCaStatus {
    /// `ACTIVE` or `DISABLED`.
    #[schemars(extend("enum" = ["ACTIVE", "DISABLED"]))]
    pub status: String,
}

/// `POST /v1/cas/{id}/certificate`: import an externally signed CA certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportCaCertificate {
    pub certificate: String,
    /// The issuer's chain, PEM, issuer first.
    pub certificate_chain: String,
}

/// `POST /v1/certificates`: issue from a CSR (ACM PCA IssueCertificate).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueCertificate {
    /// Absent: the server's default CA.
    pub ca_id: Option<String>,
    /// PEM `CERTIFICATE REQUEST`.
    pub csr: String,
    /// Absent: `tls-server`.
    pub profile: Option<String>,
    pub validity_days: Option<u32>,
    /// A retry with the same token returns the first answer instead of issuing twice.
    pub idempotency_token: Option<String>,
}

/// `POST /v1/certificates/request`: a certificate with a server-made key
/// (ACM RequestCertificate + ExportCertificate). It carries the passphrase
/// the key is encrypted under, so it is wiped when dropped and has no `Debug`.
#[derive(
    Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct RequestCertificate {
    pub ca_id: Option<String>,
    /// DNS names and IP addresses for the subjectAltName.
    pub names: Vec<String>,
    /// RFC 4514 subject; absent: CN = the first name.
    pub subject: Option<String>,
    pub profile: Option<String>,
    #[serde(default = "default_key_algorithm")]
    pub key_algorithm: String,
    pub validity_days: Option<u32>,
    #[schemars(length(min = 8))]
    pub passphrase: String,
}

/// `POST /v1/certificates/{serial}/renew`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewCertificate {
    pub ca_id: Option<String>,
    /// A new CSR (a new key); absent: the same public key again.
    pub csr: Option<String>,
    pub validity_days: Option<u32>,
    pub idempotency_token: Option<String>,
}

/// `POST /v1/certificates/{serial}/revoke`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeCertificate {
    pub ca_id: Option<String>,
    pub reason: RevocationReason,
}

/// A CRLReason as the client wrote it: an RFC 5280 code or a name (ACM's
/// `KEY_COMPROMISE` style). Anything else is kept as sent, so the server
/// answers with its own message rather than a parser's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RevocationReason {
    Code(serde_json::Number),
    Name(String),
    Other(serde_json::Value),
}

/// `PUT /v1/aliases/{alias}`: point an alias at a CA.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAlias {
    pub ca_id: String,
}

/// `POST /v1/webhooks`: POST events to `url`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// `https://…` (`http://` only when the server allows it).
    pub url: String,
    /// Event types to deliver; empty or absent: all.
    #[serde(default)]
    pub event_types: Vec<String>,
    /// The HMAC key for `CA-Signature` (16 to 256 characters); absent: the
    /// server makes one and returns it, once.
    #[serde(default)]
    pub secret: Option<String>,
}

// ----------------------------------------------------------------- answers

/// A CA as described by the API (ACM PCA DescribeCertificateAuthority).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CaDescription {
    pub id: String,
    /// `ROOT` or `SUBORDINATE`.
    #[serde(rename = "type")]
    pub ca_type: String,
    /// `PENDING_CERTIFICATE`, `ACTIVE`, `DISABLED` or `RETIRED`.
    pub status: String,
    pub subject: String,
    pub key_algorithm: String,
    pub serial: Option<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub path_len: Option<u8>,
    pub parent_ca_id: Option<String>,
    pub external: bool,
    pub created_at: String,
    pub updated_at: String,
    /// `software` or `pkcs11`.
    #[serde(default = "default_key_storage")]
    pub key_storage: String,
    /// The token key's label, for `pkcs11`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_label: Option<String>,
    /// Whether the CA answers OCSP (and its certificates name the responder).
    #[serde(default = "yes")]
    pub ocsp: bool,
}

fn default_key_storage() -> String {
    "software".into()
}

/// `GET /v1/cas`: the CAs this caller may read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CaList {
    pub certificate_authorities: Vec<CaDescription>,
}

/// `GET /v1/cas/{id}/csr`: the CSR of a CA waiting for an external signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CaCsr {
    pub ca_id: String,
    pub csr: String,
}

/// `GET /v1/cas/{id}/certificate`: a CA certificate with its chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CaCertificate {
    pub ca_id: String,
    pub certificate: String,
    pub certificate_chain: String,
}

/// A certificate's record, without the certificate itself (list entries, revoke).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CertificateSummary {
    pub ca_id: String,
    pub serial: String,
    /// `ISSUED`, `REVOKED`, `EXPIRED` or `RESERVED`.
    pub status: String,
    pub profile: String,
    pub subject: String,
    pub sans: Vec<String>,
    pub key_algorithm: String,
    pub not_before: String,
    pub not_after: String,
    pub created_at: String,
    pub requested_by: String,
    pub renewed_from: Option<String>,
    pub revocation: Option<RevocationInfo>,
}

/// How and when a certificate was revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RevocationInfo {
    pub reason_code: u8,
    pub reason: String,
    pub revoked_at: String,
    pub revoked_by: String,
}

/// A certificate with its PEM and chain (issue, renew, get).
// (Serialised by hand below; this doc comment is the OpenAPI description.)
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
pub struct Certificate {
    #[serde(flatten)]
    pub summary: CertificateSummary,
    pub certificate: String,
    /// Issuer first, up to the root, PEM.
    pub certificate_chain: String,
}

// By hand, with the keys sorted as every other answer's are (through
// `serde_json::Value`): the issuance answer is written straight into the
// response body, not built as a map first.
impl Serialize for Certificate {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let s = &self.summary;
        let mut map = serializer.serialize_map(Some(15))?;
        // In byte order of the keys (a test holds it to the `Value` route).
        map.serialize_entry("ca_id", &s.ca_id)?;
        map.serialize_entry("certificate", &self.certificate)?;
        map.serialize_entry("certificate_chain", &self.certificate_chain)?;
        map.serialize_entry("created_at", &s.created_at)?;
        map.serialize_entry("key_algorithm", &s.key_algorithm)?;
        map.serialize_entry("not_after", &s.not_after)?;
        map.serialize_entry("not_before", &s.not_before)?;
        map.serialize_entry("profile", &s.profile)?;
        map.serialize_entry("renewed_from", &s.renewed_from)?;
        map.serialize_entry("requested_by", &s.requested_by)?;
        map.serialize_entry("revocation", &s.revocation.as_ref().map(SortedRevocation))?;
        map.serialize_entry("sans", &s.sans)?;
        map.serialize_entry("serial", &s.serial)?;
        map.serialize_entry("status", &s.status)?;
        map.serialize_entry("subject", &s.subject)?;
        map.end()
    }
}

/// [`RevocationInfo`] with its keys sorted, for [`Certificate`]'s answer.
struct SortedRevocation<'a>(&'a RevocationInfo);

impl Serialize for SortedRevocation<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = self.0;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("reason", &r.reason)?;
        map.serialize_entry("reason_code", &r.reason_code)?;
        map.serialize_entry("revoked_at", &r.revoked_at)?;
        map.serialize_entry("revoked_by", &r.revoked_by)?;
        map.end()
    }
}

/// A certificate issued with a server-made key: the key comes back once,
/// encrypted under the caller's passphrase (PKCS#8 PBES2 PEM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CertificateWithKey {
    #[serde(flatten)]
    pub certificate: Certificate,
    pub private_key: String,
}

/// `GET /v1/certificates`: one page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CertificateList {
    pub certificates: Vec<CertificateSummary>,
    /// Absent (`null`) on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/whoami`: the identity the server sees in the client certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WhoAmI {
    pub subject: String,
    pub sans: Vec<String>,
}

/// `GET /health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Health {
    pub status: String,
    pub version: String,
    pub store: StoreStats,
    /// Each check by name (`store_writable`, `ca_keys`, `crls_fresh`,
    /// `ca_expiry`): passed or not, and why.
    #[serde(default)]
    pub checks: std::collections::BTreeMap<String, HealthCheck>,
    /// The PKCS#11 token, when one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<TokenHealth>,
}

/// One health check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthCheck {
    pub ok: bool,
    pub detail: String,
}

/// The PKCS#11 token's state: connected, and the session pool's use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenHealth {
    pub connected: bool,
    /// Sessions open now: a new one opens only when every open one is in
    /// use, so this is also the most signatures that have run at once.
    pub sessions_open: usize,
    pub sessions_max: usize,
}

/// Group-commit counters of the store (writes per commit shows the batching).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StoreStats {
    /// False while writes fail (a full disk): the store recovers by itself.
    #[serde(default = "yes")]
    pub writable: bool,
    /// Successful group commits (failed ones not counted).
    pub commits: u64,
    /// The writes those commits carried.
    pub writes: u64,
}

fn yes() -> bool {
    true
}

/// `GET /v1/policies`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyList {
    pub statements: Vec<PolicyStatement>,
}

/// `DELETE /v1/policies/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PolicyDeleted {
    pub deleted: String,
}

/// An alias and the CA behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AliasBinding {
    pub alias: String,
    pub ca_id: String,
}

/// `GET /v1/aliases`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AliasList {
    pub aliases: Vec<AliasBinding>,
}

/// `POST /v1/aliases/{alias}/rotate`: the alias now names `new`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AliasRotation {
    pub alias: String,
    pub ca_id: String,
    pub new: CaDescription,
    pub retired: CaDescription,
}

/// `GET /v1/audit`: one page of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditPage {
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    pub entries: Vec<AuditEntry>,
    pub next_cursor: Option<String>,
}

/// `GET /v1/audit/digests`: signed digests of the trail, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditDigestPage {
    #[schemars(with = "Vec<serde_json::Map<String, serde_json::Value>>")]
    pub digests: Vec<ca_core::audit_digest::AuditDigest>,
}

/// Every error answer: `{"error": {"code": ..., "message": ...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable machine-readable code and a message for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[cfg(test)]
mod tests;
