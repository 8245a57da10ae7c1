//! The HTTP layer of the management API: routing, JSON in and out, errors.
//! It never sees a CA private key; a server-made key leaves here only
//! encrypted under the caller's passphrase.

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
    CertView, Identity, NameConstraintsInput, NewCa, NewKeyRequest,
};
use crate::error::{ApiError, ErrorCode};
use crate::policy::StatementDto;
use crate::store::{CaRecord, CaType, CertFilter, CertRecord};

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
        ErrorCode::PolicyDenied | ErrorCode::ClientRevoked => StatusCode::FORBIDDEN,
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
    json_response(status_of(e.code), &e.to_json())
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
    let (result, decisions) = crate::audit::with_call(call, route(&auth, &identity, req)).await;
    let (status, code) = match &result {
        Ok((status, _)) => (status.as_u16(), "success".to_string()),
        Err(e) => (status_of(e.code).as_u16(), e.code.as_str().to_string()),
    };
    // Every call is audited before it is answered. A call that changed
    // state committed its entry with the change; every other call (and one
    // that failed after its change committed) is appended here. A failed
    // audit write fails the call.
    if !(decisions.audited && result.is_ok()) {
        if let Err(e) = audit_call(&auth, decisions, status, code).await {
            return Ok(error_response(&e));
        }
    }
    drop(permit);
    let out = match result {
        Ok((status, v)) => json_response(status, &v),
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
    Ok(out)
}

type Reply = Result<(StatusCode, Value), ApiError>;

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

/// A typed answer as the JSON value `handle` sends. Going through `Value`
/// keeps the keys in the order the API has always written them (sorted).
fn reply<T: Serialize>(status: StatusCode, answer: &T) -> Reply {
    serde_json::to_value(answer)
        .map(|v| (status, v))
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
    };
    match auth.store.append_audit(draft).await {
        Ok(_) => Ok(()),
        Err(e @ crate::store::StoreError::Unavailable(_)) => Err(e.into()),
        Err(e) => Err(ApiError::internal("audit append", e)),
    }
}

async fn read_body(auth: &Authority, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limit = auth.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            ErrorCode::TooLarge,
            format!("the request body is larger than {limit} bytes"),
        )
    };
    if let Some(len) = req.headers().get(CONTENT_LENGTH) {
        let n: Option<usize> = len.to_str().ok().and_then(|s| s.parse().ok());
        match n {
            Some(n) if n > limit => return Err(too_large()),
            Some(_) => {}
            None => return Err(ApiError::invalid("Content-Length is not a number")),
        }
    }
    if let Some(ct) = req.headers().get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        let base = ct.split(';').next().unwrap_or("").trim();
        if base != "application/json" {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "the body must be application/json",
            ));
        }
    }
    let read = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Err(_) => Err(ApiError::invalid("the request body did not arrive in time")),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(_)) => Err(ApiError::invalid("the request body could not be read")),
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ApiError::invalid("the request needs a JSON body"));
    }
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::invalid(format!("the body is not valid JSON: {e}"))
            }
            Category::Data => ApiError::invalid(format!("the JSON does not fit this request: {e}")),
        }
    })
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bad = || ApiError::invalid("the query string is not valid percent-encoding");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or_else(bad)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn parse_query(q: Option<&str>, allowed: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let mut m = HashMap::new();
    let Some(q) = q else { return Ok(m) };
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k)?;
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::invalid(format!(
                "unknown query parameter {:?} (allowed: {})",
                k.chars().take(40).collect::<String>(),
                allowed.join(", ")
            )));
        }
        m.insert(k, percent_decode(v)?);
    }
    Ok(m)
}

fn no_query(q: Option<&str>) -> Result<(), ApiError> {
    parse_query(q, &[]).map(|_| ())
}

fn method_not_allowed(allowed: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("method not allowed here (allowed: {allowed})"),
    )
}

