//! Records as the API shows them (the wire types of `crate::api::wire`).

use super::*;

pub(super) fn health(auth: &Authority) -> wire::Health {
    let stats = auth.store.stats();
    let token = auth.vault.token().map(|t| wire::TokenHealth {
        connected: t.is_connected(),
        sessions_open: t.sessions_open(),
        sessions_max: t.sessions_max(),
    });
    let report = crate::health::report(auth, auth.started);
    wire::Health {
        pkcs11: token,
        status: if report.ok { "ok" } else { "degraded" }.into(),
        checks: report.checks,
        version: env!("CARGO_PKG_VERSION").into(),
        store: wire::StoreStats {
            writable: stats.writable,
            commits: stats.commits,
            writes: stats.writes,
        },
    }
}

/// The API name of a store enum (`ACTIVE`, `ROOT`): the store's own serde
/// name, so the two cannot disagree.
pub(super) fn api_name<T: Serialize>(v: &T) -> String {
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
        key_storage: if r.token_key_label.is_some() {
            "pkcs11"
        } else {
            "software"
        }
        .into(),
        key_label: r.token_key_label.clone(),
        ocsp: !r.ocsp_disabled,
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
        certificate_chain: v.chain_pem().to_string(),
    }
}
