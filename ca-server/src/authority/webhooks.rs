//! Webhooks and the event outbox, as the API offers them: global
//! administrators create and delete webhooks; whoever may read the audit
//! trail may read events.

use super::*;
use crate::api::wire;
use crate::events::{self, deliver};
use crate::store::{EventRecord, WebhookRecord};

/// Most webhooks one server keeps (each has a delivery task).
pub const MAX_WEBHOOKS: usize = 64;
/// Shortest and longest secret a caller may choose.
const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// `wh-` and 16 hex digits.
pub fn is_webhook_id(s: &str) -> bool {
    s.len() == 19
        && s.starts_with("wh-")
        && s[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut b = vec![0u8; bytes];
    getrandom::getrandom(&mut b).map_err(|e| ApiError::internal("randomness", e))?;
    Ok(ca_core::hex::encode(&b))
}

impl Authority {
    fn webhook_view(&self, h: &WebhookRecord, newest: u64) -> wire::Webhook {
        let s = self.events.status_of(&h.id);
        let fmt = |t: Option<i64>| t.map(crate::clock::fmt_unix);
        wire::Webhook {
            id: h.id.clone(),
            url: h.url.clone(),
            event_types: h.event_types.clone(),
            created_at: crate::clock::fmt_unix(h.created_at),
            created_by: h.created_by.clone(),
            delivered_seq: h.delivered_seq,
            pending: newest.saturating_sub(h.delivered_seq),
            delivery: wire::WebhookDelivery {
                delivered: s.delivered,
                failed_attempts: s.failed_attempts,
                skipped: s.skipped,
                last_success: fmt(s.last_success),
                last_error: s.last_error,
                next_retry: fmt(s.next_retry),
            },
        }
    }

    fn newest_event(&self) -> Result<u64, ApiError> {
        Ok(self
            .store
            .event_mark(crate::store::NEXT_EVENT_SEQ)?
            .map_or(0, |n| n.saturating_sub(1)))
    }

    pub async fn create_webhook(
        &self,
        who: &Identity,
        body: wire::CreateWebhook,
    ) -> Result<wire::WebhookCreated, ApiError> {
        self.authorize_administer(who, "*")?;
        deliver::parse_url(&body.url, self.config.events.allow_http)
            .map_err(|why| ApiError::invalid(format!("url: {why}")))?;
        let mut types = Vec::new();
        for t in body.event_types {
            if !events::EVENT_TYPES.contains(&t.as_str()) {
                return Err(ApiError::invalid(format!(
                    "unknown event type {t:?}; known: {}",
                    events::EVENT_TYPES.join(", ")
                )));
            }
            if !types.contains(&t) {
                types.push(t);
            }
        }
        let secret =
            match body.secret {
                Some(s) if SECRET_LEN.contains(&s.chars().count()) => s,
                Some(_) => return Err(ApiError::invalid(
                    "secret must be 16 to 256 characters (or left out, and the server makes one)",
                )),
                None => random_hex(32)?,
            };
        if self.store.list_webhooks()?.len() >= MAX_WEBHOOKS {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("this server keeps at most {MAX_WEBHOOKS} webhooks; delete one first"),
            ));
        }
        let id = format!("wh-{}", random_hex(8)?);
        let rec = WebhookRecord {
            id: id.clone(),
            url: body.url,
            secret: secret.clone(),
            event_types: types,
            created_at: self.now().unix_timestamp(),
            created_by: who.display(),
            delivered_seq: 0,
        };
        let draft = self.draft(&who.display(), "CreateWebhook", &id);
        let stored = self.store.create_webhook(rec, draft).await?;
        crate::audit::committed();
        self.events.webhooks_changed.notify_one();
        tracing::info!(webhook = %id, url = %stored.url, by = %who.display(), "webhook created");
        Ok(wire::WebhookCreated {
            webhook: self.webhook_view(&stored, self.newest_event()?),
            secret,
        })
    }

    pub fn list_webhooks(&self, who: &Identity) -> Result<Vec<wire::Webhook>, ApiError> {
        self.authorize_administer(who, "*")?;
        let newest = self.newest_event()?;
        Ok(self
            .store
            .list_webhooks()?
            .iter()
            .map(|h| self.webhook_view(h, newest))
            .collect())
    }

    pub async fn delete_webhook(&self, who: &Identity, id: &str) -> Result<(), ApiError> {
        self.authorize_administer(who, "*")?;
        if !is_webhook_id(id) {
            return Err(ApiError::not_found(
                "no such webhook (webhook ids look like wh-0123456789abcdef)",
            ));
        }
        let draft = self.draft(&who.display(), "DeleteWebhook", id);
        let existed = self.store.delete_webhook(id, draft).await?;
        crate::audit::committed();
        if !existed {
            return Err(ApiError::not_found("no such webhook"));
        }
        self.events.webhooks_changed.notify_one();
        tracing::info!(webhook = %id, by = %who.display(), "webhook deleted");
        Ok(())
    }

    /// Events numbered after `after`, oldest first, of one type if given.
    pub fn list_events(
        &self,
        who: &Identity,
        after: u64,
        limit: usize,
        event_type: Option<&str>,
    ) -> Result<(Vec<EventRecord>, Option<u64>), ApiError> {
        self.authorize_audit(who)?;
        if let Some(t) = event_type.filter(|t| !events::EVENT_TYPES.contains(t)) {
            return Err(ApiError::invalid(format!(
                "unknown event type {t:?}; known: {}",
                events::EVENT_TYPES.join(", ")
            )));
        }
        let mut out = Vec::new();
        let mut cursor = after;
        // Filtering by type may skip whole pages; bounded by what one call reads.
        for _ in 0..100 {
            let page = self.store.events_after(cursor, limit)?;
            let full = page.len() == limit;
            for e in page {
                cursor = e.seq;
                if event_type.is_none_or(|t| e.event_type == t) {
                    out.push(e);
                    if out.len() == limit {
                        return Ok((out, Some(cursor)));
                    }
                }
            }
            if !full {
                return Ok((out, None));
            }
        }
        Ok((out, Some(cursor)))
    }
}