async fn route(auth: &Arc<Authority>, who: &Identity, req: Request<Incoming>) -> Reply {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let q = query.as_deref();
    if path.len() > 512 {
        return Err(ApiError::not_found("no such resource"));
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["health"] => match method {
            Method::GET => {
                let h = health(auth);
                let status = if h.store.writable {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                reply(status, &h)
            }
            _ => Err(method_not_allowed("GET")),
        },
        ["v1", "whoami"] => match method {
            Method::GET => {
                no_query(q)?;
                reply(
                    StatusCode::OK,
                    &wire::WhoAmI {
                        subject: who.subject.clone(),
                        sans: who.sans.clone(),
                    },
                )
            }
            _ => Err(method_not_allowed("GET")),
        },
        ["v1", "cas"] => match method {
            Method::GET => {
                no_query(q)?;
                let items: Vec<wire::CaDescription> =
                    auth.list_readable_cas(who)?.iter().map(ca_json).collect();
                reply(
                    StatusCode::OK,
                    &wire::CaList {
                        certificate_authorities: items,
                    },
                )
            }
            Method::POST => {
                no_query(q)?;
                let body: wire::CreateCa = parse_json(&read_body(auth, req).await?)?;
                create_ca(auth, who, body).await
            }
            _ => Err(method_not_allowed("GET, POST")),
        },
        ["v1", "cas", id] => {
            check_ca_id(id)?;
            no_query(q)?;
            match method {
                Method::GET => reply(StatusCode::OK, &ca_json(&auth.describe_ca(who, id)?)),
                Method::PATCH => {
                    let body: wire::UpdateCaStatus = parse_json(&read_body(auth, req).await?)?;
                    let rec = auth.update_ca_status(who, id, &body.status).await?;
                    reply(StatusCode::OK, &ca_json(&rec))
                }
                _ => Err(method_not_allowed("GET, PATCH")),
            }
        }
        ["v1", "cas", id, "csr"] => {
            check_ca_id(id)?;
            no_query(q)?;
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            let (rec, csr) = auth.ca_csr(who, id)?;
            reply(StatusCode::OK, &wire::CaCsr { ca_id: rec.id, csr })
        }
        ["v1", "cas", id, "certificate"] => {
            check_ca_id(id)?;
            no_query(q)?;
            match method {
                Method::GET => {
                    let (rec, cert) = auth.ca_certificate(who, id)?;
                    reply(
                        StatusCode::OK,
                        &wire::CaCertificate {
                            certificate_chain: rec.chain_pem.concat(),
                            ca_id: rec.id,
                            certificate: cert,
                        },
                    )
                }
                Method::POST => {
                    let body: wire::ImportCaCertificate = parse_json(&read_body(auth, req).await?)?;
                    let rec = auth
                        .import_ca_certificate(who, id, &body.certificate, &body.certificate_chain)
                        .await?;
                    reply(StatusCode::OK, &ca_json(&rec))
                }
                _ => Err(method_not_allowed("GET, POST")),
            }
        }
        ["v1", "certificates"] => match method {
            Method::GET => list_certificates(auth, who, q),
            Method::POST => {
                no_query(q)?;
                let body: wire::IssueCertificate = parse_json(&read_body(auth, req).await?)?;
                let ca_id = body.ca_id.unwrap_or_else(|| auth.default_ca());
                let view = auth
                    .issue_from_csr(
                        who,
                        &ca_id,
                        &body.csr,
                        body.profile.as_deref().unwrap_or("tls-server"),
                        body.validity_days,
                        body.idempotency_token.as_deref(),
                    )
                    .await?;
                reply(StatusCode::CREATED, &cert_json(&view))
            }
            _ => Err(method_not_allowed("GET, POST")),
        },
        ["v1", "certificates", "request"] => {
            no_query(q)?;
            if method != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            let body: wire::RequestCertificate = parse_json(&read_body(auth, req).await?)?;
            request_certificate(auth, who, body).await
        }
        ["v1", "certificates", serial] => {
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            let params = parse_query(q, &["ca_id"])?;
            let view =
                auth.get_certificate(who, params.get("ca_id").map(String::as_str), serial)?;
            reply(StatusCode::OK, &cert_json(&view))
        }
        ["v1", "certificates", serial, "renew"] => {
            no_query(q)?;
            if method != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            let body: wire::RenewCertificate = parse_json(&read_body(auth, req).await?)?;
            let view = auth
                .renew(
                    who,
                    body.ca_id.as_deref(),
                    serial,
                    body.csr.as_deref(),
                    body.validity_days,
                    body.idempotency_token.as_deref(),
                )
                .await?;
            reply(StatusCode::CREATED, &cert_json(&view))
        }
        ["v1", "certificates", serial, "revoke"] => {
            no_query(q)?;
            if method != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            let body: wire::RevokeCertificate = parse_json(&read_body(auth, req).await?)?;
            let reason = match &body.reason {
                wire::RevocationReason::Code(n) => reason_from_code(n.as_i64().unwrap_or(-1))?,
                wire::RevocationReason::Name(s) => reason_from_name(s)?,
                wire::RevocationReason::Other(_) => {
                    return Err(ApiError::invalid("reason must be a CRLReason code or name"))
                }
            };
            let rec = auth
                .revoke(who, body.ca_id.as_deref(), serial, reason)
                .await?;
            reply(StatusCode::OK, &cert_summary(&rec))
        }
        ["v1", "policies"] => {
            no_query(q)?;
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            let statements = auth.list_policies(who)?;
            reply(StatusCode::OK, &wire::PolicyList { statements })
        }
        ["v1", "policies", id] => {
            no_query(q)?;
            let id = (*id).to_string();
            match method {
                Method::GET => reply(StatusCode::OK, &auth.get_policy(who, &id)?),
                Method::PUT => {
                    // The body is read only once the caller may change policies.
                    let body = async { parse_json::<StatementDto>(&read_body(auth, req).await?) };
                    // `null` should the statement be gone again already.
                    let stored: Option<wire::PolicyStatement> =
                        auth.put_policy(who, &id, body).await?;
                    reply(StatusCode::OK, &stored)
                }
                Method::DELETE => {
                    auth.delete_policy(who, &id).await?;
                    reply(StatusCode::OK, &wire::PolicyDeleted { deleted: id })
                }
                _ => Err(method_not_allowed("GET, PUT, DELETE")),
            }
        }
        ["v1", "aliases"] => {
            no_query(q)?;
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            let aliases = auth
                .list_aliases(who)?
                .into_iter()
                .map(|(alias, ca_id)| wire::AliasBinding { alias, ca_id })
                .collect();
            reply(StatusCode::OK, &wire::AliasList { aliases })
        }
        ["v1", "aliases", alias] => {
            no_query(q)?;
            match method {
                Method::GET => {
                    let ca = auth.get_alias(who, alias)?;
                    reply(
                        StatusCode::OK,
                        &wire::AliasBinding {
                            alias: (*alias).to_string(),
                            ca_id: ca,
                        },
                    )
                }
                Method::PUT => {
                    let body: wire::SetAlias = parse_json(&read_body(auth, req).await?)?;
                    auth.set_alias(who, alias, &body.ca_id).await?;
                    reply(
                        StatusCode::OK,
                        &wire::AliasBinding {
                            alias: (*alias).to_string(),
                            ca_id: body.ca_id,
                        },
                    )
                }
                _ => Err(method_not_allowed("GET, PUT")),
            }
        }
        ["v1", "aliases", alias, "rotate"] => {
            no_query(q)?;
            if method != Method::POST {
                return Err(method_not_allowed("POST"));
            }
            let (old, new) = auth.rotate_alias(who, alias).await?;
            reply(
                StatusCode::OK,
                &wire::AliasRotation {
                    alias: (*alias).to_string(),
                    ca_id: new.id.clone(),
                    new: ca_json(&new),
                    retired: ca_json(&old),
                },
            )
        }
        ["v1", "audit"] => {
            if method != Method::GET {
                return Err(method_not_allowed("GET"));
            }
            list_audit(auth, who, q)
        }
        _ => Err(ApiError::not_found("no such resource")),
    }
}

fn parse_time(s: &str, what: &str) -> Result<i64, ApiError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| ApiError::invalid(format!("{what} must be an RFC 3339 time")))
}

