//! OCSP (RFC 6960): parsing requests, matching them to a CA, and building signed
//! responses, by the CA itself or by a delegated OCSP-signing certificate.
//!
//! Nothing here touches the network. A responder (the server) does:
//!
//! 1. For GET, [`decode_get_request`] on the path segment after the OCSP URL;
//!    for POST, the body as is.
//! 2. [`respond`] with the CA's [`Responder`] and a lookup from serial to status.
//!    It never fails: malformed input gets the `malformedRequest` status, a
//!    request for another CA's certificates `unauthorized`, a signing failure
//!    `internalError`.
//!
//! Caching (what keeps a lookup cheap): a signed response stays valid until its
//! `nextUpdate`, so a responder may serve it again for any request that asks
//! the same question. A request without a nonce ([`OcspRequestInfo::cacheable`])
//! can be answered from a cache keyed by the request DER (GET URLs are the
//! common case: relying parties and CDNs repeat them byte for byte), or by
//! `(CertID hash algorithm, serial)` for single-certificate requests. A cached
//! entry must be dropped when the certificate's status changes (revocation) and
//! before its `nextUpdate`. A request with a nonce needs a fresh signature
//! because the nonce is inside the signed data.

use std::fmt;

use aws_lc_rs::digest;
use const_oid::db::rfc6960::{ID_PKIX_OCSP_BASIC, ID_PKIX_OCSP_NONCE, ID_PKIX_OCSP_RESPONSE};
use const_oid::ObjectIdentifier;
use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
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
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse,
    ResponderId, ResponseData, RevokedInfo, SingleResponse,
};

use crate::cert::{
    cert_signed_by, key_identifier, to_x509_time, CaCertificate, IssuedCertificate,
    NOT_BEFORE_BACKDATE,
};
use crate::crl::RevocationReason;
use crate::keys::{KeyError, PublicKeyKind, Signer};
use crate::oids;
use crate::serial::Serial;

/// Largest request accepted. Real requests are 70 to 300 octets; anything
/// near this is an attack or a mistake.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Most CertIDs answered in one request: each costs a lookup and response bytes.
pub const MAX_CERT_IDS: usize = 32;
/// RFC 8954 2.1: nonces over 128 octets must be refused with malformedRequest.
pub const MAX_NONCE_BYTES: usize = 128;
/// Longest lifetime of a delegated OCSP-signing certificate. It carries
/// id-pkix-ocsp-nocheck, so it cannot itself be revoked: keep it short.
pub const MAX_OCSP_SIGNER_DAYS: u32 = 90;

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// DER of status-only responses (`OCSPResponse { responseStatus }`), constant.
const MALFORMED_REQUEST: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];
const INTERNAL_ERROR: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x02];
const TRY_LATER: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x03];
const UNAUTHORIZED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x06];

/// The `malformedRequest` response.
pub fn malformed_request_response() -> Vec<u8> {
    MALFORMED_REQUEST.to_vec()
}

/// The `unauthorized` response: this responder does not answer for that issuer.
pub fn unauthorized_response() -> Vec<u8> {
    UNAUTHORIZED.to_vec()
}

/// The `internalError` response.
pub fn internal_error_response() -> Vec<u8> {
    INTERNAL_ERROR.to_vec()
}

/// The `tryLater` response (e.g. the CA key is unavailable).
pub fn try_later_response() -> Vec<u8> {
    TRY_LATER.to_vec()
}

