//! PEM and DER-or-PEM input, as uploads and bundles arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ca_core::pem::der_or_pem("CERTIFICATE", data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ca_core::pem::decode("CERTIFICATE REQUEST", text);
        if let Ok(blocks) = ca_core::pem::decode_all("CERTIFICATE", text) {
            // What decodes must re-encode to something that decodes the same.
            for der in blocks {
                let again = ca_core::pem::encode("CERTIFICATE", &der);
                assert_eq!(ca_core::pem::decode("CERTIFICATE", &again).ok(), Some(der));
            }
        }
    }
});
