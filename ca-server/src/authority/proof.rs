//! A CSR's proof of possession checked on the idle core while its
//! certificate is prepared and signed on this one (one call alone in
//! flight: see `Authority::issue_csr`).
//!
//! Whoever comes first checks it: a blocking-pool thread, started when the
//! CSR is parsed (or woken earlier: below), or the request itself when it asks for the verdict before that thread
//! has begun (an idle core can take tens of microseconds to wake on a
//! virtual machine, as long as the check itself). A check under way on the
//! other core is waited for by spinning for about a check's time before
//! parking, so the answer does not wait for a second wake-up too.
//!
//! The helper can be woken before the CSR is even read ([`ProofHelper`]):
//! as soon as the request is known to be an issuance, so that its wake-up
//! overlaps reading and parsing the request instead of following them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca_core::csr::{CsrError, ProofOfPossession};

use super::map_csr;
use crate::error::ApiError;

/// How long a request spins for a check under way on the other core before
/// it parks: about three P-256 checks on this kind of machine.
const SPIN: Duration = Duration::from_micros(150);

/// How long a helper woken ahead ([`ProofHelper`]) spins for its proof
/// before it gives up (the request then starts another): reading and
/// parsing a request whose body has come with its head takes a few tens of
/// microseconds. A body that comes later (`Expect: 100-continue`, a slow
/// client) costs this much spinning on the idle core, and a second wake.
const AWAIT_PROOF: Duration = Duration::from_micros(100);

enum State {
    /// A helper woken ahead, the proof not handed over yet.
    Awaited,
    /// The helper woken ahead gave up waiting for the proof.
    Abandoned,
    /// The request will hand no proof over: the helper woken ahead stops.
    Cancelled,
    /// Not taken yet by either side.
    Waiting(ProofOfPossession),
    /// Being checked by the blocking-pool thread.
    Checking,
    Done(Result<(), CsrError>),
    /// The check panicked (it does not; a verdict must come regardless).
    Panicked,
    /// The verdict was handed out.
    Taken,
}

struct Slot {
    state: Mutex<State>,
    /// Set once the request hands the proof over or drops the helper: what
    /// a helper woken ahead polls.
    handed: AtomicBool,
    /// Set once `state` holds a verdict: what the spinning side polls.
    done: AtomicBool,
    /// Told once `state` holds a verdict, for a request that parked.
    ready: tokio::sync::Notify,
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The lock guards no invariant a panic could break half-way.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The blocking-pool side: checks the proof unless the request took it.
    fn check_on_helper(&self) {
        let possession = {
            let mut state = self.lock();
            match std::mem::replace(&mut *state, State::Checking) {
                State::Waiting(p) => p,
                other => {
                    *state = other;
                    return;
                }
            }
        };
        let verdict = std::panic::catch_unwind(move || possession.check());
        *self.lock() = match verdict {
            Ok(v) => State::Done(v),
            Err(_) => State::Panicked,
        };
        self.done.store(true, Ordering::Release);
        // (A permit is kept if the request has not parked yet.)
        self.ready.notify_one();
    }

    /// A helper woken ahead: waits (spinning) for the proof, then checks
    /// it; gives up after `wait` ([`AWAIT_PROOF`]).
    fn await_then_check(&self, wait: Duration) {
        let give_up = Instant::now() + wait;
        while !self.handed.load(Ordering::Acquire) && Instant::now() < give_up {
            std::hint::spin_loop();
        }
        {
            let mut state = self.lock();
            if matches!(*state, State::Awaited) {
                *state = State::Abandoned;
                return;
            }
        }
        self.check_on_helper();
    }

    /// The verdict if there is one now, checking the proof here if the
    /// helper has not started on it; `None` while the helper checks it.
    fn verdict_now(&self) -> Option<Result<(), ApiError>> {
        let mut state = self.lock();
        match std::mem::replace(&mut *state, State::Taken) {
            State::Waiting(p) => {
                drop(state);
                Some(p.check().map_err(map_csr))
            }
            State::Checking => {
                *state = State::Checking;
                None
            }
            State::Done(v) => Some(v.map_err(map_csr)),
            State::Awaited
            | State::Abandoned
            | State::Cancelled
            | State::Panicked
            | State::Taken => Some(Err(ApiError::internal(
                "CSR signature check",
                "the check gave no verdict",
            ))),
        }
    }
}