#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    #[error("empty OCSP request")]
    Empty,
    #[error("OCSP request of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("OCSP request does not parse: {0}")]
    Malformed(String),
    #[error("OCSP request asks about no certificate")]
    NoCertIds,
    #[error("OCSP request asks about {0} certificates (at most {MAX_CERT_IDS})")]
    TooManyCertIds(usize),
    #[error("OCSP nonce of {0} octets is outside 1..={MAX_NONCE_BYTES}")]
    BadNonce(usize),
    #[error("OCSP request has an unsupported critical extension {0}")]
    UnsupportedCriticalExtension(String),
    #[error("the GET request path is not base64 of a DER request")]
    BadGetEncoding,
    #[error("the signer's key is not the responder certificate's key")]
    SignerMismatch,
    #[error("not a delegated OCSP responder for this CA: {0}")]
    NotDelegated(&'static str),
    #[error("the responder certificate is not valid at {0}")]
    ResponderNotValid(String),
    #[error("a response needs at least one single response")]
    NoResponses,
    #[error("validity of {0} days is outside 1..={MAX_OCSP_SIGNER_DAYS}")]
    InvalidValidity(u32),
    #[error("time {0} cannot be encoded")]
    TimeRange(String),
    #[error("key: {0}")]
    Key(#[from] KeyError),
    #[error("encoding failed: {0}")]
    Encoding(#[from] der::Error),
}

impl OcspError {
    /// Whether the error is the client's (malformedRequest) rather than ours.
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            OcspError::Empty
                | OcspError::TooLarge { .. }
                | OcspError::Malformed(_)
                | OcspError::NoCertIds
                | OcspError::TooManyCertIds(_)
                | OcspError::BadNonce(_)
                | OcspError::UnsupportedCriticalExtension(_)
                | OcspError::BadGetEncoding
        )
    }

    /// The status-only OCSP response that answers this error.
    pub fn to_response(&self) -> Vec<u8> {
        if self.is_request_error() {
            malformed_request_response()
        } else {
            internal_error_response()
        }
    }
}

/// The hash algorithm of a CertID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        match oid {
            SHA1 => Some(HashAlg::Sha1),
            oids::SHA256 => Some(HashAlg::Sha256),
            oids::SHA384 => Some(HashAlg::Sha384),
            oids::SHA512 => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    fn digest_alg(self) -> &'static digest::Algorithm {
        match self {
            // RFC 6960 CertIDs are SHA-1 by default (openssl's default); the
            // hash only names the issuer here, so collisions gain an attacker nothing.
            HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &digest::SHA256,
            HashAlg::Sha384 => &digest::SHA384,
            HashAlg::Sha512 => &digest::SHA512,
        }
    }
}

impl fmt::Display for HashAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        })
    }
}

/// One CertID of a request: which issuer (by hashes) and which serial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertIdInfo {
    /// `None` when the request uses a hash this responder does not compute;
    /// such a CertID matches no CA and is answered `unknown`.
    pub hash_alg: Option<HashAlg>,
    pub issuer_name_hash: Vec<u8>,
    pub issuer_key_hash: Vec<u8>,
    /// The serial's magnitude. Meaningful only when `serial_is_positive`.
    pub serial: Serial,
    /// False for zero or negative serials, which this CA never issues.
    pub serial_is_positive: bool,
    /// The CertID exactly as received: responses echo it (RFC 6960 4.2.1).
    raw: CertId,
}

impl CertIdInfo {
    /// The DER of the CertID as received (e.g. for a cache key).
    pub fn to_der(&self) -> Result<Vec<u8>, OcspError> {
        Ok(self.raw.to_der()?)
    }

    /// A CertID for `serial` under `issuer`, as a relying party would send it.
    pub fn for_serial(
        issuer: &CaCertificate,
        serial: &Serial,
        hash: HashAlg,
    ) -> Result<Self, OcspError> {
        let (name_hash, key_hash) = issuer_hashes(issuer, hash)?;
        let raw = CertId {
            hash_algorithm: spki::AlgorithmIdentifierOwned {
                oid: match hash {
                    HashAlg::Sha1 => SHA1,
                    HashAlg::Sha256 => oids::SHA256,
                    HashAlg::Sha384 => oids::SHA384,
                    HashAlg::Sha512 => oids::SHA512,
                },
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new(name_hash)?,
            issuer_key_hash: OctetString::new(key_hash)?,
            serial_number: serial.to_x509()?,
        };
        cert_id_info(raw)
    }
}

fn cert_id_info(raw: CertId) -> Result<CertIdInfo, OcspError> {
    let serial_bytes = raw.serial_number.as_bytes();
    let serial_is_positive =
        serial_bytes.first().is_some_and(|b| b & 0x80 == 0) && serial_bytes.iter().any(|b| *b != 0);
    Ok(CertIdInfo {
        hash_alg: HashAlg::from_oid(raw.hash_algorithm.oid),
        issuer_name_hash: raw.issuer_name_hash.as_bytes().to_vec(),
        issuer_key_hash: raw.issuer_key_hash.as_bytes().to_vec(),
        serial: Serial::from_bytes(serial_bytes),
        serial_is_positive,
        raw,
    })
}

/// What a request asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcspRequestInfo {
    pub cert_ids: Vec<CertIdInfo>,
    /// The nonce extension's extnValue octets as received, echoed verbatim in
    /// the response (RFC 8954; OpenSSL compares them byte for byte).
    pub nonce: Option<Vec<u8>>,
}

