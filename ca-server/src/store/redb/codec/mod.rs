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
use super::varint;
use crate::store::{
    issuance_event, CertRecord, CertStatus, EventDetail, EventRecord, Revocation, StoreError,
};

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

/// `t` as the store writes times (RFC 3339 UTC, whole seconds).
fn rfc3339(t: i64) -> String {
    crate::clock::fmt_unix(t)
}

/// The Unix seconds `s` stands for, if [`rfc3339`] gives back exactly `s`.
fn unix_of(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()?
        .unix_timestamp();
    (rfc3339(t) == s).then_some(t)
}

fn is_lower_hex(s: &str) -> bool {
    s.len() % 2 == 0
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What follows a target's last `/` (a certificate's serial in `CA/serial`).
fn target_tail(target: &str) -> Option<&str> {
    target.rsplit_once('/').map(|(_, tail)| tail)
}

/// The reason the policy gives for a decision by a statement.
fn statement_reason(decision: &str, statement: &str) -> String {
    format!("{decision} by statement {statement}")
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("binary record: {what}"))
}

struct Enc(Vec<u8>);

impl Enc {
    /// An optional value: a presence byte, then the value as `put` writes it.
    fn opt<T>(&mut self, v: Option<T>, put: impl FnOnce(&mut Self, T)) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                put(self, v);
            }
        }
    }

    fn new(capacity: usize) -> Enc {
        let mut v = Vec::with_capacity(capacity);
        v.push(V1);
        Enc(v)
    }

    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn uv(&mut self, v: u64) {
        varint::put(&mut self.0, v);
    }

    fn iv(&mut self, v: i64) {
        self.uv(varint::zigzag(v));
    }

    fn bytes(&mut self, b: &[u8]) {
        self.uv(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Lower-case hex as its bytes (half the size); anything else as text.
    fn hex(&mut self, s: &str) {
        match ca_core::hex::decode(s) {
            Ok(raw) if is_lower_hex(s) => {
                self.u8(0);
                self.bytes(&raw);
            }
            _ => {
                self.u8(1);
                self.str(s);
            }
        }
    }

    fn strs(&mut self, v: &[String]) {
        self.uv(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }

    /// A [`WORDS`] entry as its position + 1; anything else as 0 and text.
    fn word(&mut self, s: &str) {
        match WORDS.iter().position(|w| *w == s) {
            Some(i) => self.uv(i as u64 + 1),
            None => {
                self.uv(0);
                self.str(s);
            }
        }
    }

    /// A time: its seconds when it is exactly their RFC 3339 form.
    fn time(&mut self, s: &str) {
        match unix_of(s) {
            Some(t) => {
                self.u8(0);
                self.iv(t);
            }
            None => {
                self.u8(1);
                self.str(s);
            }
        }
    }

    /// A time that is usually `rfc3339(unix)`, a field written beside it.
    fn time_of(&mut self, s: &str, unix: i64) {
        if s == rfc3339(unix) {
            self.u8(0);
        } else {
            self.u8(1);
            self.str(s);
        }
    }

    /// Text that is usually `prefix` then lower-case hex (`evt-…`, `CA/serial`).
    fn prefixed_hex(&mut self, s: &str, prefix_end: Option<usize>) {
        let split = prefix_end
            .and_then(|i| s.split_at_checked(i))
            .filter(|(_, tail)| !tail.is_empty() && is_lower_hex(tail))
            .and_then(|(head, tail)| Some((head, ca_core::hex::decode(tail).ok()?)));
        match split {
            Some((head, raw)) => {
                self.u8(0);
                self.str(head);
                self.bytes(&raw);
            }
            None => {
                self.u8(1);
                self.str(s);
            }
        }
    }

    /// A target such as `CA/serial`: the part after the last `/` as hex.
    fn target(&mut self, s: &str) {
        self.prefixed_hex(s, s.rfind('/').map(|i| i + 1));
    }

    /// An event id, `evt-` and hex.
    fn event_id(&mut self, s: &str) {
        self.prefixed_hex(s, s.starts_with("evt-").then_some(4));
    }
}

struct Dec<'a> {
    b: &'a [u8],
}

impl<'a> Dec<'a> {
    /// An optional value written by `Enc::opt`, read back by `get`.
    fn opt<T>(
        &mut self,
        get: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        Ok(if self.flag()? { Some(get(self)?) } else { None })
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        let (&first, rest) = self.b.split_first().ok_or_else(|| corrupt("truncated"))?;
        self.b = rest;
        Ok(first)
    }

    fn uv(&mut self) -> Result<u64, StoreError> {
        varint::take(&mut self.b).map_err(corrupt)
    }

    fn iv(&mut self) -> Result<i64, StoreError> {
        self.uv().map(varint::unzigzag)
    }

    fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let len = usize::try_from(self.uv()?).map_err(|_| corrupt("length"))?;
        if len > self.b.len() {
            return Err(corrupt("length past the end"));
        }
        let (head, rest) = self.b.split_at(len);
        self.b = rest;
        Ok(head)
    }

    fn str(&mut self) -> Result<String, StoreError> {
        let b = self.bytes()?;
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| corrupt("text is not UTF-8"))
    }

    fn flag(&mut self) -> Result<bool, StoreError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(corrupt("flag")),
        }
    }

    fn hex(&mut self) -> Result<String, StoreError> {
        match self.u8()? {
            0 => Ok(ca_core::hex::encode(self.bytes()?)),
            1 => self.str(),
            _ => Err(corrupt("hex tag")),
        }
    }

    fn word(&mut self) -> Result<String, StoreError> {
        match usize::try_from(self.uv()?).map_err(|_| corrupt("word"))? {
            0 => self.str(),
            i => WORDS
                .get(i - 1)
                .map(|w| w.to_string())
                .ok_or_else(|| corrupt("unknown word")),
        }
    }

    fn time(&mut self) -> Result<String, StoreError> {
        match self.u8()? {
            0 => Ok(rfc3339(self.iv()?)),
            1 => self.str(),
            _ => Err(corrupt("time tag")),
        }
    }

    fn time_of(&mut self, unix: i64) -> Result<String, StoreError> {
        match self.u8()? {
            0 => Ok(rfc3339(unix)),
            1 => self.str(),
            _ => Err(corrupt("time tag")),
        }
    }

    fn prefixed_hex(&mut self) -> Result<String, StoreError> {
        match self.u8()? {
            0 => {
                let mut s = self.str()?;
                s.push_str(&ca_core::hex::encode(self.bytes()?));
                Ok(s)
            }
            1 => self.str(),
            _ => Err(corrupt("hex tag")),
        }
    }

    fn strs(&mut self) -> Result<Vec<String>, StoreError> {
        let n = self.uv()?;
        // Each string takes at least its length byte: a count past the
        // remaining bytes is corrupt, not an allocation to attempt.
        if n > self.b.len() as u64 {
            return Err(corrupt("list length"));
        }
        (0..n).map(|_| self.str()).collect()
    }

    fn end(&self) -> Result<(), StoreError> {
        if self.b.is_empty() {
            Ok(())
        } else {
            Err(corrupt("bytes after the record"))
        }
    }
}

