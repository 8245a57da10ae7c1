//! `[pkcs11]` in config.toml (the module, the token, where the PIN comes
//! from) and [`TokenKeyRef`], what the store keeps in place of a sealed key
//! when a CA's key is in the token.

use std::path::{Path, PathBuf};

use cryptoki::types::AuthPin;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{HsmError, PIN_ENV};

/// The prefix of a token key reference where the store keeps a CA's key
/// (sealed software keys start with their version byte, 1).
const TOKEN_REF_PREFIX: &[u8] = b"PKCS11\0";

/// `[pkcs11]` in config.toml. The PIN is never in the file: it comes from
/// `pin_file` or the environment variable `CA_PKCS11_PIN`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The module (shared library), e.g. /usr/lib/softhsm/libsofthsm2.so.
    pub module: PathBuf,
    /// The token, by label (preferred: slot numbers can change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_label: Option<String>,
    /// The token, by slot id, when it has no usable label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    /// A file holding the user PIN (one line; relative to the data directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<PathBuf>,
    /// Sessions kept open for signing (default: twice the cores, at least 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<usize>,
    /// The label of an AES-256 key in the token that wraps the data keys in
    /// place of `master.key` (made by `init` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key_label: Option<String>,
    /// Never set: a `pin` here is refused with a message saying where the
    /// PIN goes, rather than as an unknown field.
    #[serde(default, skip_serializing)]
    pub pin: Option<ForbiddenPin>,
}

/// Whatever was written as `pin = ...` in `[pkcs11]`; never kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForbiddenPin;

impl<'de> Deserialize<'de> for ForbiddenPin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| ForbiddenPin)
    }
}

impl Pkcs11Config {
    pub fn check(&self) -> Result<(), String> {
        if self.pin.is_some() {
            return Err(format!(
                "[pkcs11] must not hold the PIN: put it in a file named by pin_file (mode 0600) or in the environment variable {PIN_ENV}"
            ));
        }
        if self.token_label.is_none() && self.slot.is_none() {
            return Err("[pkcs11] needs token_label (or slot)".into());
        }
        if self.sessions == Some(0) {
            return Err("[pkcs11] sessions must be at least 1".into());
        }
        Ok(())
    }

    /// The PIN: from `pin_file` if set, else from the environment (already
    /// taken out of it at start-up and passed in as `env_pin`).
    pub fn pin(
        &self,
        data_dir: &Path,
        env_pin: &crate::vault::EnvSecret,
    ) -> Result<AuthPin, HsmError> {
        if let Some(file) = &self.pin_file {
            let path = data_dir.join(file);
            let text = Zeroizing::new(
                std::fs::read_to_string(&path)
                    .map_err(|e| HsmError::PinFile(path.display().to_string(), e))?,
            );
            let pin = text.trim_end_matches(['\r', '\n']);
            if pin.is_empty() {
                return Err(HsmError::NoPin);
            }
            return Ok(AuthPin::from(pin.to_string()));
        }
        match env_pin.as_str() {
            Some(p) if !p.is_empty() => Ok(AuthPin::from(p.to_string())),
            _ => Err(HsmError::NoPin),
        }
    }
}

/// Where a CA's key lives when it is in a token: what the store keeps in
/// place of a sealed key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenKeyRef {
    /// CKA_LABEL (for people).
    pub label: String,
    /// CKA_ID, hex (how the key is found).
    pub id: String,
    /// The public key, DER SubjectPublicKeyInfo in hex: the token's key is
    /// checked against it before it signs anything, so a different key put
    /// under the same id is refused.
    pub spki: String,
}

impl TokenKeyRef {
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).unwrap_or_default();
        [TOKEN_REF_PREFIX, json.as_slice()].concat()
    }

    /// None if `bytes` is not a token key reference (a sealed key, say).
    pub fn from_bytes(bytes: &[u8]) -> Option<Result<Self, String>> {
        let json = bytes.strip_prefix(TOKEN_REF_PREFIX)?;
        Some(serde_json::from_slice(json).map_err(|e| e.to_string()))
    }

    pub fn is_token_ref(bytes: &[u8]) -> bool {
        bytes.starts_with(TOKEN_REF_PREFIX)
    }

    pub(super) fn id_bytes(&self) -> Result<Vec<u8>, HsmError> {
        ca_core::hex::decode(&self.id).map_err(|_| HsmError::Key {
            label: self.label.clone(),
            reason: "its stored CKA_ID is not hex".into(),
        })
    }

    pub(super) fn spki_der(&self) -> Result<Vec<u8>, HsmError> {
        ca_core::hex::decode(&self.spki).map_err(|_| HsmError::Key {
            label: self.label.clone(),
            reason: "its stored public key is not hex".into(),
        })
    }
}
