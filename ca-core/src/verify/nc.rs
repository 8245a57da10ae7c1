//! Name constraints (RFC 5280 4.2.1.10, 6.1.3 (b)/(c)) over DNS names, IP
//! addresses, email addresses and directory names. Name forms this validator does
//! not evaluate (URI, otherName, ...) fail closed when constrained.

use x509_cert::ext::pkix::constraints::name::GeneralSubtrees;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::NameConstraints;

use super::cert::{Cert, AT_EMAIL_ADDRESS};
use super::dn::{attr_string, attrs, normalized_rdns, NormalizedName};
use super::names::{is_valid_dns_name, is_valid_email};

/// Upper bound on (name, subtree) comparisons for one certificate against one
/// constraining CA, so hostile inputs cannot make validation quadratic-slow.
const MAX_COMPARISONS: usize = 250_000;

/// A name of a certificate, as name constraints see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NameRef<'a> {
    Dns(&'a str),
    Ip(&'a [u8]),
    Email(&'a str),
    Dir(NormalizedName),
    /// A name form not evaluated here (its GeneralName kind).
    Other(&'static str),
}

impl NameRef<'_> {
    fn describe(&self) -> String {
        match self {
            NameRef::Dns(d) => format!("DNS:{d}"),
            NameRef::Ip(b) => match super::names::ip_from_bytes(b) {
                Some(ip) => format!("IP:{ip}"),
                None => "IP:(malformed)".into(),
            },
            NameRef::Email(e) => format!("email:{e}"),
            NameRef::Dir(rdns) => format!("dirName with {} RDNs", rdns.len()),
            NameRef::Other(k) => (*k).to_string(),
        }
    }
}

fn kind_of(gn: &GeneralName) -> &'static str {
    match gn {
        GeneralName::OtherName(_) => "otherName",
        GeneralName::Rfc822Name(_) => "rfc822Name",
        GeneralName::DnsName(_) => "dNSName",
        GeneralName::DirectoryName(_) => "directoryName",
        GeneralName::EdiPartyName(_) => "ediPartyName",
        GeneralName::UniformResourceIdentifier(_) => "uniformResourceIdentifier",
        GeneralName::IpAddress(_) => "iPAddress",
        GeneralName::RegisteredId(_) => "registeredID",
    }
}

/// The names of `cert` that constraints apply to: the subject (when not empty),
/// emailAddress attributes of the subject, and every subjectAltName entry.
pub(crate) fn cert_names<'c>(cert: &'c Cert<'_>) -> Vec<NameRef<'c>> {
    let mut out = Vec::new();
    let subject = cert.subject_name();
    if subject.is_none() {
        // Not seen (the walk that read the certificate checks what decoding
        // needs); as a form not evaluated, it fails closed when constrained.
        // The subject's emailAddress attributes go unread with it.
        out.push(NameRef::Other("directoryName"));
        out.push(NameRef::Other("rfc822Name"));
    }
    if let Some(subject) = subject.filter(|s| !s.is_empty()) {
        out.push(NameRef::Dir(normalized_rdns(subject)));
        for v in attrs(subject, AT_EMAIL_ADDRESS) {
            match attr_string(v) {
                Some(s) => out.push(NameRef::Email(s)),
                None => out.push(NameRef::Other("emailAddress (non-string)")),
            }
        }
    }
    if let Some(san) = &cert.ext.subject_alt_name {
        for gn in &san.value {
            out.push(match gn {
                GeneralName::DnsName(d) => NameRef::Dns(d.as_str()),
                GeneralName::Rfc822Name(e) => NameRef::Email(e.as_str()),
                GeneralName::IpAddress(ip) => NameRef::Ip(ip.as_bytes()),
                GeneralName::DirectoryName(n) => NameRef::Dir(normalized_rdns(n)),
                other => NameRef::Other(kind_of(other)),
            });
        }
    }
    out
}

/// The names of a to-be-signed certificate (its subject and decoded SANs) that
/// constraints apply to, as [`cert_names`] gives them for a parsed one, so that
/// pre-issuance lint and the validator judge names with the same matcher.
pub(crate) fn tbs_names<'a>(
    subject: &'a x509_cert::name::Name,
    sans: &'a [GeneralName],
) -> Vec<NameRef<'a>> {
    let mut out = Vec::new();
    if !subject.is_empty() {
        out.push(NameRef::Dir(normalized_rdns(subject)));
        for v in attrs(subject, AT_EMAIL_ADDRESS) {
            match attr_string(v) {
                Some(s) => out.push(NameRef::Email(s)),
                None => out.push(NameRef::Other("emailAddress (non-string)")),
            }
        }
    }
    for gn in sans {
        out.push(match gn {
            GeneralName::DnsName(d) => NameRef::Dns(d.as_str()),
            GeneralName::Rfc822Name(e) => NameRef::Email(e.as_str()),
            GeneralName::IpAddress(ip) => NameRef::Ip(ip.as_bytes()),
            GeneralName::DirectoryName(n) => NameRef::Dir(normalized_rdns(n)),
            other => NameRef::Other(kind_of(other)),
        });
    }
    out
}

