//! ACME as operators manage it over the API: external account binding keys
//! (global administrators), accounts and orders (whoever may read the audit
//! trail).

use super::*;
use crate::api::wire;
use crate::store::AcmeEabKey;

fn random_b64(bytes: usize) -> Result<String, ApiError> {
    let mut b = vec![0u8; bytes];
    getrandom::getrandom(&mut b).map_err(|e| ApiError::internal("randomness", e))?;
    Ok(crate::acme::jws::b64(&b))
}

fn eab_view(k: &AcmeEabKey) -> wire::EabKey {
    wire::EabKey {
        key_id: k.kid.clone(),
        provisioner: k.provisioner.clone(),
        created_at: crate::clock::fmt_unix(k.created_at),
        created_by: k.created_by.clone(),
        revoked: k.revoked,
        account: k.account.clone(),
        policy_statement: k.policy_statement.clone(),
    }
}

impl Authority {
    pub async fn create_eab_key(
        &self,
        who: &Identity,
        body: wire::CreateEabKey,
    ) -> Result<wire::EabKeyCreated, ApiError> {
        self.authorize_administer(who, "*")?;
        let acme = &self.config.acme;
        let Some(p) = acme
            .provisioners
            .iter()
            .find(|p| p.name == body.provisioner)
        else {
            return Err(ApiError::invalid(format!(
                "no ACME provisioner {:?} (config.toml [[acme.provisioners]])",
                body.provisioner
            )));
        };
        let mut kid = String::from("eab-");
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b).map_err(|e| ApiError::internal("randomness", e))?;
        kid.push_str(&ca_core::hex::encode(&b));
        let mut statement = None;
        if !body.name_patterns.is_empty() {
            let ca = self.resolve_ca(&p.ca.clone().unwrap_or_else(|| self.default_ca()))?;
            let id = format!("acme-{kid}");
            let dto: crate::policy::StatementDto = serde_json::from_value(serde_json::json!({
                "effect": "allow",
                "principals": [{"uri": format!("acme-eab:{}/{kid}", p.name)}],
                "actions": ["issue"],
                "cas": [ca],
                "conditions": {"name_patterns": body.name_patterns, "profiles": [p.profile]},
            }))
            .map_err(|e| ApiError::invalid(format!("name_patterns: {e}")))?;
            self.policies.put(self.store.as_ref(), &id, dto).await?;
            statement = Some(id);
        }
        let key = AcmeEabKey {
            kid: kid.clone(),
            provisioner: p.name.clone(),
            hmac_key: random_b64(32)?,
            created_at: self.now().unix_timestamp(),
            created_by: who.display(),
            revoked: false,
            account: None,
            policy_statement: statement,
        };
        let draft = self.draft(&who.display(), "CreateAcmeEabKey", &kid);
        self.store
            .acme_put_eab_key(key.clone(), true, draft)
            .await?;
        crate::audit::committed();
        tracing::info!(key = %kid, provisioner = %p.name, by = %who.display(), "ACME EAB key created");
        Ok(wire::EabKeyCreated {
            key: eab_view(&key),
            hmac_key: key.hmac_key,
            directory: format!("{}/acme/{}/directory", acme.base(), p.name),
        })
    }

    pub fn list_eab_keys(&self, who: &Identity) -> Result<Vec<wire::EabKey>, ApiError> {
        self.authorize_administer(who, "*")?;
        Ok(self.store.acme_eab_keys()?.iter().map(eab_view).collect())
    }

    /// Revoke an EAB key: it binds no new account, and the account made with
    /// it can no longer order; its policy statement goes too.
    pub async fn revoke_eab_key(
        &self,
        who: &Identity,
        kid: &str,
    ) -> Result<wire::EabKey, ApiError> {
        self.authorize_administer(who, "*")?;
        let Some(mut key) = self.store.acme_eab_key(kid)? else {
            return Err(ApiError::not_found("no such EAB key"));
        };
        key.revoked = true;
        let draft = self.draft(&who.display(), "RevokeAcmeEabKey", kid);
        self.store
            .acme_put_eab_key(key.clone(), false, draft)
            .await?;
        crate::audit::committed();
        if let Some(id) = &key.policy_statement {
            match self.policies.delete(self.store.as_ref(), id).await {
                Ok(()) => {}
                Err(e) if e.code == ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        tracing::info!(key = %kid, by = %who.display(), "ACME EAB key revoked");
        Ok(eab_view(&key))
    }

    pub fn list_acme_accounts(&self, who: &Identity) -> Result<Vec<wire::AcmeAccount>, ApiError> {
        self.authorize_audit(who)?;
        Ok(self
            .store
            .acme_accounts()?
            .into_iter()
            .map(|a| wire::AcmeAccount {
                principal: format!("URI:acme:{}/{}", a.provisioner, a.id),
                id: a.id,
                provisioner: a.provisioner,
                status: a.status,
                contact: a.contact,
                created_at: crate::clock::fmt_unix(a.created_at),
                eab_key_id: a.eab_kid,
            })
            .collect())
    }

    pub fn list_acme_orders(
        &self,
        who: &Identity,
        account: &str,
    ) -> Result<Vec<wire::AcmeOrder>, ApiError> {
        self.authorize_audit(who)?;
        if self.store.acme_account(account)?.is_none() {
            return Err(ApiError::not_found("no such ACME account"));
        }
        Ok(self
            .store
            .acme_orders_of(account)?
            .into_iter()
            .map(|o| wire::AcmeOrder {
                id: o.id,
                status: o.status,
                identifiers: o.identifiers,
                created_at: crate::clock::fmt_unix(o.created_at),
                expires: crate::clock::fmt_unix(o.expires),
                ca_id: o.certificate.as_ref().map(|c| c.0.clone()),
                serial: o.certificate.map(|c| c.1),
                error: o.error.and_then(|e| serde_json::from_str(&e).ok()),
            })
            .collect())
    }
}
