//! Finding the master key that matches the stored check value (key file,
//! `master.key.new` left by a rotation, passphrase or token), checking it
//! before anything is written, and making it on first use.

use std::path::Path;

use ca_core::envelope::{EnvelopeError, KdfParams, MasterKey};
use zeroize::Zeroizing;

use super::{Kek, KeyMeta, MasterOptions, VaultError, MIN_NEW_PASSPHRASE_LEN};
use crate::hsm::master::{is_token_check_value, parse_check_value, TokenMaster};
use crate::store::{Store, StoreError};

/// Write a file readable by its owner only, durably.
pub(super) fn write_private(path: &Path, data: &[u8]) -> Result<(), VaultError> {
    crate::files::write_private(path, data)
        .map_err(|e| VaultError::Io(path.display().to_string(), e))
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), VaultError> {
    crate::files::sync_dir(dir).map_err(|e| VaultError::Io(dir.display().to_string(), e))
}

fn read_key_file(path: &Path) -> Result<Option<MasterKey>, VaultError> {
    match std::fs::read(path) {
        Ok(b) => {
            let b = Zeroizing::new(b);
            MasterKey::from_bytes(&b)
                .map(Some)
                .map_err(VaultError::Master)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(VaultError::Io(path.display().to_string(), e)),
    }
}

/// Which key file held the matching master key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Found {
    Current,
    /// `master.key.new`: a rotation committed but did not rename the file.
    New,
    Passphrase,
    /// An AES key in the PKCS#11 token.
    Token,
}

/// Find the master key that matches the stored check value. Reads only.
pub(super) fn find_master(
    dir: &Path,
    meta: &KeyMeta,
    opts: &MasterOptions,
) -> Result<(Kek, Found), VaultError> {
    let expected = meta.check_value.clone().unwrap_or_default();
    if is_token_check_value(&expected) {
        let key = find_token_master(&expected, opts)?;
        let found = key.stored_check_value().map_err(VaultError::Master)?;
        if found != expected {
            return Err(VaultError::WrongMasterKey { expected, found });
        }
        return Ok((Box::new(key), Found::Token));
    }
    if let Some(kdf) = &meta.kdf {
        let pass = opts.passphrase()?.ok_or(VaultError::PassphraseRequired)?;
        let params = KdfParams::decode(kdf).map_err(VaultError::Master)?;
        let key = MasterKey::from_passphrase(&pass, &params).map_err(VaultError::Master)?;
        let found = key.check_value();
        if found != expected {
            return Err(VaultError::WrongMasterKey { expected, found });
        }
        return Ok((Box::new(key), Found::Passphrase));
    }
    let current = read_key_file(&opts.key_path(dir))?;
    let new = read_key_file(&opts.new_key_path(dir))?;
    let mut found = String::new();
    for (key, which) in [(current, Found::Current), (new, Found::New)] {
        if let Some(k) = key {
            let cv = k.check_value();
            if cv == expected {
                return Ok((Box::new(k), which));
            }
            if found.is_empty() {
                found = cv;
            }
        }
    }
    if found.is_empty() {
        return Err(VaultError::NoKeyFile(opts.key_path(dir)));
    }
    Err(VaultError::WrongMasterKey { expected, found })
}

/// The token master key a stored check value names.
pub(super) fn find_token_master(
    check_value: &str,
    opts: &MasterOptions,
) -> Result<TokenMaster, VaultError> {
    let (label, id, _) =
        parse_check_value(check_value).ok_or(VaultError::Master(EnvelopeError::Malformed))?;
    let source = opts
        .token_master
        .as_ref()
        .ok_or_else(|| VaultError::TokenMasterRequired(label.clone()))?;
    TokenMaster::find(&source.token, &label, &id).map_err(VaultError::TokenMaster)
}

/// Before the store is opened for writing: if the data directory already has
/// a master key check value, make sure the given master key matches it, so a
/// wrong key changes nothing (a store a crash left is recovered first, which
/// only finishes what was committed). Returns `false` when the check could
/// not be made; [`unlock`] checks again.
pub fn precheck(dir: &Path, opts: &MasterOptions) -> Result<bool, VaultError> {
    precheck_for(dir, opts, false)
}

