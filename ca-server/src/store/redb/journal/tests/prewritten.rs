//! Redo records written before the writes they describe are made
//! ([`JournalBackend::write_redo`]), then synced or withdrawn.

use super::*;

/// Crash `b` (dropped unclosed), cut the power on its journal, reopen: the
/// redo records then handed over.
fn redo_after_cut(
    main: &SimDisk,
    journal: &SimDisk,
    b: JournalBackend,
    rng: &mut Rng,
) -> Vec<Vec<u8>> {
    std::mem::forget(b);
    journal.with(|d| d.cut(rng));
    open(main, journal, true)
        .expect("open after the cut")
        .take_pending_redo()
}

/// A record written and not yet synced when the power goes is either
/// handed over whole or not at all; one synced before it always is.
#[test]
fn a_written_redo_record_not_yet_synced_is_whole_or_gone_after_a_cut() {
    for seed in 1..128u64 {
        let mut rng = Rng(seed);
        let (main, journal, b) = opened_with_a_synced_write();
        b.append_redo(b"answered").unwrap();
        let payload: Vec<u8> = (0..3000).map(|i| (i % 251) as u8).collect();
        // The power goes before its sync.
        let _unsynced = b.write_redo(&payload).unwrap();
        let pending = redo_after_cut(&main, &journal, b, &mut rng);
        assert_eq!(pending.first().map(Vec::as_slice), Some(&b"answered"[..]));
        assert!(
            pending.len() == 1 || (pending.len() == 2 && pending[1] == payload),
            "seed {seed}: {} records",
            pending.len()
        );
    }
}

/// A record withdrawn (its batch failed before its commit) is redone by no
/// open, whenever the power goes, and the next record takes its place, so
/// the records after it are not lost behind it.
#[test]
fn a_withdrawn_redo_record_is_never_redone_and_the_next_takes_its_place() {
    for seed in 1..128u64 {
        let mut rng = Rng(seed);
        let (main, journal, b) = opened_with_a_synced_write();
        b.append_redo(b"one").unwrap();
        let written = b.write_redo(&[9u8; 2000]).unwrap();
        b.withdraw_redo(written);
        let crash_now = seed % 2 == 0;
        if !crash_now {
            b.append_redo(b"three").unwrap();
        }
        let want: Vec<Vec<u8>> = if crash_now {
            vec![b"one".to_vec()]
        } else {
            vec![b"one".to_vec(), b"three".to_vec()]
        };
        let pending = redo_after_cut(&main, &journal, b, &mut rng);
        assert_eq!(pending, want, "seed {seed}");
    }
}

/// A record withdrawn after a page record followed it (redb syncing
/// mid-transaction) cannot give its place back: the journal refuses every
/// later call until reopened, and the reopen redoes neither.
#[test]
fn a_redo_record_withdrawn_behind_a_later_record_poisons_the_journal() {
    let (main, journal, b) = opened_with_a_synced_write();
    b.append_redo(b"one").unwrap();
    let written = b.write_redo(b"two").unwrap();
    b.write(200, &[3u8; 50]).unwrap();
    b.sync_data().unwrap();
    b.withdraw_redo(written);
    assert!(b.append_redo(b"three").is_err(), "poisoned");
    assert!(b.sync_data().is_err(), "poisoned");
    std::mem::forget(b);
    let b = open(&main, &journal, true).expect("reopen");
    assert_eq!(b.take_pending_redo(), vec![b"one".to_vec()]);
    assert_eq!(content(&b), vec![1u8; 100], "the page record went with it");
}

/// A sync that reports failure takes the record back durably, as
/// `append_redo`'s does.
#[test]
fn a_written_redo_record_whose_sync_fails_is_not_redone_after_a_cut() {
    for seed in 1..64u64 {
        let mut rng = Rng(seed);
        let (main, journal, b) = opened_with_a_synced_write();
        b.append_redo(b"answered").unwrap();
        let written = b.write_redo(b"failed").unwrap();
        journal.with(|d| d.sync_reports_failure = true);
        assert!(b.sync_redo(written).is_err());
        let pending = redo_after_cut(&main, &journal, b, &mut rng);
        assert_eq!(pending, vec![b"answered".to_vec()], "seed {seed}");
    }
}

/// A batch that fails on the journal's own error (a sync redb made
/// mid-transaction failing after the record was written) has its record
/// taken back all the same, whether it is withdrawn or its sync is tried:
/// no open, after the store breaks or after a power cut, redoes writes
/// answered as failed.
#[test]
fn a_redo_record_is_taken_back_when_the_journal_failed_after_it() {
    for withdraw in [true, false] {
        for seed in 1..32u64 {
            let mut rng = Rng(seed);
            let (main, journal, b) = opened_with_a_synced_write();
            b.append_redo(b"one").unwrap();
            let written = b.write_redo(b"two").unwrap();
            // redb's sync mid-transaction: it writes the record to the disk,
            // then reports failure; the journal is poisoned.
            b.write(300, &[4u8; 10]).unwrap();
            journal.with(|d| d.sync_reports_failure = true);
            assert!(b.sync_data().is_err());
            if withdraw {
                assert!(b.withdraw_redo(written), "the store must reopen");
            } else {
                assert!(b.sync_redo(written).is_err());
            }
            let pending = redo_after_cut(&main, &journal, b, &mut rng);
            assert_eq!(
                pending,
                vec![b"one".to_vec()],
                "seed {seed}, withdrawn: {withdraw}"
            );
        }
    }
}
