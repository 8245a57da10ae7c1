//! The event outbox and webhooks: tables, the operations that run inside a
//! write transaction, and their reads.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::codec;
use super::tables::*;
use super::writer::Handle;
use crate::store::{
    issuance_event, CertRecord, CertStatus, EventRecord, MarkAdvance, StoreError, WebhookRecord,
};

/// The outbox: sequence → [`EventRecord`] (see [`codec`](super::codec)).
pub const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
/// Named positions: `next_seq` and the producers' marks.
pub const EVENT_MARKS: TableDefinition<&str, u64> = TableDefinition::new("event_marks");
/// Webhook id → [`WebhookRecord`] JSON.
pub const WEBHOOKS: TableDefinition<&str, &[u8]> = TableDefinition::new("webhooks");

/// The next sequence number to give (kept apart from the table, so pruning
/// every event never makes a number come round again).
use crate::store::NEXT_EVENT_SEQ as NEXT_SEQ;

pub fn append_events(
    txn: &WriteTransaction,
    events: Vec<EventRecord>,
    mark: &MarkAdvance,
    prune_before: Option<i64>,
) -> Result<u64, StoreError> {
    if mark.name == NEXT_SEQ {
        return Err(StoreError::Conflict("reserved mark name".into()));
    }
    let mut marks = txn.open_table(EVENT_MARKS)?;
    let found = marks.get(mark.name.as_str())?.map(|v| v.value());
    if found != mark.expect {
        return Err(StoreError::Conflict(format!(
            "event mark {} is at {found:?}, not {:?}",
            mark.name, mark.expect
        )));
    }
    let mut next = marks.get(NEXT_SEQ)?.map(|v| v.value()).unwrap_or(1);
    let audit = txn.open_table(AUDIT)?;
    let mut lookup = |seq: u64| audit_entry(Some(&audit), seq);
    // Encode all first: a record that cannot be encoded writes nothing.
    let mut rows = Vec::with_capacity(events.len());
    for mut e in events {
        e.seq = next;
        // An issuance's event is kept as its audit entry's number when the
        // entry gives back this very event (a quarter of the bytes).
        let bytes = match e.audit_seq {
            Some(s) if made_from(&mut lookup, s, &e)? => codec::encode_event_ref(&e, s),
            _ => codec::encode_event(&e),
        };
        rows.push((next, bytes));
        next += 1;
    }
    let last = next - 1;
    let mut table = txn.open_table(EVENTS)?;
    for (seq, bytes) in &rows {
        table.insert(*seq, bytes.as_slice())?;
    }
    marks.insert(NEXT_SEQ, next)?;
    marks.insert(mark.name.as_str(), mark.set)?;
    if let Some(cut) = prune_before {
        // Events are appended in time order: the old ones are a prefix.
        let mut old = Vec::new();
        for item in table.iter()? {
            let (k, v) = item?;
            let e = codec::decode_event(v.value(), &mut lookup)?;
            if e.unix >= cut {
                break;
            }
            old.push(k.value());
        }
        for k in old {
            table.remove(k)?;
        }
    }
    Ok(if rows.is_empty() { 0 } else { last })
}

/// Whether `e` is exactly the event audit entry `seq` stands for.
fn made_from(
    lookup: &mut codec::AuditLookup<'_>,
    seq: u64,
    e: &EventRecord,
) -> Result<bool, StoreError> {
    let Some(entry) = lookup(seq)? else {
        return Ok(false);
    };
    Ok(
        issuance_event(&entry, e.id.clone()).is_some_and(|mut made| {
            made.seq = e.seq;
            made == *e
        }),
    )
}

