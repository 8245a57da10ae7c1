//! CA keys: the key metadata and the sealed keys, including the rewrap,
//! which holds its transaction open while the caller's thread re-seals each
//! key.

use super::reads::{self, Cached as _};
use super::{ops, pg_err, PgStore, R};
use crate::store::{AuditDraft, KeyMeta, Rewrap, StoreError};

impl PgStore {
    pub(super) fn key_meta(&self) -> R<KeyMeta> {
        self.read(|c| Box::pin(reads::key_meta(c)))
    }

    pub(super) fn set_key_meta(&self, meta: &KeyMeta, audit: AuditDraft) -> R<()> {
        let meta = meta.clone();
        self.write_now(Some(audit), move |tx| {
            Box::pin(async move {
                ops::write_key_meta(tx, &meta).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    pub(super) fn sealed_key(&self, ca_id: &str) -> R<Option<Vec<u8>>> {
        let c = ca_id.to_string();
        self.read(move |cl| {
            Box::pin(async move {
                let row = cl
                    .query_opt("SELECT sealed FROM ca_keys WHERE ca_id = $1", &[&c])
                    .await
                    .map_err(pg_err)?;
                Ok(row.map(|r| r.get(0)))
            })
        })
    }

    pub(super) fn sealed_key_ids(&self) -> R<Vec<String>> {
        self.read(|c| {
            Box::pin(async move {
                let rows = c
                    .q_all("SELECT ca_id FROM ca_keys ORDER BY ca_id", &[])
                    .await
                    .map_err(pg_err)?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
    }

    pub(super) fn import_sealed_keys(
        &self,
        keys: &[(String, Vec<u8>)],
        audit: AuditDraft,
    ) -> R<usize> {
        let keys = keys.to_vec();
        self.write_now(Some(audit), move |tx| {
            Box::pin(async move {
                let mut n = 0;
                for (id, sealed) in &keys {
                    n += tx
                        .execute(
                            "INSERT INTO ca_keys (ca_id, sealed) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                            &[id, sealed],
                        )
                        .await
                        .map_err(pg_err)?;
                }
                Ok((n as usize, Vec::new()))
            })
        })
    }

    pub(super) fn rewrap_keys(
        &self,
        rewrap: Rewrap<'_>,
        meta: &KeyMeta,
        audit: AuditDraft,
    ) -> R<usize> {
        // The transaction stays open on the store's runtime while this thread
        // re-seals each key (the closure cannot leave this thread).
        type Keys = Vec<(String, Vec<u8>)>;
        let (keys_tx, keys_rx) = std::sync::mpsc::channel::<R<Keys>>();
        let (back_tx, back_rx) = tokio::sync::oneshot::channel::<R<Keys>>();
        let meta = meta.clone();
        let done = self.write(Some(audit), move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT ca_id, sealed FROM ca_keys ORDER BY ca_id FOR UPDATE",
                        &[],
                    )
                    .await
                    .map_err(pg_err);
                let keys: R<Keys> =
                    rows.map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect());
                let failed = keys.is_err();
                let _ = keys_tx.send(keys);
                if failed {
                    return Err(StoreError::Unavailable(
                        "reading the sealed keys failed".into(),
                    ));
                }
                let rewrapped = back_rx.await.map_err(|_| StoreError::Closed)??;
                for (id, sealed) in &rewrapped {
                    tx.execute(
                        "UPDATE ca_keys SET sealed = $2 WHERE ca_id = $1",
                        &[id, sealed],
                    )
                    .await
                    .map_err(pg_err)?;
                }
                ops::write_key_meta(tx, &meta).await?;
                Ok((rewrapped.len(), Vec::new()))
            })
        });
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = done_tx.send(done.await);
        });
        let keys = keys_rx.recv().map_err(|_| StoreError::Closed)?;
        let answer = keys.and_then(|keys| {
            keys.into_iter()
                .map(|(id, sealed)| {
                    let re = rewrap(&id, &sealed)
                        .map_err(|e| StoreError::Conflict(format!("key of CA {id}: {e}")))?;
                    Ok((id, re))
                })
                .collect::<R<Keys>>()
        });
        let refused = match &answer {
            Err(e) => Some(StoreError::Conflict(e.to_string())),
            Ok(_) => None,
        };
        let _ = back_tx.send(answer);
        let r = done_rx.recv().map_err(|_| StoreError::Closed)?;
        match refused {
            Some(e) => Err(e),
            None => r,
        }
    }
}
