//! An in-process CA hierarchy, for the tests that hold ca-core's output up
//! against other implementations (openssl, GnuTLS, NSS, Go, webpki).

use ca_core::cert::{
    create_intermediate, create_root, IntermediateParams, Issuer, IssuerUrls, RootParams,
};
use ca_core::keys::{KeyAlgorithm, SoftwareKey};
use std::str::FromStr;
use x509_cert::name::Name;

/// A root and an issuing intermediate, both with keys of `alg`.
pub struct Hierarchy {
    pub root_key: SoftwareKey,
    pub issuer_key: SoftwareKey,
    pub issuer: Issuer,
}

impl Hierarchy {
    pub fn new(alg: KeyAlgorithm) -> Hierarchy {
        let now = time::OffsetDateTime::now_utc();
        let root_key = SoftwareKey::generate(alg).expect("root key");
        let root_name =
            Name::from_str(&format!("CN=Test Root {alg},O=ca-core tests")).expect("name");
        let root = create_root(&root_key, &RootParams::new(root_name), now).expect("root");
        let root_issuer = Issuer::new(root.clone(), vec![], IssuerUrls::default());
        let issuer_key = SoftwareKey::generate(alg).expect("intermediate key");
        let params = IntermediateParams {
            subject: Name::from_str(&format!("CN=Test Issuing CA {alg},O=ca-core tests"))
                .expect("name"),
            validity_days: Some(365),
            // One level of sub-CA below the issuer, so tests can issue one.
            path_len: Some(1),
            name_constraints: None,
        };
        use ca_core::keys::Signer;
        let inter = create_intermediate(
            &root_issuer,
            &root_key,
            issuer_key.public_key_der(),
            &params,
            now,
        )
        .expect("intermediate");
        let urls = IssuerUrls {
            crl: Some("http://127.0.0.1:8080/crl/test.crl".into()),
            ocsp: Some("http://127.0.0.1:8080/ocsp/test".into()),
            ca_issuers: Some("http://127.0.0.1:8080/ca/test.der".into()),
        };
        Hierarchy {
            root_key,
            issuer_key,
            issuer: Issuer::new(inter, vec![root], urls),
        }
    }

    pub fn root_der(&self) -> &[u8] {
        &self.issuer.parents[0].der
    }
}
