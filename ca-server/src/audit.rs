//! The audit trail (the CloudTrail idea): one entry per management API call —
//! time, identity, action, target, the policy outcome (allowed / denied and
//! why) and the result (success or error code) — in the redb table `audit`
//! (u64 sequence → entry JSON). Entries are hash-chained: each carries the hash
//! of the previous one, and `hash = SHA-256(prev_hash || canonical entry bytes
//! without hash)`. The table `audit_head` keeps the last sequence and hash, so
//! removing the newest entries is detected too.
//!
//! Write path: the entry is appended through the group-commit writer *after*
//! the call has run, as a separate write (the call's own writes happen deep in
//! the authority, several per call for issuance). The HTTP layer answers only
//! once the audit append is durable, and answers 500 if it fails, so a caller
//! never gets a success that is not audited. The price: if the audit write
//! fails after the action committed, the action stands while the caller sees
//! an error (it is logged at error level).

use std::cell::RefCell;

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::store::{StoreError, DB_FILE};

const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
const AUDIT_HEAD: TableDefinition<&str, &[u8]> = TableDefinition::new("audit_head");
// The entry format and its hash chain live in ca-core, so the CLI verifies
// entries fetched over the API with the same code.
pub use ca_core::audit_chain::{
    AuditEntry, AuditIdentity, AuditOutcome, AuditResult, ChainVerifier, GENESIS,
};

/// The policy decisions made while one request runs.
#[derive(Clone, Debug, Default)]
pub struct Decisions {
    pub outcome: Option<AuditOutcome>,
    /// The CA the decision was about (a better target than the path for
    /// requests that name their CA in the body).
    pub ca: Option<String>,
}

tokio::task_local! {
    static DECISIONS: RefCell<Decisions>;
}

/// Run a request's future with a place to record its policy decisions.
pub async fn with_decisions<F: std::future::Future>(f: F) -> (F::Output, Decisions) {
    DECISIONS
        .scope(RefCell::new(Decisions::default()), async move {
            let out = f.await;
            let d = DECISIONS
                .try_with(|d| d.borrow().clone())
                .unwrap_or_default();
            (out, d)
        })
        .await
}

/// Record a decision; a denial is kept over later allows (it decided the call).
pub fn record(allowed: bool, statement: Option<String>, reason: String, ca: &str) {
    let _ = DECISIONS.try_with(|d| {
        let mut d = d.borrow_mut();
        if d.outcome.as_ref().is_some_and(|o| o.decision == "denied") {
            return;
        }
        d.outcome = Some(AuditOutcome {
            decision: if allowed { "allowed" } else { "denied" }.into(),
            statement,
            reason,
        });
        if !ca.is_empty() && ca != "*" {
            d.ca = Some(ca.to_string());
        }
    });
}

/// API action name and target from the method and path (for every request,
/// including those refused before any policy check).
pub fn classify(method: &str, path: &str) -> (String, String) {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let clip = |s: &str| s.chars().take(80).collect::<String>();
    let (action, target) = match (method, segs.as_slice()) {
        (_, ["health"]) => ("Health", String::new()),
        ("GET", ["v1", "cas"]) => ("ListCertificateAuthorities", String::new()),
        ("POST", ["v1", "cas"]) => ("CreateCertificateAuthority", String::new()),
        ("GET", ["v1", "cas", id]) => ("DescribeCertificateAuthority", clip(id)),
        ("PATCH", ["v1", "cas", id]) => ("UpdateCertificateAuthority", clip(id)),
        ("GET", ["v1", "cas", id, "csr"]) => ("GetCertificateAuthorityCsr", clip(id)),
        ("GET", ["v1", "cas", id, "certificate"]) => {
            ("GetCertificateAuthorityCertificate", clip(id))
        }
        ("POST", ["v1", "cas", id, "certificate"]) => {
            ("ImportCertificateAuthorityCertificate", clip(id))
        }
        ("GET", ["v1", "certificates"]) => ("ListCertificates", String::new()),
        ("POST", ["v1", "certificates"]) => ("IssueCertificate", String::new()),
        ("POST", ["v1", "certificates", "request"]) => ("RequestCertificate", String::new()),
        ("GET", ["v1", "certificates", s]) => ("GetCertificate", clip(s)),
        ("POST", ["v1", "certificates", s, "renew"]) => ("RenewCertificate", clip(s)),
        ("POST", ["v1", "certificates", s, "revoke"]) => ("RevokeCertificate", clip(s)),
        ("GET", ["v1", "policies"]) => ("ListPolicies", String::new()),
        ("GET", ["v1", "policies", id]) => ("GetPolicy", clip(id)),
        ("PUT", ["v1", "policies", id]) => ("PutPolicy", clip(id)),
        ("DELETE", ["v1", "policies", id]) => ("DeletePolicy", clip(id)),
        ("GET", ["v1", "audit"]) => ("ListAuditEntries", String::new()),
        ("GET", ["v1", "aliases"]) => ("ListAliases", String::new()),
        ("GET", ["v1", "aliases", a]) => ("GetAlias", clip(a)),
        ("PUT", ["v1", "aliases", a]) => ("PutAlias", clip(a)),
        ("POST", ["v1", "aliases", a, "rotate"]) => ("RotateAlias", clip(a)),
        _ => ("Unknown", clip(path)),
    };
    (action.to_string(), target)
}

