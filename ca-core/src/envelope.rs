//! Envelope encryption of CA private keys at rest (the KMS model): each key is
//! sealed under its own random data key with AES-256-GCM, and the data key is
//! sealed under a master key. Both ciphertexts are bound to the CA's id through
//! the associated data, so a sealed key moved to another CA's record does not open.
//!
//! The master key comes from a 32-byte key file or from a passphrase through
//! Argon2id with stored parameters. Rotating the master key re-wraps only the
//! small data keys; the CA keys' ciphertexts do not change.

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest;
use zeroize::Zeroizing;

pub const MASTER_KEY_LEN: usize = 32;
const DATA_KEY_LEN: usize = 32;
/// Format version of a [`SealedKey`] encoding.
const SEALED_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("the master key must be {MASTER_KEY_LEN} bytes")]
    MasterKeyLength,
    #[error("the master key does not open this key: wrong master key, or the record was altered or moved")]
    WrongKeyOrTampered,
    #[error("the sealed key record is malformed")]
    Malformed,
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    #[error("key derivation parameters are not valid: {0}")]
    KdfParams(String),
    #[error("the random number generator failed")]
    Rng,
    /// The key-encryption key lives elsewhere (an HSM) and cannot be
    /// reached now.
    #[error("the master key is unavailable: {0}")]
    Unavailable(String),
}

/// The key that wraps data keys: a [`MasterKey`] in memory, or a key in an
/// HSM or KMS that encrypts and decrypts data keys inside itself (the KMS
/// model: the data key comes back, the key-encryption key never leaves).
pub trait KeyEncryptionKey: Send + Sync {
    /// AEAD-encrypt a data key, binding `aad`: nonce ‖ ciphertext ‖ tag.
    fn wrap(&self, aad: &[u8], data_key: &[u8]) -> Result<Vec<u8>, EnvelopeError>;
    /// Undo [`KeyEncryptionKey::wrap`]; `WrongKeyOrTampered` if it does not
    /// open.
    fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError>;
    /// 32 pseudo-random bytes bound to `label` (a PRF of the key), for keys
    /// derived from it.
    fn derive(&self, label: &[u8]) -> Result<Zeroizing<[u8; 32]>, EnvelopeError>;
    /// A public check value telling a wrong key apart before it opens
    /// anything; reveals nothing usable about the key.
    fn check_value(&self) -> Result<String, EnvelopeError>;
}