fn list_audit(auth: &Arc<Authority>, who: &Identity, q: Option<&str>) -> Reply {
    let p = parse_query(
        q,
        &["since", "until", "identity", "action", "limit", "cursor"],
    )?;
    let limit = match p.get("limit") {
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(ApiError::invalid(format!("limit must be 1 to {MAX_PAGE}"))),
        },
        None => DEFAULT_PAGE,
    };
    let filter = crate::store::AuditFilter {
        since: p.get("since").map(|s| parse_time(s, "since")).transpose()?,
        until: p.get("until").map(|s| parse_time(s, "until")).transpose()?,
        identity: p.get("identity").cloned(),
        action: p.get("action").cloned(),
        limit,
        cursor: p
            .get("cursor")
            .map(|c| {
                c.parse::<u64>()
                    .map_err(|_| ApiError::invalid("cursor is not one this server made"))
            })
            .transpose()?,
    };
    let (items, next) = auth.audit_page(who, &filter)?;
    reply(
        StatusCode::OK,
        &wire::AuditPage {
            entries: items,
            next_cursor: next.map(|n| n.to_string()),
        },
    )
}

fn health(auth: &Authority) -> wire::Health {
    let stats = auth.store.stats();
    wire::Health {
        status: if stats.writable { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        store: wire::StoreStats {
            writable: stats.writable,
            commits: stats.commits,
            writes: stats.writes,
        },
    }
}

async fn create_ca(auth: &Arc<Authority>, who: &Identity, b: wire::CreateCa) -> Reply {
    let ca_type = match b.ca_type.as_str() {
        "ROOT" => CaType::Root,
        "SUBORDINATE" => CaType::Subordinate,
        _ => return Err(ApiError::invalid("type must be ROOT or SUBORDINATE")),
    };
    if let Some(p) = &b.parent_ca_id {
        check_ca_id(p)?;
    }
    let rec = auth
        .create_ca(
            who,
            NewCa {
                ca_type,
                subject: b.subject,
                key_algorithm: b.key_algorithm,
                parent_ca_id: b.parent_ca_id,
                external: b.external,
                validity_days: b.validity_days,
                path_len: b.path_len,
                name_constraints: b.name_constraints.map(|n| NameConstraintsInput {
                    permitted_dns: n.permitted_dns,
                    excluded_dns: n.excluded_dns,
                    permitted_ip: n.permitted_ip,
                    excluded_ip: n.excluded_ip,
                }),
            },
        )
        .await?;
    reply(StatusCode::CREATED, &ca_json(&rec))
}

async fn request_certificate(
    auth: &Arc<Authority>,
    who: &Identity,
    mut b: wire::RequestCertificate,
) -> Reply {
    // The body wipes itself when dropped; the passphrase moves out into a
    // wrapper that does the same, for the encryption task.
    let passphrase = Zeroizing::new(std::mem::take(&mut b.passphrase));
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(ApiError::invalid(format!(
            "passphrase must be at least {MIN_PASSPHRASE} characters"
        )));
    }
    if passphrase.len() > 1024 {
        return Err(ApiError::invalid("passphrase is longer than 1024 bytes"));
    }
    let ca_id = b.ca_id.clone().unwrap_or_else(|| auth.default_ca());
    let (view, key) = auth
        .issue_with_new_key(
            who,
            &ca_id,
            &NewKeyRequest {
                names: &b.names,
                subject: b.subject.as_deref(),
                profile: b.profile.as_deref().unwrap_or("tls-server"),
                key_algorithm: &b.key_algorithm,
                validity_days: b.validity_days,
            },
        )
        .await?;
    let encrypted = tokio::task::spawn_blocking(move || encrypt_key(&key, &passphrase))
        .await
        .map_err(|e| ApiError::internal("key encryption task", e))??;
    reply(
        StatusCode::CREATED,
        &wire::CertificateWithKey {
            certificate: cert_json(&view),
            private_key: encrypted.to_string(),
        },
    )
}

