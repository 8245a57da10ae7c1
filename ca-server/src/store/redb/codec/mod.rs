//! The compact record encoding of the three records written per issuance
//! (certificate, audit entry, event): a version byte, then each field in
//! order as varints and length-prefixed bytes, with hex text (serials,
//! digests, fingerprints) kept as its raw bytes. About a third of the JSON's
//! size, and cheaper to write and read.
//!
//! Values the server writes in a few known forms cost a byte or two: words
//! from a fixed dictionary ([`WORDS`]: event types, actions, decisions, result
//! codes, profiles, key algorithms), RFC 3339 times that are their Unix
//! seconds, `evt-` ids and `CA/serial` targets whose hex is kept raw. Anything
//! else is kept as its text, so every record reads back exactly as written
//! (an audit entry's hash is over its JSON, and still verifies).
//!
//! Records written before this encoding are JSON; a JSON record starts with
//! `{`, which is never the version byte, so both are read.

use ca_core::audit_chain::{
    AuditEntry, AuditIdentity, AuditOutcome, AuditResult, AuditedCertificate,
};

use super::tables::{json, unjson};
use crate::store::{
    issuance_event, AuditDraft, CertRecord, CertStatus, EventDetail, EventRecord, Revocation,
    StoreError,
};

mod audit;
mod cert;
mod event;
mod fields;

pub use audit::{decode_audit, encode_audit, encode_audit_draft};
pub use cert::{decode_cert, decode_cert_and_der_seq, encode_cert};
pub use event::{decode_event, encode_event, encode_event_ref, AuditLookup};
use fields::{Dec, Enc};

/// The first byte of a record in this encoding.
const V1: u8 = 1;
/// The first byte of an event kept as the audit entry it was made from (see
/// [`encode_event_ref`]).
const AUDIT_REF: u8 = 2;

/// The dictionary of [`Enc::word`]: append only, never reorder (stored
/// records name a word by its position).
const WORDS: &[&str] = &[
    "CertificateIssued",
    "CertificateRevoked",
    "CertificateApproachingExpiration",
    "CaApproachingExpiration",
    "CrlPublished",
    "IssueCertificate",
    "RevokeCertificate",
    "SignCrl",
    "allowed",
    "denied",
    "not_evaluated",
    "success",
    "tls-server",
    "tls-client",
    "tls-server-client",
    "ec-p256",
    "ec-p384",
    "rsa-2048",
    "rsa-3072",
    "rsa-4096",
    "ed25519",
    "internal call",
];

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("binary record: {what}"))
}

/// A binary record's fields, or None for a JSON one.
fn binary(b: &[u8]) -> Result<Option<Dec<'_>>, StoreError> {
    match b.split_first() {
        Some((&V1, rest)) => Ok(Some(Dec { b: rest })),
        Some((b'{', _)) => Ok(None),
        _ => Err(corrupt("unknown record encoding")),
    }
}

/// A stored audit entry or event as JSON (export to PostgreSQL, and
/// the forensic tools, speak JSON).
pub fn audit_as_json(b: &[u8]) -> Result<Vec<u8>, StoreError> {
    json(&decode_audit(b)?)
}

pub fn event_as_json(b: &[u8], audit: &mut AuditLookup<'_>) -> Result<Vec<u8>, StoreError> {
    json(&decode_event(b, audit)?)
}

#[cfg(test)]
mod tests;
