//! Revocation: RevokeCertificate with an RFC 5280 reason. Revoking again with
//! the same reason is idempotent; a reason may later be raised to
//! keyCompromise (RFC 5280 5.3.1, CA/B BR 4.9.1.1); any other change is a
//! `Conflict`. keyCompromise also blocks the key from being certified again.
//! The reason type is ca-core's [`RevocationReason`], the one the CRL and
//! OCSP builders use; the API speaks ACM Private CA's names for it
//! (`KEY_COMPROMISE`), mapped here.

use super::parse::spki_sha256_of_certificate;
use super::{ca_hint, check_ca_id, parse_serial, Authority, Identity};
use crate::error::ApiError;
use crate::store::{CertRecord, Revocation};
pub use ca_core::crl::RevocationReason;

/// The reasons a client may give, with ACM Private CA's names. Not
/// `removeFromCRL` (8): that only undoes a hold inside a delta CRL, and is
/// no reason to revoke.
const ACM_REASONS: &[(RevocationReason, &str)] = &[
    (RevocationReason::Unspecified, "UNSPECIFIED"),
    (RevocationReason::KeyCompromise, "KEY_COMPROMISE"),
    (
        RevocationReason::CaCompromise,
        "CERTIFICATE_AUTHORITY_COMPROMISE",
    ),
    (RevocationReason::AffiliationChanged, "AFFILIATION_CHANGED"),
    (RevocationReason::Superseded, "SUPERSEDED"),
    (
        RevocationReason::CessationOfOperation,
        "CESSATION_OF_OPERATION",
    ),
    (RevocationReason::CertificateHold, "CERTIFICATE_HOLD"),
    (RevocationReason::PrivilegeWithdrawn, "PRIVILEGE_WITHDRAWN"),
    (RevocationReason::AaCompromise, "A_A_COMPROMISE"),
];

fn unknown_reason() -> ApiError {
    ApiError::invalid("reason must be an RFC 5280 CRLReason code (0-6, 9, 10) or its name")
}

/// A reason by its RFC 5280 code.
pub fn reason_from_code(code: i64) -> Result<RevocationReason, ApiError> {
    ACM_REASONS
        .iter()
        .find(|(r, _)| i64::from(r.code()) == code)
        .map(|(r, _)| *r)
        .ok_or_else(unknown_reason)
}

/// A reason by its ACM name, in any case.
pub fn reason_from_name(name: &str) -> Result<RevocationReason, ApiError> {
    ACM_REASONS
        .iter()
        .find(|(_, n)| n.eq_ignore_ascii_case(name))
        .map(|(r, _)| *r)
        .ok_or_else(unknown_reason)
}

/// The ACM name of a reason (what the store and the API show).
pub fn acm_name(reason: RevocationReason) -> &'static str {
    ACM_REASONS
        .iter()
        .find(|(r, _)| *r == reason)
        .map(|(_, n)| *n)
        .unwrap_or("UNSPECIFIED")
}

/// Whether `reason` may be given for a certificate of `profile`: never
/// certificateHold (a hold cannot be lifted here, and the CA/B BRs forbid it),
/// and CA or AA compromise only for CA certificates.
fn check_reason_fits(reason: RevocationReason, profile: &str) -> Result<(), ApiError> {
    match reason {
        RevocationReason::CertificateHold => Err(ApiError::invalid(
            "CERTIFICATE_HOLD is not accepted: revocation here is final; give the final reason",
        )),
        RevocationReason::CaCompromise | RevocationReason::AaCompromise
            if profile != ca_core::profile::Profile::SubordinateCa { path_len: None }.name() =>
        {
            Err(ApiError::invalid(format!(
                "{} applies to CA certificates only; this is a {profile} certificate",
                acm_name(reason)
            )))
        }
        _ => Ok(()),
    }
}

impl Authority {
    pub async fn revoke(
        &self,
        who: &Identity,
        ca_id: Option<&str>,
        serial: &str,
        reason: RevocationReason,
    ) -> Result<CertRecord, ApiError> {
        let serial = parse_serial(serial)?;
        let ca_id = match ca_hint(ca_id) {
            Some(c) => {
                check_ca_id(c)?;
                c.to_string()
            }
            None => match self.store.ca_of_serial(&serial)? {
                Some(c) => c,
                None => {
                    // An unknown serial is judged as a revoke on `*`, so a
                    // caller without the grant cannot probe which serials exist.
                    self.authorize_revoke(who, "*", None)?;
                    return Err(ApiError::not_found(format!("no certificate {serial}")));
                }
            },
        };
        // The owner is looked up first so a revoke-own grant can be judged; a
        // caller without any revoke grant is refused before learning more.
        let found = self.store.get_cert(&ca_id, &serial)?;
        let owner = found
            .as_ref()
            .and_then(|(r, _)| r.requester_fingerprint.clone());
        self.authorize_revoke(who, &ca_id, owner.as_deref())?;
        let (record, der) =
            found.ok_or_else(|| ApiError::not_found(format!("no certificate {serial}")))?;
        check_reason_fits(reason, &record.profile)?;
        let key_sha256 = der.as_deref().map(spki_sha256_of_certificate).transpose()?;
        let rev = Revocation {
            reason_code: reason.code(),
            reason: acm_name(reason).to_string(),
            revoked_at: self.now().unix_timestamp(),
            revoked_by: who.display(),
            key_sha256,
        };
        let draft = self.draft(
            &who.display(),
            "RevokeCertificate",
            &format!("{ca_id}/{serial}"),
        );
        let rec = self.store.revoke(&ca_id, &serial, rev, draft).await?;
        crate::audit::committed();
        tracing::info!(ca = %ca_id, serial = %serial, reason = acm_name(reason), by = %who.display(), "revoked");
        self.metrics.certificate_revoked(&ca_id, acm_name(reason));
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acm_names_and_codes_map_to_the_rfc_reasons() {
        for (reason, name) in ACM_REASONS {
            assert_eq!(reason_from_name(name).expect("name"), *reason);
            assert_eq!(
                reason_from_name(&name.to_lowercase()).expect("any case"),
                *reason
            );
            assert_eq!(
                reason_from_code(i64::from(reason.code())).expect("code"),
                *reason
            );
            assert_eq!(acm_name(*reason), *name);
        }
        // removeFromCRL (8), the unassigned 7 and RFC spellings are refused,
        // as before: the API speaks ACM's names.
        for code in [7, 8, 11, -1] {
            assert!(reason_from_code(code).is_err(), "{code}");
        }
        assert!(reason_from_name("keyCompromise").is_err());
        assert!(reason_from_name("REMOVE_FROM_CRL").is_err());
    }
}
