//! The validator's decodings against der's and x509-cert's: the borrowed
//! names and certificate, and the hand-read paths for the common shapes, on
//! every x509-limbo certificate and on corruptions of them.

use super::lean;
use super::tests::{leaf, new_pki, sign};
use crate::der_util::{corrupt, encode_tlv as tlv_any};

/// `LeanName` must accept exactly the names x509-cert's `Name` decoding
/// accepts, and give the same name when decoded: every subject and issuer in
/// x509-limbo, each byte of a spread of them corrupted or dropped, and
/// multi-valued RDNs in and out of order, with duplicates.
#[test]
fn lean_name_decodes_as_x509_name_does() {
    use der::asn1::Utf8StringRef;
    use der::{Decode, Encode};
    use x509_cert::name::Name;
    let mut names: Vec<Vec<u8>> = limbo_certificates()
        .iter()
        .filter_map(|der| crate::der_util::raw_cert(der))
        .flat_map(|raw| [raw.subject.to_vec(), raw.issuer.to_vec()])
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() > 500, "only {} distinct names", names.len());
    let (mut compared, mut rejected) = (0usize, 0usize);
    let mut check = |der: &[u8]| {
        let theirs = Name::from_der(der);
        let ours = lean::LeanName::from_der(der);
        match (&theirs, &ours) {
            (Ok(t), Ok(o)) => {
                assert_eq!(Some(t), o.decoded().as_ref(), "{}", crate::hex::encode(der));
                assert_eq!(o.to_der().ok().as_deref(), Some(der), "re-encodes as given");
            }
            (Err(_), Err(_)) => rejected += 1,
            _ => panic!(
                "x509-cert {} the name but the lean walk {} it: {}",
                if theirs.is_ok() { "accepts" } else { "rejects" },
                if ours.is_ok() { "accepts" } else { "rejects" },
                crate::hex::encode(der)
            ),
        }
        compared += 1;
    };
    // Multi-valued RDNs, built by hand: SET OF in and out of DER order, a
    // duplicate, an empty SET.
    let atv = |oid: &str, text: &str| {
        let mut v = const_oid::ObjectIdentifier::new_unwrap(oid)
            .to_der()
            .unwrap();
        v.extend(Utf8StringRef::new(text).unwrap().to_der().unwrap());
        tlv(0x30, &v)
    };
    let (cn, o) = (atv("2.5.4.3", "Issuing CA"), atv("2.5.4.10", "Org"));
    let rdn = |atvs: &[&Vec<u8>]| {
        tlv(
            0x31,
            &atvs
                .iter()
                .flat_map(|a| a.iter().copied())
                .collect::<Vec<u8>>(),
        )
    };
    for rdns in [
        vec![rdn(&[&cn, &o])],
        vec![rdn(&[&o, &cn])],
        vec![rdn(&[&cn, &cn])],
        vec![rdn(&[&o, &cn, &o])],
        vec![rdn(&[])],
        vec![rdn(&[&cn]), rdn(&[&o, &cn])],
        vec![],
    ] {
        check(&tlv(0x30, &rdns.concat()));
    }
    for (i, der) in names.iter().enumerate() {
        check(der);
        if i % 16 != 0 {
            continue;
        }
        corrupt(der, 0..der.len(), &[0x01, 0x20, 0x80, 0xff], &mut check);
    }
    eprintln!(
        "{} distinct names, {compared} decodings compared, {rejected} rejected by both",
        names.len()
    );
    assert!(
        rejected > 10_000,
        "corruptions were rejected ({rejected} of {compared})"
    );
}

/// A DER TLV with a short-form length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    assert!(content.len() < 0x80, "short-form lengths only");
    let mut out = vec![tag, content.len() as u8];
    out.extend_from_slice(content);
    out
}

