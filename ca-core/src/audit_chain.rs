//! The audit trail's entry format and hash chain, shared by the server that
//! writes it and by anyone who verifies it (the server offline, the CLI over the
//! API). Each entry carries the hash of the previous one, and
//! `hash = SHA-256(prev_hash || JSON of the entry with an empty hash)`, the JSON
//! written with the fields in declaration order.

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

/// The hash the first entry chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditIdentity {
    pub subject: String,
    pub fingerprint: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditOutcome {
    /// `allowed`, `denied`, or `not_evaluated` (refused before any policy check,
    /// e.g. malformed input or an unknown path).
    pub decision: String,
    pub statement: Option<String>,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditResult {
    pub status: u16,
    /// `success` or the error code.
    pub code: String,
}

/// What an issuance entry records of the certificate it made, so the trail
/// alone says what was certified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditedCertificate {
    /// Lower-case hex.
    pub serial: String,
    /// `DNS:x`, `IP:x`, `email:x`.
    pub sans: Vec<String>,
    /// RFC 3339 UTC.
    pub not_after: String,
    /// SHA-256 of the DER to-be-signed certificate, lower-case hex.
    pub tbs_sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    /// RFC 3339 UTC.
    pub time: String,
    /// Unix seconds (for filtering).
    pub unix: i64,
    pub identity: AuditIdentity,
    pub action: String,
    pub target: String,
    pub outcome: AuditOutcome,
    pub result: AuditResult,
    /// Issuance entries: the certificate made. Absent elsewhere, and then not
    /// serialised, so entries written before it existed hash as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<AuditedCertificate>,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// The hash over everything but the hash itself, lower-case hex.
    pub fn compute_hash(&self) -> Result<String, serde_json::Error> {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(self.prev_hash.as_bytes());
        if self.hash.is_empty() {
            // A new entry (the store's writer, once per write): already as
            // hashed, so no copy.
            ctx.update(&serde_json::to_vec(self)?);
        } else {
            let mut e = self.clone();
            e.hash = String::new();
            ctx.update(&serde_json::to_vec(&e)?);
        }
        Ok(crate::hex::encode(ctx.finish().as_ref()))
    }
}

/// The first broken link of a chain: which entry, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("entry {seq}: {why}")]
pub struct BrokenLink {
    pub seq: u64,
    pub why: String,
}

