//! CA aliases (the KMS alias idea): a stable name such as `issuing` that
//! points at the CA that issues now. Clients that issue by alias keep their
//! configuration when the CA is rotated: rotation makes a new intermediate
//! under the same parent, repoints the alias and retires the old CA, which
//! keeps serving its CRL and OCSP (the public listener does not look at the
//! status) until its last certificate expires, but issues nothing.
//!
//! The store keeps them (alias → CA id); this module says what an alias is.

/// The alias init points at the issuing CA.
pub const DEFAULT_ALIAS: &str = "issuing";

/// 1-64 of a-z 0-9 - _, starting with a letter, and never shaped like a CA id
/// (so an id and an alias can never be confused).
pub fn is_alias(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !crate::ids::is_ca_id(s)
}
