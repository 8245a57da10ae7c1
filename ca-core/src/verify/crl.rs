//! Revocation against caller-supplied CRLs (RFC 5280 6.3, simplified: complete
//! CRLs issued directly by the certificate's issuer; delta CRLs are refused).

use const_oid::ObjectIdentifier;
use der::Decode;
use spki::SubjectPublicKeyInfoRef;
use x509_cert::crl::CertificateList;

use super::cert::{normalized_rdns, unix, Cert, KU_CRL_SIGN};
use super::der_util::raw_tbs;
use crate::oids;
use crate::signature::verify_signature;

const DELTA_CRL_INDICATOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.27");

pub(crate) struct ParsedCrl<'a> {
    tbs: &'a [u8],
    crl: CertificateList,
    issuer_rdns: Vec<String>,
}

impl<'a> ParsedCrl<'a> {
    pub(crate) fn parse(der: &'a [u8]) -> Result<Self, String> {
        let tbs = raw_tbs(der).ok_or("CRL is not DER")?;
        let crl =
            CertificateList::from_der(der).map_err(|e| format!("CRL does not decode: {e}"))?;
        let issuer_rdns = normalized_rdns(&crl.tbs_cert_list.issuer);
        Ok(ParsedCrl {
            tbs,
            crl,
            issuer_rdns,
        })
    }
}

/// Check `cert` (issued by `issuer`) against every CRL from that issuer.
/// `Ok` carries a short description of what was consulted.
pub(crate) fn check(
    cert: &Cert<'_>,
    issuer: &Cert<'_>,
    crls: &[ParsedCrl<'_>],
    now: i64,
) -> Result<String, String> {
    let mut consulted = 0usize;
    for crl in crls.iter().filter(|c| c.issuer_rdns == cert.issuer_rdns) {
        let list = &crl.crl;
        let spki = SubjectPublicKeyInfoRef::from_der(issuer.raw.spki)
            .map_err(|_| "issuer key does not parse".to_string())?;
        let sig = list
            .signature
            .as_bytes()
            .ok_or("CRL signature has unused bits")?;
        if list.tbs_cert_list.signature != list.signature_algorithm {
            return Err("CRL signature algorithm fields differ".into());
        }
        // A CRL with the issuer's name but another key is not this issuer's.
        if verify_signature(&spki, &list.signature_algorithm, crl.tbs, sig).is_err() {
            continue;
        }
        if let Some(ku) = &issuer.ext.key_usage {
            if ku.value & KU_CRL_SIGN == 0 {
                return Err("the CRL issuer's keyUsage lacks cRLSign".into());
            }
        }
        let mut has_number = false;
        for e in list.tbs_cert_list.crl_extensions.iter().flatten() {
            match e.extn_id {
                oids::CRL_NUMBER => {
                    if e.critical {
                        return Err("CRL has a critical cRLNumber".into());
                    }
                    has_number = true;
                }
                DELTA_CRL_INDICATOR => return Err("delta CRLs are not supported".into()),
                oids::AUTHORITY_KEY_IDENTIFIER => {}
                oids::ISSUING_DISTRIBUTION_POINT => {
                    // A partitioned CRL covers only some certificates or reasons:
                    // "not listed" would not mean "not revoked", so fail closed.
                    use der::Decode;
                    let idp = x509_cert::ext::pkix::crl::dp::IssuingDistributionPoint::from_der(
                        e.extn_value.as_bytes(),
                    )
                    .map_err(|_| "CRL has a malformed issuingDistributionPoint".to_string())?;
                    if idp.only_contains_ca_certs
                        || idp.only_contains_user_certs
                        || idp.only_some_reasons.is_some()
                        || idp.indirect_crl
                        || idp.only_contains_attribute_certs
                    {
                        return Err("partitioned (scoped) CRLs are not supported".into());
                    }
                }
                other if e.critical => {
                    return Err(format!("CRL has unsupported critical extension {other}"))
                }
                _ => {}
            }
        }
        if !has_number {
            return Err("CRL lacks the mandatory cRLNumber extension".into());
        }
        if unix(&list.tbs_cert_list.this_update) > now {
            return Err("CRL is not yet valid".into());
        }
        if let Some(next) = &list.tbs_cert_list.next_update {
            if unix(next) < now {
                return Err("CRL is past its nextUpdate".into());
            }
        }
        let serial = cert.serial();
        if list
            .tbs_cert_list
            .revoked_certificates
            .iter()
            .flatten()
            .any(|r| r.serial_number.as_bytes() == serial)
        {
            return Err(format!("serial {} is revoked", hex(serial)));
        }
        consulted += 1;
    }
    Ok(match consulted {
        0 => "no CRL from this issuer".to_string(),
        n => format!("not revoked ({n} CRL(s) consulted)"),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
