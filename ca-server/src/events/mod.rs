//! Events, as ACM sends them to EventBridge: CertificateIssued,
//! CertificateRevoked, CertificateApproachingExpiration,
//! CaApproachingExpiration and CrlPublished, kept in a durable outbox in the
//! store and POSTed to webhooks (HMAC-signed, retried with backoff).
//!
//! Where events come from:
//! - Issuance, revocation and CRL signing are read off the audit trail
//!   ([`project`]): each of those actions already commits its audit entry in
//!   its own transaction, so an event cannot be lost between the action and
//!   the outbox, and the issuance path writes nothing more. The projector
//!   moves a mark over the trail in the same commit as the events it appends.
//!   That commit waits for no sync of its own (one every 0.1 s under load
//!   cost ~5% of the issuance rate): a crash that takes it takes the mark
//!   too, and the projector makes the same events again, each id derived
//!   from its audit entry ([`event_id_of`]).
//! - Expiration events come from a scan ([`scan`]), every
//!   `expiry_scan_interval_secs` (a day), whose time is a mark too, so a
//!   restart neither repeats nor skips a day.
//!
//! Delivery ([`deliver`]) keeps, per webhook, the last event delivered in
//! order; a webhook that is down holds its queue (retried with exponential
//! backoff) until it answers 2xx or the event is older than
//! `give_up_after_hours`. At least once: a crash between a POST and the
//! record of its success sends that event again; receivers deduplicate by
//! the event `id`.

pub mod deliver;
pub mod project;
pub mod scan;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub const CERTIFICATE_ISSUED: &str = crate::store::CERTIFICATE_ISSUED_EVENT;
pub const CERTIFICATE_REVOKED: &str = "CertificateRevoked";
pub const CERTIFICATE_APPROACHING_EXPIRATION: &str = "CertificateApproachingExpiration";
pub const CA_APPROACHING_EXPIRATION: &str = "CaApproachingExpiration";
pub const CRL_PUBLISHED: &str = "CrlPublished";

/// Every event type, as webhooks filter them.
pub const EVENT_TYPES: &[&str] = &[
    CERTIFICATE_ISSUED,
    CERTIFICATE_REVOKED,
    CERTIFICATE_APPROACHING_EXPIRATION,
    CA_APPROACHING_EXPIRATION,
    CRL_PUBLISHED,
];

/// `[events]` in config.toml.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Make events and deliver them at all.
    pub enabled: bool,
    /// CertificateApproachingExpiration from this many days before notAfter.
    pub expiry_days: u32,
    /// CaApproachingExpiration from this many days before a CA's notAfter.
    pub ca_expiry_days: u32,
    /// How often the expiry scan runs (a day: one notice per certificate per day).
    pub expiry_scan_interval_secs: u64,
    /// Events older than this leave the outbox.
    pub retention_days: u32,
    /// The first retry of a failed delivery waits this long; each next one twice as long.
    pub retry_initial_ms: u64,
    /// The longest wait between retries.
    pub retry_max_secs: u64,
    /// An event still undelivered this long after it happened is skipped (and counted).
    pub give_up_after_hours: u32,
    /// One delivery attempt (connect, TLS, POST, answer) takes at most this long.
    pub webhook_timeout_secs: u64,
    /// More trust anchors (PEM) for webhook HTTPS, beside the system's and
    /// this CA's own roots; relative to the data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_ca_file: Option<PathBuf>,
    /// Accept `http://` webhook URLs (bodies are still signed, but not secret).
    pub allow_http: bool,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: true,
            expiry_days: 45,
            ca_expiry_days: 90,
            expiry_scan_interval_secs: 24 * 3600,
            retention_days: 30,
            retry_initial_ms: 1000,
            retry_max_secs: 300,
            give_up_after_hours: 24,
            webhook_timeout_secs: 10,
            webhook_ca_file: None,
            allow_http: false,
        }
    }
}

impl EventsConfig {
    pub fn check(&self) -> Result<(), String> {
        let bounded: [(&str, u64, u64, u64); 8] = [
            ("events.expiry_days", self.expiry_days.into(), 1, 3660),
            ("events.ca_expiry_days", self.ca_expiry_days.into(), 1, 3660),
            (
                "events.expiry_scan_interval_secs",
                self.expiry_scan_interval_secs,
                1,
                30 * 24 * 3600,
            ),
            ("events.retention_days", self.retention_days.into(), 1, 3660),
            (
                "events.retry_initial_ms",
                self.retry_initial_ms,
                1,
                3_600_000,
            ),
            ("events.retry_max_secs", self.retry_max_secs, 1, 86_400),
            (
                "events.give_up_after_hours",
                self.give_up_after_hours.into(),
                1,
                24 * 366,
            ),
            (
                "events.webhook_timeout_secs",
                self.webhook_timeout_secs,
                1,
                600,
            ),
        ];
        for (name, v, lo, hi) in bounded {
            if !(lo..=hi).contains(&v) {
                return Err(format!("{name} must be {lo} to {hi}"));
            }
        }
        // Events are pruned at retention_days whatever a webhook has reached:
        // retrying longer than that would skip pruned events uncounted.
        if u64::from(self.give_up_after_hours) > u64::from(self.retention_days) * 24 {
            return Err(
                "events.give_up_after_hours must not exceed events.retention_days × 24".into(),
            );
        }
        Ok(())
    }
}

/// The id of the event made from the audit entry whose hash is
/// `audit_hash`: `evt-` and 32 hex digits of a SHA-256 over it. The same
/// entry gives the same id whenever it is projected, so events that a crash
/// took before they reached the disk come back the same (see
/// [`Store::append_projected_events`](crate::store::Store::append_projected_events)),
/// and receivers deduplicate them as they do a delivery repeated.
pub fn event_id_of(audit_hash: &str) -> String {
    let digest =
        ca_core::audit_digest::sha256_hex(format!("ca-server event\n{audit_hash}").as_bytes());
    format!("evt-{}", &digest[..32])
}

/// A new event id: `evt-` and 32 hex digits.
pub fn new_event_id() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b)?;
    Ok(format!("evt-{}", ca_core::hex::encode(&b)))
}

/// What the event tasks share with the rest of the server.
#[derive(Default)]
pub struct EventHub {
    /// Something committed: the projector may have audit entries to read.
    pub audit_grew: tokio::sync::Notify,
    /// Events were appended: delivery tasks may have work.
    pub appended: tokio::sync::Notify,
    /// A webhook was created or deleted.
    pub webhooks_changed: tokio::sync::Notify,
    /// How delivery goes, per webhook id (since this process started).
    pub status: std::sync::Mutex<std::collections::HashMap<String, DeliveryStatus>>,
}

/// Delivery to one webhook, as this process has seen it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryStatus {
    pub delivered: u64,
    pub failed_attempts: u64,
    pub skipped: u64,
    /// Unix seconds of the last 2xx answer.
    pub last_success: Option<i64>,
    pub last_error: Option<String>,
    /// Unix seconds of the next retry while one is pending.
    pub next_retry: Option<i64>,
}

impl EventHub {
    pub fn status_of(&self, id: &str) -> DeliveryStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn update(&self, id: &str, f: impl FnOnce(&mut DeliveryStatus)) {
        let mut all = self.status.lock().unwrap_or_else(|p| p.into_inner());
        f(all.entry(id.to_string()).or_default());
    }

    pub(crate) fn forget(&self, id: &str) {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}
