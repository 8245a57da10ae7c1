//! Where the master key comes from, as the operator gave it: a key file, a
//! passphrase (from a file or the environment, taken out of it at start-up)
//! or a key in the configured PKCS#11 token.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ca_core::envelope::KeyEncryptionKey;
use zeroize::Zeroizing;

use super::VaultError;
use crate::hsm::Token;

pub const MASTER_KEY_FILE: &str = "master.key";
pub const PASSPHRASE_ENV: &str = "CA_MASTER_PASSPHRASE";
/// Shortest passphrase accepted for a new master key (Argon2id slows
/// guessing; it cannot make a short passphrase long).
pub const MIN_NEW_PASSPHRASE_LEN: usize = 12;

/// A secret from the environment (`CA_MASTER_PASSPHRASE`, `CA_PKCS11_PIN`),
/// taken out of it at start-up so that child processes do not inherit it and
/// nothing later reads it by accident.
/// (The kernel still shows a process's initial environment in
/// /proc/PID/environ to its owner: prefer a passphrase file.)
#[derive(Clone, Default)]
pub struct EnvSecret(Option<Zeroizing<Vec<u8>>>);

impl std::fmt::Debug for EnvSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "EnvSecret(set)"
        } else {
            "EnvSecret(unset)"
        })
    }
}

impl EnvSecret {
    /// Read and remove the variable. Call before any thread starts: changing
    /// the environment races with threads that read it.
    pub fn take() -> Self {
        Self::take_var(PASSPHRASE_ENV)
    }

    /// As [`EnvSecret::take`], for another variable.
    pub fn take_var(name: &str) -> Self {
        let value = std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(|v| Zeroizing::new(v.into_encoded_bytes()));
        std::env::remove_var(name);
        EnvSecret(value)
    }

    /// The secret as text, if set and UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_ref().and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// Where the master key comes from, as the operator gave it.
#[derive(Clone, Debug, Default)]
pub struct MasterOptions {
    /// A file holding the passphrase (first line).
    pub passphrase_file: Option<PathBuf>,
    /// The passphrase taken from the environment at start-up, if any.
    pub env_passphrase: EnvSecret,
    /// Where the master key file lives, when not `DIR/master.key`: keeping it
    /// outside the data directory keeps it out of that directory's backups.
    pub key_file: Option<PathBuf>,
    /// The PKCS#11 token PIN taken from `CA_PKCS11_PIN` at start-up, if any
    /// (a `pin_file` in `[pkcs11]` takes precedence).
    pub env_token_pin: EnvSecret,
    /// The master key lives in this token as an AES key with this label
    /// (`[pkcs11] master_key_label`), opened by the caller from the config.
    pub token_master: Option<TokenMasterSource>,
}

/// Where a token master key is: the open token and the key's label.
#[derive(Clone, Debug)]
pub struct TokenMasterSource {
    pub token: Arc<Token>,
    pub label: String,
}

/// The key that wraps data keys, wherever it lives.
pub type Kek = Box<dyn KeyEncryptionKey>;

impl MasterOptions {
    /// The master key file: the one given, else `DIR/master.key`.
    pub fn key_path(&self, dir: &Path) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| dir.join(MASTER_KEY_FILE))
    }

    /// Where a rotation writes the new key first: the key file's name + `.new`.
    pub(super) fn new_key_path(&self, dir: &Path) -> PathBuf {
        let mut name = self.key_path(dir).into_os_string();
        name.push(".new");
        PathBuf::from(name)
    }

    /// The directory holding the key file (synced after it changes).
    pub(super) fn key_dir(&self, dir: &Path) -> PathBuf {
        self.key_path(dir)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    }

    /// The passphrase from the file, else from `CA_MASTER_PASSPHRASE` (taken at
    /// start-up, or read now when this process did not take it), if any.
    pub fn passphrase(&self) -> Result<Option<Zeroizing<Vec<u8>>>, VaultError> {
        if let Some(f) = &self.passphrase_file {
            let raw = Zeroizing::new(
                std::fs::read(f).map_err(|e| VaultError::Io(f.display().to_string(), e))?,
            );
            let line = raw.split(|b| *b == b'\n').next().unwrap_or_default();
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            return Ok(Some(Zeroizing::new(line.to_vec())));
        }
        if let Some(p) = &self.env_passphrase.0 {
            return Ok(Some(p.clone()));
        }
        Ok(std::env::var_os(PASSPHRASE_ENV)
            .filter(|v| !v.is_empty())
            .map(|v| Zeroizing::new(v.into_encoded_bytes())))
    }
}

/// Open the `[pkcs11]` token of `config`, if any, and add it to `opts` as
/// the master key's home when `master_key_label` is set. A wrong PIN or a
/// missing token or module is an error here, before anything is opened.
pub fn with_configured_token(
    dir: &Path,
    config: &crate::config::Config,
    opts: &MasterOptions,
) -> Result<(Option<Arc<Token>>, MasterOptions), anyhow::Error> {
    let mut opts = opts.clone();
    let Some(cfg) = &config.pkcs11 else {
        return Ok((None, opts));
    };
    let token = cfg
        .pin(dir, &opts.env_token_pin)
        .and_then(|pin| Token::open(cfg, pin))
        .map_err(|e| anyhow::anyhow!("the PKCS#11 token ([pkcs11] in config.toml): {e}"))?;
    if let Some(label) = &cfg.master_key_label {
        opts.token_master = Some(TokenMasterSource {
            token: token.clone(),
            label: label.clone(),
        });
    }
    Ok((Some(token), opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_passphrase_is_taken_out_of_the_environment() {
        std::env::set_var(PASSPHRASE_ENV, "an environment passphrase");
        let taken = EnvSecret::take();
        assert!(std::env::var_os(PASSPHRASE_ENV).is_none());
        assert_eq!(format!("{taken:?}"), "EnvSecret(set)");
        let opts = MasterOptions {
            env_passphrase: taken,
            ..Default::default()
        };
        let got = opts.passphrase().expect("read").expect("some");
        assert_eq!(got.as_slice(), b"an environment passphrase");
    }
}