/// Every certificate x509-limbo carries, DER.
fn limbo_certificates() -> Vec<Vec<u8>> {
    use std::io::Read;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/limbo/limbo.json.gz"
    );
    let gz = std::fs::read(path).expect("the x509-limbo suite beside the repository");
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_string(&mut text)
        .expect("limbo.json.gz decompresses");
    let json: serde_json::Value = serde_json::from_str(&text).expect("limbo.json parses");
    let mut out = Vec::new();
    let mut stack = vec![&json];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::String(s) if s.contains("BEGIN CERTIFICATE") => {
                out.extend(crate::pem::decode_all("CERTIFICATE", s).unwrap_or_default());
            }
            serde_json::Value::Array(a) => stack.extend(a),
            serde_json::Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The borrowed decoding accepts exactly what x509-cert's `Certificate` does,
/// and reads the same structure: checked on every limbo certificate (many
/// deliberately malformed) and on single-byte corruptions and deletions in an
/// eighth of them. Both of its paths are compared: der's, and the hand-read
/// one for the common shape (whatever that accepts, x509-cert must accept,
/// with the same fields).
#[test]
fn lean_certificate_decodes_as_x509_cert_does() {
    use der::Decode;
    let certs = limbo_certificates();
    assert!(
        certs.len() > 1000,
        "only {} limbo certificates",
        certs.len()
    );
    let (mut compared, mut rejected, mut by_hand) = (0usize, 0usize, 0usize);
    let mut check = |der: &[u8]| {
        compared += 1;
        if super::differential::certificate_agrees(der) {
            by_hand += 1;
        }
        // der's path alone, which decides every shape the hand-read one leaves.
        let theirs = x509_cert::Certificate::from_der(der);
        match (
            &theirs,
            <lean::LeanCertificate<'_> as Decode>::from_der(der),
        ) {
            (Ok(t), Ok(o)) => super::differential::same_fields(t, &o),
            (Err(_), Err(_)) => rejected += 1,
            (t, o) => panic!(
                "x509-cert {} but der's lean decoding {}: {}",
                if t.is_ok() { "accepts" } else { "rejects" },
                if o.is_ok() { "accepts" } else { "rejects" },
                crate::hex::encode(der)
            ),
        }
    };
    for (i, der) in certs.iter().enumerate() {
        check(der);
        if i % 8 != 0 {
            continue;
        }
        // Corrupt one byte at a spread of places (tags, lengths, contents),
        // and drop it.
        let places = (0..der.len()).step_by(der.len() / 23 + 1);
        corrupt(der, places, &[0x01, 0x80, 0xff], &mut check);
    }
    eprintln!(
        "{} certificates, {compared} decodings compared, {rejected} rejected by both, \
         {by_hand} read by hand",
        certs.len()
    );
    assert!(
        by_hand > compared / 2,
        "the hand-read path took {by_hand} of {compared}"
    );
    assert!(
        rejected > 10_000,
        "corruptions were rejected ({rejected} of {compared})"
    );
}

/// Whatever the hand-read path accepts, x509-cert accepts, with the same
/// fields: every byte of a spread of limbo certificates flipped three ways
/// and dropped (the comparison above corrupts only a sample of places, and
/// would miss, say, a version read from all but its last byte).
#[test]
fn hand_read_certificates_match_x509_cert_at_every_byte() {
    let certs = limbo_certificates();
    let (mut accepted, mut compared) = (0usize, 0usize);
    let mut check = |der: &[u8]| {
        compared += 1;
        if super::differential::certificate_agrees(der) {
            accepted += 1;
        }
    };
    for der in certs.iter().step_by(256) {
        corrupt(der, 0..der.len(), &[0x01, 0x80, 0xff], &mut check);
    }
    eprintln!("{compared} corruptions, {accepted} read by hand");
    assert!(
        accepted > compared / 10,
        "{accepted} of {compared} read by hand"
    );
}

