//! Argument types and parsers that several commands share (key algorithms,
//! subjects, names, times), so no command module depends on another's.

use clap::ValueEnum;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    #[value(name = "ec-p256")]
    EcP256,
    #[value(name = "ec-p384")]
    EcP384,
    #[value(name = "rsa-2048")]
    Rsa2048,
    #[value(name = "rsa-3072")]
    Rsa3072,
    #[value(name = "rsa-4096")]
    Rsa4096,
    #[value(name = "ed25519")]
    Ed25519,
}

impl From<KeyAlg> for ca_core::KeyAlgorithm {
    fn from(a: KeyAlg) -> Self {
        use ca_core::KeyAlgorithm as K;
        match a {
            KeyAlg::EcP256 => K::EcdsaP256,
            KeyAlg::EcP384 => K::EcdsaP384,
            KeyAlg::Rsa2048 => K::Rsa2048,
            KeyAlg::Rsa3072 => K::Rsa3072,
            KeyAlg::Rsa4096 => K::Rsa4096,
            KeyAlg::Ed25519 => K::Ed25519,
        }
    }
}

/// Clap's parser for `--subject`: a failure here is a usage error (exit 2).
pub fn parse_subject(s: &str) -> Result<x509_cert::name::Name, String> {
    if s.trim().is_empty() {
        return Err(
            "the subject is empty (expected e.g. CN=www.example.internal,O=Example)".into(),
        );
    }
    // Not `Name::from_str` directly: numeric attribute types such as
    // `2.4294967296=x` overflow (panic) inside const-oid. ca-core's parser
    // allows only known short names and runs check_subject.
    ca_core::names::parse_subject(s)
        .map_err(|e| format!("not an RFC 4514 name like CN=host,O=Org: {e}"))
}

pub fn parse_san(s: &str) -> Result<ca_core::SanEntry, String> {
    ca_core::SanEntry::parse(s).map_err(|e| e.to_string())
}

pub fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time like 2026-01-31T12:00:00Z: {e}"))
}
