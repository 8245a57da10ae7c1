//! What can go wrong reaching a CA key or the master key, naming CA ids and
//! files only, and which of it is the key being away (503) rather than a fault.

use std::path::PathBuf;

use ca_core::envelope::EnvelopeError;
use ca_core::keys::KeyError;

use super::{MIN_NEW_PASSPHRASE_LEN, PASSPHRASE_ENV};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("invalid CA id")]
    BadId,
    #[error("no key for CA {0}")]
    Missing(String),
    #[error("key for CA {0} does not load: {1}")]
    Key(String, KeyError),
    #[error("key for CA {0}: {1}")]
    Sealed(String, EnvelopeError),
    #[error("the master key does not match this data directory (check value {found}, expected {expected}); nothing was changed")]
    WrongMasterKey { expected: String, found: String },
    #[error("this data directory's master key comes from a passphrase: give --master-passphrase-file or set {PASSPHRASE_ENV}")]
    PassphraseRequired,
    #[error("no master key: {0} is missing")]
    NoKeyFile(PathBuf),
    #[error("a new master passphrase must be at least {MIN_NEW_PASSPHRASE_LEN} characters")]
    ShortPassphrase,
    #[error("master key: {0}")]
    Master(EnvelopeError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("store: {0}")]
    Store(String),
    #[error("the key of CA {0} is in a PKCS#11 token, but no [pkcs11] token is configured")]
    NoToken(String),
    #[error("the key of CA {0}: {1}")]
    Token(String, crate::hsm::HsmError),
    #[error("this data directory's master key is in a PKCS#11 token (labelled {0:?}): configure [pkcs11] with master_key_label in config.toml")]
    TokenMasterRequired(String),
    #[error("[pkcs11] master_key_label is set, but this data directory's master key is a key file or passphrase: run `ca-server rotate-master-key` (server stopped) to move it into the token")]
    MasterNotInToken,
    #[error("the master key is in the PKCS#11 token: a rotation makes a new key there (keep master_key_label set)")]
    RotationOutOfToken,
    #[error("the master key in the token: {0}")]
    TokenMaster(crate::hsm::HsmError),
}

impl VaultError {
    /// The key exists but cannot be reached now (an HSM away): 503, not 500.
    pub fn is_unavailable(&self) -> bool {
        match self {
            VaultError::NoToken(_) => true,
            VaultError::Token(_, e) | VaultError::TokenMaster(e) => e.is_unavailable(),
            // A data key the token-held master key could not open because
            // the token is away.
            VaultError::Sealed(_, EnvelopeError::Unavailable(_))
            | VaultError::Master(EnvelopeError::Unavailable(_)) => true,
            _ => false,
        }
    }
}

impl From<StoreError> for VaultError {
    fn from(e: StoreError) -> Self {
        VaultError::Store(e.to_string())
    }
}