/// PKCS#8 encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC): what
/// `openssl pkey -passin` opens.
pub fn encrypt_key(
    key: &ca_core::keys::SoftwareKey,
    passphrase: &str,
) -> Result<Zeroizing<String>, ApiError> {
    use der::Decode;
    let der = key.to_pkcs8_der();
    let info =
        pkcs8::PrivateKeyInfo::from_der(&der).map_err(|e| ApiError::internal("key encoding", e))?;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| ApiError::internal("rng", e))?;
    getrandom::getrandom(&mut iv).map_err(|e| ApiError::internal("rng", e))?;
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, &iv)
            .map_err(|e| ApiError::internal("PBES2 parameters", e))?;
    let doc = info
        .encrypt_with_params(params, passphrase.as_bytes())
        .map_err(|e| ApiError::internal("key encryption", e))?;
    doc.to_pem("ENCRYPTED PRIVATE KEY", der::pem::LineEnding::LF)
        .map_err(|e| ApiError::internal("key encoding", e))
}

fn list_certificates(auth: &Arc<Authority>, who: &Identity, q: Option<&str>) -> Reply {
    let p = parse_query(
        q,
        &["ca_id", "status", "expiring_before", "limit", "cursor"],
    )?;
    let limit = match p.get("limit") {
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(ApiError::invalid(format!("limit must be 1 to {MAX_PAGE}"))),
        },
        None => DEFAULT_PAGE,
    };
    let status = match p.get("status").map(String::as_str) {
        None => None,
        Some(s @ ("ISSUED" | "REVOKED" | "EXPIRED" | "RESERVED")) => Some(s),
        Some(_) => {
            return Err(ApiError::invalid(
                "status must be ISSUED, REVOKED, EXPIRED or RESERVED",
            ))
        }
    };
    let expiring_before = match p.get("expiring_before") {
        None => None,
        Some(s) => Some(
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ApiError::invalid("expiring_before must be an RFC 3339 time"))?
                .unix_timestamp(),
        ),
    };
    let filter = CertFilter {
        ca_id: p.get("ca_id").cloned(),
        status: None,
        expiring_before,
        limit,
        cursor: p.get("cursor").cloned(),
    };
    let (items, next) = auth.list_certificates(who, filter, status)?;
    let items: Vec<wire::CertificateSummary> = items.iter().map(cert_summary).collect();
    reply(
        StatusCode::OK,
        &wire::CertificateList {
            certificates: items,
            next_cursor: next,
        },
    )
}

