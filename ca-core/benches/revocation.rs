//! Revocation figures (filled in below).
fn main() {}