pub fn create_webhook(
    txn: &WriteTransaction,
    mut hook: WebhookRecord,
) -> Result<WebhookRecord, StoreError> {
    let mut hooks = txn.open_table(WEBHOOKS)?;
    if hooks.get(hook.id.as_str())?.is_some() {
        return Err(StoreError::Conflict(format!("webhook {} exists", hook.id)));
    }
    let next = txn
        .open_table(EVENT_MARKS)?
        .get(NEXT_SEQ)?
        .map(|v| v.value())
        .unwrap_or(1);
    hook.delivered_seq = next - 1;
    hooks.insert(hook.id.as_str(), json(&hook)?.as_slice())?;
    Ok(hook)
}

pub fn webhook_delivered(txn: &WriteTransaction, id: &str, seq: u64) -> Result<(), StoreError> {
    let mut hooks = txn.open_table(WEBHOOKS)?;
    let mut rec: WebhookRecord = match hooks.get(id)? {
        Some(v) => unjson(v.value())?,
        None => return Err(StoreError::NotFound(format!("no webhook {id}"))),
    };
    if seq > rec.delivered_seq {
        rec.delivered_seq = seq;
        hooks.insert(id, json(&rec)?.as_slice())?;
    }
    Ok(())
}

pub fn event_mark(h: &Handle, name: &str) -> Result<Option<u64>, StoreError> {
    let r = h.begin_read()?;
    let t = match r.open_table(EVENT_MARKS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let v = t.get(name)?.map(|v| v.value());
    Ok(v)
}

pub fn events_after(h: &Handle, after: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
    let r = h.begin_read()?;
    let t = match r.open_table(EVENTS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let audit = r.open_table(AUDIT).map(Some).or_else(absent)?;
    let mut lookup = |seq: u64| audit_entry(audit.as_ref(), seq);
    let mut out = Vec::new();
    let Some(from) = after.checked_add(1) else {
        return Ok(out);
    };
    for item in t.range(from..)?.take(limit) {
        let (_, v) = item?;
        out.push(codec::decode_event(v.value(), &mut lookup)?);
    }
    Ok(out)
}

pub fn list_webhooks(h: &Handle) -> Result<Vec<WebhookRecord>, StoreError> {
    let r = h.begin_read()?;
    let t = match r.open_table(WEBHOOKS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::with_capacity(usize::try_from(t.len()?).unwrap_or(0));
    for item in t.iter()? {
        let (_, v) = item?;
        out.push(unjson(v.value())?);
    }
    Ok(out)
}

/// Issued, unrevoked certificates in the expiry index range `[from, before)`.
pub fn expiring_certs(
    h: &Handle,
    from: i64,
    before: i64,
    limit: usize,
) -> Result<Vec<CertRecord>, StoreError> {
    let (from, before) = (
        u64::try_from(from).unwrap_or(0),
        u64::try_from(before).unwrap_or(0),
    );
    let mut out = Vec::new();
    if before <= from {
        return Ok(out);
    }
    let r = h.begin_read()?;
    let exp = r.open_table(EXPIRY)?;
    let certs = r.open_table(CERTS)?;
    for item in exp.range::<(u64, &str)>((from, "")..(before, ""))? {
        if out.len() >= limit {
            break;
        }
        let (k, _) = item?;
        if let Some(v) = certs.get(k.value().1)? {
            let rec = codec::decode_cert(v.value())?;
            if rec.status == CertStatus::Issued {
                out.push(rec);
            }
        }
    }
    Ok(out)
}

pub fn visit_live_certs(
    h: &Handle,
    from: i64,
    visit: &mut dyn FnMut(&CertRecord),
) -> Result<(), StoreError> {
    let from = u64::try_from(from).unwrap_or(0);
    let r = h.begin_read()?;
    let exp = r.open_table(EXPIRY)?;
    let certs = r.open_table(CERTS)?;
    for item in exp.range::<(u64, &str)>((from, "")..)? {
        let (k, _) = item?;
        if let Some(v) = certs.get(k.value().1)? {
            let rec = codec::decode_cert(v.value())?;
            if rec.status == CertStatus::Issued {
                visit(&rec);
            }
        }
    }
    Ok(())
}
