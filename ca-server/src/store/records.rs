//! The records the store keeps and the values its operations take and give.
//! Backend-neutral: a backend decides how they are laid out, not what they are.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::{AuditEntry, StoreError};

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

/// Certificate states (ACM's CertificateStatus, plus RESERVED for an intent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CertStatus {
    /// Serial reserved and the to-be-signed digest recorded; not (yet) handed out.
    Reserved,
    Issued,
    Revoked,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub reason_code: u8,
    pub reason: String,
    pub revoked_at: i64,
    pub revoked_by: String,
    /// SHA-256 (hex) of the certificate's SubjectPublicKeyInfo. With the
    /// reason keyCompromise, the store blocks that key from being certified
    /// again, in the revocation's own transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<String>,
}

/// RFC 5280 CRLReason keyCompromise: the one reason a revocation may be raised to.
pub const KEY_COMPROMISE: u8 = 1;

/// A public key that may not be certified again, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedKey {
    /// The certificate whose revocation for keyCompromise blocked it.
    pub ca_id: String,
    pub serial: String,
    pub blocked_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    pub ca_id: String,
    pub serial: String,
    pub status: CertStatus,
    pub profile: String,
    pub subject: String,
    pub sans: Vec<String>,
    pub key_algorithm: String,
    pub not_before: i64,
    pub not_after: i64,
    /// SHA-256 of the to-be-signed certificate, recorded before signing.
    pub tbs_sha256: String,
    pub created_at: i64,
    pub requested_by: String,
    /// Which server process made the intent (orphaned intents are recognised by it).
    pub boot_id: String,
    #[serde(default)]
    pub server_generated_key: bool,
    #[serde(default)]
    pub renewed_from: Option<String>,
    #[serde(default)]
    pub revocation: Option<Revocation>,
    /// SHA-256 fingerprint of the requester's client certificate (revoke-own policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_fingerprint: Option<String>,
}

impl CertRecord {
    pub fn key(&self) -> String {
        cert_key(&self.ca_id, &self.serial)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdemRecord {
    pub request_sha256: String,
    pub ca_id: String,
    pub serial: String,
}

/// The last signed CRL of a CA (its DER is a file named by CA id and number).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlMeta {
    pub crl_number: u64,
    pub this_update: i64,
    pub next_update: i64,
    pub entries: u64,
}

/// What the store knows about one serial of one CA (OCSP, client lockout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SerialStatus {
    Issued,
    Revoked(Revocation),
    /// Never issued here (or only reserved: never handed out).
    Unknown,
}

/// A certificate record and its DER (absent while only the intent exists).
pub type CertWithDer = (CertRecord, Option<Vec<u8>>);

pub fn cert_key(ca_id: &str, serial: &str) -> String {
    format!("{ca_id}/{serial}")
}

/// What reserving a serial found.
#[derive(Debug)]
pub enum ReserveOutcome {
    /// The intent is recorded; go ahead and sign.
    Reserved,
    /// The idempotency token already names this certificate, issued.
    Existing(CertRecord),
    /// The idempotency token names a certificate another request is signing now.
    InProgress(CertRecord),
}

/// Filters for listing certificates.
#[derive(Clone, Debug, Default)]
pub struct CertFilter {
    pub ca_id: Option<String>,
    pub status: Option<CertStatus>,
    /// Only certificates whose notAfter is before this (unix seconds).
    pub expiring_before: Option<i64>,
    pub limit: usize,
    pub cursor: Option<String>,
}
/// Idempotency tokens of the requests running in this process, counted: a
/// retry may carry the same token as a request still signing.
#[derive(Debug, Default)]
pub struct InFlightTokens(Mutex<HashMap<String, usize>>);

impl InFlightTokens {
    /// Count a request carrying `token` until the guard drops (when the
    /// request ends, answered or cancelled).
    pub fn enter(self: &Arc<Self>, token: &str) -> InFlightGuard {
        *self.lock().entry(token.to_string()).or_insert(0) += 1;
        InFlightGuard {
            set: self.clone(),
            token: token.to_string(),
        }
    }

    /// Whether a request other than the caller's (which has entered) carries `token`.
    pub fn others(&self, token: &str) -> bool {
        self.lock().get(token).is_some_and(|n| *n > 1)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        // A counter map stays consistent even if a holder panicked.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One in-flight request's hold on its idempotency token.
#[derive(Debug)]
pub struct InFlightGuard {
    set: Arc<InFlightTokens>,
    token: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut map = self.set.lock();
        if let Some(n) = map.get_mut(&self.token) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.token);
            }
        }
    }
}

/// The DER revokedCertificates entry of one revocation (what CRLs list).
pub fn crl_entry(serial: &str, rv: &Revocation) -> Result<Vec<u8>, super::StoreError> {
    use ca_core::crl::{encode_revoked_entry, RevocationReason, RevokedEntry};
    let bad =
        |what: &str| super::StoreError::Conflict(format!("cannot list {serial} in a CRL: {what}"));
    let entry = RevokedEntry {
        serial: ca_core::serial::Serial::from_hex(serial).map_err(|_| bad("serial"))?,
        revoked_at: time::OffsetDateTime::from_unix_timestamp(rv.revoked_at)
            .map_err(|_| bad("time"))?,
        reason: RevocationReason::from_code(rv.reason_code).ok_or_else(|| bad("reason"))?,
    };
    encode_revoked_entry(&entry).map_err(|e| bad(&e.to_string()))
}