/// A CSR's proof of possession whose check has been started elsewhere.
pub(super) struct PendingProof(Arc<Slot>);

impl PendingProof {
    pub(super) fn start(possession: ProofOfPossession) -> PendingProof {
        let slot = Slot::new(State::Waiting(possession));
        spawn_checker(&slot);
        PendingProof(slot)
    }

    /// The check's verdict (none to wait for: proven already); awaited
    /// before anything made for the request is stored or answered, and
    /// before any other refusal of it.
    pub(super) async fn verdict(proof: Option<PendingProof>) -> Result<(), ApiError> {
        let Some(PendingProof(slot)) = proof else {
            return Ok(());
        };
        if let Some(v) = slot.verdict_now() {
            return v;
        }
        let spin_until = Instant::now() + SPIN;
        while !slot.done.load(Ordering::Acquire) && Instant::now() < spin_until {
            std::hint::spin_loop();
        }
        loop {
            let ready = slot.ready.notified();
            if let Some(v) = slot.verdict_now() {
                return v;
            }
            ready.await;
        }
    }

    /// A pending proof whose helper never starts: the request checks it
    /// itself (tests).
    #[cfg(test)]
    pub(super) fn start_without_helper(possession: ProofOfPossession) -> PendingProof {
        PendingProof(Slot::new(State::Waiting(possession)))
    }
}

impl Slot {
    fn new(state: State) -> Arc<Slot> {
        Arc::new(Slot {
            state: Mutex::new(state),
            handed: AtomicBool::new(false),
            done: AtomicBool::new(false),
            ready: tokio::sync::Notify::new(),
        })
    }
}

/// A blocking-pool thread to check the proof in `slot`. Not awaited: if it
/// never runs (the runtime shutting down), the request checks the proof
/// itself.
fn spawn_checker(slot: &Arc<Slot>) {
    let helper = Arc::clone(slot);
    drop(tokio::task::spawn_blocking(move || {
        helper.check_on_helper()
    }));
}

/// A helper thread woken before the CSR is read, to check its proof of
/// possession once [`start`](Self::start) hands it over. Dropped instead
/// (the request is refused first, carries an idempotency token, or is not
/// alone any more), it stops.
pub(crate) struct ProofHelper(Option<Arc<Slot>>);

impl ProofHelper {
    pub(crate) fn wake() -> ProofHelper {
        Self::wake_waiting(AWAIT_PROOF)
    }

    /// A helper that waits up to `wait` for its proof.
    fn wake_waiting(wait: Duration) -> ProofHelper {
        let slot = Slot::new(State::Awaited);
        let helper = Arc::clone(&slot);
        drop(tokio::task::spawn_blocking(move || {
            helper.await_then_check(wait)
        }));
        ProofHelper(Some(slot))
    }

    /// Hand `possession` to the helper (or to a new one, if it stopped
    /// waiting).
    pub(super) fn start(mut self, possession: ProofOfPossession) -> PendingProof {
        let Some(slot) = self.0.take() else {
            return PendingProof::start(possession);
        };
        let abandoned = {
            let mut state = slot.lock();
            let abandoned = matches!(*state, State::Abandoned);
            *state = State::Waiting(possession);
            abandoned
        };
        slot.handed.store(true, Ordering::Release);
        if abandoned {
            spawn_checker(&slot);
        }
        PendingProof(slot)
    }
}

impl Drop for ProofHelper {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            let mut state = slot.lock();
            if matches!(*state, State::Awaited) {
                *state = State::Cancelled;
            }
            drop(state);
            slot.handed.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ca_core::csr::parse_csr_deferring_proof;
    use ca_core::keys::{KeyAlgorithm, SoftwareKey};
    use ca_core::names::SanEntry;

