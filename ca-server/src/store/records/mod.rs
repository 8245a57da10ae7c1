//! The records the store keeps and the values its operations take and give.
//! Backend-neutral: a backend decides how they are laid out, not what they are.
//! By family, in `cas`, `certs`, `crl`, `audit`, `events` and `acme`, each
//! re-exported here (and so from `store`); what a commit changed and who is
//! told of it are here.

mod acme;
mod audit;
mod cas;
mod certs;
mod crl;
mod events;

pub use self::acme::*;
pub use self::audit::*;
pub use self::cas::*;
pub use self::certs::*;
pub use self::crl::*;
pub use self::events::*;

use std::sync::Arc;

/// What a commit changed, told to subscribers after it is durable (CRL
/// dirty marks, OCSP and policy caches), whether or not the request that
/// caused it is still waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    Revoked {
        ca_id: String,
        serial: String,
    },
    CaChanged {
        ca_id: String,
    },
    AliasChanged {
        alias: String,
    },
    PolicyChanged {
        id: String,
    },
    /// A CRL was published (by this node or another): serve the newest.
    CrlPublished {
        ca_id: String,
        number: u64,
    },
    /// Other nodes' changes may have been missed (a shared store lost and
    /// regained its notifications): drop everything cached from the store.
    Resync,
}

/// Called on the committing thread after each durable commit; must be quick.
pub type CommitHook = Arc<dyn Fn(&Committed) + Send + Sync>;

/// Told of each commit attempt: how long it took and how many writes it carried.
pub type CommitObserver = Arc<dyn Fn(std::time::Duration, usize) + Send + Sync>;

/// Stored policy statements: (statement id, JSON).
pub type PolicyRows = Vec<(String, Vec<u8>)>;
