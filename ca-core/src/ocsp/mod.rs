//! OCSP (RFC 6960): parsing requests, matching them to a CA, and building signed
//! responses, by the CA itself or by a delegated OCSP-signing certificate.
//!
//! Nothing here touches the network. A responder (the server) does:
//!
//! 1. For GET, [`decode_get_request`] on the path segment after the OCSP URL;
//!    for POST, the body as is.
//! 2. [`respond`] with the CA's [`Responder`] and a lookup from serial to status.
//!    It never fails: malformed input gets the `malformedRequest` status, a
//!    request for another CA's certificates `unauthorized`, a signing failure
//!    `internalError`.
//!
//! Caching (what keeps a lookup cheap): a signed response stays valid until its
//! `nextUpdate`, so a responder may serve it again for any request that asks
//! the same question. A request without a nonce ([`OcspRequestInfo::cacheable`])
//! can be answered from a cache keyed by the request DER (GET URLs are the
//! common case: relying parties and CDNs repeat them byte for byte), or by
//! `(CertID hash algorithm, serial)` for single-certificate requests. A cached
//! entry must be dropped when the certificate's status changes (revocation) and
//! before its `nextUpdate`. A request with a nonce needs a fresh signature
//! because the nonce is inside the signed data.

mod delegated;
mod request;
mod response;

use const_oid::ObjectIdentifier;

use crate::keys::KeyError;

pub use delegated::create_ocsp_signing_certificate;
pub use request::{
    decode_get_request, encode_request, parse_request, CertIdInfo, HashAlg, IssuerHashes,
    OcspRequestInfo,
};
pub use response::{
    build_response, respond, respond_to, CertStatusInput, Responder, ResponderIdentity,
    SingleResponseInput,
};

/// Largest request accepted. Real requests are 70 to 300 octets; anything
/// near this is an attack or a mistake.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Most CertIDs answered in one request: each costs a lookup and response bytes.
pub const MAX_CERT_IDS: usize = 32;
/// RFC 8954 2.1: nonces over 128 octets must be refused with malformedRequest.
pub const MAX_NONCE_BYTES: usize = 128;
/// Longest lifetime of a delegated OCSP-signing certificate. It carries
/// id-pkix-ocsp-nocheck, so it cannot itself be revoked: keep it short.
pub const MAX_OCSP_SIGNER_DAYS: u32 = 90;

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// DER of status-only responses (`OCSPResponse { responseStatus }`), constant.
const MALFORMED_REQUEST: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];
const INTERNAL_ERROR: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x02];
const TRY_LATER: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x03];
const UNAUTHORIZED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x06];

/// The `malformedRequest` response.
pub fn malformed_request_response() -> Vec<u8> {
    MALFORMED_REQUEST.to_vec()
}

/// The `unauthorized` response: this responder does not answer for that issuer.
pub fn unauthorized_response() -> Vec<u8> {
    UNAUTHORIZED.to_vec()
}

/// The `internalError` response.
pub fn internal_error_response() -> Vec<u8> {
    INTERNAL_ERROR.to_vec()
}

/// The `tryLater` response (e.g. the CA key is unavailable).
pub fn try_later_response() -> Vec<u8> {
    TRY_LATER.to_vec()
}

#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    #[error("empty OCSP request")]
    Empty,
    #[error("OCSP request of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("OCSP request does not parse: {0}")]
    Malformed(String),
    #[error("OCSP request asks about no certificate")]
    NoCertIds,
    #[error("OCSP request asks about {0} certificates (at most {MAX_CERT_IDS})")]
    TooManyCertIds(usize),
    #[error("OCSP nonce of {0} octets is outside 1..={MAX_NONCE_BYTES}")]
    BadNonce(usize),
    #[error("OCSP request has an unsupported critical extension {0}")]
    UnsupportedCriticalExtension(String),
    #[error("the GET request path is not base64 of a DER request")]
    BadGetEncoding,
    #[error("the signer's key is not the responder certificate's key")]
    SignerMismatch,
    #[error("not a delegated OCSP responder for this CA: {0}")]
    NotDelegated(&'static str),
    #[error("the responder certificate is not valid at {0}")]
    ResponderNotValid(String),
    #[error("a response needs at least one single response")]
    NoResponses,
    #[error("validity of {0} days is outside 1..={MAX_OCSP_SIGNER_DAYS}")]
    InvalidValidity(u32),
    #[error("time {0} cannot be encoded")]
    TimeRange(String),
    #[error("key: {0}")]
    Key(#[from] KeyError),
    #[error("encoding failed: {0}")]
    Encoding(#[from] der::Error),
}

impl OcspError {
    /// Whether the error is the client's (malformedRequest) rather than ours.
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            OcspError::Empty
                | OcspError::TooLarge { .. }
                | OcspError::Malformed(_)
                | OcspError::NoCertIds
                | OcspError::TooManyCertIds(_)
                | OcspError::BadNonce(_)
                | OcspError::UnsupportedCriticalExtension(_)
                | OcspError::BadGetEncoding
        )
    }

    /// The status-only OCSP response that answers this error.
    pub fn to_response(&self) -> Vec<u8> {
        if self.is_request_error() {
            malformed_request_response()
        } else {
            internal_error_response()
        }
    }
}

#[cfg(test)]
mod tests;
