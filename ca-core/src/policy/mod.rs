//! Access policies, in the spirit of KMS key policies: statements grant or deny
//! actions on CAs to identities taken from client certificates. Deny by default;
//! an explicit deny beats any allow; every decision names the statement that
//! decided it (or says that none allowed it, and why the nearest ones did not).

use std::fmt;
use std::net::IpAddr;

use crate::names::{IpNet, SanEntry};

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
            rfc4514: name.to_string(),
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

/// `*` matches any run of characters (possibly empty); everything else literally, case-insensitively.
fn glob(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let v: Vec<char> = value.to_lowercase().chars().collect();
    // Iterative wildcard match with backtracking to the last star: linear-ish, no recursion.
    let (mut pi, mut vi, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while vi < v.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = vi;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            vi = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Subject pattern match: like [`glob`], but `*` stays inside one attribute
/// value, so `CN=*,O=Example` cannot swallow extra attributes
/// (`CN=x,OU=ops,O=Example`) or multi-valued RDNs (`CN=x+OU=ops,O=Example`).
fn subject_glob(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let v: Vec<char> = value.to_lowercase().chars().collect();
    // matches[j]: the pattern so far matches v[..j]. One pass per pattern char.
    let mut matches = vec![false; v.len() + 1];
    matches[0] = true;
    for pc in p {
        let mut next = vec![false; v.len() + 1];
        if pc == '*' {
            for j in 0..=v.len() {
                next[j] =
                    matches[j] || (j > 0 && next[j - 1] && v[j - 1] != ',' && v[j - 1] != '+');
            }
        } else {
            for j in 1..=v.len() {
                next[j] = matches[j - 1] && v[j - 1] == pc;
            }
        }
        matches = next;
    }
    matches[v.len()]
}

/// DNS pattern match: `*.` stands for exactly one label; otherwise an exact match.
fn name_matches(pattern: &str, name: &SanEntry) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match name {
        // Email names match only email patterns: `user@domain` or `*@domain`.
        SanEntry::Email(e) => {
            let e = e.to_ascii_lowercase();
            match (pattern.rsplit_once('@'), e.rsplit_once('@')) {
                (Some((pu, pd)), Some((u, d))) => (pu == "*" || pu == u) && pd == d,
                _ => false,
            }
        }
        // DNS names match only DNS patterns; `*.` stands for exactly one label.
        SanEntry::Dns(d) => {
            let name = d.to_ascii_lowercase();
            if pattern.contains('@') {
                return false;
            }
            match pattern.strip_prefix("*.") {
                // A wildcard name in the request matches only the same wildcard pattern.
                Some(suffix) => {
                    name == pattern
                        || name.split_once('.').is_some_and(|(label, rest)| {
                            label != "*" && !label.is_empty() && rest == suffix
                        })
                }
                None => name == pattern,
            }
        }
        SanEntry::Ip(_) => false,
    }
}

/// Whether a deny's name pattern covers a requested name. Denies err wide: a
/// pattern `*.x` covers `x` itself and names at any depth below it, and a
/// requested wildcard `*.y` is taken for every name it would certify.
fn deny_name_matches(pattern: &str, name: &SanEntry) -> bool {
    let SanEntry::Dns(requested) = name else {
        return name_matches(pattern, name);
    };
    let pattern = pattern.to_ascii_lowercase();
    if pattern.contains('@') {
        return false;
    }
    let requested = requested.to_ascii_lowercase();
    let (base, wildcard) = match requested.strip_prefix("*.") {
        Some(base) => (base, true),
        None => (requested.as_str(), false),
    };
    let parent = |n: &str| n.split_once('.').map(|(_, rest)| rest.to_string());
    match pattern.strip_prefix("*.") {
        // `*.x`: x and everything below it. A requested `*.y` certifies the
        // labels under y, so it is covered when y is within x, or when x is
        // one of those labels.
        Some(suffix) => {
            within(base, suffix) || (wildcard && parent(suffix).as_deref() == Some(base))
        }
        // An exact name: itself, or a requested wildcard that certifies it.
        None => base == pattern || (wildcard && parent(&pattern).as_deref() == Some(base)),
    }
}

/// `name` is `domain` or a name below it.
fn within(name: &str, domain: &str) -> bool {
    name == domain
        || name
            .strip_suffix(domain)
            .is_some_and(|head| head.ends_with('.'))
}

fn name_allowed(c: &Conditions, name: &SanEntry) -> bool {
    match name {
        SanEntry::Ip(ip) => c.ip_ranges.iter().any(|r| r.contains(ip)),
        other => c.name_patterns.iter().any(|p| name_matches(p, other)),
    }
}

/// Whether a deny statement covers this request. Each dimension a deny names
/// narrows it, and the deny applies when the request touches every named
/// dimension: any requested name in its names or ranges, its profile listed,
/// a validity longer than its maximum. (Revoke scope does not narrow a deny.)
fn deny_covers(c: &Conditions, req: &Request<'_>) -> bool {
    let names_named = !c.name_patterns.is_empty() || !c.ip_ranges.is_empty();
    let denied = |n: &SanEntry| match n {
        SanEntry::Ip(ip) => c.ip_ranges.iter().any(|r| r.contains(ip)),
        other => c.name_patterns.iter().any(|p| deny_name_matches(p, other)),
    };
    // The subject's common names count as requested names: clients that still
    // read the CN would trust them.
    let cn_names: Vec<SanEntry> = req
        .subject
        .map(|s| {
            s.common_names
                .iter()
                .filter_map(|cn| SanEntry::parse(cn).ok())
                .collect()
        })
        .unwrap_or_default();
    let names_hit = !names_named || req.names.iter().chain(&cn_names).any(denied);
    let profile_hit = c.profiles.is_empty()
        || req
            .profile
            .is_some_and(|p| c.profiles.iter().any(|q| q == p));
    let subject_hit = c.subject_patterns.is_empty()
        || req
            .subject
            // A deny errs wide: its `*` spans attributes too.
            .is_some_and(|s| c.subject_patterns.iter().any(|p| glob(p, &s.rfc4514)));
    let validity_hit = match (c.max_validity_days, req.validity_days) {
        (None, _) => true,
        (Some(max), Some(days)) => days > max,
        // Unknown validity: the server's default may exceed it, so the deny holds.
        (Some(_), None) => true,
    };
    names_hit && subject_hit && profile_hit && validity_hit
}

fn san_value_is(name: &SanEntry, value: &str) -> bool {
    match name {
        SanEntry::Ip(ip) => value.parse::<IpAddr>().is_ok_and(|v| v == *ip),
        other => other.value().eq_ignore_ascii_case(value),
    }
}

/// Why a grant's subject limits refuse the requested subject, if they do.
fn subject_failure(c: &Conditions, names_limited: bool, req: &Request<'_>) -> Option<String> {
    let subject = req.subject?;
    if c.subject_patterns
        .iter()
        .any(|p| subject_glob(p, &subject.rfc4514))
    {
        return None;
    }
    let limited = names_limited || !c.subject_patterns.is_empty();
    if !limited || subject.rfc4514.is_empty() {
        return None;
    }
    let cn_is_a_requested_name = subject
        .lone_cn
        .as_deref()
        .is_some_and(|cn| req.names.iter().any(|n| san_value_is(n, cn)));
    if cn_is_a_requested_name {
        return None;
    }
    Some(format!(
        "subject {:?} is not allowed: this grant limits names or subjects, so the subject may only be empty, CN = one of the requested names, or match its subject_patterns",
        subject.rfc4514
    ))
}

/// The caller's SANs of one type (`DNS:`, `email:`, `IP:`, `URI:`), bare.
fn caller_sans<'a>(caller: &'a Caller, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    caller
        .sans
        .iter()
        .filter_map(move |s| s.strip_prefix(prefix))
}

