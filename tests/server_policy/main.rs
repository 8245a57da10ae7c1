//! Access policies end to end: a matrix of identities × actions × CAs × names,
//! each allowed or denied exactly as the policy says (0 bypasses), and exactly
//! one audit entry per call with the matching outcome.

#[path = "../harness/mod.rs"]
mod harness;

mod denies;
mod escalation;
mod listing;
mod matrix;
mod offline;

use serde_json::{json, Value};

fn csr_body(ca: &str, names: &[&str], profile: &str, days: Option<u32>) -> Value {
    // A CSR for the first name (or an IP), with every name as a SAN.
    csr_body_with_subject(ca, &format!("CN={}", names[0]), names, profile, days)
}

fn csr_body_with_subject(
    ca: &str,
    subject: &str,
    names: &[&str],
    profile: &str,
    days: Option<u32>,
) -> Value {
    use std::str::FromStr;
    let key =
        ca_core::keys::SoftwareKey::generate(ca_core::keys::KeyAlgorithm::EcdsaP256).expect("key");
    let sans: Vec<_> = names
        .iter()
        .map(|n| ca_core::names::SanEntry::parse(n).expect("san"))
        .collect();
    let der = ca_core::csr::create_csr(
        &key,
        &x509_cert::name::Name::from_str(subject).expect("name"),
        &sans,
    )
    .expect("csr");
    let mut b = json!({
        "ca_id": ca,
        "csr": ca_core::pem::encode("CERTIFICATE REQUEST", &der),
        "profile": profile,
    });
    if let Some(d) = days {
        b["validity_days"] = json!(d);
    }
    b
}