/// What the caller of [`append`] knows; the chain fields are filled in here.
#[derive(Clone, Debug)]
pub struct Draft {
    pub unix: i64,
    pub identity: AuditIdentity,
    pub action: String,
    pub target: String,
    pub outcome: AuditOutcome,
    pub result: AuditResult,
}

/// Append one entry inside a write transaction (run through `Store::write`).
pub fn append(txn: &WriteTransaction, d: &Draft) -> Result<AuditEntry, StoreError> {
    let mut t = txn.open_table(AUDIT)?;
    let (seq, prev_hash) = match t.last()? {
        Some((k, v)) => {
            let prev: AuditEntry = serde_json::from_slice(v.value())
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            (k.value().saturating_add(1), prev.hash)
        }
        None => (1, GENESIS.to_string()),
    };
    let mut e = AuditEntry {
        seq,
        time: crate::authority::fmt_unix(d.unix),
        unix: d.unix,
        identity: d.identity.clone(),
        action: d.action.clone(),
        target: d.target.clone(),
        outcome: d.outcome.clone(),
        result: d.result.clone(),
        prev_hash,
        hash: String::new(),
    };
    e.hash = e
        .compute_hash()
        .map_err(|x| StoreError::Corrupt(x.to_string()))?;
    let bytes = serde_json::to_vec(&e).map_err(|x| StoreError::Corrupt(x.to_string()))?;
    t.insert(seq, bytes.as_slice())?;
    let head =
        serde_json::to_vec(&(seq, &e.hash)).map_err(|x| StoreError::Corrupt(x.to_string()))?;
    txn.open_table(AUDIT_HEAD)?
        .insert("head", head.as_slice())?;
    Ok(e)
}

/// Filters for listing.
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

/// Most entries one page scans before returning a cursor.
const MAX_SCAN: usize = 50_000;

/// One page of entries, oldest first, and the cursor of the next page.
pub fn list(
    db: &redb::Database,
    f: &AuditFilter,
) -> Result<(Vec<AuditEntry>, Option<u64>), StoreError> {
    let r = db.begin_read()?;
    let t = match r.open_table(AUDIT) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((vec![], None)),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    let limit = f.limit.max(1);
    for (scanned, item) in t.range(f.cursor.unwrap_or(0)..)?.enumerate() {
        let (k, v) = item?;
        if scanned >= MAX_SCAN {
            return Ok((out, Some(k.value())));
        }
        let e: AuditEntry =
            serde_json::from_slice(v.value()).map_err(|x| StoreError::Corrupt(x.to_string()))?;
        if f.since.is_some_and(|s| e.unix < s) || f.until.is_some_and(|u| e.unix > u) {
            continue;
        }
        if let Some(id) = &f.identity {
            if &e.identity.subject != id && !e.identity.fingerprint.eq_ignore_ascii_case(id) {
                continue;
            }
        }
        if f.action.as_ref().is_some_and(|a| &e.action != a) {
            continue;
        }
        out.push(e);
        if out.len() == limit {
            return Ok((out, Some(k.value().saturating_add(1))));
        }
    }
    Ok((out, None))
}

/// How verification ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok { count: u64 },
    Broken { seq: u64, why: String },
}

/// Verify the chain from the first entry to the recorded head. Reads only;
/// works on a stopped server's data directory.
pub fn verify_dir(dir: &std::path::Path) -> Result<Verdict, StoreError> {
    let db = redb::Builder::new().open_read_only(dir.join(DB_FILE))?;
    let r = db.begin_read()?;
    let t = match r.open_table(AUDIT) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Verdict::Ok { count: 0 }),
        Err(e) => return Err(e.into()),
    };
    let head: Option<(u64, String)> = match r.open_table(AUDIT_HEAD) {
        Ok(h) => match h.get("head")? {
            Some(v) => serde_json::from_slice(v.value()).ok(),
            None => None,
        },
        Err(_) => None,
    };
    let mut chain = ChainVerifier::new();
    for item in t.iter()? {
        let (k, v) = item?;
        let key = k.value();
        let e: AuditEntry = match serde_json::from_slice(v.value()) {
            Ok(e) => e,
            Err(x) => {
                return Ok(Verdict::Broken {
                    seq: key,
                    why: format!("entry does not parse: {x}"),
                })
            }
        };
        if let Err(b) = chain.push(key, &e) {
            return Ok(Verdict::Broken {
                seq: b.seq,
                why: b.why,
            });
        }
    }
    let (count, prev) = (chain.count(), chain.last_hash().to_string());
    match head {
        Some((hseq, hhash)) if hseq != count || hhash != prev => Ok(Verdict::Broken {
            seq: count.saturating_add(1).min(hseq),
            why: format!(
                "the chain ends at entry {count} but the recorded head is entry {hseq} (entries removed from the end?)"
            ),
        }),
        None if count > 0 => Ok(Verdict::Broken {
            seq: 1,
            why: "the audit head record is missing".into(),
        }),
        _ => Ok(Verdict::Ok { count }),
    }
}