/// Checks a chain entry by entry, in order, holding only the last hash.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    expected_seq: u64,
    prev: String,
    count: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev: GENESIS.to_string(),
            count: 0,
        }
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    /// Check the next entry, found under sequence key `key`.
    pub fn push(&mut self, key: u64, e: &AuditEntry) -> Result<(), BrokenLink> {
        let broken = |seq, why: String| Err(BrokenLink { seq, why });
        if key != self.expected_seq {
            let seq = self.expected_seq;
            return broken(
                seq,
                format!("entry {seq} is missing (next present is {key})"),
            );
        }
        if e.seq != key {
            return broken(
                key,
                format!("entry stored at {key} says it is {} (reordered)", e.seq),
            );
        }
        if e.prev_hash != self.prev {
            return broken(
                key,
                "prev_hash does not match the previous entry's hash (removed or reordered)".into(),
            );
        }
        match e.compute_hash() {
            Ok(h) if h == e.hash => {}
            Ok(_) => {
                return broken(
                    key,
                    "the entry's content does not match its hash (altered)".into(),
                )
            }
            Err(x) => return broken(key, format!("entry does not encode: {x}")),
        }
        self.prev = e.hash.clone();
        self.expected_seq = key.saturating_add(1);
        self.count += 1;
        Ok(())
    }

    /// Entries checked so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The hash of the last entry checked (the genesis hash before any).
    pub fn last_hash(&self) -> &str {
        &self.prev
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = GENESIS.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    seq,
                    time: "2026-11-23T00:00:00Z".into(),
                    unix: 0,
                    identity: AuditIdentity {
                        subject: "CN=a".into(),
                        fingerprint: "00".into(),
                    },
                    action: "IssueCertificate".into(),
                    target: "ca-1".into(),
                    outcome: AuditOutcome {
                        decision: "allowed".into(),
                        statement: None,
                        reason: String::new(),
                    },
                    result: AuditResult {
                        status: 200,
                        code: "success".into(),
                    },
                    certificate: None,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = e.compute_hash().unwrap();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    /// The entry `chain(1)` makes, its hash emptied, as JSON written out by
    /// hand; with a certificate, `CERT_JSON` goes in before `"prev_hash"`.
    const PLAIN_JSON: &str = concat!(
        r#"{"seq":1,"time":"2026-11-23T00:00:00Z","unix":0,"#,
        r#""identity":{"subject":"CN=a","fingerprint":"00"},"#,
        r#""action":"IssueCertificate","target":"ca-1","#,
        r#""outcome":{"decision":"allowed","statement":null,"reason":""},"#,
        r#""result":{"status":200,"code":"success"},"#,
        r#""prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","#,
        r#""hash":""}"#
    );
    const CERT_JSON: &str = concat!(
        r#""certificate":{"serial":"0a","sans":["DNS:a.example"],"#,
        r#""not_after":"2027-01-01T00:00:00Z","tbs_sha256":"ff"},"#
    );

    /// The definition, checked against digests computed outside Rust, for an
    /// entry with and without a certificate, its hash field empty or filled.
    /// The digests are Python's, over the JSON above:
    /// `hashlib.sha256((GENESIS + json).encode()).hexdigest()`.
    #[test]
    fn the_hash_is_sha256_of_prev_hash_and_the_entry_with_an_empty_hash() {
        let with_cert_json =
            PLAIN_JSON.replacen(r#""prev_hash""#, &format!("{CERT_JSON}\"prev_hash\""), 1);
        let digest_of = |json: &str| {
            crate::hex::encode(
                digest::digest(&digest::SHA256, format!("{GENESIS}{json}").as_bytes()).as_ref(),
            )
        };
        let mut e = chain(1).remove(0);
        e.hash = String::new();
        let plain = "b692f088f73dd967cb93dc70de24a99abb8a8706ecea28f845cef744c894d0a4";
        assert_eq!(digest_of(PLAIN_JSON), plain);
        assert_eq!(serde_json::to_string(&e).unwrap(), PLAIN_JSON);
        assert_eq!(e.compute_hash().unwrap(), plain);
        e.hash = "whatever was stored".into();
        assert_eq!(e.compute_hash().unwrap(), plain);
        e.certificate = Some(AuditedCertificate {
            serial: "0a".into(),
            sans: vec!["DNS:a.example".into()],
            not_after: "2027-01-01T00:00:00Z".into(),
            tbs_sha256: "ff".into(),
        });
        let with_cert = "249cbad0de08d5c3202fa950a42842c3b01da53d7b15fc4f7a485caf1ee9ba53";
        assert_eq!(digest_of(&with_cert_json), with_cert);
        assert_eq!(e.compute_hash().unwrap(), with_cert);
        e.hash = String::new();
        assert_eq!(e.compute_hash().unwrap(), with_cert);
    }

    #[test]
    fn intact_chain_verifies_and_each_kind_of_damage_is_located() {
        let entries = chain(5);
        let mut v = ChainVerifier::new();
        for e in &entries {
            v.push(e.seq, e).unwrap();
        }
        assert_eq!(v.count(), 5);

        let mut altered = entries.clone();
        altered[2].action = "RevokeCertificate".into();
        let mut v = ChainVerifier::new();
        let err = altered
            .iter()
            .try_for_each(|e| v.push(e.seq, e))
            .unwrap_err();
        assert_eq!(err.seq, 3);

        let mut v = ChainVerifier::new();
        let err = entries
            .iter()
            .filter(|e| e.seq != 2)
            .try_for_each(|e| v.push(e.seq, e))
            .unwrap_err();
        assert_eq!(err.seq, 2);

        let mut swapped = entries.clone();
        swapped.swap(3, 4);
        let mut v = ChainVerifier::new();
        let err = swapped
            .iter()
            .enumerate()
            .try_for_each(|(i, e)| v.push(i as u64 + 1, e))
            .unwrap_err();
        assert_eq!(err.seq, 4);
    }
}
