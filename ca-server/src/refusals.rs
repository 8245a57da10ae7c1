//! Audit entries for what is refused at the connection, before any API call
//! exists: TLS handshakes that fail (no client certificate, an unknown
//! issuer, a protocol error, a timeout) and client certificates the server
//! will not serve (revoked, not held as issued, expired, unparsable).
//!
//! Anyone who can reach the port can cause these, so they must not let one
//! client make the server write an entry per packet: each window allows a
//! fixed number of entries, and what is over the budget is counted by kind
//! and address and written as one summary entry when the window ends.
//! Nothing refused goes unrecorded; a flood costs one entry per window.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::audit::{AuditIdentity, AuditOutcome, AuditResult};
use crate::authority::Authority;
use crate::store::AuditDraft;

/// Addresses named one by one in a summary; the rest are totalled.
const SUMMARY_ADDRESSES: usize = 10;

pub struct RefusalAudit {
    window: Duration,
    per_window: u32,
    state: Mutex<State>,
}

struct State {
    window_start: Instant,
    written: u32,
    /// kind → address → refusals not written one by one.
    suppressed: BTreeMap<&'static str, BTreeMap<IpAddr, u64>>,
}

impl RefusalAudit {
    pub fn new(window: Duration, per_window: u32) -> Self {
        RefusalAudit {
            window,
            per_window,
            state: Mutex::new(State {
                window_start: Instant::now(),
                written: 0,
                suppressed: BTreeMap::new(),
            }),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether this refusal gets an entry of its own; if not, it is counted
    /// for the window's summary.
    pub fn admit(&self, kind: &'static str, peer: IpAddr) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.window_start.elapsed() >= self.window {
            s.window_start = Instant::now();
            s.written = 0;
        }
        if s.written < self.per_window {
            s.written += 1;
            return true;
        }
        *s.suppressed
            .entry(kind)
            .or_default()
            .entry(peer)
            .or_default() += 1;
        false
    }

    /// The summary of what was counted and not written since the last call.
    pub fn take_summary(&self) -> Option<String> {
        let suppressed = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut s.suppressed)
        };
        if suppressed.is_empty() {
            return None;
        }
        let mut parts = Vec::new();
        let mut total = 0u64;
        for (kind, by_address) in &suppressed {
            let count: u64 = by_address.values().sum();
            total += count;
            let mut top: Vec<(&IpAddr, &u64)> = by_address.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let mut named: Vec<String> = top
                .iter()
                .take(SUMMARY_ADDRESSES)
                .map(|(ip, n)| format!("{ip} ×{n}"))
                .collect();
            if top.len() > SUMMARY_ADDRESSES {
                named.push(format!("{} more addresses", top.len() - SUMMARY_ADDRESSES));
            }
            parts.push(format!("{kind} {count} ({})", named.join(", ")));
        }
        Some(format!(
            "{total} refusals over the audit budget, not recorded one by one: {}",
            parts.join("; ")
        ))
    }
}

/// Audit one failed TLS handshake on the management API (within the budget).
pub async fn audit_handshake_failure(auth: &Authority, peer: IpAddr, reason: String) {
    if !auth.refusals.admit("TlsHandshake", peer) {
        return;
    }
    let draft = AuditDraft {
        unix: auth.now().unix_timestamp(),
        identity: AuditIdentity {
            subject: String::new(),
            fingerprint: String::new(),
        },
        action: "TlsHandshake".into(),
        target: peer.to_string(),
        outcome: AuditOutcome {
            decision: "denied".into(),
            statement: None,
            reason,
        },
        result: AuditResult {
            status: 0,
            code: "HandshakeFailed".into(),
        },
        certificate: None,
    };
    if let Err(e) = auth.store.append_audit(draft).await {
        tracing::warn!(error = %e, "could not audit a failed handshake");
    }
}

/// Write the summary of the window's refusals over the budget, if any.
pub async fn write_summary(auth: &Authority) {
    let Some(summary) = auth.refusals.take_summary() else {
        return;
    };
    let mut draft = crate::audit::commit_draft("ca-server", "SummariseRefusals", "connections");
    draft.outcome = AuditOutcome {
        decision: "denied".into(),
        statement: None,
        reason: summary,
    };
    if let Err(e) = auth.store.append_audit(draft).await {
        tracing::warn!(error = %e, "could not audit the summary of refusals");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_per_window_and_the_rest_is_summarised() {
        let audit = RefusalAudit::new(Duration::from_millis(200), 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let admitted = (0..10).filter(|_| audit.admit("TlsHandshake", a)).count();
        assert_eq!(admitted, 3);
        assert!(!audit.admit("ClientRefused", b));
        let summary = audit.take_summary().unwrap();
        assert!(summary.starts_with("8 refusals"), "{summary}");
        assert!(
            summary.contains("TlsHandshake 7 (192.0.2.1 ×7)"),
            "{summary}"
        );
        assert!(
            summary.contains("ClientRefused 1 (192.0.2.2 ×1)"),
            "{summary}"
        );
        assert_eq!(audit.take_summary(), None);
        // A new window has a new budget.
        std::thread::sleep(Duration::from_millis(250));
        assert!(audit.admit("TlsHandshake", a));
    }
}
