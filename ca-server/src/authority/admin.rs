//! Service-wide administration: the access policies (list, get, put,
//! delete; `administer` on `*`) and the audit trail (`audit` on `*`).

use std::future::Future;

use crate::audit::AuditEntry;
use crate::error::ApiError;
use crate::policy::StatementDto;
use crate::store::AuditFilter;

use super::{Authority, Identity};

impl Authority {
    /// ListPolicies: every statement, as stored.
    pub fn list_policies(&self, who: &Identity) -> Result<Vec<StatementDto>, ApiError> {
        self.authorize_policies(who)?;
        Ok(self
            .policies
            .snapshot()
            .iter()
            .map(|(d, _)| d.clone())
            .collect())
    }

    /// GetPolicy: one statement by id.
    pub fn get_policy(&self, who: &Identity, id: &str) -> Result<StatementDto, ApiError> {
        self.authorize_policies(who)?;
        self.policies
            .snapshot()
            .iter()
            .find(|(_, s)| s.id == id)
            .map(|(d, _)| d.clone())
            .ok_or_else(|| ApiError::not_found(format!("no policy statement {id}")))
    }

    /// PutPolicy: create or replace a statement; the stored statement back.
    /// The statement arrives as a future so it is read (and the request body
    /// with it) only once the caller is known to be allowed.
    pub async fn put_policy(
        &self,
        who: &Identity,
        id: &str,
        statement: impl Future<Output = Result<StatementDto, ApiError>>,
    ) -> Result<Option<StatementDto>, ApiError> {
        self.authorize_policies(who)?;
        let body = statement.await?;
        self.policies.put(self.store.as_ref(), id, body).await?;
        tracing::info!(statement = %id, by = %who.display(), "policy statement stored");
        Ok(self
            .policies
            .snapshot()
            .iter()
            .find(|(_, s)| s.id == id)
            .map(|(d, _)| d.clone()))
    }

    /// DeletePolicy.
    pub async fn delete_policy(&self, who: &Identity, id: &str) -> Result<(), ApiError> {
        self.authorize_policies(who)?;
        self.policies.delete(self.store.as_ref(), id).await?;
        tracing::info!(statement = %id, by = %who.display(), "policy statement deleted");
        Ok(())
    }

    /// ListAuditEntries: one page of the audit trail.
    pub fn audit_page(
        &self,
        who: &Identity,
        filter: &AuditFilter,
    ) -> Result<(Vec<AuditEntry>, Option<u64>), ApiError> {
        self.authorize_audit(who)?;
        Ok(self.store.audit_page(filter)?)
    }

    /// Signed digests numbered after `after`, for whoever may read the trail.
    pub fn audit_digests(
        &self,
        who: &Identity,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ca_core::audit_digest::AuditDigest>, ApiError> {
        self.authorize_audit(who)?;
        Ok(self.store.audit_digests(after, limit)?)
    }
}
