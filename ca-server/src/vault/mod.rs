//! The signer holder: CA private keys, reachable only as `ca_core::Signer`.
//!
//! CA keys are stored only under envelope encryption (`ca_core::envelope`):
//! each key is sealed under its own random data key (AES-256-GCM, the CA id as
//! associated data) and the data key under the master key. The store keeps
//! the sealed keys (CA id → [`SealedKey`] bytes), so master-key rotation
//! re-wraps every data key in one transaction.
//!
//! The master key comes from `DIR/master.key` (32 random bytes, 0600, made at
//! init) or from a passphrase (`--master-passphrase-file` or the environment
//! variable `CA_MASTER_PASSPHRASE`) through Argon2id; in that case the KDF
//! parameters are stored beside the sealed keys. The master key's check value
//! is stored there too, so a wrong key is refused at start before any CA key is
//! opened and before anything in the data directory is written.
//!
//! Plaintext keys exist only in this module's cache (`SoftwareKey` keeps its
//! PKCS#8 in `Zeroizing`; aws-lc cleanses its key structs when freed). Nothing
//! here logs or returns key material; errors name CA ids only.
//!
//! The parts: [`VaultError`] in `error`; where the master key comes from
//! ([`MasterOptions`], the environment's secrets, a configured token) in
//! `options`; finding, checking and first making the master key in `master`;
//! rotating it, with its crash points, and sealing an older directory's
//! plaintext key files in `rotation`. The [`Vault`] itself is here, with the
//! offline reads of sealed keys.

mod error;
mod master;
mod options;
mod rotation;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use ca_core::envelope::{self, SealedKey};
use ca_core::keys::{KeyError, Signer, SoftwareKey};
use zeroize::Zeroizing;

use self::master::find_master;
use crate::hsm::{Token, TokenKeyRef};
use crate::ids::is_ca_id;
use crate::store::Store;

pub use self::error::VaultError;
pub use self::master::{precheck, unlock};
pub use self::options::{
    with_configured_token, EnvSecret, Kek, MasterOptions, TokenMasterSource, MASTER_KEY_FILE,
    MIN_NEW_PASSPHRASE_LEN, PASSPHRASE_ENV,
};
pub use self::rotation::{migrate_plaintext_keys, rotate_master_key, CrashPoint};
pub use crate::store::KeyMeta;

/// Open one CA's sealed key with the master key, outside a running server
/// (tests, offline tools). The result is zeroised when dropped.
pub fn open_sealed_offline(
    dir: &Path,
    opts: &MasterOptions,
    ca_id: &str,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    let store = crate::store::open_offline(dir, false)?;
    let meta = store.key_meta()?;
    let (master, _) = find_master(dir, &meta, opts)?;
    let v = store
        .sealed_key(ca_id)?
        .ok_or_else(|| VaultError::Missing(ca_id.to_string()))?;
    store.close();
    if TokenKeyRef::is_token_ref(&v) {
        return Err(VaultError::Key(
            ca_id.to_string(),
            KeyError::Unavailable("it lives in a PKCS#11 token and never leaves it".into()),
        ));
    }
    let sealed = SealedKey::from_bytes(&v).map_err(|e| VaultError::Sealed(ca_id.to_string(), e))?;
    envelope::open(master.as_ref(), ca_id, &sealed)
        .map_err(|e| VaultError::Sealed(ca_id.to_string(), e))
}

/// Every CA id with a sealed key (offline).
pub fn sealed_ids_offline(dir: &Path) -> Result<Vec<String>, VaultError> {
    let store = crate::store::open_offline(dir, false)?;
    let ids = store.sealed_key_ids()?;
    store.close();
    Ok(ids)
}

pub struct Vault {
    store: Arc<dyn Store>,
    master: Kek,
    /// Seals list cursors (derived from the master key).
    cursor_key: envelope::TokenKey,
    cache: RwLock<HashMap<String, Arc<dyn Signer>>>,
    /// The PKCS#11 token holding CA keys, when configured.
    token: Option<Arc<Token>>,
}

/// The sealed-key id of the key that signs audit digests: sealed and rotated
/// with the CA keys, but never a CA's.
pub const AUDIT_DIGEST_KEY_ID: &str = "audit-digest-key";

/// Ids the vault seals: CA ids, and the audit digest key's.
fn is_sealable_id(id: &str) -> bool {
    is_ca_id(id) || id == AUDIT_DIGEST_KEY_ID
}

