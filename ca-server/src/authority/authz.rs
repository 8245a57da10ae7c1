//! Every authorisation decision of the authority, in one place: who may do
//! what on which CA. Each API operation calls one of these before it reads or
//! changes anything; a decision is recorded for the audit trail (except
//! list filtering, which only narrows what a caller sees) and a refusal is
//! `PolicyDenied` naming the deciding statement, or deny by default.
//!
//! The decisions are private to the authority: front ends (http.rs, a
//! future ACME server) call operations that decide and act together, so no
//! front end can read or change anything without a decision.

use ca_core::names::SanEntry;
use ca_core::policy::{Action as PolicyAction, Caller, Request as PolicyRequest, RequestedSubject};
use ca_core::profile::Profile;
use x509_cert::name::Name;

use super::{check_ca_id, parse_serial, Authority, Identity};
use crate::error::{ApiError, ErrorCode};

/// Policies and the audit trail are service-wide: grants on `*`.
fn service_scope() -> PolicyRequest<'static> {
    PolicyRequest {
        ca: "*",
        ..Default::default()
    }
}

fn caller_of(who: &Identity) -> Caller {
    Caller {
        subject: who.subject.clone(),
        sans: who.sans.clone(),
        fingerprint: who.fingerprint.clone(),
    }
}

impl Authority {
    /// The policy check of every API call: evaluate the statements for this
    /// caller and request, record the decision for the audit trail, and refuse
    /// with `PolicyDenied` naming the deciding statement (or deny by default).
    pub(super) fn authorize(
        &self,
        who: &Identity,
        action: PolicyAction,
        req: &PolicyRequest<'_>,
    ) -> Result<(), ApiError> {
        if who.internal {
            crate::audit::record(true, None, "internal call".into(), req.ca);
            return Ok(());
        }
        let caller = caller_of(who);
        let aliases = self.aliases_of(req.ca)?;
        let req = &PolicyRequest {
            ca_aliases: &aliases,
            ..req.clone()
        };
        let d = ca_core::policy::evaluate(&self.policies.statements(), &caller, action, req);
        tracing::debug!(caller = %who.display(), %action, ca = req.ca, allowed = d.allowed, statement = d.statement.as_deref().unwrap_or("-"), "policy decision");
        crate::audit::record(d.allowed, d.statement.clone(), d.reason.clone(), req.ca);
        if d.allowed {
            return Ok(());
        }
        let why = match &d.statement {
            Some(s) => format!("statement {s}"),
            None => format!("deny by default: {}", d.reason),
        };
        Err(ApiError::new(
            ErrorCode::PolicyDenied,
            format!(
                "{action} on {} is not allowed for this identity ({why})",
                req.ca
            ),
        ))
    }

    /// The aliases pointing at `ca_id` now: statements naming an alias are
    /// about the CA it points to, however the caller named that CA.
    fn aliases_of(&self, ca_id: &str) -> Result<Vec<String>, ApiError> {
        Ok(self
            .store
            .list_aliases()?
            .into_iter()
            .filter(|(_, target)| target == ca_id)
            .map(|(alias, _)| alias)
            .collect())
    }

    /// `issue` on a CA for a certificate as it
    /// will be issued: its names and subject, its profile and its validity in
    /// days (the profile's default when the request names none).
    pub(super) fn authorize_issue(
        &self,
        who: &Identity,
        ca: &str,
        names: &[SanEntry],
        subject: &Name,
        profile: Profile,
        validity_days: u32,
    ) -> Result<(), ApiError> {
        self.authorize(
            who,
            PolicyAction::Issue,
            &PolicyRequest {
                ca,
                names,
                subject: Some(&RequestedSubject::from_name(subject)),
                profile: Some(profile.name()),
                validity_days: Some(validity_days),
                ..Default::default()
            },
        )
    }

    /// Whether `who` may read CA `ca_id` (list filtering: not recorded).
    pub(super) fn may_read(&self, who: &Identity, ca_id: &str) -> bool {
        if who.internal {
            return true;
        }
        // Fails closed: a store that cannot list aliases hides the CA.
        let Ok(aliases) = self.aliases_of(ca_id) else {
            return false;
        };
        let req = PolicyRequest {
            ca: ca_id,
            ca_aliases: &aliases,
            ..Default::default()
        };
        ca_core::policy::evaluate(
            &self.policies.statements(),
            &caller_of(who),
            PolicyAction::Read,
            &req,
        )
        .allowed
    }

    /// `read` on one CA, recorded and refused like any decision.
    pub(super) fn authorize_read(&self, who: &Identity, ca_id: &str) -> Result<(), ApiError> {
        self.authorize(
            who,
            PolicyAction::Read,
            &PolicyRequest {
                ca: ca_id,
                ..Default::default()
            },
        )
    }

    /// `read` on the CA of a certificate, judged before looking at it: an
    /// unknown serial is judged as a read on `*`, so a caller without read
    /// cannot probe which serials exist.
    pub(super) fn authorize_cert_read(
        &self,
        who: &Identity,
        hint: Option<&str>,
        serial: &str,
    ) -> Result<(), ApiError> {
        let ca = match hint {
            Some(c) => {
                check_ca_id(c)?;
                c.to_string()
            }
            None => self
                .store
                .ca_of_serial(&parse_serial(serial)?)?
                .unwrap_or_else(|| "*".into()),
        };
        self.authorize_read(who, &ca)
    }

    /// `administer` on a CA. A new root has no parent to scope the grant to:
    /// it asks for `*`.
    pub(super) fn authorize_administer(&self, who: &Identity, ca: &str) -> Result<(), ApiError> {
        self.authorize(
            who,
            PolicyAction::Administer,
            &PolicyRequest {
                ca,
                ..Default::default()
            },
        )
    }

    /// `revoke` on a CA; `owner` is the fingerprint of whoever requested the
    /// certificate, so a revoke-own grant can be judged.
    pub(super) fn authorize_revoke(
        &self,
        who: &Identity,
        ca: &str,
        owner: Option<&str>,
    ) -> Result<(), ApiError> {
        self.authorize(
            who,
            PolicyAction::Revoke,
            &PolicyRequest {
                ca,
                owner_fingerprint: owner,
                ..Default::default()
            },
        )
    }

    /// `administer` on `*`: reading and changing the access policies.
    pub(super) fn authorize_policies(&self, who: &Identity) -> Result<(), ApiError> {
        self.authorize(who, PolicyAction::Administer, &service_scope())
    }

    /// `issue` on `*`: how a renewal of an unknown serial is judged, so a
    /// caller who may not issue everywhere cannot probe which serials exist.
    pub(super) fn authorize_issue_anywhere(&self, who: &Identity) -> Result<(), ApiError> {
        self.authorize(who, PolicyAction::Issue, &service_scope())
    }

    /// `audit` on `*`: reading the audit trail.
    /// Whether `who` may be issued a certificate for `names` from `ca` with
    /// `profile` (an ACME order, checked before any challenge is offered).
    pub fn acme_may_issue(
        &self,
        who: &Identity,
        ca: &str,
        names: &[SanEntry],
        profile: &str,
        validity_days: Option<u32>,
    ) -> Result<(), ApiError> {
        let profile = super::parse_leaf_profile(profile)?;
        let days = validity_days.unwrap_or(self.config.limits(profile).default_days);
        self.authorize_issue(who, ca, names, &Name::default(), profile, days)
    }

    pub(super) fn authorize_audit(&self, who: &Identity) -> Result<(), ApiError> {
        self.authorize(who, PolicyAction::Audit, &service_scope())
    }
}
