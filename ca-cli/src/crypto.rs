//! Envelope encryption to a certificate's public key, for the walk-through.
//!
//! A public-key operation can only protect a few dozen bytes, so both schemes
//! encrypt the message itself with a fresh AES-256-GCM data key and use the
//! recipient's public key only to convey that data key:
//! - RSA: the data key is encrypted with RSA-OAEP (SHA-256, MGF1-SHA-256);
//! - P-256: an ephemeral ECDH key agreement with the recipient's key gives a
//!   shared secret, and HKDF-SHA-256 turns it into the data key (ECIES style).
//!
//! Everything goes through aws-lc-rs, the workspace's one crypto backend, whose
//! RSA decryption is constant-time: so the `rsa` crate (and its Marvin timing
//! advisory, RUSTSEC-2023-0071) is not needed even for this teaching demo.

use anyhow::{anyhow, bail, Context, Result};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::agreement::{self, EphemeralPrivateKey, PrivateKey, UnparsedPublicKey, ECDH_P256};
use aws_lc_rs::hkdf;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    OAEP_SHA256_MGF1SHA256,
};
use der::Decode;
use spki::SubjectPublicKeyInfoRef;
use zeroize::Zeroizing;

use ca_core::PublicKeyKind;

/// Binds the ciphertext to this scheme and version (HKDF info and AEAD data).
const CONTEXT: &[u8] = b"ca-cli walkthrough envelope v1";

/// A message sealed to one recipient.
#[derive(Clone, Debug)]
pub struct Sealed {
    /// "RSA-OAEP-SHA256 + AES-256-GCM" or "ECDH-P256 + HKDF-SHA256 + AES-256-GCM".
    pub scheme: &'static str,
    /// RSA: the OAEP-encrypted data key. P-256: the ephemeral public point.
    pub key_envelope: Vec<u8>,
    pub nonce: [u8; NONCE_LEN],
    /// AES-256-GCM ciphertext with its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

fn aead_seal(key: UnboundKey, plaintext: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
    let key = LessSafeKey::new(key);
    let mut nonce = [0u8; NONCE_LEN];
    // A fresh random nonce per message; each data key is used once anyway.
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| anyhow!("random number generator failed"))?;
    let mut buf = plaintext.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(CONTEXT),
        &mut buf,
    )
    .map_err(|_| anyhow!("AES-GCM encryption failed"))?;
    Ok((nonce, buf))
}

fn aead_open(key: UnboundKey, nonce: [u8; NONCE_LEN], ciphertext: &[u8]) -> Result<Vec<u8>> {
    let key = LessSafeKey::new(key);
    let mut buf = ciphertext.to_vec();
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(CONTEXT),
            &mut buf,
        )
        .map_err(|_| anyhow!("AES-GCM authentication failed: wrong key or tampered ciphertext"))?;
    Ok(plain.to_vec())
}

/// The raw public key bytes of an SPKI (the EC point, or the PKCS#1 RSA key).
fn spki_key_bytes(spki_der: &[u8]) -> Result<Vec<u8>> {
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).context("public key does not parse")?;
    spki.subject_public_key
        .as_bytes()
        .map(<[u8]>::to_vec)
        .context("public key bit string has unused bits")
}

fn derive_key(shared: &[u8], ephemeral: &[u8], recipient: &[u8]) -> Result<UnboundKey> {
    // The salt binds the key to both public values, so a swapped point yields another key.
    let mut salt = ephemeral.to_vec();
    salt.extend_from_slice(recipient);
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(shared);
    let okm = prk
        .expand(&[CONTEXT], &AES_256_GCM)
        .map_err(|_| anyhow!("HKDF expansion failed"))?;
    Ok(UnboundKey::from(okm))
}