impl Vault {
    pub fn new(store: Arc<dyn Store>, master: Kek) -> Result<Self, VaultError> {
        Ok(Vault {
            store,
            cursor_key: envelope::TokenKey::derive(master.as_ref(), "list cursor")
                .map_err(VaultError::Master)?,
            master,
            cache: RwLock::new(HashMap::new()),
            token: None,
        })
    }

    /// CA keys may also live in (and be made in) this token.
    pub fn with_token(mut self, token: Arc<Token>) -> Self {
        self.token = Some(token);
        self
    }

    pub fn token(&self) -> Option<&Arc<Token>> {
        self.token.as_ref()
    }

    /// Where a CA's key lives: None for a sealed software key, the token
    /// reference for a key in a token.
    pub fn token_key(&self, ca_id: &str) -> Result<Option<TokenKeyRef>, VaultError> {
        let Some(stored) = self.store.sealed_key(ca_id)? else {
            return Ok(None);
        };
        match TokenKeyRef::from_bytes(&stored) {
            None => Ok(None),
            Some(Ok(r)) => Ok(Some(r)),
            Some(Err(e)) => Err(VaultError::Token(
                ca_id.to_string(),
                crate::hsm::HsmError::Operation(format!("stored key reference: {e}")),
            )),
        }
    }

    /// A store cursor sealed for a client: hex, opaque, refused if altered.
    pub fn seal_cursor(&self, cursor: &str) -> Result<String, VaultError> {
        self.cursor_key
            .seal(cursor.as_bytes())
            .map(|b| ca_core::hex::encode(&b))
            .map_err(|e| VaultError::Sealed("list cursor".into(), e))
    }

    /// The store cursor inside a sealed one; None if it is not one this
    /// master key sealed.
    pub fn open_cursor(&self, sealed: &str) -> Option<String> {
        let bytes = ca_core::hex::decode(sealed).ok()?;
        String::from_utf8(self.cursor_key.open(&bytes)?).ok()
    }

    /// Seal a freshly made CA key for the store (the caller commits it with
    /// the CA it belongs to).
    pub fn seal(&self, ca_id: &str, key: &SoftwareKey) -> Result<Vec<u8>, VaultError> {
        if !is_sealable_id(ca_id) {
            return Err(VaultError::BadId);
        }
        Ok(
            envelope::seal(self.master.as_ref(), ca_id, &key.to_pkcs8_der())
                .map_err(|e| VaultError::Sealed(ca_id.to_string(), e))?
                .to_bytes(),
        )
    }

    /// Keep a key whose sealed copy is committed, so the first signature does
    /// not unseal it again.
    pub fn cache(&self, ca_id: &str, key: Arc<dyn Signer>) {
        if let Ok(mut c) = self.cache.write() {
            c.insert(ca_id.to_string(), key);
        }
    }

    /// The signer of a CA: opened from its sealed record on first use.
    pub fn signer(&self, ca_id: &str) -> Result<Arc<dyn Signer>, VaultError> {
        if !is_sealable_id(ca_id) {
            return Err(VaultError::BadId);
        }
        if let Some(k) = self.cache.read().ok().and_then(|c| c.get(ca_id).cloned()) {
            return Ok(k);
        }
        let sealed = self
            .store
            .sealed_key(ca_id)?
            .ok_or_else(|| VaultError::Missing(ca_id.to_string()))?;
        if let Some(r) = TokenKeyRef::from_bytes(&sealed) {
            let r = r.map_err(|e| {
                VaultError::Token(
                    ca_id.to_string(),
                    crate::hsm::HsmError::Operation(format!("stored key reference: {e}")),
                )
            })?;
            let token = self
                .token
                .as_ref()
                .ok_or_else(|| VaultError::NoToken(ca_id.to_string()))?;
            let signer: Arc<dyn Signer> = Arc::new(
                token
                    .signer(&r)
                    .map_err(|e| VaultError::Token(ca_id.to_string(), e))?,
            );
            if let Ok(mut c) = self.cache.write() {
                c.insert(ca_id.to_string(), signer.clone());
            }
            return Ok(signer);
        }
        let sealed =
            SealedKey::from_bytes(&sealed).map_err(|e| VaultError::Sealed(ca_id.to_string(), e))?;
        let der = envelope::open(self.master.as_ref(), ca_id, &sealed)
            .map_err(|e| VaultError::Sealed(ca_id.to_string(), e))?;
        let key: Arc<dyn Signer> = Arc::new(
            SoftwareKey::from_pkcs8_der(&der).map_err(|e| VaultError::Key(ca_id.to_string(), e))?,
        );
        drop(der);
        if let Ok(mut c) = self.cache.write() {
            c.insert(ca_id.to_string(), key.clone());
        }
        Ok(key)
    }
}
