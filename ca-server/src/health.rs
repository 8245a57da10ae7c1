//! What `/health` checks, on both listeners: the store takes writes, every
//! active CA's key can sign (a software key opens; a token key's token is
//! connected), every CA's CRL is younger than its nextUpdate, and no active CA
//! expires within `health.ca_expiry_horizon_days`. 200 when all pass; 503
//! naming the failing checks otherwise. `/livez` on the public listener only
//! says the process answers (for a supervisor's liveness probe).

use std::collections::BTreeMap;
use std::time::Instant;

use crate::api::wire::HealthCheck;
use crate::authority::Authority;
use crate::store::CaStatus;

/// The checks and whether all passed.
pub struct Report {
    pub ok: bool,
    pub checks: BTreeMap<String, HealthCheck>,
}

fn check(failures: Vec<String>, fine: String) -> HealthCheck {
    if failures.is_empty() {
        HealthCheck {
            ok: true,
            detail: fine,
        }
    } else {
        HealthCheck {
            ok: false,
            detail: failures.join("; "),
        }
    }
}

/// Run every check. Reads only: the CA list, their CRL records, the key cache.
pub fn report(auth: &Authority, started: Instant) -> Report {
    let now = auth.now().unix_timestamp();
    let mut checks = BTreeMap::new();
    let writable = auth.store.stats().writable;
    checks.insert(
        "store_writable".to_string(),
        check(
            if writable {
                vec![]
            } else {
                vec!["the store refuses writes (a full disk?)".into()]
            },
            "the store takes writes".into(),
        ),
    );
    let cas = match auth.store.list_cas() {
        Ok(c) => c,
        Err(e) => {
            checks.insert(
                "store_readable".to_string(),
                check(vec![format!("listing CAs: {e}")], String::new()),
            );
            return Report { ok: false, checks };
        }
    };
    let token_up = auth.vault.token().is_none_or(|t| t.is_connected());
    let (mut keys, mut crls, mut expiring) = (vec![], vec![], vec![]);
    let (mut active, mut published) = (0, 0);
    let horizon_days = i64::from(auth.config.health.ca_expiry_horizon_days);
    // A new server builds its first CRLs at once; give it a refresh interval.
    let grace = started.elapsed().as_secs() < auth.config.revocation.crl_refresh_secs.max(60);
    for ca in &cas {
        if ca.certificate_pem.is_none() {
            continue;
        }
        match auth.store.crl_meta(&ca.id) {
            Ok(Some(m)) if m.next_update > now => published += 1,
            Ok(Some(m)) => crls.push(format!(
                "{}: the CRL's nextUpdate passed {} s ago",
                ca.id,
                now - m.next_update
            )),
            Ok(None) if grace => {}
            Ok(None) => crls.push(format!("{}: no CRL published", ca.id)),
            Err(e) => crls.push(format!("{}: reading its CRL record: {e}", ca.id)),
        }
        if ca.status != CaStatus::Active {
            continue;
        }
        active += 1;
        if ca.token_key_label.is_some() && !token_up {
            keys.push(format!(
                "{}: its key's PKCS#11 token is not connected",
                ca.id
            ));
        } else if let Err(e) = auth.vault.signer(&ca.id) {
            keys.push(format!("{}: {e}", ca.id));
        }
        if let Some(not_after) = ca.not_after {
            let days = (not_after - now).div_euclid(86_400);
            if days < horizon_days {
                expiring.push(format!(
                    "{} ({}) expires in {days} day(s)",
                    ca.id, ca.subject
                ));
            }
        }
    }
    checks.insert(
        "ca_keys".to_string(),
        check(keys, format!("the keys of {active} active CA(s) can sign")),
    );
    checks.insert(
        "crls_fresh".to_string(),
        check(crls, format!("{published} CRL(s) before their nextUpdate")),
    );
    checks.insert(
        "ca_expiry".to_string(),
        check(
            expiring,
            format!("no active CA expires within {horizon_days} days"),
        ),
    );
    let ok = checks.values().all(|c| c.ok);
    Report { ok, checks }
}
