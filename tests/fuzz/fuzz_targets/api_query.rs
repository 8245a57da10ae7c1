//! The management API's query strings and the values read from them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        ca_server::http::fuzzing::query(query);
    }
});
