//! Revocation interop (filled in below).