/// The TBS's elements and the certificate's other two, of `der`.
fn certificate_parts(der: &[u8]) -> (Vec<Vec<u8>>, Vec<u8>) {
    use crate::der_util::read_tlv;
    let (certificate, _) = read_tlv(der).unwrap();
    let (tbs, after_tbs) = read_tlv(certificate.content).unwrap();
    let mut fields = Vec::new();
    let mut rest = tbs.content;
    while !rest.is_empty() {
        let (field, next) = read_tlv(rest).unwrap();
        fields.push(field.whole.to_vec());
        rest = next;
    }
    (fields, after_tbs.to_vec())
}

fn reassembled(fields: &[Vec<u8>], after_tbs: &[u8]) -> Vec<u8> {
    let mut certificate = tlv_any(0x30, &fields.concat());
    certificate.extend_from_slice(after_tbs);
    tlv_any(0x30, &certificate)
}

/// Shapes the hand-read path leaves to der, which then decides as x509-cert
/// does: trailing bytes inside the extensions' [3] (der refuses), version v2
/// and unique identifiers (der accepts).
#[test]
fn unusual_shapes_are_left_to_der() {
    use der::Decode;
    let pki = new_pki();
    let (der, _) = sign(&leaf("shape.example"), &pki.root_issuer);
    let (fields, after_tbs) = certificate_parts(&der);
    assert!(
        super::lean_shape::certificate(&der).is_some(),
        "the common shape"
    );
    let extensions = fields.last().unwrap().clone();
    assert_eq!(extensions[0], 0xa3);
    let inner = crate::der_util::read_tlv(&extensions)
        .unwrap()
        .0
        .content
        .to_vec();

    let mut trailing = fields.clone();
    *trailing.last_mut().unwrap() = tlv_any(0xa3, &[inner.as_slice(), &[0x05, 0x00]].concat());
    let mut v2 = fields.clone();
    v2[0] = vec![0xa0, 0x03, 0x02, 0x01, 0x01];
    v2.pop();
    let mut unique_id = fields.clone();
    unique_id.insert(fields.len() - 1, vec![0x82, 0x02, 0x00, 0xaa]);

    for (case, fields, accepted) in [
        ("trailing bytes in [3]", trailing, false),
        ("version v2", v2, true),
        ("subjectUniqueID", unique_id, true),
    ] {
        let der = reassembled(&fields, &after_tbs);
        assert!(super::lean_shape::certificate(&der).is_none(), "{case}");
        let theirs = x509_cert::Certificate::from_der(&der);
        assert_eq!(theirs.is_ok(), accepted, "{case}: x509-cert");
        match (theirs, lean::LeanCertificate::decode(&der)) {
            (Ok(t), Ok(o)) => super::differential::same_fields(&t, &o),
            (Err(_), Err(_)) => {}
            (t, o) => panic!("{case}: x509-cert {:?}, lean {:?}", t.is_ok(), o.is_ok()),
        }
    }
}

/// Serial numbers at the edges of der's and x509-cert's rules (empty,
/// needless sign octets, 20, 21 and 22 octets), in an otherwise common
/// certificate: the hand-read path and der decide each alike.
#[test]
fn serial_numbers_at_the_edges_decode_as_x509_cert_does() {
    let pki = new_pki();
    let (der, _) = sign(&leaf("serial.example"), &pki.root_issuer);
    let (fields, after_tbs) = certificate_parts(&der);
    assert_eq!(fields[1][0], 0x02, "the serial follows the version");
    let run = |first: u8, len: usize| {
        let mut v = vec![0x5a; len];
        if let Some(b) = v.first_mut() {
            *b = first;
        }
        v
    };
    let mut serials = vec![vec![], vec![0x00], vec![0x00, 0x00], vec![0xff, 0xff]];
    for first in [0x00, 0x01, 0x7f, 0x80, 0xff] {
        for len in [1, 2, 19, 20, 21, 22, 40] {
            serials.push(run(first, len));
        }
    }
    let (mut accepted, mut refused) = (0, 0);
    for serial in serials {
        let mut f = fields.clone();
        f[1] = tlv_any(0x02, &serial);
        let der = reassembled(&f, &after_tbs);
        let hand_read = super::differential::certificate_agrees(&der);
        match lean::LeanCertificate::decode(&der) {
            Ok(c) => {
                // A serial within the rules is the hand path's to read.
                assert!(hand_read, "serial {serial:02x?} was left to der");
                assert_eq!(c.tbs_certificate.serial_number.as_bytes(), serial);
                accepted += 1;
            }
            Err(_) => refused += 1,
        }
    }
    // Both verdicts occur, so the comparison above means something.
    assert!(accepted > 10 && refused > 10, "{accepted} / {refused}");
}

