//! Stepping around crashes that are already reported, so a run can look for new ones.
//!
//! With `SYNOD_FUZZ_SKIP_KNOWN=1` in the environment, targets skip the inputs that reach a crash
//! listed in issue 11 (finding 11) and not yet fixed. Without it (the default) every input runs,
//! so a target keeps checking that the fixes hold. Remove a predicate here once its fix lands.

use std::sync::OnceLock;

use synod_paxos::{Ballot, DurableState, Record, Slot};

/// True if `SYNOD_FUZZ_SKIP_KNOWN` is set to anything but `0` or the empty string.
pub fn skip_known() -> bool {
    static SKIP: OnceLock<bool> = OnceLock::new();
    *SKIP.get_or_init(|| {
        std::env::var("SYNOD_FUZZ_SKIP_KNOWN").is_ok_and(|v| !v.is_empty() && v != "0")
    })
}

/// A ballot in round `u32::MAX`: promised, it panics `ballot rounds exhausted` at the node's
/// next election (known crash: a peer's `Prepare{ballot: u64::MAX}`).
pub fn is_last_round(ballot: Ballot) -> bool {
    ballot.round() == u32::MAX
}

/// A slot so high that a leader filling no-ops up to it runs out of memory, or that `next()`
/// overflows (known crashes: huge slots in promises, `Compacted(u64::MAX)`).
pub fn is_huge_slot(slot: Slot) -> bool {
    slot.0 > 1 << 32
}

/// A revision close enough to `u64::MAX` that the next write or watch read overflows it
/// (known crash: a snapshot at revision u64::MAX is installed).
pub fn is_near_max_revision(revision: u64) -> bool {
    revision > u64::MAX - (1 << 32)
}

/// True if `records`, replayed in order, break an acceptor rule that
/// [`DurableState::apply`] asserts (a promise going down, an accept above the promise, a
/// chosen value changing) or overflow a slot (known crash: `WalLog::open` panics on such a
/// log). Checked by replaying them with panics caught and the panic hook silenced.
pub fn breaks_acceptor_rules(records: &[Record]) -> bool {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| {
        let mut state = DurableState::default();
        for record in records {
            state.apply(record.clone());
        }
    });
    std::panic::set_hook(hook);
    outcome.is_err()
}
