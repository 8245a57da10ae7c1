//! Webhooks and the event outbox as the API shows them: a webhook with its
//! delivery state, the answers of creating, listing and deleting one, and
//! a page of events.

use serde::{Deserialize, Serialize};

/// Delivery to one webhook as the answering server has seen it since it started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookDelivery {
    pub delivered: u64,
    pub failed_attempts: u64,
    /// Events given up on after `give_up_after_hours`.
    pub skipped: u64,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub next_retry: Option<String>,
}

/// A webhook (its secret is never shown again after creation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    /// Empty: all event types.
    pub event_types: Vec<String>,
    pub created_at: String,
    pub created_by: String,
    /// The last event delivered in order.
    pub delivered_seq: u64,
    /// Events in the outbox after `delivered_seq` (some may be of types not delivered).
    pub pending: u64,
    pub delivery: WebhookDelivery,
}

/// `POST /v1/webhooks`: the webhook and its secret (shown this once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookCreated {
    pub webhook: Webhook,
    pub secret: String,
}

/// `GET /v1/webhooks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

/// `DELETE /v1/webhooks/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookDeleted {
    pub deleted: String,
}

/// `GET /v1/events`: events from the outbox, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventPage {
    pub events: Vec<crate::store::EventRecord>,
    /// Pass as `after` for the next page; null at the end.
    pub next_cursor: Option<String>,
}
