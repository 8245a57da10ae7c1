//! The journal against a model, through simulated power cuts: whatever the
//! crash point, a reopened store holds exactly what the last completed sync
//! held (or, for a crash inside a sync, what it or the one before held).

use std::sync::{Arc, Mutex};

use super::*;

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

#[derive(Clone, Debug)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct DiskState {
    /// What survives a power cut.
    durable: Vec<u8>,
    /// Since the last sync, in order: lost, in part or torn, at a cut.
    pending: Vec<Op>,
    /// Operations left before the next one fails (a crash inside a call).
    fail_in: Option<u64>,
    /// Writes and syncs seen (to aim crashes).
    calls: u64,
}

impl DiskState {
    fn apply(content: &mut Vec<u8>, op: &Op) {
        match op {
            Op::Write(at, data) => {
                let end = *at as usize + data.len();
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[*at as usize..end].copy_from_slice(data);
            }
            Op::SetLen(len) => content.resize(*len as usize, 0),
        }
    }

    fn view(&self) -> Vec<u8> {
        let mut content = self.durable.clone();
        for op in &self.pending {
            Self::apply(&mut content, op);
        }
        content
    }

    fn tick(&mut self) -> io::Result<()> {
        self.calls += 1;
        match self.fail_in {
            Some(0) => Err(io::Error::other("injected failure (the power is cut)")),
            Some(n) => {
                self.fail_in = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The power is cut: each pending operation reaches the disk or not, in
    /// order; a write that does may be torn at a 512-byte sector.
    fn cut(&mut self, rng: &mut Rng) {
        for op in std::mem::take(&mut self.pending) {
            if rng.chance(2) {
                continue;
            }
            match op {
                Op::Write(at, data) if data.len() > 512 && rng.chance(3) => {
                    let sectors = data.len().div_ceil(512);
                    let keep = (rng.below(sectors as u64) as usize * 512).min(data.len());
                    Self::apply(&mut self.durable, &Op::Write(at, data[..keep].to_vec()));
                }
                op => Self::apply(&mut self.durable, &op),
            }
        }
        self.fail_in = None;
    }
}

#[derive(Clone, Debug, Default)]
struct SimDisk(Arc<Mutex<DiskState>>);

impl SimDisk {
    fn with<T>(&self, f: impl FnOnce(&mut DiskState) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl StorageBackend for SimDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.with(|d| d.view().len() as u64))
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let view = self.with(|d| d.view());
        let end = offset as usize + out.len();
        if end > view.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        out.copy_from_slice(&view[offset as usize..end]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(|d| {
            d.tick()?;
            d.pending.push(Op::SetLen(len));
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(|d| {
            d.tick()?;
            let view = d.view();
            d.durable = view;
            d.pending.clear();
            Ok(())
        })
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.with(|d| {
            d.tick()?;
            d.pending.push(Op::Write(offset, data.to_vec()));
            Ok(())
        })
    }
}

fn lock_file() -> File {
    File::open("/dev/null").expect("/dev/null opens")
}

/// A small journal, so checkpoints come every few syncs.
const TEST_CAPACITY: u64 = 48 * 1024;

fn open(main: &SimDisk, journal: &SimDisk, writable: bool) -> io::Result<JournalBackend> {
    JournalBackend::open_with_capacity(
        Box::new(main.clone()),
        Box::new(journal.clone()),
        lock_file(),
        writable,
        TEST_CAPACITY,
    )
}

fn content(b: &JournalBackend) -> Vec<u8> {
    let len = b.len().expect("len") as usize;
    let mut out = vec![0u8; len];
    b.read(0, &mut out).expect("read");
    out
}

/// One random change to both the backend and the model. `ghost` keeps bytes
/// a shrink cut off: writing them again after a regrowth must still count
/// as a change.
fn random_change(
    rng: &mut Rng,
    b: &JournalBackend,
    model: &mut Vec<u8>,
    ghost: &mut Vec<u8>,
) -> io::Result<()> {
    let len = model.len() as u64;
    if ghost.len() < model.len() {
        ghost.resize(model.len(), 0);
    }
    ghost[..model.len()].copy_from_slice(model);
    if rng.chance(12) {
        // Shrink or grow, not always at a block boundary.
        let new_len = if rng.chance(2) {
            rng.below(len + 1)
        } else {
            len + rng.below(3 * BLOCK)
        };
        b.set_len(new_len)?;
        model.resize(new_len as usize, 0);
        return Ok(());
    }
    // Mostly whole pages at page offsets, as redb writes; sometimes not.
    let (at, n) = if rng.chance(3) {
        (rng.below(len + BLOCK), 1 + rng.below(2 * BLOCK))
    } else {
        (
            rng.below(len / BLOCK + 2) * BLOCK,
            BLOCK * (1 + rng.below(2)),
        )
    };
    let byte = rng.next() as u8;
    // Partly the same bytes as before, so diffs have gaps.
    let data: Vec<u8> = (0..n)
        .map(|i| {
            let at = (at + i) as usize;
            match rng.below(4) {
                0 => model.get(at).copied().unwrap_or(0),
                1 => ghost.get(at).copied().unwrap_or(0),
                _ => byte.wrapping_add(i as u8),
            }
        })
        .collect();
    b.write(at, &data)?;
    DiskState::apply(model, &Op::Write(at, data));
    Ok(())
}

#[test]
fn every_crash_point_keeps_the_last_completed_sync() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (main, journal) = (SimDisk::default(), SimDisk::default());
    let mut durable: Vec<u8> = Vec::new();
    let (mut crashes, mut inside_sync, mut checkpoints_seen) = (0, 0, 0u64);
    for round in 0..1000 {
        let b = open(&main, &journal, true).expect("open");
        assert_eq!(content(&b), durable, "round {round}: reopened content");
        let mut model = durable.clone();
        let mut ghost = model.clone();
        let mut candidate: Option<Vec<u8>> = None;
        // Aim a failure at some call of this round, or none.
        if rng.chance(2) {
            let n = rng.below(30);
            main.with(|d| d.fail_in = Some(n));
            journal.with(|d| d.fail_in = Some(n));
        }
        let steps = 1 + rng.below(40);
        let mut failed = false;
        for _ in 0..steps {
            let result = if rng.chance(5) {
                let before_sync = main.with(|d| d.calls);
                let r = b.sync_data();
                if main.with(|d| d.calls) > before_sync {
                    checkpoints_seen += 1;
                }
                match &r {
                    Ok(()) => durable = model.clone(),
                    // Inside a sync: this one or the last may be what holds.
                    Err(_) => {
                        candidate = Some(model.clone());
                        inside_sync += 1;
                    }
                }
                r
            } else {
                random_change(&mut rng, &b, &mut model, &mut ghost)
            };
            if result.is_err() {
                failed = true;
                break;
            }
            assert_eq!(content(&b), model, "round {round}: live content");
        }
        if failed || rng.chance(3) {
            // A power cut: the backend is gone without closing.
            crashes += 1;
            std::mem::forget(b);
            main.with(|d| d.cut(&mut rng));
            journal.with(|d| d.cut(&mut rng));
            // A read-only open sees the recovered store and changes nothing.
            let (m0, j0) = (main.with(|d| d.view()), journal.with(|d| d.view()));
            let ro = open(&main, &journal, false).expect("read-only open");
            let seen = content(&ro);
            drop(ro);
            assert_eq!(
                main.with(|d| d.view()),
                m0,
                "read-only open wrote the store"
            );
            assert_eq!(
                journal.with(|d| d.view()),
                j0,
                "read-only open wrote the journal"
            );
            if seen != durable {
                match &candidate {
                    Some(c) if seen == *c => durable = c.clone(),
                    _ => panic!(
                        "round {round}: after a cut the store holds neither the last \
                         completed sync ({} bytes) nor the one cut short ({} bytes), \
                         but {} bytes",
                        durable.len(),
                        candidate.as_ref().map_or(0, Vec::len),
                        seen.len()
                    ),
                }
            }
        } else {
            // A clean close makes everything written durable, in the store file alone.
            main.with(|d| d.fail_in = None);
            journal.with(|d| d.fail_in = None);
            b.close().expect("close");
            drop(b);
            durable = model;
            let mut file = main.with(|d| d.view());
            file.resize(durable.len(), 0);
            assert_eq!(file, durable, "round {round}: the store file after a close");
        }
        main.with(|d| d.fail_in = None);
        journal.with(|d| d.fail_in = None);
    }
    eprintln!("{crashes} power cuts, {inside_sync} inside a sync, {checkpoints_seen} syncs that checkpointed");
    assert!(crashes > 100 && inside_sync > 20 && checkpoints_seen > 20);
}

/// A record torn or altered anywhere is not replayed, nor anything after it.
#[test]
fn a_damaged_record_ends_replay() {
    let (main, journal) = (SimDisk::default(), SimDisk::default());
    let b = open(&main, &journal, true).expect("open");
    b.write(0, &[1u8; 100]).unwrap();
    b.sync_data().unwrap();
    b.write(50, &[2u8; 100]).unwrap();
    b.sync_data().unwrap();
    std::mem::forget(b);
    let journal_bytes = journal.with(|d| d.view());
    let first_len = HEADER + u32_at(&journal_bytes, 24) as usize;
    let second_len = HEADER + u32_at(&journal_bytes, first_len + 24) as usize;
    for at in first_len..first_len + second_len {
        let damaged = SimDisk::default();
        let mut bytes = journal_bytes.clone();
        bytes[at] ^= 0x40;
        damaged.with(|d| d.durable = bytes);
        let ro = open(&main, &damaged, false).expect("read-only open");
        let seen = content(&ro);
        assert_eq!(seen, vec![1u8; 100], "a flip at {at} in the second record");
    }
}

/// A store open for writing is locked against a second writer and against
/// readers (which would replay a journal being appended to); closed, it is
/// not, and the store file alone holds everything.
#[test]
fn an_open_store_is_locked_and_a_closed_one_is_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("store");
    let first = JournalBackend::open(&db).expect("first open");
    first.write(0, &[7u8; 5000]).expect("write");
    first.sync_data().expect("sync");
    for (what, second) in [
        ("a second writer", JournalBackend::open(&db)),
        ("a reader", JournalBackend::open_read_only(&db)),
    ] {
        let e = second.err().unwrap_or_else(|| panic!("{what} was let in"));
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{what}: {e}");
    }
    // Before the close, the store file does not hold the write; the journal does.
    assert_ne!(std::fs::read(&db).expect("read"), vec![7u8; 5000]);
    assert!(std::fs::metadata(journal_path(&db)).expect("journal").len() > 5000);
    first.close().expect("close");
    drop(first);
    assert_eq!(std::fs::read(&db).expect("read"), vec![7u8; 5000]);
    assert_eq!(
        std::fs::metadata(journal_path(&db)).expect("journal").len(),
        0
    );
    let reader = JournalBackend::open_read_only(&db).expect("reader after close");
    assert_eq!(content(&reader), vec![7u8; 5000]);
}
