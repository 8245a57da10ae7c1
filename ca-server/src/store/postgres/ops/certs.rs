//! Certificates: the reservation of a serial, issuance (refused for a
//! blocked key or a taken serial), imports and revocation, with the CRL
//! entry and blocked key a revocation leaves.

use deadpool_postgres::Transaction;

use super::{cached, to_text, R};
use crate::store::postgres::{pg_err, status_code, unjson};
use crate::store::{
    cert_key, revocation_to_record, stored_crl_entry, BlockedKey, CertRecord, CertStatus,
    IdemRecord, ReserveOutcome, Revocation, StoreError, KEY_COMPROMISE,
};

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

pub(super) async fn check_issuable(tx: &Transaction<'_>, rec: &CertRecord) -> R<bool> {
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

pub(super) async fn claim_serial(tx: &Transaction<'_>, rec: &CertRecord) -> R<()> {
    cached::execute(
        tx,
        "INSERT INTO serials (serial, ca_id) VALUES ($1, $2)",
        &[&rec.serial, &rec.ca_id],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

pub(super) async fn store_issued(tx: &Transaction<'_>, rec: &CertRecord, der: &[u8]) -> R<()> {
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
