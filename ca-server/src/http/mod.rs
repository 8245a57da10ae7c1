//! The HTTP layer of the management API: routing, JSON in and out, errors.
//! It never sees a CA private key; a server-made key leaves here only
//! encrypted under the caller's passphrase.

mod handlers;
mod input;
mod route;
mod views;

/// The HTTP layer's parsers, opened to the fuzz targets (feature `fuzzing`).
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    /// A query string as the listings read it: every parameter any route
    /// accepts, percent-decoding, and the values parsed as the handlers do.
    pub fn query(q: &str) {
        let allowed = [
            "ca_id",
            "status",
            "expiring_before",
            "limit",
            "cursor",
            "since",
            "until",
            "identity",
            "action",
        ];
        if let Ok(params) = super::input::parse_query(Some(q), &allowed) {
            for key in ["since", "until", "expiring_before"] {
                if let Some(v) = params.get(key) {
                    let _ = super::handlers::parse_time(v, key);
                }
            }
            if let Some(limit) = params.get("limit") {
                let _ = limit.parse::<usize>();
            }
        }
        let _ = super::input::no_query(Some(q));
    }
}

use std::collections::HashMap;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::api::wire;
use crate::authority::{
    check_ca_id, effective_status, fmt_unix, now, reason_from_code, reason_from_name, Authority,
    CertView, Identity, KeyStorage, NameConstraintsInput, NewCa, NewKeyRequest,
};
use crate::error::{ApiError, ErrorCode};
use crate::policy::StatementDto;
use crate::store::{CaRecord, CaType, CertFilter, CertRecord};

pub use handlers::encrypt_key;
use handlers::*;
use input::*;
use route::route;
use views::*;
pub use views::{ca_json, cert_json, cert_summary};

pub type Body = Full<Bytes>;

/// PBKDF2 iterations for passphrase-encrypted keys (OWASP 2023 figure for SHA-256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;
pub const MIN_PASSPHRASE: usize = 8;
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;
/// How long a client may take to send its request body.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    json_body_response(status, body)
}

/// An answer already serialised as JSON.
fn json_body_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// The HTTP status of an error code: the one place the domain's codes meet
/// HTTP (the domain errors know nothing of it).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest | ErrorCode::MalformedCsr | ErrorCode::MalformedCertificate => {
            StatusCode::BAD_REQUEST
        }
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::CaDisabled | ErrorCode::InvalidState | ErrorCode::Conflict => {
            StatusCode::CONFLICT
        }
        ErrorCode::PolicyDenied | ErrorCode::ClientRevoked | ErrorCode::BlockedKey => {
            StatusCode::FORBIDDEN
        }
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::Throttled => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(status_of(e.code), &e.to_json());
    // A 405 says which methods the resource takes (RFC 9110 §15.5.6).
    if e.code == ErrorCode::MethodNotAllowed {
        if let Some(allowed) = e
            .message
            .split_once("(allowed: ")
            .and_then(|(_, rest)| rest.strip_suffix(')'))
        {
            if let Ok(v) = hyper::header::HeaderValue::from_str(allowed) {
                r.headers_mut().insert(hyper::header::ALLOW, v);
            }
        }
    }
    r
}

/// Audit a request refused before it reached the API: a client certificate
/// that does not parse, is revoked, is not one the client-auth CA holds as
/// issued, or has expired. `who` is absent when the certificate did not parse.
/// The refusal stands whether or not the entry could be written.
pub async fn audit_refused_client(
    auth: &Authority,
    peer: std::net::IpAddr,
    who: Option<&Identity>,
    method: &Method,
    path: &str,
    refusal: &ApiError,
) {
    // Within the connection-refusal budget; the rest go into its summary.
    if !auth.refusals.admit("ClientRefused", peer) {
        return;
    }
    let (action, target) = crate::audit::classify(method.as_str(), path);
    let decisions = crate::audit::Decisions {
        identity: who.map(|w| crate::audit::AuditIdentity {
            subject: w.display(),
            fingerprint: w.fingerprint.clone(),
        }),
        action,
        target,
        outcome: Some(crate::audit::AuditOutcome {
            decision: "denied".into(),
            statement: None,
            reason: refusal.message.clone(),
        }),
        ..Default::default()
    };
    let status = status_of(refusal.code).as_u16();
    if let Err(e) = audit_call(auth, decisions, status, refusal.code.as_str().into()).await {
        tracing::warn!(error = %e.message, "could not audit a refused client");
    }
}