/// The key that wraps every data key. Zeroised on drop; never printed.
pub struct MasterKey(Zeroizing<[u8; MASTER_KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Argon2id parameters, stored beside the data so the same passphrase derives
/// the same key later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub salt: [u8; 16],
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// Upper bounds on stored Argon2id parameters (4 GiB, 64 passes, 16 lanes).
const MAX_KDF_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_KDF_ITERATIONS: u32 = 64;
const MAX_KDF_PARALLELISM: u32 = 16;

impl KdfParams {
    /// OWASP's first Argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
    pub fn generate() -> Result<Self, EnvelopeError> {
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| EnvelopeError::Rng)?;
        // RFC 9106's second recommended option (64 MiB, 3 passes), above
        // OWASP's minimum; stored parameters keep older stores opening.
        Ok(KdfParams {
            salt,
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        })
    }

    /// `argon2id$m=65536,t=3,p=1$<salt hex>`
    pub fn encode(&self) -> String {
        let salt: String = self.salt.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "argon2id$m={},t={},p={}${salt}",
            self.memory_kib, self.iterations, self.parallelism
        )
    }

    pub fn decode(s: &str) -> Result<Self, EnvelopeError> {
        let bad = || EnvelopeError::KdfParams(s.chars().take(80).collect());
        let mut parts = s.trim().split('$');
        if parts.next() != Some("argon2id") {
            return Err(bad());
        }
        let (mut m, mut t, mut p) = (None, None, None);
        for kv in parts.next().ok_or_else(bad)?.split(',') {
            let (k, v) = kv.split_once('=').ok_or_else(bad)?;
            let v: u32 = v.parse().map_err(|_| bad())?;
            match k {
                "m" => m = Some(v),
                "t" => t = Some(v),
                "p" => p = Some(v),
                _ => return Err(bad()),
            }
        }
        let hex = parts.next().ok_or_else(bad)?;
        if hex.len() != 32 || parts.next().is_some() {
            return Err(bad());
        }
        let mut salt = [0u8; 16];
        for (i, b) in salt.iter_mut().enumerate() {
            *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        let (memory_kib, iterations, parallelism) =
            (m.ok_or_else(bad)?, t.ok_or_else(bad)?, p.ok_or_else(bad)?);
        // Stored parameters are input: bound them so a damaged or hostile
        // data directory cannot make start-up allocate terabytes or spin for ever.
        if memory_kib > MAX_KDF_MEMORY_KIB
            || !(1..=MAX_KDF_ITERATIONS).contains(&iterations)
            || !(1..=MAX_KDF_PARALLELISM).contains(&parallelism)
        {
            return Err(bad());
        }
        Ok(KdfParams {
            salt,
            memory_kib,
            iterations,
            parallelism,
        })
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self, EnvelopeError> {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| EnvelopeError::Rng)?;
        Ok(MasterKey(key))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        if bytes.len() != MASTER_KEY_LEN {
            return Err(EnvelopeError::MasterKeyLength);
        }
        key.copy_from_slice(bytes);
        Ok(MasterKey(key))
    }

    /// Derive the master key from a passphrase with Argon2id (memory-hard).
    pub fn from_passphrase(passphrase: &[u8], params: &KdfParams) -> Result<Self, EnvelopeError> {
        if passphrase.is_empty() {
            return Err(EnvelopeError::EmptyPassphrase);
        }
        let argon_params = argon2::Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            Some(MASTER_KEY_LEN),
        )
        .map_err(|e| EnvelopeError::KdfParams(e.to_string()))?;
        let argon = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon_params,
        );
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        argon
            .hash_password_into(passphrase, &params.salt, key.as_mut())
            .map_err(|e| EnvelopeError::KdfParams(e.to_string()))?;
        Ok(MasterKey(key))
    }

    /// The raw key, for writing a new key file. Zeroised on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.to_vec())
    }

    /// A public check value: tells a wrong master key apart at start-up before
    /// any CA key is touched. It reveals nothing usable about a 256-bit key.
    pub fn check_value(&self) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"private-ca master key check v1\0");
        ctx.update(self.0.as_ref());
        ctx.finish().as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl KeyEncryptionKey for MasterKey {
    fn wrap(&self, aad: &[u8], data_key: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        seal_with(self.0.as_ref(), aad, data_key)
    }

    fn unwrap(&self, aad: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        open_with(self.0.as_ref(), aad, wrapped)
    }

    /// HMAC-SHA256(master, label).
    fn derive(&self, label: &[u8]) -> Result<Zeroizing<[u8; 32]>, EnvelopeError> {
        use aws_lc_rs::hmac;
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.0.as_ref());
        let tag = hmac::sign(&key, label);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&tag.as_ref()[..32]);
        Ok(out)
    }

    fn check_value(&self) -> Result<String, EnvelopeError> {
        Ok(MasterKey::check_value(self))
    }
}

/// A CA key sealed under its data key, and the data key sealed under the master key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedKey {
    /// Nonce, then ciphertext and tag of the data key.
    pub wrapped_data_key: Vec<u8>,
    /// Nonce, then ciphertext and tag of the CA key.
    pub ciphertext: Vec<u8>,
}

fn data_key_aad(ca_id: &str) -> Vec<u8> {
    [b"private-ca data key v1\0".as_slice(), ca_id.as_bytes()].concat()
}

