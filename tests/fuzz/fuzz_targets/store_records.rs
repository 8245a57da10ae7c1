//! What the redb store reads back from its file: the binary records
//! (certificate, audit entry, event) and packed certificates. A damaged file
//! must give errors, never panics; whatever decodes must encode and decode
//! to the same; packing any bytes against any dictionary must unpack to them.
#![no_main]

use ca_core::audit_chain::{
    AuditEntry, AuditIdentity, AuditOutcome, AuditResult, AuditedCertificate,
};
use ca_server::store::redb::{codec, der_pack};
use libfuzzer_sys::fuzz_target;

/// The audit entry an event kept as a reference is read from.
fn issuance_entry() -> AuditEntry {
    AuditEntry {
        seq: 1,
        time: "2026-12-04T09:01:00Z".into(),
        unix: 1_796_374_860,
        identity: AuditIdentity {
            subject: "CN=admin".into(),
            fingerprint: "ab".repeat(32),
        },
        action: "IssueCertificate".into(),
        target: "ca-1/0a".into(),
        outcome: AuditOutcome {
            decision: "allowed".into(),
            statement: None,
            reason: "internal call".into(),
        },
        result: AuditResult {
            status: 201,
            code: "success".into(),
        },
        certificate: Some(AuditedCertificate {
            serial: "0a".into(),
            sans: vec!["DNS:a.example".into()],
            not_after: "2027-01-01T00:00:00Z".into(),
            tbs_sha256: "cd".repeat(32),
        }),
        prev_hash: "00".repeat(32),
        hash: "11".repeat(32),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => {
            if let Ok((rec, der_seq)) = codec::decode_cert_and_der_seq(rest) {
                let again = codec::encode_cert(&rec, der_seq).expect("a decoded record encodes");
                let back = codec::decode_cert_and_der_seq(&again).expect("and decodes");
                assert_eq!(back, (rec, der_seq));
            }
        }
        1 => {
            if let Ok(entry) = codec::decode_audit(rest) {
                let back = codec::decode_audit(&codec::encode_audit(&entry)).expect("decodes");
                assert_eq!(back, entry);
            }
        }
        2 => {
            let mut lookup = |_: u64| Ok(Some(issuance_entry()));
            if let Ok(event) = codec::decode_event(rest, &mut lookup) {
                let again = codec::encode_event(&event);
                let back = codec::decode_event(&again, &mut lookup).expect("decodes");
                assert_eq!(back, event);
            }
        }
        _ => {
            // The first half as dictionary, the second as certificate.
            let (dict, der) = rest.split_at(rest.len() / 2);
            if let Some(packed) = der_pack::pack(1, dict, der) {
                let back = der_pack::unpack(&packed, Some(dict)).expect("unpacks");
                assert_eq!(back, der);
            }
            let _ = der_pack::dict_of(rest);
            let _ = der_pack::unpack(rest, Some(dict));
        }
    }
});
