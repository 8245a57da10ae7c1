//! The compact record encoding of the three records written per issuance
//! (certificate, audit entry, event): a version byte, then each field in
//! order as varints and length-prefixed bytes, with hex text (serials,
//! digests, fingerprints) kept as its raw bytes. About a third of the JSON's
//! size, and cheaper to write and read.
//!
//! Records written before this encoding are JSON; a JSON record starts with
//! `{`, which is never the version byte, so both are read.

use ca_core::audit_chain::{
    AuditEntry, AuditIdentity, AuditOutcome, AuditResult, AuditedCertificate,
};

use super::tables::{json, unjson};
use crate::store::{CertRecord, CertStatus, EventDetail, EventRecord, Revocation, StoreError};

/// The first byte of a record in this encoding.
const V1: u8 = 1;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("binary record: {what}"))
}

struct Enc(Vec<u8>);

impl Enc {
    fn new(capacity: usize) -> Enc {
        let mut v = Vec::with_capacity(capacity);
        v.push(V1);
        Enc(v)
    }

    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    fn uv(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn iv(&mut self, v: i64) {
        self.uv(((v << 1) ^ (v >> 63)) as u64);
    }

    fn bytes(&mut self, b: &[u8]) {
        self.uv(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.str(s);
            }
        }
    }

    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.uv(v);
            }
        }
    }

    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.iv(v);
            }
        }
    }

    /// Lower-case hex as its bytes (half the size); anything else as text.
    fn hex(&mut self, s: &str) {
        let lower_hex = s.len() % 2 == 0
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match ca_core::hex::decode(s) {
            Ok(raw) if lower_hex => {
                self.u8(0);
                self.bytes(&raw);
            }
            _ => {
                self.u8(1);
                self.str(s);
            }
        }
    }

    fn opt_hex(&mut self, s: Option<&str>) {
        match s {
            None => self.u8(0),
            Some(s) => {
                self.u8(1);
                self.hex(s);
            }
        }
    }

    fn strs(&mut self, v: &[String]) {
        self.uv(v.len() as u64);
        for s in v {
            self.str(s);
        }
    }
}

struct Dec<'a> {
    b: &'a [u8],
}

impl<'a> Dec<'a> {
    fn u8(&mut self) -> Result<u8, StoreError> {
        let (&first, rest) = self.b.split_first().ok_or_else(|| corrupt("truncated"))?;
        self.b = rest;
        Ok(first)
    }

