//! PKCS#10 certificate signing requests: parse, prove possession, extract what
//! the requester asked for, and create them (for CA CSRs and clients).

use der::asn1::{BitString, SetOfVec};
use der::{Decode, Encode};
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, ExtensionReq, Version};

use crate::keys::{KeyError, PublicKeyKind, Signer};
use crate::names::{NameError, SanEntry};
use crate::oids;
use crate::pem::{self, PemError};
use crate::signature::{self, SignatureAlgorithm, SignatureError};

/// Largest CSR accepted, PEM or DER. Real CSRs are under 4 KiB.
pub const MAX_CSR_BYTES: usize = 64 * 1024;
/// Most SANs one request may carry.
pub const MAX_SANS: usize = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    #[error("the CSR is empty")]
    Empty,
    #[error("the CSR is {size} bytes; the limit is {MAX_CSR_BYTES}")]
    TooLarge { size: usize },
    #[error("the CSR is not valid PEM: {0}")]
    Pem(#[from] PemError),
    #[error("the CSR does not parse as PKCS#10: {0}")]
    Malformed(String),
    #[error("the CSR's signature does not prove possession of its key: {0}")]
    BadSignature(SignatureError),
    #[error("the CSR's key is not acceptable: {0}")]
    Key(#[from] KeyError),
    #[error("the CSR names are not acceptable: {0}")]
    Name(#[from] NameError),
    #[error("the CSR asks for {0} names; the limit is {MAX_SANS}")]
    TooManyNames(usize),
}

/// A CSR's parts that issuance uses. From [`parse_csr`] its self-signature
/// verified; from [`parse_csr_deferring_proof`], not until its proof is checked.
#[derive(Clone, Debug)]
pub struct Csr {
    pub der: Vec<u8>,
    pub subject: Name,
    pub spki_der: Vec<u8>,
    pub key_kind: PublicKeyKind,
    pub signature_algorithm: SignatureAlgorithm,
    /// Names from the CSR's subjectAltName extension request, validated.
    pub requested_sans: Vec<SanEntry>,
}

/// Parse a CSR (PEM `CERTIFICATE REQUEST` or DER), verify its self-signature,
/// refuse weak or unknown keys and malformed names.
pub fn parse_csr(input: &[u8]) -> Result<Csr, CsrError> {
    let unchecked = parse_unchecked(input)?;
    // Before the names: a request that does not prove its key is refused as
    // such, whatever else is wrong with it.
    unchecked.possession.check()?;
    unchecked.finish()
}

/// [`parse_csr`] but for the self-signature's check, which is returned to be
/// made on another core while the certificate is prepared. The CSR is not
/// proven until [`ProofOfPossession::check`] succeeds: nothing made for it
/// may leave the process before then.
pub fn parse_csr_deferring_proof(input: &[u8]) -> Result<(Csr, ProofOfPossession), CsrError> {
    let unchecked = parse_unchecked(input)?;
    let possession = unchecked.possession.clone();
    match unchecked.finish() {
        Ok(csr) => Ok((csr, possession)),
        // The same verdict as `parse_csr`'s, which checks the proof first.
        Err(e) => Err(possession.check().err().unwrap_or(e)),
    }
}

/// A CSR's self-signature over its signed info, not yet checked.
#[derive(Clone, Debug)]
pub struct ProofOfPossession {
    info_der: Vec<u8>,
    spki_der: Vec<u8>,
    algorithm: SignatureAlgorithm,
    signature: Vec<u8>,
}

impl ProofOfPossession {
    /// Whether the signature verifies with the CSR's own key.
    pub fn check(&self) -> Result<(), CsrError> {
        let spki = SubjectPublicKeyInfoRef::from_der(&self.spki_der)
            .map_err(|e| CsrError::Malformed(e.to_string()))?;
        signature::verify_with(&spki, self.algorithm, &self.info_der, &self.signature)
            .map_err(CsrError::BadSignature)
    }
}

/// A decoded request whose key is of a known kind and not a known weak one,
/// its signature not checked, its names not yet read.
struct Unchecked {
    req: CertReq,
    der: Vec<u8>,
    key_kind: PublicKeyKind,
    possession: ProofOfPossession,
}

fn parse_unchecked(input: &[u8]) -> Result<Unchecked, CsrError> {
    if input.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(CsrError::Empty);
    }
    if input.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge { size: input.len() });
    }
    let der = pem::der_or_pem("CERTIFICATE REQUEST", input)?;
    let req = CertReq::from_der(&der).map_err(|e| CsrError::Malformed(e.to_string()))?;
    if req.info.version != Version::V1 {
        return Err(CsrError::Malformed("unknown PKCS#10 version".into()));
    }
    // The signed info and its key as they lie in the input: the signature
    // is over those bytes. Encoding the decoded info again would not always
    // give them: der sorts a SET OF it reads out of DER's order (a
    // multi-valued RDN, the attributes) rather than refusing it. Such a
    // request, signed over what it sent, is accepted; what it asks for is
    // the same set of values, and the certificate carries them in DER's order.
    let (info_der, spki_der) = info_and_key_der(&der)
        .ok_or_else(|| CsrError::Malformed("certification request structure".into()))?;
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    let key_kind = PublicKeyKind::from_spki(&spki)?;
    crate::weak_keys::refuse_known_weak_key(&spki)?;
    let algorithm =
        SignatureAlgorithm::from_identifier(&req.algorithm).map_err(CsrError::BadSignature)?;
    let signature = req
        .signature
        .as_bytes()
        .ok_or_else(|| CsrError::Malformed("signature bit string has unused bits".into()))?
        .to_vec();
    let possession = ProofOfPossession {
        info_der: info_der.to_vec(),
        spki_der: spki_der.to_vec(),
        algorithm,
        signature,
    };
    Ok(Unchecked {
        req,
        der,
        key_kind,
        possession,
    })
}

