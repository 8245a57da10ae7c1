//! Chain validation: a leaf and an intermediate from anyone, under a fixed
//! trust anchor, with and without a CRL from anyone; with the explanation off,
//! the verdict and its reason must not change, nor when the anchor is one
//! prepared once (`TrustAnchors`, with the parsed keys of its anchor and of
//! recent intermediates kept across every input).
#![no_main]

use std::sync::OnceLock;

use ca_core::cert::{create_root, RootParams};
use ca_core::keys::{KeyAlgorithm, SoftwareKey};
use ca_core::verify::{verify_chain, TrustAnchors, Usage, VerifyOptions};
use libfuzzer_sys::fuzz_target;

fn anchor() -> &'static Vec<u8> {
    static ROOT: OnceLock<Vec<u8>> = OnceLock::new();
    ROOT.get_or_init(|| {
        let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
        let name = "CN=Fuzz Anchor".parse().expect("name");
        let now = time::OffsetDateTime::now_utc();
        create_root(&key, &RootParams::new(name), now)
            .expect("root")
            .der
    })
}

fn prepared() -> &'static TrustAnchors<'static> {
    static PREPARED: OnceLock<TrustAnchors<'static>> = OnceLock::new();
    PREPARED.get_or_init(|| TrustAnchors::new(std::slice::from_ref(anchor())))
}

fuzz_target!(|data: &[u8]| {
    // First byte: where the leaf ends (as a share of the input); the rest is
    // leaf, then intermediate, then CRL.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = rest.len() * usize::from(split) / 255;
    let (leaf, tail) = rest.split_at(cut);
    let (intermediate, crl) = tail.split_at(tail.len() / 2);
    let now = time::OffsetDateTime::now_utc();
    let mut opts = VerifyOptions::new(Usage::TlsServer, now);
    let anchors = [anchor().as_slice()];
    // With the explanation off, the same verdict for the same reason.
    let explained = verify_chain(leaf, &[intermediate], &anchors, &opts);
    let verdict_only = verify_chain(
        leaf,
        &[intermediate],
        &anchors,
        &VerifyOptions {
            explain: false,
            ..opts.clone()
        },
    );
    let explained = explained.map(|p| p.chain).map_err(|e| e.to_string());
    assert_eq!(
        explained,
        verdict_only.map(|p| p.chain).map_err(|e| e.to_string()),
        "VerifyOptions::explain changed the verdict"
    );
    assert_eq!(
        explained,
        prepared()
            .verify(leaf, &[intermediate], &opts)
            .map(|p| p.chain)
            .map_err(|e| e.to_string()),
        "a prepared TrustAnchors gave another verdict than verify_chain"
    );
    opts.crls = vec![crl.to_vec()];
    let _ = verify_chain(leaf, &[intermediate], &anchors, &opts);
    let _ = verify_chain(
        rest,
        &[] as &[&[u8]],
        &anchors,
        &VerifyOptions::new(Usage::TlsClient, now),
    );
});