/// A binary record's fields, or None for a JSON one.
fn binary(b: &[u8]) -> Result<Option<Dec<'_>>, StoreError> {
    match b.split_first() {
        Some((&V1, rest)) => Ok(Some(Dec { b: rest })),
        Some((b'{', _)) => Ok(None),
        _ => Err(corrupt("unknown record encoding")),
    }
}

// ---- certificates ----------------------------------------------------------------

fn status_code(s: CertStatus) -> u8 {
    match s {
        CertStatus::Reserved => 0,
        CertStatus::Issued => 1,
        CertStatus::Revoked => 2,
    }
}

/// `der_seq`: where its DER is in `cert_der_seq` (None: in `cert_der` by
/// key, as before schema 2, or no DER yet).
pub fn encode_cert(r: &CertRecord, der_seq: Option<u64>) -> Result<Vec<u8>, StoreError> {
    let mut e = Enc::new(256);
    e.str(&r.ca_id);
    e.hex(&r.serial);
    e.u8(status_code(r.status));
    e.word(&r.profile);
    e.str(&r.subject);
    e.strs(&r.sans);
    e.word(&r.key_algorithm);
    e.iv(r.not_before);
    e.iv(r.not_after);
    e.hex(&r.tbs_sha256);
    e.iv(r.created_at);
    e.str(&r.requested_by);
    e.hex(&r.boot_id);
    e.u8(u8::from(r.server_generated_key));
    e.opt(r.renewed_from.as_deref(), Enc::hex);
    match &r.revocation {
        None => e.u8(0),
        // Rare, and read rarely: its JSON inside.
        Some(rv) => {
            e.u8(1);
            e.bytes(&json(rv)?);
        }
    }
    e.opt(r.requester_fingerprint.as_deref(), Enc::hex);
    e.opt(der_seq, Enc::uv);
    Ok(e.0)
}