impl Unchecked {
    /// The parts issuance uses, names checked.
    fn finish(self) -> Result<Csr, CsrError> {
        crate::names::check_subject(&self.req.info.subject)?;
        let requested_sans = requested_sans(&self.req.info)?;
        Ok(Csr {
            der: self.der,
            subject: self.req.info.subject,
            spki_der: self.possession.spki_der,
            key_kind: self.key_kind,
            signature_algorithm: self.possession.algorithm,
            requested_sans,
        })
    }
}

/// A CSR's `CertificationRequestInfo` and its `subjectPKInfo`, whole, as
/// they lie in `der` (`SEQUENCE { info SEQUENCE { version, subject, spki,
/// ... }, ... }`).
fn info_and_key_der(der: &[u8]) -> Option<(&[u8], &[u8])> {
    use crate::der_util::read_tlv;
    let (request, _) = read_tlv(der).ok()?;
    let (info, _) = read_tlv(request.content).ok()?;
    let (_version, rest) = read_tlv(info.content).ok()?;
    let (_subject, rest) = read_tlv(rest).ok()?;
    let (spki, _) = read_tlv(rest).ok()?;
    Some((info.whole, spki.whole))
}

fn requested_sans(info: &CertReqInfo) -> Result<Vec<SanEntry>, CsrError> {
    let mut out = Vec::new();
    for attr in info
        .attributes
        .iter()
        .filter(|a| a.oid == oids::EXTENSION_REQUEST)
    {
        for value in attr.values.iter() {
            let bytes = value
                .to_der()
                .map_err(|e| CsrError::Malformed(e.to_string()))?;
            let exts = ExtensionReq::from_der(&bytes)
                .map_err(|e| CsrError::Malformed(format!("extension request: {e}")))?;
            for ext in exts
                .0
                .iter()
                .filter(|e| e.extn_id == oids::SUBJECT_ALT_NAME)
            {
                let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                    .map_err(|e| CsrError::Malformed(format!("subjectAltName: {e}")))?;
                for gn in &san.0 {
                    // Names we do not issue (URIs, otherNames) are ignored: the
                    // profile decides what goes into the certificate.
                    if let Some(entry) = SanEntry::from_general_name(gn) {
                        out.push(entry.validated()?);
                    }
                }
            }
        }
    }
    if out.len() > MAX_SANS {
        return Err(CsrError::TooManyNames(out.len()));
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The first common name in a subject, if any.
pub fn common_name(name: &Name) -> Option<String> {
    common_names(name).into_iter().next()
}

/// Every common name in a subject, in order (issuance refuses more than one).
pub fn common_names(name: &Name) -> Vec<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == oids::AT_COMMON_NAME)
        .filter_map(|atv| attribute_text(&atv.value))
        .collect()
}