pub(super) fn precheck_for(
    dir: &Path,
    opts: &MasterOptions,
    rotating: bool,
) -> Result<bool, VaultError> {
    // (config.toml read once.)
    let postgres = crate::store::is_postgres(dir);
    if postgres && !rotating {
        // A shared database: the server checks the key once it is open.
        return Ok(false);
    }
    if !crate::store::exists(dir) && !postgres {
        return Ok(true);
    }
    // A store a crash left is recovered first, on its file, and closed
    // cleanly: that only finishes what was committed (a wrong key changes
    // nothing else), and is the open's whole cost on a large store, which a
    // look recovering it in memory would make twice.
    let opened = if postgres {
        crate::store::open_offline(dir, false)
    } else {
        crate::store::open_read_only_if_clean(dir).and_then(|clean| match clean {
            Some(store) => Ok(store),
            None => {
                crate::store::recover(dir)?;
                crate::store::open_read_only_if_clean(dir)?
                    .ok_or_else(|| StoreError::Unavailable("the store still needs recovery".into()))
            }
        })
    };
    let store = match opened {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "read-only pre-check not possible; checking after open");
            return Ok(false);
        }
    };
    let meta = store.key_meta()?;
    store.close();
    let Some(cv) = &meta.check_value else {
        return Ok(true);
    };
    if opts.token_master.is_some() && !is_token_check_value(cv) && !rotating {
        return Err(VaultError::MasterNotInToken);
    }
    find_master(dir, &meta, opts).map(|_| true)
}

/// After the store is open: the master key, made on first use (init). Finishes
/// an interrupted master-key rotation: whichever key matches the stored check
/// value wins and the other file is cleaned up.
pub fn unlock(store: &dyn Store, dir: &Path, opts: &MasterOptions) -> Result<Kek, VaultError> {
    unlock_for(store, dir, opts, false)
}

/// [`unlock`]; `rotating` lets a key-file or passphrase master open when the
/// config asks for a token master (the rotation moves it there).
pub(super) fn unlock_for(
    store: &dyn Store,
    dir: &Path,
    opts: &MasterOptions,
    rotating: bool,
) -> Result<Kek, VaultError> {
    let meta = store.key_meta()?;
    if let Some(cv) = &meta.check_value {
        if opts.token_master.is_some() && !is_token_check_value(cv) && !rotating {
            return Err(VaultError::MasterNotInToken);
        }
        let (key, found) = find_master(dir, &meta, opts)?;
        match found {
            Found::New => {
                // The rotation committed; finish it.
                std::fs::rename(opts.new_key_path(dir), opts.key_path(dir))
                    .map_err(|e| VaultError::Io(opts.key_path(dir).display().to_string(), e))?;
                sync_dir(&opts.key_dir(dir))?;
                tracing::warn!("finished an interrupted master-key rotation (new key in place)");
            }
            Found::Current if opts.new_key_path(dir).exists() => {
                // The rotation did not commit: the old key is still the key.
                let new = opts.new_key_path(dir);
                std::fs::remove_file(&new)
                    .map_err(|e| VaultError::Io(new.display().to_string(), e))?;
                tracing::warn!("discarded an interrupted master-key rotation (old key kept)");
            }
            Found::Passphrase if opts.key_path(dir).exists() => {
                // A rotation to a passphrase committed but did not remove the
                // old key file; it opens nothing current.
                let old = opts.key_path(dir);
                std::fs::remove_file(&old)
                    .map_err(|e| VaultError::Io(old.display().to_string(), e))?;
                tracing::warn!(
                    "removed the key file left by an interrupted rotation to a passphrase"
                );
            }
            _ => {}
        }
        return Ok(key);
    }
    // First use: make the master key and record its check value.
    if let Some(source) = &opts.token_master {
        // An AES key the operator made under the label, or a new one.
        let key = match TokenMaster::find_by_label(&source.token, &source.label)
            .map_err(VaultError::TokenMaster)?
        {
            Some(k) => k,
            None => TokenMaster::generate(&source.token, &source.label)
                .map_err(VaultError::TokenMaster)?,
        };
        let meta = KeyMeta {
            check_value: Some(key.stored_check_value().map_err(VaultError::Master)?),
            kdf: None,
        };
        let draft = crate::audit::commit_draft("ca-server", "CreateMasterKey", "master-key");
        store.set_key_meta(&meta, draft)?;
        return Ok(Box::new(key));
    }
    let (key, kdf) = match opts.passphrase()? {
        Some(pass) => {
            if pass.len() < MIN_NEW_PASSPHRASE_LEN {
                return Err(VaultError::ShortPassphrase);
            }
            let params = KdfParams::generate().map_err(VaultError::Master)?;
            let key = MasterKey::from_passphrase(&pass, &params).map_err(VaultError::Master)?;
            (key, Some(params.encode()))
        }
        None => {
            let path = opts.key_path(dir);
            let key = match read_key_file(&path)? {
                // A key file placed by the operator before init.
                Some(k) => k,
                None => {
                    let k = MasterKey::generate().map_err(VaultError::Master)?;
                    write_private(&path, &k.to_bytes())?;
                    sync_dir(&opts.key_dir(dir))?;
                    k
                }
            };
            (key, None)
        }
    };
    let meta = KeyMeta {
        check_value: Some(key.check_value()),
        kdf,
    };
    let draft = crate::audit::commit_draft("ca-server", "CreateMasterKey", "master-key");
    store.set_key_meta(&meta, draft)?;
    Ok(Box::new(key))
}
