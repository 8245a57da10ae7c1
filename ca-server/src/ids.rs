//! Identifiers made by the server and checked strictly on input.

/// `ca-` followed by 16 lower-case hex digits.
pub fn new_ca_id() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b)?;
    Ok(format!("ca-{}", ca_core::hex::encode(&b)))
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
        assert!(!is_ca_id("ca-../../etc/passwd"));
        assert!(!is_ca_id("ca-0123456789ABCDEF"));
        assert!(is_serial("0a1b"));
        assert!(!is_serial("0A1B"));
        assert!(!is_serial("abc"));
        assert!(is_token("abc-1_2.3"));
        assert!(!is_token("a b"));
    }
}
