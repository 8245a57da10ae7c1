//! The operations that run inside one write transaction. Every write first
//! locks the audit head row ([`lock_head`]), so writes are serialised across
//! all nodes as the redb writer serialises them in one process: each check
//! below sees every earlier commit, whichever node made it, and the audit
//! trail stays one hash chain.

use ca_core::audit_chain::{AuditEntry, GENESIS};
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::{json, pg_err, status_code, unjson};
use crate::store::{
    cert_key, revocation_to_record, stored_crl_entry, AcmeAccount, AcmeAuthz, AcmeEabKey,
    AcmeOrder, AuditDraft, BlockedKey, CaChange, CaRecord, CertRecord, CertStatus, CrlMeta,
    EventRecord, IdemRecord, KeyMeta, MarkAdvance, NewCaRecord, ReserveOutcome, Revocation,
    StoreError, WebhookRecord, KEY_COMPROMISE, NEXT_EVENT_SEQ,
};

type R<T> = Result<T, StoreError>;

/// Statements prepared once per connection (deadpool's cache): a write
/// sends each one as a single bind-and-execute, not a parse first.
mod cached {
    use deadpool_postgres::Transaction;
    use tokio_postgres::types::ToSql;
    use tokio_postgres::{Error, Row};

    type P<'a> = &'a [&'a (dyn ToSql + Sync)];

    pub async fn execute(tx: &Transaction<'_>, sql: &str, p: P<'_>) -> Result<u64, Error> {
        let st = tx.prepare_cached(sql).await?;
        tx.execute(&st, p).await
    }

    pub async fn query_one(tx: &Transaction<'_>, sql: &str, p: P<'_>) -> Result<Row, Error> {
        let st = tx.prepare_cached(sql).await?;
        tx.query_one(&st, p).await
    }

    pub async fn query_opt(
        tx: &Transaction<'_>,
        sql: &str,
        p: P<'_>,
    ) -> Result<Option<Row>, Error> {
        let st = tx.prepare_cached(sql).await?;
        tx.query_opt(&st, p).await
    }
}

/// A write transaction, READ COMMITTED whatever the server's default: each
/// statement after [`lock_head`] then reads every commit made before the lock
/// was granted (under REPEATABLE READ the snapshot would be older than the
/// lock, and a blocked key committed meanwhile would go unseen).
pub async fn begin_write(conn: &mut deadpool_postgres::Object) -> R<Transaction<'_>> {
    conn.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(pg_err)
}

/// The audit head, locked until the transaction ends: (seq, hash).
pub async fn lock_head(tx: &Transaction<'_>) -> R<(u64, String)> {
    let row = cached::query_one(
        tx,
        "SELECT seq, hash, present FROM audit_head WHERE id = 1 FOR UPDATE",
        &[],
    )
    .await
    .map_err(pg_err)?;
    Ok(head_of(&row))
}

pub fn head_of(row: &Row) -> (u64, String) {
    let present: bool = row.get(2);
    if !present {
        return (0, GENESIS.to_string());
    }
    (u64::try_from(row.get::<_, i64>(0)).unwrap_or(0), row.get(1))
}

fn i64_of(v: u64) -> R<i64> {
    i64::try_from(v).map_err(|_| StoreError::Conflict(format!("{v} is out of range")))
}

/// Append one entry after `head` and advance `head`; the caller stores the
/// head row once its transaction's appends are done ([`store_head`]).
pub async fn append_audit(
    tx: &Transaction<'_>,
    head: &mut (u64, String),
    d: &AuditDraft,
) -> R<AuditEntry> {
    let seq = head.0.saturating_add(1);
    let mut e = AuditEntry {
        seq,
        time: crate::clock::fmt_unix(d.unix),
        unix: d.unix,
        identity: d.identity.clone(),
        action: d.action.clone(),
        target: d.target.clone(),
        outcome: d.outcome.clone(),
        result: d.result.clone(),
        certificate: d.certificate.clone(),
        prev_hash: head.1.clone(),
        hash: String::new(),
    };
    e.hash = e
        .compute_hash()
        .map_err(|x| StoreError::Corrupt(x.to_string()))?;
    let text = String::from_utf8(json(&e)?).map_err(|x| StoreError::Corrupt(x.to_string()))?;
    let s = i64_of(seq)?;
    cached::execute(
        tx,
        "INSERT INTO audit (seq, unix, entry) VALUES ($1, $2, $3)",
        &[&s, &e.unix, &text],
    )
    .await
    .map_err(pg_err)?;
    *head = (seq, e.hash.clone());
    Ok(e)
}

