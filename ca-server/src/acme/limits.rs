//! Rate limits: new accounts per client address and new orders per account,
//! each per hour (fixed windows, in memory: one node's view). Over a limit,
//! the client gets `rateLimited` (429) with Retry-After.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(3600);
/// Most keys tracked; past it, expired windows are swept.
const MAX_KEYS: usize = 100_000;

#[derive(Default)]
pub struct Limiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    /// Count one event for `key` against `per_hour`; Err(seconds to wait)
    /// when over. A limit of 0 means none.
    pub fn take(&self, key: &str, per_hour: u32) -> Result<(), u64> {
        if per_hour == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() >= MAX_KEYS {
            w.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if w.len() >= MAX_KEYS {
                // Still full of live windows: refuse new keys rather than grow.
                return Err(60);
            }
        }
        let e = w.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(e.0) >= WINDOW {
            *e = (now, 0);
        }
        if e.1 >= per_hour {
            let left = WINDOW.saturating_sub(now.duration_since(e.0));
            return Err(left.as_secs().max(1));
        }
        e.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_holds_per_key() {
        let l = Limiter::default();
        assert!(l.take("a", 2).is_ok());
        assert!(l.take("a", 2).is_ok());
        let wait = l.take("a", 2).expect_err("third");
        assert!((1..=3600).contains(&wait));
        assert!(l.take("b", 2).is_ok(), "another key has its own window");
        assert!(
            l.take("c", 0).is_ok() && l.take("c", 0).is_ok(),
            "0: no limit"
        );
    }
}
