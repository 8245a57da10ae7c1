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
//! a restart. The PIN is held as cryptoki's `AuthPin` (a `secrecy::SecretString`)
//! and never logged.

mod config;
mod encoding;
mod error;
mod keys;
pub mod master;
mod pool;
mod signer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, RwLock, TryLockError};
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

pub use config::{ForbiddenPin, Pkcs11Config, TokenKeyRef};
pub use encoding::{ecdsa_raw_to_der, spki_from_ec, spki_from_rsa};
pub use error::HsmError;
pub use signer::TokenSigner;

use error::ck;
use pool::{Connection, Held, Pool};

/// The environment variable the token PIN may come from (taken out of the
/// environment at start-up, like the master passphrase).
pub const PIN_ENV: &str = "CA_PKCS11_PIN";

/// How long after a failed reconnection the next one may be tried: requests
/// in between fail at once instead of queueing on a dead module.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);

/// How often a key that is not found may cause a reconnection.
const MISS_RECONNECT_INTERVAL: Duration = Duration::from_secs(5);

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
