//! Where records and errors cross into the store's terms: records to and
//! from the JSON they are kept as, certificate statuses to their column
//! codes, and PostgreSQL's and the pool's errors sorted into [`StoreError`]s.

use super::R;
use crate::store::{CertStatus, StoreError};

pub fn json<T: serde::Serialize>(v: &T) -> R<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn unjson<T: for<'de> serde::Deserialize<'de>>(b: &[u8]) -> R<T> {
    serde_json::from_slice(b).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn status_code(s: CertStatus) -> i16 {
    match s {
        CertStatus::Reserved => 0,
        CertStatus::Issued => 1,
        CertStatus::Revoked => 2,
    }
}

/// PostgreSQL's errors, sorted into what the caller can do about them: the
/// database unreachable, shutting down or out of resources is `Unavailable`
/// (503, retry); anything else is a fault.
pub fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let transient = ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c))
            || code == "40001"
            || code == "40P01";
        return if transient {
            StoreError::Unavailable(format!("the database: {}", db.message()))
        } else if code == "23505" {
            StoreError::Conflict(db.message().to_string())
        } else {
            StoreError::Db(format!("{code}: {}", db.message()))
        };
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        StoreError::Unavailable("the database connection was lost".into())
    } else {
        StoreError::Db(e.to_string())
    }
}

/// An error and its causes, so "TLS handshake failed" says why (an
/// unknown issuer, a name mismatch).
pub(super) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

pub(super) fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    }
}