/// A directory string attribute's text (UTF8String, PrintableString or IA5String).
pub(crate) fn attribute_text(value: &der::Any) -> Option<String> {
    value
        .decode_as::<der::asn1::Utf8StringRef<'_>>()
        .map(|s| s.as_str().to_string())
        .or_else(|_| {
            value
                .decode_as::<der::asn1::PrintableStringRef<'_>>()
                .map(|s| s.as_str().to_string())
        })
        .or_else(|_| {
            value
                .decode_as::<der::asn1::Ia5StringRef<'_>>()
                .map(|s| s.as_str().to_string())
        })
        .ok()
}

#[derive(Debug, thiserror::Error)]
pub enum CsrBuildError {
    #[error("encoding: {0}")]
    Encoding(#[from] der::Error),
    #[error("signing: {0}")]
    Signing(#[from] KeyError),
}

/// Build and sign a CSR for `signer`'s key, asking for `sans`. Used for CA CSRs
/// sent to an external root and by clients.
pub fn create_csr(
    signer: &dyn Signer,
    subject: &Name,
    sans: &[SanEntry],
) -> Result<Vec<u8>, CsrBuildError> {
    let public_key = SubjectPublicKeyInfoOwned::from_der(signer.public_key_der())?;
    let mut attributes = SetOfVec::new();
    if !sans.is_empty() {
        let names = sans
            .iter()
            .map(SanEntry::to_general_name)
            .collect::<Result<Vec<_>, _>>()?;
        let ext = Extension {
            extn_id: oids::SUBJECT_ALT_NAME,
            critical: false,
            extn_value: der::asn1::OctetString::new(SubjectAltName(names).to_der()?)?,
        };
        let value = der::Any::from_der(&ExtensionReq(vec![ext]).to_der()?)?;
        let mut values = SetOfVec::new();
        values.insert(value)?;
        attributes.insert(Attribute {
            oid: oids::EXTENSION_REQUEST,
            values,
        })?;
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.clone(),
        public_key,
        attributes,
    };
    let info_der = info.to_der()?;
    let sig = signer.sign(&info_der)?;
    let req = CertReq {
        info,
        algorithm: signer.signature_algorithm().identifier(),
        signature: BitString::from_bytes(&sig)?,
    };
    Ok(req.to_der()?)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::keys::{KeyAlgorithm, SoftwareKey};

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/../fixtures/csr/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// openssl's CSRs of every supported kind parse; their key is the public
    /// half of the private key openssl made them with.
    #[test]
    fn openssl_csrs_parse_and_keep_their_key() {
        for name in ["p256-sha256", "p256-sha384", "p384-sha256", "rsa2048"] {
            let csr = parse_csr(&fixture(&format!("{name}.csr")))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let pem = String::from_utf8(fixture(&format!("{name}.key.pem"))).expect(name);
            let key = SoftwareKey::from_pkcs8_pem(&pem).expect(name);
            assert_eq!(csr.spki_der, key.public_key_der(), "{name}");
        }
        assert!(parse_csr(&fixture("p256-sha256.der")).is_ok());
    }

    /// A multi-valued RDN out of DER's order, signed as sent, is accepted
    /// with the same attributes; the signature is checked over the bytes
    /// sent, not over der's sorted reading of them (with which the same
    /// request signed over the sorted bytes must fail).
    #[test]
    fn a_set_out_of_der_order_is_verified_as_sent() {
        let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
        let name = Name::from_str("CN=bob.example+O=Example").expect("name");
        let sorted = CertReq::from_der(&create_csr(&key, &name, &[]).expect("csr")).expect("der");
        let attributes: Vec<Vec<u8>> = sorted.info.subject.0[0]
            .0
            .iter()
            .map(|a| a.to_der().expect("der"))
            .collect();
        let [first, second] = attributes.as_slice() else {
            panic!("one RDN with two attributes: {attributes:?}");
        };
        let info = sorted.info.to_der().expect("der");
        let unsorted_info = crate::der_util::swap_adjacent(&info, first, second);
        let algorithm = sorted.algorithm.to_der().expect("der");
        let request = |info: &[u8], signature: &[u8]| {
            let bits = BitString::from_bytes(signature)
                .expect("bits")
                .to_der()
                .expect("der");
            crate::der_util::encode_tlv(0x30, &[info, &algorithm, &bits].concat())
        };

        let signed_as_sent = request(&unsorted_info, &key.sign(&unsorted_info).expect("sign"));
        let csr = parse_csr(&signed_as_sent).expect("signed over what it sent");
        assert_eq!(csr.subject, sorted.info.subject, "the same attributes");
        assert_eq!(csr.spki_der, key.public_key_der());

        let signed_sorted = request(&unsorted_info, &key.sign(&info).expect("sign"));
        assert!(matches!(
            parse_csr(&signed_sorted),
            Err(CsrError::BadSignature(_))
        ));
    }

    /// The signature is checked over the signed info as sent: any byte of it
    /// changed, or of the signature, and the CSR is refused.
    #[test]
    fn a_csr_changed_anywhere_in_what_is_signed_is_refused() {
        let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
        let name = Name::from_str("CN=bob.example").expect("name");
        let sans = [SanEntry::parse("bob.example").expect("san")];
        let der = create_csr(&key, &name, &sans).expect("csr");
        let csr = parse_csr(&der).expect("a good CSR parses");
        assert_eq!(csr.spki_der, key.public_key_der());
        assert!(matches!(
            parse_csr(&fixture("bad-signature.der")),
            Err(CsrError::BadSignature(_))
        ));

        let (request, _) = crate::der_util::read_tlv(&der).expect("tlv");
        let (info, _) = crate::der_util::read_tlv(request.content).expect("tlv");
        let info_at = request.content.as_ptr() as usize - der.as_ptr() as usize;
        let (mut refused, mut tried, mut bad_signatures) = (0, 0, 0);
        // Every byte inside the info's contents (its header left alone, so
        // the structure still reads) and the signature's last byte.
        let contents_at = info_at + (info.whole.len() - info.content.len());
        for at in (contents_at..info_at + info.whole.len()).chain([der.len() - 1]) {
            let mut changed = der.clone();
            changed[at] ^= 0x01;
            tried += 1;
            match parse_csr(&changed) {
                Ok(c) => panic!("byte {at} changed, still accepted: {:?}", c.subject),
                Err(e) => {
                    refused += 1;
                    bad_signatures += usize::from(matches!(e, CsrError::BadSignature(_)));
                }
            }
        }
        assert_eq!(refused, tried);
        // Most changes still decode: the signature is what refuses them.
        assert!(bad_signatures > tried / 2, "{bad_signatures} of {tried}");
    }

    /// The proof deferred and then checked gives `parse_csr`'s verdict, error
    /// included, for every byte of a CSR changed (a change that breaks a name
    /// breaks the signature too: the proof's error is the one given).
    #[test]
    fn a_deferred_proof_gives_the_same_verdicts() {
        let deferred = |der: &[u8]| -> Result<Csr, CsrError> {
            let (csr, proof) = parse_csr_deferring_proof(der)?;
            proof.check().map(|()| csr)
        };
        let summary = |r: Result<Csr, CsrError>| r.map(|c| format!("{c:?}"));
        let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
        let name = Name::from_str("CN=bob.example").expect("name");
        let sans = [SanEntry::parse("bob.example").expect("san")];
        let der = create_csr(&key, &name, &sans).expect("csr");
        let bad_signature = fixture("bad-signature.der");
        assert!(matches!(
            parse_csr_deferring_proof(&bad_signature).map(|(_, proof)| proof.check()),
            Ok(Err(CsrError::BadSignature(_)))
        ));
        let (mut accepted, mut refused_after_parsing) = (0, 0);
        for input in [der.clone(), bad_signature, fixture("p256-sha256.csr")]
            .into_iter()
            .chain((0..der.len()).map(|at| {
                let mut changed = der.clone();
                changed[at] ^= 0x01;
                changed
            }))
        {
            let now = parse_csr(&input);
            accepted += usize::from(now.is_ok());
            refused_after_parsing +=
                usize::from(now.is_err() && parse_csr_deferring_proof(&input).is_ok());
            assert_eq!(summary(deferred(&input)), summary(now), "{input:02x?}");
        }
        assert_eq!(accepted, 2, "the two good CSRs");
        assert!(
            refused_after_parsing > 0,
            "no proof was refused after parsing"
        );
    }
}
