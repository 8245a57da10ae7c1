//! OCSP requests: the CertIDs and requests relying parties send (encoded,
//! parsed within bounds, GET paths decoded), and which CertIDs name one CA.

use std::fmt;

use aws_lc_rs::digest;
use const_oid::db::rfc6960::{ID_PKIX_OCSP_BASIC, ID_PKIX_OCSP_NONCE, ID_PKIX_OCSP_RESPONSE};
use const_oid::ObjectIdentifier;
use der::asn1::{Null, OctetString};
use der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_ocsp::{CertId, OcspRequest};

use super::{OcspError, MAX_CERT_IDS, MAX_NONCE_BYTES, MAX_REQUEST_BYTES, SHA1};
use crate::cert::CaCertificate;
use crate::oids;
use crate::serial::Serial;

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
    pub(super) raw: CertId,
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
