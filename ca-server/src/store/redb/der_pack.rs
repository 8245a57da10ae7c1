//! Certificates kept as their difference from one certificate of the same CA.
//!
//! Two certificates from one CA share most of their bytes: the issuer's
//! name, the algorithm identifiers, the key identifier of the issuer, the
//! CRL and OCSP addresses, the extensions a profile sets. Only the serial,
//! the dates, the subject and its names, the public key and the signature
//! differ. So the store keeps, per CA, one certificate whole (its
//! *dictionary*, written once and never changed) and every other
//! certificate as literal bytes and copies out of the dictionary: about a
//! third of the DER's size. One pass over the certificate with a small hash
//! table to pack, a copy loop to unpack.
//!
//! Layout of a packed value: [`PACKED`], the dictionary's number, the
//! certificate's length, then runs of one token byte (high half: the
//! literal's length, low half: the copy's length less 4; 15 means a varint
//! with the rest follows), the literal's bytes and, unless they reached the
//! length, the copy's offset in the dictionary as a signed (zigzag) varint
//! from where the previous copy ended. A value kept whole is its bytes as
//! they are (a certificate starts with the DER SEQUENCE tag, 0x30), or
//! [`ESCAPED`] and its bytes when they start with [`PACKED`] or [`ESCAPED`].

use std::borrow::Cow;

use super::varint;
use crate::store::StoreError;

/// The first byte of a packed certificate.
pub const PACKED: u8 = 1;
/// The first byte of a whole value that would otherwise read as packed.
const ESCAPED: u8 = 2;
/// A certificate smaller than this makes a poor dictionary.
const MIN_DICT: usize = 64;
/// Shorter copies cost about as much as the literal bytes they replace.
const MIN_COPY: usize = 4;
/// Bits of the match finder's hash (its table has 2^HASH_BITS slots).
const HASH_BITS: u32 = 12;
/// No certificate or dictionary is larger than this (a certificate carrying
/// thousands of names is still far below it).
pub const MAX_LEN: usize = 1 << 20;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("packed certificate: {what}"))
}

fn hash4(b: &[u8]) -> usize {
    let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    (v.wrapping_mul(0x9e37_79b1) >> (32 - HASH_BITS)) as usize
}

/// Whether `der` may become its CA's dictionary: a certificate of some size.
pub fn fit_for_dict(der: &[u8]) -> bool {
    der.len() >= MIN_DICT && der.len() <= MAX_LEN && der.first() == Some(&0x30)
}

/// `der` kept whole.
pub fn whole(der: &[u8]) -> Cow<'_, [u8]> {
    match der.first() {
        Some(&PACKED) | Some(&ESCAPED) => {
            let mut v = Vec::with_capacity(der.len() + 1);
            v.push(ESCAPED);
            v.extend_from_slice(der);
            Cow::Owned(v)
        }
        _ => Cow::Borrowed(der),
    }
}

/// `der` packed against `dict` (number `dict_id`). None when packing would
/// not make it smaller or either is too large: then keep it whole.
pub fn pack(dict_id: u64, dict: &[u8], der: &[u8]) -> Option<Vec<u8>> {
    if dict.len() > MAX_LEN || der.len() > MAX_LEN || dict.len() < 4 {
        return None;
    }
    DICT_INDEX.with(|cached| {
        let mut cached = cached.borrow_mut();
        let index = match cached.as_ref() {
            Some(index) if index.dict == dict => index,
            _ => cached.insert(DictIndex::new(dict)),
        };
        pack_with(&index.table, dict_id, dict, der)
    })
}

/// Where each 4-byte sequence of a dictionary last starts (+1; 0 = none).
struct DictIndex {
    dict: Vec<u8>,
    table: Vec<u32>,
}

impl DictIndex {
    fn new(dict: &[u8]) -> DictIndex {
        let mut table = vec![0u32; 1 << HASH_BITS];
        for i in 0..=dict.len().saturating_sub(4) {
            if let Some(b) = dict.get(i..i + 4) {
                table[hash4(b)] = i as u32 + 1;
            }
        }
        DictIndex {
            dict: dict.to_vec(),
            table,
        }
    }
}

