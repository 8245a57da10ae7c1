//! OCSP responses: who signs them (the CA or a delegate it certified), building
//! and signing them, and answering a whole request with one.

use aws_lc_rs::digest;
use const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE;
use der::asn1::{BitString, GeneralizedTime, OctetString};
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::certificate::Certificate;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage};
use x509_cert::ext::Extension;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspResponse, ResponderId, ResponseData,
    RevokedInfo, SingleResponse,
};

use super::request::{parse_request, CertIdInfo, IssuerHashes, OcspRequestInfo};
use super::{internal_error_response, unauthorized_response, OcspError};
use crate::cert::{cert_signed_by, CaCertificate};
use crate::crl::RevocationReason;
use crate::keys::Signer;
use crate::oids;
use crate::serial::Serial;

/// The status to report for one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatusInput {
    Good,
    Revoked {
        time: OffsetDateTime,
        reason: RevocationReason,
    },
    /// Not a certificate this responder knows of.
    Unknown,
}

/// One SingleResponse to sign.
#[derive(Clone, Debug)]
pub struct SingleResponseInput {
    /// Echoed from the request.
    pub cert_id: CertIdInfo,
    pub status: CertStatusInput,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
}

/// Who signs responses: the CA itself, or a delegated OCSP-signing
/// certificate the CA issued (RFC 6960 4.2.2.2), which is then sent along.
#[derive(Clone, Debug)]
pub struct ResponderIdentity {
    certificate_der: Vec<u8>,
    certificate: Certificate,
    spki_der: Vec<u8>,
    key_hash: Vec<u8>,
    delegated: bool,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl ResponderIdentity {
    /// The CA signs its own responses.
    pub fn ca(ca: &CaCertificate) -> Result<Self, OcspError> {
        Self::build(ca.der.clone(), ca.cert.clone(), false)
    }

    /// A delegated responder: `cert_der` must be issued and signed by `ca`,
    /// carry the id-kp-OCSPSigning EKU, and not be a CA.
    pub fn delegated(cert_der: &[u8], ca: &CaCertificate) -> Result<Self, OcspError> {
        let der = crate::pem::der_or_pem("CERTIFICATE", cert_der)
            .map_err(|_| OcspError::NotDelegated("certificate PEM does not parse"))?;
        let cert = Certificate::from_der(&der)
            .map_err(|_| OcspError::NotDelegated("certificate does not parse"))?;
        let tbs = &cert.tbs_certificate;
        if tbs.issuer != *ca.subject()
            || !cert_signed_by(&cert, &ca.cert.tbs_certificate.subject_public_key_info)
        {
            return Err(OcspError::NotDelegated("not signed by this CA"));
        }
        let eku = tbs
            .get::<ExtendedKeyUsage>()
            .map_err(|_| OcspError::NotDelegated("extendedKeyUsage does not parse"))?;
        if !eku.is_some_and(|(_, e)| e.0.contains(&oids::KP_OCSP_SIGNING)) {
            return Err(OcspError::NotDelegated("no id-kp-OCSPSigning EKU"));
        }
        if let Some((_, bc)) = tbs
            .get::<BasicConstraints>()
            .map_err(|_| OcspError::NotDelegated("basicConstraints does not parse"))?
        {
            if bc.ca {
                return Err(OcspError::NotDelegated("a CA certificate"));
            }
        }
        if let Some((_, ku)) = tbs
            .get::<KeyUsage>()
            .map_err(|_| OcspError::NotDelegated("keyUsage does not parse"))?
        {
            if !ku.digital_signature() {
                return Err(OcspError::NotDelegated("keyUsage lacks digitalSignature"));
            }
        }
        Self::build(der, cert, true)
    }

    fn build(der: Vec<u8>, cert: Certificate, delegated: bool) -> Result<Self, OcspError> {
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let spki_der = spki.to_der()?;
        let key_hash = digest::digest(
            &digest::SHA1_FOR_LEGACY_USE_ONLY,
            spki.subject_public_key.raw_bytes(),
        )
        .as_ref()
        .to_vec();
        let validity = &cert.tbs_certificate.validity;
        Ok(ResponderIdentity {
            not_before: crate::x509_time::from_x509_time(&validity.not_before),
            not_after: crate::x509_time::from_x509_time(&validity.not_after),
            certificate_der: der,
            certificate: cert,
            spki_der,
            key_hash,
            delegated,
        })
    }

    pub fn is_delegated(&self) -> bool {
        self.delegated
    }

    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// When the responder certificate expires: a server should have a new
    /// delegated certificate before then.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}

fn ocsp_time(t: OffsetDateTime) -> Result<OcspGeneralizedTime, OcspError> {
    let bad = || OcspError::TimeRange(crate::fmt_time(t));
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| bad())?;
    let dt = der::DateTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map_err(|_| bad())?;
    Ok(OcspGeneralizedTime(GeneralizedTime::from_date_time(dt)))
}

fn single_response(input: &SingleResponseInput) -> Result<SingleResponse, OcspError> {
    let cert_status = match input.status {
        CertStatusInput::Good => CertStatus::good(),
        CertStatusInput::Unknown => CertStatus::unknown(),
        CertStatusInput::Revoked { time, reason } => CertStatus::Revoked(RevokedInfo {
            revocation_time: ocsp_time(time)?,
            // As in CRLs (RFC 5280 5.3.1), `unspecified` is conveyed by absence.
            revocation_reason: (reason != RevocationReason::Unspecified).then(|| reason.to_x509()),
        }),
    };
    Ok(SingleResponse {
        cert_id: input.cert_id.raw.clone(),
        cert_status,
        this_update: ocsp_time(input.this_update)?,
        next_update: input.next_update.map(ocsp_time).transpose()?,
        single_extensions: None,
    })
}

/// Build and sign a successful basic OCSP response: responderID byKey, the
/// nonce echoed when given, the delegated certificate in `certs` when delegated.
pub fn build_response(
    responder: &ResponderIdentity,
    signer: &dyn Signer,
    responses: &[SingleResponseInput],
    nonce: Option<&[u8]>,
    produced_at: OffsetDateTime,
) -> Result<Vec<u8>, OcspError> {
    if signer.public_key_der() != responder.spki_der.as_slice() {
        return Err(OcspError::SignerMismatch);
    }
    if responses.is_empty() {
        return Err(OcspError::NoResponses);
    }
    if produced_at < responder.not_before || produced_at > responder.not_after {
        return Err(OcspError::ResponderNotValid(crate::fmt_time(produced_at)));
    }
    let response_extensions = match nonce {
        Some(raw) => Some(vec![Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(raw)?,
        }]),
        None => None,
    };
    let tbs = ResponseData {
        version: x509_ocsp::Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(responder.key_hash.clone())?),
        produced_at: ocsp_time(produced_at)?,
        responses: responses
            .iter()
            .map(single_response)
            .collect::<Result<_, _>>()?,
        response_extensions,
    };
    let tbs_der = tbs.to_der()?;
    let signature = signer.sign(&tbs_der)?;
    let basic = BasicOcspResponse {
        tbs_response_data: tbs,
        signature_algorithm: signer.signature_algorithm().identifier(),
        signature: BitString::from_bytes(&signature)?,
        certs: responder
            .delegated
            .then(|| vec![responder.certificate.clone()]),
    };
    Ok(OcspResponse::successful(basic)?.to_der()?)
}