/// Each time read by hand is read as der reads it, and refused where der
/// refuses it: every two-digit year, the edges of every calendar field,
/// leap days, years der cannot hold, other characters and other lengths.
#[test]
fn times_decode_as_der_decodes_them() {
    use der::Decode;
    let compare = |tag: u8, text: &[u8]| {
        let element = tlv_any(tag, text);
        let theirs = x509_cert::time::Time::from_der(&element).ok();
        let (tlv, _) = crate::der_util::read_tlv(&element).unwrap();
        let ours = super::lean_shape::time_of(&tlv);
        assert_eq!(
            theirs.as_ref().map(lean::LeanTime::from),
            ours,
            "{}",
            String::from_utf8_lossy(text)
        );
        ours.is_some()
    };
    let fields = |year: &str| {
        let mut all = Vec::new();
        for month in ["00", "01", "02", "04", "12", "13", "99"] {
            for day in ["00", "01", "28", "29", "30", "31", "32"] {
                for (h, m, s) in [("00", "00", "00"), ("23", "59", "59"), ("24", "00", "00")]
                    .into_iter()
                    .chain([("00", "60", "00"), ("00", "00", "60")])
                {
                    all.push(format!("{year}{month}{day}{h}{m}{s}Z").into_bytes());
                }
            }
        }
        all
    };
    let (mut read, mut refused) = (0, 0);
    let mut tally = |ok: bool| if ok { read += 1 } else { refused += 1 };
    for yy in 0..100 {
        for text in fields(&format!("{yy:02}")) {
            tally(compare(0x17, &text));
        }
    }
    for year in [
        0, 1600, 1900, 1949, 1969, 1970, 1971, 1972, 2000, 2024, 2049, 2050, 2100, 2400, 9999,
    ] {
        for text in fields(&format!("{year:04}")) {
            tally(compare(0x18, &text));
        }
    }
    for (tag, valid) in [(0x17, &b"240229123456Z"[..]), (0x18, b"20240229123456Z")] {
        assert!(compare(tag, valid));
        for at in 0..valid.len() {
            for b in [
                b'/', b':', b' ', b'0', b'9', b'A', b'Z', b'z', b'+', 0x00, 0xff,
            ] {
                let mut text = valid.to_vec();
                text[at] = b;
                tally(compare(tag, &text));
            }
        }
        for text in [
            &valid[..valid.len() - 1],
            &[&valid[..valid.len() - 1], &b"0Z"[..]].concat(),
            &[&valid[..valid.len() - 1], &b".5Z"[..]].concat(),
            &[&valid[..valid.len() - 1], &b"+0000"[..]].concat(),
            &valid[2..],
            &[],
        ] {
            tally(compare(tag, text));
        }
    }
    assert!(!compare(0x04, b"240229123456Z"), "another tag");
    assert!(
        read > 2_000 && refused > 2_000,
        "{read} read, {refused} refused"
    );
}

