//! The journal against a model, through simulated power cuts: whatever the
//! crash point, a reopened store holds exactly what the last completed sync
//! held (or, for a crash inside a sync, what it or the one before held).

use std::sync::{Arc, Mutex};

use super::*;

mod prewritten;

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
    /// The next sync makes everything durable, then reports failure (a
    /// late EIO).
    sync_reports_failure: bool,
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
    /// order; a write that does may be torn: any of its 512-byte sectors
    /// lost, the first one included (a disk keeps no order within a write).
    fn cut(&mut self, rng: &mut Rng) {
        for op in std::mem::take(&mut self.pending) {
            if rng.chance(2) {
                continue;
            }
            match op {
                Op::Write(at, data) if data.len() > 512 && rng.chance(3) => {
                    for (i, sector) in data.chunks(512).enumerate() {
                        if rng.chance(2) {
                            let at = at + 512 * i as u64;
                            Self::apply(&mut self.durable, &Op::Write(at, sector.to_vec()));
                        }
                    }
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
            if std::mem::take(&mut d.sync_reports_failure) {
                return Err(io::Error::other("injected: the sync failed after all"));
            }
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

/// A store on simulated disks, opened, with one synced write (100 bytes of
/// 1s at 0): where most tests here start.
fn opened_with_a_synced_write() -> (SimDisk, SimDisk, JournalBackend) {
    let (main, journal) = (SimDisk::default(), SimDisk::default());
    let b = open(&main, &journal, true).expect("open");
    b.write(0, &[1u8; 100]).unwrap();
    b.sync_data().unwrap();
    (main, journal, b)
}

fn content(b: &JournalBackend) -> Vec<u8> {
    try_content(b).expect("the store reads")
}

fn try_content(b: &JournalBackend) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; b.len()? as usize];
    b.read(0, &mut out)?;
    Ok(out)
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
    let (mut cut_opening, mut cut_closing) = (0, 0);
    for round in 0..1000 {
        // Sometimes the power is cut while the store opens: replaying,
        // checkpointing, emptying the journal.
        if rng.chance(5) {
            let n = rng.below(8);
            main.with(|d| d.fail_in = Some(n));
            journal.with(|d| d.fail_in = Some(n));
            if let Ok(b) = open(&main, &journal, true) {
                std::mem::forget(b);
            }
            cut_opening += 1;
            main.with(|d| d.cut(&mut rng));
            journal.with(|d| d.cut(&mut rng));
        }
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
            // A sync may succeed and still refuse what follows (an error
            // after its commit was durable): then the store must be reopened.
            match result.and_then(|()| try_content(&b)) {
                Ok(live) => assert_eq!(live, model, "round {round}: live content"),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        let mut open_backend = Some(b);
        let mut crashed = failed || rng.chance(3);
        if !crashed {
            // A clean close makes everything written durable, in the store
            // file alone; sometimes the power is cut while it does.
            let inject = rng.chance(4).then(|| rng.below(6));
            main.with(|d| d.fail_in = inject);
            journal.with(|d| d.fail_in = inject);
            let b = open_backend.take().expect("open");
            match b.close() {
                Ok(()) => {
                    drop(b);
                    durable = model.clone();
                    let mut file = main.with(|d| d.view());
                    file.resize(durable.len(), 0);
                    assert_eq!(file, durable, "round {round}: the store file after a close");
                }
                Err(_) => {
                    // The close syncs first: what it was closing may hold.
                    candidate = Some(model.clone());
                    cut_closing += 1;
                    crashed = true;
                    open_backend = Some(b);
                }
            }
        }
        if crashed {
            // A power cut: the backend is gone without closing.
            crashes += 1;
            std::mem::forget(open_backend.take());
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
        }
        main.with(|d| d.fail_in = None);
        journal.with(|d| d.fail_in = None);
    }
    eprintln!(
        "{crashes} power cuts, {inside_sync} inside a sync, {cut_opening} while opening, \
         {cut_closing} while closing; {checkpoints_seen} syncs that checkpointed"
    );
    assert!(crashes > 100 && inside_sync > 20 && checkpoints_seen > 20);
    assert!(cut_opening > 20 && cut_closing > 20);
}

/// A record torn or altered anywhere is not replayed, nor anything after it.
#[test]
fn a_damaged_record_ends_replay() {
    let (main, journal, b) = opened_with_a_synced_write();
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
    let journal = std::fs::read(journal_path(&db)).expect("journal");
    assert!(
        journal.windows(64).any(|w| w == [7u8; 64]),
        "the journal holds it"
    );
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

/// After a checkpoint the journal starts over at its beginning. If the new
/// run's first record is torn so that its first sector is lost, what is left
/// there must not be read as the old run: a prefix of it, replayed onto the
/// store file that holds all of it, would roll back what its later records
/// changed. (Found in review; this failed before the checkpoint cleared the
/// old run's head.)
#[test]
fn a_torn_first_record_after_a_checkpoint_does_not_revive_the_old_run() {
    let (main, journal) = (SimDisk::default(), SimDisk::default());
    let b = open(&main, &journal, true).expect("open");
    b.set_len(2 * BLOCK).unwrap();
    b.sync_data().unwrap();
    // Record A: byte 0 is 1 (a small record, inside the first sector).
    b.write(0, &[1u8; 8]).unwrap();
    b.sync_data().unwrap();
    // Record B: byte 0 is 3, and enough more to pass the capacity, so this
    // sync checkpoints.
    b.write(0, &[3u8; 8]).unwrap();
    let big: Vec<u8> = (0..TEST_CAPACITY + BLOCK)
        .map(|i| (i % 251) as u8 + 1)
        .collect();
    b.write(4 * BLOCK, &big).unwrap();
    b.sync_data().unwrap();
    assert_eq!(b.stats().checkpoints, 1, "the second sync checkpointed");
    // The new run's first record; the power is cut during its sync.
    b.write(BLOCK, &[9u8; 3000]).unwrap();
    journal.with(|d| d.fail_in = Some(1));
    assert!(b.sync_data().is_err());
    std::mem::forget(b);
    // All of that write reached the disk but its first sector.
    journal.with(|d| {
        for op in std::mem::take(&mut d.pending) {
            if let Op::Write(at, data) = op {
                if at == 0 && data.len() > 512 {
                    DiskState::apply(&mut d.durable, &Op::Write(512, data[512..].to_vec()));
                }
            }
        }
        d.fail_in = None;
    });
    let ro = open(&main, &journal, false).expect("read-only open");
    assert_eq!(content(&ro)[0], 3, "byte 0 as of the last completed sync");
}

#[test]
fn a_record_is_laid_out_as_its_format_says() {
    let mut record = vec![0xAA; HEADER];
    record.extend_from_slice(b"payload");
    seal_in_place(&mut record, 0x0102_0304_0506_0708, 9).unwrap();
    assert_eq!(&record[..4], b"CAJ1");
    assert_eq!(&record[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
    assert_eq!(&record[16..24], &9u64.to_le_bytes());
    assert_eq!(&record[24..28], &7u32.to_le_bytes());
    assert_eq!(&record[HEADER..], b"payload");
    assert_eq!(
        u32_at(&record, 4),
        crc32fast::hash(&record[8..]),
        "the CRC covers everything after it"
    );
    // CRC-32 (IEEE) of bytes 8.., computed with Python's zlib.crc32.
    assert_eq!(u32_at(&record, 4), 0x137c_631c);
    assert!(checksum_holds(&record));
    let header: [u8; HEADER] = record[..HEADER].try_into().unwrap();
    let read = Header::read(&header).unwrap();
    assert_eq!(
        (read.generation, read.seq, read.payload_len),
        (0x0102_0304_0506_0708, 9, 7)
    );
    let mut changed = record.clone();
    changed[HEADER] ^= 1;
    assert!(!checksum_holds(&changed));
    assert!(seal_in_place(&mut [0u8; HEADER - 1], 1, 1).is_err());
}

/// A sync with nothing written since the last one appends no record, and
/// one after a write that changed nothing appends none either.
#[test]
fn a_sync_with_nothing_changed_appends_nothing() {
    let (_, _, b) = opened_with_a_synced_write();
    let after_first = b.stats().records;
    assert_eq!(after_first, 1);
    b.sync_data().unwrap();
    b.write(0, &[1u8; 100]).unwrap();
    b.sync_data().unwrap();
    assert_eq!(b.stats().records, after_first);
    b.write(10, &[2u8; 1]).unwrap();
    b.sync_data().unwrap();
    assert_eq!(b.stats().records, after_first + 1);
}

/// Every redo record of the journal's run is handed over at open (which of
/// them the store holds only it can tell), crash after crash, and no
/// checkpoint ends their run, even one due, until the store says a durable
/// commit holds their writes: page records alone do not (redb also syncs
/// mid-transaction).
#[test]
fn redo_records_outlive_every_sync_until_the_store_says_they_are_durable() {
    let (main, journal, b) = opened_with_a_synced_write();
    b.append_redo(b"one").unwrap();
    // A sync past the journal's capacity: a checkpoint would be due.
    let big: Vec<u8> = (0..TEST_CAPACITY + BLOCK).map(|i| i as u8).collect();
    b.write(4 * BLOCK, &big).unwrap();
    b.sync_data().unwrap();
    assert_eq!(
        b.stats().checkpoints,
        0,
        "no checkpoint while redo is outstanding"
    );
    b.append_redo(b"two").unwrap();
    std::mem::forget(b);
    let want = vec![b"one".to_vec(), b"two".to_vec()];
    let b = open(&main, &journal, true).expect("open after a crash");
    assert_eq!(b.take_pending_redo(), want);
    assert_eq!(&content(&b)[4 * BLOCK as usize..][..big.len()], &big[..]);
    std::mem::forget(b);
    let ro = open(&main, &journal, false).expect("read-only open");
    assert_eq!(ro.take_pending_redo(), want, "a reader is handed them too");
    drop(ro);
    let b = open(&main, &journal, true).expect("open after a second crash");
    assert_eq!(b.take_pending_redo(), want, "found again");
    assert_eq!(b.stats().checkpoints, 0);
    // The store has made them durable: the due checkpoint ends the run.
    b.redo_durable().unwrap();
    assert_eq!(b.stats().checkpoints, 1);
    b.append_redo(b"three").unwrap();
    std::mem::forget(b);
    let b = open(&main, &journal, true).expect("open after a third crash");
    assert_eq!(b.take_pending_redo(), vec![b"three".to_vec()]);
    // A clean close leaves nothing to redo, and the store file complete.
    b.redo_durable().unwrap();
    b.write(0, &[6u8; 10]).unwrap();
    b.sync_data().unwrap();
    b.close().unwrap();
    drop(b);
    let b = open(&main, &journal, true).expect("open after a close");
    assert!(b.take_pending_redo().is_empty());
    assert_eq!(&main.with(|d| d.view())[..10], &[6u8; 10]);
}

/// A power cut inside a redo record's sync leaves it whole or not at all,
/// and never a torn record that is handed over.
#[test]
fn a_cut_inside_a_redo_append_hands_over_whole_records_only() {
    for seed in 1..200u64 {
        let mut rng = Rng(seed);
        let (main, journal, b) = opened_with_a_synced_write();
        b.append_redo(&[7u8; 700]).unwrap();
        let payload: Vec<u8> = (0..3000).map(|i| (i % 253) as u8).collect();
        journal.with(|d| d.fail_in = Some(1));
        assert!(b.append_redo(&payload).is_err());
        std::mem::forget(b);
        journal.with(|d| d.cut(&mut rng));
        let b = open(&main, &journal, true).expect("open after the cut");
        let pending = b.take_pending_redo();
        assert_eq!(pending.first(), Some(&vec![7u8; 700]), "seed {seed}");
        assert!(
            pending.len() == 1 || (pending.len() == 2 && pending[1] == payload),
            "seed {seed}: {} records",
            pending.len()
        );
    }
}

/// A redo append whose sync reports failure is answered as failed, though
/// its record may be on the disk: the journal undoes it durably, so no open
/// after a power cut redoes a write its caller was told had failed.
#[test]
fn a_redo_append_answered_as_failed_is_not_redone_after_a_cut() {
    for seed in 1..64u64 {
        let mut rng = Rng(seed);
        let (main, journal, b) = opened_with_a_synced_write();
        b.append_redo(b"answered").unwrap();
        journal.with(|d| d.sync_reports_failure = true);
        assert!(b.append_redo(b"failed").is_err());
        std::mem::forget(b);
        journal.with(|d| d.cut(&mut rng));
        let b = open(&main, &journal, true).expect("open after the cut");
        assert_eq!(
            b.take_pending_redo(),
            vec![b"answered".to_vec()],
            "seed {seed}"
        );
    }
}

/// A commit whose sync reports failure is answered as failed, though its
/// page record may be on the disk: the journal takes it back durably, so no
/// open after a power cut replays it.
#[test]
fn a_commit_answered_as_failed_is_not_replayed_after_a_cut() {
    for seed in 1..64u64 {
        let mut rng = Rng(seed);
        let (main, journal, b) = opened_with_a_synced_write();
        b.write(0, &[2u8; 100]).unwrap();
        journal.with(|d| d.sync_reports_failure = true);
        assert!(b.sync_data().is_err());
        std::mem::forget(b);
        journal.with(|d| d.cut(&mut rng));
        main.with(|d| d.cut(&mut rng));
        let b = open(&main, &journal, true).expect("open after the cut");
        assert_eq!(&content(&b)[..100], &[1u8; 100], "seed {seed}");
    }
}

/// Records overwrite blocks the journal file has: the file grows ahead of
/// them by zeros, a step at a time, so that few records' syncs change its
/// size; the zeros past the last record read as the journal's end.
#[test]
fn the_journal_file_grows_ahead_of_its_records() {
    let (main, journal, b) = opened_with_a_synced_write();
    let journal_len = || journal.with(|d| d.view().len() as u64);
    let (mut grew, mut want) = (0, Vec::new());
    for i in 0..200u32 {
        let before = journal_len();
        let payload = vec![i as u8; 3000];
        b.append_redo(&payload).unwrap();
        want.push(payload);
        grew += usize::from(journal_len() != before);
    }
    // About 600 KB of records: three steps.
    assert!(grew <= 3, "the file grew at {grew} of 200 records");
    assert_eq!(journal_len() % GROW_AHEAD, 0, "grown by whole steps");
    std::mem::forget(b);
    let b = open(&main, &journal, true).expect("open after a crash");
    assert_eq!(b.take_pending_redo(), want);
}

/// Redo records through random power cuts (anywhere: in appends, syncs,
/// checkpoints, opens and closes): after each, the records handed over end
/// with every record appended since the store last said its redo was
/// durable, in order, then at most the one whose append was cut.
#[test]
fn every_crash_point_keeps_the_redo_records_not_yet_durable() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (main, journal) = (SimDisk::default(), SimDisk::default());
    let mut owed: Vec<Vec<u8>> = Vec::new();
    let (mut cuts, mut handed_over, mut next) = (0, 0usize, 0u32);
    for round in 0..400 {
        if rng.chance(5) {
            let n = rng.below(8);
            main.with(|d| d.fail_in = Some(n));
            journal.with(|d| d.fail_in = Some(n));
            if let Ok(b) = open(&main, &journal, true) {
                std::mem::forget(b);
            }
            main.with(|d| d.cut(&mut rng));
            journal.with(|d| d.cut(&mut rng));
        }
        let b = open(&main, &journal, true).expect("open");
        let handed = b.take_pending_redo();
        handed_over += handed.len();
        let lens = |v: &[Vec<u8>]| v.iter().map(Vec::len).collect::<Vec<_>>();
        assert!(
            handed.ends_with(&owed),
            "round {round}: owed records of {:?} bytes, handed over {:?}",
            lens(&owed),
            lens(&handed)
        );
        // What the store does at open: redo them in a durable commit.
        if !handed.is_empty() {
            b.write(0, &[round as u8; 64]).unwrap();
            b.sync_data().unwrap();
        }
        b.redo_durable().unwrap();
        owed.clear();
        if rng.chance(2) {
            let n = rng.below(30);
            main.with(|d| d.fail_in = Some(n));
            journal.with(|d| d.fail_in = Some(n));
        }
        let mut cut_append: Option<Vec<u8>> = None;
        let mut failed = false;
        for _ in 0..1 + rng.below(30) {
            let r = match rng.below(6) {
                0 => b.sync_data(),
                1 => {
                    let r = b.redo_durable();
                    if r.is_ok() {
                        owed.clear();
                    }
                    r
                }
                2 | 3 => {
                    next += 1;
                    let len = 1 + rng.below(3000) as usize;
                    let payload: Vec<u8> = (0..len).map(|i| (i as u32 ^ next) as u8).collect();
                    let r = b.append_redo(&payload).map(|_| ());
                    match r {
                        Ok(()) => owed.push(payload),
                        Err(_) => cut_append = Some(payload),
                    }
                    r
                }
                // Pages enough to pass the journal's capacity now and then.
                _ => {
                    let at = rng.below(16) * BLOCK;
                    b.write(at, &vec![rng.next() as u8; 3 * BLOCK as usize])
                }
            };
            if r.is_err() {
                failed = true;
                break;
            }
        }
        if !failed && rng.chance(2) {
            // A clean close keeps what is owed for the next open.
            let inject = rng.chance(4).then(|| rng.below(6));
            main.with(|d| d.fail_in = inject);
            journal.with(|d| d.fail_in = inject);
            if b.close().is_ok() {
                drop(b);
                main.with(|d| d.fail_in = None);
                journal.with(|d| d.fail_in = None);
                continue;
            }
        } else {
            std::mem::forget(b);
        }
        cuts += 1;
        main.with(|d| d.cut(&mut rng));
        journal.with(|d| d.cut(&mut rng));
        main.with(|d| d.fail_in = None);
        journal.with(|d| d.fail_in = None);
        // The cut one may have reached the disk whole: then it is owed too.
        let ro = open(&main, &journal, false).expect("read-only open");
        let seen = ro.take_pending_redo();
        drop(ro);
        if let Some(p) = cut_append.filter(|p| seen.last() == Some(p)) {
            owed.push(p);
        }
    }
    eprintln!("{cuts} power cuts; {handed_over} redo records handed over");
    assert!(cuts > 100 && handed_over > 100);
}
