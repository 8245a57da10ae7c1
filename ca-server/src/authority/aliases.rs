//! Aliases: stable names for a lineage of CAs, so clients keep issuing
//! through the same name while the CA behind it is rotated (a new key under
//! the same parent, the old CA retired but still serving CRL and OCSP).

use super::cas::{KeyStorage, NewCa};
use super::{check_ca_id, Authority, Identity};
use crate::error::{ApiError, ErrorCode};
use crate::ids;
use crate::store::{CaRecord, CaStatus, CaType};

impl Authority {
    /// GetAlias: the CA an alias names now (read on that CA).
    pub fn get_alias(&self, who: &Identity, alias: &str) -> Result<String, ApiError> {
        let ca = self.resolve_ca(alias)?;
        self.authorize_read(who, &ca)?;
        Ok(ca)
    }

    /// ListAliases: (alias, CA id) of the CAs this caller may read.
    pub fn list_aliases(&self, who: &Identity) -> Result<Vec<(String, String)>, ApiError> {
        let mut items = self.store.list_aliases()?;
        items.retain(|(_, ca)| self.may_read(who, ca));
        crate::audit::record(true, None, "listed the aliases of readable CAs".into(), "");
        Ok(items)
    }

    /// Who may point `alias` at `new_target`. Judged by CA id, never by the
    /// alias name (a grant naming the alias would otherwise follow it to any
    /// CA): administer on the new target and on the current one; and over
    /// everything (`*`) to move the `issuing` alias (the default of issuance,
    /// CLI profiles and the API's own TLS renewal) or to point any alias at
    /// or away from a root or the client-auth CA (whose certificates are API
    /// identities).
    fn authorize_alias_change(
        &self,
        who: &Identity,
        alias: &str,
        new_target: &str,
    ) -> Result<(), ApiError> {
        let current = self.store.get_alias(alias)?;
        let sensitive = |id: &str| -> Result<bool, ApiError> {
            if id == self.config.client_auth_ca_id || id == self.config.root_ca_id {
                return Ok(true);
            }
            Ok(self
                .store
                .get_ca(id)?
                .is_some_and(|c| c.ca_type == CaType::Root))
        };
        let everything = alias == crate::alias::DEFAULT_ALIAS
            || sensitive(new_target)?
            || current
                .as_deref()
                .map(sensitive)
                .transpose()?
                .unwrap_or(false);
        if everything {
            return self.authorize_administer(who, "*");
        }
        self.authorize_administer(who, new_target)?;
        if let Some(cur) = current.as_deref().filter(|c| *c != new_target) {
            self.authorize_administer(who, cur)?;
        }
        Ok(())
    }

    /// Create or repoint an alias (see [`Self::authorize_alias_change`]).
    pub async fn set_alias(
        &self,
        who: &Identity,
        alias: &str,
        ca_id: &str,
    ) -> Result<(), ApiError> {
        if !crate::alias::is_alias(alias) {
            return Err(ApiError::invalid(
                "an alias is 1-64 of a-z 0-9 - _, starts with a letter, and is not shaped like a CA id",
            ));
        }
        check_ca_id(ca_id)?;
        self.authorize_alias_change(who, alias, ca_id)?;
        self.active_issuer(ca_id)?;
        let draft = self.draft(&who.display(), "PutAlias", alias);
        self.store.put_alias(alias, ca_id, draft).await?;
        crate::audit::committed();
        tracing::info!(%alias, ca = %ca_id, by = %who.display(), "alias set");
        Ok(())
    }

    /// Rotate the CA behind `alias`: a new intermediate under the same parent
    /// (same subject, profile and key algorithm, a new key), the alias
    /// repointed and the old CA retired in one commit.
    pub async fn rotate_alias(
        &self,
        who: &Identity,
        alias: &str,
    ) -> Result<(CaRecord, CaRecord), ApiError> {
        let old_id = self.resolve_ca(alias)?;
        if ids::is_ca_id(alias) {
            return Err(ApiError::invalid("rotate an alias, not a CA id"));
        }
        // By id: the new CA takes the old one's place under the same parent.
        self.authorize_administer(who, &old_id)?;
        if alias == crate::alias::DEFAULT_ALIAS {
            self.authorize_administer(who, "*")?;
        }
        let old = self.get_ca(&old_id)?;
        let parent =
            match (&old.parent_ca_id, old.ca_type, old.external) {
                (Some(p), CaType::Subordinate, false) => p.clone(),
                _ => return Err(ApiError::new(
                    ErrorCode::InvalidState,
                    "only a subordinate CA signed by this service can be rotated behind an alias",
                )),
            };
        if old.status != CaStatus::Active {
            return Err(ApiError::new(
                ErrorCode::InvalidState,
                format!("CA {old_id} is not ACTIVE"),
            ));
        }
        let (new, key) = self
            .prepare_ca(
                who,
                NewCa {
                    ca_type: CaType::Subordinate,
                    subject: old.subject.clone(),
                    key_algorithm: old.key_algorithm.clone(),
                    parent_ca_id: Some(parent),
                    external: false,
                    validity_days: None,
                    path_len: old.path_len,
                    name_constraints: None,
                    // The successor's key lives where its predecessor's did.
                    ocsp_disabled: old.ocsp_disabled,
                    key_storage: if old.token_key_label.is_some() {
                        KeyStorage::Pkcs11
                    } else {
                        KeyStorage::Software
                    },
                },
            )
            .await?;
        let new_id = new.ca.id.clone();
        let draft = self.draft(&who.display(), "RotateAlias", alias);
        let retired = self
            .store
            .rotate_alias(alias, &old_id, new.clone(), draft)
            .await?;
        crate::audit::committed();
        self.vault.cache(&new_id, key.signer);
        let new = new.ca;
        tracing::info!(%alias, old = %old_id, new = %new.id, by = %who.display(), "CA rotated behind its alias");
        Ok((retired, new))
    }
}
