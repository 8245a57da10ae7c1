//! Structured explanation of a validation: per certificate, each check made and
//! its outcome, printable for people (`verify` in the CLI, walk-throughs).

use std::borrow::Cow;
use std::fmt;

/// What a check was about; also names the failure in [`super::Reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// DER structure, version, serial number, duplicate extensions, field consistency.
    Encoding,
    /// The subject public key is of a supported kind and size.
    PublicKey,
    /// The issuer's signature over the certificate.
    Signature,
    /// notBefore <= time <= notAfter.
    Validity,
    /// basicConstraints: CA flag on issuers, criticality.
    BasicConstraints,
    /// basicConstraints pathLenConstraint.
    PathLength,
    /// keyUsage: keyCertSign on issuers, requested bits on the leaf, consistency.
    KeyUsage,
    /// extendedKeyUsage on the leaf and issuers.
    ExtendedKeyUsage,
    /// nameConstraints of issuers over the names of the certificates below.
    NameConstraints,
    /// The expected peer name against the leaf's subjectAltName.
    PeerName,
    /// subjectAltName well-formedness.
    SubjectAltName,
    /// Critical extensions this validator does not process.
    CriticalExtensions,
    /// Key identifiers (authority / subject key identifier rules).
    KeyIdentifiers,
    /// Rules of the TLS (CA/Browser Forum) profile.
    TlsProfile,
    /// Revocation against the supplied CRLs.
    Revocation,
    /// Maximum number of intermediates.
    Depth,
}

impl CheckKind {
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Encoding => "encoding",
            CheckKind::PublicKey => "public key",
            CheckKind::Signature => "signature",
            CheckKind::Validity => "validity",
            CheckKind::BasicConstraints => "basic constraints",
            CheckKind::PathLength => "path length",
            CheckKind::KeyUsage => "key usage",
            CheckKind::ExtendedKeyUsage => "extended key usage",
            CheckKind::NameConstraints => "name constraints",
            CheckKind::PeerName => "peer name",
            CheckKind::SubjectAltName => "subject alt name",
            CheckKind::CriticalExtensions => "critical extensions",
            CheckKind::KeyIdentifiers => "key identifiers",
            CheckKind::TlsProfile => "TLS profile",
            CheckKind::Revocation => "revocation",
            CheckKind::Depth => "depth",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One check on one certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub kind: CheckKind,
    pub passed: bool,
    /// Most details are fixed texts, kept without a copy: a validation
    /// records every check it makes.
    pub detail: Cow<'static, str>,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.passed { "✓" } else { "✗" };
        if self.detail.is_empty() {
            write!(f, "{mark} {}", self.kind)
        } else {
            write!(f, "{mark} {}: {}", self.kind, self.detail)
        }
    }
}

/// The place of a certificate in the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Leaf,
    /// 1 is the intermediate that issued the leaf.
    Intermediate(usize),
    TrustAnchor,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Leaf => f.write_str("leaf"),
            Role::Intermediate(n) => write!(f, "intermediate {n}"),
            Role::TrustAnchor => f.write_str("trust anchor"),
        }
    }
}

/// The checks made on one certificate of the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertReport {
    pub role: Role,
    pub subject: String,
    pub checks: Vec<Check>,
    /// Off when only the verdict was asked for: passed checks are then not
    /// recorded (nor their texts made), failed ones still are.
    record_passes: bool,
}

impl CertReport {
    pub(crate) fn new(role: Role, subject: String) -> Self {
        CertReport {
            role,
            subject,
            checks: Vec::new(),
            record_passes: true,
        }
    }

    /// A report that keeps failed checks only ([`super::VerifyOptions::explain`] off).
    pub(crate) fn failures_only(role: Role) -> Self {
        CertReport {
            record_passes: false,
            ..CertReport::new(role, String::new())
        }
    }

    pub(crate) fn pass(&mut self, kind: CheckKind, detail: impl Into<Cow<'static, str>>) {
        if self.record_passes {
            self.checks.push(Check {
                kind,
                passed: true,
                detail: detail.into(),
            });
        }
    }

    /// [`CertReport::pass`] with a detail that is made only if it will be kept.
    pub(crate) fn pass_with(&mut self, kind: CheckKind, detail: impl FnOnce() -> String) {
        if self.record_passes {
            self.pass(kind, detail());
        }
    }

    pub(crate) fn fail(&mut self, kind: CheckKind, detail: impl Into<Cow<'static, str>>) {
        self.checks.push(Check {
            kind,
            passed: false,
            detail: detail.into(),
        });
    }

    /// Did every check pass?
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn first_failure(&self) -> Option<&Check> {
        self.checks.iter().find(|c| !c.passed)
    }
}

impl fmt::Display for CertReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = if self.subject.is_empty() {
            "(empty subject)"
        } else {
            &self.subject
        };
        writeln!(f, "[{}] {}", self.role, subject)?;
        for c in &self.checks {
            writeln!(f, "    {c}")?;
        }
        Ok(())
    }
}

/// Everything checked on a path (leaf first), plus notes from path building.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Explanation {
    pub certs: Vec<CertReport>,
    pub notes: Vec<String>,
}

impl Explanation {
    /// All checks passed on all certificates.
    pub fn passed(&self) -> bool {
        self.certs.iter().all(CertReport::passed)
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.certs {
            write!(f, "{c}")?;
        }
        for n in &self.notes {
            writeln!(f, "  note: {n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_marks_checks() {
        let mut r = CertReport::new(Role::Leaf, "CN=bob.example".into());
        r.pass(
            CheckKind::Signature,
            "by CN=Issuing CA (ECDSA P-256 SHA-256)",
        );
        r.fail(CheckKind::Validity, "expired");
        let text = r.to_string();
        assert!(text.starts_with("[leaf] CN=bob.example"));
        assert!(text.contains("✓ signature: by CN=Issuing CA"));
        assert!(text.contains("✗ validity: expired"));
        assert!(!r.passed());
        assert_eq!(r.first_failure().map(|c| c.kind), Some(CheckKind::Validity));
    }
}
