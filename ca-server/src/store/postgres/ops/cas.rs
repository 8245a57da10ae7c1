//! CAs and aliases: a CA created with its sealed key (and its certificate,
//! when a parent issued it), changed in place, and the aliases that name one.

use deadpool_postgres::Transaction;

use super::certs::{check_issuable, claim_serial, store_issued};
use super::{cached, to_text, R};
use crate::store::postgres::{pg_err, unjson};
use crate::store::{CaChange, CaRecord, NewCaRecord, StoreError};

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
