//! CA keys in a hardware security module, over PKCS#11 (the `cryptoki` crate).
//!
//! A key made here is generated inside the token as a sensitive,
//! non-extractable private key object: the server keeps only a reference to
//! it ([`TokenKeyRef`]: the key's CKA_ID, its label and its public key) and
//! sends data to be signed. An existing token key can be adopted by label.
//!
//! One [`Token`] holds one logged-in PKCS#11 connection with a pool of
//! sessions sized for the server's workers, so signatures run in parallel.
//! When the token goes away (a network HSM restarts, a USB token is pulled,
//! SoftHSM's token directory vanishes) operations fail with
//! [`HsmError::Unavailable`], which the API answers with 503; the next
//! operation after a short back-off finalises the module, loads it again,
//! logs in again and finds the keys by CKA_ID, so the server recovers without
//! a restart. The PIN is held in a `SecretString` and never logged.

mod encoding;
pub mod master;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock, TryLockError};
use std::time::{Duration, Instant};

use ca_core::keys::{KeyAlgorithm, KeyError, PublicKeyKind, Signer};
use ca_core::signature::SignatureAlgorithm;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use encoding::{ecdsa_raw_to_der, spki_from_ec, spki_from_rsa};

/// The environment variable the token PIN may come from (taken out of the
/// environment at start-up, like the master passphrase).
pub const PIN_ENV: &str = "CA_PKCS11_PIN";

/// How long after a failed reconnection the next one may be tried: requests
/// in between fail at once instead of queueing on a dead module.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);

/// How often a key that is not found may cause a reconnection.
const MISS_RECONNECT_INTERVAL: Duration = Duration::from_secs(5);

/// How long an operation waits for a free session before it fails.
const CHECKOUT_WAIT: Duration = Duration::from_secs(30);

/// The prefix of a token key reference where the store keeps a CA's key
/// (sealed software keys start with their version byte, 1).
const TOKEN_REF_PREFIX: &[u8] = b"PKCS11\0";

#[derive(Debug, thiserror::Error)]
pub enum HsmError {
    #[error("cannot load the PKCS#11 module {module}: {reason}")]
    Module { module: String, reason: String },
    #[error("no token {wanted} in the PKCS#11 module (tokens present: {present})")]
    NoToken { wanted: String, present: String },
    #[error("the token refused the PIN (CKR_PIN_INCORRECT): check pin_file or {PIN_ENV}; repeated wrong PINs lock the token, so the server does not retry")]
    WrongPin,
    #[error("the token's user PIN is locked (CKR_PIN_LOCKED): a security officer must unlock it")]
    PinLocked,
    #[error(
        "no PIN for the token: set pin_file in [pkcs11] or the environment variable {PIN_ENV}"
    )]
    NoPin,
    #[error("reading the token PIN from {0}: {1}")]
    PinFile(String, std::io::Error),
    #[error("the HSM is unavailable: {0}")]
    Unavailable(String),
    #[error("no key {0} in the token")]
    NoSuchKey(String),
    #[error(
        "{count} private keys in the token are labelled {label:?}: give a label that names one key"
    )]
    AmbiguousKey { count: usize, label: String },
    #[error("token key {0:?} may leave the token (CKA_EXTRACTABLE true or CKA_SENSITIVE false): a CA or master key must not; make a non-extractable key")]
    Extractable(String),
    #[error("token key {label:?}: {reason}")]
    Key { label: String, reason: String },
    #[error(
        "the token's key {0} is not the key this CA was created with (its public key differs)"
    )]
    KeyChanged(String),
    #[error("PKCS#11 {0}")]
    Operation(String),
    /// The token would not decrypt: a wrong key or altered data.
    #[error("the token refused to decrypt: wrong key or altered data")]
    Refused,
    /// The connection to the token was lost during an operation (internal:
    /// the operation is retried once on a new connection, then reported as
    /// `Unavailable`).
    #[error("the token connection was lost: {0}")]
    Lost(String),
}

impl HsmError {
    /// Failures that say "the HSM cannot serve now" rather than "this
    /// request or this configuration is wrong".
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            HsmError::Unavailable(_) | HsmError::Lost(_) | HsmError::NoSuchKey(_)
        )
    }
}