fn ca_key_aad(ca_id: &str) -> Vec<u8> {
    [b"private-ca ca key v1\0".as_slice(), ca_id.as_bytes()].concat()
}

fn seal_with(key: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let key =
        RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| EnvelopeError::MasterKeyLength)?;
    // Room for the tag up front, so appending it never reallocates and leaves
    // a copy of the plaintext in freed memory; wiped if sealing fails.
    let mut in_out = Zeroizing::new(Vec::with_capacity(plaintext.len() + AES_256_GCM.tag_len()));
    in_out.extend_from_slice(plaintext);
    let nonce = key
        .seal_in_place_append_tag(Aad::from(aad), &mut *in_out)
        .map_err(|_| EnvelopeError::Rng)?;
    Ok([nonce.as_ref().as_slice(), &in_out].concat())
}

fn open_with(key: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let key =
        RandomizedNonceKey::new(&AES_256_GCM, key).map_err(|_| EnvelopeError::MasterKeyLength)?;
    if sealed.len() < NONCE_LEN + 16 {
        return Err(EnvelopeError::Malformed);
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| EnvelopeError::Malformed)?;
    let mut in_out = Zeroizing::new(ct.to_vec());
    let len = key
        .open_in_place(nonce, Aad::from(aad), in_out.as_mut_slice())
        .map_err(|_| EnvelopeError::WrongKeyOrTampered)?
        .len();
    in_out.truncate(len);
    Ok(in_out)
}

/// A key derived from the master key for one purpose (`label`), sealing
/// small tokens the server hands out and takes back, such as list cursors:
/// opaque to clients, refused if altered, and valid on every process that
/// holds the same master key.
pub struct TokenKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl TokenKey {
    /// The master key's PRF of `"private-ca token key v1\0" || label`
    /// (HMAC-SHA256 for a [`MasterKey`]).
    pub fn derive(master: &dyn KeyEncryptionKey, label: &str) -> Result<TokenKey, EnvelopeError> {
        let derived =
            master.derive(&[b"private-ca token key v1\0".as_slice(), label.as_bytes()].concat())?;
        let mut out = Zeroizing::new([0u8; DATA_KEY_LEN]);
        out.copy_from_slice(&derived[..DATA_KEY_LEN]);
        Ok(TokenKey(out))
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        seal_with(self.0.as_ref(), b"private-ca token v1", plaintext)
    }

    /// None if `sealed` was not made by this key, or was altered.
    pub fn open(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        open_with(self.0.as_ref(), b"private-ca token v1", sealed)
            .ok()
            .map(|p| p.to_vec())
    }
}

/// Seal `plaintext` (a CA's PKCS#8 key) for CA `ca_id` under a fresh data key.
pub fn seal(
    master: &dyn KeyEncryptionKey,
    ca_id: &str,
    plaintext: &[u8],
) -> Result<SealedKey, EnvelopeError> {
    let mut data_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
    aws_lc_rs::rand::fill(data_key.as_mut()).map_err(|_| EnvelopeError::Rng)?;
    Ok(SealedKey {
        ciphertext: seal_with(data_key.as_ref(), &ca_key_aad(ca_id), plaintext)?,
        wrapped_data_key: master.wrap(&data_key_aad(ca_id), data_key.as_ref())?,
    })
}

/// Open a sealed CA key. The plaintext is zeroised when dropped.
pub fn open(
    master: &dyn KeyEncryptionKey,
    ca_id: &str,
    sealed: &SealedKey,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let data_key = master.unwrap(&data_key_aad(ca_id), &sealed.wrapped_data_key)?;
    if data_key.len() != DATA_KEY_LEN {
        return Err(EnvelopeError::Malformed);
    }
    open_with(&data_key, &ca_key_aad(ca_id), &sealed.ciphertext)
}

