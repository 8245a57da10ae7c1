//! The master key's metadata (check value, KDF parameters), written beside
//! the sealed keys it wraps.

use deadpool_postgres::Transaction;

use super::{cached, R};
use crate::store::postgres::pg_err;
use crate::store::KeyMeta;

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