thread_local! {
    /// The last dictionary's index, kept for the next certificate packed
    /// against it: building it (a 16 KiB table, zeroed and filled) cost
    /// about as much as packing. Kept by the dictionary's bytes, compared
    /// whole at each use, so whatever was aborted or rewritten meanwhile a
    /// stale index is never used.
    static DICT_INDEX: std::cell::RefCell<Option<DictIndex>> = const { std::cell::RefCell::new(None) };
}

fn pack_with(table: &[u32], dict_id: u64, dict: &[u8], der: &[u8]) -> Option<Vec<u8>> {
    let matching = |i: usize, at: usize| -> usize {
        der[i..]
            .iter()
            .zip(dict.get(at..).unwrap_or_default())
            .take_while(|(a, b)| a == b)
            .count()
    };
    let mut out = Vec::with_capacity(der.len() / 2 + 16);
    out.push(PACKED);
    varint::put(&mut out, dict_id);
    varint::put(&mut out, der.len() as u64);
    let mut literal_from = 0;
    // Where the last copy ended in the dictionary: certificates of one
    // profile line up, so the next copy usually starts there or near.
    let mut expected = 0usize;
    let mut i = 0;
    while i + 4 <= der.len() {
        let hashed = table.get(hash4(&der[i..])).map_or(0, |h| *h as usize);
        let (mut len, mut at) = (matching(i, expected), expected);
        if hashed > 0 {
            let l = matching(i, hashed - 1);
            if l > len {
                (len, at) = (l, hashed - 1);
            }
        }
        if len < MIN_COPY {
            i += 1;
            continue;
        }
        let literal = i - literal_from;
        let (lit_nibble, copy_nibble) = (literal.min(15), (len - MIN_COPY).min(15));
        out.push(((lit_nibble << 4) | copy_nibble) as u8);
        if lit_nibble == 15 {
            varint::put(&mut out, (literal - 15) as u64);
        }
        out.extend_from_slice(&der[literal_from..i]);
        if copy_nibble == 15 {
            varint::put(&mut out, (len - MIN_COPY - 15) as u64);
        }
        varint::put(&mut out, varint::zigzag(at as i64 - expected as i64));
        i += len;
        literal_from = i;
        expected = at + len;
    }
    if literal_from < der.len() {
        let literal = der.len() - literal_from;
        out.push((literal.min(15) << 4) as u8);
        if literal >= 15 {
            varint::put(&mut out, (literal - 15) as u64);
        }
        out.extend_from_slice(&der[literal_from..]);
    }
    (out.len() < der.len()).then_some(out)
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn uv(&mut self) -> Result<u64, StoreError> {
        varint::take(&mut self.b).map_err(corrupt)
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        usize::try_from(self.uv()?)
            .ok()
            .filter(|n| *n <= MAX_LEN)
            .ok_or_else(|| corrupt("length"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if n > self.b.len() {
            return Err(corrupt("length past the end"));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }
}

/// The dictionary number a packed value names (None: the value is whole).
pub fn dict_of(stored: &[u8]) -> Result<Option<u64>, StoreError> {
    match stored.split_first() {
        Some((&PACKED, rest)) => Reader { b: rest }.uv().map(Some),
        _ => Ok(None),
    }
}

/// The certificate a stored value holds: whole, or packed against `dict`
/// (which the caller found by [`dict_of`]).
pub fn unpack(stored: &[u8], dict: Option<&[u8]>) -> Result<Vec<u8>, StoreError> {
    let rest = match stored.split_first() {
        Some((&PACKED, rest)) => rest,
        Some((&ESCAPED, rest)) => return Ok(rest.to_vec()),
        _ => return Ok(stored.to_vec()),
    };
    let dict = dict.ok_or_else(|| corrupt("no dictionary"))?;
    let mut r = Reader { b: rest };
    r.uv()?;
    let len = r.len()?;
    if len == 0 {
        return Err(corrupt("empty"));
    }
    let mut out = Vec::with_capacity(len);
    let mut expected = 0usize;
    while out.len() < len {
        let token = r.take(1)?[0];
        let mut literal = usize::from(token >> 4);
        if literal == 15 {
            literal += r.len()?;
        }
        if literal > len - out.len() {
            return Err(corrupt("literal past the length"));
        }
        out.extend_from_slice(r.take(literal)?);
        if out.len() == len {
            break;
        }
        let mut copy = usize::from(token & 0x0f) + MIN_COPY;
        if copy == 15 + MIN_COPY {
            copy += r.len()?;
        }
        if copy > len - out.len() {
            return Err(corrupt("copy past the length"));
        }
        let delta = varint::unzigzag(r.uv()?);
        let at = i64::try_from(expected)
            .ok()
            .and_then(|e| e.checked_add(delta))
            .and_then(|a| usize::try_from(a).ok())
            .ok_or_else(|| corrupt("copy offset"))?;
        let from = dict
            .get(at..)
            .and_then(|d| d.get(..copy))
            .ok_or_else(|| corrupt("copy past the dictionary"))?;
        out.extend_from_slice(from);
        expected = at + copy;
    }
    if !r.b.is_empty() {
        return Err(corrupt("bytes after the certificate"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two certificates from one CA, as the server issues them.
    fn two_of_one_ca() -> (Vec<u8>, Vec<u8>) {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Private Issuing CA 1");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf = |name: &str| {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut p = rcgen::CertificateParams::new(vec![name.to_string()]).expect("leaf");
            p.distinguished_name.push(rcgen::DnType::CommonName, name);
            p.use_authority_key_identifier_extension = true;
            p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
                uris: vec!["http://127.0.0.1:8080/crl/ca-6b12a89db50ddffb.crl".into()],
            }];
            p.signed_by(&key, &issuer).expect("sign").der().to_vec()
        };
        (leaf("first.example"), leaf("second.example.internal"))
    }

    #[test]
    fn a_certificate_packs_to_a_fraction_and_unpacks_exactly() {
        let (dict, der) = two_of_one_ca();
        let packed = pack(7, &dict, &der).expect("smaller");
        assert!(
            packed.len() * 10 < der.len() * 6,
            "{} of {} bytes",
            packed.len(),
            der.len()
        );
        assert_eq!(dict_of(&packed).expect("form"), Some(7));
        assert_eq!(unpack(&packed, Some(&dict)).expect("unpack"), der);
        // The dictionary against itself is a few bytes.
        let own = pack(7, &dict, &dict).expect("smaller");
        assert!(own.len() < 16, "{} bytes", own.len());
        assert_eq!(unpack(&own, Some(&dict)).expect("unpack"), dict);
        // Whole values read as themselves, whatever their first byte.
        assert_eq!(dict_of(&der).expect("form"), None);
        assert_eq!(unpack(&der, None).expect("whole"), der);
        for odd in [&b"der"[..], &[PACKED, 5], &[ESCAPED], &[]] {
            let kept = whole(odd);
            assert_eq!(dict_of(&kept).expect("form"), None);
            assert_eq!(unpack(&kept, None).expect("whole"), odd);
        }
        assert!(fit_for_dict(&der) && !fit_for_dict(b"der"));
        // The index kept from one dictionary is not used for another.
        let against_dict = pack(7, &dict, &der);
        let against_der = pack(7, &der, &dict);
        assert_eq!(pack(7, &dict, &der), against_dict);
        assert_eq!(pack(7, &der, &dict), against_der);
    }

    #[test]
    fn any_bytes_round_trip_and_damage_is_an_error_not_a_panic() {
        let (dict, der) = two_of_one_ca();
        // Unrelated bytes: packing gains nothing, so it declines.
        let noise: Vec<u8> = (0..700u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(pack(1, &dict, &noise).is_none());
        for (d, v) in [(&dict, &der), (&der, &dict)] {
            let packed = pack(1, d, v).expect("smaller");
            assert_eq!(&unpack(&packed, Some(d)).expect("unpack"), v);
            for cut in 1..packed.len() {
                assert!(unpack(&packed[..cut], Some(d)).is_err(), "cut at {cut}");
            }
            let mut longer = packed.clone();
            longer.push(0);
            assert!(unpack(&longer, Some(d)).is_err());
            // A shorter dictionary than the one it was packed against.
            assert!(unpack(&packed, Some(&d[..d.len() / 2])).is_err());
            assert!(unpack(&packed, None).is_err());
            // Every single-byte change either fails or reads something: never a panic.
            for i in 0..packed.len() {
                let mut bad = packed.clone();
                bad[i] ^= 0xff;
                let _ = unpack(&bad, Some(d));
            }
        }
        assert!(unpack(&[PACKED, 0, 0], Some(&dict)).is_err());
        assert!(unpack(&[PACKED, 0, 0xff, 0xff, 0xff, 0xff, 0x7f], Some(&dict)).is_err());
    }
}
