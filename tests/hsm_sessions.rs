//! The token's session pool, in process: several threads sign at once on
//! several sessions, never more than the pool holds, and every signature
//! verifies. A test binary of its own, because SoftHSM2 finds its token
//! directory through the environment (`SOFTHSM2_CONF`), which is set here
//! before any other thread exists.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ca_core::keys::{KeyAlgorithm, Signer};
use ca_server::hsm::{Pkcs11Config, Token};

fn module() -> &'static str {
    [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    ]
    .into_iter()
    .find(|m| Path::new(m).exists())
    .expect("libsofthsm2.so: install softhsm2 (tests/install-test-tools.sh does)")
}

#[test]
fn threads_sign_at_once_on_pooled_sessions_up_to_the_pool_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("tokens")).expect("tokens");
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.path().join("tokens").display()
        ),
    )
    .expect("conf");
    // The only thread so far: setting the environment races with nothing.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let out = Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            "pool",
            "--pin",
            "24681357",
            "--so-pin",
            "13572468",
        ])
        .output()
        .expect("softhsm2-util");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, "24681357\n").expect("pin");
    let cfg = Pkcs11Config {
        module: module().into(),
        token_label: Some("pool".into()),
        slot: None,
        pin_file: Some(pin_file),
        sessions: Some(3),
        master_key_label: None,
        pin: None,
    };
    let pin = cfg
        .pin(dir.path(), &ca_server::vault::EnvSecret::default())
        .expect("pin");
    let token = Token::open(&cfg, pin).expect("token");
    let key = token
        .generate(KeyAlgorithm::EcdsaP256, "pool-key")
        .expect("key");
    let signer = token.signer(&key).expect("signer");
    assert_eq!(token.sessions_open(), 1);

    // Four threads on three sessions, signing as fast as they can.
    let signed = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            let (signer, signed) = (&signer, &signed);
            scope.spawn(move || {
                let start = Instant::now();
                let mut i = 0u32;
                while start.elapsed() < Duration::from_millis(400) {
                    let msg = [t.to_be_bytes().as_slice(), &i.to_be_bytes()].concat();
                    // TokenSigner verifies each signature against the key
                    // before returning it; check it here too, independently.
                    let sig = signer.sign(&msg).expect("sign");
                    let spki = <x509_cert::spki::SubjectPublicKeyInfoRef as der::Decode>::from_der(
                        signer.public_key_der(),
                    )
                    .expect("spki");
                    ca_core::signature::verify_with(
                        &spki,
                        signer.signature_algorithm(),
                        &msg,
                        &sig,
                    )
                    .expect("verifies");
                    signed.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
    });
    let open = token.sessions_open();
    assert!(
        (2..=3).contains(&open),
        "{open} sessions open after 4 threads signed at once on a pool of 3"
    );
    assert!(signed.load(Ordering::Relaxed) > 100, "{signed:?}");
}
