//! Keeping the policies the server decides with equal to the stored ones.
//!
//! A policy change made through this process is applied to the kept copy by
//! its own request, after its commit. Everything else that may make the copy
//! differ from the store is told as a commit event: another node's change
//! (`PolicyChanged`, with a shared store) or a store that may hold more than
//! it was told (`Resync`: the embedded store reopened after a commit reported
//! failed that reached the disk all the same; a shared store's listener
//! that missed notifications). Each is answered by reading the policies
//! again. When they cannot be read, none is in force (a grant the store no
//! longer holds must not stay so) until a retry reads them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::authority::Authority;
use crate::store::{Committed, StoreError};

/// How often a node sharing its store re-reads what other nodes may change,
/// in case a notification was missed.
const SHARED_RECHECK: Duration = Duration::from_secs(30);
/// The first retry's wait after the policies could not be read (doubling
/// up to [`RETRY_MOST`]).
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MOST: Duration = Duration::from_secs(30);

/// Follow the stored policies from now on (see the module doc). With a
/// store shared by several nodes the task re-reading them every
/// [`SHARED_RECHECK`] is returned.
pub(crate) fn follow_stored_policies(auth: &Arc<Authority>) -> Option<tokio::task::JoinHandle<()>> {
    let shared = auth.config.store.is_postgres();
    let retry = Retry {
        authority: Arc::downgrade(auth),
        runtime: tokio::runtime::Handle::try_current().ok(),
        running: Arc::new(AtomicBool::new(false)),
    };
    auth.store.subscribe(Arc::new(move |event| {
        let due = match event {
            Committed::Resync => true,
            Committed::PolicyChanged { .. } => shared,
            _ => false,
        };
        if !due {
            return;
        }
        let Some(a) = retry.authority.upgrade() else {
            return;
        };
        if let Err(e) = a.policies.reload(a.store.as_ref()) {
            a.policies.withhold();
            tracing::error!(error = %e, "re-reading the policies failed; none is in force until they read");
            retry.start();
        }
    }));
    shared.then(|| tokio::spawn(recheck_shared(auth.clone())))
}

/// Reading the policies again until it succeeds, in one task at a time.
struct Retry {
    authority: Weak<Authority>,
    runtime: Option<tokio::runtime::Handle>,
    /// Whether the task runs (a failure told meanwhile leaves it to it).
    running: Arc<AtomicBool>,
}

impl Retry {
    fn start(&self) {
        let Some(rt) = &self.runtime else {
            tracing::error!("no runtime to retry reading the policies on");
            return;
        };
        if !self.running.swap(true, Ordering::SeqCst) {
            rt.spawn(reload_until_read(
                self.authority.clone(),
                self.running.clone(),
            ));
        }
    }
}

async fn reload_until_read(authority: Weak<Authority>, running: Arc<AtomicBool>) {
    let mut wait = RETRY_FIRST;
    loop {
        tokio::time::sleep(wait).await;
        let Some(a) = authority.upgrade() else {
            running.store(false, Ordering::SeqCst);
            return;
        };
        match reload_blocking(a.clone()).await {
            Ok(_) => {
                running.store(false, Ordering::SeqCst);
                // A failure told between the read and here found this task
                // running and left the retry to it.
                if !a.policies.is_withheld() || running.swap(true, Ordering::SeqCst) {
                    tracing::info!("the policies read again");
                    return;
                }
                wait = RETRY_FIRST;
            }
            Err(e) => {
                tracing::warn!(error = %e, "re-reading the policies failed again");
                wait = (wait * 2).min(RETRY_MOST);
            }
        }
    }
}

/// With a store shared by several nodes: read the policies every
/// [`SHARED_RECHECK`], in case a notification was missed. A failure here
/// (nothing is known to have changed) keeps the policies in force.
async fn recheck_shared(auth: Arc<Authority>) {
    let mut tick = tokio::time::interval(SHARED_RECHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match reload_blocking(auth.clone()).await {
            Ok(true) => tracing::warn!("policies changed without a notification; reloaded"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "re-reading the policies failed"),
        }
    }
}

async fn reload_blocking(a: Arc<Authority>) -> Result<bool, StoreError> {
    tokio::task::spawn_blocking(move || a.policies.reload(a.store.as_ref()))
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Unavailable(format!(
                "re-reading the policies: {e}"
            )))
        })
}
