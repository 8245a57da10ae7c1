//! Identifiers made by the server and checked strictly on input.

/// `ca-` followed by 16 lower-case hex digits: the creation time (32 bits
/// of Unix seconds) then 32 random bits. Ordered by time so the newest CA's
/// certificates, which are keyed by CA id, sort last in the store's indexes,
/// which then append them and keep their pages full, where keys that land
/// before another CA's would split pages in half. Existing ids stay as they are.
/// Within one process they strictly ascend (a root and its intermediate are
/// often made in the same second).
pub fn new_ca_id() -> Result<String, getrandom::Error> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let secs = u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp())
        .unwrap_or(0)
        .min(u64::from(u32::MAX));
    let mut r = [0u8; 4];
    getrandom::getrandom(&mut r)?;
    let wanted = secs << 32 | u64::from(u32::from_be_bytes(r));
    let id = match LAST.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
        Some(wanted.max(last.wrapping_add(1)))
    }) {
        Ok(last) | Err(last) => wanted.max(last.wrapping_add(1)),
    };
    Ok(format!("ca-{id:016x}"))
}

pub fn is_ca_id(s: &str) -> bool {
    s.len() == 19
        && s.starts_with("ca-")
        && s[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Lower-case hex without leading zero bytes' worth of padding issues: 1..=40
/// hex digits, even length, lower case (the form the server prints).
pub fn is_serial(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.len() % 2 == 0
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Idempotency tokens: 1..=64 of `[A-Za-z0-9._-]`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// A random id for this server process (marks intents it made).
pub fn boot_id() -> String {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    ca_core::hex::encode(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id = new_ca_id().unwrap();
        assert!(is_ca_id(&id));
        assert!(new_ca_id().unwrap() > id, "ids ascend");
        assert!(!is_ca_id("ca-../../etc/passwd"));
        assert!(!is_ca_id("ca-0123456789ABCDEF"));
        assert!(is_serial("0a1b"));
        assert!(!is_serial("0A1B"));
        assert!(!is_serial("abc"));
        assert!(is_token("abc-1_2.3"));
        assert!(!is_token("a b"));
    }
}