/// Errors that mean the session, the login or the module state is gone; the
/// cure is a new connection.
fn is_lost(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::DeviceRemoved
            | RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::ObjectHandleInvalid
            | RvError::KeyHandleInvalid
            | RvError::UserNotLoggedIn
            | RvError::CryptokiNotInitialized
            | RvError::SlotIdInvalid
    )
}

fn ck(what: &str, e: CkError) -> HsmError {
    match e {
        CkError::Pkcs11(rv, _) if is_lost(rv) => HsmError::Lost(format!("{what}: {e}")),
        other => HsmError::Operation(format!("{what}: {other}")),
    }
}

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

    fn id_bytes(&self) -> Result<Vec<u8>, HsmError> {
        ca_core::hex::decode(&self.id).map_err(|_| HsmError::Key {
            label: self.label.clone(),
            reason: "its stored CKA_ID is not hex".into(),
        })
    }

    fn spki_der(&self) -> Result<Vec<u8>, HsmError> {
        ca_core::hex::decode(&self.spki).map_err(|_| HsmError::Key {
            label: self.label.clone(),
            reason: "its stored public key is not hex".into(),
        })
    }
}

struct Pool {
    idle: Vec<Session>,
    open: usize,
}

/// A checked-out session. Dropped without [`Held::give_back`] (a lost
/// session, or a panic in the operation) it is closed and its place in the
/// pool freed, so the pool never shrinks for good.
struct Held<'a> {
    conn: &'a Connection,
    session: Option<Session>,
}

impl Held<'_> {
    fn give_back(mut self) {
        if let Some(s) = self.session.take() {
            self.conn.checkin(s);
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            drop(s);
            self.conn.discard();
        }
    }
}

/// One initialised module, its slot and the sessions open on it.
struct Connection {
    ctx: Pkcs11,
    slot: Slot,
    max_sessions: usize,
    pool: Mutex<Pool>,
    freed: Condvar,
    /// (object class, CKA_ID) → key handle, valid for this connection only.
    handles: Mutex<HashMap<(u64, Vec<u8>), ObjectHandle>>,
}

impl Connection {
    fn checkout(&self) -> Result<Session, HsmError> {
        let deadline = Instant::now() + CHECKOUT_WAIT;
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(s) = pool.idle.pop() {
                return Ok(s);
            }
            if pool.open < self.max_sessions {
                pool.open += 1;
                drop(pool);
                return self.ctx.open_rw_session(self.slot).map_err(|e| {
                    self.discard();
                    ck("opening a session", e)
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HsmError::Unavailable(format!(
                    "all {} token sessions stayed busy for {} s",
                    self.max_sessions,
                    CHECKOUT_WAIT.as_secs()
                )));
            }
            pool = self
                .freed
                .wait_timeout(pool, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    fn checkin(&self, session: Session) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.idle.push(session);
        drop(pool);
        self.freed.notify_one();
    }

    /// A session was lost (or never opened): free its place.
    fn discard(&self) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        pool.open = pool.open.saturating_sub(1);
        drop(pool);
        self.freed.notify_one();
    }

    /// The private key with CKA_ID `id`.
    fn private_key(&self, session: &Session, id: &[u8]) -> Result<ObjectHandle, HsmError> {
        self.key(session, ObjectClass::PRIVATE_KEY, id)
    }

    /// The secret (AES) key with CKA_ID `id`.
    fn secret_key(&self, session: &Session, id: &[u8]) -> Result<ObjectHandle, HsmError> {
        self.key(session, ObjectClass::SECRET_KEY, id)
    }

    fn key(
        &self,
        session: &Session,
        class: ObjectClass,
        id: &[u8],
    ) -> Result<ObjectHandle, HsmError> {
        let slot = (u64::from(class), id.to_vec());
        let cached = self
            .handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&slot)
            .copied();
        if let Some(h) = cached {
            return Ok(h);
        }
        let found = session
            .find_objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])
            .map_err(|e| ck("finding a key", e))?;
        let [h] = found.as_slice() else {
            return Err(HsmError::NoSuchKey(format!(
                "with CKA_ID {} ({} found)",
                ca_core::hex::encode(id),
                found.len()
            )));
        };
        self.handles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(slot, *h);
        Ok(*h)
    }

    /// Close every session and finalise the module, so it can be loaded
    /// afresh. Called with no session checked out (under the write lock).
    fn close(self) {
        let pool = self.pool.into_inner().unwrap_or_else(|e| e.into_inner());
        drop(pool.idle);
        if let Err(e) = self.ctx.finalize() {
            tracing::debug!(error = %e, "finalising the PKCS#11 module");
        }
    }
}

