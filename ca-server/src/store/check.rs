//! What `ca-server check` found, whichever store it read: the report and
//! the helpers both stores' checks share (see `redb::check`,
//! `postgres::check`).

use der::Decode;

use super::Verdict;

/// Problems of one kind listed at most; the rest are counted.
const LISTED_PER_KIND: usize = 20;

/// What a check found.
#[derive(Debug)]
pub struct CheckReport {
    /// The store was not closed cleanly and needed recovery (writes in its
    /// journal to redo, or redb's repair): made in memory first (redb).
    pub recovered: bool,
    /// redb's integrity check passed (redb; PostgreSQL checks its own pages).
    pub pages_ok: bool,
    /// PostgreSQL's indexes, checked by its amcheck extension (PostgreSQL).
    pub indexes: IndexCheck,
    pub certificates: u64,
    pub issued: u64,
    pub reserved: u64,
    /// The audit trail's verdict (None when the checks could not get that far).
    pub audit: Option<Verdict>,
    /// Everything found wrong, one line each.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Nothing checked yet.
    pub(crate) fn new(recovered: bool) -> CheckReport {
        CheckReport {
            recovered,
            pages_ok: false,
            indexes: IndexCheck::NotApplicable,
            certificates: 0,
            issued: 0,
            reserved: 0,
            audit: None,
            problems: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        self.problems.is_empty() && matches!(self.audit, Some(Verdict::Ok { .. }))
    }
}

/// A PostgreSQL store's indexes, as its amcheck extension found them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexCheck {
    /// Not a PostgreSQL store.
    NotApplicable,
    /// B-tree indexes checked (their pages, and every row of their tables
    /// looked for in them), and how many of them were found damaged (each
    /// among the problems).
    Checked { indexes: usize, damaged: usize },
    /// Not checked, and why (amcheck not installed, or not permitted).
    Skipped(String),
}

/// Problems of one kind: the first few listed, the rest counted.
pub(crate) struct Kind<'a> {
    problems: &'a mut Vec<String>,
    what: &'static str,
    count: usize,
    /// A query stopped at its limit: there are more than counted.
    capped: bool,
}

impl<'a> Kind<'a> {
    pub(crate) fn new(problems: &'a mut Vec<String>, what: &'static str) -> Kind<'a> {
        Kind {
            problems,
            what,
            count: 0,
            capped: false,
        }
    }

    /// Note that a listing of these stopped at its limit (`rows` of
    /// `limit`): the count is then a lower bound.
    pub(crate) fn listed(&mut self, rows: usize, limit: i64) {
        if i64::try_from(rows).is_ok_and(|r| r >= limit) {
            self.capped = true;
        }
    }

    pub(crate) fn found(&mut self, line: String) {
        self.count += 1;
        if self.count <= LISTED_PER_KIND {
            self.problems.push(line);
        }
    }

    /// The JSON record `what` decoded, or None with its problem found.
    pub(crate) fn decoded<T: serde::de::DeserializeOwned>(
        &mut self,
        what: String,
        json: &[u8],
    ) -> Option<T> {
        match serde_json::from_slice(json) {
            Ok(v) => Some(v),
            Err(e) => {
                self.found(format!("{what}: unreadable: {e}"));
                None
            }
        }
    }
}

impl Drop for Kind<'_> {
    fn drop(&mut self) {
        if self.count > LISTED_PER_KIND {
            self.problems.push(format!(
                "... and {}{} more {}",
                if self.capped { "at least " } else { "" },
                self.count - LISTED_PER_KIND,
                self.what
            ));
        }
    }
}

/// What is wrong with the claim on the serial of certificate `key`, issued
/// by `ca_id`, if anything: `claimed_by` is the CA the serials index names
/// for it (none: no entry).
pub(crate) fn serial_claim_problem(
    key: &str,
    ca_id: &str,
    claimed_by: Option<&str>,
) -> Option<String> {
    match claimed_by {
        Some(ca) if ca == ca_id => None,
        Some(ca) => Some(format!(
            "certificate {key}: its serial is claimed by CA {ca}"
        )),
        None => Some(format!(
            "certificate {key}: its serial is not in the serials index"
        )),
    }
}

/// Why a certificate's DER does not belong to the record of `serial`.
pub(crate) fn der_disagrees(der: &[u8], serial: &str) -> Option<String> {
    let cert = match x509_cert::Certificate::from_der(der) {
        Ok(c) => c,
        Err(e) => return Some(format!("its DER is not a certificate: {e}")),
    };
    let held = ca_core::hex::encode(cert.tbs_certificate.serial_number.as_bytes());
    let trimmed = |s: &str| s.trim_start_matches('0').to_ascii_lowercase();
    (trimmed(&held) != trimmed(serial))
        .then(|| format!("its DER holds serial {held}, not the record's"))
}
