//! CAs and aliases: read from the cache each node keeps (fresh by
//! notification); the writes that change them name what changed, so every
//! node's cache forgets it.

use std::sync::Arc;

use super::reads::{all, Cached as _};
use super::{ops, pg_err, PgStore, R};
use crate::store::{
    AuditDraft, CaChange, CaRecord, Committed, NewCaRecord, StoreError, StoreFuture,
};

impl PgStore {
    /// Every CA, from the cache or read.
    fn cas(&self) -> R<Arc<Vec<CaRecord>>> {
        self.inner
            .cache
            .cas(|| self.read(|c| Box::pin(all(c, "SELECT rec FROM cas ORDER BY id"))))
    }

    /// Every alias, from the cache or read.
    fn aliases(&self) -> R<Arc<Vec<(String, String)>>> {
        self.inner.cache.aliases(|| {
            self.read(|c| {
                Box::pin(async move {
                    let rows = c
                        .q_all("SELECT alias, ca_id FROM aliases ORDER BY alias", &[])
                        .await
                        .map_err(pg_err)?;
                    Ok(rows
                        .iter()
                        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                        .collect::<Vec<_>>())
                })
            })
        })
    }

    pub(super) fn get_ca(&self, id: &str) -> R<Option<CaRecord>> {
        Ok(self.cas()?.iter().find(|c| c.id == id).cloned())
    }

    pub(super) fn list_cas(&self) -> R<Vec<CaRecord>> {
        Ok(self.cas()?.as_ref().clone())
    }

    pub(super) fn create_ca(
        &self,
        new: NewCaRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CaRecord> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::create_ca(tx, &new).await?;
                let ev = vec![Committed::CaChanged {
                    ca_id: new.ca.id.clone(),
                }];
                Ok((new.ca, ev))
            })
        })
    }

    pub(super) fn update_ca(
        &self,
        id: &str,
        change: CaChange,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CaRecord> {
        let id = id.to_string();
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                let rec = ops::update_ca(tx, &id, change).await?;
                Ok((rec, vec![Committed::CaChanged { ca_id: id }]))
            })
        })
    }

    pub(super) fn get_alias(&self, alias: &str) -> R<Option<String>> {
        Ok(self
            .aliases()?
            .iter()
            .find(|(a, _)| a == alias)
            .map(|(_, id)| id.clone()))
    }

    pub(super) fn list_aliases(&self) -> R<Vec<(String, String)>> {
        Ok(self.aliases()?.as_ref().clone())
    }

    pub(super) fn put_alias(
        &self,
        alias: &str,
        ca_id: &str,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        let (a, c) = (alias.to_string(), ca_id.to_string());
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::put_alias(tx, &a, &c).await?;
                Ok(((), vec![Committed::AliasChanged { alias: a }]))
            })
        })
    }

    pub(super) fn rotate_alias(
        &self,
        alias: &str,
        old_id: &str,
        new: NewCaRecord,
        audit: AuditDraft,
    ) -> StoreFuture<'_, CaRecord> {
        let (a, o) = (alias.to_string(), old_id.to_string());
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                if ops::get_alias(tx, &a).await?.as_deref() != Some(o.as_str()) {
                    return Err(StoreError::Conflict(format!(
                        "alias {a} moved while rotating"
                    )));
                }
                let old = ops::get_ca(tx, &o)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(format!("no CA {o}")))?;
                if old.status != crate::store::CaStatus::Active {
                    return Err(StoreError::Conflict(format!("CA {o} is not ACTIVE")));
                }
                ops::create_ca(tx, &new).await?;
                let now = crate::clock::now().unix_timestamp();
                let retired = ops::update_ca(
                    tx,
                    &o,
                    Box::new(move |r| {
                        r.status = crate::store::CaStatus::Retired;
                        r.updated_at = now;
                        Ok(())
                    }),
                )
                .await?;
                ops::put_alias(tx, &a, &new.ca.id).await?;
                let ev = vec![
                    Committed::CaChanged { ca_id: o },
                    Committed::CaChanged {
                        ca_id: new.ca.id.clone(),
                    },
                    Committed::AliasChanged { alias: a },
                ];
                Ok((retired, ev))
            })
        })
    }
}
