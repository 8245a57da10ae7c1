//! ACME problem documents (RFC 8555 §6.7, RFC 7807) and how the server's
//! own errors map onto them.

use serde_json::{json, Value};

use crate::error::{ApiError, ErrorCode};
use crate::store::StoreError;

/// An ACME problem document (RFC 8555 §6.7, RFC 7807).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The part after `urn:ietf:params:acme:error:`.
    pub kind: &'static str,
    pub detail: String,
    pub status: u16,
}

macro_rules! problems {
    ($($fn:ident => $kind:literal, $status:literal;)*) => {
        impl Problem {
            $(pub fn $fn(detail: impl Into<String>) -> Problem {
                Problem { kind: $kind, detail: detail.into(), status: $status }
            })*
        }
    };
}

problems! {
    malformed => "malformed", 400;
    not_found => "malformed", 404;
    bad_nonce => "badNonce", 400;
    bad_signature_algorithm => "badSignatureAlgorithm", 400;
    bad_public_key => "badPublicKey", 400;
    unauthorized => "unauthorized", 403;
    account_does_not_exist => "accountDoesNotExist", 400;
    order_not_ready => "orderNotReady", 403;
    bad_csr => "badCSR", 400;
    rejected_identifier => "rejectedIdentifier", 400;
    unsupported_identifier => "unsupportedIdentifier", 400;
    already_revoked => "alreadyRevoked", 400;
    bad_revocation_reason => "badRevocationReason", 400;
    incorrect_response => "incorrectResponse", 403;
    connection => "connection", 400;
    dns => "dns", 400;
    rate_limited => "rateLimited", 429;
    server => "serverInternal", 500;
    unavailable => "serverInternal", 503;
}

impl Problem {
    pub fn to_json(&self) -> Value {
        json!({
            "type": format!("urn:ietf:params:acme:error:{}", self.kind),
            "detail": self.detail,
            "status": self.status,
        })
    }

    pub(super) fn from_api(e: ApiError) -> Problem {
        let detail = e.message.clone();
        match e.code {
            ErrorCode::PolicyDenied => Problem::rejected_identifier(detail),
            ErrorCode::MalformedCsr | ErrorCode::BlockedKey => Problem::bad_csr(detail),
            ErrorCode::InvalidRequest => Problem::malformed(detail),
            ErrorCode::NotFound => Problem::not_found(detail),
            ErrorCode::Unavailable | ErrorCode::Throttled => Problem::unavailable(detail),
            ErrorCode::CaDisabled | ErrorCode::InvalidState | ErrorCode::Conflict => {
                Problem::unauthorized(detail)
            }
            _ => Problem::server(detail),
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::Unavailable(m) => Problem::unavailable(m),
            StoreError::NotFound(m) => Problem::not_found(m),
            other => {
                tracing::error!(error = %other, "acme: store");
                Problem::server("internal error; the server log has details")
            }
        }
    }
}
