//! A minimal DER TLV walker, used only to slice out the exact bytes of the
//! to-be-signed part, names and the SPKI: signatures cover the bytes as sent, so
//! re-encoding a decoded structure could verify something other than what was signed.

// DER tags the hand-written readers and writers use.
pub(crate) const TAG_INTEGER: u8 = 0x02;
pub(crate) const TAG_BIT_STRING: u8 = 0x03;
pub(crate) const TAG_NULL: u8 = 0x05;
pub(crate) const TAG_OID: u8 = 0x06;
pub(crate) const TAG_SEQUENCE: u8 = 0x30;
pub(crate) const TAG_UTC_TIME: u8 = 0x17;
pub(crate) const TAG_GENERALIZED_TIME: u8 = 0x18;

/// One TLV: its tag byte, the whole encoding, and the contents.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub whole: &'a [u8],
    pub content: &'a [u8],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TlvError {
    #[error("truncated DER")]
    Truncated,
    #[error("multi-octet tags are not used here")]
    MultiOctetTag,
    #[error("indefinite or oversized DER length")]
    BadLength,
    #[error("non-minimal DER length")]
    NonMinimalLength,
}

/// Read one DER TLV (one-octet tag, minimal definite length of at most 4
/// octets) from the start of `input`, returning it and the rest.
pub(crate) fn read_tlv(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), TlvError> {
    let (&tag, rest) = input.split_first().ok_or(TlvError::Truncated)?;
    // Multi-octet tags never occur in the certificate and CRL fields read here.
    if tag & 0x1f == 0x1f {
        return Err(TlvError::MultiOctetTag);
    }
    let (&first, mut rest) = rest.split_first().ok_or(TlvError::Truncated)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(TlvError::BadLength);
        }
        let (octets, after) = rest.split_at_checked(n).ok_or(TlvError::Truncated)?;
        rest = after;
        if len_is_non_minimal(octets) {
            return Err(TlvError::NonMinimalLength);
        }
        octets
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let (content, rest) = rest.split_at_checked(len).ok_or(TlvError::Truncated)?;
    let whole = &input[..input.len() - rest.len()];
    Ok((
        Tlv {
            tag,
            whole,
            content,
        },
        rest,
    ))
}

/// A long-form length that a shorter encoding could carry (X.690 10.1).
fn len_is_non_minimal(octets: &[u8]) -> bool {
    match octets {
        [only] => *only < 0x80,
        [first, ..] => *first == 0,
        [] => true,
    }
}

// DER writing: lengths are computed before writing, so a buffer can be
// allocated once at its final size.

/// Octets a definite length of `len` takes (X.690 8.1.3).
pub(crate) fn len_of_len(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        // Long form: one octet for the count, then the minimal big-endian length.
        1 + (usize::BITS - len.leading_zeros()).div_ceil(8) as usize
    }
}

/// Octets a TLV with `content_len` octets of contents takes.
pub(crate) fn tlv_len(content_len: usize) -> usize {
    1 + len_of_len(content_len) + content_len
}

/// Append a one-octet `tag` and the minimal definite length `len`.
pub(crate) fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let n = len_of_len(len) - 1;
        out.push(0x80 | n as u8);
        for i in (0..n).rev() {
            out.push((len >> (8 * i)) as u8);
        }
    }
}

/// The raw pieces of a certificate that signatures and name comparison need.
pub(crate) struct RawCert<'a> {
    pub tbs: &'a [u8],
    pub issuer: &'a [u8],
    pub subject: &'a [u8],
    /// The TBS's `signature` AlgorithmIdentifier and the certificate's
    /// `signatureAlgorithm`, whole: in DER, equal values are equal bytes.
    pub tbs_signature: &'a [u8],
    pub signature_algorithm: &'a [u8],
}

