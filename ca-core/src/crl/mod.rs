//! Certificate revocation lists (RFC 5280 section 5): building v2 CRLs signed by
//! a CA key, and parsing and checking CRLs.
//!
//! A CA with a million revoked certificates must still publish its CRL in
//! seconds, so the `revokedCertificates` list is written by hand straight into
//! the output buffer (one allocation, exact DER lengths) instead of going
//! through `x509_cert`'s owned structures, which allocate several times per
//! entry. The same goes for parsing: [`ParsedCrl`] keeps the DER and a compact
//! index sorted by serial (12 bytes per entry) instead of a decoded list.
//!
//! For incremental publication a store keeps each revocation's DER entry (from
//! [`encode_revoked_entry`]) and hands the bytes to [`build_crl_from_encoded`],
//! which only checks their framing, so a new CRL costs one copy and one
//! signature however long the list is.

mod encode;
mod parse;

use std::fmt;

use const_oid::ObjectIdentifier;
use time::OffsetDateTime;

use crate::keys::KeyError;
use crate::pem::PemError;
use crate::serial::Serial;
use crate::signature::SignatureError;

pub use encode::{
    build_crl, build_crl_from_encoded, encode_revoked_entry, encode_revoked_entry_into,
    encoded_entry_len, to_pem,
};
pub use parse::{parse_crl, verify_crl_signature, ParsedCrl};

/// PEM label of a CRL (RFC 7468 section 6).
pub const PEM_LABEL: &str = "X509 CRL";

const DELTA_CRL_INDICATOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.27");
/// The CRL number is an INTEGER of at most 20 octets (RFC 5280 5.2.3).
const MAX_CRL_NUMBER_OCTETS: usize = 20;

/// `[0] EXPLICIT`, as the hand-written encoder and reader use it.
const TAG_EXPLICIT_0: u8 = 0xa0;

#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("the signer's key is not the CA certificate's key")]
    SignerMismatch,
    #[error("the CA certificate's keyUsage lacks cRLSign")]
    NoCrlSign,
    #[error("nextUpdate must be later than thisUpdate")]
    BadUpdateTimes,
    #[error("time {0} cannot be encoded in a CRL (years 1950 to 9999 only)")]
    TimeRange(String),
    #[error("removeFromCRL is only meaningful in delta CRLs; this CA publishes complete CRLs")]
    RemoveFromCrlNotAllowed,
    #[error("pre-encoded revoked entries are malformed at byte {0}")]
    BadEncodedEntries(usize),
    #[error("the CRL is larger than 4 GiB")]
    TooLarge,
    #[error("CRL: {0}")]
    Pem(#[from] PemError),
    #[error("CRL does not parse: {0}")]
    Malformed(String),
    #[error("CRL issuer is not {0}")]
    IssuerMismatch(String),
    #[error("CRL signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("signing: {0}")]
    Key(#[from] KeyError),
    #[error("encoding failed: {0}")]
    Encoding(#[from] der::Error),
    #[error("unknown revocation reason {0:?}")]
    UnknownReason(String),
}

fn malformed(what: impl Into<String>) -> CrlError {
    CrlError::Malformed(what.into())
}

/// RFC 5280 CRLReason (section 5.3.1). Code 7 is unassigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RevocationReason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    RemoveFromCrl = 8,
    PrivilegeWithdrawn = 9,
    AaCompromise = 10,
}

impl RevocationReason {
    pub const ALL: [RevocationReason; 10] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold,
        RevocationReason::RemoveFromCrl,
        RevocationReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise,
    ];

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    /// The RFC 5280 ASN.1 name, e.g. `keyCompromise`.
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "cACompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::CertificateHold => "certificateHold",
            RevocationReason::RemoveFromCrl => "removeFromCRL",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
            RevocationReason::AaCompromise => "aACompromise",
        }
    }

    /// The same reason in `x509_cert`'s type (used in OCSP responses).
    pub fn to_x509(self) -> x509_cert::ext::pkix::CrlReason {
        use x509_cert::ext::pkix::CrlReason as R;
        match self {
            RevocationReason::Unspecified => R::Unspecified,
            RevocationReason::KeyCompromise => R::KeyCompromise,
            RevocationReason::CaCompromise => R::CaCompromise,
            RevocationReason::AffiliationChanged => R::AffiliationChanged,
            RevocationReason::Superseded => R::Superseded,
            RevocationReason::CessationOfOperation => R::CessationOfOperation,
            RevocationReason::CertificateHold => R::CertificateHold,
            RevocationReason::RemoveFromCrl => R::RemoveFromCRL,
            RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
            RevocationReason::AaCompromise => R::AaCompromise,
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for RevocationReason {
    type Err = CrlError;
    /// Accepts the RFC name in any case, with or without `-`/`_` separators
    /// (`keyCompromise`, `key-compromise`, `KEY_COMPROMISE`), or the numeric code.
    fn from_str(s: &str) -> Result<Self, CrlError> {
        let unknown = || CrlError::UnknownReason(s.chars().take(40).collect());
        if let Ok(code) = s.trim().parse::<u8>() {
            return Self::from_code(code).ok_or_else(unknown);
        }
        let norm: String = s
            .trim()
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Self::ALL
            .into_iter()
            .find(|r| r.name().to_ascii_lowercase() == norm)
            .ok_or_else(unknown)
    }
}

/// One revoked certificate as a CRL lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokedEntry {
    pub serial: Serial,
    pub revoked_at: OffsetDateTime,
    pub reason: RevocationReason,
}

/// What varies between successive CRLs of one CA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlParams {
    /// Strictly increasing per CA (RFC 5280 5.2.3); the caller persists it.
    pub crl_number: u64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
}

#[cfg(test)]
mod tests;
