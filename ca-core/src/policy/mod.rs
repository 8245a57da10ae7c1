//! Access policies, in the spirit of KMS key policies: statements grant or deny
//! actions on CAs to identities taken from client certificates. Deny by default;
//! an explicit deny beats any allow; every decision names the statement that
//! decided it (or says that none allowed it, and why the nearest ones did not).

mod evaluation;

use std::fmt;
use std::net::IpAddr;

use crate::names::{IpNet, SanEntry};

pub use evaluation::evaluate;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Create, update and rotate CAs; manage policies.
    Administer,
    Issue,
    Revoke,
    Read,
    Audit,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Administer,
        Action::Issue,
        Action::Revoke,
        Action::Read,
        Action::Audit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Administer => "administer",
            Action::Issue => "issue",
            Action::Revoke => "revoke",
            Action::Read => "read",
            Action::Audit => "audit",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Action {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, PolicyError> {
        Action::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| PolicyError::Invalid(format!("unknown action {s:?}")))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Who a statement applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The client certificate's subject, as an RFC 4514 string; `*` matches any run of characters.
    Subject(String),
    /// A DNS name SAN of the client certificate: exact, or `*.domain` for
    /// exactly one label (the rule name patterns follow).
    Dns(String),
    /// An email SAN: `user@domain` or `*@domain`.
    Email(String),
    /// An IP address SAN within this range (a single address is a /32 or /128).
    Ip(IpNet),
    /// A URI SAN (SPIFFE IDs and the like): exact, or a prefix ending in `*`.
    Uri(String),
    /// SHA-256 fingerprint of the client certificate, lower-case hex (pinning).
    Fingerprint(String),
    /// Every authenticated client.
    Anyone,
}

/// Revocation scope of a revoke grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RevokeScope {
    /// Only certificates the caller itself requested.
    #[default]
    Own,
    Any,
}

/// Limits that an issue (or revoke) grant places on the request.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Conditions {
    /// DNS and email names allowed; `*` stands for exactly one DNS label
    /// (`*.svc.example.internal`). Empty: DNS and email names are not allowed
    /// unless `ip_ranges` is empty too, which means no name limits at all.
    pub name_patterns: Vec<String>,
    pub ip_ranges: Vec<IpNet>,
    /// Subjects allowed besides the default, as RFC 4514 strings where `*`
    /// matches any run of characters within one attribute value (never a `,`
    /// or `+`; in a deny statement it spans attributes, so a deny errs wide):
    /// `CN=*,OU=batch,O=Example`. By default a grant with name limits
    /// allows only an empty subject or a lone CN that is one of the requested
    /// names, so an issuer cannot mint a subject that a `Subject` principal
    /// elsewhere would trust; a grant without name limits allows any subject.
    pub subject_patterns: Vec<String>,
    /// Allowed profile names; empty means any.
    pub profiles: Vec<String>,
    pub max_validity_days: Option<u32>,
    pub revoke_scope: RevokeScope,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub id: String,
    pub effect: Effect,
    pub principals: Vec<Principal>,
    pub actions: Vec<Action>,
    /// CA ids or aliases; `*` means every CA.
    pub cas: Vec<String>,
    pub conditions: Conditions,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("invalid policy: {0}")]
    Invalid(String),
}