/// Re-wrap the data key under a new master key (master-key rotation). The CA
/// key's ciphertext is unchanged.
pub fn rewrap(
    old: &dyn KeyEncryptionKey,
    new: &dyn KeyEncryptionKey,
    ca_id: &str,
    sealed: &SealedKey,
) -> Result<SealedKey, EnvelopeError> {
    let data_key = old.unwrap(&data_key_aad(ca_id), &sealed.wrapped_data_key)?;
    if data_key.len() != DATA_KEY_LEN {
        return Err(EnvelopeError::Malformed);
    }
    Ok(SealedKey {
        wrapped_data_key: new.wrap(&data_key_aad(ca_id), &data_key)?,
        ciphertext: sealed.ciphertext.clone(),
    })
}

impl SealedKey {
    /// `version(1) | len(u32 BE) | wrapped data key | ciphertext`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len = u32::try_from(self.wrapped_data_key.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(5 + self.wrapped_data_key.len() + self.ciphertext.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&self.wrapped_data_key);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let (&version, rest) = bytes.split_first().ok_or(EnvelopeError::Malformed)?;
        if version != SEALED_VERSION || rest.len() < 4 {
            return Err(EnvelopeError::Malformed);
        }
        let (len, rest) = rest.split_at(4);
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if rest.len() < len {
            return Err(EnvelopeError::Malformed);
        }
        let (wrapped, ciphertext) = rest.split_at(len);
        Ok(SealedKey {
            wrapped_data_key: wrapped.to_vec(),
            ciphertext: ciphertext.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let master = MasterKey::generate().unwrap();
        let sealed = seal(&master, "ca-1", b"secret pkcs8").unwrap();
        assert_eq!(
            open(&master, "ca-1", &sealed).unwrap().as_slice(),
            b"secret pkcs8"
        );
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"secret"));
        // Bound to its CA: moving the record to another CA fails.
        assert_eq!(
            open(&master, "ca-2", &sealed),
            Err(EnvelopeError::WrongKeyOrTampered)
        );
        // A wrong master key fails cleanly.
        let other = MasterKey::generate().unwrap();
        assert_eq!(
            open(&other, "ca-1", &sealed),
            Err(EnvelopeError::WrongKeyOrTampered)
        );
        // Tampering is detected.
        let mut bad = sealed.clone();
        if let Some(b) = bad.ciphertext.last_mut() {
            *b ^= 1;
        }
        assert_eq!(
            open(&master, "ca-1", &bad),
            Err(EnvelopeError::WrongKeyOrTampered)
        );
        let round = SealedKey::from_bytes(&sealed.to_bytes()).unwrap();
        assert_eq!(round, sealed);
        assert_eq!(
            SealedKey::from_bytes(&[1, 0, 0, 0, 99, 1]),
            Err(EnvelopeError::Malformed)
        );
        assert_eq!(SealedKey::from_bytes(&[]), Err(EnvelopeError::Malformed));
    }

    #[test]
    fn tampering_anywhere_in_a_sealed_record_is_refused() {
        let master = MasterKey::generate().unwrap();
        let bytes = seal(&master, "ca-1", b"secret pkcs8").unwrap().to_bytes();
        // Every bit of every byte: the version, the length, either nonce,
        // either ciphertext, either tag. Each flip is refused, never opened
        // to something else.
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                let opened = SealedKey::from_bytes(&bad).and_then(|k| open(&master, "ca-1", &k));
                assert!(opened.is_err(), "byte {i} bit {bit} opened");
            }
        }
        // Truncated anywhere: refused too.
        for n in 0..bytes.len() {
            let opened = SealedKey::from_bytes(&bytes[..n]).and_then(|k| open(&master, "ca-1", &k));
            assert!(opened.is_err(), "truncated to {n} opened");
        }
    }

    #[test]
    fn a_master_key_of_the_wrong_length_is_refused() {
        for len in [0, 16, 31, 33, 64] {
            assert_eq!(
                MasterKey::from_bytes(&vec![7u8; len]).map(|_| ()),
                Err(EnvelopeError::MasterKeyLength),
                "{len} bytes"
            );
        }
        assert!(MasterKey::from_bytes(&[7u8; MASTER_KEY_LEN]).is_ok());
    }

    #[test]
    fn rewrap_changes_only_the_data_key_wrapping() {
        let old = MasterKey::generate().unwrap();
        let new = MasterKey::generate().unwrap();
        let sealed = seal(&old, "ca-1", b"k").unwrap();
        let rewrapped = rewrap(&old, &new, "ca-1", &sealed).unwrap();
        assert_eq!(rewrapped.ciphertext, sealed.ciphertext);
        assert_eq!(open(&new, "ca-1", &rewrapped).unwrap().as_slice(), b"k");
        assert!(open(&old, "ca-1", &rewrapped).is_err());
        assert!(rewrap(&new, &old, "ca-1", &sealed).is_err());
    }

    #[test]
    fn new_kdf_parameters_are_above_the_owasp_minimum() {
        let p = KdfParams::generate().unwrap();
        assert!(
            p.memory_kib >= 64 * 1024 && p.iterations >= 3,
            "{}",
            p.encode()
        );
        assert!(p.encode().starts_with("argon2id$m=65536,t=3,p=1$"));
    }

    #[test]
    fn passphrase_derivation_is_stable_and_params_round_trip() {
        let mut params = KdfParams::generate().unwrap();
        params.memory_kib = 1024; // keep the test fast
        let encoded = params.encode();
        assert_eq!(KdfParams::decode(&encoded).unwrap(), params);
        let a = MasterKey::from_passphrase(b"correct horse", &params).unwrap();
        let b = MasterKey::from_passphrase(b"correct horse", &params).unwrap();
        let c = MasterKey::from_passphrase(b"wrong horse", &params).unwrap();
        assert_eq!(a.check_value(), b.check_value());
        assert_ne!(a.check_value(), c.check_value());
        assert!(MasterKey::from_passphrase(b"", &params).is_err());
        assert!(KdfParams::decode("argon2id$m=1,t=1$00").is_err());
        assert!(KdfParams::decode("scrypt$m=1,t=1,p=1$00000000000000000000000000000000").is_err());
        // Stored parameters are bounded: no 4 TiB allocation, no endless passes.
        let salt = "00000000000000000000000000000000";
        assert!(KdfParams::decode(&format!("argon2id$m=4294967295,t=2,p=1${salt}")).is_err());
        assert!(KdfParams::decode(&format!("argon2id$m=19456,t=4000000000,p=1${salt}")).is_err());
        assert!(KdfParams::decode(&format!("argon2id$m=19456,t=2,p=0${salt}")).is_err());
        assert!(KdfParams::decode(&format!("argon2id$m=19456,t=2,p=1${salt}")).is_ok());
    }

    #[test]
    fn token_keys_are_per_master_and_label_and_refuse_tampering() {
        let master = MasterKey::generate().unwrap();
        let cursors = TokenKey::derive(&master, "list cursor").expect("derive");
        let sealed = cursors.seal(b"kca-1/0a").unwrap();
        assert_eq!(
            cursors.open(&sealed).as_deref(),
            Some(b"kca-1/0a".as_slice())
        );
        // The same master and label on another process opens it.
        assert!(TokenKey::derive(&master, "list cursor")
            .expect("derive")
            .open(&sealed)
            .is_some());
        // Another label or master does not; nor does any altered byte.
        assert!(TokenKey::derive(&master, "other")
            .expect("derive")
            .open(&sealed)
            .is_none());
        let other = MasterKey::generate().unwrap();
        assert!(TokenKey::derive(&other, "list cursor")
            .expect("derive")
            .open(&sealed)
            .is_none());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(cursors.open(&bad).is_none(), "byte {i}");
        }
        assert!(cursors.open(&sealed[..10]).is_none());
    }
}
