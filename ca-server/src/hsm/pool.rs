//! One connection to the token (the initialised module and its slot) and the
//! pool of sessions open on it: an operation checks a session out and gives
//! it back, and a session lost on the way is closed and its place freed.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use cryptoki::context::Pkcs11;
use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use cryptoki::slot::Slot;

use super::{ck, HsmError};

/// How long an operation waits for a free session before it fails.
const CHECKOUT_WAIT: Duration = Duration::from_secs(30);

pub(super) struct Pool {
    pub(super) idle: Vec<Session>,
    pub(super) open: usize,
}

/// A checked-out session. Dropped without [`Held::give_back`] (a lost
/// session, or a panic in the operation) it is closed and its place in the
/// pool freed, so the pool never shrinks for good.
pub(super) struct Held<'a> {
    pub(super) conn: &'a Connection,
    pub(super) session: Option<Session>,
}

impl Held<'_> {
    pub(super) fn give_back(mut self) {
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
pub(super) struct Connection {
    pub(super) ctx: Pkcs11,
    pub(super) slot: Slot,
    pub(super) max_sessions: usize,
    pub(super) pool: Mutex<Pool>,
    pub(super) freed: Condvar,
    /// (object class, CKA_ID) → key handle, valid for this connection only.
    pub(super) handles: Mutex<HashMap<(u64, Vec<u8>), ObjectHandle>>,
}

impl Connection {
    pub(super) fn checkout(&self) -> Result<Session, HsmError> {
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
    pub(super) fn private_key(
        &self,
        session: &Session,
        id: &[u8],
    ) -> Result<ObjectHandle, HsmError> {
        self.key(session, ObjectClass::PRIVATE_KEY, id)
    }

    /// The secret (AES) key with CKA_ID `id`.
    pub(super) fn secret_key(
        &self,
        session: &Session,
        id: &[u8],
    ) -> Result<ObjectHandle, HsmError> {
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
    pub(super) fn close(self) {
        let pool = self.pool.into_inner().unwrap_or_else(|e| e.into_inner());
        drop(pool.idle);
        if let Err(e) = self.ctx.finalize() {
            tracing::debug!(error = %e, "finalising the PKCS#11 module");
        }
    }
}