/// Check the extension itself is usable (CA/B Forum and RFC 5280 syntax).
pub(crate) fn validate(nc: &NameConstraints) -> Result<(), String> {
    let permitted = nc.permitted_subtrees.as_deref().unwrap_or(&[]);
    let excluded = nc.excluded_subtrees.as_deref().unwrap_or(&[]);
    if permitted.is_empty() && excluded.is_empty() {
        return Err("nameConstraints with neither permitted nor excluded subtrees".into());
    }
    for st in permitted.iter().chain(excluded) {
        match &st.base {
            GeneralName::DnsName(d) => {
                let d = d.as_str();
                // Leading periods and wildcards are not RFC 5280 dNSName constraints.
                if !d.is_empty() && !is_valid_dns_name(d, false) {
                    return Err(format!("malformed dNSName constraint {d:?}"));
                }
            }
            GeneralName::Rfc822Name(e) => {
                let e = e.as_str();
                let ok = if e.contains('@') {
                    is_valid_email(e)
                } else {
                    is_valid_dns_name(e.strip_prefix('.').unwrap_or(e), false)
                };
                if !ok {
                    return Err(format!("malformed rfc822Name constraint {e:?}"));
                }
            }
            GeneralName::IpAddress(ip) => {
                let b = ip.as_bytes();
                if !(b.len() == 8 || b.len() == 32) {
                    return Err(format!("iPAddress constraint of {} octets", b.len()));
                }
                let (_, mask) = b.split_at(b.len() / 2);
                if !mask_is_contiguous(mask) {
                    return Err("iPAddress constraint mask is not a prefix".into());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn mask_is_contiguous(mask: &[u8]) -> bool {
    let mut seen_zero = false;
    for byte in mask {
        for bit in 0..8 {
            let set = byte & (0x80 >> bit) != 0;
            if set && seen_zero {
                return false;
            }
            if !set {
                seen_zero = true;
            }
        }
    }
    true
}

/// Check `names` (of one certificate) against the constraints of one CA.
pub(crate) fn check(nc: &NameConstraints, names: &[NameRef<'_>]) -> Result<(), String> {
    let empty: GeneralSubtrees = Vec::new();
    let permitted = nc.permitted_subtrees.as_ref().unwrap_or(&empty);
    let excluded = nc.excluded_subtrees.as_ref().unwrap_or(&empty);
    let work = names
        .len()
        .saturating_mul(permitted.len().saturating_add(excluded.len()));
    if work > MAX_COMPARISONS {
        return Err(format!(
            "{} names against {} subtrees exceeds the comparison budget",
            names.len(),
            permitted.len() + excluded.len()
        ));
    }
    for name in names {
        for st in excluded {
            match matches(name, &st.base, false) {
                Some(true) => {
                    return Err(format!(
                        "{} is in an excluded subtree ({})",
                        name.describe(),
                        describe_base(&st.base)
                    ))
                }
                Some(false) => {}
                None => {
                    return Err(format!(
                        "{} cannot be evaluated against an excluded {} constraint",
                        name.describe(),
                        kind_of(&st.base)
                    ))
                }
            }
        }
        let mut same_kind = false;
        let mut ok = false;
        for st in permitted {
            match matches(name, &st.base, true) {
                Some(true) => {
                    same_kind = true;
                    ok = true;
                    break;
                }
                Some(false) => {
                    if same_form(name, &st.base) {
                        same_kind = true;
                    }
                }
                None => {
                    return Err(format!(
                        "{} cannot be evaluated against a permitted {} constraint",
                        name.describe(),
                        kind_of(&st.base)
                    ))
                }
            }
        }
        if same_kind && !ok {
            return Err(format!(
                "{} is not in any permitted subtree",
                name.describe()
            ));
        }
    }
    Ok(())
}

fn describe_base(gn: &GeneralName) -> String {
    match gn {
        GeneralName::DnsName(d) => format!("DNS:{}", d.as_str()),
        GeneralName::Rfc822Name(e) => format!("email:{}", e.as_str()),
        GeneralName::IpAddress(ip) => format!("IP range of {} octets", ip.as_bytes().len()),
        other => kind_of(other).to_string(),
    }
}

fn same_form(name: &NameRef<'_>, base: &GeneralName) -> bool {
    matches!(
        (name, base),
        (NameRef::Dns(_), GeneralName::DnsName(_))
            | (NameRef::Email(_), GeneralName::Rfc822Name(_))
            | (NameRef::Dir(_), GeneralName::DirectoryName(_))
    ) || match (name, base) {
        // IPv4 constraints do not constrain IPv6 names and vice versa.
        (NameRef::Ip(n), GeneralName::IpAddress(b)) => b.as_bytes().len() == n.len() * 2,
        _ => false,
    }
}

/// Does `name` fall in subtree `base`? `None`: a name form that cannot be
/// evaluated meets a constraint of the same form. Names of other forms: `Some(false)`.
fn matches(name: &NameRef<'_>, base: &GeneralName, permitted: bool) -> Option<bool> {
    Some(match (name, base) {
        (NameRef::Dns(n), GeneralName::DnsName(b)) => dns_in_subtree(n, b.as_str(), permitted),
        (NameRef::Email(n), GeneralName::Rfc822Name(b)) => email_in_subtree(n, b.as_str()),
        (NameRef::Ip(n), GeneralName::IpAddress(b)) => ip_in_subtree(n, b.as_bytes()),
        (NameRef::Dir(n), GeneralName::DirectoryName(b)) => {
            let base = normalized_rdns(b);
            n.len() >= base.len() && n.iter().zip(&base).all(|(x, y)| x == y)
        }
        (NameRef::Other(kind), b) if *kind == kind_of(b) => return None,
        _ => false,
    })
}

fn dns_within(name: &str, base: &str) -> bool {
    if base.is_empty() {
        return true;
    }
    let name = name.to_ascii_lowercase();
    let base = base.to_ascii_lowercase();
    name == base
        || (name.len() > base.len()
            && name.ends_with(&base)
            && name.as_bytes().get(name.len() - base.len() - 1) == Some(&b'.'))
}

/// A wildcard SAN (`*.X`) stands for names under X: it is permitted only if all of
/// them are, and excluded if any of them could be (CVE-2025-61727).
fn dns_in_subtree(name: &str, base: &str, permitted: bool) -> bool {
    match name.strip_prefix("*.") {
        None => dns_within(name, base),
        Some(parent) => {
            if permitted {
                dns_within(parent, base)
            } else {
                dns_within(parent, base)
                    || (dns_within(base, parent) && !base.eq_ignore_ascii_case(parent))
            }
        }
    }
}

fn email_in_subtree(name: &str, base: &str) -> bool {
    let Some((local, domain)) = name.rsplit_once('@') else {
        return false;
    };
    if let Some((blocal, bdomain)) = base.rsplit_once('@') {
        // A mailbox: the local part is case-sensitive, and `*` is literal.
        local == blocal && domain.eq_ignore_ascii_case(bdomain)
    } else if base.starts_with('.') {
        let d = domain.to_ascii_lowercase();
        d.ends_with(&base.to_ascii_lowercase())
    } else {
        domain.eq_ignore_ascii_case(base)
    }
}

fn ip_in_subtree(name: &[u8], base: &[u8]) -> bool {
    if base.len() != name.len() * 2 {
        return false;
    }
    let (net, mask) = base.split_at(name.len());
    name.iter()
        .zip(net)
        .zip(mask)
        .all(|((n, b), m)| n & m == b & m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::{Ia5String, OctetString};
    use x509_cert::ext::pkix::constraints::name::GeneralSubtree;

    fn dns(s: &str) -> GeneralSubtree {
        GeneralSubtree {
            base: GeneralName::DnsName(Ia5String::new(s).unwrap()),
            minimum: 0,
            maximum: None,
        }
    }
    fn ip(b: &[u8]) -> GeneralSubtree {
        GeneralSubtree {
            base: GeneralName::IpAddress(OctetString::new(b).unwrap()),
            minimum: 0,
            maximum: None,
        }
    }
    fn email(s: &str) -> GeneralSubtree {
        GeneralSubtree {
            base: GeneralName::Rfc822Name(Ia5String::new(s).unwrap()),
            minimum: 0,
            maximum: None,
        }
    }
    fn nc(p: Vec<GeneralSubtree>, e: Vec<GeneralSubtree>) -> NameConstraints {
        NameConstraints {
            permitted_subtrees: (!p.is_empty()).then_some(p),
            excluded_subtrees: (!e.is_empty()).then_some(e),
        }
    }

    #[test]
    fn dns_permitted_and_excluded() {
        let c = nc(vec![dns("example.com")], vec![]);
        assert!(check(&c, &[NameRef::Dns("example.com")]).is_ok());
        assert!(check(&c, &[NameRef::Dns("foo.bar.EXAMPLE.com")]).is_ok());
        assert!(check(&c, &[NameRef::Dns("notexample.com")]).is_err());
        assert!(check(&c, &[NameRef::Dns("not-example.com")]).is_err());
        // Other name forms are unconstrained by a DNS-only constraint.
        assert!(check(&c, &[NameRef::Ip(&[10, 0, 0, 1])]).is_ok());
        let c = nc(vec![dns("example.com")], vec![dns("example.com")]);
        assert!(check(&c, &[NameRef::Dns("example.com")]).is_err());
    }

    #[test]
    fn wildcard_sans_against_constraints() {
        let excl = nc(vec![], vec![dns("bar.example.com")]);
        assert!(check(&excl, &[NameRef::Dns("*.example.com")]).is_err());
        assert!(check(&excl, &[NameRef::Dns("*.other.com")]).is_ok());
        let perm = nc(vec![dns("foo.example.com")], vec![]);
        assert!(check(&perm, &[NameRef::Dns("*.example.com")]).is_err());
        let perm = nc(vec![dns("foo.com")], vec![]);
        assert!(check(&perm, &[NameRef::Dns("*.foo.com")]).is_ok());
    }

    #[test]
    fn ip_ranges() {
        let c = nc(vec![ip(&[192, 0, 2, 0, 255, 255, 255, 0])], vec![]);
        assert!(check(&c, &[NameRef::Ip(&[192, 0, 2, 7])]).is_ok());
        assert!(check(&c, &[NameRef::Ip(&[192, 0, 3, 7])]).is_err());
        // An IPv4 range does not constrain IPv6 names.
        assert!(check(&c, &[NameRef::Ip(&[0; 16])]).is_ok());
        assert!(validate(&nc(vec![ip(&[192, 0, 2, 0, 255, 0, 255, 0])], vec![])).is_err());
        assert!(validate(&nc(vec![ip(&[192, 0, 2, 0])], vec![])).is_err());
    }

    #[test]
    fn email_forms() {
        let c = nc(vec![email("*@example.com")], vec![]);
        assert!(check(&c, &[NameRef::Email("*@example.com")]).is_ok());
        assert!(check(&c, &[NameRef::Email("user@example.com")]).is_err());
        let c = nc(vec![email("example.com")], vec![]);
        assert!(check(&c, &[NameRef::Email("foo@EXAMPLE.com")]).is_ok());
        assert!(check(&c, &[NameRef::Email("foo@sub.example.com")]).is_err());
        let c = nc(vec![email(".example.com")], vec![]);
        assert!(check(&c, &[NameRef::Email("foo@sub.example.com")]).is_ok());
        assert!(validate(&nc(vec![email("invalid@invalid@example.com")], vec![])).is_err());
    }

    #[test]
    fn malformed_constraints_rejected() {
        assert!(validate(&nc(vec![dns("*.example.com")], vec![])).is_err());
        assert!(validate(&nc(vec![dns(".example.com")], vec![])).is_err());
        assert!(validate(&nc(vec![], vec![])).is_err());
        assert!(validate(&nc(vec![dns("")], vec![])).is_ok());
    }

    #[test]
    fn unevaluated_forms_fail_closed() {
        let on = GeneralSubtree {
            base: GeneralName::RegisteredId(const_oid::ObjectIdentifier::new_unwrap("1.2.3")),
            minimum: 0,
            maximum: None,
        };
        let c = nc(vec![], vec![on]);
        assert!(check(&c, &[NameRef::Other("registeredID")]).is_err());
        assert!(check(&c, &[NameRef::Dns("example.com")]).is_ok());
    }
}
