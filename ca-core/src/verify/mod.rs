//! Chain validation (RFC 5280 section 6 with the TLS / CA-Browser-Forum profile).
//!
//! [`verify_chain`] builds candidate paths from the leaf to a trust anchor over every
//! issuer whose subject matches (trying key-identifier matches first), verifies
//! each (issuer, certificate) signature at most once, validates each complete path
//! and returns the first valid one. Every check made on the chosen (or best failed)
//! path is recorded in an [`Explanation`].

mod builder;
mod cert;
mod checks;
mod crl;
#[cfg(test)]
mod decoding_tests;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod differential;
mod dn;
mod explain;
mod ext_shape;
mod issuer_keys;
mod lean;
mod lean_shape;
mod names;
pub(crate) mod nc;
mod options;
mod pool;
#[cfg(test)]
mod tests;

use crate::signature::ParsedKeys;
use builder::Builder;
use cert::Cert;
pub use explain::{CertReport, Check, CheckKind, Explanation, Role};
pub use options::{
    KeyUsageBits, PeerName, Reason, Usage, VerifiedPath, VerifyError, VerifyOptions,
};
use pool::Pool;

/// Validate `leaf_der` up to one of `trust_anchors`, possibly through some of
/// `intermediates` (in any order, possibly irrelevant), under `opts`.
///
/// To validate many chains against the same anchors, decode them once with
/// [`TrustAnchors::new`] and call [`TrustAnchors::verify`].
pub fn verify_chain<I: AsRef<[u8]>, A: AsRef<[u8]>>(
    leaf_der: &[u8],
    intermediates: &[I],
    trust_anchors: &[A],
    opts: &VerifyOptions,
) -> Result<VerifiedPath, VerifyError> {
    let mut anchors = TrustAnchors::new(trust_anchors);
    // Used once: keeping keys for a next validation would only cost.
    anchors.issuer_keys = None;
    anchors.verify(leaf_der, intermediates, opts)
}

/// Trust anchors decoded once, to validate any number of chains against
/// (from any number of threads). Each anchor's public key is also parsed once
/// per signature algorithm it is used with, on first use, and so are the keys
/// of the last few intermediates validated through (`issuer_keys`).
pub struct TrustAnchors<'a> {
    anchors: Vec<Anchor<'a>>,
    /// Every distinct anchor given, decodable or not: an intermediate equal to
    /// one of them adds nothing.
    given: Vec<&'a [u8]>,
    /// Anchors that did not decode, noted in every explanation.
    notes: Vec<String>,
    /// Intermediates' keys kept parsed from one validation to the next.
    issuer_keys: Option<issuer_keys::IssuerKeys>,
}

struct Anchor<'a> {
    cert: Cert<'a>,
    keys: ParsedKeys,
}

impl<'a> TrustAnchors<'a> {
    /// Decode `ders`; duplicates count once, and ones that do not decode are
    /// left out (each validation's explanation notes them).
    pub fn new<A: AsRef<[u8]>>(ders: &'a [A]) -> Self {
        let mut given: Vec<&'a [u8]> = Vec::with_capacity(ders.len());
        let mut anchors = Vec::with_capacity(ders.len());
        let mut notes = Vec::new();
        for der in ders.iter().map(|d| d.as_ref()) {
            if given.contains(&der) {
                continue;
            }
            given.push(der);
            match Cert::parse(der) {
                Ok(cert) => anchors.push(Anchor {
                    cert,
                    keys: ParsedKeys::default(),
                }),
                Err(e) => notes.push(format!("ignored a trust anchor: {e}")),
            }
        }
        TrustAnchors {
            anchors,
            given,
            notes,
            issuer_keys: Some(Default::default()),
        }
    }

    /// How many distinct anchors decoded.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether no anchor decoded (every validation then fails).
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// Validate `leaf_der` up to one of these anchors, possibly through some of
    /// `intermediates` (in any order, possibly irrelevant), under `opts`.
    pub fn verify<I: AsRef<[u8]>>(
        &self,
        leaf_der: &[u8],
        intermediates: &[I],
        opts: &VerifyOptions,
    ) -> Result<VerifiedPath, VerifyError> {
        let leaf = Cert::parse(leaf_der).map_err(|e| VerifyError {
            reason: Reason::MalformedLeaf(e),
            explanation: Explanation::default(),
        })?;
        let mut notes = self.notes.clone();
        let mut certs = Vec::with_capacity(1 + intermediates.len());
        certs.push(leaf);
        // An anchor that is the leaf itself is not its own issuer.
        let (before, after) = match self.anchors.iter().position(|a| a.cert.der == leaf_der) {
            Some(i) => self.anchors.split_at(i),
            None => (self.anchors.as_slice(), &[][..]),
        };
        let anchors = [before, after.get(1..).unwrap_or_default()];
        for (i, der) in intermediates.iter().map(|d| d.as_ref()).enumerate() {
            let repeated = || intermediates.iter().take(i).any(|d| d.as_ref() == der);
            if der == leaf_der || self.given.contains(&der) || repeated() {
                continue;
            }
            match Cert::parse(der) {
                Ok(c) => certs.push(c),
                Err(e) => notes.push(format!("ignored an intermediate: {e}")),
            }
        }

        let mut crls = Vec::new();
        for der in &opts.crls {
            match crl::CallerCrl::parse(der) {
                Ok(c) => crls.push(c),
                Err(e) => {
                    // An unreadable CRL might have revoked something: fail closed.
                    return Err(VerifyError {
                        reason: Reason::Check {
                            kind: CheckKind::Revocation,
                            subject: String::new(),
                            detail: e,
                        },
                        explanation: Explanation::default(),
                    });
                }
            }
        }

        let mut b = Builder {
            opts,
            now: opts.time.unix_timestamp(),
            certs: Pool { certs, anchors },
            issuer_keys: self.issuer_keys.as_ref(),
            crls,
            sigs: Vec::new(),
            sig_checks: 0,
            steps: 0,
            best: None,
        };
        let mut path = vec![0usize];
        match b.search(&mut path) {
            Some(mut explanation) => {
                explanation.notes.extend(notes);
                Ok(VerifiedPath {
                    chain: path
                        .iter()
                        .filter_map(|i| b.certs.get(*i))
                        .map(|c| c.der.to_vec())
                        .collect(),
                    explanation,
                })
            }
            None => {
                let (reason, mut explanation) = match b.best.take() {
                    Some(f) => (f.reason, f.explanation),
                    None => (
                        Reason::UnknownIssuer(
                            b.certs.get(0).map(|c| c.label()).unwrap_or_default(),
                        ),
                        Explanation::default(),
                    ),
                };
                explanation.notes.extend(notes);
                Err(VerifyError {
                    reason,
                    explanation,
                })
            }
        }
    }
}