/// Entry point for one request on the management API.
pub async fn handle(
    auth: Arc<Authority>,
    identity: Arc<Identity>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    // Admission control first: under overload a call is refused (and still
    // audited) before it costs any work.
    let permit = match auth.in_flight.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            let e = ApiError::new(
                ErrorCode::Throttled,
                "too many requests in flight; retry shortly",
            );
            let code = e.code.as_str().to_string();
            let call = call_of(&identity, &method, &path);
            if let Err(audit_err) = audit_call(&auth, call, status_of(e.code).as_u16(), code).await
            {
                return Ok(error_response(&audit_err));
            }
            return Ok(error_response(&e));
        }
    };
    let call = call_of(&identity, &method, &path);
    // Boxed: held inline, the router's future (~6 KB, its largest action's)
    // made this one ~20 KB, copied whole at each move (into the task spawned
    // per request among them); boxed, this one is ~1 KB.
    let (result, decisions) =
        crate::audit::with_call(call, Box::pin(route(&auth, &identity, req))).await;
    let (status, code) = match &result {
        Ok((status, _)) => (status.as_u16(), "success".to_string()),
        Err(e) => (status_of(e.code).as_u16(), e.code.as_str().to_string()),
    };
    // Every call is audited before it is answered. A call that changed
    // state committed its entry with the change; every other call (and one
    // that failed after its change committed) is appended here. A failed
    // audit write fails the call.
    if !(decisions.audited && result.is_ok()) {
        if let Err(e) = audit_call(&auth, decisions, status, code.clone()).await {
            return Ok(error_response(&e));
        }
    }
    drop(permit);
    let out = match result {
        Ok((status, body)) => json_body_response(status, body),
        Err(e) => {
            if e.code == ErrorCode::Internal {
                tracing::error!(%method, %path, "request failed");
            } else {
                tracing::debug!(%method, %path, code = %e.code, msg = %e.message, "request refused");
            }
            error_response(&e)
        }
    };
    tracing::debug!(%method, %path, status = out.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    if auth.metrics.enabled() {
        let (action, _) = crate::audit::classify(method.as_str(), &path);
        auth.metrics.api_request(&action, &code, started.elapsed());
    }
    Ok(out)
}

/// An answer's status and its JSON, serialised.
type Reply = Result<(StatusCode, Vec<u8>), ApiError>;

/// What the audit trail will say of this call, before it runs.
fn call_of(who: &Identity, method: &Method, path: &str) -> crate::audit::Decisions {
    let (action, target) = crate::audit::classify(method.as_str(), path);
    crate::audit::Decisions {
        identity: Some(crate::audit::AuditIdentity {
            subject: who.display(),
            fingerprint: who.fingerprint.clone(),
        }),
        success_status: crate::audit::success_status(method.as_str(), path),
        action,
        target,
        ..Default::default()
    }
}

/// A typed answer as the JSON `handle` sends. Going through `Value` keeps
/// the keys in the order the API has always written them (sorted).
fn reply<T: Serialize>(status: StatusCode, answer: &T) -> Reply {
    serde_json::to_value(answer)
        .and_then(|v| serde_json::to_vec(&v))
        .map(|body| (status, body))
        .map_err(|e| ApiError::internal("answer encoding", e))
}

/// A certificate answer (issue, renew, get), written straight to bytes: its
/// `Serialize` sorts its keys itself (`wire::Certificate`), as `reply`'s
/// detour through `Value` would (the issuance path's answer; building the
/// map cost ~1% of the server's CPU per certificate).
fn reply_certificate(status: StatusCode, answer: &wire::Certificate) -> Reply {
    serde_json::to_vec(answer)
        .map(|body| (status, body))
        .map_err(|e| ApiError::internal("answer encoding", e))
}

async fn audit_call(
    auth: &Authority,
    decisions: crate::audit::Decisions,
    status: u16,
    code: String,
) -> Result<(), ApiError> {
    use crate::audit::{AuditIdentity, AuditOutcome, AuditResult};
    let mut target = decisions.target.clone();
    if target.is_empty() {
        target = decisions.ca.clone().unwrap_or_default();
    }
    let draft = crate::store::AuditDraft {
        unix: now().unix_timestamp(),
        identity: decisions.identity.clone().unwrap_or(AuditIdentity {
            subject: String::new(),
            fingerprint: String::new(),
        }),
        action: decisions.action.clone(),
        target,
        outcome: decisions.outcome.unwrap_or(AuditOutcome {
            decision: "not_evaluated".into(),
            statement: None,
            reason: "refused before the policy check".into(),
        }),
        result: AuditResult { status, code },
        certificate: None,
    };
    match auth.store.append_audit(draft).await {
        Ok(_) => Ok(()),
        Err(e @ crate::store::StoreError::Unavailable(_)) => Err(e.into()),
        Err(e) => Err(ApiError::internal("audit append", e)),
    }
}
