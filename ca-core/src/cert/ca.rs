//! A CA certificate as issuance reads it (parsed once, checked to be a CA),
//! signature and key-identifier helpers, and importing a CA certificate an
//! external root signed for a pending key.

use aws_lc_rs::digest;
use der::{Decode, Encode};
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use time::OffsetDateTime;
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::constraints::name::NameConstraints;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use x509_cert::name::Name;

use super::CaCertError;
use crate::keys::PublicKeyKind;
use crate::pem;
use crate::serial::Serial;
use crate::signature;
use crate::x509_time::from_x509_time;

/// A CA certificate with the facts issuance needs, parsed once.
#[derive(Clone, Debug)]
pub struct CaCertificate {
    pub der: Vec<u8>,
    pub cert: Certificate,
    pub ski: Vec<u8>,
    pub key_kind: PublicKeyKind,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub path_len: Option<u8>,
    pub name_constraints: Option<NameConstraints>,
    /// The subjectPublicKeyInfo DER, encoded once at parse (so reading it
    /// cannot fail later).
    spki_der: Vec<u8>,
}

impl CaCertificate {
    /// Parse a CA certificate (DER or PEM), checking it is one.
    pub fn parse(input: &[u8]) -> Result<Self, CaCertError> {
        let der = pem::der_or_pem("CERTIFICATE", input)?;
        let cert =
            Certificate::from_der(&der).map_err(|e| CaCertError::Malformed(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        let bad = |e: der::Error| CaCertError::Malformed(e.to_string());
        let bc = tbs
            .get::<BasicConstraints>()
            .map_err(bad)?
            .map(|(_, bc)| bc);
        let bc = bc.filter(|bc| bc.ca).ok_or(CaCertError::NotCa)?;
        if let Some((_, ku)) = tbs.get::<KeyUsage>().map_err(bad)? {
            if !ku.key_cert_sign() {
                return Err(CaCertError::NoKeyCertSign);
            }
        }
        let spki_der = tbs.subject_public_key_info.to_der().map_err(bad)?;
        let key_kind = PublicKeyKind::from_spki_der(&spki_der)?;
        let ski = match tbs.get::<SubjectKeyIdentifier>().map_err(bad)? {
            Some((_, ski)) => ski.0.as_bytes().to_vec(),
            None => key_identifier(&tbs.subject_public_key_info),
        };
        let name_constraints = tbs.get::<NameConstraints>().map_err(bad)?.map(|(_, nc)| nc);
        Ok(CaCertificate {
            not_before: from_x509_time(&tbs.validity.not_before),
            not_after: from_x509_time(&tbs.validity.not_after),
            path_len: bc.path_len_constraint,
            name_constraints,
            ski,
            key_kind,
            cert,
            der,
            spki_der,
        })
    }

    pub fn subject(&self) -> &Name {
        &self.cert.tbs_certificate.subject
    }

    pub fn spki_der(&self) -> Vec<u8> {
        self.spki_der.clone()
    }

    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der)
    }

    pub fn serial(&self) -> Serial {
        Serial::from_bytes(self.cert.tbs_certificate.serial_number.as_bytes())
    }

    /// Whether this certificate's signature verifies under `issuer`'s key and
    /// its issuer name is `issuer`'s subject.
    pub fn is_signed_by(&self, issuer: &CaCertificate) -> bool {
        cert_signed_by(
            &self.cert,
            &issuer.cert.tbs_certificate.subject_public_key_info,
        ) && self.cert.tbs_certificate.issuer == issuer.cert.tbs_certificate.subject
    }
}

/// Check `cert`'s signature with `issuer_spki`.
pub fn cert_signed_by(cert: &Certificate, issuer_spki: &SubjectPublicKeyInfoOwned) -> bool {
    let (Ok(tbs), Ok(spki_der)) = (cert.tbs_certificate.to_der(), issuer_spki.to_der()) else {
        return false;
    };
    let Ok(spki) = SubjectPublicKeyInfoRef::from_der(&spki_der) else {
        return false;
    };
    let Some(sig) = cert.signature.as_bytes() else {
        return false;
    };
    signature::verify_signature(&spki, &cert.signature_algorithm, &tbs, sig).is_ok()
}

/// RFC 7093 method 1: the leftmost 160 bits of SHA-256 of the subjectPublicKey bits.
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    let d = digest::digest(&digest::SHA256, spki.subject_public_key.raw_bytes());
    d.as_ref()[..20].to_vec()
}
/// Import a CA certificate signed by an external root for a pending key: it must
/// be a CA certificate, carry exactly the pending key, be valid now, and chain
/// through `parents` (its issuer first) to a self-signed root.
pub fn import_signed_ca(
    signed: &[u8],
    pending_spki_der: &[u8],
    parents: &[CaCertificate],
    now: OffsetDateTime,
) -> Result<CaCertificate, CaCertError> {
    let ca = CaCertificate::parse(signed)?;
    let pending = crate::keys::canonical_spki_der(pending_spki_der)?;
    if ca.spki_der() != pending {
        return Err(CaCertError::KeyMismatch);
    }
    if now < ca.not_before || now >= ca.not_after {
        return Err(CaCertError::NotValidNow(
            crate::fmt_time(ca.not_before),
            crate::fmt_time(ca.not_after),
        ));
    }
    let mut child = &ca;
    for parent in parents {
        if !child.is_signed_by(parent) {
            return Err(CaCertError::NotSignedBy(parent.subject().to_string()));
        }
        if now < parent.not_before || now >= parent.not_after {
            return Err(CaCertError::NotValidNow(
                crate::fmt_time(parent.not_before),
                crate::fmt_time(parent.not_after),
            ));
        }
        child = parent;
    }
    let ancestors: Vec<Option<u8>> = parents.iter().map(|p| p.path_len).collect();
    crate::lint::check_path_len(ca.path_len, &ancestors).map_err(CaCertError::PathLen)?;
    if !child.is_signed_by(child) {
        return Err(CaCertError::NoRoot);
    }
    Ok(ca)
}