    fn csr_der(proves_its_key: bool) -> Vec<u8> {
        let key = SoftwareKey::generate(KeyAlgorithm::EcdsaP256).expect("key");
        let subject = ca_core::names::parse_subject("CN=web.example.com").expect("subject");
        let san = SanEntry::parse("web.example.com").expect("san");
        let mut der = ca_core::csr::create_csr(&key, &subject, &[san]).expect("csr");
        if !proves_its_key {
            // The signature's last byte.
            if let Some(last) = der.last_mut() {
                *last ^= 0x01;
            }
        }
        der
    }

    fn possession(proves_its_key: bool) -> ProofOfPossession {
        parse_csr_deferring_proof(&csr_der(proves_its_key))
            .expect("parses")
            .1
    }

    async fn helper_done(proof: &PendingProof) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !proof.0.done.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the helper never checked");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The same verdict whoever checks, whenever the verdict is asked for:
    /// the helper having finished, the request taking the check over from
    /// a helper that never started, or the two racing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_path_gives_the_checks_verdict() {
        for proves in [true, false] {
            let expect = |v: Result<(), ApiError>, path: &str| match (proves, v) {
                (true, Ok(())) => {}
                (false, Err(e)) => assert_eq!(
                    e.code,
                    crate::error::ErrorCode::MalformedCsr,
                    "{path}: {}",
                    e.message
                ),
                (_, v) => panic!(
                    "{path}: proves {proves}, verdict {:?}",
                    v.map_err(|e| e.message)
                ),
            };
            let finished = PendingProof::start(possession(proves));
            helper_done(&finished).await;
            expect(
                PendingProof::verdict(Some(finished)).await,
                "helper finished",
            );

            let never_started = PendingProof::start_without_helper(possession(proves));
            expect(
                PendingProof::verdict(Some(never_started)).await,
                "request took it",
            );

            for _ in 0..50 {
                let racing = PendingProof::start(possession(proves));
                expect(PendingProof::verdict(Some(racing)).await, "racing");
            }
        }
        assert!(PendingProof::verdict(None).await.is_ok(), "proven already");
    }

    /// A helper woken before the CSR is read checks the proof handed to it
    /// later, without the request asking (the check is done before any
    /// verdict is asked for); one that gave up waiting is replaced by a new
    /// one; one dropped unused stops. The verdict is the check's each time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_helper_woken_ahead_checks_what_it_is_handed() {
        for proves in [true, false] {
            let verdict_is_the_checks = |v: Result<(), ApiError>, path: &str| {
                assert_eq!(v.is_ok(), proves, "{path}: proves {proves}");
            };

            // Handed over while it waits (or before it has woken).
            let helper = ProofHelper::wake();
            let proof = helper.start(possession(proves));
            helper_done(&proof).await;
            verdict_is_the_checks(PendingProof::verdict(Some(proof)).await, "handed");

            // Handed over after it gave up: a new helper checks it.
            let helper = ProofHelper::wake();
            let slot = helper.0.as_ref().map(Arc::clone).expect("a slot");
            helper_returned(&slot, 2).await;
            assert!(matches!(*slot.lock(), State::Abandoned), "it gave up");
            drop(slot);
            let proof = helper.start(possession(proves));
            helper_done(&proof).await;
            verdict_is_the_checks(PendingProof::verdict(Some(proof)).await, "gave up");
        }

        // Dropped unused: told to stop, it returns at once (long before it
        // would give up waiting) and checks nothing.
        let helper = ProofHelper::wake_waiting(Duration::from_secs(30));
        let slot = helper.0.as_ref().map(Arc::clone).expect("a slot");
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(helper);
        let dropped = Instant::now();
        helper_returned(&slot, 1).await;
        assert!(
            dropped.elapsed() < Duration::from_secs(5),
            "the helper kept waiting after it was dropped"
        );
        assert!(matches!(*slot.lock(), State::Cancelled), "told to stop");
        assert!(!slot.done.load(Ordering::Acquire), "nothing was checked");
    }

    /// Waits until the helper thread let go of `slot` (it returned), which
    /// `holders` others hold.
    async fn helper_returned(slot: &Arc<Slot>, holders: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(slot) > holders {
            assert!(Instant::now() < deadline, "the helper never returned");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
