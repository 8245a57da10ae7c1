//! CAs and aliases, read on every request and changed rarely: each backend
//! keeps them until a commit changes them (on PostgreSQL, also another
//! node's commit, by notification). The embedded store also keeps whether
//! any key is blocked (asked before every issuance; almost always none).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::{CaRecord, Committed, StoreError};

#[derive(Default)]
pub struct CaCache {
    cached: RwLock<Cached>,
    /// Bumped by every invalidation: a load that raced one is not kept.
    epoch: AtomicU64,
}

#[derive(Default)]
struct Cached {
    cas: Option<Arc<Vec<CaRecord>>>,
    aliases: Option<Arc<Vec<(String, String)>>>,
    /// No key is blocked (a key is blocked only by a revocation).
    no_blocked_keys: Option<Arc<bool>>,
}

impl CaCache {
    /// Every CA, from the cache or loaded by `load` and kept.
    pub fn cas(
        &self,
        load: impl FnOnce() -> Result<Vec<CaRecord>, StoreError>,
    ) -> Result<Arc<Vec<CaRecord>>, StoreError> {
        self.get_or_load(|c| c.cas.clone(), |c, v| c.cas = Some(v), load)
    }

    /// Every (alias, CA id), from the cache or loaded by `load` and kept.
    pub fn aliases(
        &self,
        load: impl FnOnce() -> Result<Vec<(String, String)>, StoreError>,
    ) -> Result<Arc<Vec<(String, String)>>, StoreError> {
        self.get_or_load(|c| c.aliases.clone(), |c, v| c.aliases = Some(v), load)
    }

    /// Whether no key is blocked, from the cache or loaded by `load` and kept.
    pub fn no_blocked_keys(
        &self,
        load: impl FnOnce() -> Result<bool, StoreError>,
    ) -> Result<bool, StoreError> {
        self.get_or_load(
            |c| c.no_blocked_keys.clone(),
            |c, v| c.no_blocked_keys = Some(v),
            load,
        )
        .map(|v| *v)
    }

    /// The cached value, or `load`'s, kept unless a commit changed it
    /// meanwhile (its invalidation bumped the epoch: the load may predate it).
    fn get_or_load<T>(
        &self,
        get: impl Fn(&Cached) -> Option<Arc<T>>,
        set: impl Fn(&mut Cached, Arc<T>),
        load: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<Arc<T>, StoreError> {
        if let Some(v) = get(&self.cached.read().unwrap_or_else(|p| p.into_inner())) {
            return Ok(v);
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let value = Arc::new(load()?);
        let mut cached = self.cached.write().unwrap_or_else(|p| p.into_inner());
        if self.epoch.load(Ordering::SeqCst) == epoch {
            set(&mut cached, value.clone());
        }
        Ok(value)
    }

    /// Forget what a commit changed, before its hooks run and its caller is
    /// answered, so neither sees the old values.
    pub fn invalidate(&self, events: &[Committed]) {
        let (mut cas, mut aliases, mut revoked) = (false, false, false);
        for e in events {
            match e {
                Committed::CaChanged { .. } => cas = true,
                Committed::AliasChanged { .. } => aliases = true,
                Committed::Revoked { .. } => revoked = true,
                Committed::Resync => (cas, aliases, revoked) = (true, true, true),
                _ => {}
            }
        }
        if !(cas || aliases || revoked) {
            return;
        }
        let mut cached = self.cached.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if cas {
            cached.cas = None;
        }
        if aliases {
            cached.aliases = None;
        }
        if revoked {
            cached.no_blocked_keys = None;
        }
    }
}