impl Statement {
    /// Check a statement before it is stored.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |m: String| {
            Err(PolicyError::Invalid(format!(
                "statement {:?}: {m}",
                self.id
            )))
        };
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad("id must be 1-64 letters, digits, '-' or '_'".into());
        }
        if self.principals.is_empty() || self.actions.is_empty() || self.cas.is_empty() {
            return bad("principals, actions and cas must each name at least one".into());
        }
        for p in &self.conditions.name_patterns {
            let bare = p.strip_prefix("*.").unwrap_or(p);
            let bare = bare.rsplit_once('@').map_or(bare, |(_, d)| d);
            if crate::names::validate_dns_name(bare).is_err() {
                return bad(format!(
                    "name pattern {p:?} is not a DNS name, *.domain or user@domain"
                ));
            }
        }
        for p in &self.conditions.subject_patterns {
            if p.is_empty() || p.len() > 1024 {
                return bad("subject patterns are 1 to 1024 characters".into());
            }
        }
        for p in &self.principals {
            match p {
                Principal::Fingerprint(f)
                    if f.len() != 64 || !f.bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    return bad("fingerprints are 64 hex characters (SHA-256)".into());
                }
                Principal::Dns(d) => {
                    let bare = d.strip_prefix("*.").unwrap_or(d);
                    if crate::names::validate_dns_name(bare).is_err() || bare.contains('*') {
                        return bad(format!(
                            "dns principal {d:?} is not a DNS name or *.domain (one label)"
                        ));
                    }
                }
                Principal::Email(e) => {
                    let ok = e.rsplit_once('@').is_some_and(|(user, domain)| {
                        !user.is_empty()
                            && (user == "*" || !user.contains('*'))
                            && crate::names::validate_dns_name(domain).is_ok()
                    });
                    if !ok {
                        return bad(format!(
                            "email principal {e:?} is not user@domain or *@domain"
                        ));
                    }
                }
                Principal::Uri(u) => {
                    let body = u.strip_suffix('*').unwrap_or(u);
                    let scheme_ok = body.split_once(':').is_some_and(|(scheme, _)| {
                        !scheme.is_empty()
                            && scheme
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                    });
                    if !scheme_ok || body.contains('*') || !u.is_ascii() || u.len() > 1024 {
                        return bad(format!(
                            "uri principal {u:?} is not a URI with a scheme (a trailing * makes it a prefix)"
                        ));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The authenticated caller, from its client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub sans: Vec<String>,
    /// SHA-256 of the client certificate DER, lower-case hex.
    pub fingerprint: String,
}

/// What the caller asks to do.
#[derive(Clone, Debug, Default)]
pub struct Request<'a> {
    /// The CA's id.
    pub ca: &'a str,
    /// Every alias that points at `ca` now: a statement naming one of them is
    /// about this CA, whether the caller named it by alias or by id.
    pub ca_aliases: &'a [String],
    pub names: &'a [SanEntry],
    /// For issuance: the subject asked for (RFC 4514; empty for an empty subject).
    pub subject: Option<&'a RequestedSubject>,
    pub profile: Option<&'a str>,
    pub validity_days: Option<u32>,
    /// For revocation: the fingerprint of the identity that requested the certificate.
    pub owner_fingerprint: Option<&'a str>,
}

/// The subject of a certificate to be issued, as policies see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestedSubject {
    /// RFC 4514 form (as client identities are written), empty if no attributes.
    pub rfc4514: String,
    /// The CN's value when the subject is exactly one attribute, a commonName.
    pub lone_cn: Option<String>,
    /// Every commonName value in the subject: a deny on names covers them too.
    pub common_names: Vec<String>,
}

impl RequestedSubject {
    pub fn from_name(name: &x509_cert::name::Name) -> RequestedSubject {
        let atvs: Vec<_> = name.0.iter().flat_map(|rdn| rdn.0.iter()).collect();
        let lone_cn = match atvs.as_slice() {
            [atv] if atv.oid == crate::oids::AT_COMMON_NAME => crate::csr::common_name(name),
            _ => None,
        };
        let common_names = crate::csr::common_names(name);
        RequestedSubject {
            rfc4514: crate::names::rfc4514(name),
            lone_cn,
            common_names,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The statement that decided, if one did.
    pub statement: Option<String>,
    pub reason: String,
}

/// The caller's IP-shaped names, for callers that want them separately.
pub fn ip_names(names: &[SanEntry]) -> Vec<IpAddr> {
    names
        .iter()
        .filter_map(|n| {
            if let SanEntry::Ip(ip) = n {
                Some(*ip)
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
