//! ACME Renewal Information (RFC 9773): when to renew a certificate, and
//! the certificate a certID names (which a new order may say it replaces).

use super::*;

impl Acme {
    /// renewalInfo (RFC 9773): when to renew. The window is the last third
    /// of the lifetime but its final sixth; for a revoked certificate, now.
    pub(super) fn renewal_info(&self, cert_id: &str) -> Result<Reply, Problem> {
        let (rec, _) = cert_of_cert_id(&self.auth, cert_id)?;
        let now = self.now();
        let (start, end) = if rec.revocation.is_some() {
            (now - 3600, now)
        } else {
            let life = (rec.not_after - rec.not_before).max(3);
            (rec.not_after - life / 3, rec.not_after - life / 6)
        };
        let mut r = Reply::json(
            StatusCode::OK,
            &json!({"suggestedWindow": {
                "start": crate::clock::fmt_unix(start),
                "end": crate::clock::fmt_unix(end),
            }}),
        );
        r.retry_after = Some(6 * 3600);
        Ok(r)
    }
}

/// ACME Renewal Information (RFC 9773): the certificate a certID names
/// (`base64url(AKI keyIdentifier).base64url(serial)`), if this server
/// issued it: its CA and serial.
pub(super) fn cert_of_cert_id(
    auth: &Authority,
    cert_id: &str,
) -> Result<(crate::store::CertRecord, Vec<u8>), Problem> {
    use der::Decode;
    let (aki, serial) = cert_id
        .split_once('.')
        .ok_or_else(|| Problem::malformed("a certID is base64url(AKI).base64url(serial)"))?;
    let aki = jws::unb64(aki, "the certID's key identifier")?;
    let serial_der = jws::unb64(serial, "the certID's serial")?;
    let mut bytes = serial_der.as_slice();
    while bytes.len() > 1 && bytes[0] == 0 {
        bytes = &bytes[1..];
    }
    let serial = crate::authority::parse_serial(&ca_core::hex::encode(bytes))
        .map_err(|e| Problem::malformed(e.message))?;
    let unknown = || Problem::not_found("this server issued no certificate with that certID");
    let ca = auth.store.ca_of_serial(&serial)?.ok_or_else(unknown)?;
    let (rec, der) = auth.store.get_cert(&ca, &serial)?.ok_or_else(unknown)?;
    let der = der.ok_or_else(unknown)?;
    let cert = x509_cert::Certificate::from_der(&der)
        .map_err(|e| Problem::server(format!("stored certificate: {e}")))?;
    let cert_aki = cert
        .tbs_certificate
        .get::<x509_cert::ext::pkix::AuthorityKeyIdentifier>()
        .ok()
        .flatten()
        .and_then(|(_, a)| a.key_identifier)
        .map(|k| k.as_bytes().to_vec());
    if cert_aki.as_deref() != Some(aki.as_slice()) {
        return Err(unknown());
    }
    Ok((rec, der))
}
