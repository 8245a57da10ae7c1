//! API errors: a stable machine-readable code and a human message. The
//! domain knows nothing of HTTP: the HTTP layer maps a code to its status
//! (`crate::http::status_of`).
//!
//! Every failure a client can see goes through [`ApiError`]; its message never
//! carries internals (paths, database errors, key material).

use std::fmt;

/// Stable error codes (the `code` field of every error body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is not acceptable: bad JSON, wrong types, bad values.
    InvalidRequest,
    /// The CSR does not parse, its signature does not verify, or its key is refused.
    MalformedCsr,
    /// A certificate supplied by the client does not parse or does not fit.
    MalformedCertificate,
    /// No such CA or certificate.
    NotFound,
    /// The CA is disabled and issues nothing.
    CaDisabled,
    /// The resource is not in a state that allows this (e.g. CA pending its certificate).
    InvalidState,
    /// The request conflicts with an earlier one (idempotency token reused, already revoked).
    Conflict,
    /// The caller may not do this, or the certificate would break policy or lint.
    PolicyDenied,
    /// No client identity.
    Unauthenticated,
    /// The client's certificate (or a CA above it) has been revoked.
    ClientRevoked,
    /// The body is larger than the configured limit.
    TooLarge,
    /// The method is not allowed on this path.
    MethodNotAllowed,
    /// The body is not JSON.
    UnsupportedMediaType,
    /// Too many requests at once.
    Throttled,
    /// The public key was revoked for keyCompromise and may not be certified again.
    BlockedKey,
    /// The server failed; details are in its log.
    Internal,
    /// The server is shutting down or its store is unavailable.
    Unavailable,
}

impl ErrorCode {
    /// Every code, for the API description (keep in step with the enum).
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::InvalidRequest,
        ErrorCode::MalformedCsr,
        ErrorCode::MalformedCertificate,
        ErrorCode::NotFound,
        ErrorCode::CaDisabled,
        ErrorCode::InvalidState,
        ErrorCode::Conflict,
        ErrorCode::PolicyDenied,
        ErrorCode::Unauthenticated,
        ErrorCode::ClientRevoked,
        ErrorCode::TooLarge,
        ErrorCode::MethodNotAllowed,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Throttled,
        ErrorCode::BlockedKey,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "InvalidRequest",
            ErrorCode::MalformedCsr => "MalformedCsr",
            ErrorCode::MalformedCertificate => "MalformedCertificate",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::CaDisabled => "CaDisabled",
            ErrorCode::InvalidState => "InvalidState",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::PolicyDenied => "PolicyDenied",
            ErrorCode::Unauthenticated => "Unauthenticated",
            ErrorCode::ClientRevoked => "ClientRevoked",
            ErrorCode::TooLarge => "TooLarge",
            ErrorCode::MethodNotAllowed => "MethodNotAllowed",
            ErrorCode::UnsupportedMediaType => "UnsupportedMediaType",
            ErrorCode::Throttled => "Throttled",
            ErrorCode::BlockedKey => "BlockedKey",
            ErrorCode::Internal => "Internal",
            ErrorCode::Unavailable => "Unavailable",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        if message.len() > 1000 {
            let mut cut = 1000;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        ApiError { code, message }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// An internal failure: logged in full, answered without details.
    pub fn internal(context: &str, err: impl fmt::Display) -> Self {
        tracing::error!(error = %err, "{context}");
        Self::new(
            ErrorCode::Internal,
            "internal error; the server log has details",
        )
    }

    /// The body of every error answer (see [`crate::api::wire::ErrorBody`]).
    pub fn to_json(&self) -> serde_json::Value {
        let body = crate::api::wire::ErrorBody {
            error: crate::api::wire::ErrorDetail {
                code: self.code.as_str().into(),
                message: self.message.clone(),
            },
        };
        // Two strings always serialise; the fallback keeps the shape regardless.
        serde_json::to_value(body).unwrap_or_else(
            |_| serde_json::json!({"error": {"code": self.code.as_str(), "message": ""}}),
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound(m) => ApiError::not_found(m),
            StoreError::Conflict(m) => ApiError::conflict(m),
            e @ StoreError::KeyBlocked(_) => ApiError::new(ErrorCode::BlockedKey, e.to_string()),
            StoreError::Closed => ApiError::new(ErrorCode::Unavailable, "the store is closed"),
            // The cause (such as a full disk) is the operator's to fix and
            // names no internals; the store recovers by itself.
            StoreError::Unavailable(m) => {
                tracing::error!(error = %m, "store unavailable");
                ApiError::new(
                    ErrorCode::Unavailable,
                    format!("the store cannot write now: {m}"),
                )
            }
            other => ApiError::internal("store", other),
        }
    }
}
