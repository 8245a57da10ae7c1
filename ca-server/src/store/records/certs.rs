//! Certificates: their records and states, revocations and blocked keys,
//! reserving a serial (idempotency tokens, those in flight), listing, and
//! the revocation rules every backend keeps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::store::StoreError;

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
