//! Hexadecimal forms of bytes: the one implementation for serials, key
//! identifiers and fingerprints across the workspace.

const LOWER: &[u8; 16] = b"0123456789abcdef";
const UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Lower-case hex, no separators: the API's form of serials and fingerprints.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    encode_into(bytes, &mut out);
    out
}

/// [`encode`], appended to `out` (no allocation of its own: the store's
/// record decoding makes several of these per certificate).
pub fn encode_into(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(LOWER[usize::from(b >> 4)]));
        out.push(char::from(LOWER[usize::from(b & 0x0f)]));
    }
}

/// Upper-case hex separated by colons, the way openssl and browsers show
/// fingerprints, so a person can compare them by eye.
pub fn colon_separated(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(char::from(UPPER[usize::from(b >> 4)]));
        out.push(char::from(UPPER[usize::from(b & 0x0f)]));
    }
    out
}

/// Hex of either case, no separators, an even number of digits.
pub fn decode(text: &str) -> Result<Vec<u8>, InvalidHex> {
    let mut out = Vec::with_capacity(text.len() / 2);
    decode_into(text, &mut out)?;
    Ok(out)
}

/// [`decode`], appended to `out`; on an error `out` is as it was.
pub fn decode_into(text: &str, out: &mut Vec<u8>) -> Result<(), InvalidHex> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(InvalidHex);
    }
    let start = out.len();
    // Filled in place, not pushed byte by byte: the store's records decode
    // a dozen digests and serials per certificate.
    out.resize(start + digits.len() / 2, 0);
    for (slot, pair) in out[start..].iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
        if (hi | lo) & 0xf0 != 0 {
            out.truncate(start);
            return Err(InvalidHex);
        }
        *slot = hi << 4 | lo;
    }
    Ok(())
}

/// Each byte's value as a hex digit of either case; 0xff for a non-digit.
const NIBBLE: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not hexadecimal")]
pub struct InvalidHex;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(colon_separated(&[0x00, 0x0f, 0xa5, 0xff]), "00:0F:A5:FF");
        assert_eq!(colon_separated(&[0xab]), "AB");
        assert_eq!(decode("000fA5ff"), Ok(vec![0x00, 0x0f, 0xa5, 0xff]));
        assert_eq!(decode("abc"), Err(InvalidHex));
        assert_eq!(decode("zz"), Err(InvalidHex));
        for bad in ["g0", "0G", "/0", ":0", "@0", "`0", " 0", "0\u{e9}"] {
            assert_eq!(decode(bad), Err(InvalidHex), "{bad:?}");
        }
        assert_eq!(
            decode("0123456789abcdefABCDEF"),
            Ok(vec![
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xab, 0xcd, 0xef
            ])
        );
        let mut out = vec![7];
        assert_eq!(decode_into("0aFF", &mut out), Ok(()));
        assert_eq!(out, [7, 0x0a, 0xff]);
        assert_eq!(decode_into("0ag0", &mut out), Err(InvalidHex));
        assert_eq!(out, [7, 0x0a, 0xff], "a refused decode appends nothing");
        let mut text = String::from("x");
        encode_into(&[0xab, 0x01], &mut text);
        assert_eq!(text, "xab01");
    }
}
