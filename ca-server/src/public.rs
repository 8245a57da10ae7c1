//! The public listener (plain HTTP, no client certificate): what relying
//! parties fetch at the URLs placed in issued certificates.
//!
//! | path                        | method    | answer                                   |
//! |-----------------------------|-----------|------------------------------------------|
//! | `/health`                   | GET       | JSON                                     |
//! | `/ca/{ca_id}.der` / `.pem`  | GET       | the CA certificate                       |
//! | `/crl/{ca_id}.crl`          | GET       | `application/pkix-crl` DER; PEM with `?format=pem` or `Accept: application/x-pem-file` |
//! | `/ocsp/{ca_id}/{base64}`    | GET       | `application/ocsp-response` (RFC 6960 A.1) |
//! | `/ocsp/{ca_id}`             | POST      | same, body `application/ocsp-request`    |

use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::authority::Authority;
use crate::error::{ApiError, ErrorCode};
use crate::http::{error_response, json_response, Body};
use crate::ids;
use crate::revocation::RevocationService;

const OCSP_RESPONSE: &str = "application/ocsp-response";
/// How long an OCSP POST body may take to arrive.
const OCSP_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn bytes_response(body: Bytes, ctype: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    r
}

fn ocsp_response(body: Bytes) -> Response<Body> {
    let mut r = bytes_response(body, OCSP_RESPONSE);
    // Responses carry their own validity; intermediaries must not outlive it.
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn malformed() -> Response<Body> {
    ocsp_response(Bytes::from(ca_core::ocsp::malformed_request_response()))
}

/// Entry point for one request on the public listener.
pub async fn handle(
    auth: Arc<Authority>,
    revocation: Arc<RevocationService>,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let out = route(&auth, &revocation, req).await;
    tracing::debug!(%path, status = out.status().as_u16(), "public request");
    Ok(out)
}

async fn route(
    auth: &Arc<Authority>,
    rev: &Arc<RevocationService>,
    req: Request<Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    if path.len() > 64 * 1024 {
        return error_response(&ApiError::not_found("no such resource"));
    }
    if let Some(rest) = path.strip_prefix("/ocsp/") {
        let (ca_id, encoded) = rest.split_once('/').unwrap_or((rest, ""));
        if !ids::is_ca_id(ca_id) {
            return error_response(&ApiError::not_found("no such CA"));
        }
        return match method {
            Method::GET => {
                match ca_core::ocsp::decode_get_request(encoded) {
                    // The request names its issuer by hashes; respond_to checks them.
                    Ok(der) => ocsp_response(rev.ocsp(ca_id, &der).await),
                    Err(_) => malformed(),
                }
            }
            Method::POST if encoded.is_empty() => match read_ocsp_body(req).await {
                Some(der) => ocsp_response(rev.ocsp(ca_id, &der).await),
                None => malformed(),
            },
            _ => error_response(&ApiError::new(
                ErrorCode::MethodNotAllowed,
                "OCSP takes GET /ocsp/{ca_id}/{base64 request} or POST /ocsp/{ca_id}",
            )),
        };
    }
    if method != Method::GET && method != Method::HEAD {
        return error_response(&ApiError::new(
            ErrorCode::MethodNotAllowed,
            "the public listener serves GET (and POST for OCSP) only",
        ));
    }
    if path == "/livez" {
        // Liveness: the process answers. Nothing is read.
        return json_response(StatusCode::OK, &json!({"status": "alive"}));
    }
    if path == "/health" {
        // Readiness for a load balancer or monitor: every check, 503 when
        // one fails (a full disk, a key that cannot sign, a stale CRL, a CA
        // about to expire), naming it.
        let report = crate::health::report(auth, auth.started);
        let (status, word) = if report.ok {
            (StatusCode::OK, "ok")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "degraded")
        };
        return json_response(status, &json!({"status": word, "checks": report.checks}));
    }
    if let Some(name) = path.strip_prefix("/crl/") {
        let (id, pem_ext) = match name.rsplit_once('.') {
            Some((id, "crl")) => (id, false),
            Some((id, "pem")) => (id, true),
            _ => return error_response(&ApiError::not_found("no such resource")),
        };
        if !ids::is_ca_id(id) {
            return error_response(&ApiError::not_found("no such CA"));
        }
        let want_pem = pem_ext
            || req
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p.eq_ignore_ascii_case("format=pem")))
            || req
                .headers()
                .get(ACCEPT)
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.to_ascii_lowercase().contains("application/x-pem-file"));
        return match rev.current_crl(id).await {
            Ok(crl) if want_pem => bytes_response(crl.pem(), "application/x-pem-file"),
            Ok(crl) => bytes_response(crl.der.clone(), "application/pkix-crl"),
            Err(e) => error_response(&e.into()),
        };
    }
    if let Some(name) = path.strip_prefix("/ca/") {
        return ca_certificate(auth, name);
    }
    error_response(&ApiError::not_found("no such resource"))
}

/// The body of an OCSP POST, at most `MAX_REQUEST_BYTES`; `None` if larger
/// or unreadable (answered malformedRequest, never read further).
async fn read_ocsp_body(req: Request<Incoming>) -> Option<Vec<u8>> {
    let max = ca_core::ocsp::MAX_REQUEST_BYTES;
    if let Some(len) = req.headers().get(CONTENT_LENGTH) {
        let n: usize = len.to_str().ok()?.parse().ok()?;
        if n > max {
            return None;
        }
    }
    // hyper's header timeout does not cover the body: a client announcing
    // 500 bytes and sending 10 would otherwise hold its connection forever.
    let body = tokio::time::timeout(
        OCSP_BODY_TIMEOUT,
        Limited::new(req.into_body(), max).collect(),
    )
    .await
    .ok()?
    .ok()?;
    Some(body.to_bytes().to_vec())
}

fn ca_certificate(auth: &Authority, name: &str) -> Response<Body> {
    let (id, ext) = match name.rsplit_once('.') {
        Some((id, ext @ ("pem" | "der"))) => (id, ext),
        _ => return error_response(&ApiError::not_found("no such resource")),
    };
    let rec = match auth.get_ca(id) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let Some(pem) = rec.certificate_pem else {
        return error_response(&ApiError::not_found("the CA has no certificate yet"));
    };
    if ext == "pem" {
        return bytes_response(Bytes::from(pem.into_bytes()), "application/x-pem-file");
    }
    match ca_core::pem::decode("CERTIFICATE", &pem) {
        Ok(d) => bytes_response(Bytes::from(d), "application/pkix-cert"),
        Err(e) => error_response(&ApiError::internal("CA PEM", e)),
    }
}
