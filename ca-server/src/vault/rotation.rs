//! Re-sealing keys outside serving: master-key rotation on a stopped server,
//! ordered so that a crash at any point (tests stop at its crash points)
//! leaves a usable state; and, at start, sealing the plaintext key files of a
//! data directory from before envelope encryption.

use std::path::Path;

use ca_core::envelope::{self, EnvelopeError, KdfParams, KeyEncryptionKey, MasterKey, SealedKey};
use ca_core::keys::SoftwareKey;
use zeroize::Zeroizing;

use super::master::{find_token_master, precheck_for, sync_dir, unlock_for, write_private};
use super::{Kek, KeyMeta, MasterOptions, VaultError, MIN_NEW_PASSPHRASE_LEN};
use crate::hsm::master::{is_token_check_value, TokenMaster};
use crate::hsm::TokenKeyRef;
use crate::ids::is_ca_id;
use crate::store::Store;

/// Which stage a test asks `rotate_master_key` to stop after (crash simulation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// `master.key.new` written, nothing committed.
    NewKeyWritten,
    /// Re-wrapped and committed, `master.key.new` not yet renamed.
    Committed,
}

impl std::str::FromStr for CrashPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "new-key-written" => Ok(CrashPoint::NewKeyWritten),
            "committed" => Ok(CrashPoint::Committed),
            _ => Err("crash point is new-key-written or committed".into()),
        }
    }
}

/// `ca-server rotate-master-key`: re-wrap every data key under a new master
/// key. Runs on a stopped server (the store's file lock refuses a running one).
/// Order, so that a crash anywhere leaves a usable state:
/// 1. write the new key to `master.key.new` (key-file mode);
/// 2. in ONE write transaction, re-wrap every data key and record the new
///    check value (and KDF parameters);
/// 3. rename `master.key.new` over `master.key`.
///
/// At start, [`unlock`](super::unlock) picks whichever file matches the committed check value.
/// Returns how many sealed keys (CA keys and the audit digest key) were re-wrapped.
pub fn rotate_master_key(
    dir: &Path,
    opts: &MasterOptions,
    new_passphrase_file: Option<&Path>,
    crash: Option<CrashPoint>,
) -> Result<usize, VaultError> {
    precheck_for(dir, opts, true)?;
    let store = crate::store::open_offline(dir, true)?;
    let old = unlock_for(store.as_ref(), dir, opts, true)?;
    let old_check = store.key_meta()?.check_value.unwrap_or_default();
    let old_token = if is_token_check_value(&old_check) {
        Some(find_token_master(&old_check, opts)?)
    } else {
        None
    };
    let (new, kdf): (Kek, Option<String>) = match (&opts.token_master, new_passphrase_file) {
        (Some(_), Some(_)) => {
            return Err(VaultError::Master(EnvelopeError::KdfParams(
                "a passphrase cannot make a token master key: drop --new-passphrase-file or master_key_label".into(),
            )))
        }
        (Some(source), None) => {
            let key = TokenMaster::generate(&source.token, &source.label)
                .map_err(VaultError::TokenMaster)?;
            (Box::new(key), None)
        }
        (None, _) if old_token.is_some() => return Err(VaultError::RotationOutOfToken),
        (None, new_passphrase_file) => match new_passphrase_file {
        Some(f) => {
            let pass = MasterOptions {
                passphrase_file: Some(f.to_path_buf()),
                ..Default::default()
            }
            .passphrase()?
            .ok_or(VaultError::Master(EnvelopeError::EmptyPassphrase))?;
            if pass.len() < MIN_NEW_PASSPHRASE_LEN {
                return Err(VaultError::ShortPassphrase);
            }
            let params = KdfParams::generate().map_err(VaultError::Master)?;
            let key = MasterKey::from_passphrase(&pass, &params).map_err(VaultError::Master)?;
            (Box::new(key), Some(params.encode()))
        }
        None => {
            let key = MasterKey::generate().map_err(VaultError::Master)?;
            write_private(&opts.new_key_path(dir), &key.to_bytes())?;
            sync_dir(&opts.key_dir(dir))?;
            (Box::new(key), None)
        }
        },
    };
    let new_in_token = opts.token_master.is_some();
    if crash == Some(CrashPoint::NewKeyWritten) {
        std::process::exit(3);
    }
    let mut in_token = 0;
    let mut rewrap = |id: &str, sealed: &[u8]| -> Result<Vec<u8>, String> {
        // A key in a token is not wrapped by the master key: its reference
        // stays as it is.
        if TokenKeyRef::is_token_ref(sealed) {
            in_token += 1;
            return Ok(sealed.to_vec());
        }
        let sealed = SealedKey::from_bytes(sealed).map_err(|e| e.to_string())?;
        envelope::rewrap(old.as_ref(), new.as_ref(), id, &sealed)
            .map(|k| k.to_bytes())
            .map_err(|e| e.to_string())
    };
    let meta = KeyMeta {
        check_value: Some(new.check_value().map_err(VaultError::Master)?),
        kdf: kdf.clone(),
    };
    let draft = crate::audit::commit_draft(
        "ca-server rotate-master-key",
        "RotateMasterKey",
        "master-key",
    );
    let n = store.rewrap_keys(&mut rewrap, &meta, draft)? - in_token;
    if crash == Some(CrashPoint::Committed) {
        std::process::exit(3);
    }
    let key_path = opts.key_path(dir);
    let io = |e| VaultError::Io(key_path.display().to_string(), e);
    if let Some(old) = old_token {
        // The old token key wraps nothing now. If this fails (or we crash
        // first) the key stays behind, unused: say so, do not fail.
        if let Err(e) = old.destroy() {
            tracing::warn!(error = %e, label = old.label(), "the old master key is still in the token; destroy it by hand");
        }
    } else if kdf.is_none() && !new_in_token {
        std::fs::rename(opts.new_key_path(dir), &key_path).map_err(io)?;
    } else if key_path.exists() {
        // Passphrase or token mode now: the old key file opens nothing current.
        std::fs::remove_file(&key_path).map_err(io)?;
    }
    sync_dir(&opts.key_dir(dir))?;
    store.close();
    Ok(n)
}

