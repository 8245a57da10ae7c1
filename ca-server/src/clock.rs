//! Wall-clock time and its RFC 3339 form, in one place, so tests can see
//! where "now" comes from — and replace it: the authority reads the time
//! through a [`Clock`] it is given, so a test can fix "now" and check the
//! dates it puts in certificates and records.

use std::sync::Arc;

use time::OffsetDateTime;

/// Where the authority reads the time.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

/// The system clock (what the server runs on).
pub fn system() -> Clock {
    Arc::new(now)
}

/// A clock that always reads `t` (tests).
pub fn fixed(t: OffsetDateTime) -> Clock {
    Arc::new(move || t)
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Unix seconds as RFC 3339 UTC (empty for a time outside the calendar).
pub fn fmt_unix(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .map(ca_core::fmt_time)
        .unwrap_or_default()
}
