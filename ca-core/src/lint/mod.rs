//! Pre-issuance lint: named rules every to-be-signed certificate must pass
//! before a CA key signs it. A failure refuses issuance with the rule's id.

use const_oid::AssociatedOid;
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::ext::pkix::constraints::name::NameConstraints;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName,
    SubjectKeyIdentifier,
};

use crate::keys::PublicKeyKind;
use crate::names::{validate_dns_name, SanEntry};
use crate::profile::{Profile, ValidityLimits};
use crate::x509_time::from_x509_time;

/// What is being issued: a self-signed root, or a certificate from a profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    Root { path_len: Option<u8> },
    Issued(Profile),
}

impl CertKind {
    /// The profile whose usages apply (a root uses the CA usages).
    pub fn profile(self) -> Profile {
        match self {
            CertKind::Root { path_len } => Profile::SubordinateCa { path_len },
            CertKind::Issued(p) => p,
        }
    }
}

/// What the rules check the certificate against.
#[derive(Clone, Debug)]
pub struct LintContext<'a> {
    pub kind: CertKind,
    pub limits: ValidityLimits,
    /// `None` for a self-signed root.
    pub issuer_ski: Option<&'a [u8]>,
    pub issuer_key: PublicKeyKind,
    pub issuer_not_before: OffsetDateTime,
    pub issuer_not_after: OffsetDateTime,
    /// pathLenConstraint of the issuer and each CA above it, issuer first
    /// (empty for a root being made).
    pub ancestor_path_lens: Vec<Option<u8>>,
    /// Name constraints of the issuer and every CA above it.
    pub name_constraints: Vec<&'a NameConstraints>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintFinding {
    pub rule: &'static str,
    pub message: String,
}

