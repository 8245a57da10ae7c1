//! Request values into domain values: serials, subjects, key algorithms,
//! profiles, name constraints, validity and idempotency tokens. Each refusal
//! is an `InvalidRequest` (or `NotFound` for a malformed CA id) with a
//! message that says what would be accepted.

use std::str::FromStr;

use ca_core::cert::NameConstraintsSpec;
use ca_core::keys::{KeyAlgorithm, SoftwareKey};
use ca_core::names::{IpNet, SanEntry};
use ca_core::profile::{Profile, ValidityLimits};
use ca_core::serial::Serial;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::name::Name;
use x509_cert::Certificate;

use super::NameConstraintsInput;
use crate::error::ApiError;
use crate::ids;

pub fn check_ca_id(id: &str) -> Result<(), ApiError> {
    if ids::is_ca_id(id) {
        Ok(())
    } else {
        Err(ApiError::not_found(
            "no such CA (CA ids look like ca-0123456789abcdef)",
        ))
    }
}

/// The CA named alongside a serial: an alias names a lineage of CAs (the
/// certificate may come from one it retired), and serials are unique across
/// the store, so an alias means "find it by serial".
pub fn ca_hint(ca_id: Option<&str>) -> Option<&str> {
    ca_id.filter(|c| !crate::alias::is_alias(c))
}

/// Normalise a serial from input to the stored lower-case hex form.
pub fn parse_serial(s: &str) -> Result<String, ApiError> {
    Serial::from_hex(s)
        .map(|s| s.to_hex())
        .map_err(|_| ApiError::invalid("the serial must be 1 to 20 octets of hex"))
}

pub(super) fn parse_key_alg(s: &str) -> Result<KeyAlgorithm, ApiError> {
    KeyAlgorithm::from_str(s).map_err(|_| {
        ApiError::invalid(
            "key_algorithm must be one of ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519",
        )
    })
}

pub fn parse_leaf_profile(s: &str) -> Result<Profile, ApiError> {
    match Profile::from_str(s) {
        Ok(p) if !p.is_ca() => Ok(p),
        Ok(_) => Err(ApiError::invalid(
            "subordinate CAs are created with POST /v1/cas, not issued as certificates",
        )),
        Err(e) => Err(ApiError::invalid(e.to_string())),
    }
}

pub(super) fn parse_subject(s: &str) -> Result<Name, ApiError> {
    if s.trim().is_empty() {
        return Err(ApiError::invalid("subject must not be empty"));
    }
    // Only known attribute names: the underlying RFC 4514 parser overflows on
    // numeric OID arcs such as `2.4294967296=x`, which request text can carry.
    ca_core::names::parse_subject(s).map_err(|e| {
        ApiError::invalid(format!(
            "subject is not an RFC 4514 name such as CN=Example CA,O=Example: {e}"
        ))
    })
}

pub(super) fn check_validity(
    days: Option<u32>,
    limits: ValidityLimits,
    what: &str,
) -> Result<(), ApiError> {
    match days {
        Some(0) => Err(ApiError::invalid("validity_days must be at least 1")),
        Some(d) if d > limits.max_days => Err(ApiError::invalid(format!(
            "validity_days {d} exceeds the maximum of {} for {what}",
            limits.max_days
        ))),
        _ => Ok(()),
    }
}

/// An idempotency token, when given, has the shape tokens are stored in.
pub(super) fn check_token(token: Option<&str>) -> Result<(), ApiError> {
    match token {
        Some(t) if !ids::is_token(t) => Err(ApiError::invalid(
            "idempotency_token must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
        )),
        _ => Ok(()),
    }
}

pub(super) fn parse_name_constraints(
    nc: &NameConstraintsInput,
) -> Result<NameConstraintsSpec, ApiError> {
    let ip = |v: &[String]| {
        v.iter()
            .map(|s| {
                IpNet::from_str(s).map_err(|e| ApiError::invalid(format!("name_constraints: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    for d in nc.permitted_dns.iter().chain(&nc.excluded_dns) {
        ca_core::names::validate_dns_name(d.strip_prefix('.').unwrap_or(d))
            .map_err(|e| ApiError::invalid(format!("name_constraints: {e}")))?;
    }
    Ok(NameConstraintsSpec {
        permitted_dns: nc.permitted_dns.clone(),
        excluded_dns: nc.excluded_dns.clone(),
        permitted_ip: ip(&nc.permitted_ip)?,
        excluded_ip: ip(&nc.excluded_ip)?,
    })
}

/// The names of a server-made key's certificate, and its subject: the one
/// asked for, else CN = the first name's value (`DNS:web.example` gives
/// `web.example`) when it fits in a CN, else an empty subject.
pub(super) fn parse_names(
    names: &[String],
    subject: Option<&str>,
) -> Result<(Vec<SanEntry>, Name), ApiError> {
    if names.is_empty() && subject.is_none() {
        return Err(ApiError::invalid(
            "names must list at least one DNS name, IP or email",
        ));
    }
    if names.len() > ca_core::csr::MAX_SANS {
        return Err(ApiError::invalid("too many names"));
    }
    let sans = names
        .iter()
        .map(|n| SanEntry::parse(n).map_err(|e| ApiError::invalid(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    let subject = match subject {
        Some(s) => parse_subject(s)?,
        None => {
            // The bare first name as CN when it fits; a longer one leaves the
            // subject empty (the names are in the SAN), never a silent fallback
            // on a name that could not be encoded.
            let cn = sans.first().map(SanEntry::value).unwrap_or_default();
            if cn.is_empty() || cn.chars().count() > ca_core::names::MAX_COMMON_NAME_LEN {
                Name::default()
            } else {
                ca_core::names::common_name_subject(&cn)
                    .map_err(|e| ApiError::invalid(format!("names: {e}")))?
            }
        }
    };
    Ok((sans, subject))
}

pub(super) fn sans_of(cert: &Certificate) -> Vec<SanEntry> {
    match cert.tbs_certificate.get::<SubjectAltName>() {
        Ok(Some((_, san))) => san
            .0
            .iter()
            .filter_map(SanEntry::from_general_name)
            .collect(),
        _ => vec![],
    }
}

/// SHA-256 over length-prefixed parts: what an idempotency token is bound to.
pub(super) fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    ca_core::hex::encode(ctx.finish().as_ref())
}

/// Generating keys (RSA especially) takes time: off the async threads.
pub(super) async fn generate_key(alg: KeyAlgorithm) -> Result<SoftwareKey, ApiError> {
    tokio::task::spawn_blocking(move || SoftwareKey::generate(alg))
        .await
        .map_err(|e| ApiError::internal("key generation task", e))?
        .map_err(|e| ApiError::internal("key generation", e))
}

/// SHA-256 (hex) of a SubjectPublicKeyInfo's DER: how blocked keys are named.
pub(super) fn spki_sha256(spki_der: &[u8]) -> String {
    ca_core::hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der).as_ref())
}

/// [`spki_sha256`] of a stored certificate's key.
pub(super) fn spki_sha256_of_certificate(der: &[u8]) -> Result<String, ApiError> {
    use der::{Decode, Encode};
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| ApiError::internal("stored certificate", e))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| ApiError::internal("stored certificate key", e))?;
    Ok(spki_sha256(&spki))
}
