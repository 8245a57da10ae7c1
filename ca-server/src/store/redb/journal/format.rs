//! The journal's records on disk: a header (magic, CRC-32 of the rest,
//! generation, sequence number, payload length), then the payload: the
//! period's least length and final length, then the changed byte runs
//! (offset, length, bytes), all little-endian. A redo record (see
//! [`super::redo`]) has [`REDO_MARK`] where a page record has its least
//! length, then the store's own bytes.

use std::io;

const MAGIC: [u8; 4] = *b"CAJ1";
/// magic, crc32 (of what follows it), generation, sequence, payload length.
pub(super) const HEADER: usize = 4 + 4 + 8 + 8 + 4;
/// In a record's first payload word: a redo record, not a page record (no
/// store is 2^64 - 1 bytes long).
pub(super) const REDO_MARK: u64 = u64::MAX;

/// Whether a whole record (header included) is a redo record.
pub(super) fn is_redo(record: &[u8]) -> bool {
    record.len() >= HEADER + 8 && u64_at(record, HEADER) == REDO_MARK
}

/// Two changed runs closer than this are written as one (an entry's own size).
const MERGE_GAP: usize = 12;

/// A record's header, read.
pub(super) struct Header {
    pub generation: u64,
    pub seq: u64,
    pub payload_len: u64,
}

impl Header {
    /// `None` when the bytes do not start a record.
    pub(super) fn read(header: &[u8; HEADER]) -> Option<Header> {
        (header[..4] == MAGIC).then(|| Header {
            generation: u64_at(header, 8),
            seq: u64_at(header, 16),
            payload_len: u64::from(u32_at(header, 24)),
        })
    }
}

/// Whether a whole record's checksum holds.
pub(super) fn checksum_holds(record: &[u8]) -> bool {
    record.len() >= HEADER && crc32fast::hash(&record[8..]) == u32_at(record, 4)
}

/// Seal a record built in place: `record` is [`HEADER`] bytes (any value)
/// then the payload; the header is written for run `generation`, number `seq`.
pub(super) fn seal_in_place(record: &mut [u8], generation: u64, seq: u64) -> io::Result<()> {
    let payload_len = record
        .len()
        .checked_sub(HEADER)
        .ok_or_else(|| io::Error::other("a record shorter than its header"))?;
    let payload_len = u32::try_from(payload_len)
        .map_err(|_| io::Error::other("one commit changed more than 4 GiB"))?;
    record[..4].copy_from_slice(&MAGIC);
    record[8..16].copy_from_slice(&generation.to_le_bytes());
    record[16..24].copy_from_slice(&seq.to_le_bytes());
    record[24..28].copy_from_slice(&payload_len.to_le_bytes());
    let crc = crc32fast::hash(&record[8..]);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Runs `[from, to)` where `a` and `b` differ, in whole 8-byte words (a run
/// may take in a few equal bytes), near ones merged. Word-wise because most
/// of a page redb rewrites in place of an older one differs from it.
pub(super) fn changed_runs(a: &[u8], b: &[u8]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut mark = |from: usize, to: usize| match runs.last_mut() {
        Some((_, end)) if from - *end <= MERGE_GAP => *end = to,
        _ => runs.push((from, to)),
    };
    let words = a.len().min(b.len()) / 8;
    for (k, (x, y)) in a.chunks_exact(8).zip(b.chunks_exact(8)).enumerate() {
        // Exact chunks: the conversions cannot fail.
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            continue;
        };
        if x != y {
            mark(k * 8, k * 8 + 8);
        }
    }
    for i in words * 8..a.len().min(b.len()) {
        if a[i] != b[i] {
            mark(i, i + 1);
        }
    }
    runs
}

pub(super) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

pub(super) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}