struct State {
    conn: Option<Connection>,
    generation: u64,
    last_failure: Option<(Instant, String)>,
    /// The token refused the PIN on a reconnection: never try it again (a
    /// few wrong PINs lock a token), until the server is restarted.
    pin_refused: bool,
}

/// A logged-in token: the session pool and the reconnection logic.
pub struct Token {
    module: PathBuf,
    token_label: Option<String>,
    slot: Option<u64>,
    max_sessions: usize,
    pin: AuthPin,
    state: RwLock<State>,
    /// When a missing key last made us reconnect (a vanished token looks
    /// like that, but so does a wrong label): at most one such reconnection
    /// per [`MISS_RECONNECT_INTERVAL`].
    last_miss_reconnect: std::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("module", &self.module)
            .field("token", &self.describe())
            .finish_non_exhaustive()
    }
}

impl Token {
    /// Load the module, find the token and log in. A module that does not
    /// load, a wrong or locked PIN are errors here, at start-up. A token that
    /// is not there (unplugged, a network HSM down) is not: the server starts,
    /// CAs whose keys it holds answer 503, and the first request after it
    /// appears connects.
    pub fn open(cfg: &Pkcs11Config, pin: AuthPin) -> Result<Arc<Token>, HsmError> {
        let max_sessions = cfg.sessions.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get() * 2)
                .unwrap_or(4)
                .max(4)
        });
        let token = Token {
            module: cfg.module.clone(),
            token_label: cfg.token_label.clone(),
            slot: cfg.slot,
            max_sessions,
            pin,
            state: RwLock::new(State {
                conn: None,
                generation: 0,
                last_failure: None,
                pin_refused: false,
            }),
            last_miss_reconnect: std::sync::Mutex::new(None),
        };
        match token.connect() {
            Ok(conn) => {
                let mut st = token.state.write().unwrap_or_else(|e| e.into_inner());
                st.conn = Some(conn);
                st.generation = 1;
                drop(st);
                tracing::info!(module = %cfg.module.display(), token = %token.describe(), sessions = max_sessions, "PKCS#11 token opened");
            }
            Err(e @ (HsmError::WrongPin | HsmError::PinLocked | HsmError::Module { .. })) => {
                return Err(e)
            }
            Err(e) => {
                tracing::error!(module = %cfg.module.display(), token = %token.describe(), error = %e,
                    "the PKCS#11 token is unavailable at start: CAs whose keys it holds answer 503 until it is back");
                let mut st = token.state.write().unwrap_or_else(|e| e.into_inner());
                st.last_failure = Some((Instant::now(), e.to_string()));
            }
        }
        Ok(Arc::new(token))
    }

    /// "label \"x\"" or "slot 3", for messages.
    pub fn describe(&self) -> String {
        match (&self.token_label, self.slot) {
            (Some(l), _) => format!("labelled {l:?}"),
            (None, Some(s)) => format!("in slot {s}"),
            (None, None) => "(unnamed)".into(),
        }
    }

    fn connect(&self) -> Result<Connection, HsmError> {
        let module = self.module.display().to_string();
        let ctx = Pkcs11::new(&self.module).map_err(|e| HsmError::Module {
            module: module.clone(),
            reason: e.to_string(),
        })?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => {
                return Err(HsmError::Module {
                    module,
                    reason: e.to_string(),
                })
            }
        }
        let result = self.login(&ctx);
        match result {
            Ok((slot, session)) => Ok(Connection {
                ctx,
                slot,
                max_sessions: self.max_sessions,
                pool: Mutex::new(Pool {
                    idle: vec![session],
                    open: 1,
                }),
                freed: Condvar::new(),
                handles: Mutex::new(HashMap::new()),
            }),
            Err(e) => {
                let _ = ctx.finalize();
                Err(e)
            }
        }
    }

    fn find_slot(&self, ctx: &Pkcs11) -> Result<Slot, HsmError> {
        let slots = ctx
            .get_slots_with_token()
            .map_err(|e| HsmError::Unavailable(format!("listing the module's slots: {e}")))?;
        let mut present = Vec::new();
        for slot in slots {
            let label = ctx
                .get_token_info(slot)
                .map(|i| i.label().trim_end().to_string())
                .unwrap_or_default();
            let hit = match (&self.token_label, self.slot) {
                (Some(want), _) => &label == want,
                (None, Some(id)) => slot.id() == id,
                (None, None) => false,
            };
            if hit {
                return Ok(slot);
            }
            present.push(format!("{label:?} in slot {}", slot.id()));
        }
        Err(HsmError::NoToken {
            wanted: self.describe(),
            present: if present.is_empty() {
                "none".into()
            } else {
                present.join(", ")
            },
        })
    }

    fn login(&self, ctx: &Pkcs11) -> Result<(Slot, Session), HsmError> {
        let slot = self.find_slot(ctx)?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| HsmError::Unavailable(format!("opening a session: {e}")))?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok((slot, session)),
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(HsmError::WrongPin),
            Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(HsmError::PinLocked),
            Err(e) => Err(HsmError::Unavailable(format!("logging in: {e}"))),
        }
    }

    /// Replace the connection of `seen` generation by a new one (unless
    /// another thread already did). Waits for in-flight operations (they hold
    /// the read lock), so the module is finalised with no session in use.
    fn reconnect(&self, seen: u64) -> Result<(), HsmError> {
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        if st.conn.is_some() && st.generation != seen {
            return Ok(());
        }
        if st.pin_refused {
            return Err(HsmError::Unavailable(
                "the token refused the PIN when reconnecting; the server does not try a wrong PIN again (tokens lock after a few): fix the PIN and restart".into(),
            ));
        }
        if let Some((at, why)) = &st.last_failure {
            if at.elapsed() < RECONNECT_BACKOFF && st.conn.is_none() {
                return Err(HsmError::Unavailable(why.clone()));
            }
        }
        if let Some(old) = st.conn.take() {
            old.close();
        }
        let generation = st.generation + 1;
        st.generation = generation;
        match self.connect() {
            Ok(conn) => {
                st.conn = Some(conn);
                if st.last_failure.take().is_some() {
                    tracing::info!(token = %self.describe(), "the PKCS#11 token is back");
                }
                Ok(())
            }
            Err(e) => {
                if matches!(e, HsmError::WrongPin | HsmError::PinLocked) {
                    st.pin_refused = true;
                }
                let why = e.to_string();
                if st.last_failure.is_none() {
                    tracing::error!(token = %self.describe(), error = %why, "the PKCS#11 token is unavailable");
                }
                st.last_failure = Some((Instant::now(), why.clone()));
                Err(HsmError::Unavailable(why))
            }
        }
    }

    /// Run `op` on a pooled session. If the connection turns out to be lost,
    /// reconnect and try once more; a failure then is `Unavailable`. A key
    /// that is not found may mean the token vanished, so it too reconnects,
    /// but at most once per [`MISS_RECONNECT_INTERVAL`]: a wrong label must
    /// not reload the module on every request.
    fn run<T>(
        &self,
        op: impl Fn(&Connection, &Session) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        self.run_with(true, op)
    }

    /// Like [`Token::run`], but never runs `op` twice: for operations that
    /// change the token (making a key), where a retry after a connection
    /// lost mid-way could leave two objects.
    fn run_once<T>(
        &self,
        op: impl Fn(&Connection, &Session) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        self.run_with(false, op)
    }

    fn run_with<T>(
        &self,
        retry: bool,
        op: impl Fn(&Connection, &Session) -> Result<T, HsmError>,
    ) -> Result<T, HsmError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (seen, outcome) = {
                let st = self.state.read().unwrap_or_else(|e| e.into_inner());
                let outcome = match st.conn.as_ref() {
                    None => Err(HsmError::Lost("no connection to the token".into())),
                    Some(conn) => conn.checkout().and_then(|session| {
                        let held = Held {
                            conn,
                            session: Some(session),
                        };
                        let r = match held.session.as_ref() {
                            Some(s) => op(conn, s),
                            None => Err(HsmError::Lost("no session".into())),
                        };
                        // A session that failed as lost is closed (by
                        // dropping `held`); any other outcome returns it.
                        if !matches!(r, Err(HsmError::Lost(_))) {
                            held.give_back();
                        }
                        r
                    }),
                };
                (st.generation, outcome)
            };
            let again = attempt == 1 && retry;
            match outcome {
                Err(HsmError::Lost(why)) => {
                    self.reconnect(seen)?;
                    if !again {
                        return Err(HsmError::Unavailable(if retry {
                            why
                        } else {
                            format!("{why} (the operation was not repeated: check the token for a half-made object)")
                        }));
                    }
                }
                Err(HsmError::NoSuchKey(k)) => {
                    if !again || !self.reconnect_after_miss(seen)? {
                        return Err(HsmError::NoSuchKey(k));
                    }
                }
                other => return other,
            }
        }
    }

    /// Reconnect because a key was not found, unless that was done less
    /// than [`MISS_RECONNECT_INTERVAL`] ago. True if a new connection is up.
    fn reconnect_after_miss(&self, seen: u64) -> Result<bool, HsmError> {
        {
            // Its own lock: a miss that will not reconnect must not wait
            // behind (or hold up) the operations that hold the state.
            let mut last = self
                .last_miss_reconnect
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| at.elapsed() < MISS_RECONNECT_INTERVAL) {
                return Ok(false);
            }
            *last = Some(Instant::now());
        }
        self.reconnect(seen)?;
        Ok(true)
    }

    /// Generate a CA key pair inside the token: private half sensitive and
    /// never extractable, both halves token objects under a fresh CKA_ID.
    pub fn generate(&self, alg: KeyAlgorithm, label: &str) -> Result<TokenKeyRef, HsmError> {
        let mut id = [0u8; 16];
        getrandom::getrandom(&mut id).map_err(|e| HsmError::Operation(format!("CKA_ID: {e}")))?;
        let spki = self.run_once(|_, s| {
            let (mechanism, public) = match alg {
                KeyAlgorithm::EcdsaP256 => (
                    Mechanism::EccKeyPairGen,
                    vec![Attribute::EcParams(encoding::P256_OID_DER.to_vec())],
                ),
                KeyAlgorithm::EcdsaP384 => (
                    Mechanism::EccKeyPairGen,
                    vec![Attribute::EcParams(encoding::P384_OID_DER.to_vec())],
                ),
                KeyAlgorithm::Ed25519 => (
                    Mechanism::EccEdwardsKeyPairGen,
                    vec![Attribute::EcParams(encoding::ED25519_OID_DER.to_vec())],
                ),
                KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                    let bits: u64 = match alg {
                        KeyAlgorithm::Rsa2048 => 2048,
                        KeyAlgorithm::Rsa3072 => 3072,
                        _ => 4096,
                    };
                    (
                        Mechanism::RsaPkcsKeyPairGen,
                        vec![
                            Attribute::ModulusBits(bits.into()),
                            Attribute::PublicExponent(vec![1, 0, 1]),
                        ],
                    )
                }
            };
            let common = [
                Attribute::Token(true),
                Attribute::Id(id.to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
            ];
            let mut public = public;
            public.extend(common.iter().cloned());
            // Signing only: no encryption, wrapping or derivation with a CA key.
            public.extend([
                Attribute::Verify(true),
                Attribute::Encrypt(false),
                Attribute::Wrap(false),
            ]);
            let mut private = common.to_vec();
            private.extend([
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Sign(true),
                Attribute::Decrypt(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
            ]);
            let (pub_handle, _) =
                s.generate_key_pair(&mechanism, &public, &private)
                    .map_err(|e| match e {
                        CkError::Pkcs11(RvError::MechanismInvalid, _)
                        | CkError::Pkcs11(RvError::AttributeValueInvalid, _)
                        | CkError::Pkcs11(RvError::DomainParamsInvalid, _)
                        | CkError::Pkcs11(RvError::CurveNotSupported, _) => HsmError::Key {
                            label: label.into(),
                            reason: format!("the token cannot make {alg} keys ({e})"),
                        },
                        e => ck("generating a key pair", e),
                    })?;
            read_spki(s, pub_handle, label)
        })?;
        Ok(TokenKeyRef {
            label: label.to_string(),
            id: ca_core::hex::encode(&id),
            spki: ca_core::hex::encode(&spki),
        })
    }

    /// Adopt an existing private key by label. It must be the only private
    /// key with that label, sensitive and not extractable, with a CKA_ID, and
    /// its public key object (same CKA_ID) must be in the token.
    pub fn adopt(&self, label: &str) -> Result<TokenKeyRef, HsmError> {
        match self.adopt_once(label) {
            // Some modules (SoftHSM2) show a session only the objects that
            // existed when the module was loaded: an operator's key made
            // since then appears after a reconnection. Adoption is a rare,
            // administrator-only call, so it may always look again.
            Err(HsmError::NoSuchKey(_)) => {
                let seen = self
                    .state
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .generation;
                self.reconnect(seen)?;
                self.adopt_once(label)
            }
            other => other,
        }
    }

    fn adopt_once(&self, label: &str) -> Result<TokenKeyRef, HsmError> {
        self.run(|_, s| {
            let found = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::Label(label.as_bytes().to_vec()),
                ])
                .map_err(|e| ck("finding a key", e))?;
            let private = match found.as_slice() {
                [] => return Err(HsmError::NoSuchKey(format!("pair labelled {label:?}"))),
                [h] => *h,
                many => {
                    return Err(HsmError::AmbiguousKey {
                        count: many.len(),
                        label: label.into(),
                    })
                }
            };
            let attrs = s
                .get_attributes(
                    private,
                    &[
                        AttributeType::Id,
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::Sign,
                    ],
                )
                .map_err(|e| ck("reading the key's attributes", e))?;
            let mut id = Vec::new();
            let (mut sensitive, mut extractable, mut sign) = (false, true, false);
            for a in attrs {
                match a {
                    Attribute::Id(v) => id = v,
                    Attribute::Sensitive(v) => sensitive = v,
                    Attribute::Extractable(v) => extractable = v,
                    Attribute::Sign(v) => sign = v,
                    _ => {}
                }
            }
            if !sensitive || extractable {
                return Err(HsmError::Extractable(label.into()));
            }
            if !sign {
                return Err(HsmError::Key {
                    label: label.into(),
                    reason: "it may not sign (CKA_SIGN false)".into(),
                });
            }
            if id.is_empty() {
                return Err(HsmError::Key {
                    label: label.into(),
                    reason: "it has no CKA_ID, by which the server finds it".into(),
                });
            }
            let publics = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                    Attribute::Id(id.clone()),
                ])
                .map_err(|e| ck("finding the public key", e))?;
            let [public] = publics.as_slice() else {
                return Err(HsmError::Key {
                    label: label.into(),
                    reason: format!(
                        "{} public key objects share its CKA_ID; the server needs exactly one",
                        publics.len()
                    ),
                });
            };
            let spki = read_spki(s, *public, label)?;
            Ok(TokenKeyRef {
                label: label.to_string(),
                id: ca_core::hex::encode(&id),
                spki: ca_core::hex::encode(&spki),
            })
        })
    }

    /// A signer for a stored key reference: the token's public key must be
    /// the stored one.
    pub fn signer(self: &Arc<Self>, key: &TokenKeyRef) -> Result<TokenSigner, HsmError> {
        let id = key.id_bytes()?;
        let spki = key.spki_der()?;
        let kind = PublicKeyKind::from_spki_der(&spki).map_err(|e| HsmError::Key {
            label: key.label.clone(),
            reason: e.to_string(),
        })?;
        let found = self.run(|conn, s| {
            conn.private_key(s, &id)?;
            let publics = s
                .find_objects(&[
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                    Attribute::Id(id.clone()),
                ])
                .map_err(|e| ck("finding the public key", e))?;
            match publics.first() {
                Some(h) => read_spki(s, *h, &key.label).map(Some),
                None => Ok(None),
            }
        })?;
        // A token that keeps no public key object still signs; the check
        // after every signature then catches a changed key.
        if let Some(found) = found {
            if found != spki {
                return Err(HsmError::KeyChanged(key.label.clone()));
            }
        }
        Ok(TokenSigner {
            token: self.clone(),
            label: key.label.clone(),
            id,
            algorithm: SignatureAlgorithm::default_for(kind),
            spki,
        })
    }

    /// Whether a connection is up (for health reporting). Never waits: while
    /// a reconnection holds the state, the token counts as not connected.
    pub fn is_connected(&self) -> bool {
        match self.state.try_read() {
            Ok(st) => st.conn.is_some(),
            Err(TryLockError::Poisoned(p)) => p.into_inner().conn.is_some(),
            Err(TryLockError::WouldBlock) => false,
        }
    }

    /// The session pool's size.
    pub fn sessions_max(&self) -> usize {
        self.max_sessions
    }

    /// Sessions open now (for health and tests); 0 while reconnecting.
    pub fn sessions_open(&self) -> usize {
        let open = |st: &State| {
            st.conn
                .as_ref()
                .map(|c| c.pool.lock().map(|p| p.open).unwrap_or(0))
                .unwrap_or(0)
        };
        match self.state.try_read() {
            Ok(st) => open(&st),
            Err(TryLockError::Poisoned(p)) => open(&p.into_inner()),
            Err(TryLockError::WouldBlock) => 0,
        }
    }
}

