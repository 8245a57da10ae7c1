//! Anti-replay nonces (RFC 8555 §6.5): each answer carries a fresh one; each
//! signed request must carry one this server gave and nobody used. Kept in
//! memory, bounded: the oldest are forgotten first, and none lives longer
//! than [`LIFETIME`] (a client with a forgotten nonce gets `badNonce` and a
//! fresh one, and retries).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most nonces outstanding.
const CAPACITY: usize = 100_000;
/// How long a nonce is good for.
const LIFETIME: Duration = Duration::from_secs(3600);

#[derive(Default)]
pub struct Nonces {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Instant>,
    order: VecDeque<String>,
}

impl Nonces {
    pub fn issue(&self) -> String {
        let mut b = [0u8; 16];
        // Without randomness, hand out a nonce no request can use: the
        // client's next request fails with badNonce instead of replaying.
        if getrandom::getrandom(&mut b).is_err() {
            return "unavailable".into();
        }
        let n = super::jws::b64(&b);
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while g.order.len() >= CAPACITY
            || g.order
                .front()
                .and_then(|f| g.live.get(f))
                .is_some_and(|t| now.duration_since(*t) > LIFETIME)
        {
            match g.order.pop_front() {
                Some(old) => {
                    g.live.remove(&old);
                }
                None => break,
            }
        }
        g.live.insert(n.clone(), now);
        g.order.push_back(n.clone());
        n
    }

    /// Whether `n` was given and unused (it is used now).
    pub fn consume(&self, n: &str) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.live.remove(n) {
            Some(t) => t.elapsed() <= LIFETIME,
            None => false,
        }
    }
}