/// Data directories from before envelope encryption kept CA keys as
/// plaintext PKCS#8 files under `DIR/keys/`. Seal each into `ca_keys` (one
/// commit), then overwrite and remove the files. Runs at start, before
/// serving. Overwriting is best effort: on copy-on-write file systems or SSDs
/// old blocks may survive, so operators should treat such keys as exposed.
pub fn migrate_plaintext_keys(
    store: &dyn Store,
    dir: &Path,
    master: &dyn KeyEncryptionKey,
) -> Result<usize, VaultError> {
    let keys_dir = dir.join("keys");
    let Ok(entries) = std::fs::read_dir(&keys_dir) else {
        return Ok(0);
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".p8"))
            .filter(|id| is_ca_id(id))
            .map(str::to_string)
        else {
            continue;
        };
        let der = Zeroizing::new(
            std::fs::read(&path).map_err(|e| VaultError::Io(path.display().to_string(), e))?,
        );
        // Refuse to seal what is not a key we can use.
        SoftwareKey::from_pkcs8_der(&der).map_err(|e| VaultError::Key(id.clone(), e))?;
        let sealed = envelope::seal(master, &id, &der)
            .map_err(|e| VaultError::Sealed(id.clone(), e))?
            .to_bytes();
        found.push((id, path, der.len(), sealed));
    }
    if found.is_empty() {
        return Ok(0);
    }
    let keys: Vec<(String, Vec<u8>)> = found
        .iter()
        .map(|(id, _, _, sealed)| (id.clone(), sealed.clone()))
        .collect();
    let draft = crate::audit::commit_draft("ca-server (upgrade)", "SealPlaintextKeys", "ca-keys");
    store.import_sealed_keys(&keys, draft)?;
    for (_, path, len, _) in &found {
        write_private(path, &vec![0u8; *len])?;
        std::fs::remove_file(path).map_err(|e| VaultError::Io(path.display().to_string(), e))?;
    }
    let _ = std::fs::remove_dir(&keys_dir);
    sync_dir(dir)?;
    tracing::warn!(
        count = found.len(),
        "sealed plaintext CA key files from an older data directory and removed them"
    );
    Ok(found.len())
}