/// Everything a responder for one CA needs, set up once.
pub struct Responder<'a> {
    pub identity: &'a ResponderIdentity,
    pub signer: &'a dyn Signer,
    pub issuer: &'a IssuerHashes,
    /// nextUpdate = now + validity: how long relying parties (and caches) may
    /// keep a response. The CRL refresh interval is a good value.
    pub validity: time::Duration,
}

/// Answer a DER request completely: parse, match each CertID to the CA, look up
/// statuses, sign. Never fails and never panics: every problem becomes the
/// fitting status-only response. A request naming only other issuers gets
/// `unauthorized` (RFC 5019 2.2.3); other issuers' CertIDs beside ours get
/// `unknown`, as does a zero or negative serial.
///
/// `lookup` is the server's view of its store. When the issuing CA itself has
/// been revoked, it should answer `Revoked` (with the CA's revocation time and
/// `cACompromise` or the CA's reason) for every serial, so relying parties that
/// only ask about the leaf still learn that it can no longer be trusted.
pub fn respond(
    request_der: &[u8],
    responder: &Responder<'_>,
    lookup: impl FnMut(&Serial) -> CertStatusInput,
    now: OffsetDateTime,
) -> Vec<u8> {
    match parse_request(request_der) {
        Ok(request) => respond_to(&request, responder, lookup, now),
        Err(e) => e.to_response(),
    }
}

/// [`respond`] for an already parsed request: a server parses once, looks in
/// its cache with [`OcspRequestInfo::cache_key`], and signs only on a miss.
pub fn respond_to(
    request: &OcspRequestInfo,
    responder: &Responder<'_>,
    mut lookup: impl FnMut(&Serial) -> CertStatusInput,
    now: OffsetDateTime,
) -> Vec<u8> {
    if !request
        .cert_ids
        .iter()
        .any(|id| responder.issuer.matches(id))
    {
        return unauthorized_response();
    }
    let now = now.replace_nanosecond(0).unwrap_or(now);
    // An absurd configured validity must not overflow the clock arithmetic.
    let Some(next_update) = now.checked_add(responder.validity) else {
        return internal_error_response();
    };
    let next_update = Some(next_update);
    let singles: Vec<SingleResponseInput> = request
        .cert_ids
        .iter()
        .map(|id| {
            let status = if responder.issuer.matches(id) && id.serial_is_positive {
                lookup(&id.serial)
            } else {
                CertStatusInput::Unknown
            };
            SingleResponseInput {
                cert_id: id.clone(),
                status,
                this_update: now,
                next_update,
            }
        })
        .collect();
    build_response(
        responder.identity,
        responder.signer,
        &singles,
        request.nonce.as_deref(),
        now,
    )
    .unwrap_or_else(|e| e.to_response())
}
