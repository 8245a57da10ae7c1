//! The expiry scan: once per `expiry_scan_interval_secs` (a day), a
//! CertificateApproachingExpiration for every issued, unrevoked certificate
//! within `expiry_days` of its notAfter that has not been renewed, and a
//! CaApproachingExpiration for every active CA within `ca_expiry_days`.
//!
//! A certificate counts as renewed once a live certificate names it as
//! `renewed_from`, or once the same CA has issued a live certificate with
//! the same subject and names that expires later (what ACME clients and
//! `ca-cli renew` do).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::authority::Authority;
use crate::store::{CaStatus, CertRecord, EventDetail, EventRecord, MarkAdvance, StoreError};

use super::*;

/// The mark: Unix seconds of the last scan.
pub const SCAN_MARK: &str = "expiry_scan";
/// Most certificate notices one scan makes (the rest wait for the next day).
const MAX_NOTICES: usize = 100_000;
const DAY: i64 = 86_400;

/// Run until aborted: scan whenever one is due (checked every minute, or
/// every interval if that is shorter).
pub async fn run(auth: Arc<Authority>) {
    let cfg = auth.config.events.clone();
    let tick = Duration::from_secs(cfg.expiry_scan_interval_secs.clamp(1, 60));
    loop {
        let a = auth.clone();
        let scanned = tokio::task::spawn_blocking(move || {
            let events = scan_if_due(&a)?;
            Ok::<_, StoreError>(events)
        })
        .await;
        match scanned {
            Ok(Ok(Some((events, advance, prune)))) => {
                let n = events.len() as u64;
                match auth.store.append_events(events, advance, Some(prune)).await {
                    Ok(_) => {
                        auth.metrics.events_appended(n);
                        auth.events.appended.notify_waiters();
                        tracing::info!(events = n, "expiry scan done");
                    }
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => tracing::warn!(error = %e, "expiry scan: storing its events failed"),
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "expiry scan failed"),
            Err(e) => tracing::warn!(error = %e, "expiry scan task failed"),
        }
        tokio::time::sleep(tick).await;
    }
}

type Scan = (Vec<EventRecord>, MarkAdvance, i64);

/// The events of a scan and the mark move that records it, if one is due.
fn scan_if_due(auth: &Authority) -> Result<Option<Scan>, StoreError> {
    let cfg = &auth.config.events;
    let store = auth.store.as_ref();
    let now = auth.now().unix_timestamp();
    let last = store.event_mark(SCAN_MARK)?;
    let interval = i64::try_from(cfg.expiry_scan_interval_secs).unwrap_or(DAY);
    if let Some(l) = last {
        let l = i64::try_from(l).unwrap_or(i64::MAX);
        if now.saturating_sub(l) < interval {
            return Ok(None);
        }
    }
    let mut events = Vec::new();
    let horizon = now.saturating_add(i64::from(cfg.expiry_days) * DAY);
    let candidates = store.expiring_certs(now, horizon, MAX_NOTICES)?;
    let renewed = renewed_among(store, now, &candidates)?;
    for rec in candidates.iter().filter(|r| !renewed.contains(&r.serial)) {
        events.push(notice(
            CERTIFICATE_APPROACHING_EXPIRATION,
            &rec.ca_id,
            now,
            EventDetail {
                serial: Some(rec.serial.clone()),
                subject: Some(rec.subject.clone()),
                sans: rec.sans.clone(),
                profile: Some(rec.profile.clone()),
                not_after: Some(crate::clock::fmt_unix(rec.not_after)),
                days_to_expiry: Some((rec.not_after - now) / DAY),
                ..Default::default()
            },
        )?);
    }
    let ca_horizon = now.saturating_add(i64::from(cfg.ca_expiry_days) * DAY);
    for ca in store.list_cas()? {
        let Some(not_after) = ca.not_after else {
            continue;
        };
        if ca.status == CaStatus::Active && not_after > now && not_after < ca_horizon {
            events.push(notice(
                CA_APPROACHING_EXPIRATION,
                &ca.id,
                now,
                EventDetail {
                    subject: Some(ca.subject.clone()),
                    not_after: Some(crate::clock::fmt_unix(not_after)),
                    days_to_expiry: Some((not_after - now) / DAY),
                    ..Default::default()
                },
            )?);
        }
    }
    let advance = MarkAdvance {
        name: SCAN_MARK.into(),
        expect: last,
        set: u64::try_from(now).unwrap_or(0),
    };
    let prune = now.saturating_sub(i64::from(cfg.retention_days) * DAY);
    Ok(Some((events, advance, prune)))
}

fn notice(
    event_type: &str,
    ca_id: &str,
    now: i64,
    detail: EventDetail,
) -> Result<EventRecord, StoreError> {
    Ok(EventRecord {
        seq: 0,
        id: new_event_id().map_err(|e| StoreError::Db(format!("random event id: {e}")))?,
        event_type: event_type.to_string(),
        time: crate::clock::fmt_unix(now),
        unix: now,
        ca_id: ca_id.to_string(),
        detail,
        audit_seq: None,
    })
}

/// Who certifies what: a certificate's CA, subject and names.
fn names_of(r: &CertRecord) -> (String, String, Vec<String>) {
    let mut sans = r.sans.clone();
    sans.sort();
    (r.ca_id.clone(), r.subject.clone(), sans)
}

/// Serials among `candidates` that a live certificate has renewed.
fn renewed_among(
    store: &dyn crate::store::Store,
    now: i64,
    candidates: &[CertRecord],
) -> Result<HashSet<String>, StoreError> {
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    let mut latest: HashMap<(String, String, Vec<String>), i64> =
        candidates.iter().map(|r| (names_of(r), i64::MIN)).collect();
    let wanted: HashSet<&str> = candidates.iter().map(|r| r.serial.as_str()).collect();
    // Most live certificates share nothing with a candidate: skip them cheaply.
    let subjects: HashSet<(&str, &str)> = candidates
        .iter()
        .map(|r| (r.ca_id.as_str(), r.subject.as_str()))
        .collect();
    let mut named_as_renewed = HashSet::new();
    store.visit_live_certs(now, &mut |r| {
        if let Some(from) = r.renewed_from.as_deref() {
            if wanted.contains(from) {
                named_as_renewed.insert(from.to_string());
            }
        }
        if !subjects.contains(&(r.ca_id.as_str(), r.subject.as_str())) {
            return;
        }
        if let Some(l) = latest.get_mut(&names_of(r)) {
            *l = (*l).max(r.not_after);
        }
    })?;
    Ok(candidates
        .iter()
        .filter(|r| {
            named_as_renewed.contains(&r.serial)
                || latest.get(&names_of(r)).is_some_and(|l| *l > r.not_after)
        })
        .map(|r| r.serial.clone())
        .collect())
}