/// The API name of a store enum (`ACTIVE`, `ROOT`): the store's own serde
/// name, so the two cannot disagree.
fn api_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

pub fn ca_json(r: &CaRecord) -> wire::CaDescription {
    wire::CaDescription {
        id: r.id.clone(),
        ca_type: api_name(&r.ca_type),
        status: api_name(&r.status),
        subject: r.subject.clone(),
        key_algorithm: r.key_algorithm.clone(),
        serial: r.serial.clone(),
        not_before: r.not_before.map(fmt_unix),
        not_after: r.not_after.map(fmt_unix),
        path_len: r.path_len,
        parent_ca_id: r.parent_ca_id.clone(),
        external: r.external,
        created_at: fmt_unix(r.created_at),
        updated_at: fmt_unix(r.updated_at),
    }
}

pub fn cert_summary(r: &CertRecord) -> wire::CertificateSummary {
    wire::CertificateSummary {
        ca_id: r.ca_id.clone(),
        serial: r.serial.clone(),
        status: effective_status(r, now().unix_timestamp()).into(),
        profile: r.profile.clone(),
        subject: r.subject.clone(),
        sans: r.sans.clone(),
        key_algorithm: r.key_algorithm.clone(),
        not_before: fmt_unix(r.not_before),
        not_after: fmt_unix(r.not_after),
        created_at: fmt_unix(r.created_at),
        requested_by: r.requested_by.clone(),
        renewed_from: r.renewed_from.clone(),
        revocation: r.revocation.as_ref().map(|v| wire::RevocationInfo {
            reason_code: v.reason_code,
            reason: v.reason.clone(),
            revoked_at: fmt_unix(v.revoked_at),
            revoked_by: v.revoked_by.clone(),
        }),
    }
}

pub fn cert_json(v: &CertView) -> wire::Certificate {
    wire::Certificate {
        summary: cert_summary(&v.record),
        certificate: ca_core::pem::encode("CERTIFICATE", &v.der),
        certificate_chain: v
            .chain_der
            .iter()
            .map(|d| ca_core::pem::encode("CERTIFICATE", d))
            .collect(),
    }
}