/// The first byte of a stored CRL entry that carries its certificate's
/// notAfter and its revocation time (so expired entries can leave the CRL);
/// entries stored before have none and start with DER's 0x30.
const CRL_ENTRY_DATED: u8 = 0xFF;

/// A CRL entry as the store keeps it: `0xFF | notAfter (i64 BE) | revoked
/// at (i64 BE) | DER entry`.
pub fn stored_crl_entry(
    serial: &str,
    rv: &Revocation,
    not_after: i64,
) -> Result<Vec<u8>, super::StoreError> {
    let der = crl_entry(serial, rv)?;
    let mut out = Vec::with_capacity(17 + der.len());
    out.push(CRL_ENTRY_DATED);
    out.extend_from_slice(&not_after.to_be_bytes());
    out.extend_from_slice(&rv.revoked_at.to_be_bytes());
    out.extend_from_slice(&der);
    Ok(out)
}

/// A stored CRL entry: its certificate's notAfter and revocation time when
/// recorded, and the DER entry.
pub fn parse_stored_crl_entry(v: &[u8]) -> (Option<(i64, i64)>, &[u8]) {
    match v.split_first() {
        Some((&CRL_ENTRY_DATED, rest)) if rest.len() >= 16 => {
            let mut a = [0u8; 8];
            let mut b = [0u8; 8];
            a.copy_from_slice(&rest[..8]);
            b.copy_from_slice(&rest[8..16]);
            (
                Some((i64::from_be_bytes(a), i64::from_be_bytes(b))),
                &rest[16..],
            )
        }
        _ => (None, v),
    }
}

/// A CA's CRL entries for the next CRL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrlEntries {
    /// The DER entries, concatenated.
    pub der: Vec<u8>,
    pub count: u64,
    /// Store keys of entries left out because their certificate had expired,
    /// and they were revoked, before the cut-off: already on a CRL published
    /// after the certificate expired, so they may go (RFC 5280 §3.3).
    pub expired: Vec<String>,
}

/// What the writer of an audit entry knows; the store fills in the sequence
/// number and the hash chain inside the transaction that appends it.
#[derive(Clone, Debug)]
pub struct AuditDraft {
    pub unix: i64,
    pub identity: ca_core::audit_chain::AuditIdentity,
    pub action: String,
    pub target: String,
    pub outcome: ca_core::audit_chain::AuditOutcome,
    pub result: ca_core::audit_chain::AuditResult,
    /// Issuance: the certificate made (serial, SANs, notAfter, TBS hash).
    pub certificate: Option<ca_core::audit_chain::AuditedCertificate>,
}

/// Filters for listing the audit trail.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Matches the subject or the fingerprint exactly.
    pub identity: Option<String>,
    pub action: Option<String>,
    pub limit: usize,
    /// The next sequence number to look at.
    pub cursor: Option<u64>,
}

impl AuditFilter {
    /// Whether an entry passes the time, identity and action filters.
    pub fn matches(&self, e: &AuditEntry) -> bool {
        if self.since.is_some_and(|s| e.unix < s) || self.until.is_some_and(|u| e.unix > u) {
            return false;
        }
        if let Some(id) = &self.identity {
            if &e.identity.subject != id && !e.identity.fingerprint.eq_ignore_ascii_case(id) {
                return false;
            }
        }
        self.action.as_ref().is_none_or(|a| &e.action == a)
    }
}

/// The revocation to record for `rec`, by the rules every backend keeps:
/// the same reason again is idempotent (`None`: the first record stands);
/// any reason may be raised to keyCompromise (the date stays); any other
/// change is a conflict; an unissued serial is not found.
pub fn revocation_to_record(
    rec: &CertRecord,
    revocation: Revocation,
) -> Result<Option<Revocation>, StoreError> {
    match (rec.status, &rec.revocation) {
        (CertStatus::Reserved, _) => Err(StoreError::NotFound(format!(
            "no certificate {} from {}",
            rec.serial, rec.ca_id
        ))),
        (CertStatus::Issued, _) => Ok(Some(revocation)),
        (CertStatus::Revoked, Some(first)) if first.reason_code == revocation.reason_code => {
            Ok(None)
        }
        (CertStatus::Revoked, Some(first)) if revocation.reason_code == KEY_COMPROMISE => {
            Ok(Some(Revocation {
                revoked_at: first.revoked_at,
                ..revocation
            }))
        }
        (CertStatus::Revoked, first) => {
            let had = first
                .as_ref()
                .map_or("another reason", |r| r.reason.as_str());
            Err(StoreError::Conflict(format!(
                "certificate {} is already revoked ({had}); only KEY_COMPROMISE may replace its reason",
                rec.serial
            )))
        }
    }
}