/// The public key of a token public-key object, as DER SubjectPublicKeyInfo.
fn read_spki(s: &Session, public: ObjectHandle, label: &str) -> Result<Vec<u8>, HsmError> {
    let attrs = s
        .get_attributes(
            public,
            &[
                AttributeType::EcParams,
                AttributeType::EcPoint,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ],
        )
        .map_err(|e| ck("reading the public key", e))?;
    let (mut params, mut point, mut modulus, mut exponent) = (None, None, None, None);
    for a in attrs {
        match a {
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            Attribute::Modulus(v) => modulus = Some(v),
            Attribute::PublicExponent(v) => exponent = Some(v),
            _ => {}
        }
    }
    let bad = |reason: String| HsmError::Key {
        label: label.into(),
        reason,
    };
    let spki = match (params, point, modulus, exponent) {
        (Some(params), Some(point), _, _) => spki_from_ec(&params, &point),
        (_, _, Some(n), Some(e)) => spki_from_rsa(&n, &e),
        _ => Err("its public key is neither EC nor RSA".to_string()),
    }
    .map_err(bad)?;
    PublicKeyKind::from_spki_der(&spki).map_err(|e| HsmError::Key {
        label: label.into(),
        reason: e.to_string(),
    })?;
    Ok(spki)
}

/// A CA key in the token, behind `ca_core::Signer`.
pub struct TokenSigner {
    token: Arc<Token>,
    label: String,
    id: Vec<u8>,
    algorithm: SignatureAlgorithm,
    spki: Vec<u8>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("label", &self.label)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

impl Signer for TokenSigner {
    fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    fn signature_algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        use aws_lc_rs::digest;
        // Hash here and send the digest: the same for every token, and a
        // network HSM receives 32 bytes instead of the whole TBS.
        let (input, ecdsa) = match self.algorithm {
            SignatureAlgorithm::EcdsaSha256 => (
                digest::digest(&digest::SHA256, message).as_ref().to_vec(),
                true,
            ),
            SignatureAlgorithm::EcdsaSha384 => (
                digest::digest(&digest::SHA384, message).as_ref().to_vec(),
                true,
            ),
            SignatureAlgorithm::RsaPkcs1Sha256 => (
                [
                    SHA256_DIGEST_INFO.as_slice(),
                    digest::digest(&digest::SHA256, message).as_ref(),
                ]
                .concat(),
                false,
            ),
            SignatureAlgorithm::Ed25519 => (message.to_vec(), false),
            other => {
                return Err(KeyError::UnsupportedAlgorithm(format!(
                    "{other:?} with a token key"
                )))
            }
        };
        let algorithm = self.algorithm;
        let raw = self
            .token
            .run(|conn, s| {
                let key = conn.private_key(s, &self.id)?;
                let mechanism = match algorithm {
                    SignatureAlgorithm::Ed25519 => {
                        Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure))
                    }
                    SignatureAlgorithm::RsaPkcs1Sha256 => Mechanism::RsaPkcs,
                    _ => Mechanism::Ecdsa,
                };
                s.sign(&mechanism, key, &input)
                    .map_err(|e| ck("signing", e))
            })
            .map_err(|e| {
                if e.is_unavailable() {
                    KeyError::Unavailable(e.to_string())
                } else {
                    tracing::error!(key = %self.label, error = %e, "the token did not sign");
                    KeyError::Signing
                }
            })?;
        let signature = if ecdsa {
            ecdsa_raw_to_der(&raw).map_err(|_| KeyError::Signing)?
        } else {
            raw
        };
        // Check every signature the token returns against the key the CA
        // was made with: a faulty or swapped token key never reaches a
        // certificate, a CRL or an OCSP response.
        let spki = <x509_cert::spki::SubjectPublicKeyInfoRef as der::Decode>::from_der(&self.spki)
            .map_err(|_| KeyError::Malformed("stored public key"))?;
        if ca_core::signature::verify_with(&spki, self.algorithm, message, &signature).is_err() {
            tracing::error!(key = %self.label, "the token's signature does not verify with the CA's public key");
            return Err(KeyError::Signing);
        }
        Ok(signature)
    }
}
