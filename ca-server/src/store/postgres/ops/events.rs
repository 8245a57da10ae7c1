//! Events and webhooks: events numbered and appended under an outbox mark
//! checked and advanced in the same write, webhooks created and their
//! delivery recorded.

use deadpool_postgres::Transaction;

use super::{cached, i64_of, to_text, R};
use crate::store::postgres::{pg_err, unjson};
use crate::store::{EventRecord, MarkAdvance, StoreError, WebhookRecord, NEXT_EVENT_SEQ};

async fn mark_value(tx: &Transaction<'_>, name: &str) -> R<Option<u64>> {
    let row = cached::query_opt(
        tx,
        "SELECT value FROM event_marks WHERE name = $1",
        &[&name],
    )
    .await
    .map_err(pg_err)?;
    Ok(row.map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
}

async fn set_mark(tx: &Transaction<'_>, name: &str, value: u64) -> R<()> {
    cached::execute(
        tx,
        "INSERT INTO event_marks (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = $2",
        &[&name, &i64_of(value)?],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn append_events(
    tx: &Transaction<'_>,
    events: Vec<EventRecord>,
    mark: &MarkAdvance,
    prune_before: Option<i64>,
) -> R<u64> {
    if mark.name == NEXT_EVENT_SEQ {
        return Err(StoreError::Conflict("reserved mark name".into()));
    }
    let found = mark_value(tx, &mark.name).await?;
    if found != mark.expect {
        return Err(StoreError::Conflict(format!(
            "event mark {} is at {found:?}, not {:?}",
            mark.name, mark.expect
        )));
    }
    let mut next = mark_value(tx, NEXT_EVENT_SEQ).await?.unwrap_or(1);
    let mut rows = Vec::with_capacity(events.len());
    for mut e in events {
        e.seq = next;
        rows.push((i64_of(next)?, e.unix, to_text(&e)?));
        next += 1;
    }
    for (seq, unix, text) in &rows {
        cached::execute(
            tx,
            "INSERT INTO events (seq, unix, rec) VALUES ($1, $2, $3)",
            &[seq, unix, text],
        )
        .await
        .map_err(pg_err)?;
    }
    set_mark(tx, NEXT_EVENT_SEQ, next).await?;
    set_mark(tx, &mark.name, mark.set).await?;
    if let Some(cut) = prune_before {
        cached::execute(tx, "DELETE FROM events WHERE unix < $1", &[&cut])
            .await
            .map_err(pg_err)?;
    }
    Ok(if rows.is_empty() { 0 } else { next - 1 })
}

pub async fn create_webhook(tx: &Transaction<'_>, mut hook: WebhookRecord) -> R<WebhookRecord> {
    let exists = cached::query_opt(tx, "SELECT 1 FROM webhooks WHERE id = $1", &[&hook.id])
        .await
        .map_err(pg_err)?
        .is_some();
    if exists {
        return Err(StoreError::Conflict(format!("webhook {} exists", hook.id)));
    }
    hook.delivered_seq = mark_value(tx, NEXT_EVENT_SEQ).await?.unwrap_or(1) - 1;
    cached::execute(
        tx,
        "INSERT INTO webhooks (id, rec) VALUES ($1, $2)",
        &[&hook.id, &to_text(&hook)?],
    )
    .await
    .map_err(pg_err)?;
    Ok(hook)
}

pub async fn webhook_delivered(tx: &Transaction<'_>, id: &str, seq: u64) -> R<()> {
    let mut rec: WebhookRecord =
        match cached::query_opt(tx, "SELECT rec FROM webhooks WHERE id = $1", &[&id])
            .await
            .map_err(pg_err)?
        {
            Some(r) => unjson(r.get::<_, &str>(0).as_bytes())?,
            None => return Err(StoreError::NotFound(format!("no webhook {id}"))),
        };
    if seq > rec.delivered_seq {
        rec.delivered_seq = seq;
        cached::execute(
            tx,
            "UPDATE webhooks SET rec = $2 WHERE id = $1",
            &[&id, &to_text(&rec)?],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(())
}
