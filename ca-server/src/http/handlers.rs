//! Handlers too long for a line of the route table: CA creation, requests
//! with server-made keys, certificate and audit listings.

use super::*;

pub(super) fn parse_time(s: &str, what: &str) -> Result<i64, ApiError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| ApiError::invalid(format!("{what} must be an RFC 3339 time")))
}

pub(super) fn list_audit(auth: &Arc<Authority>, who: &Identity, q: Option<&str>) -> Reply {
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

/// Events from the outbox, oldest first: `after` (a sequence number),
/// `limit` and `type` select them.
pub(super) fn list_events(auth: &Arc<Authority>, who: &Identity, q: Option<&str>) -> Reply {
    let p = parse_query(q, &["after", "limit", "type"])?;
    let limit = match p.get("limit") {
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(ApiError::invalid(format!("limit must be 1 to {MAX_PAGE}"))),
        },
        None => DEFAULT_PAGE,
    };
    let after = match p.get("after") {
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| ApiError::invalid("after must be an event sequence number"))?,
        None => 0,
    };
    let (events, next) = auth.list_events(who, after, limit, p.get("type").map(String::as_str))?;
    reply(
        StatusCode::OK,
        &wire::EventPage {
            events,
            next_cursor: next.map(|n| n.to_string()),
        },
    )
}

/// Signed digests of the trail, oldest first: `after` (a digest number) and
/// `limit` page through them.
pub(super) fn list_audit_digests(auth: &Arc<Authority>, who: &Identity, q: Option<&str>) -> Reply {
    let p = parse_query(q, &["after", "limit"])?;
    let limit = match p.get("limit") {
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(ApiError::invalid(format!("limit must be 1 to {MAX_PAGE}"))),
        },
        None => DEFAULT_PAGE,
    };
    let after = match p.get("after") {
        Some(a) => a
            .parse::<u64>()
            .map_err(|_| ApiError::invalid("after must be a digest number"))?,
        None => 0,
    };
    let digests = auth.audit_digests(who, after, limit)?;
    reply(StatusCode::OK, &wire::AuditDigestPage { digests })
}

pub(super) async fn create_ca(auth: &Arc<Authority>, who: &Identity, b: wire::CreateCa) -> Reply {
    let ca_type = match b.ca_type.as_str() {
        "ROOT" => CaType::Root,
        "SUBORDINATE" => CaType::Subordinate,
        _ => return Err(ApiError::invalid("type must be ROOT or SUBORDINATE")),
    };
    if let Some(p) = &b.parent_ca_id {
        check_ca_id(p)?;
    }
    let key_storage = match (b.key_storage.as_deref(), b.key_label) {
        (None | Some("software"), None) => KeyStorage::Software,
        (Some("pkcs11"), None) => KeyStorage::Pkcs11,
        (Some("pkcs11"), Some(label)) if !label.is_empty() && label.len() <= 128 => {
            KeyStorage::Pkcs11Existing(label)
        }
        (Some("pkcs11"), Some(_)) => {
            return Err(ApiError::invalid("key_label must be 1 to 128 bytes"))
        }
        (None | Some("software"), Some(_)) => {
            return Err(ApiError::invalid(
                "key_label names a token key: it needs key_storage pkcs11",
            ))
        }
        (Some(_), _) => return Err(ApiError::invalid("key_storage must be software or pkcs11")),
    };
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
                key_storage,
                ocsp_disabled: b.ocsp == Some(false),
            },
        )
        .await?;
    reply(StatusCode::CREATED, &ca_json(&rec))
}

pub(super) async fn request_certificate(
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

pub(super) fn list_certificates(auth: &Arc<Authority>, who: &Identity, q: Option<&str>) -> Reply {
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