    fn uv(&mut self) -> Result<u64, StoreError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            v |= u64::from(byte & 0x7f)
                .checked_shl(shift)
                .ok_or_else(|| corrupt("varint"))?;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }

    fn iv(&mut self) -> Result<i64, StoreError> {
        let u = self.uv()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
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

    fn opt_str(&mut self) -> Result<Option<String>, StoreError> {
        Ok(if self.flag()? {
            Some(self.str()?)
        } else {
            None
        })
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, StoreError> {
        Ok(if self.flag()? { Some(self.uv()?) } else { None })
    }

    fn opt_i64(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(if self.flag()? { Some(self.iv()?) } else { None })
    }

    fn hex(&mut self) -> Result<String, StoreError> {
        match self.u8()? {
            0 => Ok(ca_core::hex::encode(self.bytes()?)),
            1 => self.str(),
            _ => Err(corrupt("hex tag")),
        }
    }

    fn opt_hex(&mut self) -> Result<Option<String>, StoreError> {
        Ok(if self.flag()? {
            Some(self.hex()?)
        } else {
            None
        })
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
    e.str(&r.profile);
    e.str(&r.subject);
    e.strs(&r.sans);
    e.str(&r.key_algorithm);
    e.iv(r.not_before);
    e.iv(r.not_after);
    e.hex(&r.tbs_sha256);
    e.iv(r.created_at);
    e.str(&r.requested_by);
    e.hex(&r.boot_id);
    e.u8(u8::from(r.server_generated_key));
    e.opt_hex(r.renewed_from.as_deref());
    match &r.revocation {
        None => e.u8(0),
        // Rare, and read rarely: its JSON inside.
        Some(rv) => {
            e.u8(1);
            e.bytes(&json(rv)?);
        }
    }
    e.opt_hex(r.requester_fingerprint.as_deref());
    e.opt_u64(der_seq);
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
        profile: d.str()?,
        subject: d.str()?,
        sans: d.strs()?,
        key_algorithm: d.str()?,
        not_before: d.iv()?,
        not_after: d.iv()?,
        tbs_sha256: d.hex()?,
        created_at: d.iv()?,
        requested_by: d.str()?,
        boot_id: d.hex()?,
        server_generated_key: d.flag()?,
        renewed_from: d.opt_hex()?,
        revocation: if d.flag()? {
            Some(unjson::<Revocation>(d.bytes()?)?)
        } else {
            None
        },
        requester_fingerprint: d.opt_hex()?,
    };
    let der_seq = d.opt_u64()?;
    d.end()?;
    Ok((r, der_seq))
}

// ---- audit entries ---------------------------------------------------------------

pub fn encode_audit(a: &AuditEntry) -> Vec<u8> {
    let mut e = Enc::new(320);
    e.uv(a.seq);
    e.str(&a.time);
    e.iv(a.unix);
    e.str(&a.identity.subject);
    e.hex(&a.identity.fingerprint);
    e.str(&a.action);
    e.str(&a.target);
    e.str(&a.outcome.decision);
    e.opt_str(a.outcome.statement.as_deref());
    e.str(&a.outcome.reason);
    e.uv(u64::from(a.result.status));
    e.str(&a.result.code);
    match &a.certificate {
        None => e.u8(0),
        Some(c) => {
            e.u8(1);
            e.hex(&c.serial);
            e.strs(&c.sans);
            e.str(&c.not_after);
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
    let a = AuditEntry {
        seq: d.uv()?,
        time: d.str()?,
        unix: d.iv()?,
        identity: AuditIdentity {
            subject: d.str()?,
            fingerprint: d.hex()?,
        },
        action: d.str()?,
        target: d.str()?,
        outcome: AuditOutcome {
            decision: d.str()?,
            statement: d.opt_str()?,
            reason: d.str()?,
        },
        result: AuditResult {
            status: u16::try_from(d.uv()?).map_err(|_| corrupt("status"))?,
            code: d.str()?,
        },
        certificate: if d.flag()? {
            Some(AuditedCertificate {
                serial: d.hex()?,
                sans: d.strs()?,
                not_after: d.str()?,
                tbs_sha256: d.hex()?,
            })
        } else {
            None
        },
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
    e.str(&v.id);
    e.str(&v.event_type);
    e.str(&v.time);
    e.iv(v.unix);
    e.str(&v.ca_id);
    let d = &v.detail;
    e.opt_hex(d.serial.as_deref());
    e.opt_str(d.subject.as_deref());
    e.strs(&d.sans);
    e.opt_str(d.profile.as_deref());
    e.opt_str(d.not_after.as_deref());
    e.opt_i64(d.days_to_expiry);
    e.opt_str(d.reason.as_deref());
    e.opt_str(d.by.as_deref());
    e.opt_u64(d.crl_number);
    e.opt_u64(d.crl_entries);
    e.opt_str(d.next_update.as_deref());
    e.0
}

pub fn decode_event(b: &[u8]) -> Result<EventRecord, StoreError> {
    let Some(mut d) = binary(b)? else {
        return unjson(b);
    };
    let v = EventRecord {
        seq: d.uv()?,
        id: d.str()?,
        event_type: d.str()?,
        time: d.str()?,
        unix: d.iv()?,
        ca_id: d.str()?,
        detail: EventDetail {
            serial: d.opt_hex()?,
            subject: d.opt_str()?,
            sans: d.strs()?,
            profile: d.opt_str()?,
            not_after: d.opt_str()?,
            days_to_expiry: d.opt_i64()?,
            reason: d.opt_str()?,
            by: d.opt_str()?,
            crl_number: d.opt_u64()?,
            crl_entries: d.opt_u64()?,
            next_update: d.opt_str()?,
        },
    };
    d.end()?;
    Ok(v)
}

/// A stored audit entry or event as JSON (export to PostgreSQL, and
/// the forensic tools, speak JSON).
pub fn audit_as_json(b: &[u8]) -> Result<Vec<u8>, StoreError> {
    json(&decode_audit(b)?)
}

pub fn event_as_json(b: &[u8]) -> Result<Vec<u8>, StoreError> {
    json(&decode_event(b)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert() -> CertRecord {
        CertRecord {
            ca_id: "ca-b908c4b33fe91007".into(),
            serial: "01a24049134fb77a0a7430118c92d9b9".into(),
            status: CertStatus::Issued,
            profile: "tls-server".into(),
            subject: "CN=bench.example.internal".into(),
            sans: vec!["DNS:bench.example.internal".into(), "IP:10.0.0.1".into()],
            key_algorithm: "ECDSA P-256".into(),
            not_before: 1_796_374_560,
            not_after: 1_830_761_759,
            tbs_sha256: "0702112c868e532cee1da3dce4c726bc4873af98a2f83b47b6a55554758b733d".into(),
            created_at: 1_796_374_860,
            requested_by: "CN=admin,O=ca-server administrators".into(),
            boot_id: "bc2eb96b3372d0bc".into(),
            server_generated_key: false,
            renewed_from: Some("01a24049134fb77a0a7430118c92d9b8".into()),
            revocation: Some(Revocation {
                reason_code: 1,
                reason: "KEY_COMPROMISE".into(),
                revoked_at: -5,
                revoked_by: "x".into(),
                key_sha256: Some("ab".into()),
            }),
            requester_fingerprint: Some("Not-Hex".into()),
        }
    }

    #[test]
    fn certificates_round_trip_and_read_old_json() {
        let r = cert();
        let b = encode_cert(&r, Some(300)).expect("encode");
        assert_eq!(
            decode_cert_and_der_seq(&b).expect("decode"),
            (r.clone(), Some(300))
        );
        let j = json(&r).expect("json");
        assert!(b.len() * 10 < j.len() * 6, "{} vs {}", b.len(), j.len());
        assert_eq!(decode_cert(&j).expect("json decode"), r);
    }

    #[test]
    fn audit_entries_round_trip_with_the_same_hash() {
        let mut a = AuditEntry {
            seq: 300,
            time: "2026-12-04T09:01:00Z".into(),
            unix: 1_796_374_860,
            identity: AuditIdentity {
                subject: "CN=admin".into(),
                fingerprint: String::new(),
            },
            action: "IssueCertificate".into(),
            target: "ca-1/01".into(),
            outcome: AuditOutcome {
                decision: "allowed".into(),
                statement: Some("admins".into()),
                reason: "r".into(),
            },
            result: AuditResult {
                status: 200,
                code: "success".into(),
            },
            certificate: Some(AuditedCertificate {
                serial: "01".into(),
                sans: vec!["DNS:a".into()],
                not_after: "2027-01-01T00:00:00Z".into(),
                tbs_sha256: "ABCD".into(),
            }),
            prev_hash: "00".repeat(32),
            hash: String::new(),
        };
        a.hash = a.compute_hash().expect("hash");
        let back = decode_audit(&encode_audit(&a)).expect("decode");
        assert_eq!(back, a);
        assert_eq!(back.compute_hash().expect("hash"), a.hash);
    }

    #[test]
    fn events_round_trip() {
        let v = EventRecord {
            seq: 9,
            id: "evt-1".into(),
            event_type: "CertificateIssued".into(),
            time: "t".into(),
            unix: 3,
            ca_id: "ca-1".into(),
            detail: EventDetail {
                serial: Some("0a".into()),
                days_to_expiry: Some(-3),
                crl_number: Some(u64::MAX),
                ..Default::default()
            },
        };
        assert_eq!(decode_event(&encode_event(&v)).expect("decode"), v);
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let b = encode_cert(&cert(), None).expect("encode");
        for cut in 0..b.len() {
            assert!(decode_cert(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(decode_cert(&longer).is_err());
        assert!(decode_cert(&[
            V1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .is_err());
        assert!(decode_audit(&[7]).is_err());
        assert!(decode_event(&[]).is_err());
    }
}
