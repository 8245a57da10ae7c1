//! ACME accounts (each key bound to one account, an EAB key to one
//! account), EAB keys, orders and authorizations.

use deadpool_postgres::Transaction;

use super::{cached, to_text, R};
use crate::store::postgres::{pg_err, unjson};
use crate::store::{AcmeAccount, AcmeAuthz, AcmeEabKey, AcmeOrder, StoreError};

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