/// Move the head row to `head` (once per transaction, after its appends).
pub async fn store_head(tx: &Transaction<'_>, head: &(u64, String)) -> R<()> {
    cached::execute(
        tx,
        "UPDATE audit_head SET seq = $1, hash = $2, present = true WHERE id = 1",
        &[&i64_of(head.0)?, &head.1],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn append_audit_digest(
    tx: &Transaction<'_>,
    d: &ca_core::audit_digest::AuditDigest,
) -> R<()> {
    let last: i64 = cached::query_one(
        tx,
        "SELECT coalesce(max(number), 0) FROM audit_digests",
        &[],
    )
    .await
    .map_err(pg_err)?
    .get(0);
    if i64_of(d.number)? != last + 1 {
        return Err(StoreError::Conflict(format!(
            "audit digest {} does not follow digest {last}",
            d.number
        )));
    }
    let text = to_text(d)?;
    cached::execute(
        tx,
        "INSERT INTO audit_digests (number, rec) VALUES ($1, $2)",
        &[&i64_of(d.number)?, &text],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub fn to_text<T: serde::Serialize>(v: &T) -> R<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

// ---- CAs and aliases ----------------------------------------------------------

pub async fn put_ca(tx: &Transaction<'_>, ca: &CaRecord) -> R<()> {
    let text = to_text(ca)?;
    cached::execute(
        tx,
        "INSERT INTO cas (id, rec) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET rec = $2",
        &[&ca.id, &text],
    )
    .await
    .map_err(pg_err)?;
    if let Some(serial) = &ca.serial {
        cached::execute(
            tx,
            "INSERT INTO serials (serial, ca_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[serial, &ca.id],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(())
}

pub async fn get_ca(tx: &Transaction<'_>, id: &str) -> R<Option<CaRecord>> {
    let row = cached::query_opt(tx, "SELECT rec FROM cas WHERE id = $1", &[&id])
        .await
        .map_err(pg_err)?;
    row.map(|r| unjson(r.get::<_, &str>(0).as_bytes()))
        .transpose()
}

pub async fn create_ca(tx: &Transaction<'_>, new: &NewCaRecord) -> R<()> {
    let id = new.ca.id.as_str();
    if get_ca(tx, id).await?.is_some() {
        return Err(StoreError::Conflict(format!("CA {id} already exists")));
    }
    let has_key = cached::query_opt(tx, "SELECT 1 FROM ca_keys WHERE ca_id = $1", &[&id])
        .await
        .map_err(pg_err)?
        .is_some();
    if has_key {
        return Err(StoreError::Conflict(format!("CA {id} already has a key")));
    }
    let claim = match &new.certificate {
        Some((rec, _)) => check_issuable(tx, rec).await?,
        None => false,
    };
    cached::execute(
        tx,
        "INSERT INTO ca_keys (ca_id, sealed) VALUES ($1, $2)",
        &[&id, &new.sealed_key],
    )
    .await
    .map_err(pg_err)?;
    if let Some((rec, der)) = &new.certificate {
        if claim {
            claim_serial(tx, rec).await?;
        }
        store_issued(tx, rec, der).await?;
    }
    put_ca(tx, &new.ca).await
}

pub async fn update_ca(tx: &Transaction<'_>, id: &str, change: CaChange) -> R<CaRecord> {
    let mut rec = get_ca(tx, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no CA {id}")))?;
    change(&mut rec)?;
    put_ca(tx, &rec).await?;
    Ok(rec)
}

pub async fn get_alias(tx: &Transaction<'_>, alias: &str) -> R<Option<String>> {
    let row = cached::query_opt(tx, "SELECT ca_id FROM aliases WHERE alias = $1", &[&alias])
        .await
        .map_err(pg_err)?;
    Ok(row.map(|r| r.get(0)))
}

pub async fn put_alias(tx: &Transaction<'_>, alias: &str, ca_id: &str) -> R<()> {
    cached::execute(
        tx,
        "INSERT INTO aliases (alias, ca_id) VALUES ($1, $2) \
         ON CONFLICT (alias) DO UPDATE SET ca_id = $2",
        &[&alias, &ca_id],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

// ---- certificates ------------------------------------------------------------

async fn cert_rec(tx: &Transaction<'_>, key: &str) -> R<Option<CertRecord>> {
    let row = cached::query_opt(tx, "SELECT rec FROM certs WHERE key = $1", &[&key])
        .await
        .map_err(pg_err)?;
    row.map(|r| unjson(r.get::<_, &str>(0).as_bytes()))
        .transpose()
}

async fn serial_taken(tx: &Transaction<'_>, serial: &str) -> R<bool> {
    Ok(
        cached::query_opt(tx, "SELECT 1 FROM serials WHERE serial = $1", &[&serial])
            .await
            .map_err(pg_err)?
            .is_some(),
    )
}

/// See [`crate::store::Store::reserve`]; the same rules as the redb backend.
pub async fn reserve(
    tx: &Transaction<'_>,
    intent: &CertRecord,
    token: Option<(&str, &IdemRecord)>,
    boot_id: &str,
    token_in_flight: bool,
) -> R<ReserveOutcome> {
    if let Some((token, idem)) = token {
        let prev: Option<IdemRecord> = cached::query_opt(
            tx,
            "SELECT rec FROM idempotency WHERE token = $1",
            &[&token],
        )
        .await
        .map_err(pg_err)?
        .map(|r| unjson(r.get::<_, &str>(0).as_bytes()))
        .transpose()?;
        if let Some(prev) = prev {
            if prev.request_sha256 != idem.request_sha256 {
                return Err(StoreError::Conflict(
                    "this idempotency token was already used with a different request".into(),
                ));
            }
            if let Some(rec) = cert_rec(tx, &cert_key(&prev.ca_id, &prev.serial)).await? {
                match rec.status {
                    CertStatus::Issued | CertStatus::Revoked => {
                        return Ok(ReserveOutcome::Existing(rec))
                    }
                    CertStatus::Reserved if rec.boot_id == boot_id && token_in_flight => {
                        return Ok(ReserveOutcome::InProgress(rec))
                    }
                    // Reserved by a node that died, or by a request that ended
                    // without storing it: nobody received it.
                    CertStatus::Reserved => {}
                }
            }
        }
    }
    if serial_taken(tx, &intent.serial).await? {
        return Err(StoreError::SerialTaken);
    }
    claim_serial(tx, intent).await?;
    put_cert(tx, intent, None).await?;
    if let Some((token, idem)) = token {
        let text = to_text(idem)?;
        cached::execute(
            tx,
            "INSERT INTO idempotency (token, rec) VALUES ($1, $2) \
             ON CONFLICT (token) DO UPDATE SET rec = $2",
            &[&token, &text],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(ReserveOutcome::Reserved)
}

async fn put_cert(tx: &Transaction<'_>, rec: &CertRecord, der: Option<&[u8]>) -> R<()> {
    let text = to_text(rec)?;
    cached::execute(
        tx,
        "INSERT INTO certs (key, ca_id, serial, status, not_after, rec, der) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (key) DO UPDATE SET status = $4, not_after = $5, rec = $6, \
         der = coalesce($7, certs.der)",
        &[
            &rec.key(),
            &rec.ca_id,
            &rec.serial,
            &status_code(rec.status),
            &rec.not_after,
            &text,
            &der,
        ],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn check_issuable(tx: &Transaction<'_>, rec: &CertRecord) -> R<bool> {
    match cert_rec(tx, &rec.key()).await? {
        Some(r) if r.status == CertStatus::Reserved && r.tbs_sha256 == rec.tbs_sha256 => Ok(false),
        Some(_) => Err(StoreError::Conflict(format!(
            "certificate {} is already stored",
            rec.serial
        ))),
        None if serial_taken(tx, &rec.serial).await? => Err(StoreError::SerialTaken),
        None => Ok(true),
    }
}

async fn claim_serial(tx: &Transaction<'_>, rec: &CertRecord) -> R<()> {
    cached::execute(
        tx,
        "INSERT INTO serials (serial, ca_id) VALUES ($1, $2)",
        &[&rec.serial, &rec.ca_id],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn store_issued(tx: &Transaction<'_>, rec: &CertRecord, der: &[u8]) -> R<()> {
    put_cert(tx, rec, Some(der)).await
}

pub async fn issue(tx: &Transaction<'_>, rec: &CertRecord, der: &[u8], key_sha256: &str) -> R<()> {
    // A key blocked by any revocation committed before this write stops the
    // certificate: the batch holds the audit head's lock (`lock_head`), which
    // a revocation on any node also takes, so one still committing is waited
    // for, and this statement, begun after, sees it. The common
    // case, a serial never seen: claiming it first answers both questions
    // (free? no record?), since a record's serial is always claimed (by its
    // intent, import or CA). The two go out together, in one round trip; a
    // refusal rolls the claim back with the rest of this write.
    let key_param: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&key_sha256];
    let claim_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&rec.serial, &rec.ca_id];
    let (blocked, claimed) = tokio::try_join!(
        cached::query_opt(
            tx,
            "SELECT rec FROM blocked_keys WHERE key_sha256 = $1",
            &key_param,
        ),
        cached::execute(
            tx,
            "INSERT INTO serials (serial, ca_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &claim_params,
        ),
    )
    .map_err(pg_err)?;
    if let Some(row) = blocked {
        return Err(StoreError::KeyBlocked(unjson(
            row.get::<_, &str>(0).as_bytes(),
        )?));
    }
    if claimed == 0 {
        // Claimed before: by this certificate's own intent, or taken.
        match cert_rec(tx, &rec.key()).await? {
            Some(r) if r.status == CertStatus::Reserved && r.tbs_sha256 == rec.tbs_sha256 => {}
            Some(_) => {
                return Err(StoreError::Conflict(format!(
                    "certificate {} is already stored",
                    rec.serial
                )))
            }
            None => return Err(StoreError::SerialTaken),
        }
    }
    store_issued(tx, rec, der).await
}

pub async fn import_certs(tx: &Transaction<'_>, certs: &[(CertRecord, Vec<u8>)]) -> R<u64> {
    for (rec, _) in certs {
        if rec.status == CertStatus::Reserved {
            return Err(StoreError::Conflict(format!(
                "{} is only a reservation",
                rec.serial
            )));
        }
    }
    // One round trip for the whole batch's check.
    let serials: Vec<&str> = certs.iter().map(|(r, _)| r.serial.as_str()).collect();
    let taken = cached::query_opt(
        tx,
        "SELECT 1 FROM serials WHERE serial = ANY($1) LIMIT 1",
        &[&serials],
    )
    .await
    .map_err(pg_err)?;
    if taken.is_some() {
        return Err(StoreError::SerialTaken);
    }
    let mut entries = Vec::new();
    for (rec, _) in certs {
        if let Some(rv) = &rec.revocation {
            entries.push((rec, stored_crl_entry(&rec.serial, rv, rec.not_after)?));
        }
    }
    for (rec, der) in certs {
        claim_serial(tx, rec).await?;
        store_issued(tx, rec, der).await?;
    }
    for (rec, entry) in entries {
        put_crl_entry(tx, rec, &entry).await?;
    }
    Ok(certs.len() as u64)
}

async fn put_crl_entry(tx: &Transaction<'_>, rec: &CertRecord, entry: &[u8]) -> R<()> {
    cached::execute(
        tx,
        "INSERT INTO crl_entries (key, ca_id, entry) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET entry = $3",
        &[&rec.key(), &rec.ca_id, &entry],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// The redb backend's revocation rules (see [`crate::store::Store::revoke`]).
pub async fn revoke(
    tx: &Transaction<'_>,
    ca_id: &str,
    serial: &str,
    revocation: Revocation,
) -> R<CertRecord> {
    let key = cert_key(ca_id, serial);
    let missing = || StoreError::NotFound(format!("no certificate {serial} from {ca_id}"));
    let mut rec = cert_rec(tx, &key).await?.ok_or_else(missing)?;
    let Some(revocation) = revocation_to_record(&rec, revocation)? else {
        return Ok(rec);
    };
    let entry = stored_crl_entry(serial, &revocation, rec.not_after)?;
    rec.status = CertStatus::Revoked;
    rec.revocation = Some(revocation.clone());
    put_cert(tx, &rec, None).await?;
    put_crl_entry(tx, &rec, &entry).await?;
    if let (KEY_COMPROMISE, Some(spki)) = (revocation.reason_code, &revocation.key_sha256) {
        let blocked = to_text(&BlockedKey {
            ca_id: ca_id.to_string(),
            serial: serial.to_string(),
            blocked_at: revocation.revoked_at,
        })?;
        cached::execute(
            tx,
            "INSERT INTO blocked_keys (key_sha256, rec) VALUES ($1, $2) \
             ON CONFLICT (key_sha256) DO UPDATE SET rec = $2",
            &[spki, &blocked],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(rec)
}

pub async fn put_crl_meta(
    tx: &Transaction<'_>,
    ca_id: &str,
    meta: &CrlMeta,
    der: &[u8],
    prune: &[String],
) -> R<()> {
    let last: Option<CrlMeta> =
        cached::query_opt(tx, "SELECT rec FROM crl_meta WHERE ca_id = $1", &[&ca_id])
            .await
            .map_err(pg_err)?
            .map(|r| unjson(r.get::<_, &str>(0).as_bytes()))
            .transpose()?;
    if let Some(last) = last.filter(|l| l.crl_number >= meta.crl_number) {
        return Err(StoreError::Conflict(format!(
            "CRL {} of {ca_id} is not above the published CRL {}",
            meta.crl_number, last.crl_number
        )));
    }
    let text = to_text(meta)?;
    cached::execute(
        tx,
        "INSERT INTO crl_meta (ca_id, rec) VALUES ($1, $2) \
         ON CONFLICT (ca_id) DO UPDATE SET rec = $2",
        &[&ca_id, &text],
    )
    .await
    .map_err(pg_err)?;
    let number = i64_of(meta.crl_number)?;
    cached::execute(
        tx,
        "INSERT INTO crls (ca_id, number, der) VALUES ($1, $2, $3)",
        &[&ca_id, &number, &der],
    )
    .await
    .map_err(pg_err)?;
    // Only the newest is served; keep the one before for a node mid-switch.
    cached::execute(
        tx,
        "DELETE FROM crls WHERE ca_id = $1 AND number < $2::bigint - 1",
        &[&ca_id, &number],
    )
    .await
    .map_err(pg_err)?;
    // Only this CA's entries: a key naming another CA is ignored.
    cached::execute(
        tx,
        "DELETE FROM crl_entries WHERE ca_id = $1 AND key = ANY($2)",
        &[&ca_id, &prune],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

// ---- policies and keys ---------------------------------------------------------

/// Mark that the store has had policies (an emptied set stays empty).
pub async fn policies_touched(tx: &Transaction<'_>) -> R<()> {
    cached::execute(
        tx,
        "INSERT INTO meta (name, value) VALUES ('policies_set', 1) ON CONFLICT DO NOTHING",
        &[],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn put_policy(tx: &Transaction<'_>, id: &str, json: &[u8]) -> R<()> {
    policies_touched(tx).await?;
    cached::execute(
        tx,
        "INSERT INTO policies (id, json) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET json = $2",
        &[&id, &json],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn write_key_meta(tx: &Transaction<'_>, meta: &KeyMeta) -> R<()> {
    for (name, value) in [("check_value", &meta.check_value), ("kdf", &meta.kdf)] {
        match value {
            Some(v) => cached::execute(
                tx,
                "INSERT INTO key_meta (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = $2",
                &[&name, v],
            )
            .await
            .map_err(pg_err)?,
            None => cached::execute(tx, "DELETE FROM key_meta WHERE name = $1", &[&name])
                .await
                .map_err(pg_err)?,
        };
    }
    Ok(())
}

// ---- events and webhooks -------------------------------------------------------

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

// ---- ACME ----------------------------------------------------------------------

async fn one<T: for<'de> serde::Deserialize<'de>>(
    tx: &Transaction<'_>,
    sql: &str,
    id: &str,
) -> R<Option<T>> {
    let row = cached::query_opt(tx, sql, &[&id]).await.map_err(pg_err)?;
    row.map(|r| unjson(r.get::<_, &str>(0).as_bytes()))
        .transpose()
}

/// The account a JWK thumbprint belongs to, if any.
async fn account_of_key(tx: &Transaction<'_>, thumbprint: &str) -> R<Option<String>> {
    Ok(cached::query_opt(
        tx,
        "SELECT account FROM acme_account_keys WHERE thumbprint = $1",
        &[&thumbprint],
    )
    .await
    .map_err(pg_err)?
    .map(|r| r.get(0)))
}

pub async fn acme_create_account(tx: &Transaction<'_>, a: &AcmeAccount) -> R<()> {
    if let Some(existing) = account_of_key(tx, &a.thumbprint).await? {
        return Err(StoreError::Conflict(existing));
    }
    let taken = cached::query_opt(tx, "SELECT 1 FROM acme_accounts WHERE id = $1", &[&a.id])
        .await
        .map_err(pg_err)?;
    if taken.is_some() {
        return Err(StoreError::Conflict(a.id.clone()));
    }
    let mut bound = None;
    if let Some(kid) = &a.eab_kid {
        let key: Option<AcmeEabKey> =
            one(tx, "SELECT rec FROM acme_eab_keys WHERE kid = $1", kid).await?;
        let Some(mut key) = key else {
            return Err(StoreError::Conflict(format!("eab:no EAB key {kid}")));
        };
        if key.revoked || key.account.is_some() {
            return Err(StoreError::Conflict(format!(
                "eab:EAB key {kid} is revoked or bound to an account already"
            )));
        }
        key.account = Some(a.id.clone());
        bound = Some((kid.clone(), to_text(&key)?));
    }
    let text = to_text(a)?;
    if let Some((kid, rec)) = bound {
        cached::execute(
            tx,
            "UPDATE acme_eab_keys SET rec = $2 WHERE kid = $1",
            &[&kid, &rec],
        )
        .await
        .map_err(pg_err)?;
    }
    cached::execute(
        tx,
        "INSERT INTO acme_account_keys (thumbprint, account) VALUES ($1, $2)",
        &[&a.thumbprint, &a.id],
    )
    .await
    .map_err(pg_err)?;
    cached::execute(
        tx,
        "INSERT INTO acme_accounts (id, created_at, rec) VALUES ($1, $2, $3)",
        &[&a.id, &a.created_at, &text],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn acme_update_account(
    tx: &Transaction<'_>,
    a: &AcmeAccount,
    expected_thumbprint: &str,
) -> R<()> {
    let old: AcmeAccount = one(tx, "SELECT rec FROM acme_accounts WHERE id = $1", &a.id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("no account {}", a.id)))?;
    if old.thumbprint != expected_thumbprint || old.status != "valid" {
        return Err(StoreError::Conflict(
            "stale:the account changed meanwhile (its key or status); retry".into(),
        ));
    }
    if old.thumbprint != a.thumbprint {
        if let Some(existing) = account_of_key(tx, &a.thumbprint).await? {
            return Err(StoreError::Conflict(existing));
        }
        cached::execute(
            tx,
            "DELETE FROM acme_account_keys WHERE thumbprint = $1",
            &[&old.thumbprint],
        )
        .await
        .map_err(pg_err)?;
        cached::execute(
            tx,
            "INSERT INTO acme_account_keys (thumbprint, account) VALUES ($1, $2)",
            &[&a.thumbprint, &a.id],
        )
        .await
        .map_err(pg_err)?;
    }
    cached::execute(
        tx,
        "UPDATE acme_accounts SET rec = $2 WHERE id = $1",
        &[&a.id, &to_text(a)?],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn acme_put_eab_key(tx: &Transaction<'_>, key: &AcmeEabKey, new: bool) -> R<()> {
    let text = to_text(key)?;
    let exists = cached::query_opt(
        tx,
        "SELECT 1 FROM acme_eab_keys WHERE kid = $1",
        &[&key.kid],
    )
    .await
    .map_err(pg_err)?
    .is_some();
    if new && exists {
        return Err(StoreError::Conflict(format!("EAB key {} exists", key.kid)));
    }
    if !new && !exists {
        return Err(StoreError::NotFound(format!("no EAB key {}", key.kid)));
    }
    cached::execute(
        tx,
        "INSERT INTO acme_eab_keys (kid, created_at, rec) VALUES ($1, $2, $3) \
         ON CONFLICT (kid) DO UPDATE SET rec = $3",
        &[&key.kid, &key.created_at, &text],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub async fn acme_put(
    tx: &Transaction<'_>,
    order: Option<&AcmeOrder>,
    authzs: &[AcmeAuthz],
) -> R<()> {
    let order_text = order.map(to_text).transpose()?;
    let authz_text: Vec<(String, String)> = authzs
        .iter()
        .map(|a| Ok((a.id.clone(), to_text(a)?)))
        .collect::<R<_>>()?;
    if let (Some(o), Some(text)) = (order, order_text) {
        cached::execute(
            tx,
            "INSERT INTO acme_orders (id, account, created_at, rec) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET rec = $4",
            &[&o.id, &o.account, &o.created_at, &text],
        )
        .await
        .map_err(pg_err)?;
    }
    for (id, text) in &authz_text {
        cached::execute(
            tx,
            "INSERT INTO acme_authzs (id, rec) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET rec = $2",
            &[id, text],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(())
}
