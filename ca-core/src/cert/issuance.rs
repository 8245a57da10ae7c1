//! Issuance: a request is built and linted into a [`Prepared`] certificate,
//! which the issuing CA's key then signs; roots and intermediates signed
//! in-process are made the same way.

use aws_lc_rs::digest;
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use time::OffsetDateTime;
use x509_cert::certificate::TbsCertificate;
use x509_cert::name::Name;

use super::tbs::{build_tbs, TbsSpec};
use super::{
    CaCertificate, IssueError, Issuer, NameConstraintsSpec, DEFAULT_ROOT_DAYS, NOT_BEFORE_BACKDATE,
};
use crate::csr::{common_name, Csr};
use crate::keys::{PublicKeyKind, Signer};
use crate::lint::{self, CertKind, LintContext};
use crate::names::SanEntry;
use crate::pem;
use crate::profile::{Profile, ValidityLimits};
use crate::serial::Serial;

/// What to certify: the subject, its public key, its names and the profile.
#[derive(Clone, Debug)]
pub struct CertificateRequest {
    pub subject: Name,
    pub spki_der: Vec<u8>,
    pub sans: Vec<SanEntry>,
    pub profile: Profile,
    /// Requested lifetime; `None` takes the profile's default. Capped by the
    /// profile's maximum and by the issuer's notAfter.
    pub validity_days: Option<u32>,
    /// For subordinate CAs only.
    pub name_constraints: Option<NameConstraintsSpec>,
}

impl CertificateRequest {
    /// Take the subject, key and requested names from a verified CSR. Nothing
    /// else the CSR asks for is honoured: the profile decides the rest. The
    /// common name, when it is a DNS name or IP address, is treated as one more
    /// requested name (as Let's Encrypt does): a CSR without SANs gets it as its
    /// SAN, and a server certificate's CN is always among its SANs (BR 7.1.4.3),
    /// so it is authorised and linted with them.
    pub fn from_csr(csr: &Csr, profile: Profile) -> Self {
        let mut sans = csr.requested_sans.clone();
        let cn_name = common_name(&csr.subject)
            .and_then(|cn| SanEntry::parse(&cn).ok())
            .filter(|entry| !matches!(entry, SanEntry::Email(_)));
        if let Some(entry) = cn_name {
            let wanted = !profile.is_ca() && (sans.is_empty() || profile.requires_server_san());
            if wanted && !sans.contains(&entry) {
                sans.push(entry);
            }
        }
        CertificateRequest {
            subject: csr.subject.clone(),
            spki_der: csr.spki_der.clone(),
            sans,
            profile,
            validity_days: None,
            name_constraints: None,
        }
    }
}

/// A linted to-be-signed certificate, ready for the signer.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub tbs: TbsCertificate,
    pub tbs_der: Vec<u8>,
    pub serial: Serial,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    issuer_spki_der: Vec<u8>,
}

/// A signed certificate.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    pub der: Vec<u8>,
    pub serial: Serial,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl IssuedCertificate {
    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }
}

