//! `ca-core`: the PKI engine of the private CA, with no network, storage or async.
//!
//! It takes bytes and values and returns bytes and values: generate keys, parse and
//! check CSRs, apply a profile, lint the to-be-signed certificate, sign through a
//! [`keys::Signer`], and validate chains.

#![forbid(unsafe_code)]

pub mod keys;
pub mod oids;
pub mod pem;
pub mod signature;
pub mod verify;
