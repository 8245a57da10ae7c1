//! Event records, kept whole or as the audit entry they were made from.

use super::{
    binary, corrupt, issuance_event, unjson, AuditEntry, Dec, Enc, EventDetail, EventRecord,
    StoreError, AUDIT_REF,
};

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
