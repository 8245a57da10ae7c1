//! CRLs from outside (`ca-cli crl inspect`, chain validation with CRLs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(crl) = ca_core::crl::parse_crl(data) else {
        return;
    };
    let _ = crl.crl_number_u64();
    let listed: Vec<_> = crl.revoked().collect();
    assert_eq!(listed.len(), crl.revoked_count());
    for entry in listed.iter().take(8) {
        // Every positive serial listed is found again by lookup. (A negative
        // serial, possible only in a foreign CRL, has no `Serial` form; see
        // the crl unit test `negative_serials_in_foreign_crls`.)
        let high_bit = entry
            .serial
            .to_hex()
            .starts_with(['8', '9', 'a', 'b', 'c', 'd', 'e', 'f']);
        assert!(high_bit || crl.lookup(&entry.serial).is_some(), "{entry:?}");
    }
    let _ = crl.to_pem();
});
