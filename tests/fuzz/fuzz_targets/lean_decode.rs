//! The validator's hand-read decodings against der's and x509-cert's: a
//! certificate, an extension value or an RSA key from anyone. Whatever the
//! hand-read paths accept must be accepted by der, and read the same.
#![no_main]

use ca_core::oids;
use ca_core::verify::differential;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: what the rest is.
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    match kind % 6 {
        0 => {
            differential::certificate_agrees(rest);
        }
        1 => {
            differential::extension_agrees(oids::BASIC_CONSTRAINTS, rest);
        }
        2 => {
            differential::extension_agrees(oids::AUTHORITY_KEY_IDENTIFIER, rest);
        }
        3 => {
            differential::extension_agrees(oids::EXT_KEY_USAGE, rest);
        }
        4 => {
            differential::rsa_key_agrees(rest);
        }
        _ => {
            differential::extension_agrees(oids::SUBJECT_ALT_NAME, rest);
        }
    }
});