/// Seal `plaintext` to the holder of the private key matching `spki_der`
/// (the public key taken from the recipient's certificate).
pub fn seal(spki_der: &[u8], plaintext: &[u8]) -> Result<Sealed> {
    match PublicKeyKind::from_spki_der(spki_der)? {
        PublicKeyKind::Rsa { .. } => {
            let public = PublicEncryptingKey::from_der(spki_der)
                .map_err(|e| anyhow!("RSA public key rejected: {e}"))?;
            let oaep = OaepPublicEncryptingKey::new(public)
                .map_err(|_| anyhow!("RSA key not usable for OAEP"))?;
            let mut data_key = Zeroizing::new([0u8; 32]);
            SystemRandom::new()
                .fill(data_key.as_mut())
                .map_err(|_| anyhow!("random number generator failed"))?;
            let mut wrapped = vec![0u8; oaep.ciphertext_size()];
            let n = oaep
                .encrypt(
                    &OAEP_SHA256_MGF1SHA256,
                    data_key.as_ref(),
                    &mut wrapped,
                    Some(CONTEXT),
                )
                .map_err(|_| anyhow!("RSA-OAEP encryption failed"))?
                .len();
            wrapped.truncate(n);
            let key = UnboundKey::new(&AES_256_GCM, data_key.as_ref())
                .map_err(|_| anyhow!("bad AES key"))?;
            let (nonce, ciphertext) = aead_seal(key, plaintext)?;
            Ok(Sealed {
                scheme: "RSA-OAEP-SHA256 + AES-256-GCM",
                key_envelope: wrapped,
                nonce,
                ciphertext,
            })
        }
        PublicKeyKind::EcP256 => {
            let recipient = spki_key_bytes(spki_der)?;
            let rng = SystemRandom::new();
            let eph = EphemeralPrivateKey::generate(&ECDH_P256, &rng)
                .map_err(|_| anyhow!("ECDH key generation failed"))?;
            let eph_pub = eph
                .compute_public_key()
                .map_err(|_| anyhow!("ECDH public key failed"))?
                .as_ref()
                .to_vec();
            let key = agreement::agree_ephemeral(
                eph,
                UnparsedPublicKey::new(&ECDH_P256, &recipient),
                anyhow!("ECDH with the recipient's key failed"),
                |shared| derive_key(shared, &eph_pub, &recipient),
            )?;
            let (nonce, ciphertext) = aead_seal(key, plaintext)?;
            Ok(Sealed {
                scheme: "ECDH-P256 + HKDF-SHA256 + AES-256-GCM",
                key_envelope: eph_pub,
                nonce,
                ciphertext,
            })
        }
        other => bail!("encryption to a {other} key is not part of the walk-through"),
    }
}

/// Open a [`Sealed`] message with the recipient's PKCS#8 private key.
pub fn open(pkcs8_der: &[u8], sealed: &Sealed) -> Result<Vec<u8>> {
    let info = pkcs8::PrivateKeyInfo::from_der(pkcs8_der).context("private key does not parse")?;
    if info.algorithm.oid == ca_core::oids::RSA_ENCRYPTION {
        let private = PrivateDecryptingKey::from_pkcs8(pkcs8_der)
            .map_err(|e| anyhow!("RSA private key rejected: {e}"))?;
        let oaep = OaepPrivateDecryptingKey::new(private)
            .map_err(|_| anyhow!("RSA key not usable for OAEP"))?;
        let mut out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
        let data_key = oaep
            .decrypt(
                &OAEP_SHA256_MGF1SHA256,
                &sealed.key_envelope,
                &mut out,
                Some(CONTEXT),
            )
            .map_err(|_| {
                anyhow!("RSA-OAEP decryption failed: this message was not sealed to this key")
            })?;
        let key = UnboundKey::new(&AES_256_GCM, data_key).map_err(|_| anyhow!("bad AES key"))?;
        aead_open(key, sealed.nonce, &sealed.ciphertext)
    } else {
        let private = PrivateKey::from_private_key_der(&ECDH_P256, pkcs8_der)
            .map_err(|e| anyhow!("P-256 private key rejected: {e}"))?;
        let own_pub = private
            .compute_public_key()
            .map_err(|_| anyhow!("ECDH public key failed"))?
            .as_ref()
            .to_vec();
        let key = agreement::agree(
            &private,
            UnparsedPublicKey::new(&ECDH_P256, &sealed.key_envelope),
            anyhow!("ECDH with the sender's ephemeral key failed"),
            |shared| derive_key(shared, &sealed.key_envelope, &own_pub),
        )?;
        aead_open(key, sealed.nonce, &sealed.ciphertext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ca_core::keys::{KeyAlgorithm, Signer, SoftwareKey};

    #[test]
    fn round_trips_and_rejects_the_wrong_key() {
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
            let bob = SoftwareKey::generate(alg).expect("key");
            let eve = SoftwareKey::generate(alg).expect("key");
            let msg = vec![7u8; 100_000];
            let sealed = seal(bob.public_key_der(), &msg).expect("seal");
            assert_eq!(open(&bob.to_pkcs8_der(), &sealed).expect("open"), msg);
            assert!(open(&eve.to_pkcs8_der(), &sealed).is_err());
            let mut tampered = sealed.clone();
            if let Some(b) = tampered.ciphertext.first_mut() {
                *b ^= 1;
            }
            assert!(open(&bob.to_pkcs8_der(), &tampered).is_err());
        }
    }
}
