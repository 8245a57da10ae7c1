//! LEB128 varints and zigzag signed integers, as the redb store's compact
//! encodings ([`codec`](super::codec), [`der_pack`](super::der_pack)) write
//! them.

/// Append `v` as a varint.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Take a varint off the front of `b`; the error names what is wrong.
pub fn take(b: &mut &[u8]) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = b.split_first().ok_or("truncated")?;
        *b = rest;
        v |= u64::from(byte & 0x7f).checked_shl(shift).ok_or("varint")?;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long")
}

/// A signed integer as an unsigned one, small magnitudes staying small.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}
