//! Revocation against caller-supplied CRLs (RFC 5280 6.3, simplified: complete
//! CRLs issued directly by the certificate's issuer; delta CRLs are refused).

use super::cert::{Cert, KU_CRL_SIGN};
use super::dn::names_equivalent;
use crate::crl::{parse_crl, CrlError, ParsedCrl};
use crate::signature::verify_signature;

/// A caller's CRL, parsed once by [`crate::crl`].
pub(crate) struct CallerCrl {
    crl: ParsedCrl,
}

impl CallerCrl {
    pub(crate) fn parse(der: &[u8]) -> Result<Self, String> {
        let crl = parse_crl(der).map_err(|e| match e {
            CrlError::Malformed(what) => format!("CRL does not decode: {what}"),
            other => format!("CRL does not decode: {other}"),
        })?;
        Ok(CallerCrl { crl })
    }
}

/// Check `cert` (issued by `issuer`) against every CRL from that issuer.
/// `Ok` carries a short description of what was consulted.
pub(crate) fn check(
    cert: &Cert<'_>,
    issuer: &Cert<'_>,
    crls: &[CallerCrl],
    now: i64,
) -> Result<String, String> {
    let mut consulted = 0usize;
    let Some(cert_issuer) = cert.issuer_name() else {
        return Err("the certificate's issuer name does not decode".into());
    };
    for caller_crl in crls
        .iter()
        .filter(|c| names_equivalent(&c.crl.issuer, cert_issuer))
    {
        let crl = &caller_crl.crl;
        let (tbs, sig) = crl.signed_parts();
        // A CRL with the issuer's name but another key is not this issuer's.
        if verify_signature(issuer.spki(), &crl.signature_algorithm, tbs, sig).is_err() {
            continue;
        }
        if let Some(ku) = &issuer.ext.key_usage {
            if ku.value & KU_CRL_SIGN == 0 {
                return Err("the CRL issuer's keyUsage lacks cRLSign".into());
            }
        }
        if crl.is_delta {
            return Err("delta CRLs are not supported".into());
        }
        if crl.partitioned {
            // A partitioned CRL covers only some certificates or reasons:
            // "not listed" would not mean "not revoked", so fail closed.
            return Err("partitioned (scoped) CRLs are not supported".into());
        }
        if let Some(other) = crl.unsupported_critical.first() {
            return Err(format!("CRL has unsupported critical extension {other}"));
        }
        if crl.crl_number.is_none() {
            return Err("CRL lacks the mandatory cRLNumber extension".into());
        }
        if crl.this_update.unix_timestamp() > now {
            return Err("CRL is not yet valid".into());
        }
        if let Some(next) = crl.next_update {
            if next.unix_timestamp() < now {
                return Err("CRL is past its nextUpdate".into());
            }
        }
        let serial = cert.serial();
        if crl.lists_serial_octets(serial) {
            return Err(format!("serial {} is revoked", crate::hex::encode(serial)));
        }
        consulted += 1;
    }
    Ok(match consulted {
        0 => "no CRL from this issuer".to_string(),
        n => format!("not revoked ({n} CRL(s) consulted)"),
    })
}