fn principal_matches(p: &Principal, caller: &Caller) -> bool {
    match p {
        Principal::Subject(pat) => glob(pat, &caller.subject),
        Principal::Dns(pat) => {
            caller_sans(caller, "DNS:").any(|d| name_matches(pat, &SanEntry::Dns(d.to_string())))
        }
        Principal::Email(pat) => caller_sans(caller, "email:")
            .any(|e| name_matches(pat, &SanEntry::Email(e.to_string()))),
        Principal::Ip(net) => caller_sans(caller, "IP:")
            .filter_map(|ip| ip.parse::<IpAddr>().ok())
            .any(|ip| net.contains(&ip)),
        Principal::Uri(pat) => caller_sans(caller, "URI:").any(|u| match pat.strip_suffix('*') {
            Some(prefix) => u.starts_with(prefix),
            None => u == pat,
        }),
        Principal::Fingerprint(f) => f.eq_ignore_ascii_case(&caller.fingerprint),
        Principal::Anyone => true,
    }
}

fn ca_matches(cas: &[String], req: &Request<'_>) -> bool {
    cas.iter()
        .any(|c| c == "*" || c == req.ca || req.ca_aliases.iter().any(|a| a == c))
}

/// Why the conditions of a grant do not hold for this request, if they do not.
fn condition_failure(
    action: Action,
    c: &Conditions,
    caller: &Caller,
    req: &Request<'_>,
) -> Option<String> {
    match action {
        Action::Issue => {
            let unlimited = c.name_patterns.is_empty() && c.ip_ranges.is_empty();
            if !unlimited {
                for name in req.names {
                    if !name_allowed(c, name) {
                        return Some(format!("{name} is not among the allowed names"));
                    }
                }
            }
            if let Some(why) = subject_failure(c, !unlimited, req) {
                return Some(why);
            }
            if let Some(profile) = req.profile {
                if !c.profiles.is_empty() && !c.profiles.iter().any(|p| p == profile) {
                    return Some(format!("profile {profile} is not allowed"));
                }
            }
            if let (Some(max), Some(days)) = (c.max_validity_days, req.validity_days) {
                if days > max {
                    return Some(format!("validity {days} days exceeds the allowed {max}"));
                }
            }
            None
        }
        Action::Revoke if c.revoke_scope == RevokeScope::Own => match req.owner_fingerprint {
            Some(owner) if owner.eq_ignore_ascii_case(&caller.fingerprint) => None,
            _ => Some("this grant revokes only the caller's own certificates".into()),
        },
        _ => None,
    }
}