/// Whatever the hand-read extension paths read, x509-cert's decoders read
/// the same from: every basicConstraints, authorityKeyIdentifier,
/// extKeyUsage and subjectAltName value among the limbo certificates, each
/// byte of each (but the longest subjectAltNames) flipped four ways (the
/// constructed bit among them) and dropped.
#[test]
fn common_extension_values_decode_as_x509_cert_does() {
    let mut values: Vec<(const_oid::ObjectIdentifier, Vec<u8>)> = Vec::new();
    for der in limbo_certificates() {
        let Ok(cert) = lean::LeanCertificate::decode(&der) else {
            continue;
        };
        for e in cert.tbs_certificate.extensions.iter().flat_map(|l| &l.list) {
            values.push((e.extn_id, e.extn_value.as_bytes().to_vec()));
        }
    }
    values.sort();
    values.dedup();
    let (mut compared, mut by_hand) = (0usize, 0usize);
    let mut check = |oid: const_oid::ObjectIdentifier, v: &[u8]| {
        compared += 1;
        if super::differential::extension_agrees(oid, v) {
            by_hand += 1;
        }
    };
    let mut long_alt_names = 0usize;
    for (oid, value) in &values {
        check(*oid, value);
        // Some limbo certificates carry thousands of names: those are
        // compared whole, not corrupted byte by byte (each corruption would
        // decode them all again; the fuzz target lean_decode covers them).
        if *oid == crate::oids::SUBJECT_ALT_NAME && value.len() > 512 {
            long_alt_names += 1;
            continue;
        }
        corrupt(
            value,
            0..value.len(),
            &[0x01, 0x20, 0x80, 0xff],
            &mut |bad| check(*oid, bad),
        );
    }
    eprintln!(
        "{} values ({long_alt_names} long subjectAltNames not corrupted), {compared} compared, {by_hand} read by hand",
        values.len()
    );
    assert!(by_hand > 10_000, "{by_hand} of {compared} read by hand");
}

/// A certificate whose TBS names another signature algorithm than the one
/// it is signed with fails on its encoding (RFC 5280 4.1.1.2), even with a
/// good signature: the two fields are compared as they lie.
#[test]
fn a_tbs_signature_field_unlike_the_signature_algorithm_fails() {
    use super::{verify_chain, CheckKind, PeerName, Reason, Usage, VerifyOptions};
    use rcgen::{Issuer, KeyPair, SigningKey};
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let root_params = super::tests::ca("Mismatch Root", None);
    let root = root_params.self_signed(&root_key).unwrap().der().to_vec();
    let signer = KeyPair::try_from(root_key.serialized_der()).unwrap();
    let (good, _) = sign(&leaf("bob.example"), &Issuer::new(root_params, root_key));

    let (certificate, _) = crate::der_util::read_tlv(&good).unwrap();
    let (tbs, rest) = crate::der_util::read_tlv(certificate.content).unwrap();
    let (algorithm, _) = crate::der_util::read_tlv(rest).unwrap();
    // ecdsa-with-SHA256 (1.2.840.10045.4.3.2) becomes ecdsa-with-SHA384 in
    // the TBS only; the TBS is signed again as it now reads.
    let sha256 = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let at = tbs
        .whole
        .windows(sha256.len())
        .position(|w| w == sha256)
        .unwrap();
    let mut mismatched_tbs = tbs.whole.to_vec();
    mismatched_tbs[at + sha256.len() - 1] = 0x03;
    let signature = signer.sign(&mismatched_tbs).unwrap();
    let mismatched = tlv_any(
        0x30,
        &[
            mismatched_tbs.as_slice(),
            algorithm.whole,
            &tlv_any(0x03, &[&[0x00][..], &signature].concat()),
        ]
        .concat(),
    );

    let mut opts = VerifyOptions::new(Usage::TlsServer, time::OffsetDateTime::now_utc());
    opts.peer_name = Some(PeerName::Dns("bob.example".into()));
    let anchors = std::slice::from_ref(&root);
    assert!(verify_chain(&good, &[] as &[Vec<u8>], anchors, &opts).is_ok());
    match verify_chain(&mismatched, &[] as &[Vec<u8>], anchors, &opts).map_err(|e| e.reason) {
        Err(Reason::Check { kind, detail, .. }) => {
            assert_eq!(kind, CheckKind::Encoding, "{detail}");
            assert!(detail.contains("signatureAlgorithm differs"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
}
