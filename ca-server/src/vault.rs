//! The signer holder: CA private keys, reachable only as `ca_core::Signer`.
//!
//! Keys live under `DIR/keys/` (directory 0700, files 0600) as PKCS#8 DER, one
//! file per CA id. Loading goes through [`load_ca_key`] and storing through
//! [`save_ca_key`] only, so envelope encryption can replace both later without
//! touching callers. No key material is ever logged or returned.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ca_core::keys::{KeyError, Signer, SoftwareKey};

use crate::ids::is_ca_id;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("invalid CA id")]
    BadId,
    #[error("no key for CA {0}")]
    Missing(String),
    #[error("key file for CA {0}: {1}")]
    Io(String, std::io::Error),
    #[error("key for CA {0} does not load: {1}")]
    Key(String, KeyError),
}

pub struct Vault {
    dir: PathBuf,
    cache: RwLock<HashMap<String, Arc<SoftwareKey>>>,
}

fn key_path(dir: &Path, ca_id: &str) -> Result<PathBuf, VaultError> {
    // The id is checked strictly before it names a file.
    if !is_ca_id(ca_id) {
        return Err(VaultError::BadId);
    }
    Ok(dir.join(format!("{ca_id}.p8")))
}

/// Write a new CA key durably with owner-only permissions.
pub fn save_ca_key(dir: &Path, ca_id: &str, key: &SoftwareKey) -> Result<(), VaultError> {
    let io = |e| VaultError::Io(ca_id.to_string(), e);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    let path = key_path(dir, ca_id)?;
    let tmp = path.with_extension("p8.tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(&key.to_pkcs8_der()).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// Load a CA key. The one place that reads CA key material from disk.
pub fn load_ca_key(dir: &Path, ca_id: &str) -> Result<SoftwareKey, VaultError> {
    let path = key_path(dir, ca_id)?;
    let der = match std::fs::read(&path) {
        Ok(d) => zeroize::Zeroizing::new(d),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VaultError::Missing(ca_id.to_string()))
        }
        Err(e) => return Err(VaultError::Io(ca_id.to_string(), e)),
    };
    SoftwareKey::from_pkcs8_der(&der).map_err(|e| VaultError::Key(ca_id.to_string(), e))
}

impl Vault {
    pub fn new(dir: PathBuf) -> Self {
        Vault {
            dir,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Generate nothing, just keep: store a freshly made CA key.
    pub fn store(&self, ca_id: &str, key: SoftwareKey) -> Result<Arc<dyn Signer>, VaultError> {
        save_ca_key(&self.dir, ca_id, &key)?;
        let key = Arc::new(key);
        if let Ok(mut c) = self.cache.write() {
            c.insert(ca_id.to_string(), key.clone());
        }
        Ok(key)
    }

    /// The signer of a CA.
    pub fn signer(&self, ca_id: &str) -> Result<Arc<dyn Signer>, VaultError> {
        if let Some(k) = self.cache.read().ok().and_then(|c| c.get(ca_id).cloned()) {
            return Ok(k);
        }
        let key = Arc::new(load_ca_key(&self.dir, ca_id)?);
        if let Ok(mut c) = self.cache.write() {
            c.insert(ca_id.to_string(), key.clone());
        }
        Ok(key)
    }
}
