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
use hyper::header::{
    HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, EXPIRES, IF_NONE_MATCH,
    LAST_MODIFIED,
};
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
    // POST answers are not cached by HTTP caches anyway; say so.
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// An answer to an OCSP GET, which HTTP caches and CDNs may keep (RFC 5019
/// §6.2) for a short, configured time: never beyond half the response's
/// validity, the least a served response has left (the responder's own cache
/// hands out responses only until then).
fn ocsp_get_response(body: Bytes, cfg: &crate::config::RevocationConfig) -> Response<Body> {
    let mut r = bytes_response(body, OCSP_RESPONSE);
    let max_age =
        u64::from(cfg.ocsp_max_age_secs).min(u64::from(cfg.ocsp_validity_minutes) * 60 / 2);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "max-age={max_age}, public, no-transform, must-revalidate"
    )) {
        r.headers_mut().insert(CACHE_CONTROL, v);
    }
    r
}

/// An HTTP date (RFC 9110 §5.6.7), from unix seconds.
fn http_date(unix: i64) -> Option<HeaderValue> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    HeaderValue::from_str(&t.format(&f).ok()?).ok()
}

/// A CRL (DER or PEM) with what HTTP caches need: `Cache-Control` up to its
/// nextUpdate, `Last-Modified`/`Expires`, and an `ETag` naming the CA, the CRL
/// number and the form; a conditional GET whose `If-None-Match` names it gets
/// 304 without the body.
fn crl_response(
    crl: &crate::revocation::ServedCrl,
    ca_id: &str,
    pem: bool,
    if_none_match: Option<&str>,
) -> Response<Body> {
    let etag = format!(
        "\"{ca_id}-{}{}\"",
        crl.meta.crl_number,
        if pem { "-pem" } else { "" }
    );
    let matches = if_none_match.is_some_and(|h| {
        h.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*")
    });
    let mut r = if matches {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if pem {
        bytes_response(crl.pem(), "application/x-pem-file")
    } else {
        bytes_response(crl.der.clone(), "application/pkix-crl")
    };
    let left = (crl.meta.next_update - crate::clock::now().unix_timestamp()).max(0);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={left}, no-transform")) {
        h.insert(CACHE_CONTROL, v);
    }
    if let Some(v) = http_date(crl.meta.this_update) {
        h.insert(LAST_MODIFIED, v);
    }
    if let Some(v) = http_date(crl.meta.next_update) {
        h.insert(EXPIRES, v);
    }
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
    let started = std::time::Instant::now();
    let out = route(&auth, &revocation, req).await;
    tracing::debug!(%path, status = out.status().as_u16(), "public request");
    auth.metrics
        .public_request(route_label(&path), out.status().as_u16(), started.elapsed());
    Ok(out)
}

/// A bounded label for a public path (metrics).
fn route_label(path: &str) -> &'static str {
    match path.trim_start_matches('/').split('/').next() {
        Some("ocsp") => "ocsp",
        Some("crl") => "crl",
        Some("ca") => "ca",
        Some("health") => "health",
        Some("livez") => "livez",
        Some("metrics") => "metrics",
        _ => "other",
    }
}

/// `GET /metrics`: Prometheus text (0.0.4), or OpenMetrics when the
/// scraper's Accept asks for it (Prometheus itself does).
pub async fn metrics_response(
    auth: &Arc<Authority>,
    rev: &Arc<RevocationService>,
    accept: Option<&str>,
) -> Response<Body> {
    let openmetrics = accept.is_some_and(|a| a.contains("application/openmetrics-text"));
    // Reading every CA's CRL record and counting expiring certificates are
    // store reads: off the async threads.
    let (a, r) = (auth.clone(), rev.clone());
    let rendered = tokio::task::spawn_blocking(move || crate::metrics::render(&a, &r))
        .await
        .unwrap_or_else(|e| Err(format!("metrics task: {e}")));
    match rendered {
        Ok(text) => {
            let (body, content_type) = if openmetrics {
                (
                    text,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
            } else {
                (
                    crate::metrics::to_prometheus_text(&text),
                    "text/plain; version=0.0.4; charset=utf-8",
                )
            };
            let mut r = Response::new(Body::from(Bytes::from(body)));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "rendering metrics");
            error_response(&ApiError::new(
                ErrorCode::Unavailable,
                format!("metrics cannot be read now: {e}"),
            ))
        }
    }
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
                    Ok(der) => {
                        ocsp_get_response(rev.ocsp(ca_id, &der).await, &auth.config.revocation)
                    }
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
    if path == "/metrics" && auth.config.metrics.on_public_listener() {
        let accept = req
            .headers()
            .get(ACCEPT)
            .and_then(|a| a.to_str().ok())
            .map(str::to_string);
        return metrics_response(auth, rev, accept.as_deref()).await;
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
        let if_none_match = req
            .headers()
            .get(IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok());
        return match rev.current_crl(id).await {
            Ok(crl) => crl_response(&crl, id, want_pem, if_none_match),
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
