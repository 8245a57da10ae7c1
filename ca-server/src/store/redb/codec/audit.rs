//! Audit entry records.

use super::{
    binary, corrupt, unjson, AuditDraft, AuditEntry, AuditIdentity, AuditOutcome, AuditResult,
    AuditedCertificate, Dec, Enc, StoreError,
};

/// What follows a target's last `/` (a certificate's serial in `CA/serial`).
fn target_tail(target: &str) -> Option<&str> {
    target.rsplit_once('/').map(|(_, tail)| tail)
}

/// The reason the policy gives for a decision by a statement.
fn statement_reason(decision: &str, statement: &str) -> String {
    format!("{decision} by statement {statement}")
}

/// The fields of an audit entry, borrowed from an entry or a draft.
struct Fields<'a> {
    seq: u64,
    unix: i64,
    /// None: `unix` in RFC 3339, as a draft's entry has it.
    time: Option<&'a str>,
    identity: &'a AuditIdentity,
    action: &'a str,
    target: &'a str,
    outcome: &'a AuditOutcome,
    result: &'a AuditResult,
    certificate: Option<&'a AuditedCertificate>,
    prev_hash: &'a str,
    hash: &'a str,
}

pub fn encode_audit(a: &AuditEntry) -> Vec<u8> {
    encode_fields(Fields {
        seq: a.seq,
        unix: a.unix,
        time: Some(&a.time),
        identity: &a.identity,
        action: &a.action,
        target: &a.target,
        outcome: &a.outcome,
        result: &a.result,
        certificate: a.certificate.as_ref(),
        prev_hash: &a.prev_hash,
        hash: &a.hash,
    })
}

/// `d` as [`encode_audit`] encodes `d.entry(0, String::new())` (a redo
/// record's audit write: sequence and hashes are the store's to fill in),
/// without copying the draft's texts into an entry first.
pub fn encode_audit_draft(d: &AuditDraft) -> Vec<u8> {
    encode_fields(Fields {
        seq: 0,
        unix: d.unix,
        time: None,
        identity: &d.identity,
        action: &d.action,
        target: &d.target,
        outcome: &d.outcome,
        result: &d.result,
        certificate: d.certificate.as_ref(),
        prev_hash: "",
        hash: "",
    })
}

fn encode_fields(a: Fields<'_>) -> Vec<u8> {
    let mut e = Enc::new(320);
    e.uv(a.seq);
    e.iv(a.unix);
    match a.time {
        Some(time) => e.time_of(time, a.unix),
        None => e.u8(0),
    }
    e.str(&a.identity.subject);
    e.hex(&a.identity.fingerprint);
    e.word(a.action);
    e.target(a.target);
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
    match a.certificate {
        None => e.u8(0),
        Some(c) => {
            e.u8(1);
            // The serial is usually the target's last part (`CA/serial`).
            if target_tail(a.target) == Some(c.serial.as_str()) {
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
    e.hex(a.prev_hash);
    e.hex(a.hash);
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