impl OcspRequestInfo {
    /// Whether a cached response may answer this request (no nonce to echo).
    pub fn cacheable(&self) -> bool {
        self.nonce.is_none()
    }

    /// Cache key for the common request (one CertID, no nonce): the CertID's
    /// DER, which the response echoes, so a cached response answers exactly
    /// this question. Pair it with the serial ([`CertIdInfo::serial`]) to drop
    /// entries on revocation. `None` when the request must be signed afresh.
    pub fn cache_key(&self) -> Option<Vec<u8>> {
        match self.cert_ids.as_slice() {
            [id] if self.nonce.is_none() => id.to_der().ok(),
            _ => None,
        }
    }
}

/// An unsigned OCSPRequest for `ids` (RFC 6960 4.1.1), with the nonce
/// extension (RFC 8954: an OCTET STRING of the nonce) when `nonce` is given:
/// what a relying party sends.
pub fn encode_request(ids: &[CertIdInfo], nonce: Option<&[u8]>) -> Result<Vec<u8>, OcspError> {
    let request_extensions = match nonce {
        Some(n) => Some(vec![Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(OctetString::new(n)?.to_der()?)?,
        }]),
        None => None,
    };
    let request = OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list: ids
                .iter()
                .map(|id| x509_ocsp::Request {
                    req_cert: id.raw.clone(),
                    single_request_extensions: None,
                })
                .collect(),
            request_extensions,
        },
        optional_signature: None,
    };
    Ok(request.to_der()?)
}

/// Parse a DER OCSPRequest. Never panics; every refusal is an [`OcspError`]
/// whose [`OcspError::to_response`] is the `malformedRequest` response.
pub fn parse_request(der: &[u8]) -> Result<OcspRequestInfo, OcspError> {
    if der.is_empty() {
        return Err(OcspError::Empty);
    }
    if der.len() > MAX_REQUEST_BYTES {
        return Err(OcspError::TooLarge {
            len: der.len(),
            max: MAX_REQUEST_BYTES,
        });
    }
    let req = OcspRequest::from_der(der).map_err(|e| OcspError::Malformed(e.to_string()))?;
    let tbs = req.tbs_request;
    if tbs.request_list.is_empty() {
        return Err(OcspError::NoCertIds);
    }
    if tbs.request_list.len() > MAX_CERT_IDS {
        return Err(OcspError::TooManyCertIds(tbs.request_list.len()));
    }
    let mut nonce = None;
    for ext in tbs.request_extensions.iter().flatten() {
        match ext.extn_id {
            ID_PKIX_OCSP_NONCE => {
                let raw = ext.extn_value.as_bytes();
                // RFC 8954 nonces are an OCTET STRING inside extnValue; very old
                // clients put the bytes there directly. Either way, bound the length.
                let len = OctetString::from_der(raw)
                    .map(|o| o.as_bytes().len())
                    .unwrap_or(raw.len());
                if len == 0 || len > MAX_NONCE_BYTES {
                    return Err(OcspError::BadNonce(len));
                }
                nonce = Some(raw.to_vec());
            }
            ID_PKIX_OCSP_RESPONSE => {
                // Acceptable response types: we only make basic responses.
                let types = Vec::<ObjectIdentifier>::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| OcspError::Malformed(format!("acceptable responses: {e}")))?;
                if !types.contains(&ID_PKIX_OCSP_BASIC) {
                    return Err(OcspError::UnsupportedCriticalExtension(
                        "acceptable responses without id-pkix-ocsp-basic".into(),
                    ));
                }
            }
            other if ext.critical => {
                return Err(OcspError::UnsupportedCriticalExtension(other.to_string()))
            }
            _ => {}
        }
    }
    let mut cert_ids = Vec::with_capacity(tbs.request_list.len());
    for r in tbs.request_list {
        if let Some(ext) = r
            .single_request_extensions
            .iter()
            .flatten()
            .find(|e| e.critical)
        {
            return Err(OcspError::UnsupportedCriticalExtension(
                ext.extn_id.to_string(),
            ));
        }
        cert_ids.push(cert_id_info(r.req_cert)?);
    }
    Ok(OcspRequestInfo { cert_ids, nonce })
}

