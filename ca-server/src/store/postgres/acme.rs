//! ACME accounts, orders, authorizations and EAB keys; the statements that
//! write them are in `ops`.

use super::reads::{all, opt, text_rec, Cached as _};
use super::{ops, pg_err, PgStore, R};
use crate::store::{AcmeAccount, AcmeAuthz, AcmeEabKey, AcmeOrder, AuditDraft, StoreFuture};

impl PgStore {
    pub(super) fn acme_account(&self, id: &str) -> R<Option<AcmeAccount>> {
        let id = id.to_string();
        self.read(move |c| {
            Box::pin(
                async move { opt(c, "SELECT rec FROM acme_accounts WHERE id = $1", &id).await },
            )
        })
    }

    pub(super) fn acme_account_by_key(&self, thumbprint: &str) -> R<Option<AcmeAccount>> {
        let t = thumbprint.to_string();
        self.read(move |c| {
            Box::pin(async move {
                opt(
                    c,
                    "SELECT a.rec FROM acme_account_keys k JOIN acme_accounts a ON a.id = k.account \
                     WHERE k.thumbprint = $1",
                    &t,
                )
                .await
            })
        })
    }

    pub(super) fn acme_create_account(
        &self,
        account: AcmeAccount,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::acme_create_account(tx, &account).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    pub(super) fn acme_accounts(&self) -> R<Vec<AcmeAccount>> {
        self.read(|c| {
            Box::pin(all(
                c,
                "SELECT rec FROM acme_accounts ORDER BY created_at, id",
            ))
        })
    }

    pub(super) fn acme_orders_of(&self, account: &str) -> R<Vec<AcmeOrder>> {
        let a = account.to_string();
        self.read(move |c| {
            Box::pin(async move {
                let rows = c
                    .q_all(
                        "SELECT rec FROM acme_orders WHERE account = $1 ORDER BY created_at, id",
                        &[&a],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(text_rec).collect()
            })
        })
    }

    pub(super) fn acme_eab_key(&self, kid: &str) -> R<Option<AcmeEabKey>> {
        let k = kid.to_string();
        self.read(move |c| {
            Box::pin(
                async move { opt(c, "SELECT rec FROM acme_eab_keys WHERE kid = $1", &k).await },
            )
        })
    }

    pub(super) fn acme_eab_keys(&self) -> R<Vec<AcmeEabKey>> {
        self.read(|c| {
            Box::pin(all(
                c,
                "SELECT rec FROM acme_eab_keys ORDER BY created_at, kid",
            ))
        })
    }

    pub(super) fn acme_put_eab_key(
        &self,
        key: AcmeEabKey,
        new: bool,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::acme_put_eab_key(tx, &key, new).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    pub(super) fn acme_update_account(
        &self,
        account: AcmeAccount,
        expected_thumbprint: String,
        audit: AuditDraft,
    ) -> StoreFuture<'_, ()> {
        self.write(Some(audit), move |tx| {
            Box::pin(async move {
                ops::acme_update_account(tx, &account, &expected_thumbprint).await?;
                Ok(((), Vec::new()))
            })
        })
    }

    pub(super) fn acme_order(&self, id: &str) -> R<Option<AcmeOrder>> {
        let id = id.to_string();
        self.read(move |c| {
            Box::pin(async move { opt(c, "SELECT rec FROM acme_orders WHERE id = $1", &id).await })
        })
    }

    pub(super) fn acme_authz(&self, id: &str) -> R<Option<AcmeAuthz>> {
        let id = id.to_string();
        self.read(move |c| {
            Box::pin(async move { opt(c, "SELECT rec FROM acme_authzs WHERE id = $1", &id).await })
        })
    }

    pub(super) fn acme_put(
        &self,
        order: Option<AcmeOrder>,
        authzs: Vec<AcmeAuthz>,
        audit: Option<AuditDraft>,
    ) -> StoreFuture<'_, ()> {
        self.write(audit, move |tx| {
            Box::pin(async move {
                ops::acme_put(tx, order.as_ref(), &authzs).await?;
                Ok(((), Vec::new()))
            })
        })
    }
}
