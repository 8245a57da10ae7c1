//! `ca-core`: the PKI engine of the private CA, with no network, storage or async.
//!
//! It takes bytes and values and returns bytes and values: generate keys, parse and
//! check CSRs, apply a profile, lint the to-be-signed certificate, sign through a
//! [`keys::Signer`], and validate chains.

#![forbid(unsafe_code)]

pub mod audit_chain;
pub mod audit_digest;
pub mod cert;
pub mod crl;
pub mod csr;
mod der_util;
pub mod envelope;
pub mod hex;
pub mod keys;
pub mod lint;
pub mod names;
pub mod ocsp;
pub mod oids;
pub mod pem;
pub mod policy;
pub mod profile;
pub mod public_key;
pub mod serial;
pub mod signature;
pub mod verify;
pub mod weak_keys;
mod x509_time;

pub use cert::{
    create_intermediate, create_root, import_signed_ca, issue, prepare, CaCertificate,
    CertificateBundle, CertificateRequest, IntermediateParams, IssueError, IssuedCertificate,
    Issuer, IssuerUrls, NameConstraintsSpec, Prepared, RootParams,
};
pub use csr::{create_csr, parse_csr, Csr, CsrError};
pub use keys::{KeyAlgorithm, PublicKeyKind, Signer, SoftwareKey};
pub use names::SanEntry;
pub use profile::{Profile, ValidityLimits};
pub use serial::Serial;

/// RFC 3339 UTC, the one time format the API, CLI and logs use.
pub fn fmt_time(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
