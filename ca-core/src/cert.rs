//! CA certificates and issuance: roots, intermediates (in-process or signed by an
//! external root), and end-entity certificates built from a profile.
//!
//! Issuance is split in two so a caller can record its intent durably between
//! the steps: [`prepare`] builds and lints the to-be-signed certificate;
//! [`Prepared::sign`] signs it.

use aws_lc_rs::digest;
use der::asn1::{Ia5String, OctetString};
use der::{Decode, Encode};
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use time::OffsetDateTime;
use x509_cert::certificate::{Certificate, TbsCertificate};
use x509_cert::ext::pkix::constraints::name::{GeneralSubtree, NameConstraints};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use x509_cert::name::Name;

use crate::csr::{common_name, Csr};
use crate::keys::{KeyError, PublicKeyKind, Signer};
use crate::lint::{self, CertKind, LintContext, LintFinding};
use crate::names::{IpNet, NameError, SanEntry};
use crate::pem::{self, PemError};
use crate::profile::{Profile, ValidityLimits};
use crate::serial::{Serial, SerialError};
use crate::signature;
use crate::x509_time::from_x509_time;

mod tbs;
#[cfg(test)]
mod tests;

pub(crate) use tbs::to_x509_time;
use tbs::{build_tbs, TbsSpec};

