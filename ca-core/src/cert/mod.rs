//! CA certificates and issuance: roots, intermediates (in-process or signed by an
//! external root), and end-entity certificates built from a profile.
//!
//! Issuance is split in two so a caller can record its intent durably between
//! the steps: [`prepare`] builds and lints the to-be-signed certificate;
//! [`Prepared::sign`] signs it.

use der::asn1::{Ia5String, OctetString};
use x509_cert::ext::pkix::constraints::name::{GeneralSubtree, NameConstraints};
use x509_cert::ext::pkix::name::GeneralName;

use crate::keys::KeyError;
use crate::lint::{self, LintFinding};
use crate::names::{IpNet, NameError};
use crate::pem::{self, PemError};
use crate::profile::Profile;
use crate::serial::SerialError;

mod ca;
mod issuance;
mod tbs;
#[cfg(test)]
mod tests;

pub use ca::{cert_signed_by, import_signed_ca, key_identifier, CaCertificate};
pub use issuance::{
    create_intermediate, create_root, issue, prepare, CertificateRequest, IntermediateParams,
    IssuedCertificate, Prepared, RootParams,
};
pub(crate) use tbs::to_x509_time;

/// How far notBefore is set back from "now", for relying parties whose clocks lag.
pub const NOT_BEFORE_BACKDATE: time::Duration = time::Duration::minutes(5);
/// Default lifetime of a root CA.
pub const DEFAULT_ROOT_DAYS: u32 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("validity of {0} days is not possible: it must be at least 1 day")]
    InvalidValidity(u32),
    #[error("the issuing CA expired on {0}; it can issue nothing")]
    IssuerExpired(String),
    #[error("the issuing CA is not valid before {0}")]
    IssuerNotYetValid(String),
    #[error("a {0} certificate needs at least one DNS or IP subjectAltName (browsers ignore the common name)")]
    MissingServerName(Profile),
    #[error("the certificate would have neither a subject nor a subjectAltName")]
    NoNames,
    #[error("the subject key is not acceptable: {0}")]
    Key(#[from] KeyError),
    #[error("name: {0}")]
    Name(#[from] NameError),
    #[error("serial: {0}")]
    Serial(#[from] SerialError),
    #[error("pre-issuance lint refused the certificate: {}", lint::describe(.0))]
    Lint(Vec<LintFinding>),
    #[error("the signer's key is not the issuing CA's key")]
    SignerMismatch,
    #[error("encoding failed: {0}")]
    Encoding(#[from] der::Error),
    #[error("time out of range")]
    TimeRange,
}

#[derive(Debug, thiserror::Error)]
pub enum CaCertError {
    #[error("certificate: {0}")]
    Pem(#[from] PemError),
    #[error("certificate does not parse: {0}")]
    Malformed(String),
    #[error("certificate is not a CA certificate (basicConstraints CA is not set)")]
    NotCa,
    #[error("CA certificate's keyUsage lacks keyCertSign")]
    NoKeyCertSign,
    #[error("CA key: {0}")]
    Key(#[from] KeyError),
    #[error("the signed certificate's key is not the pending CA key")]
    KeyMismatch,
    #[error("the certificate is not signed by {0}")]
    NotSignedBy(String),
    #[error("the certificate does not fit the chain's path length limits: {0}")]
    PathLen(String),
    #[error("the chain does not end at a self-signed root")]
    NoRoot,
    #[error("the certificate is not valid now (valid {0} to {1})")]
    NotValidNow(String, String),
}
/// Where issued certificates point relying parties (CRL DP and AIA).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssuerUrls {
    pub crl: Option<String>,
    pub ocsp: Option<String>,
    pub ca_issuers: Option<String>,
}

/// An issuing CA: its certificate, its ancestors up to the root, and its URLs.
/// It holds no key: the [`Signer`](crate::keys::Signer) is passed where signing happens.
#[derive(Debug)]
pub struct Issuer {
    pub certificate: CaCertificate,
    /// The issuer's issuer, and so on up to the root; empty for a root.
    pub parents: Vec<CaCertificate>,
    pub urls: IssuerUrls,
    /// [`Issuer::chain_pem`], made on first use: it goes out with every
    /// certificate issued.
    chain_pem: std::sync::OnceLock<String>,
}

/// A clone makes its chain PEM afresh (from its own certificates, which the
/// caller may change before first use).
impl Clone for Issuer {
    fn clone(&self) -> Self {
        Issuer::new(
            self.certificate.clone(),
            self.parents.clone(),
            self.urls.clone(),
        )
    }
}

impl Issuer {
    pub fn new(certificate: CaCertificate, parents: Vec<CaCertificate>, urls: IssuerUrls) -> Self {
        Issuer {
            certificate,
            parents,
            urls,
            chain_pem: std::sync::OnceLock::new(),
        }
    }

    /// The issuer and its ancestors, issuer first, as PEM blocks one after
    /// the other. Made once, on first use: an `Issuer`'s certificates are
    /// not to be changed once it is made (make a new one).
    pub fn chain_pem(&self) -> &str {
        self.chain_pem.get_or_init(|| {
            std::iter::once(&self.certificate)
                .chain(&self.parents)
                .map(CaCertificate::to_pem)
                .collect()
        })
    }

    /// The issuer and its ancestors, issuer first, as DER.
    pub fn chain_der(&self) -> Vec<Vec<u8>> {
        std::iter::once(&self.certificate)
            .chain(&self.parents)
            .map(|c| c.der.clone())
            .collect()
    }

    fn name_constraints(&self) -> Vec<&NameConstraints> {
        std::iter::once(&self.certificate)
            .chain(&self.parents)
            .filter_map(|c| c.name_constraints.as_ref())
            .collect()
    }
}

/// Name constraints for a CA, in the simple form operators write them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameConstraintsSpec {
    pub permitted_dns: Vec<String>,
    pub excluded_dns: Vec<String>,
    pub permitted_ip: Vec<IpNet>,
    pub excluded_ip: Vec<IpNet>,
}

impl NameConstraintsSpec {
    pub fn is_empty(&self) -> bool {
        self.permitted_dns.is_empty()
            && self.excluded_dns.is_empty()
            && self.permitted_ip.is_empty()
            && self.excluded_ip.is_empty()
    }

    fn to_extension_value(&self) -> Result<NameConstraints, IssueError> {
        fn subtrees(
            dns: &[String],
            ip: &[IpNet],
        ) -> Result<Option<Vec<GeneralSubtree>>, IssueError> {
            let mut out = Vec::new();
            for d in dns {
                // RFC 5280 dNSName constraints are plain names: a leading dot or a
                // wildcard means different things to different verifiers, so refuse them.
                if d.contains('*') {
                    return Err(IssueError::Name(NameError::BadDnsName {
                        name: d.chars().take(80).collect(),
                        why: "a name constraint may not contain a wildcard",
                    }));
                }
                crate::names::validate_dns_name(d)?;
                out.push(GeneralSubtree {
                    base: GeneralName::DnsName(Ia5String::new(&d.to_ascii_lowercase())?),
                    minimum: 0,
                    maximum: None,
                });
            }
            for net in ip {
                out.push(GeneralSubtree {
                    base: GeneralName::IpAddress(OctetString::new(net.to_constraint_bytes())?),
                    minimum: 0,
                    maximum: None,
                });
            }
            Ok(if out.is_empty() { None } else { Some(out) })
        }
        Ok(NameConstraints {
            permitted_subtrees: subtrees(&self.permitted_dns, &self.permitted_ip)?,
            excluded_subtrees: subtrees(&self.excluded_dns, &self.excluded_ip)?,
        })
    }
}
/// A leaf and the chain above it, for handing to a client.
#[derive(Clone, Debug)]
pub struct CertificateBundle {
    pub leaf_der: Vec<u8>,
    /// Issuer first, root last.
    pub chain_der: Vec<Vec<u8>>,
}

impl CertificateBundle {
    /// Leaf, intermediates and root as one PEM bundle (leaf first).
    pub fn to_pem(&self) -> String {
        self.all_der()
            .iter()
            .map(|d| pem::encode("CERTIFICATE", d))
            .collect()
    }

    /// Leaf, intermediates and root as DER, leaf first.
    pub fn all_der(&self) -> Vec<Vec<u8>> {
        std::iter::once(self.leaf_der.clone())
            .chain(self.chain_der.iter().cloned())
            .collect()
    }
}
