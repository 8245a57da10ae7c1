//! Names as clients write them: SAN entries and RFC 4514 subjects.
#![no_main]

use ca_core::names::{parse_subject, SanEntry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(entry) = SanEntry::parse(text) {
        // What parses once parses again to the same entry, and encodes.
        let again = SanEntry::parse(&entry.to_string());
        assert_eq!(again.as_ref().ok(), Some(&entry), "{text:?} -> {entry}");
        let _ = entry.to_general_name();
    }
    if let Ok(name) = parse_subject(text) {
        let _ = ca_core::policy::RequestedSubject::from_name(&name);
    }
});
