//! The errors of the token layer, and how a cryptoki error becomes one: the
//! return values that mean the session, the login or the module is gone are
//! told apart (`Lost`), so the operation can be retried on a new connection.

use cryptoki::error::{Error as CkError, RvError};

use super::PIN_ENV;

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

pub(super) fn ck(what: &str, e: CkError) -> HsmError {
    match e {
        CkError::Pkcs11(rv, _) if is_lost(rv) => HsmError::Lost(format!("{what}: {e}")),
        other => HsmError::Operation(format!("{what}: {other}")),
    }
}