/// Decide whether `caller` may do `action` as `req` describes.
pub fn evaluate(
    statements: &[Statement],
    caller: &Caller,
    action: Action,
    req: &Request<'_>,
) -> Decision {
    let applicable = |s: &&Statement| {
        s.actions.contains(&action)
            && ca_matches(&s.cas, req)
            && s.principals.iter().any(|p| principal_matches(p, caller))
    };
    // An explicit deny wins when its conditions (if any narrow it) hold.
    for s in statements
        .iter()
        .filter(|s| s.effect == Effect::Deny)
        .filter(applicable)
    {
        if deny_covers(&s.conditions, req) {
            return Decision {
                allowed: false,
                statement: Some(s.id.clone()),
                reason: format!("denied by statement {}", s.id),
            };
        }
    }
    let mut nearest = Vec::new();
    for s in statements
        .iter()
        .filter(|s| s.effect == Effect::Allow)
        .filter(applicable)
    {
        match condition_failure(action, &s.conditions, caller, req) {
            None => {
                return Decision {
                    allowed: true,
                    statement: Some(s.id.clone()),
                    reason: format!("allowed by statement {}", s.id),
                }
            }
            Some(why) => nearest.push(format!("{}: {why}", s.id)),
        }
    }
    let reason = if nearest.is_empty() {
        format!(
            "no statement allows {action} on {} for this identity (deny by default)",
            req.ca
        )
    } else {
        format!("no statement allows it: {}", nearest.join("; "))
    };
    Decision {
        allowed: false,
        statement: None,
        reason,
    }
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
mod tests {
    use super::*;

    fn caller(subject: &str, dns: &str, fp: &str) -> Caller {
        Caller {
            subject: subject.into(),
            // Typed, as the server records a client certificate's SANs.
            sans: vec![format!("DNS:{dns}")],
            fingerprint: fp.into(),
        }
    }

    fn allow(
        id: &str,
        principal: Principal,
        actions: &[Action],
        cas: &[&str],
        conditions: Conditions,
    ) -> Statement {
        Statement {
            id: id.into(),
            effect: Effect::Allow,
            principals: vec![principal],
            actions: actions.to_vec(),
            cas: cas.iter().map(|s| s.to_string()).collect(),
            conditions,
        }
    }

    #[test]
    fn glob_and_names() {
        assert!(glob("CN=web-*,O=Example", "CN=web-01,O=Example"));
        assert!(!glob("CN=web-*,O=Example", "CN=db-01,O=Example"));
        assert!(glob("*", ""));
        let dns = |d: &str| SanEntry::Dns(d.into());
        assert!(name_matches(
            "*.svc.example.internal",
            &dns("a.svc.example.internal")
        ));
        assert!(!name_matches(
            "*.svc.example.internal",
            &dns("a.b.svc.example.internal")
        ));
        assert!(!name_matches(
            "*.svc.example.internal",
            &dns("svc.example.internal")
        ));
        assert!(name_matches(
            "*.svc.example.internal",
            &dns("*.svc.example.internal")
        ));
        assert!(name_matches(
            "api.example.internal",
            &dns("API.example.internal")
        ));
        let email = |e: &str| SanEntry::Email(e.into());
        assert!(name_matches(
            "alice@example.internal",
            &email("alice@example.internal")
        ));
        assert!(name_matches(
            "*@example.internal",
            &email("bob@example.internal")
        ));
        // A DNS pattern grants no email names, and an email pattern no DNS names.
        assert!(!name_matches(
            "*.example.internal",
            &email("anyone@host.example.internal")
        ));
        assert!(!name_matches(
            "alice@example.internal",
            &dns("example.internal")
        ));
    }

    fn subject(rfc4514: &str) -> RequestedSubject {
        if rfc4514.is_empty() {
            return RequestedSubject::from_name(&Default::default());
        }
        let name = crate::names::parse_subject(rfc4514).expect("subject parses");
        RequestedSubject::from_name(&name)
    }

    #[test]
    fn name_limited_grants_limit_the_subject_too() {
        let issuer = caller("CN=deployer", "deployer.example.internal", &"b".repeat(64));
        let limited = [allow(
            "svc",
            Principal::Anyone,
            &[Action::Issue],
            &["*"],
            Conditions {
                name_patterns: vec!["*.svc.example.internal".into()],
                ..Default::default()
            },
        )];
        let names = [SanEntry::Dns("web.svc.example.internal".into())];
        let decide = |statements: &[Statement], subj: &RequestedSubject| {
            let req = Request {
                ca: "ca-1",
                names: &names,
                subject: Some(subj),
                ..Default::default()
            };
            evaluate(statements, &issuer, Action::Issue, &req)
        };
        // Allowed: no subject, or a lone CN that is a requested name.
        assert!(decide(&limited, &subject("")).allowed);
        assert!(decide(&limited, &subject("CN=WEB.svc.example.internal")).allowed);
        // Refused: a subject another principal could be matched on.
        for forged in [
            "CN=admin",
            "CN=admin,O=ca-server administrators",
            "CN=web.svc.example.internal,O=ca-server administrators",
            "CN=other.svc.example.internal",
        ] {
            let d = decide(&limited, &subject(forged));
            assert!(!d.allowed, "{forged} was allowed");
            assert!(d.reason.contains("subject"), "{}", d.reason);
        }
        // subject_patterns widen it, exactly as far as they say.
        let patterned = [allow(
            "batch",
            Principal::Anyone,
            &[Action::Issue],
            &["*"],
            Conditions {
                name_patterns: vec!["*.svc.example.internal".into()],
                subject_patterns: vec!["CN=*,OU=batch,O=Example".into()],
                ..Default::default()
            },
        )];
        assert!(decide(&patterned, &subject("CN=job-7,OU=batch,O=Example")).allowed);
        // `*` stays inside one value: no extra attributes, no multi-valued RDN.
        assert!(!decide(&patterned, &subject("CN=m,OU=ops,OU=batch,O=Example")).allowed);
        assert!(!decide(&patterned, &subject("CN=m+OU=ops,OU=batch,O=Example")).allowed);
        // The patterns add to the default, they do not replace it.
        assert!(decide(&patterned, &subject("")).allowed);
        assert!(decide(&patterned, &subject("CN=web.svc.example.internal")).allowed);
        assert!(!decide(&patterned, &subject("CN=job-7,OU=ops,O=Example")).allowed);
        assert!(!decide(&patterned, &subject("CN=admin")).allowed);
        // A grant without name limits keeps allowing any subject.
        let open = [allow(
            "any",
            Principal::Anyone,
            &[Action::Issue],
            &["*"],
            Conditions::default(),
        )];
        assert!(decide(&open, &subject("CN=admin,O=Example")).allowed);
        // A deny naming subjects covers exactly those.
        let mut deny = allow(
            "no-admins",
            Principal::Anyone,
            &[Action::Issue],
            &["*"],
            Conditions {
                subject_patterns: vec!["*O=ca-server administrators*".into()],
                ..Default::default()
            },
        );
        deny.effect = Effect::Deny;
        let with_deny = [deny, open[0].clone()];
        assert!(!decide(&with_deny, &subject("CN=x,O=ca-server administrators")).allowed);
        assert!(decide(&with_deny, &subject("CN=x,O=Example")).allowed);
    }

    #[test]
    fn deny_by_default_and_explicit_deny_wins() {
        let web = caller(
            "CN=web-01,O=Example",
            "web-01.svc.example.internal",
            &"a".repeat(64),
        );
        let names = [SanEntry::Dns("web-01.svc.example.internal".into())];
        let req = Request {
            ca: "ca-1",
            names: &names,
            profile: Some("tls-server"),
            validity_days: Some(30),
            ..Default::default()
        };
        assert!(!evaluate(&[], &web, Action::Issue, &req).allowed);
        let conditions = Conditions {
            name_patterns: vec!["*.svc.example.internal".into()],
            profiles: vec!["tls-server".into()],
            max_validity_days: Some(90),
            ..Default::default()
        };
        let grant = allow(
            "web-issue",
            Principal::Subject("CN=web-*,O=Example".into()),
            &[Action::Issue],
            &["ca-1"],
            conditions,
        );
        let d = evaluate(std::slice::from_ref(&grant), &web, Action::Issue, &req);
        assert!(
            d.allowed && d.statement.as_deref() == Some("web-issue"),
            "{d:?}"
        );
        // Other CA, other action, too long, wrong name: refused with a reason.
        assert!(
            !evaluate(
                std::slice::from_ref(&grant),
                &web,
                Action::Issue,
                &Request {
                    ca: "ca-2",
                    ..req.clone()
                }
            )
            .allowed
        );
        assert!(!evaluate(std::slice::from_ref(&grant), &web, Action::Revoke, &req).allowed);
        let long = evaluate(
            std::slice::from_ref(&grant),
            &web,
            Action::Issue,
            &Request {
                validity_days: Some(91),
                ..req.clone()
            },
        );
        assert!(!long.allowed && long.reason.contains("exceeds"), "{long:?}");
        let other = [SanEntry::Dns("db.example.internal".into())];
        assert!(
            !evaluate(
                std::slice::from_ref(&grant),
                &web,
                Action::Issue,
                &Request {
                    names: &other,
                    ..req.clone()
                }
            )
            .allowed
        );
        let mut deny = allow(
            "no-web",
            Principal::Dns("*.svc.example.internal".into()),
            &[Action::Issue],
            &["*"],
            Conditions::default(),
        );
        deny.effect = Effect::Deny;
        let d = evaluate(&[grant, deny], &web, Action::Issue, &req);
        assert!(
            !d.allowed && d.statement.as_deref() == Some("no-web"),
            "{d:?}"
        );
    }

    #[test]
    fn a_narrowed_deny_cannot_be_bypassed_by_adding_names() {
        let c = caller("CN=svc", "svc.example.internal", &"e".repeat(64));
        let grant = allow(
            "broad",
            Principal::Anyone,
            &[Action::Issue],
            &["*"],
            Conditions::default(),
        );
        let mut deny = allow(
            "no-secret",
            Principal::Anyone,
            &[Action::Issue],
            &["*"],
            Conditions {
                name_patterns: vec!["secret.internal".into()],
                ..Default::default()
            },
        );
        deny.effect = Effect::Deny;
        let names = [
            SanEntry::Dns("secret.internal".into()),
            SanEntry::Dns("x.dev.internal".into()),
        ];
        let req = Request {
            ca: "ca-1",
            names: &names,
            ..Default::default()
        };
        let d = evaluate(&[grant.clone(), deny], &c, Action::Issue, &req);
        assert!(
            !d.allowed && d.statement.as_deref() == Some("no-secret"),
            "{d:?}"
        );
        // A deny of long certificates denies long ones, not short ones.
        let mut long = allow(
            "no-long",
            Principal::Anyone,
            &[Action::Issue],
            &["*"],
            Conditions {
                max_validity_days: Some(30),
                ..Default::default()
            },
        );
        long.effect = Effect::Deny;
        let short = Request {
            ca: "ca-1",
            validity_days: Some(7),
            ..Default::default()
        };
        assert!(evaluate(&[grant.clone(), long.clone()], &c, Action::Issue, &short).allowed);
        let year = Request {
            ca: "ca-1",
            validity_days: Some(365),
            ..Default::default()
        };
        assert!(!evaluate(&[grant, long], &c, Action::Issue, &year).allowed);
    }

    #[test]
    fn revoke_own_versus_any_and_fingerprint_pinning() {
        let fp = "b".repeat(64);
        let ops = caller("CN=ops", "ops.example.internal", &fp);
        let own = allow(
            "revoke-own",
            Principal::Fingerprint(fp.clone()),
            &[Action::Revoke],
            &["*"],
            Conditions::default(),
        );
        let mine = Request {
            ca: "ca-1",
            owner_fingerprint: Some(&fp),
            ..Default::default()
        };
        let other_fp = "c".repeat(64);
        let theirs = Request {
            ca: "ca-1",
            owner_fingerprint: Some(&other_fp),
            ..Default::default()
        };
        assert!(evaluate(std::slice::from_ref(&own), &ops, Action::Revoke, &mine).allowed);
        assert!(!evaluate(std::slice::from_ref(&own), &ops, Action::Revoke, &theirs).allowed);
        let any = allow(
            "revoke-any",
            Principal::Fingerprint(fp.clone()),
            &[Action::Revoke],
            &["*"],
            Conditions {
                revoke_scope: RevokeScope::Any,
                ..Default::default()
            },
        );
        assert!(evaluate(&[any], &ops, Action::Revoke, &theirs).allowed);
        let impostor = caller("CN=ops", "ops.example.internal", &other_fp);
        assert!(!evaluate(&[own], &impostor, Action::Revoke, &mine).allowed);
    }

    #[test]
    fn ip_ranges_and_validation() {
        let c = caller("CN=lb", "lb.example.internal", &"d".repeat(64));
        let grant = allow(
            "lb",
            Principal::Anyone,
            &[Action::Issue],
            &["issuing"],
            Conditions {
                ip_ranges: vec!["10.0.0.0/8".parse().unwrap()],
                ..Default::default()
            },
        );
        let inside = [SanEntry::Ip("10.1.2.3".parse().unwrap())];
        let outside = [SanEntry::Ip("192.0.2.1".parse().unwrap())];
        let issuing = ["issuing".to_string()];
        let by_alias = Request {
            ca: "ca-9",
            ca_aliases: &issuing,
            names: &inside,
            ..Default::default()
        };
        assert!(evaluate(std::slice::from_ref(&grant), &c, Action::Issue, &by_alias).allowed);
        assert!(
            !evaluate(
                std::slice::from_ref(&grant),
                &c,
                Action::Issue,
                &Request {
                    names: &outside,
                    ..by_alias.clone()
                }
            )
            .allowed
        );
        // An IP-only grant does not allow DNS names.
        let dns = [SanEntry::Dns("lb.example.internal".into())];
        assert!(
            !evaluate(
                std::slice::from_ref(&grant),
                &c,
                Action::Issue,
                &Request {
                    names: &dns,
                    ..by_alias
                }
            )
            .allowed
        );
        assert!(grant.validate().is_ok());
        let mut bad = grant.clone();
        bad.id = "bad id!".into();
        assert!(bad.validate().is_err());
        let mut bad = grant;
        bad.conditions.name_patterns = vec!["**bad".into()];
        assert!(bad.validate().is_err());
    }

    fn deny(id: &str, cas: &[&str], conditions: Conditions) -> Statement {
        Statement {
            effect: Effect::Deny,
            ..allow(id, Principal::Anyone, &[Action::Issue], cas, conditions)
        }
    }

    fn issue_any() -> Statement {
        allow(
            "all",
            Principal::Anyone,
            &[Action::Issue],
            &["*"],
            Conditions::default(),
        )
    }

    fn denied(statements: &[Statement], req: &Request<'_>) -> bool {
        let c = caller("CN=svc", "svc.example", &"e".repeat(64));
        !evaluate(statements, &c, Action::Issue, req).allowed
    }

    #[test]
    fn a_deny_on_an_alias_holds_for_the_ca_id_and_the_reverse() {
        let names = [SanEntry::Dns("ok.example".into())];
        let aliases = ["issuing".to_string()];
        let by_alias_name = [
            deny("no-issuing", &["issuing"], Conditions::default()),
            issue_any(),
        ];
        // Named by id: the alias still points at it, so the deny holds.
        let by_id = Request {
            ca: "ca-1",
            ca_aliases: &aliases,
            names: &names,
            ..Default::default()
        };
        assert!(denied(&by_alias_name, &by_id));
        // A deny on the id holds when the CA is reached through its alias.
        let by_id_name = [
            deny("no-ca-1", &["ca-1"], Conditions::default()),
            issue_any(),
        ];
        assert!(denied(&by_id_name, &by_id));
        // Another CA, which no alias names, is not covered.
        let other = Request {
            ca: "ca-2",
            names: &names,
            ..Default::default()
        };
        assert!(!denied(&by_alias_name, &other));
    }

    #[test]
    fn a_wildcard_deny_covers_the_apex_and_every_depth() {
        let statements = [
            deny(
                "secret",
                &["*"],
                Conditions {
                    name_patterns: vec!["*.secret.example".into()],
                    ..Default::default()
                },
            ),
            issue_any(),
        ];
        for name in [
            "secret.example",
            "a.secret.example",
            "a.b.secret.example",
            "*.secret.example",
            "*.a.secret.example",
            "*.example",
            "A.SECRET.EXAMPLE",
        ] {
            let names = [SanEntry::Dns(name.into())];
            let req = Request {
                ca: "ca-1",
                names: &names,
                ..Default::default()
            };
            assert!(denied(&statements, &req), "{name} slipped past the deny");
        }
        for name in ["notsecret.example", "secret.example.org", "*.other.example"] {
            let names = [SanEntry::Dns(name.into())];
            let req = Request {
                ca: "ca-1",
                names: &names,
                ..Default::default()
            };
            assert!(!denied(&statements, &req), "{name} was denied");
        }
        // An exact deny covers a requested wildcard that would certify it.
        let exact = [
            deny(
                "evil",
                &["*"],
                Conditions {
                    name_patterns: vec!["evil.example".into()],
                    ..Default::default()
                },
            ),
            issue_any(),
        ];
        let names = [SanEntry::Dns("*.example".into())];
        let req = Request {
            ca: "ca-1",
            names: &names,
            ..Default::default()
        };
        assert!(denied(&exact, &req));
    }

    #[test]
    fn a_deny_on_names_covers_the_subject_common_name() {
        let statements = [
            deny(
                "evil",
                &["*"],
                Conditions {
                    name_patterns: vec!["evil.example".into()],
                    ..Default::default()
                },
            ),
            issue_any(),
        ];
        let names = [SanEntry::Dns("ok.example".into())];
        let subject = RequestedSubject::from_name(
            &crate::names::parse_subject("CN=evil.example,O=Example").unwrap(),
        );
        let req = Request {
            ca: "ca-1",
            names: &names,
            subject: Some(&subject),
            ..Default::default()
        };
        assert!(denied(&statements, &req));
    }

    #[test]
    fn typed_san_principals_match_their_own_type_one_label_deep() {
        let with = |sans: &[&str]| Caller {
            subject: "CN=x".into(),
            sans: sans.iter().map(|s| s.to_string()).collect(),
            fingerprint: "f".repeat(64),
        };
        let dns = Principal::Dns("*.svc.example".into());
        assert!(principal_matches(&dns, &with(&["DNS:web.svc.example"])));
        assert!(principal_matches(&dns, &with(&["DNS:WEB.svc.example"])));
        // Not two labels deep, not the apex, not another SAN type.
        assert!(!principal_matches(&dns, &with(&["DNS:a.web.svc.example"])));
        assert!(!principal_matches(&dns, &with(&["DNS:svc.example"])));
        assert!(!principal_matches(&dns, &with(&["email:a@b.svc.example"])));
        assert!(!principal_matches(
            &dns,
            &with(&["URI:https://web.svc.example"])
        ));
        let email = Principal::Email("*@ops.example".into());
        assert!(principal_matches(
            &email,
            &with(&["email:alice@ops.example"])
        ));
        assert!(!principal_matches(&email, &with(&["DNS:ops.example"])));
        let ip = Principal::Ip("10.0.0.0/8".parse().unwrap());
        assert!(principal_matches(&ip, &with(&["IP:10.1.2.3"])));
        assert!(!principal_matches(
            &ip,
            &with(&["IP:192.0.2.1", "DNS:10.1.2.3"])
        ));
        let uri = Principal::Uri("spiffe://example/ns/web/*".into());
        assert!(principal_matches(
            &uri,
            &with(&["URI:spiffe://example/ns/web/api"])
        ));
        assert!(!principal_matches(
            &uri,
            &with(&["URI:spiffe://example/ns/db/api"])
        ));
        let exact = Principal::Uri("spiffe://example/ns/web/api".into());
        assert!(principal_matches(
            &exact,
            &with(&["URI:spiffe://example/ns/web/api"])
        ));
        assert!(!principal_matches(
            &exact,
            &with(&["URI:spiffe://example/ns/web/api2"])
        ));
    }

    #[test]
    fn typed_principals_are_validated_when_put() {
        let statement =
            |p: Principal| allow("s", p, &[Action::Read], &["*"], Conditions::default());
        for good in [
            Principal::Dns("host.example".into()),
            Principal::Dns("*.svc.example".into()),
            Principal::Email("*@ops.example".into()),
            Principal::Uri("spiffe://example/ns/*".into()),
        ] {
            assert!(statement(good.clone()).validate().is_ok(), "{good:?}");
        }
        for bad in [
            Principal::Dns("*.*.example".into()),
            Principal::Dns("web-*.example".into()),
            Principal::Dns("".into()),
            Principal::Email("a*@ops.example".into()),
            Principal::Email("ops.example".into()),
            Principal::Uri("no-scheme/*".into()),
            Principal::Uri("spiffe://a/*/b".into()),
        ] {
            assert!(statement(bad.clone()).validate().is_err(), "{bad:?}");
        }
    }
}
