//! The audit trail: an entry as its writer drafts it, the filters of a
//! page, and how verification of the chain ended.

use crate::store::{AuditEntry, StoreError};

/// What the writer of an audit entry knows; the store fills in the sequence
/// number and the hash chain inside the transaction that appends it.
#[derive(Clone, Debug)]
pub struct AuditDraft {
    pub unix: i64,
    pub identity: ca_core::audit_chain::AuditIdentity,
    pub action: String,
    pub target: String,
    pub outcome: ca_core::audit_chain::AuditOutcome,
    pub result: ca_core::audit_chain::AuditResult,
    /// Issuance: the certificate made (serial, SANs, notAfter, TBS hash).
    pub certificate: Option<ca_core::audit_chain::AuditedCertificate>,
}

impl AuditDraft {
    /// The draft in an entry's shape, as entry `seq` after the one whose
    /// hash is `prev_hash`, its own hash left empty (the tests' reference
    /// for what a redo record's audit write encodes).
    #[cfg(test)]
    pub fn entry(&self, seq: u64, prev_hash: String) -> AuditEntry {
        self.clone().into_entry(seq, prev_hash)
    }

    /// [`entry`](Self::entry), the draft's texts moved into it, not copied.
    fn into_entry(self, seq: u64, prev_hash: String) -> AuditEntry {
        AuditEntry {
            seq,
            time: crate::clock::fmt_unix(self.unix),
            unix: self.unix,
            identity: self.identity,
            action: self.action,
            target: self.target,
            outcome: self.outcome,
            result: self.result,
            certificate: self.certificate,
            prev_hash,
            hash: String::new(),
        }
    }

    /// Entry `seq` of the chain, after the one whose hash is `prev_hash`,
    /// hashed.
    pub fn chained(&self, seq: u64, prev_hash: String) -> Result<AuditEntry, StoreError> {
        self.clone().into_chained(seq, prev_hash)
    }

    /// [`chained`](Self::chained) of a draft its owner gives up (the store's
    /// issuance path: no copies of its texts).
    pub fn into_chained(self, seq: u64, prev_hash: String) -> Result<AuditEntry, StoreError> {
        let mut e = self.into_entry(seq, prev_hash);
        e.hash = e
            .compute_hash()
            .map_err(|x| StoreError::Corrupt(x.to_string()))?;
        Ok(e)
    }
}

/// Filters for listing the audit trail.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Matches the subject or the fingerprint exactly.
    pub identity: Option<String>,
    pub action: Option<String>,
    pub limit: usize,
    /// The next sequence number to look at.
    pub cursor: Option<u64>,
}

impl AuditFilter {
    /// Whether an entry passes the time, identity and action filters.
    pub fn matches(&self, e: &AuditEntry) -> bool {
        if self.since.is_some_and(|s| e.unix < s) || self.until.is_some_and(|u| e.unix > u) {
            return false;
        }
        if let Some(id) = &self.identity {
            if &e.identity.subject != id && !e.identity.fingerprint.eq_ignore_ascii_case(id) {
                return false;
            }
        }
        self.action.as_ref().is_none_or(|a| &e.action == a)
    }
}

/// How verification of the audit chain ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `count` entries chained; `digests` signed digests checked, the newest
    /// covering entries up to `covered`.
    Ok {
        count: u64,
        digests: u64,
        covered: u64,
    },
    Broken {
        seq: u64,
        why: String,
    },
}
