//! Certificate serial numbers: 128 random bits, positive, printed in lower-case hex.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SerialError {
    #[error("the random number generator failed")]
    Rng,
    #[error("serial {0:?} is not 1 to 20 octets of hex")]
    Malformed(String),
}

/// A positive serial number, kept as its minimal big-endian magnitude.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// 128 bits from a CSPRNG, top bit cleared so the INTEGER is positive
    /// without a padding byte. A zero value (probability 2^-127) is redrawn.
    /// The CSPRNG is AWS-LC's (seeded from the OS, reseeded, fork-safe: the
    /// one the signatures' nonces come from), not a system call per serial.
    pub fn random() -> Result<Serial, SerialError> {
        loop {
            let mut b = [0u8; 16];
            aws_lc_rs::rand::fill(&mut b).map_err(|_| SerialError::Rng)?;
            b[0] &= 0x7f;
            let s = Serial::from_bytes(&b);
            if !s.0.is_empty() {
                return Ok(s);
            }
        }
    }

    /// 48 bits of time (milliseconds since 1970, big-endian), a 16-bit
    /// counter, then 64 bits from the CSPRNG: as unpredictable as CA/B BR
    /// 7.1 asks (at least 64 random bits, non-sequential), and ordered by
    /// time, so a store keyed by serial appends new certificates at the end
    /// of its indexes instead of dirtying a random page of each per
    /// certificate. The counter makes the serials one process draws strictly
    /// ascending, also within a millisecond: a B-tree then fills its last
    /// page before starting the next, rather than splitting it in half for
    /// a key that lands just before the end. The time is public in the
    /// certificate anyway (notBefore). Positive with no padding byte until
    /// the year 6429; a time before 1970 counts as 1970.
    pub fn time_ordered(now: time::OffsetDateTime) -> Result<Serial, SerialError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        /// The last (milliseconds << 16 | counter) handed out by this process.
        static LAST: AtomicU64 = AtomicU64::new(0);
        let millis = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        let wanted = (millis & ((1 << 47) - 1)) << 16;
        // More than 65,536 serials in one millisecond borrow the next one.
        let prefix = match LAST.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(wanted.max(last.wrapping_add(1)))
        }) {
            Ok(last) | Err(last) => wanted.max(last.wrapping_add(1)),
        };
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&prefix.to_be_bytes());
        aws_lc_rs::rand::fill(&mut b[8..]).map_err(|_| SerialError::Rng)?;
        b[0] &= 0x7f;
        if b.iter().all(|x| *x == 0) {
            // Only at the epoch with all-zero randomness: draw a random one.
            return Serial::random();
        }
        Ok(Serial::from_bytes(&b))
    }

    /// From big-endian magnitude bytes (leading zeros are dropped).
    pub fn from_bytes(bytes: &[u8]) -> Serial {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        Serial(bytes[start..].to_vec())
    }

    /// Big-endian magnitude, no leading zero bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Parse lower- or upper-case hex (colons allowed), 1..=20 octets, non-zero.
    pub fn from_hex(s: &str) -> Result<Serial, SerialError> {
        let bad = || SerialError::Malformed(s.chars().take(64).collect());
        let clean: String = s.chars().filter(|c| *c != ':').collect();
        if clean.is_empty() || clean.len() > 40 || !clean.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let padded = if clean.len() % 2 == 1 {
            format!("0{clean}")
        } else {
            clean
        };
        let mut bytes = Vec::with_capacity(padded.len() / 2);
        for pair in padded.as_bytes().chunks(2) {
            let hi = (pair[0] as char).to_digit(16).ok_or_else(bad)?;
            let lo = (pair[1] as char).to_digit(16).ok_or_else(bad)?;
            bytes.push((hi * 16 + lo) as u8);
        }
        let serial = Serial::from_bytes(&bytes);
        if serial.0.is_empty() {
            return Err(bad());
        }
        Ok(serial)
    }

    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    pub(crate) fn to_x509(&self) -> Result<x509_cert::serial_number::SerialNumber, der::Error> {
        x509_cert::serial_number::SerialNumber::new(&self.0)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ordered_serials_ascend_and_keep_64_random_bits() {
        let t = time::macros::datetime!(2026-12-03 10:00:00 UTC);
        let a = Serial::time_ordered(t).unwrap();
        assert_eq!(a.as_bytes().len(), 16);
        assert_eq!(a.to_hex().len(), 32);
        // Same millisecond: still strictly ascending, different random tails.
        let b = Serial::time_ordered(t).unwrap();
        assert!(a.to_hex() < b.to_hex(), "{a:?} {b:?}");
        assert_ne!(a.as_bytes()[8..], b.as_bytes()[8..]);
        // A later time (far past anything another test drew in this process)
        // is the first 48 bits, with the counter at zero.
        let later = time::macros::datetime!(2100-01-01 00:00:00 UTC);
        let c = Serial::time_ordered(later).unwrap();
        let millis = (later.unix_timestamp_nanos() / 1_000_000) as u64;
        assert_eq!(c.as_bytes()[..6], millis.to_be_bytes()[2..]);
        assert_eq!(c.as_bytes()[6..8], [0, 0]);
        assert!(b.to_hex() < c.to_hex());
        // An earlier clock (stepped back) never goes below the last serial.
        let d = Serial::time_ordered(t).unwrap();
        assert!(c.to_hex() < d.to_hex());
        // Positive without padding: the top bit is clear.
        assert!(a.as_bytes()[0] & 0x80 == 0 && a.as_bytes()[0] != 0);
        assert!(d.as_bytes()[0] & 0x80 == 0);
    }

    #[test]
    fn random_serials_are_positive_and_distinct() {
        let a = Serial::random().unwrap();
        let b = Serial::random().unwrap();
        assert_ne!(a, b);
        assert!(a.as_bytes().len() <= 16 && a.as_bytes()[0] & 0x80 == 0);
    }

    #[test]
    fn hex_round_trip() {
        let s = Serial::from_hex("00:0A:ff").unwrap();
        assert_eq!(s.to_hex(), "0aff");
        assert!(Serial::from_hex("").is_err());
        assert!(Serial::from_hex("00").is_err());
        assert!(Serial::from_hex("zz").is_err());
        assert!(Serial::from_hex(&"1".repeat(41)).is_err());
    }
}