/// How verification of the audit chain ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `count` entries chained; `digests` signed digests checked, the newest
    /// covering entries up to `covered`.
    Ok {
        count: u64,
        digests: u64,
        covered: u64,
    },
    Broken {
        seq: u64,
        why: String,
    },
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

/// What a commit changed, told to subscribers after it is durable (CRL
/// dirty marks, OCSP and policy caches), whether or not the request that
/// caused it is still waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    Revoked {
        ca_id: String,
        serial: String,
    },
    CaChanged {
        ca_id: String,
    },
    AliasChanged {
        alias: String,
    },
    PolicyChanged {
        id: String,
    },
    /// A CRL was published (by this node or another): serve the newest.
    CrlPublished {
        ca_id: String,
        number: u64,
    },
    /// Other nodes' changes may have been missed (a shared store lost and
    /// regained its notifications): drop everything cached from the store.
    Resync,
}

/// Called on the committing thread after each durable commit; must be quick.
pub type CommitHook = Arc<dyn Fn(&Committed) + Send + Sync>;

/// Told of each commit attempt: how long it took and how many writes it carried.
pub type CommitObserver = Arc<dyn Fn(std::time::Duration, usize) + Send + Sync>;

/// Stored policy statements: (statement id, JSON).
pub type PolicyRows = Vec<(String, Vec<u8>)>;

/// One event of the outbox: what happened, kept until the retention period
/// ends, in the order the store numbered it. The store assigns `seq`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventRecord {
    /// Position in the outbox (ascending, never reused).
    pub seq: u64,
    /// Unique and stable across redeliveries: receivers deduplicate by it.
    pub id: String,
    /// `CertificateIssued`, `CertificateRevoked`,
    /// `CertificateApproachingExpiration`, `CaApproachingExpiration` or
    /// `CrlPublished`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened, RFC 3339 UTC.
    pub time: String,
    /// The same, in Unix seconds.
    pub unix: i64,
    pub ca_id: String,
    pub detail: EventDetail,
    /// The audit entry this event was made from, when it is exactly
    /// [`issuance_event`] of that entry: a store may then keep the reference
    /// instead of the event. Not part of the event on the wire.
    #[serde(skip)]
    #[schemars(skip)]
    pub audit_seq: Option<u64>,
}

/// The `CertificateIssued` event an issuance's audit entry stands for (what
/// the entry says is enough: no store read per issuance), or None for other
/// entries.
pub fn issuance_event(e: &AuditEntry, id: String) -> Option<EventRecord> {
    let c = e.certificate.as_ref()?;
    if e.result.code != "success" {
        return None;
    }
    let ca_id = e.target.split('/').next().unwrap_or_default().to_string();
    Some(EventRecord {
        seq: 0,
        id,
        event_type: CERTIFICATE_ISSUED_EVENT.to_string(),
        time: e.time.clone(),
        unix: e.unix,
        ca_id,
        detail: EventDetail {
            serial: Some(c.serial.clone()),
            sans: c.sans.clone(),
            not_after: Some(c.not_after.clone()),
            by: Some(e.identity.subject.clone()).filter(|s| !s.is_empty()),
            ..Default::default()
        },
        audit_seq: Some(e.seq),
    })
}

/// The type of the event a certificate's issuance makes.
pub const CERTIFICATE_ISSUED_EVENT: &str = "CertificateIssued";

/// What an event is about; which fields are set (not null) depends on its type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventDetail {
    /// The certificate's serial (lower-case hex).
    #[serde(default)]
    pub serial: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub sans: Vec<String>,
    #[serde(default)]
    pub profile: Option<String>,
    /// RFC 3339 UTC.
    #[serde(default)]
    pub not_after: Option<String>,
    /// Whole days left until notAfter (expiration events).
    #[serde(default)]
    pub days_to_expiry: Option<i64>,
    /// RFC 5280 reason name (revocations).
    #[serde(default)]
    pub reason: Option<String>,
    /// Who made the change (the caller's subject).
    #[serde(default)]
    pub by: Option<String>,
    #[serde(default)]
    pub crl_number: Option<u64>,
    #[serde(default)]
    pub crl_entries: Option<u64>,
    /// RFC 3339 UTC (CRLs).
    #[serde(default)]
    pub next_update: Option<String>,
}

/// Move a named outbox mark (the audit position events were made up to, the
/// time of the last expiry scan) from `expect` to `set`, refused (Conflict)
/// if it is no longer at `expect`: two producers cannot emit the same events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkAdvance {
    pub name: String,
    /// None: the mark must not exist yet.
    pub expect: Option<u64>,
    pub set: u64,
}

/// A webhook: where events are POSTed, and how far delivery has got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub id: String,
    pub url: String,
    /// The HMAC-SHA256 key that signs each body (hex). Never returned after
    /// creation.
    pub secret: String,
    /// Event types delivered; empty means all.
    #[serde(default)]
    pub event_types: Vec<String>,
    pub created_at: i64,
    pub created_by: String,
    /// The last event delivered (or skipped) in order; set by the store at
    /// creation to the newest event, so a new webhook gets what follows.
    pub delivered_seq: u64,
}

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