pub fn decode_cert(b: &[u8]) -> Result<CertRecord, StoreError> {
    decode_cert_and_der_seq(b).map(|(r, _)| r)
}

/// The record, and where its DER is (see [`encode_cert`]).
pub fn decode_cert_and_der_seq(b: &[u8]) -> Result<(CertRecord, Option<u64>), StoreError> {
    let Some(mut d) = binary(b)? else {
        return Ok((unjson(b)?, None));
    };
    let r = CertRecord {
        ca_id: d.str()?,
        serial: d.hex()?,
        status: match d.u8()? {
            0 => CertStatus::Reserved,
            1 => CertStatus::Issued,
            2 => CertStatus::Revoked,
            _ => return Err(corrupt("certificate status")),
        },
        profile: d.word()?,
        subject: d.str()?,
        sans: d.strs()?,
        key_algorithm: d.word()?,
        not_before: d.iv()?,
        not_after: d.iv()?,
        tbs_sha256: d.hex()?,
        created_at: d.iv()?,
        requested_by: d.str()?,
        boot_id: d.hex()?,
        server_generated_key: d.flag()?,
        renewed_from: d.opt(Dec::hex)?,
        revocation: if d.flag()? {
            Some(unjson::<Revocation>(d.bytes()?)?)
        } else {
            None
        },
        requester_fingerprint: d.opt(Dec::hex)?,
    };
    let der_seq = d.opt(Dec::uv)?;
    d.end()?;
    Ok((r, der_seq))
}

// ---- audit entries ---------------------------------------------------------------

pub fn encode_audit(a: &AuditEntry) -> Vec<u8> {
    let mut e = Enc::new(320);
    e.uv(a.seq);
    e.iv(a.unix);
    e.time_of(&a.time, a.unix);
    e.str(&a.identity.subject);
    e.hex(&a.identity.fingerprint);
    e.word(&a.action);
    e.target(&a.target);
    e.word(&a.outcome.decision);
    e.opt(a.outcome.statement.as_deref(), Enc::str);
    // The reason a statement decided by is said by decision and statement.
    let by_statement = a
        .outcome
        .statement
        .as_deref()
        .is_some_and(|st| a.outcome.reason == statement_reason(&a.outcome.decision, st));
    if by_statement {
        e.u8(0);
    } else {
        e.u8(1);
        e.word(&a.outcome.reason);
    }
    e.uv(u64::from(a.result.status));
    e.word(&a.result.code);
    match &a.certificate {
        None => e.u8(0),
        Some(c) => {
            e.u8(1);
            // The serial is usually the target's last part (`CA/serial`).
            if target_tail(&a.target) == Some(c.serial.as_str()) {
                e.u8(0);
            } else {
                e.u8(1);
                e.hex(&c.serial);
            }
            e.strs(&c.sans);
            e.time(&c.not_after);
            e.hex(&c.tbs_sha256);
        }
    }
    e.hex(&a.prev_hash);
    e.hex(&a.hash);
    e.0
}

pub fn decode_audit(b: &[u8]) -> Result<AuditEntry, StoreError> {
    let Some(mut d) = binary(b)? else {
        return unjson(b);
    };
    let seq = d.uv()?;
    let unix = d.iv()?;
    let time = d.time_of(unix)?;
    let identity = AuditIdentity {
        subject: d.str()?,
        fingerprint: d.hex()?,
    };
    let action = d.word()?;
    let target = d.prefixed_hex()?;
    let decision = d.word()?;
    let statement = d.opt(Dec::str)?;
    let reason = match (d.u8()?, &statement) {
        (0, Some(st)) => statement_reason(&decision, st),
        (1, _) => d.word()?,
        _ => return Err(corrupt("reason tag")),
    };
    let result = AuditResult {
        status: u16::try_from(d.uv()?).map_err(|_| corrupt("status"))?,
        code: d.word()?,
    };
    let certificate = if d.flag()? {
        Some(AuditedCertificate {
            serial: match d.u8()? {
                0 => target_tail(&target)
                    .ok_or_else(|| corrupt("no serial in the target"))?
                    .to_string(),
                1 => d.hex()?,
                _ => return Err(corrupt("serial tag")),
            },
            sans: d.strs()?,
            not_after: d.time()?,
            tbs_sha256: d.hex()?,
        })
    } else {
        None
    };
    let a = AuditEntry {
        seq,
        time,
        unix,
        identity,
        action,
        target,
        outcome: AuditOutcome {
            decision,
            statement,
            reason,
        },
        result,
        certificate,
        prev_hash: d.hex()?,
        hash: d.hex()?,
    };
    d.end()?;
    Ok(a)
}