/// Slice a DER certificate into its raw TBS, issuer, subject and algorithm
/// encodings (checking an SPKI follows them).
pub(crate) fn raw_cert(der: &[u8]) -> Option<RawCert<'_>> {
    let read_tlv = |input| read_tlv(input).ok();
    let (outer, trailing) = read_tlv(der)?;
    if outer.tag != 0x30 || !trailing.is_empty() {
        return None;
    }
    let (tbs, after_tbs) = read_tlv(outer.content)?;
    let (signature_algorithm, _) = read_tlv(after_tbs)?;
    if tbs.tag != 0x30 {
        return None;
    }
    let mut rest = tbs.content;
    let (mut item, mut next) = read_tlv(rest)?;
    if item.tag == 0xa0 {
        rest = next;
        (item, next) = read_tlv(rest)?;
    }
    // serial
    let _ = item;
    let (tbs_signature, next2) = read_tlv(next)?;
    let (issuer, next3) = read_tlv(next2)?;
    let (_validity, next4) = read_tlv(next3)?;
    let (subject, next5) = read_tlv(next4)?;
    let (_spki, _) = read_tlv(next5)?;
    Some(RawCert {
        tbs: tbs.whole,
        issuer: issuer.whole,
        subject: subject.whole,
        tbs_signature: tbs_signature.whole,
        signature_algorithm: signature_algorithm.whole,
    })
}

/// Hand `check` `der` with the byte at each of `places` flipped by each of
/// `flips`, and with it dropped.
#[cfg(test)]
pub(crate) fn corrupt(
    der: &[u8],
    places: impl Iterator<Item = usize>,
    flips: &[u8],
    check: &mut impl FnMut(&[u8]),
) {
    let mut bad = der.to_vec();
    for at in places {
        for flip in flips {
            bad[at] ^= flip;
            check(&bad);
            bad[at] ^= flip;
        }
        let mut shorter = der.to_vec();
        shorter.remove(at);
        check(&shorter);
    }
}

/// A DER TLV of any length.
#[cfg(test)]
pub(crate) fn encode_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len().to_be_bytes();
    match content.len() {
        n if n < 0x80 => out.push(n as u8),
        _ => {
            let skip = len.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (len.len() - skip) as u8);
            out.extend_from_slice(&len[skip..]);
        }
    }
    out.extend_from_slice(content);
    out
}

/// `der` with the adjacent encodings `first` then `second` (found where they
/// first lie together) put in the other order: a SET OF out of DER's order.
#[cfg(test)]
pub(crate) fn swap_adjacent(der: &[u8], first: &[u8], second: &[u8]) -> Vec<u8> {
    let together = [first, second].concat();
    let at = der
        .windows(together.len())
        .position(|w| w == together.as_slice())
        .expect("the two encodings lie together, in this order");
    let mut out = der.to_vec();
    out[at..at + together.len()].copy_from_slice(&[second, first].concat());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers as der writes them, at every length form's edges.
    #[test]
    fn push_header_writes_what_der_writes() {
        use der::Encode;
        for len in [
            0usize, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x1_0000, 0xff_ffff, 0x100_0000,
        ] {
            let mut ours = Vec::new();
            push_header(&mut ours, TAG_SEQUENCE, len);
            let theirs = der::Header::new(der::Tag::Sequence, len)
                .unwrap()
                .to_der()
                .unwrap();
            assert_eq!(ours, theirs, "length {len:#x}");
            assert_eq!(len_of_len(len), ours.len() - 1, "length {len:#x}");
            assert_eq!(tlv_len(len), ours.len() + len, "length {len:#x}");
        }
    }

    #[test]
    fn reads_short_and_long_lengths() {
        let (t, rest) = read_tlv(&[0x04, 0x01, 0xaa, 0xff]).unwrap();
        assert_eq!(t.content, &[0xaa]);
        assert_eq!(rest, &[0xff]);
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend(std::iter::repeat_n(0u8, 0x80));
        let (t, rest) = read_tlv(&long).unwrap();
        assert_eq!(t.content.len(), 0x80);
        assert!(rest.is_empty());
    }

    #[test]
    fn rejects_truncated_and_non_minimal() {
        assert_eq!(
            read_tlv(&[0x30, 0x05, 0x00]).unwrap_err(),
            TlvError::Truncated
        );
        assert_eq!(read_tlv(&[0x30]).unwrap_err(), TlvError::Truncated);
        assert_eq!(
            read_tlv(&[0x30, 0x85, 0, 0, 0, 0, 1]).unwrap_err(),
            TlvError::BadLength
        );
        assert_eq!(
            read_tlv(&[0x04, 0x81, 0x01, 0xaa]).unwrap_err(),
            TlvError::NonMinimalLength
        );
        assert_eq!(
            read_tlv(&[0x04, 0x82, 0x00, 0x80]).unwrap_err(),
            TlvError::NonMinimalLength
        );
        assert_eq!(
            read_tlv(&[0x1f, 0x01, 0x00]).unwrap_err(),
            TlvError::MultiOctetTag
        );
    }
}
