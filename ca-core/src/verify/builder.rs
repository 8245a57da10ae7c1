//! The path builder: a depth-first search from the leaf over every issuer
//! whose name matches, within fixed budgets, and the checks each complete path
//! gets (per certificate, as issuer, and the path's depth).

use super::cert::{Cert, KU_KEY_CERT_SIGN};
use super::checks::{alg_name, check_aki, check_signature, eku_name, leaf_checks, Date};
use super::pool::Pool;
use super::{
    crl, issuer_keys, nc, CertReport, CheckKind, Explanation, Reason, Role, VerifyOptions,
};
use crate::oids;
use crate::signature::SignatureAlgorithm;

/// Most certificates a path may have (leaf and anchor included).
const MAX_PATH_LEN: usize = 10;
/// Most signature verifications one call may make.
const MAX_SIGNATURE_CHECKS: usize = 100;
/// Most issuer candidates one call may consider.
const MAX_STEPS: usize = 2_000;

pub(super) struct Failure {
    score: usize,
    pub(super) reason: Reason,
    pub(super) explanation: Explanation,
}

pub(super) struct Builder<'o, 'p, 'c> {
    pub(super) opts: &'o VerifyOptions,
    pub(super) now: i64,
    pub(super) certs: Pool<'p, 'c>,
    pub(super) issuer_keys: Option<&'p issuer_keys::IssuerKeys>,
    pub(super) crls: Vec<crl::CallerCrl>,
    /// (issuer, subject) and the outcome of that signature check: a list, at
    /// most `MAX_SIGNATURE_CHECKS` long and nearly always two.
    pub(super) sigs: Vec<((usize, usize), Result<SignatureAlgorithm, String>)>,
    pub(super) sig_checks: usize,
    pub(super) steps: usize,
    pub(super) best: Option<Failure>,
}

