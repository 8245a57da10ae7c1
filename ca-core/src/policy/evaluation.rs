//! How a decision is reached: the patterns statements use for names, subjects
//! and principals, the conditions a grant or a deny puts on a request, and
//! [`evaluate`], which weighs every applicable statement.

use std::net::IpAddr;

use super::{
    Action, Caller, Conditions, Decision, Effect, Principal, Request, RevokeScope, Statement,
};
use crate::names::SanEntry;

/// `*` matches any run of characters (possibly empty); everything else literally, case-insensitively.
pub(super) fn glob(pattern: &str, value: &str) -> bool {
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
pub(super) fn name_matches(pattern: &str, name: &SanEntry) -> bool {
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

pub(super) fn principal_matches(p: &Principal, caller: &Caller) -> bool {
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