/// Decode the last path segment of a GET request (RFC 6960 A.1: URL-encoded
/// base64 of the DER request). Accepts percent-escapes, the URL-safe
/// alphabet, and missing padding, as clients differ on all three.
pub fn decode_get_request(segment: &str) -> Result<Vec<u8>, OcspError> {
    // Base64 of the largest request we accept, plus escapes.
    if segment.len() > MAX_REQUEST_BYTES * 2 {
        return Err(OcspError::TooLarge {
            len: segment.len(),
            max: MAX_REQUEST_BYTES * 2,
        });
    }
    let bytes = segment.as_bytes();
    let mut text = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(OcspError::BadGetEncoding)?;
            let s = std::str::from_utf8(hex).map_err(|_| OcspError::BadGetEncoding)?;
            text.push(u8::from_str_radix(s, 16).map_err(|_| OcspError::BadGetEncoding)?);
            i += 3;
        } else {
            text.push(bytes[i]);
            i += 1;
        }
    }
    base64_decode(&text)
}

/// OCSP GET paths carry base64 in either alphabet (RFC 6960 A.1 says standard
/// base64 URL-encoded; many clients send the URL-safe one), padded or not.
fn base64_decode(text: &[u8]) -> Result<Vec<u8>, OcspError> {
    use base64ct::{Base64, Base64Unpadded, Base64Url, Base64UrlUnpadded, Encoding};
    let s = std::str::from_utf8(text).map_err(|_| OcspError::BadGetEncoding)?;
    let url_safe = s.contains(['-', '_']);
    let padded = s.ends_with('=');
    let decoded = match (url_safe, padded) {
        (false, true) => Base64::decode_vec(s),
        (false, false) => Base64Unpadded::decode_vec(s),
        (true, true) => Base64Url::decode_vec(s),
        (true, false) => Base64UrlUnpadded::decode_vec(s),
    };
    decoded.map_err(|_| OcspError::BadGetEncoding)
}

fn issuer_hashes(ca: &CaCertificate, hash: HashAlg) -> Result<(Vec<u8>, Vec<u8>), OcspError> {
    let name = ca.subject().to_der()?;
    let key = ca
        .cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    let alg = hash.digest_alg();
    Ok((
        digest::digest(alg, &name).as_ref().to_vec(),
        digest::digest(alg, key).as_ref().to_vec(),
    ))
}

/// The issuer name and key hashes of one CA under every supported hash,
/// computed once, to recognise CertIDs that ask about its certificates.
#[derive(Clone, Debug)]
pub struct IssuerHashes {
    hashes: Vec<(HashAlg, Vec<u8>, Vec<u8>)>,
}

impl IssuerHashes {
    pub fn new(ca: &CaCertificate) -> Result<Self, OcspError> {
        let mut hashes = Vec::with_capacity(4);
        for alg in [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            let (name, key) = issuer_hashes(ca, alg)?;
            hashes.push((alg, name, key));
        }
        Ok(IssuerHashes { hashes })
    }

    /// Whether `id` names this CA as issuer (both hashes must match).
    pub fn matches(&self, id: &CertIdInfo) -> bool {
        let Some(alg) = id.hash_alg else {
            return false;
        };
        self.hashes.iter().any(|(a, name, key)| {
            *a == alg && *name == id.issuer_name_hash && *key == id.issuer_key_hash
        })
    }
}

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

#[cfg(test)]
mod tests;
