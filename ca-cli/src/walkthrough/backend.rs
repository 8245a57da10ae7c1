//! The CA's side of the story behind one trait: in-process through ca-core
//! (offline), or through a running ca-server's API (online).

use anyhow::{anyhow, bail, Context, Result};
use ca_core::cert::{
    create_intermediate, create_root, issue, CertificateRequest, IntermediateParams, Issuer,
    IssuerUrls, RootParams,
};
use ca_core::crl::{build_crl, CrlParams, RevocationReason, RevokedEntry};
use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};
use ca_core::{Profile, Serial};
use ca_server::api::wire;
use time::OffsetDateTime;

use super::{name, Narrator};
use crate::output::{hex, sha256};

/// The CA's side of the story, in-process or through the server.
pub(super) trait CaBackend {
    fn mode(&self) -> &'static str;
    /// Create root and issuing intermediate; return their DER certificates.
    fn create(&mut self, n: &Narrator) -> Result<(Vec<u8>, Vec<u8>)>;
    /// Check a CSR and issue a TLS server certificate: (leaf, chain issuer-first).
    fn issue(&mut self, csr_der: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>)>;
    /// Revoke a certificate by serial (lower-case hex), for key compromise.
    fn revoke(&mut self, serial_hex: &str) -> Result<()>;
    /// The current CRL of the CA that issued `leaf` (DER).
    fn crl(&mut self, leaf: &[u8]) -> Result<Vec<u8>>;
    /// What the CA's records say of a certificate (online only).
    fn status(&mut self, _serial_hex: &str) -> Result<Option<String>> {
        Ok(None)
    }
}

pub(super) struct OfflineCa {
    root_key: Option<SoftwareKey>,
    issuer_key: Option<SoftwareKey>,
    issuer: Option<Issuer>,
    revoked: Vec<(Serial, OffsetDateTime)>,
    crl_number: u64,
}

impl OfflineCa {
    pub(super) fn new() -> Self {
        OfflineCa {
            root_key: None,
            issuer_key: None,
            issuer: None,
            revoked: Vec::new(),
            crl_number: 0,
        }
    }

    fn parts(&self) -> Result<(&Issuer, &SoftwareKey)> {
        match (&self.issuer, &self.issuer_key) {
            (Some(i), Some(k)) => Ok((i, k)),
            _ => bail!("the CA has not been created yet"),
        }
    }
}

/// The CA's part done by a running ca-server through its API.
pub(super) struct OnlineCa {
    pub(super) api: crate::client::Api,
    pub(super) issuing_ca: Option<String>,
}

impl OnlineCa {
    fn ca_pem(&self, id: &str) -> Result<Vec<u8>> {
        let v: wire::CaCertificate = self
            .api
            .get(&format!("/v1/cas/{id}/certificate"))
            .context("the server sent no certificate")?;
        ca_core::pem::decode("CERTIFICATE", &v.certificate).context("the server's CA certificate")
    }
}

impl CaBackend for OnlineCa {
    fn mode(&self) -> &'static str {
        "online"
    }

    fn create(&mut self, n: &Narrator) -> Result<(Vec<u8>, Vec<u8>)> {
        // A fresh pair of CAs per run, with a distinct name, so runs do not collide.
        let tag = hex(&sha256(
            &OffsetDateTime::now_utc()
                .unix_timestamp_nanos()
                .to_be_bytes(),
        )[..3]);
        n.say(&format!(
            "Asking the CA service at {} to create a root CA (P-384) ...",
            self.api.conn.server
        ));
        let root: wire::CaDescription = self.api.call(
            hyper::Method::POST,
            "/v1/cas",
            Some(&wire::CreateCa {
                ca_type: "ROOT".into(),
                subject: format!("CN=Walkthrough Root CA {tag},O=Example Trust"),
                key_algorithm: "ec-p384".into(),
                parent_ca_id: None,
                external: false,
                validity_days: Some(3650),
                path_len: Some(1),
                name_constraints: None,
                key_storage: None,
                key_label: None,
                ocsp: None,
            }),
        )?;
        let root_id = root.id;
        n.say("... and an issuing intermediate (P-256) signed by that root. Their private keys stay inside the service.");
        let sub: wire::CaDescription = self.api.call(
            hyper::Method::POST,
            "/v1/cas",
            Some(&wire::CreateCa {
                ca_type: "SUBORDINATE".into(),
                subject: format!("CN=Walkthrough Issuing CA {tag},O=Example Trust"),
                key_algorithm: "ec-p256".into(),
                parent_ca_id: Some(root_id.clone()),
                external: false,
                validity_days: Some(1825),
                path_len: Some(0),
                name_constraints: None,
                key_storage: None,
                key_label: None,
                ocsp: None,
            }),
        )?;
        let sub_id = sub.id;
        n.show("root CA id", &root_id);
        n.show("issuing CA id", &sub_id);
        let out = (self.ca_pem(&root_id)?, self.ca_pem(&sub_id)?);
        self.issuing_ca = Some(sub_id);
        Ok(out)
    }

    fn issue(&mut self, csr_der: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
        let v: wire::Certificate = self.api.call(
            hyper::Method::POST,
            "/v1/certificates",
            Some(&wire::IssueCertificate {
                ca_id: self.issuing_ca.clone(),
                csr: ca_core::pem::encode("CERTIFICATE REQUEST", csr_der),
                profile: Some("tls-server".into()),
                validity_days: None,
                idempotency_token: None,
            }),
        )?;
        let leaf = ca_core::pem::decode("CERTIFICATE", &v.certificate)
            .context("no certificate in the answer")?;
        let chain = ca_core::pem::decode_all("CERTIFICATE", &v.certificate_chain)?;
        Ok((leaf, chain))
    }

    fn revoke(&mut self, serial_hex: &str) -> Result<()> {
        let _revoked: wire::CertificateSummary = self.api.call(
            hyper::Method::POST,
            &format!("/v1/certificates/{serial_hex}/revoke"),
            Some(&wire::RevokeCertificate {
                ca_id: self.issuing_ca.clone(),
                // 1 = keyCompromise (RFC 5280 CRLReason).
                reason: wire::RevocationReason::Code(1.into()),
            }),
        )?;
        Ok(())
    }

    fn crl(&mut self, leaf: &[u8]) -> Result<Vec<u8>> {
        // What a relying party does: follow the URL in the certificate.
        let url = crate::online::crl_url_of(leaf)?;
        let body = crate::client::http_get(&url)?;
        ca_core::pem::der_or_pem("X509 CRL", &body)
            .with_context(|| format!("{url} did not answer with a CRL"))
    }

    fn status(&mut self, serial_hex: &str) -> Result<Option<String>> {
        let q = self
            .issuing_ca
            .as_ref()
            .map(|c| format!("?ca_id={c}"))
            .unwrap_or_default();
        let v: wire::Certificate = self.api.get(&format!("/v1/certificates/{serial_hex}{q}"))?;
        Ok(Some(v.summary.status))
    }
}

