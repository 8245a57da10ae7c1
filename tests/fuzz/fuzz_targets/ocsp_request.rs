//! OCSP requests from anyone on the public listener: POST bodies and GET paths.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ca_core::ocsp::parse_request(data);
    if let Ok(segment) = std::str::from_utf8(data) {
        if let Ok(der) = ca_core::ocsp::decode_get_request(segment) {
            let _ = ca_core::ocsp::parse_request(&der);
        }
    }
});
