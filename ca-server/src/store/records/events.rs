//! The event outbox and webhooks: an event and what it is about, the
//! `CertificateIssued` event an issuance's audit entry stands for, the
//! producers' marks, and a webhook's record.

use serde::{Deserialize, Serialize};

use crate::store::AuditEntry;

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
