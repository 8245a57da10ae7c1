//! Events read off the audit trail: every issuance, revocation and CRL
//! signing has its audit entry committed with it, so the projector turns new
//! entries into events and moves its mark over them in one commit.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::AuditEntry;
use crate::authority::Authority;
use crate::store::{
    issuance_event, AuditFilter, EventDetail, EventRecord, MarkAdvance, Store, StoreError,
};

use super::*;

/// The mark: the last audit sequence number turned into events.
pub const AUDIT_MARK: &str = "audit";
/// Entries read per commit (a page's vectors are made with room for it up
/// front). At 500, each projection's vectors were fresh memory the kernel
/// had to zero (~1% of the server's CPU under load, most of it because the
/// allocator's huge pages were zeroed whole: see `main.rs`).
const PAGE: usize = 100;
/// How long the projector lets commits gather after being woken.
const GATHER: Duration = Duration::from_millis(100);

/// Run until aborted: project whenever something commits (and every second).
pub async fn run(auth: Arc<Authority>) {
    let hub = auth.events.clone();
    loop {
        match project_once(auth.store.as_ref()).await {
            Ok((read, made)) => {
                if made > 0 {
                    auth.metrics.events_appended(made);
                    hub.appended.notify_waiters();
                }
                // A full page: more may be waiting already.
                if read >= PAGE {
                    continue;
                }
            }
            // Another producer moved the mark (a second node): read again.
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "events: reading the audit trail failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        tokio::select! {
            _ = hub.audit_grew.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        // Let a burst of commits gather: fewer, larger projections cost the
        // busy store less than one per commit (events wait at most this).
        tokio::time::sleep(GATHER).await;
    }
}

/// Turn the audit entries after the mark into events; returns how many
/// entries were read and how many events appended. The first run on a store starts at its head (an
/// existing trail's history is not replayed as events); that first mark is
/// written durably (lost, a restart would start again at a later head and
/// skip what came between), the events after it need not be: each comes
/// back the same, id and number, if a crash takes it.
pub async fn project_once(store: &dyn Store) -> Result<(usize, u64), StoreError> {
    let Some(mark) = store.event_mark(AUDIT_MARK)? else {
        let (head, _) = store.audit_head()?;
        let advance = MarkAdvance {
            name: AUDIT_MARK.into(),
            expect: None,
            set: head,
        };
        store.append_events(Vec::new(), advance, None).await?;
        return Ok((0, 0));
    };
    let filter = AuditFilter {
        cursor: Some(mark.saturating_add(1)),
        limit: PAGE,
        ..Default::default()
    };
    let (entries, _) = store.audit_page(&filter)?;
    let Some(last) = entries.last().map(|e| e.seq) else {
        return Ok((0, 0));
    };
    let mut events = Vec::with_capacity(entries.len());
    for e in &entries {
        if let Some(ev) = event_of(store, e)? {
            events.push(ev);
        }
    }
    let n = events.len() as u64;
    let advance = MarkAdvance {
        name: AUDIT_MARK.into(),
        expect: Some(mark),
        set: last,
    };
    store.append_projected_events(events, advance).await?;
    Ok((entries.len(), n))
}

/// The event an audit entry stands for, if any.
fn event_of(store: &dyn Store, e: &AuditEntry) -> Result<Option<EventRecord>, StoreError> {
    if e.result.code != "success" {
        return Ok(None);
    }
    let id = || event_id_of(&e.hash);
    if e.certificate.is_some() {
        return Ok(issuance_event(e, id()));
    }
    let by = Some(e.identity.subject.clone()).filter(|s| !s.is_empty());
    let (event_type, ca_id, detail) = if e.action.ends_with("RevokeCertificate") {
        let Some((ca_id, serial)) = e.target.split_once('/') else {
            return Ok(None);
        };
        let Some(rec) = store.get_cert(ca_id, serial)?.map(|(rec, _)| rec) else {
            return Ok(None);
        };
        let detail = EventDetail {
            serial: Some(serial.to_string()),
            subject: Some(rec.subject.clone()),
            sans: rec.sans.clone(),
            profile: Some(rec.profile.clone()),
            not_after: Some(crate::clock::fmt_unix(rec.not_after)),
            reason: rec.revocation.as_ref().map(|r| r.reason.clone()),
            by,
            ..Default::default()
        };
        (CERTIFICATE_REVOKED, ca_id.to_string(), detail)
    } else if e.action.ends_with("SignCrl") {
        // Target: `CA/crl/NUMBER`.
        let mut parts = e.target.split('/');
        let (Some(ca_id), Some("crl"), Some(number)) = (parts.next(), parts.next(), parts.next())
        else {
            return Ok(None);
        };
        let Ok(number) = number.parse::<u64>() else {
            return Ok(None);
        };
        // The CRL's figures, when the stored one is still this CRL.
        let meta = store.crl_meta(ca_id)?.filter(|m| m.crl_number == number);
        let detail = EventDetail {
            crl_number: Some(number),
            crl_entries: meta.as_ref().map(|m| m.entries),
            next_update: meta.map(|m| crate::clock::fmt_unix(m.next_update)),
            ..Default::default()
        };
        (CRL_PUBLISHED, ca_id.to_string(), detail)
    } else {
        return Ok(None);
    };
    Ok(Some(EventRecord {
        seq: 0,
        id: id(),
        event_type: event_type.to_string(),
        time: e.time.clone(),
        unix: e.unix,
        ca_id,
        detail,
        audit_seq: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditIdentity, AuditOutcome, AuditResult};
    use ca_core::audit_chain::AuditedCertificate;

    fn issuance_entry(seq: u64, hash: &str) -> AuditEntry {
        AuditEntry {
            seq,
            time: "2026-12-07T00:00:00Z".into(),
            unix: 1_796_601_600,
            identity: AuditIdentity {
                subject: "CN=admin".into(),
                fingerprint: "ff".into(),
            },
            action: "acm-pca:IssueCertificate".into(),
            target: "ca-1/0a".into(),
            outcome: AuditOutcome {
                decision: "allowed".into(),
                statement: None,
                reason: String::new(),
            },
            result: AuditResult {
                status: 201,
                code: "success".into(),
            },
            certificate: Some(AuditedCertificate {
                serial: "0a".into(),
                sans: vec!["DNS:a.example".into()],
                not_after: "2027-01-01T00:00:00Z".into(),
                tbs_sha256: "ab".repeat(32),
            }),
            prev_hash: "00".repeat(32),
            hash: hash.into(),
        }
    }

    /// Projected again (after a crash took the first projection), an entry
    /// gives the very same event, id included; another entry another id.
    #[test]
    fn an_entry_projected_twice_gives_the_same_event() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open(dir.path(), "t".into()).expect("open");
        let store = store.as_ref();
        let entry = issuance_entry(7, &"12".repeat(32));
        let first = event_of(store, &entry).expect("event").expect("made");
        let again = event_of(store, &entry).expect("event").expect("made");
        assert_eq!(first, again);
        assert!(
            first.id.starts_with("evt-") && first.id.len() == 36,
            "{}",
            first.id
        );
        let other = event_of(store, &issuance_entry(8, &"34".repeat(32)))
            .expect("event")
            .expect("made");
        assert_ne!(first.id, other.id);
        store.close();
    }
}
