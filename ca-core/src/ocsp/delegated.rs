//! The delegated OCSP-signing certificate a CA issues so that another key can
//! sign its responses (RFC 6960 4.2.2.2), with id-pkix-ocsp-nocheck.

use der::asn1::{BitString, Null, OctetString};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use time::OffsetDateTime;
use x509_cert::certificate::{Certificate, TbsCertificate, Version};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::time::Validity;

use super::{OcspError, MAX_OCSP_SIGNER_DAYS};
use crate::cert::{
    key_identifier, to_x509_time, CaCertificate, IssuedCertificate, NOT_BEFORE_BACKDATE,
};
use crate::keys::{KeyError, PublicKeyKind, Signer};
use crate::oids;
use crate::serial::Serial;

/// Create a delegated OCSP-signing certificate for `responder_spki_der`,
/// issued by `issuer`: not a CA, keyUsage digitalSignature, EKU
/// id-kp-OCSPSigning, id-pkix-ocsp-nocheck (relying parties do not check its
/// revocation, hence the short life), validity capped by the issuer's.
///
/// Built here rather than through `cert::prepare` because no issuance
/// profile carries the nocheck extension.
pub fn create_ocsp_signing_certificate(
    issuer: &CaCertificate,
    issuer_signer: &dyn Signer,
    responder_spki_der: &[u8],
    subject: &Name,
    validity_days: u32,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, OcspError> {
    if validity_days == 0 || validity_days > MAX_OCSP_SIGNER_DAYS {
        return Err(OcspError::InvalidValidity(validity_days));
    }
    if issuer_signer.public_key_der() != issuer.spki_der().as_slice() {
        return Err(OcspError::SignerMismatch);
    }
    let now = now.replace_nanosecond(0).unwrap_or(now);
    if now >= issuer.not_after || now < issuer.not_before {
        return Err(OcspError::ResponderNotValid(crate::fmt_time(now)));
    }
    // Refuse keys the rest of the CA would refuse.
    PublicKeyKind::from_spki_der(responder_spki_der)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(responder_spki_der)?;
    let not_before = (now - NOT_BEFORE_BACKDATE).max(issuer.not_before);
    let not_after = (now + time::Duration::days(i64::from(validity_days))).min(issuer.not_after);
    let time = |t| to_x509_time(t).map_err(|_| OcspError::TimeRange(crate::fmt_time(t)));
    let serial = Serial::random().map_err(|_| KeyError::Generation)?;
    let ext = |id, critical, value: Vec<u8>| -> Result<Extension, OcspError> {
        Ok(Extension {
            extn_id: id,
            critical,
            extn_value: OctetString::new(value)?,
        })
    };
    let extensions = vec![
        ext(
            oids::BASIC_CONSTRAINTS,
            true,
            BasicConstraints {
                ca: false,
                path_len_constraint: None,
            }
            .to_der()?,
        )?,
        ext(
            oids::KEY_USAGE,
            true,
            KeyUsage(KeyUsages::DigitalSignature.into()).to_der()?,
        )?,
        ext(
            oids::EXT_KEY_USAGE,
            false,
            ExtendedKeyUsage(vec![oids::KP_OCSP_SIGNING]).to_der()?,
        )?,
        ext(
            oids::SUBJECT_KEY_IDENTIFIER,
            false,
            SubjectKeyIdentifier(OctetString::new(key_identifier(&spki))?).to_der()?,
        )?,
        ext(
            oids::AUTHORITY_KEY_IDENTIFIER,
            false,
            AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(issuer.ski.clone())?),
                ..Default::default()
            }
            .to_der()?,
        )?,
        ext(oids::OCSP_NOCHECK, false, Null.to_der()?)?,
    ];
    let signature_alg = issuer_signer.signature_algorithm().identifier();
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: serial.to_x509()?,
        signature: signature_alg.clone(),
        issuer: issuer.subject().clone(),
        validity: Validity {
            not_before: time(not_before)?,
            not_after: time(not_after)?,
        },
        subject: subject.clone(),
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    };
    let tbs_der = tbs.to_der()?;
    let signature = issuer_signer.sign(&tbs_der)?;
    let cert = Certificate {
        tbs_certificate: tbs,
        signature_algorithm: signature_alg,
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(IssuedCertificate {
        der: cert.to_der()?,
        serial,
        not_before,
        not_after,
    })
}
