//! Intermediates' public keys kept parsed between validations.
//!
//! A service validating many chains sees the same few intermediates again and
//! again; aws-lc parsing a P-256 key (the point decoded and checked on the
//! curve) costs ~1.3 µs of a chain's ~100, an RSA key its modulus's Montgomery
//! set-up. Trust anchors keep theirs parsed ([`ParsedKeys`]); this keeps the
//! last few intermediates' alike, keyed by the key's exact bytes, so a kept key
//! only ever verifies for the very key it was parsed from.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use crate::signature::ParsedKeys;

/// How many distinct keys are kept: more than any real chain set uses at once,
/// few enough that a search of them costs less than one parse.
const CAPACITY: usize = 32;

/// One issuer key's bytes, and the key as aws-lc parsed it per algorithm.
pub(super) struct KeptKey {
    key: Vec<u8>,
    pub(super) parsed: ParsedKeys,
}

/// The most recently used issuer keys, most recent first.
#[derive(Default)]
pub(super) struct IssuerKeys(Mutex<VecDeque<Arc<KeptKey>>>);

impl IssuerKeys {
    /// The kept entry for `key`, made (unparsed: the first verification
    /// parses it) if there is none; the least recently used one goes when full.
    pub(super) fn get(&self, key: &[u8]) -> Arc<KeptKey> {
        // A poisoned lock is used as it is: whatever a panic interrupted, the
        // list holds whole entries, each under its own key. (One lock for all
        // threads, held for a search of at most 32 short keys: ~0.1 µs of a
        // validation's ~100.)
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pos) = kept.iter().position(|k| k.key == key) {
            if let Some(found) = kept.remove(pos) {
                kept.push_front(found.clone());
                return found;
            }
        }
        let made = Arc::new(KeptKey {
            key: key.to_vec(),
            parsed: ParsedKeys::default(),
        });
        kept.push_front(made.clone());
        kept.truncate(CAPACITY);
        made
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Each kept key's bytes, with the bytes of the key kept parsed for `alg`.
    #[cfg(test)]
    pub(super) fn kept(
        &self,
        alg: crate::signature::SignatureAlgorithm,
    ) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter()
            .map(|k| (k.key.clone(), k.parsed.kept_key(alg).map(<[u8]>::to_vec)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_seen_again_is_the_same_entry_and_the_oldest_goes_when_full() {
        let keys = IssuerKeys::default();
        let first = keys.get(b"key 0");
        assert!(Arc::ptr_eq(&first, &keys.get(b"key 0")));
        for i in 1..CAPACITY {
            keys.get(format!("key {i}").as_bytes());
        }
        assert_eq!(keys.len(), CAPACITY);
        // "key 0" was used after "key 1" only at the start: touch it, then one
        // more key pushes out the least recently used, "key 1".
        assert!(Arc::ptr_eq(&first, &keys.get(b"key 0")));
        keys.get(b"one more");
        assert_eq!(keys.len(), CAPACITY);
        assert!(Arc::ptr_eq(&first, &keys.get(b"key 0")));
        let kept = keys.0.lock().unwrap();
        assert!(kept.iter().all(|k| k.key != b"key 1"));
        assert!(kept.iter().any(|k| k.key == b"key 2"));
    }
}
