//! Wall-clock time and its RFC 3339 form, in one place, so tests can see
//! where "now" comes from.

use time::OffsetDateTime;

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Unix seconds as RFC 3339 UTC (empty for a time outside the calendar).
pub fn fmt_unix(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .map(ca_core::fmt_time)
        .unwrap_or_default()
}