pub(crate) fn describe(findings: &[LintFinding]) -> String {
    findings
        .iter()
        .map(|f| format!("[{}] {}", f.rule, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

type Rule = fn(&Linted<'_>, &LintContext<'_>) -> Result<(), String>;

/// The to-be-signed certificate under lint, with what several rules read
/// (subjectAltName, basicConstraints, the key) decoded once for all of them.
/// Crate-private, its fields set only by `new`: the decoded parts always
/// belong to the certificate the other rules read.
pub(crate) struct Linted<'a> {
    tbs: &'a TbsCertificate,
    san: Result<Option<(bool, SubjectAltName)>, String>,
    basic_constraints: Result<Option<(bool, BasicConstraints)>, String>,
    /// The subjectPublicKeyInfo's DER and what kind of key it holds.
    key: Result<(Vec<u8>, PublicKeyKind), String>,
}

impl<'a> Linted<'a> {
    pub(crate) fn new(tbs: &'a TbsCertificate) -> Self {
        let key = tbs
            .subject_public_key_info
            .to_der()
            .map_err(|e| e.to_string())
            .and_then(|der| {
                let kind = PublicKeyKind::from_spki_der(&der).map_err(|e| e.to_string())?;
                Ok((der, kind))
            });
        Linted {
            tbs,
            san: ext::<SubjectAltName>(tbs),
            basic_constraints: ext::<BasicConstraints>(tbs),
            key,
        }
    }

    fn san(&self) -> Result<Option<(bool, &SubjectAltName)>, String> {
        match &self.san {
            Ok(s) => Ok(s.as_ref().map(|(critical, s)| (*critical, s))),
            Err(e) => Err(e.clone()),
        }
    }

    /// The subjectAltName's names (none without the extension).
    fn sans(&self) -> Result<&[GeneralName], String> {
        Ok(self.san()?.map(|(_, s)| s.0.as_slice()).unwrap_or_default())
    }

    fn basic_constraints(&self) -> Result<Option<(bool, &BasicConstraints)>, String> {
        match &self.basic_constraints {
            Ok(b) => Ok(b.as_ref().map(|(critical, b)| (*critical, b))),
            Err(e) => Err(e.clone()),
        }
    }

    fn key(&self) -> Result<(&[u8], PublicKeyKind), String> {
        match &self.key {
            Ok((der, kind)) => Ok((der, *kind)),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Every rule, by id. Ids are stable: they appear in API errors.
pub(crate) const RULES: &[(&str, Rule)] = &[
    ("version_v3", version_v3),
    ("serial_positive_20_octets", serial_positive_20_octets),
    (
        "signature_algorithm_matches_issuer",
        signature_algorithm_matches_issuer,
    ),
    ("key_allowed", key_allowed),
    ("validity_within_profile", validity_within_profile),
    (
        "server_lifetime_within_ceiling",
        server_lifetime_within_ceiling,
    ),
    ("validity_within_issuer", validity_within_issuer),
    ("no_duplicate_extensions", no_duplicate_extensions),
    (
        "basic_constraints_match_profile",
        basic_constraints_match_profile,
    ),
    ("path_len_within_issuer", path_len_within_issuer),
    ("key_usage_matches_profile", key_usage_matches_profile),
    (
        "ext_key_usage_matches_profile",
        ext_key_usage_matches_profile,
    ),
    (
        "subject_key_identifier_present",
        subject_key_identifier_present,
    ),
    ("aki_matches_issuer_ski", aki_matches_issuer_ski),
    ("subject_well_formed", subject_well_formed),
    ("subject_or_san_present", subject_or_san_present),
    ("san_present_for_server", san_present_for_server),
    ("dns_names_valid", dns_names_valid),
    (
        "names_within_name_constraints",
        names_within_name_constraints,
    ),
    ("common_name_in_sans", common_name_in_sans),
    ("single_common_name", single_common_name),
    ("no_ipv4_mapped_ip", no_ipv4_mapped_ip),
];

/// Run every rule; an empty result means the certificate may be signed.
pub fn lint(tbs: &TbsCertificate, ctx: &LintContext<'_>) -> Vec<LintFinding> {
    let linted = Linted::new(tbs);
    RULES
        .iter()
        .filter_map(|(rule, check)| {
            check(&linted, ctx)
                .err()
                .map(|message| LintFinding { rule, message })
        })
        .collect()
}

fn ext<'a, T: Decode<'a> + AssociatedOid>(
    tbs: &'a TbsCertificate,
) -> Result<Option<(bool, T)>, String> {
    tbs.get::<T>()
        .map_err(|e| format!("extension {} is malformed or repeated: {e}", T::OID))
}

fn version_v3(linted: &Linted<'_>, _: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    if tbs.version == Version::V3 {
        Ok(())
    } else {
        Err("certificates with extensions must be version 3".into())
    }
}

fn serial_positive_20_octets(linted: &Linted<'_>, _: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    let der = tbs.serial_number.to_der().map_err(|e| e.to_string())?;
    // DER INTEGER: tag, one length byte (serials are short), then the content.
    let content = der.get(2..).unwrap_or_default();
    match content.first() {
        None => Err("serial is empty".into()),
        Some(b) if b & 0x80 != 0 => Err("serial is negative".into()),
        _ if content.iter().all(|b| *b == 0) => Err("serial is zero".into()),
        _ if content.len() > 20 => Err(format!(
            "serial is {} octets; at most 20 allowed",
            content.len()
        )),
        _ => Ok(()),
    }
}

fn signature_algorithm_matches_issuer(
    linted: &Linted<'_>,
    ctx: &LintContext<'_>,
) -> Result<(), String> {
    let tbs = linted.tbs;
    let expected = crate::signature::SignatureAlgorithm::default_for(ctx.issuer_key);
    if tbs.signature == expected.identifier() {
        Ok(())
    } else {
        Err(format!(
            "signature algorithm {} does not match the issuer's {} key ({expected:?})",
            tbs.signature.oid, ctx.issuer_key
        ))
    }
}

fn key_allowed(linted: &Linted<'_>, _: &LintContext<'_>) -> Result<(), String> {
    let (der, _) = linted.key()?;
    let spki = spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|e| e.to_string())?;
    crate::weak_keys::refuse_known_weak_key(&spki).map_err(|e| e.to_string())
}

fn validity_within_profile(linted: &Linted<'_>, ctx: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    let nb = from_x509_time(&tbs.validity.not_before);
    let na = from_x509_time(&tbs.validity.not_after);
    if na <= nb {
        return Err("notAfter is not after notBefore".into());
    }
    // Both ends count (RFC 5280 4.1.2.5), as the CA/Browser Forum measures.
    let max = time::Duration::days(i64::from(ctx.limits.max_days));
    if na - nb + time::Duration::SECOND > max {
        return Err(format!(
            "lifetime exceeds the profile's {} days",
            ctx.limits.max_days
        ));
    }
    Ok(())
}

/// A server certificate never outlives the CA/Browser Forum's 398 days, even
/// when the configured limits would allow it.
fn server_lifetime_within_ceiling(
    linted: &Linted<'_>,
    ctx: &LintContext<'_>,
) -> Result<(), String> {
    let tbs = linted.tbs;
    let CertKind::Issued(profile) = ctx.kind else {
        return Ok(());
    };
    let Some(ceiling) = profile.ceiling_days() else {
        return Ok(());
    };
    let nb = from_x509_time(&tbs.validity.not_before);
    let na = from_x509_time(&tbs.validity.not_after);
    if na - nb + time::Duration::SECOND > time::Duration::days(i64::from(ceiling)) {
        return Err(format!(
            "a {} certificate may live at most {ceiling} days (CA/B BR 6.3.2)",
            profile.name()
        ));
    }
    Ok(())
}

fn validity_within_issuer(linted: &Linted<'_>, ctx: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    let nb = from_x509_time(&tbs.validity.not_before);
    let na = from_x509_time(&tbs.validity.not_after);
    if nb < ctx.issuer_not_before || na > ctx.issuer_not_after {
        return Err("validity extends outside the issuer's validity".into());
    }
    Ok(())
}

fn no_duplicate_extensions(linted: &Linted<'_>, _: &LintContext<'_>) -> Result<(), String> {
    let extensions = linted.tbs.extensions.as_deref().unwrap_or_default();
    // A handful of extensions: comparing each with those before it beats hashing.
    for (i, e) in extensions.iter().enumerate() {
        if extensions[..i].iter().any(|seen| seen.extn_id == e.extn_id) {
            return Err(format!("extension {} appears twice", e.extn_id));
        }
    }
    Ok(())
}

fn basic_constraints_match_profile(
    linted: &Linted<'_>,
    ctx: &LintContext<'_>,
) -> Result<(), String> {
    let (critical, bc) = linted
        .basic_constraints()?
        .ok_or("basicConstraints is missing")?;
    if !critical {
        return Err("basicConstraints must be critical".into());
    }
    let (want_ca, want_len) = match ctx.kind {
        CertKind::Root { path_len } | CertKind::Issued(Profile::SubordinateCa { path_len }) => {
            (true, path_len)
        }
        CertKind::Issued(_) => (false, None),
    };
    if bc.ca != want_ca || bc.path_len_constraint != want_len {
        return Err(format!(
            "basicConstraints CA={} pathLen={:?}, profile wants CA={want_ca} pathLen={want_len:?}",
            bc.ca, bc.path_len_constraint
        ));
    }
    Ok(())
}

/// A CA certificate must fit under every pathLenConstraint above it: the CA at
/// distance `d` (the issuer is 0) allows `p` more CAs below it, so it needs
/// `p >= d + 1` and the new CA may promise at most `p - d - 1` below itself.
fn path_len_within_issuer(linted: &Linted<'_>, ctx: &LintContext<'_>) -> Result<(), String> {
    let Some((_, bc)) = linted.basic_constraints()? else {
        return Ok(());
    };
    if !bc.ca || matches!(ctx.kind, CertKind::Root { .. }) {
        return Ok(());
    }
    check_path_len(bc.path_len_constraint, &ctx.ancestor_path_lens)
}

/// Whether a CA certificate with `path_len` fits under `ancestors` (issuer first).
pub(crate) fn check_path_len(path_len: Option<u8>, ancestors: &[Option<u8>]) -> Result<(), String> {
    for (distance, limit) in ancestors.iter().enumerate() {
        let Some(p) = limit.map(usize::from) else {
            continue;
        };
        if p < distance + 1 {
            return Err(format!(
                "the CA {distance} level(s) above allows pathLen {p}: no further CA certificate fits"
            ));
        }
        let room = p - distance - 1;
        match path_len.map(usize::from) {
            Some(n) if n <= room => {}
            other => {
                return Err(format!(
                "pathLen {other:?} must be at most {room} under the CA {distance} level(s) above"
            ))
            }
        }
    }
    Ok(())
}

fn key_usage_matches_profile(linted: &Linted<'_>, ctx: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    let (critical, ku) = ext::<KeyUsage>(tbs)?.ok_or("keyUsage is missing")?;
    if !critical {
        return Err("keyUsage must be critical".into());
    }
    let want = ctx.kind.profile().key_usage(linted.key()?.1);
    if ku != want {
        return Err(format!(
            "keyUsage {:?} differs from the profile's {:?}",
            ku.0, want.0
        ));
    }
    Ok(())
}

fn ext_key_usage_matches_profile(linted: &Linted<'_>, ctx: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    let have = ext::<ExtendedKeyUsage>(tbs)?
        .map(|(_, e)| e.0)
        .unwrap_or_default();
    let want = ctx.kind.profile().extended_key_usages();
    if have != want {
        return Err(format!(
            "extKeyUsage {have:?} differs from the profile's {want:?}"
        ));
    }
    Ok(())
}

fn subject_key_identifier_present(linted: &Linted<'_>, _: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    match ext::<SubjectKeyIdentifier>(tbs)? {
        Some((false, ski)) if !ski.0.as_bytes().is_empty() => Ok(()),
        Some((true, _)) => Err("subjectKeyIdentifier must not be critical".into()),
        _ => Err("subjectKeyIdentifier is missing".into()),
    }
}

fn aki_matches_issuer_ski(linted: &Linted<'_>, ctx: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    let aki = ext::<AuthorityKeyIdentifier>(tbs)?;
    match (ctx.issuer_ski, aki) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err("a self-signed root carries no authorityKeyIdentifier here".into()),
        (Some(_), None) => Err("authorityKeyIdentifier is missing".into()),
        (Some(want), Some((_, aki))) => match aki.key_identifier {
            Some(id) if id.as_bytes() == want => Ok(()),
            _ => Err(
                "authorityKeyIdentifier does not equal the issuer's subjectKeyIdentifier".into(),
            ),
        },
    }
}

fn subject_well_formed(linted: &Linted<'_>, _: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    crate::names::check_subject(&tbs.subject).map_err(|e| e.to_string())
}

fn subject_or_san_present(linted: &Linted<'_>, _: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    let san = linted.san()?;
    match (tbs.subject.0.is_empty(), san) {
        (false, _) => Ok(()),
        (true, Some((true, s))) if !s.0.is_empty() => Ok(()),
        (true, Some(_)) => {
            Err("with an empty subject, subjectAltName must be critical and non-empty".into())
        }
        (true, None) => Err("empty subject and no subjectAltName".into()),
    }
}

fn san_present_for_server(linted: &Linted<'_>, ctx: &LintContext<'_>) -> Result<(), String> {
    if !matches!(ctx.kind, CertKind::Issued(p) if p.requires_server_san()) {
        return Ok(());
    }
    let names = linted.sans()?;
    if names
        .iter()
        .any(|n| matches!(n, GeneralName::DnsName(_) | GeneralName::IpAddress(_)))
    {
        Ok(())
    } else {
        Err("a server certificate needs a DNS or IP subjectAltName".into())
    }
}

fn dns_names_valid(linted: &Linted<'_>, _: &LintContext<'_>) -> Result<(), String> {
    for name in linted.sans()? {
        match &name {
            GeneralName::DnsName(d) => {
                let s = d.to_string();
                match validate_dns_name(&s) {
                    Ok(norm) if norm == s => {}
                    Ok(_) => return Err(format!("DNS name {s:?} is not in lower case")),
                    Err(e) => return Err(e.to_string()),
                }
            }
            GeneralName::IpAddress(ip) if !matches!(ip.as_bytes().len(), 4 | 16) => {
                return Err("IP address SAN is not 4 or 16 octets".into())
            }
            _ => {}
        }
    }
    Ok(())
}

fn names_within_name_constraints(linted: &Linted<'_>, ctx: &LintContext<'_>) -> Result<(), String> {
    // Decoded first, so that a bad subjectAltName is reported here too when
    // there are no constraints, as before. Most CAs have none: then there is
    // nothing to list names for.
    let sans = linted.sans()?;
    if ctx.name_constraints.is_empty() {
        return Ok(());
    }
    let names = crate::verify::nc::tbs_names(&linted.tbs.subject, sans);
    for nc in &ctx.name_constraints {
        crate::verify::nc::check(nc, &names)?;
    }
    Ok(())
}

/// CA/Browser Forum BR 7.1.4.3: a server certificate's common name is one of its
/// SANs, spelled exactly as there (clients that still read the CN must not see a
/// name nobody authorised). Client identities (`CN=Alice Smith`) are free-form.
fn common_name_in_sans(linted: &Linted<'_>, ctx: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    if !matches!(ctx.kind, CertKind::Issued(p) if p.requires_server_san()) {
        return Ok(());
    }
    let entries: Vec<SanEntry> = linted
        .sans()?
        .iter()
        .filter_map(SanEntry::from_general_name)
        .collect();
    let Some(cn) = crate::csr::common_name(&tbs.subject) else {
        return Ok(());
    };
    if entries.is_empty() {
        return Ok(());
    }
    let found = entries.iter().any(|e| match e {
        SanEntry::Dns(d) | SanEntry::Email(d) => *d == cn,
        SanEntry::Ip(ip) => ip.to_string() == cn,
    });
    if found {
        Ok(())
    } else {
        Err(format!(
            "common name {cn:?} is not one of the subjectAltNames"
        ))
    }
}

/// At most one commonName (CA/B BR 7.1.4.3 allows one): a second CN is a name
/// no check looked at, yet some clients read it.
fn single_common_name(linted: &Linted<'_>, _ctx: &LintContext<'_>) -> Result<(), String> {
    let tbs = linted.tbs;
    let count = crate::csr::common_names(&tbs.subject).len();
    if count > 1 {
        return Err(format!(
            "the subject has {count} common names; at most one is allowed"
        ));
    }
    Ok(())
}

/// No IPv4-mapped IPv6 address among the IP SANs: it names an IPv4 host that
/// IPv4 ranges in policies and name constraints would not see.
fn no_ipv4_mapped_ip(linted: &Linted<'_>, _ctx: &LintContext<'_>) -> Result<(), String> {
    for entry in linted
        .sans()?
        .iter()
        .filter_map(SanEntry::from_general_name)
    {
        if let SanEntry::Ip(ip) = entry {
            if crate::names::is_ipv4_mapped(&ip) {
                return Err(format!("IP SAN {ip} is an IPv4-mapped IPv6 address"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
