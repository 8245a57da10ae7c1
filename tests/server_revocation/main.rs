//! Revocation through the real `ca-server` binary: CRLs checked by `openssl crl
//! -verify` and `openssl verify -crl_check`, the OCSP responder queried by
//! `openssl ocsp -url` (POST) and by curl (GET and POST), malformed OCSP input,
//! idempotent revocation, sub-CA revocation, and a revoked operator locked out
//! of the management API at once.

#[path = "../harness/mod.rs"]
mod harness;

mod interop;
mod lockout;
mod reasons;
mod responder;
mod slow_clients;
