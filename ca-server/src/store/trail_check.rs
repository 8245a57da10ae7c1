//! Verifying the audit trail, the same way over any backend: each backend
//! walks its stored entries in order inside one read snapshot and feeds
//! them here, with its signed digests and its recorded head.

use std::collections::{HashMap, HashSet};

use ca_core::audit_chain::{AuditEntry, ChainVerifier};
use ca_core::audit_digest::{AuditDigest, DigestVerifier};

use super::Verdict;

pub struct TrailCheck {
    chain: ChainVerifier,
    digests: Vec<AuditDigest>,
    /// The entries the digests name, whose hashes they sign.
    wanted: HashSet<u64>,
    hashes: HashMap<u64, String>,
}

impl TrailCheck {
    /// Digests are few (one per interval): all of them, oldest first.
    pub fn new(digests: Vec<AuditDigest>) -> TrailCheck {
        TrailCheck {
            chain: ChainVerifier::new(),
            wanted: digests.iter().map(|d| d.head_seq).collect(),
            digests,
            hashes: HashMap::new(),
        }
    }

    /// The next stored entry (its key, and the entry as decoded or why it
    /// would not decode); the verdict if it breaks the chain.
    pub fn entry(&mut self, seq: u64, decoded: Result<AuditEntry, String>) -> Result<(), Verdict> {
        let e = decoded.map_err(|x| Verdict::Broken {
            seq,
            why: format!("entry does not parse: {x}"),
        })?;
        self.chain.push(seq, &e).map_err(|b| Verdict::Broken {
            seq: b.seq,
            why: b.why,
        })?;
        if self.wanted.contains(&seq) {
            self.hashes.insert(seq, e.hash);
        }
        Ok(())
    }

    /// After the last entry: the recorded head must be where the chain
    /// ends (so entries cut from the end show), and every digest must sign
    /// the entry it names (with `pinned`, that key's signature only).
    pub fn finish(self, head: Option<(u64, String)>, pinned: Option<&[u8]>) -> Verdict {
        let (count, last) = (self.chain.count(), self.chain.last_hash());
        match head {
            Some((seq, hash)) if seq != count || hash != last => {
                return Verdict::Broken {
                    seq: count.saturating_add(1).min(seq),
                    why: format!(
                        "the chain ends at entry {count} but the recorded head is entry {seq} (entries removed from the end?)"
                    ),
                }
            }
            None if count > 0 => {
                return Verdict::Broken {
                    seq: 1,
                    why: "the audit head record is missing".into(),
                }
            }
            _ => {}
        }
        let mut verifier = DigestVerifier::new(pinned.map(<[u8]>::to_vec));
        for d in &self.digests {
            if let Err(bad) = verifier.push(d, self.hashes.get(&d.head_seq).map(String::as_str)) {
                return Verdict::Broken {
                    seq: bad.head_seq,
                    why: bad.to_string(),
                };
            }
        }
        Verdict::Ok {
            count,
            digests: verifier.count(),
            covered: verifier.covered(),
        }
    }
}
