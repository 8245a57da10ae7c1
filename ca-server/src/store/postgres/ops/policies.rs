//! Issuance policies: a statement stored, and the mark that the store has
//! had policies (so an emptied set stays empty).

use deadpool_postgres::Transaction;

use super::{cached, R};
use crate::store::postgres::pg_err;

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
