//! Revocation figures: CRL build, size and parse with many entries, and the
//! cost of answering one OCSP request.
//!
//!     cargo bench -p ca-core --bench revocation
//!
//! REVOKED sets the number of CRL entries (default 1000000). CRL_OUT=dir writes
//! the CRL (crl.der) and its CA (ca.pem) there, for `openssl crl -verify`.

use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use ca_core::cert::{create_root, CaCertificate, RootParams};
use ca_core::crl::{
    build_crl, build_crl_from_encoded, encode_revoked_entry, encode_revoked_entry_into, parse_crl,
    CrlParams, RevocationReason, RevokedEntry,
};
use ca_core::keys::{KeyAlgorithm, SoftwareKey};
use ca_core::ocsp::{
    parse_request, respond, CertIdInfo, CertStatusInput, HashAlg, IssuerHashes, Responder,
    ResponderIdentity,
};
use ca_core::serial::Serial;
use time::OffsetDateTime;
use x509_cert::name::Name;

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn ca(alg: KeyAlgorithm) -> (SoftwareKey, CaCertificate) {
    let key = SoftwareKey::generate(alg).expect("key");
    let name = Name::from_str(&format!("CN=Bench CA {alg},O=ca-core bench")).expect("name");
    let ca = create_root(&key, &RootParams::new(name), OffsetDateTime::now_utc()).expect("root");
    (key, ca)
}

/// Mean latency of `op` over about `seconds`, after a short warm-up.
fn latency(seconds: f64, mut op: impl FnMut()) -> Duration {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        op();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed().as_secs_f64() < seconds {
        op();
        n += 1;
    }
    start.elapsed() / n.max(1)
}

fn main() {
    let count: usize = std::env::var("REVOKED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let (key, ca_cert) = ca(KeyAlgorithm::EcdsaP256);
    let now = OffsetDateTime::now_utc();
    let params = CrlParams {
        crl_number: 1,
        this_update: now,
        next_update: now + time::Duration::days(1),
    };
    let entries: Vec<RevokedEntry> = (0..count)
        .map(|i| RevokedEntry {
            serial: Serial::random().expect("serial"),
            revoked_at: now - time::Duration::seconds(i as i64),
            reason: if i % 3 == 0 {
                RevocationReason::Unspecified
            } else {
                RevocationReason::KeyCompromise
            },
        })
        .collect();
    println!("CRL with {count} revoked entries (128-bit serials, P-256 CA key)");

    let (der, t) = timed(|| build_crl(&ca_cert, &key, &params, &entries).expect("CRL"));
    println!(
        "  build_crl (encode all entries + sign):   {}  size {} bytes ({:.1} MB, {:.1} B/entry)",
        secs(t),
        der.len(),
        der.len() as f64 / 1e6,
        der.len() as f64 / count.max(1) as f64
    );

    if let Ok(dir) = std::env::var("CRL_OUT") {
        let dir = std::path::Path::new(&dir);
        std::fs::write(dir.join("crl.der"), &der).expect("write CRL");
        std::fs::write(dir.join("ca.pem"), ca_cert.to_pem()).expect("write CA");
    }

    let (chunks, t) = timed(|| {
        entries
            .iter()
            .map(|e| encode_revoked_entry(e).expect("entry"))
            .collect::<Vec<_>>()
    });
    println!(
        "  encode_revoked_entry x{count} (one Vec each): {}",
        secs(t)
    );
    let (_, t) = timed(|| {
        build_crl_from_encoded(&ca_cert, &key, &params, &chunks).expect("CRL from chunks")
    });
    println!("  build_crl_from_encoded ({count} chunks):   {}", secs(t));
    let mut joined = Vec::new();
    for e in &entries {
        encode_revoked_entry_into(e, &mut joined).expect("entry");
    }
    drop(chunks);
    let (_, t) = timed(|| {
        build_crl_from_encoded(&ca_cert, &key, &params, &[&joined]).expect("CRL from buffer")
    });
    println!("  build_crl_from_encoded (one buffer):      {}", secs(t));

    let (parsed, t) = timed(|| parse_crl(&der).expect("parse"));
    println!("  parse_crl (checks every entry + index):  {}", secs(t));
    let (_, t) = timed(|| parsed.verify_signature(&ca_cert).expect("verify"));
    println!("  verify_crl_signature:                    {}", secs(t));
    let probe = &entries[count / 2].serial;
    let per = latency(0.5, || {
        black_box(parsed.lookup(black_box(probe)));
    });
    println!(
        "  ParsedCrl::lookup:                       {:.2} µs",
        per.as_secs_f64() * 1e6
    );
    drop(parsed);

    println!("OCSP: one CertID, SHA-1 CertID, parse + sign (the uncached path)");
    for alg in [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Ed25519,
    ] {
        let (key, ca_cert) = ca(alg);
        let identity = ResponderIdentity::ca(&ca_cert).expect("identity");
        let hashes = IssuerHashes::new(&ca_cert).expect("hashes");
        let responder = Responder {
            identity: &identity,
            signer: &key,
            issuer: &hashes,
            validity: time::Duration::hours(1),
        };
        let serial = Serial::random().expect("serial");
        let id = CertIdInfo::for_serial(&ca_cert, &serial, HashAlg::Sha1).expect("id");
        let req = request(&id);
        let parse = latency(0.5, || {
            black_box(parse_request(black_box(&req)).expect("parse"));
        });
        let full = latency(1.0, || {
            black_box(respond(
                &req,
                &responder,
                |_| CertStatusInput::Good,
                OffsetDateTime::now_utc(),
            ));
        });
        println!(
            "  {alg:<9} parse_request {:>6.2} µs   respond {:>8.2} µs  ({:.0}/s on one core)",
            parse.as_secs_f64() * 1e6,
            full.as_secs_f64() * 1e6,
            1.0 / full.as_secs_f64()
        );
    }
}

/// A DER OCSPRequest for one CertID, as openssl would send without a nonce.
fn request(id: &CertIdInfo) -> Vec<u8> {
    // OCSPRequest ::= SEQUENCE { tbsRequest SEQUENCE { requestList SEQUENCE OF
    // Request SEQUENCE { reqCert CertID } } }
    let cert_id = id.to_der().expect("CertID");
    let wrap = |inner: Vec<u8>| {
        let mut out = vec![0x30];
        let len = inner.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            out.extend_from_slice(&[0x81, len as u8]);
        }
        out.extend(inner);
        out
    };
    wrap(wrap(wrap(wrap(cert_id))))
}
