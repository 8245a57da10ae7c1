//! A CRL published: its metadata and DER stored (its number above the last),
//! older CRLs dropped and the entries it no longer needs pruned.

use deadpool_postgres::Transaction;

use super::{cached, i64_of, to_text, R};
use crate::store::postgres::{pg_err, unjson};
use crate::store::{CrlMeta, StoreError};

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
