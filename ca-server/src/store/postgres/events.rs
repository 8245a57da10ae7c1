//! The event outbox, its producers' marks, and webhooks.

use super::reads::{all, text_rec, Cached as _};
use super::{ops, pg_err, PgStore, R};
use crate::store::{AuditDraft, EventRecord, MarkAdvance, StoreFuture, WebhookRecord};

impl PgStore {
    pub(super) fn append_events(
        &self,
        events: Vec<EventRecord>,
        mark: MarkAdvance,
        prune_before: Option<i64>,
    ) -> StoreFuture<'_, u64> {
        self.write(None, move |tx| {
            Box::pin(async move {
                Ok((
                    ops::append_events(tx, events, &mark, prune_before).await?,
                    Vec::new(),
                ))
            })
        })
    }

    /// Committed without waiting for the WAL's flush when no other write
    /// shares its transaction (a projection every 0.1 s under load would
    /// otherwise add a flush each); see `Store::append_projected_events`.
    pub(super) fn append_projected_events(
        &self,
        events: Vec<EventRecord>,
        mark: MarkAdvance,
    ) -> StoreFuture<'_, u64> {
        self.write_lazily(move |tx| {
            Box::pin(async move {
                Ok((
                    ops::append_events(tx, events, &mark, None).await?,
                    Vec::new(),
                ))
            })
        })
    }

    pub(super) fn event_mark(&self, name: &str) -> R<Option<u64>> {
        let n = name.to_string();
        self.read(move |c| {
            Box::pin(async move {
                let row = c
                    .q_opt("SELECT value FROM event_marks WHERE name = $1", &[&n])
                    .await
                    .map_err(pg_err)?;
                Ok(row.map(|r| r.get::<_, i64>(0) as u64))
            })
        })
    }

    pub(super) fn events_after(&self, after: u64, limit: usize) -> R<Vec<EventRecord>> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            Box::pin(async move {
                let rows = c
                    .q_all(
                        "SELECT rec FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                        &[&after, &limit],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(text_rec).collect()
            })
        })
    }

    pub(super) fn list_webhooks(&self) -> R<Vec<WebhookRecord>> {
        self.read(|c| Box::pin(all(c, "SELECT rec FROM webhooks ORDER BY id")))
    }

    pub(super) fn create_webhook(
        &self,
        hook: WebhookRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, WebhookRecord> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move { Ok((ops::create_webhook(tx, hook).await?, Vec::new())) })
        })
    }

    pub(super) fn delete_webhook(&self, id: &str, audit: AuditDraft) -> StoreFuture<'_, bool> {
        let id = id.to_string();
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                let n = tx
                    .execute("DELETE FROM webhooks WHERE id = $1", &[&id])
                    .await
                    .map_err(pg_err)?;
                Ok((n > 0, Vec::new()))
            })
        })
    }

    pub(super) fn webhook_delivered(&self, id: &str, seq: u64) -> StoreFuture<'_, ()> {
        let id = id.to_string();
        self.write(None, move |tx| {
            Box::pin(async move {
                ops::webhook_delivered(tx, &id, seq).await?;
                Ok(((), Vec::new()))
            })
        })
    }
}
