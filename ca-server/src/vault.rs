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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ca_core::envelope::{self, EnvelopeError, KdfParams, KeyEncryptionKey, MasterKey, SealedKey};
use ca_core::keys::{KeyError, Signer, SoftwareKey};
use zeroize::Zeroizing;

use crate::hsm::master::{is_token_check_value, parse_check_value, TokenMaster};
use crate::hsm::{Token, TokenKeyRef};
use crate::ids::is_ca_id;
pub use crate::store::KeyMeta;
use crate::store::{Store, StoreError};

pub const MASTER_KEY_FILE: &str = "master.key";
pub const PASSPHRASE_ENV: &str = "CA_MASTER_PASSPHRASE";
/// Shortest passphrase accepted for a new master key (Argon2id slows
/// guessing; it cannot make a short passphrase long).
pub const MIN_NEW_PASSPHRASE_LEN: usize = 12;

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
    fn new_key_path(&self, dir: &Path) -> PathBuf {
        let mut name = self.key_path(dir).into_os_string();
        name.push(".new");
        PathBuf::from(name)
    }

    /// The directory holding the key file (synced after it changes).
    fn key_dir(&self, dir: &Path) -> PathBuf {
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

/// Write a file readable by its owner only, durably.
fn write_private(path: &Path, data: &[u8]) -> Result<(), VaultError> {
    crate::files::write_private(path, data)
        .map_err(|e| VaultError::Io(path.display().to_string(), e))
}

fn sync_dir(dir: &Path) -> Result<(), VaultError> {
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
enum Found {
    Current,
    /// `master.key.new`: a rotation committed but did not rename the file.
    New,
    Passphrase,
    /// An AES key in the PKCS#11 token.
    Token,
}

/// Find the master key that matches the stored check value. Reads only.
fn find_master(
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
fn find_token_master(check_value: &str, opts: &MasterOptions) -> Result<TokenMaster, VaultError> {
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
/// wrong key changes nothing. Returns `false` when the check could not be made
/// read-only (a database that needs crash recovery); [`unlock`] checks again.
pub fn precheck(dir: &Path, opts: &MasterOptions) -> Result<bool, VaultError> {
    precheck_for(dir, opts, false)
}

fn precheck_for(dir: &Path, opts: &MasterOptions, rotating: bool) -> Result<bool, VaultError> {
    if crate::store::is_postgres(dir) && !rotating {
        // A shared database: the server checks the key once it is open.
        return Ok(false);
    }
    if !crate::store::exists(dir) && !crate::store::is_postgres(dir) {
        return Ok(true);
    }
    let store = match crate::store::open_offline(dir, false) {
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
fn unlock_for(
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
/// At start, [`unlock`] picks whichever file matches the committed check value.
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