/// How far notBefore is set back from "now", for relying parties whose clocks lag.
pub const NOT_BEFORE_BACKDATE: time::Duration = time::Duration::minutes(5);
/// Default lifetime of a root CA.
pub const DEFAULT_ROOT_DAYS: u32 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("validity of {0} days is not possible: it must be at least 1 day")]
    InvalidValidity(u32),
    #[error("the issuing CA expired on {0}; it can issue nothing")]
    IssuerExpired(String),
    #[error("the issuing CA is not valid before {0}")]
    IssuerNotYetValid(String),
    #[error("a {0} certificate needs at least one DNS or IP subjectAltName (browsers ignore the common name)")]
    MissingServerName(Profile),
    #[error("the certificate would have neither a subject nor a subjectAltName")]
    NoNames,
    #[error("the subject key is not acceptable: {0}")]
    Key(#[from] KeyError),
    #[error("name: {0}")]
    Name(#[from] NameError),
    #[error("serial: {0}")]
    Serial(#[from] SerialError),
    #[error("pre-issuance lint refused the certificate: {}", lint::describe(.0))]
    Lint(Vec<LintFinding>),
    #[error("the signer's key is not the issuing CA's key")]
    SignerMismatch,
    #[error("encoding failed: {0}")]
    Encoding(#[from] der::Error),
    #[error("time out of range")]
    TimeRange,
}

#[derive(Debug, thiserror::Error)]
pub enum CaCertError {
    #[error("certificate: {0}")]
    Pem(#[from] PemError),
    #[error("certificate does not parse: {0}")]
    Malformed(String),
    #[error("certificate is not a CA certificate (basicConstraints CA is not set)")]
    NotCa,
    #[error("CA certificate's keyUsage lacks keyCertSign")]
    NoKeyCertSign,
    #[error("CA key: {0}")]
    Key(#[from] KeyError),
    #[error("the signed certificate's key is not the pending CA key")]
    KeyMismatch,
    #[error("the certificate is not signed by {0}")]
    NotSignedBy(String),
    #[error("the certificate does not fit the chain's path length limits: {0}")]
    PathLen(String),
    #[error("the chain does not end at a self-signed root")]
    NoRoot,
    #[error("the certificate is not valid now (valid {0} to {1})")]
    NotValidNow(String, String),
}

/// A CA certificate with the facts issuance needs, parsed once.
#[derive(Clone, Debug)]
pub struct CaCertificate {
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub ski: Vec<u8>,
    pub key_kind: PublicKeyKind,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub path_len: Option<u8>,
    pub name_constraints: Option<NameConstraints>,
    /// The subjectPublicKeyInfo DER, encoded once at parse (so reading it
    /// cannot fail later).
    spki_der: Vec<u8>,
}

impl CaCertificate {
    /// Parse a CA certificate (DER or PEM), checking it is one.
    pub fn parse(input: &[u8]) -> Result<Self, CaCertError> {
        let der = pem::der_or_pem("CERTIFICATE", input)?;
        let cert =
            Certificate::from_der(&der).map_err(|e| CaCertError::Malformed(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let bad = |e: der::Error| CaCertError::Malformed(e.to_string());
        let bc = tbs
            .get::<BasicConstraints>()
            .map_err(bad)?
            .map(|(_, bc)| bc);
        let bc = bc.filter(|bc| bc.ca).ok_or(CaCertError::NotCa)?;
        if let Some((_, ku)) = tbs.get::<KeyUsage>().map_err(bad)? {
            if !ku.key_cert_sign() {
                return Err(CaCertError::NoKeyCertSign);
            }
        }
        let spki_der = tbs.subject_public_key_info.to_der().map_err(bad)?;
        let key_kind = PublicKeyKind::from_spki_der(&spki_der)?;
        let ski = match tbs.get::<SubjectKeyIdentifier>().map_err(bad)? {
            Some((_, ski)) => ski.0.as_bytes().to_vec(),
            None => key_identifier(&tbs.subject_public_key_info),
        };
        let name_constraints = tbs.get::<NameConstraints>().map_err(bad)?.map(|(_, nc)| nc);
        Ok(CaCertificate {
            not_before: from_x509_time(&tbs.validity.not_before),
            not_after: from_x509_time(&tbs.validity.not_after),
            path_len: bc.path_len_constraint,
            name_constraints,
            ski,
            key_kind,
            cert,
            der,
            spki_der,
        })
    }

    pub fn subject(&self) -> &Name {
        &self.cert.tbs_certificate.subject
    }

    pub fn spki_der(&self) -> Vec<u8> {
        self.spki_der.clone()
    }

    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }

    pub fn serial(&self) -> Serial {
        Serial::from_bytes(self.cert.tbs_certificate.serial_number.as_bytes())
    }

    /// Whether this certificate's signature verifies under `issuer`'s key and
    /// its issuer name is `issuer`'s subject.
    pub fn is_signed_by(&self, issuer: &CaCertificate) -> bool {
        cert_signed_by(
            &self.cert,
            &issuer.cert.tbs_certificate.subject_public_key_info,
        ) && self.cert.tbs_certificate.issuer == issuer.cert.tbs_certificate.subject
    }
}

/// Check `cert`'s signature with `issuer_spki`.
pub fn cert_signed_by(cert: &Certificate, issuer_spki: &SubjectPublicKeyInfoOwned) -> bool {
    let (Ok(tbs), Ok(spki_der)) = (cert.tbs_certificate.to_der(), issuer_spki.to_der()) else {
        return false;
    };
    let Ok(spki) = SubjectPublicKeyInfoRef::from_der(&spki_der) else {
        return false;
    };
    let Some(sig) = cert.signature.as_bytes() else {
        return false;
    };
    signature::verify_signature(&spki, &cert.signature_algorithm, &tbs, sig).is_ok()
}

/// RFC 7093 method 1: the leftmost 160 bits of SHA-256 of the subjectPublicKey bits.
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    let d = digest::digest(&digest::SHA256, spki.subject_public_key.raw_bytes());
    d.as_ref()[..20].to_vec()
}

/// Where issued certificates point relying parties (CRL DP and AIA).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssuerUrls {
    pub crl: Option<String>,
    pub ocsp: Option<String>,
    pub ca_issuers: Option<String>,
}

/// An issuing CA: its certificate, its ancestors up to the root, and its URLs.
/// It holds no key: the [`Signer`] is passed where signing happens.
#[derive(Debug)]
pub struct Issuer {
    pub certificate: CaCertificate,
    /// The issuer's issuer, and so on up to the root; empty for a root.
    pub parents: Vec<CaCertificate>,
    pub urls: IssuerUrls,
    /// [`Issuer::chain_pem`], made on first use: it goes out with every
    /// certificate issued.
    chain_pem: std::sync::OnceLock<String>,
}

/// A clone makes its chain PEM afresh (from its own certificates, which the
/// caller may change before first use).
impl Clone for Issuer {
    fn clone(&self) -> Self {
        Issuer::new(
            self.certificate.clone(),
            self.parents.clone(),
            self.urls.clone(),
        )
    }
}

impl Issuer {
    pub fn new(certificate: CaCertificate, parents: Vec<CaCertificate>, urls: IssuerUrls) -> Self {
        Issuer {
            certificate,
            parents,
            urls,
            chain_pem: std::sync::OnceLock::new(),
        }
    }

    /// The issuer and its ancestors, issuer first, as PEM blocks one after
    /// the other. Made once, on first use: an `Issuer`'s certificates are
    /// not to be changed once it is made (make a new one).
    pub fn chain_pem(&self) -> &str {
        self.chain_pem.get_or_init(|| {
            std::iter::once(&self.certificate)
                .chain(&self.parents)
                .map(CaCertificate::to_pem)
                .collect()
        })
    }

    /// The issuer and its ancestors, issuer first, as DER.
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        std::iter::once(&self.certificate)
            .chain(&self.parents)
            .map(|c| c.der.clone())
            .collect()
    }

    fn name_constraints(&self) -> Vec<&NameConstraints> {
        std::iter::once(&self.certificate)
            .chain(&self.parents)
            .filter_map(|c| c.name_constraints.as_ref())
            .collect()
    }
}

/// Name constraints for a CA, in the simple form operators write them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameConstraintsSpec {
    pub permitted_dns: Vec<String>,
    pub excluded_dns: Vec<String>,
    pub permitted_ip: Vec<IpNet>,
    pub excluded_ip: Vec<IpNet>,
}

impl NameConstraintsSpec {
    pub fn is_empty(&self) -> bool {
        self.permitted_dns.is_empty()
            && self.excluded_dns.is_empty()
            && self.permitted_ip.is_empty()
            && self.excluded_ip.is_empty()
    }

    fn to_extension_value(&self) -> Result<NameConstraints, IssueError> {
        fn subtrees(
            dns: &[String],
            ip: &[IpNet],
        ) -> Result<Option<Vec<GeneralSubtree>>, IssueError> {
            let mut out = Vec::new();
            for d in dns {
                // RFC 5280 dNSName constraints are plain names: a leading dot or a
                // wildcard means different things to different verifiers, so refuse them.
                if d.contains('*') {
                    return Err(IssueError::Name(NameError::BadDnsName {
                        name: d.chars().take(80).collect(),
                        why: "a name constraint may not contain a wildcard",
                    }));
                }
                crate::names::validate_dns_name(d)?;
                out.push(GeneralSubtree {
                    base: GeneralName::DnsName(Ia5String::new(&d.to_ascii_lowercase())?),
                    minimum: 0,
                    maximum: None,
                });
            }
            for net in ip {
                out.push(GeneralSubtree {
                    base: GeneralName::IpAddress(OctetString::new(net.to_constraint_bytes())?),
                    minimum: 0,
                    maximum: None,
                });
            }
            Ok(if out.is_empty() { None } else { Some(out) })
        }
        Ok(NameConstraints {
            permitted_subtrees: subtrees(&self.permitted_dns, &self.permitted_ip)?,
            excluded_subtrees: subtrees(&self.excluded_dns, &self.excluded_ip)?,
        })
    }
}

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
fn certificate_der(tbs_der: &[u8], algorithm_der: &[u8], signature: &[u8]) -> Vec<u8> {
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

/// Import a CA certificate signed by an external root for a pending key: it must
/// be a CA certificate, carry exactly the pending key, be valid now, and chain
/// through `parents` (its issuer first) to a self-signed root.
pub fn import_signed_ca(
    signed: &[u8],
    pending_spki_der: &[u8],
    parents: &[CaCertificate],
    now: OffsetDateTime,
) -> Result<CaCertificate, CaCertError> {
    let ca = CaCertificate::parse(signed)?;
    let pending = crate::keys::canonical_spki_der(pending_spki_der)?;
    if ca.spki_der() != pending {
        return Err(CaCertError::KeyMismatch);
    }
    if now < ca.not_before || now >= ca.not_after {
        return Err(CaCertError::NotValidNow(
            crate::fmt_time(ca.not_before),
            crate::fmt_time(ca.not_after),
        ));
    }
    let mut child = &ca;
    for parent in parents {
        if !child.is_signed_by(parent) {
            return Err(CaCertError::NotSignedBy(parent.subject().to_string()));
        }
        if now < parent.not_before || now >= parent.not_after {
            return Err(CaCertError::NotValidNow(
                crate::fmt_time(parent.not_before),
                crate::fmt_time(parent.not_after),
            ));
        }
        child = parent;
    }
    let ancestors: Vec<Option<u8>> = parents.iter().map(|p| p.path_len).collect();
    crate::lint::check_path_len(ca.path_len, &ancestors).map_err(CaCertError::PathLen)?;
    if !child.is_signed_by(child) {
        return Err(CaCertError::NoRoot);
    }
    Ok(ca)
}

/// A leaf and the chain above it, for handing to a client.
#[derive(Clone, Debug)]
pub struct CertificateBundle {
    pub leaf_der: Vec<u8>,
    /// Issuer first, root last.
    pub chain_der: Vec<Vec<u8>>,
}

impl CertificateBundle {
    /// Leaf, intermediates and root as one PEM bundle (leaf first).
    pub fn to_pem(&self) -> String {
        self.all_der()
            .iter()
            .map(|d| pem::encode("CERTIFICATE", d))
            .collect()
    }

    /// Leaf, intermediates and root as DER, leaf first.
    pub fn all_der(&self) -> Vec<Vec<u8>> {
        std::iter::once(self.leaf_der.clone())
            .chain(self.chain_der.iter().cloned())
            .collect()
    }
}
