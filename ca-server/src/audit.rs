//! The audit trail (the CloudTrail idea): one entry per management API call —
//! time, identity, action, target, the policy outcome (allowed / denied and
//! why) and the result (success or error code). The store keeps the entries
//! hash-chained (`hash = SHA-256(prev_hash || entry without hash)`) with a
//! recorded head, so an altered, removed or reordered entry is found.
//!
//! Write path: a call that changes state hands [`commit_draft`]'s entry to the
//! store operation that makes the change, so both commit in one transaction.
//! Every other call (reads, refusals, failures) is appended by the HTTP layer
//! once the call has run; the call is answered only after its entry is
//! durable. Each request runs in its own task, so a client that hangs up
//! cannot stop either write half-way.

use std::cell::RefCell;

use crate::store::AuditDraft;
// The entry format and its hash chain live in ca-core, so the CLI verifies
// entries fetched over the API with the same code.
pub use ca_core::audit_chain::{
    AuditEntry, AuditIdentity, AuditOutcome, AuditResult, ChainVerifier, GENESIS,
};

/// What is known of one API call while it runs: who, what, the policy
/// decisions made, and whether its entry was already committed with its effect.
#[derive(Clone, Debug, Default)]
pub struct Decisions {
    pub identity: Option<AuditIdentity>,
    pub action: String,
    pub target: String,
    /// The status the call answers with when it succeeds.
    pub success_status: u16,
    pub outcome: Option<AuditOutcome>,
    /// The CA the decision was about (a better target than the path for
    /// requests that name their CA in the body).
    pub ca: Option<String>,
    /// The call's entry committed with its effect.
    pub audited: bool,
}

tokio::task_local! {
    static DECISIONS: RefCell<Decisions>;
}

/// Run a request's future with a place to record its policy decisions.
pub async fn with_call<F: std::future::Future>(call: Decisions, f: F) -> (F::Output, Decisions) {
    DECISIONS
        .scope(RefCell::new(call), async move {
            let out = f.await;
            let d = DECISIONS
                .try_with(|d| d.borrow().clone())
                .unwrap_or_default();
            (out, d)
        })
        .await
}

/// The entry of the running call, as the success it is about to commit, for
/// the store operation that makes the call's change. Outside an API call (the
/// server acting for itself at init or when renewing its TLS certificate) the
/// entry names the internal caller and an `Internal…` action.
pub fn commit_draft(internal_caller: &str, op: &str, target: &str) -> AuditDraft {
    let unix = crate::clock::now().unix_timestamp();
    let from_call = DECISIONS.try_with(|d| {
        let d = d.borrow();
        AuditDraft {
            unix,
            identity: d.identity.clone().unwrap_or(AuditIdentity {
                subject: internal_caller.to_string(),
                fingerprint: String::new(),
            }),
            action: d.action.clone(),
            target: if target.is_empty() {
                d.target.clone()
            } else {
                target.to_string()
            },
            outcome: d.outcome.clone().unwrap_or(AuditOutcome {
                decision: "allowed".into(),
                statement: None,
                reason: "internal call".into(),
            }),
            result: AuditResult {
                status: d.success_status,
                code: "success".into(),
            },
            certificate: None,
        }
    });
    from_call.unwrap_or_else(|_| AuditDraft {
        unix,
        identity: AuditIdentity {
            subject: internal_caller.to_string(),
            fingerprint: String::new(),
        },
        action: format!("Internal{op}"),
        target: target.to_string(),
        outcome: AuditOutcome {
            decision: "allowed".into(),
            statement: None,
            reason: "internal call".into(),
        },
        result: AuditResult {
            status: 0,
            code: "success".into(),
        },
        certificate: None,
    })
}

/// Note that the running call's entry committed with its effect.
pub fn committed() {
    let _ = DECISIONS.try_with(|d| d.borrow_mut().audited = true);
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

/// The status a call answers with when it succeeds (recorded with its
/// change, before the answer exists).
pub fn success_status(method: &str, path: &str) -> u16 {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        ("POST", ["v1", "cas"])
        | ("POST", ["v1", "certificates"])
        | ("POST", ["v1", "certificates", "request"])
        | ("POST", ["v1", "certificates", _, "renew"])
        | ("POST", ["v1", "backups"])
        | ("POST", ["v1", "webhooks"])
        | ("POST", ["v1", "acme", "eab-keys"]) => 201,
        _ => 200,
    }
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
        ("GET", ["v1", "audit", "digests"]) => ("ListAuditDigests", String::new()),
        ("POST", ["v1", "backups"]) => ("CreateBackup", String::new()),
        ("GET", ["v1", "webhooks"]) => ("ListWebhooks", String::new()),
        ("POST", ["v1", "webhooks"]) => ("CreateWebhook", String::new()),
        ("DELETE", ["v1", "webhooks", id]) => ("DeleteWebhook", clip(id)),
        ("GET", ["v1", "events"]) => ("ListEvents", String::new()),
        ("GET", ["v1", "acme", "eab-keys"]) => ("ListAcmeEabKeys", String::new()),
        ("POST", ["v1", "acme", "eab-keys"]) => ("CreateAcmeEabKey", String::new()),
        ("DELETE", ["v1", "acme", "eab-keys", k]) => ("RevokeAcmeEabKey", clip(k)),
        ("GET", ["v1", "acme", "accounts"]) => ("ListAcmeAccounts", String::new()),
        ("GET", ["v1", "acme", "accounts", a, "orders"]) => ("ListAcmeOrders", clip(a)),
        ("GET", ["v1", "openapi.json"]) => ("GetOpenApi", String::new()),
        ("GET", ["v1", "aliases"]) => ("ListAliases", String::new()),
        ("GET", ["v1", "aliases", a]) => ("GetAlias", clip(a)),
        ("PUT", ["v1", "aliases", a]) => ("PutAlias", clip(a)),
        ("POST", ["v1", "aliases", a, "rotate"]) => ("RotateAlias", clip(a)),
        _ => ("Unknown", clip(path)),
    };
    (action.to_string(), target)
}