impl Prepared {
    /// SHA-256 of the to-be-signed certificate: what a store records as intent.
    pub fn digest(&self) -> [u8; 32] {
        let d = digest::digest(&digest::SHA256, &self.tbs_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// Sign with the issuing CA's key.
    pub fn sign(self, signer: &dyn Signer) -> Result<IssuedCertificate, IssueError> {
        if signer.public_key_der() != self.issuer_spki_der.as_slice()
            || signer.signature_algorithm().identifier() != self.tbs.signature
        {
            return Err(IssueError::SignerMismatch);
        }
        let sig = signer.sign(&self.tbs_der)?;
        Ok(IssuedCertificate {
            der: certificate_der(&self.tbs_der, &self.tbs.signature.to_der()?, &sig),
            serial: self.serial,
            not_before: self.not_before,
            not_after: self.not_after,
        })
    }
}

/// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm,
/// signatureValue BIT STRING }` around the very TBS bytes that were signed
/// (the same bytes der gives for the decoded TBS, without encoding it again:
/// a few microseconds of every issuance).
pub(super) fn certificate_der(tbs_der: &[u8], algorithm_der: &[u8], signature: &[u8]) -> Vec<u8> {
    use crate::der_util::{push_header, tlv_len, TAG_BIT_STRING, TAG_SEQUENCE};
    // A BIT STRING's contents: the unused-bits octet (0), then the bits.
    let bits_len = 1 + signature.len();
    let content_len = tbs_der.len() + algorithm_der.len() + tlv_len(bits_len);
    let mut out = Vec::with_capacity(tlv_len(content_len));
    push_header(&mut out, TAG_SEQUENCE, content_len);
    out.extend_from_slice(tbs_der);
    out.extend_from_slice(algorithm_der);
    push_header(&mut out, TAG_BIT_STRING, bits_len);
    out.push(0);
    out.extend_from_slice(signature);
    out
}

/// The last second of a lifetime of `days` starting at `not_before`: validity
/// periods count both ends (RFC 5280 4.1.2.5), so `days` days end one second
/// before `not_before + days`.
fn lifetime_end(not_before: OffsetDateTime, days: u32) -> Result<OffsetDateTime, IssueError> {
    not_before
        .checked_add(time::Duration::days(i64::from(days)) - time::Duration::SECOND)
        .ok_or(IssueError::TimeRange)
}

/// Certificates carry whole seconds; so must every comparison with them.
fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

fn lint_or_refuse(tbs: &TbsCertificate, ctx: &LintContext<'_>) -> Result<Vec<u8>, IssueError> {
    let findings = lint::lint(tbs, ctx);
    if !findings.is_empty() {
        return Err(IssueError::Lint(findings));
    }
    Ok(tbs.to_der()?)
}

fn check_days(days: u32, limits: ValidityLimits) -> Result<u32, IssueError> {
    if days == 0 {
        return Err(IssueError::InvalidValidity(days));
    }
    Ok(days.min(limits.max_days))
}

/// Build and lint the certificate `request` describes, to be signed by `issuer`.
pub fn prepare(
    issuer: &Issuer,
    request: &CertificateRequest,
    serial: Serial,
    now: OffsetDateTime,
    limits: ValidityLimits,
) -> Result<Prepared, IssueError> {
    let now = whole_seconds(now);
    let ca = &issuer.certificate;
    if now >= ca.not_after {
        return Err(IssueError::IssuerExpired(crate::fmt_time(ca.not_after)));
    }
    if now < ca.not_before {
        return Err(IssueError::IssuerNotYetValid(crate::fmt_time(
            ca.not_before,
        )));
    }
    let days = check_days(request.validity_days.unwrap_or(limits.default_days), limits)?;
    let not_before = (now - NOT_BEFORE_BACKDATE).max(ca.not_before);
    let not_after = lifetime_end(not_before, days)?.min(ca.not_after);
    let spki = SubjectPublicKeyInfoOwned::from_der(&request.spki_der)?;
    let subject_key = PublicKeyKind::from_spki_der(&request.spki_der)?;
    let sans = request
        .sans
        .iter()
        .cloned()
        .map(SanEntry::validated)
        .collect::<Result<Vec<_>, _>>()?;
    if request.profile.requires_server_san()
        && !sans
            .iter()
            .any(|s| matches!(s, SanEntry::Dns(_) | SanEntry::Ip(_)))
    {
        return Err(IssueError::MissingServerName(request.profile));
    }
    if request.subject.0.is_empty() && sans.is_empty() {
        return Err(IssueError::NoNames);
    }
    let kind = CertKind::Issued(request.profile);
    let tbs = build_tbs(&TbsSpec {
        serial: &serial,
        issuer_name: ca.subject(),
        issuer_key: ca.key_kind,
        issuer_ski: Some(&ca.ski),
        not_before,
        not_after,
        subject: &request.subject,
        spki,
        subject_key,
        kind,
        sans: &sans,
        name_constraints: request
            .name_constraints
            .as_ref()
            .filter(|_| request.profile.is_ca()),
        urls: Some(&issuer.urls),
    })?;
    let ctx = LintContext {
        kind,
        limits,
        issuer_ski: Some(&ca.ski),
        issuer_key: ca.key_kind,
        issuer_not_before: ca.not_before,
        issuer_not_after: ca.not_after,
        ancestor_path_lens: std::iter::once(ca)
            .chain(&issuer.parents)
            .map(|c| c.path_len)
            .collect(),
        name_constraints: issuer.name_constraints(),
    };
    let tbs_der = lint_or_refuse(&tbs, &ctx)?;
    Ok(Prepared {
        tbs,
        tbs_der,
        serial,
        not_before,
        not_after,
        issuer_spki_der: ca.spki_der(),
    })
}

/// Prepare with a fresh (time-ordered, random) serial and sign: the whole
/// issuance in one call.
pub fn issue(
    issuer: &Issuer,
    signer: &dyn Signer,
    request: &CertificateRequest,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, IssueError> {
    prepare(
        issuer,
        request,
        Serial::time_ordered(now)?,
        now,
        request.profile.default_limits(),
    )?
    .sign(signer)
}

/// Parameters of a self-signed root.
#[derive(Clone, Debug)]
pub struct RootParams {
    pub subject: Name,
    pub validity_days: u32,
    pub path_len: Option<u8>,
    pub name_constraints: Option<NameConstraintsSpec>,
}

impl RootParams {
    pub fn new(subject: Name) -> Self {
        RootParams {
            subject,
            validity_days: DEFAULT_ROOT_DAYS,
            path_len: None,
            name_constraints: None,
        }
    }
}

/// Create a self-signed root CA certificate for `signer`'s key.
pub fn create_root(
    signer: &dyn Signer,
    params: &RootParams,
    now: OffsetDateTime,
) -> Result<CaCertificate, IssueError> {
    if params.validity_days == 0 {
        return Err(IssueError::InvalidValidity(0));
    }
    let now = whole_seconds(now);
    let spki = SubjectPublicKeyInfoOwned::from_der(signer.public_key_der())?;
    let key = PublicKeyKind::from_spki_der(signer.public_key_der())?;
    let serial = Serial::time_ordered(now)?;
    let not_before = now - NOT_BEFORE_BACKDATE;
    let not_after = lifetime_end(not_before, params.validity_days)?;
    let kind = CertKind::Root {
        path_len: params.path_len,
    };
    let tbs = build_tbs(&TbsSpec {
        serial: &serial,
        issuer_name: &params.subject,
        issuer_key: key,
        issuer_ski: None,
        not_before,
        not_after,
        subject: &params.subject,
        spki,
        subject_key: key,
        kind,
        sans: &[],
        name_constraints: params.name_constraints.as_ref(),
        urls: None,
    })?;
    let ctx = LintContext {
        kind,
        limits: ValidityLimits {
            default_days: params.validity_days,
            max_days: params.validity_days,
        },
        issuer_ski: None,
        issuer_key: key,
        issuer_not_before: not_before,
        issuer_not_after: not_after,
        ancestor_path_lens: vec![],
        name_constraints: vec![],
    };
    let tbs_der = lint_or_refuse(&tbs, &ctx)?;
    let prepared = Prepared {
        tbs,
        tbs_der,
        serial,
        not_before,
        not_after,
        issuer_spki_der: signer.public_key_der().to_vec(),
    };
    let issued = prepared.sign(signer)?;
    CaCertificate::parse(&issued.der)
        .map_err(|_| IssueError::Encoding(der::ErrorKind::Failed.into()))
}

/// Parameters of an intermediate CA signed by one of ours.
#[derive(Clone, Debug)]
pub struct IntermediateParams {
    pub subject: Name,
    pub validity_days: Option<u32>,
    pub path_len: Option<u8>,
    pub name_constraints: Option<NameConstraintsSpec>,
}

/// Create an intermediate CA certificate for the key `subordinate_spki_der`,
/// signed in-process by `issuer` through `issuer_signer`.
pub fn create_intermediate(
    issuer: &Issuer,
    issuer_signer: &dyn Signer,
    subordinate_spki_der: &[u8],
    params: &IntermediateParams,
    now: OffsetDateTime,
) -> Result<CaCertificate, IssueError> {
    let profile = Profile::SubordinateCa {
        path_len: params.path_len,
    };
    let request = CertificateRequest {
        subject: params.subject.clone(),
        spki_der: subordinate_spki_der.to_vec(),
        sans: vec![],
        profile,
        validity_days: params.validity_days,
        name_constraints: params.name_constraints.clone(),
    };
    let issued = prepare(
        issuer,
        &request,
        Serial::time_ordered(now)?,
        now,
        profile.default_limits(),
    )?
    .sign(issuer_signer)?;
    CaCertificate::parse(&issued.der)
        .map_err(|_| IssueError::Encoding(der::ErrorKind::Failed.into()))
}