impl Builder<'_, '_, '_> {
    fn is_anchor(&self, i: usize) -> bool {
        i >= 1 && i <= self.certs.anchor_count()
    }

    fn record(&mut self, score: usize, reason: Reason, explanation: Explanation) {
        if self.best.as_ref().is_none_or(|b| score > b.score) {
            self.best = Some(Failure {
                score,
                reason,
                explanation,
            });
        }
    }

    /// Depth-first search for a valid path extending `path`.
    pub(super) fn search(&mut self, path: &mut Vec<usize>) -> Option<Explanation> {
        let cur = *path.last()?;
        if path.len() > 1 && self.is_anchor(cur) {
            match self.validate_path(path) {
                Ok(e) => return Some(e),
                Err((reason, e)) => {
                    self.record(1000 + path.len(), reason, e);
                    return None;
                }
            }
        }
        let cur_cert = self.certs.get(cur)?;
        if path.len() >= MAX_PATH_LEN {
            let subject = cur_cert.label();
            self.record(
                path.len(),
                Reason::Check {
                    kind: CheckKind::Depth,
                    subject,
                    detail: format!("no trust anchor within {MAX_PATH_LEN} certificates"),
                },
                Explanation::default(),
            );
            return None;
        }
        let aki = cur_cert
            .ext
            .authority_key_id
            .as_ref()
            .and_then(|a| a.value.key_identifier.as_ref())
            .map(|k| k.as_bytes());
        let mut candidates: Vec<(bool, bool, usize)> = self
            .certs
            .issuers()
            .filter(|(i, c)| !path.contains(i) && c.named_issuer_of(cur_cert))
            .map(|(i, c)| {
                let ski = c.ext.subject_key_id.as_ref().map(|s| s.value);
                let key_mismatch = matches!((aki, ski), (Some(a), Some(s)) if a != s);
                (!self.is_anchor(i), key_mismatch, i)
            })
            .collect();
        // Anchors first, then key-identifier matches: the likeliest short paths.
        candidates.sort();
        if candidates.is_empty() {
            let issuer = cur_cert.issuer_display();
            self.record(
                path.len(),
                Reason::UnknownIssuer(if issuer.is_empty() {
                    "(empty issuer)".into()
                } else {
                    issuer
                }),
                Explanation::default(),
            );
            return None;
        }
        for (_, _, cand) in candidates {
            self.steps += 1;
            if self.steps > MAX_STEPS || self.sig_checks >= MAX_SIGNATURE_CHECKS {
                self.record(
                    2000,
                    Reason::BudgetExhausted(format!(
                        "{} candidate issuers and {} signature checks tried",
                        self.steps, self.sig_checks
                    )),
                    Explanation::default(),
                );
                return None;
            }
            if let Err(e) = self.signature(cand, cur) {
                let subject = self.certs.get(cur).map(|c| c.label()).unwrap_or_default();
                self.record(
                    path.len() + 1,
                    Reason::Check {
                        kind: CheckKind::Signature,
                        subject,
                        detail: e,
                    },
                    Explanation::default(),
                );
                continue;
            }
            path.push(cand);
            if let Some(e) = self.search(path) {
                return Some(e);
            }
            path.pop();
        }
        None
    }

    /// Verify (once) that `issuer` signed `subject`.
    fn signature(&mut self, issuer: usize, subject: usize) -> Result<SignatureAlgorithm, String> {
        if let Some((_, r)) = self.sigs.iter().find(|(k, _)| *k == (issuer, subject)) {
            return r.clone();
        }
        let result = match (self.certs.get(issuer), self.certs.get(subject)) {
            (Some(i), Some(s)) => {
                self.sig_checks += 1;
                // An anchor's key is kept with the anchor; an intermediate's
                // in `issuer_keys`, for the next validation through it, if it
                // decoded (one that did not, or has unused bits, fails as
                // before and takes no room).
                let kept;
                let keys = match self.certs.parsed_keys(issuer) {
                    Some(anchor_keys) => Some(anchor_keys),
                    None => {
                        let key = i
                            .key
                            .is_ok()
                            .then(|| i.spki().subject_public_key.as_bytes())
                            .flatten();
                        kept = self.issuer_keys.zip(key).map(|(keys, key)| keys.get(key));
                        kept.as_deref().map(|k| &k.parsed)
                    }
                };
                check_signature(i, keys, s)
            }
            _ => Err("no such certificate".to_string()),
        };
        self.sigs.push(((issuer, subject), result.clone()));
        result
    }

    /// Validate a complete path (leaf first, anchor last), explaining every check.
    fn validate_path(&mut self, path: &[usize]) -> Result<Explanation, (Reason, Explanation)> {
        let opts = self.opts;
        let last = path.len().saturating_sub(1);
        let mut reports = Vec::with_capacity(path.len());
        for (pos, &idx) in path.iter().enumerate() {
            let Some(c) = self.certs.get(idx) else {
                continue;
            };
            let role = if pos == 0 {
                Role::Leaf
            } else if pos == last {
                Role::TrustAnchor
            } else {
                Role::Intermediate(pos)
            };
            let mut r = if opts.explain {
                CertReport::new(role, c.label())
            } else {
                CertReport::failures_only(role)
            };
            self.common_checks(c, pos == last, &mut r);
            if pos < last {
                let issuer_idx = path.get(pos + 1).copied().unwrap_or(usize::MAX);
                let signed = self.signature(issuer_idx, idx);
                let issuer_label = || {
                    self.certs
                        .get(issuer_idx)
                        .map(|i| i.label())
                        .unwrap_or_default()
                };
                match signed {
                    Ok(alg) => r.pass_with(CheckKind::Signature, || {
                        format!("by {} ({})", issuer_label(), alg_name(alg))
                    }),
                    Err(e) => r.fail(CheckKind::Signature, format!("by {}: {e}", issuer_label())),
                }
            } else {
                r.pass(
                    CheckKind::Signature,
                    "trust anchor: its own signature is not relied on",
                );
            }
            let c = match self.certs.get(idx) {
                Some(c) => c,
                None => continue,
            };
            if pos == 0 {
                leaf_checks(c, opts, &mut r);
            } else {
                self.issuer_checks(path, pos, &mut r);
            }
            if !self.crls.is_empty() && pos < last {
                if let Some(issuer) = path.get(pos + 1).and_then(|i| self.certs.get(*i)) {
                    match crl::check(c, issuer, &self.crls, self.now) {
                        Ok(d) => r.pass(CheckKind::Revocation, d),
                        Err(d) => r.fail(CheckKind::Revocation, d),
                    }
                }
            }
            if r.subject.is_empty() && !r.passed() {
                // Failures name their certificate, explained or not.
                r.subject = c.label();
            }
            reports.push(r);
        }
        if let (Some(max), Some(anchor)) = (opts.max_depth, reports.last_mut()) {
            let depth = path
                .iter()
                .skip(1)
                .take(last.saturating_sub(1))
                .filter(|i| self.certs.get(**i).is_some_and(|c| !c.self_issued))
                .count();
            if depth <= max {
                anchor.pass_with(CheckKind::Depth, || {
                    format!("{depth} intermediate(s), at most {max}")
                });
            } else {
                anchor.fail(
                    CheckKind::Depth,
                    format!("{depth} intermediate(s), more than {max}"),
                );
                if anchor.subject.is_empty() {
                    anchor.subject = path
                        .last()
                        .and_then(|i| self.certs.get(*i))
                        .map(|c| c.label())
                        .unwrap_or_default();
                }
            }
        }
        let explanation = Explanation {
            certs: reports,
            notes: Vec::new(),
        };
        let failure = explanation.certs.iter().find_map(|r| {
            r.first_failure().map(|c| Reason::Check {
                kind: c.kind,
                subject: r.subject.clone(),
                detail: c.detail.to_string(),
            })
        });
        match failure {
            None => Ok(explanation),
            Some(reason) => Err((reason, explanation)),
        }
    }

    /// Checks every certificate in a path gets, whatever its position.
    fn common_checks(&self, c: &Cert<'_>, anchor: bool, r: &mut CertReport) {
        for (kind, detail) in &c.problems {
            r.fail(*kind, detail.clone());
        }
        // Long-trusted roots predate the serial rules (some have serial 0); the
        // trust decision about them was made when they were installed.
        if let (Some(p), false) = (&c.serial_problem, anchor) {
            r.fail(CheckKind::Encoding, p.clone());
        }
        if !c
            .problems
            .iter()
            .any(|(k, _)| matches!(k, CheckKind::Encoding | CheckKind::CriticalExtensions))
        {
            r.pass(
                CheckKind::Encoding,
                "well-formed v3, no unsupported critical extension",
            );
        }
        if let Ok(k) = &c.key {
            r.pass_with(CheckKind::PublicKey, || k.to_string());
        }
        let (from, to) = (Date(c.not_before), Date(c.not_after));
        if self.now < c.not_before {
            r.fail(
                CheckKind::Validity,
                format!("not yet valid ({from} .. {to})"),
            );
        } else if self.now > c.not_after {
            r.fail(CheckKind::Validity, format!("expired ({from} .. {to})"));
        } else {
            r.pass_with(CheckKind::Validity, || format!("valid {from} .. {to}"));
        }
    }

    /// Checks on the certificate at `pos` (> 0) as the issuer of those below it.
    fn issuer_checks(&self, path: &[usize], pos: usize, r: &mut CertReport) {
        let usage = self.opts.usage;
        let is_anchor = pos + 1 == path.len();
        let Some(c) = path.get(pos).and_then(|i| self.certs.get(*i)) else {
            return;
        };
        match &c.ext.basic_constraints {
            Some(bc) if bc.value.ca && bc.critical => r.pass(CheckKind::BasicConstraints, "CA"),
            Some(bc) if bc.value.ca => r.fail(
                CheckKind::BasicConstraints,
                "CA, but basicConstraints is not critical",
            ),
            Some(_) => r.fail(CheckKind::BasicConstraints, "not a CA (cA is false)"),
            None => r.fail(CheckKind::BasicConstraints, "no basicConstraints: not a CA"),
        }
        match &c.ext.key_usage {
            Some(ku) if ku.value & KU_KEY_CERT_SIGN == 0 => {
                r.fail(CheckKind::KeyUsage, "keyUsage lacks keyCertSign")
            }
            Some(_) => r.pass(CheckKind::KeyUsage, "keyCertSign"),
            None => r.pass(CheckKind::KeyUsage, "no keyUsage extension"),
        }
        // Non-self-issued intermediates below this CA (RFC 5280 6.1.4 (l)/(m)).
        let below = path
            .iter()
            .take(pos)
            .skip(1)
            .filter(|i| self.certs.get(**i).is_some_and(|c| !c.self_issued))
            .count();
        if let Some(max) = c
            .ext
            .basic_constraints
            .as_ref()
            .and_then(|bc| bc.value.path_len_constraint)
        {
            if below <= usize::from(max) {
                r.pass_with(CheckKind::PathLength, || {
                    format!("{below} intermediate(s) below, pathLen {max}")
                });
            } else {
                r.fail(
                    CheckKind::PathLength,
                    format!("{below} intermediate(s) below, pathLen {max}"),
                );
            }
        }
        if c.ext.subject_key_id.is_none() {
            r.fail(
                CheckKind::KeyIdentifiers,
                "CA certificate without subjectKeyIdentifier",
            );
        }
        check_aki(c, is_anchor && usage.is_tls(), r);
        if let (Some(eku), Some(want)) = (&c.ext.ext_key_usage, usage.eku()) {
            if is_anchor {
                r.fail(CheckKind::TlsProfile, "trust anchor carries extKeyUsage");
            } else if eku.value.contains(&want) || eku.value.contains(&oids::ANY_EXTENDED_KEY_USAGE)
            {
                r.pass_with(CheckKind::ExtendedKeyUsage, || {
                    format!("allows {}", eku_name(want))
                });
            } else {
                r.fail(
                    CheckKind::ExtendedKeyUsage,
                    format!("CA extKeyUsage does not allow {}", eku_name(want)),
                );
            }
        }
        if let Some(ncx) = &c.ext.name_constraints {
            // RFC 5280 4.2.1.10: conforming CAs MUST mark it critical.
            if !ncx.critical {
                r.fail(
                    CheckKind::NameConstraints,
                    "nameConstraints is not critical",
                );
                return;
            }
            if let Err(e) = nc::validate(&ncx.value) {
                r.fail(CheckKind::NameConstraints, e);
                return;
            }
            let mut checked = 0usize;
            for (below_pos, idx) in path.iter().enumerate().take(pos) {
                let Some(sub) = self.certs.get(*idx) else {
                    continue;
                };
                // Self-issued intermediates are exempt (RFC 5280 6.1.3 (b)).
                if below_pos > 0 && sub.self_issued {
                    continue;
                }
                let names = nc::cert_names(sub);
                if let Err(e) = nc::check(&ncx.value, &names) {
                    r.fail(CheckKind::NameConstraints, format!("{}: {e}", sub.label()));
                    return;
                }
                checked += names.len();
            }
            r.pass_with(CheckKind::NameConstraints, || {
                format!("{checked} name(s) below satisfy them")
            });
        }
    }
}