// ---- events ------------------------------------------------------------------------

pub fn encode_event(v: &EventRecord) -> Vec<u8> {
    let mut e = Enc::new(160);
    e.uv(v.seq);
    e.event_id(&v.id);
    e.word(&v.event_type);
    e.iv(v.unix);
    e.time_of(&v.time, v.unix);
    e.str(&v.ca_id);
    let d = &v.detail;
    e.opt(d.serial.as_deref(), Enc::hex);
    e.opt(d.subject.as_deref(), Enc::str);
    e.strs(&d.sans);
    e.opt(d.profile.as_deref(), Enc::word);
    e.opt(d.not_after.as_deref(), Enc::time);
    e.opt(d.days_to_expiry, Enc::iv);
    e.opt(d.reason.as_deref(), Enc::str);
    e.opt(d.by.as_deref(), Enc::str);
    e.opt(d.crl_number, Enc::uv);
    e.opt(d.crl_entries, Enc::uv);
    e.opt(d.next_update.as_deref(), Enc::time);
    e.0
}

/// An event that is exactly [`issuance_event`] of audit entry `audit_seq`
/// (the caller has checked): its number, its id and the entry's number. The
/// audit trail is never pruned, so the entry outlives the event.
pub fn encode_event_ref(v: &EventRecord, audit_seq: u64) -> Vec<u8> {
    let mut e = Enc(Vec::with_capacity(32));
    e.u8(AUDIT_REF);
    e.uv(v.seq);
    e.event_id(&v.id);
    e.uv(audit_seq);
    e.0
}

/// Reads audit entry `seq` for [`decode_event`].
pub type AuditLookup<'a> = dyn FnMut(u64) -> Result<Option<AuditEntry>, StoreError> + 'a;

pub fn decode_event(b: &[u8], audit: &mut AuditLookup<'_>) -> Result<EventRecord, StoreError> {
    if let Some((&AUDIT_REF, rest)) = b.split_first() {
        let mut d = Dec { b: rest };
        let seq = d.uv()?;
        let id = d.prefixed_hex()?;
        let audit_seq = d.uv()?;
        d.end()?;
        let entry = audit(audit_seq)?
            .ok_or_else(|| corrupt(&format!("event {seq}: no audit entry {audit_seq}")))?;
        let mut v = issuance_event(&entry, id).ok_or_else(|| {
            corrupt(&format!(
                "event {seq}: audit entry {audit_seq} is not an issuance"
            ))
        })?;
        v.seq = seq;
        // How it is kept is the store's business: read back as written.
        v.audit_seq = None;
        return Ok(v);
    }
    let Some(mut d) = binary(b)? else {
        return unjson(b);
    };
    let seq = d.uv()?;
    let id = d.prefixed_hex()?;
    let event_type = d.word()?;
    let unix = d.iv()?;
    let time = d.time_of(unix)?;
    let v = EventRecord {
        seq,
        id,
        event_type,
        time,
        unix,
        ca_id: d.str()?,
        detail: EventDetail {
            serial: d.opt(Dec::hex)?,
            subject: d.opt(Dec::str)?,
            sans: d.strs()?,
            profile: d.opt(Dec::word)?,
            not_after: d.opt(Dec::time)?,
            days_to_expiry: d.opt(Dec::iv)?,
            reason: d.opt(Dec::str)?,
            by: d.opt(Dec::str)?,
            crl_number: d.opt(Dec::uv)?,
            crl_entries: d.opt(Dec::uv)?,
            next_update: d.opt(Dec::time)?,
        },
        audit_seq: None,
    };
    d.end()?;
    Ok(v)
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