impl CaBackend for OfflineCa {
    fn mode(&self) -> &'static str {
        "offline"
    }

    fn create(&mut self, n: &Narrator) -> Result<(Vec<u8>, Vec<u8>)> {
        let now = OffsetDateTime::now_utc();
        n.say("The CA makes a P-384 key pair for its root and signs its own root certificate.");
        let root_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP384)?;
        let mut params = RootParams::new(name("CN=Walkthrough Root CA,O=Example Trust")?);
        params.validity_days = 3650;
        let root = create_root(&root_key, &params, now).context("creating the root")?;
        n.say(
            "Then it makes a P-256 key for an issuing intermediate and signs that with the root.",
        );
        let issuer_key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256)?;
        let root_issuer = Issuer::new(root.clone(), vec![], IssuerUrls::default());
        let inter = create_intermediate(
            &root_issuer,
            &root_key,
            issuer_key.public_key_der(),
            &IntermediateParams {
                subject: name("CN=Walkthrough Issuing CA,O=Example Trust")?,
                validity_days: Some(1825),
                path_len: Some(0),
                name_constraints: None,
            },
            now,
        )
        .context("creating the intermediate")?;
        let out = (root.der.clone(), inter.der.clone());
        self.issuer = Some(Issuer::new(inter, vec![root], IssuerUrls::default()));
        self.root_key = Some(root_key);
        self.issuer_key = Some(issuer_key);
        Ok(out)
    }

    fn issue(&mut self, csr_der: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
        let (issuer, key) = self.parts()?;
        // parse_csr refuses a CSR whose self-signature does not verify: the
        // proof that the requester holds the private key.
        let csr = ca_core::parse_csr(csr_der).context("the CA refused the CSR")?;
        let req = CertificateRequest::from_csr(&csr, Profile::TlsServer);
        let issued = issue(issuer, key, &req, OffsetDateTime::now_utc()).context("issuing")?;
        Ok((issued.der, issuer.chain_der()))
    }

    fn revoke(&mut self, serial_hex: &str) -> Result<()> {
        let serial = Serial::from_hex(serial_hex).map_err(|e| anyhow!("serial: {e}"))?;
        self.revoked.push((serial, OffsetDateTime::now_utc()));
        Ok(())
    }

    fn crl(&mut self, _leaf: &[u8]) -> Result<Vec<u8>> {
        self.crl_number += 1;
        let (issuer, key) = self.parts()?;
        let now = OffsetDateTime::now_utc();
        let params = CrlParams {
            crl_number: self.crl_number,
            this_update: now - time::Duration::minutes(1),
            next_update: now + time::Duration::days(7),
        };
        let entries: Vec<RevokedEntry> = self
            .revoked
            .iter()
            .map(|(serial, at)| RevokedEntry {
                serial: serial.clone(),
                revoked_at: *at,
                reason: RevocationReason::KeyCompromise,
            })
            .collect();
        build_crl(&issuer.certificate, key, &params, &entries).context("building the CRL")
    }
}
