//! X.509 times (UTCTime / GeneralizedTime) as `time` values.

use time::OffsetDateTime;
use x509_cert::time::Time;

/// An X.509 time as an `OffsetDateTime`. Every value `der` decodes lies within
/// 1970..=9999, so the clamps below never fire on decoded input.
pub(crate) fn from_x509_time(t: &Time) -> OffsetDateTime {
    let secs = i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
