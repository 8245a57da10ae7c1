//! A CSR from anyone: parse and check it, then build and lint the
//! certificate it asks for under a fixed issuer (nothing is signed).
#![no_main]

use std::sync::OnceLock;

use ca_core::cert::{create_root, prepare, CertificateRequest, Issuer, IssuerUrls, RootParams};
use ca_core::keys::{KeyAlgorithm, SoftwareKey};
use ca_core::profile::Profile;
use ca_core::serial::Serial;
use libfuzzer_sys::fuzz_target;

fn issuer() -> &'static Issuer {
    static ISSUER: OnceLock<Issuer> = OnceLock::new();
    ISSUER.get_or_init(|| {
        let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
        let name = "CN=Fuzz Root".parse().expect("name");
        let now = time::OffsetDateTime::now_utc();
        let root = create_root(&key, &RootParams::new(name), now).expect("root");
        Issuer::new(root, vec![], IssuerUrls::default())
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(csr) = ca_core::parse_csr(data) else {
        return;
    };
    let now = time::OffsetDateTime::now_utc();
    for profile in [Profile::TlsServer, Profile::TlsClient] {
        let request = CertificateRequest::from_csr(&csr, profile);
        let _ = prepare(
            issuer(),
            &request,
            Serial::from_bytes(&[1, 2, 3]),
            now,
            profile.default_limits(),
        );
    }
});
