//! What a new leader proposes, from the promises that elected it: two pure
//! functions, no state.
//!
//! The rule (Phase 1 of Paxos, for every slot at once): for each slot at or
//! above the candidate's first slot, a value some promise reports chosen is
//! the slot's value; otherwise the value accepted at the highest ballot;
//! otherwise (a hole) a no-op. [`merge_promises`] applies it to the
//! promises, [`plan`] then sets it against what this node already knows:
//! values known chosen before the first slot that needs proposing are
//! learned at once, every later slot through the last one known is
//! proposed again at the new ballot.
//!
//! Cost: one pass over the promises (`O(n log n)` in the slots reported),
//! then one over the slots from the first to propose to the last known.

use std::collections::BTreeMap;

use crate::storage::SlotState;
use crate::types::{NodeId, Slot, Value};

/// Two promises report different values chosen in `slot`: the cluster's
/// safety is broken somewhere, and the candidate must not lead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConflictingChosen {
    /// The slot with two chosen values.
    pub(crate) slot: Slot,
}

/// Merges complete promises into one state per slot: the value reported
/// chosen if any promise knows it, else the value accepted at the highest
/// ballot (the first one reported, should two share a ballot).
///
/// Promises from peers were checked on arrival (`peer_input` refuses one
/// that contradicts a value reported chosen before), but this node's own
/// promise was not, and its acceptor may have learned a value since; so a
/// contradiction is still possible here, and is an error.
pub(crate) fn merge_promises(
    promises: BTreeMap<NodeId, Vec<(Slot, SlotState)>>,
) -> Result<BTreeMap<Slot, SlotState>, ConflictingChosen> {
    let mut merged: BTreeMap<Slot, SlotState> = BTreeMap::new();
    for (slot, state) in promises.into_values().flatten() {
        match (merged.get(&slot), &state) {
            (Some(SlotState::Chosen(known)), SlotState::Chosen(value)) if known != value => {
                return Err(ConflictingChosen { slot });
            }
            (Some(SlotState::Chosen(_)), _) => {}
            (
                Some(SlotState::Accepted {
                    ballot: highest, ..
                }),
                SlotState::Accepted { ballot, .. },
            ) if ballot <= highest => {}
            _ => {
                merged.insert(slot, state);
            }
        }
    }
    Ok(merged)
}

/// What a new leader does with the merged promises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Values known chosen (from a promise) in the slots before the first
    /// one to propose: the leader learns them at once, in slot order.
    pub(crate) learned: Vec<(Slot, Value)>,
    /// The values to propose at the new ballot, from the first slot to
    /// propose through the last slot known anywhere, without gaps (holes
    /// hold no-ops). Never empty: with nothing to recover it holds one
    /// no-op, since a leader serves reads only once a value of its own
    /// ballot is chosen.
    pub(crate) to_propose: BTreeMap<Slot, Value>,
}

impl Recovery {
    /// The last slot recovered: reads wait until it is chosen.
    pub(crate) fn through(&self) -> Slot {
        *self.to_propose.keys().next_back().expect("never empty")
    }
}

/// Plans a new leader's first proposals from the `merged` promises (see
/// [`merge_promises`]), for a candidate that asked from `first_slot`, on a
/// node whose commit index is `commit` and whose log is `log`.
///
/// A slot this node knows chosen keeps its value; a slot known chosen from
/// a promise is learned if no slot before it needs proposing. From the first
/// slot that needs proposing on, every slot through the last one known (in a
/// promise, in `log` or the commit index) is proposed again, known chosen
/// values included (with the same value), so that the leader's slots stay
/// contiguous.
pub(crate) fn plan(
    first_slot: Slot,
    commit: Slot,
    log: &BTreeMap<Slot, SlotState>,
    mut merged: BTreeMap<Slot, SlotState>,
) -> Recovery {
    let start = first_slot.max(commit.next());
    let last_known = [
        merged.keys().next_back().copied(),
        log.keys().next_back().copied(),
        Some(commit),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or_default();
    let known_chosen = |slot: Slot| match log.get(&slot) {
        Some(SlotState::Chosen(value)) => Some(value),
        _ => None,
    };
    let mut learned = Vec::new();
    let mut to_propose = BTreeMap::new();
    for slot in (start.0..=last_known.0).map(Slot) {
        // A value known chosen before the first slot to propose is
        // learned; after it, it is proposed again (the same value).
        let proposing = !to_propose.is_empty();
        let value = match (known_chosen(slot), merged.remove(&slot)) {
            (Some(_), _) if !proposing => continue,
            (None, Some(SlotState::Chosen(value))) if !proposing => {
                learned.push((slot, value));
                continue;
            }
            (Some(chosen), _) => chosen.clone(),
            (None, Some(SlotState::Chosen(value) | SlotState::Accepted { value, .. })) => value,
            (None, None) => Value::Noop,
        };
        to_propose.insert(slot, value);
    }
    if to_propose.is_empty() {
        // Reads need a value chosen at our own ballot.
        let next = Slot(last_known.0.max(start.0 - 1) + 1);
        to_propose.insert(next, Value::Noop);
    }
    Recovery {
        learned,
        to_propose,
    }
}

/// Bug injection: forget every value the promises reported, as if each slot
/// had been accepted with a no-op at the lowest ballot.
#[cfg(feature = "bug-injection")]
pub(crate) fn ignore_values(merged: &mut BTreeMap<Slot, SlotState>) {
    for state in merged.values_mut() {
        *state = SlotState::Accepted {
            ballot: crate::types::Ballot::ZERO,
            value: Value::Noop,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Ballot;

    fn cmd(byte: u8) -> Value {
        Value::Commands(vec![vec![byte]])
    }

    fn accepted(round: u32, value: Value) -> SlotState {
        SlotState::Accepted {
            ballot: Ballot::new(round, NodeId(9)),
            value,
        }
    }

    fn promises(
        by: impl IntoIterator<Item = (u32, Vec<(u64, SlotState)>)>,
    ) -> BTreeMap<NodeId, Vec<(Slot, SlotState)>> {
        by.into_iter()
            .map(|(node, slots)| {
                let slots = slots.into_iter().map(|(s, st)| (Slot(s), st)).collect();
                (NodeId(node), slots)
            })
            .collect()
    }

    #[test]
    fn the_value_accepted_at_the_highest_ballot_wins() {
        let merged = merge_promises(promises([
            (1, vec![(5, accepted(2, cmd(1)))]),
            (2, vec![(5, accepted(3, cmd(2)))]),
            (3, vec![(5, accepted(1, cmd(3)))]),
        ]))
        .unwrap();
        assert_eq!(merged[&Slot(5)], accepted(3, cmd(2)));
    }

    #[test]
    fn a_value_reported_chosen_beats_any_accepted_one() {
        let merged = merge_promises(promises([
            (1, vec![(5, SlotState::Chosen(cmd(1)))]),
            (2, vec![(5, accepted(7, cmd(2)))]),
        ]))
        .unwrap();
        assert_eq!(merged[&Slot(5)], SlotState::Chosen(cmd(1)));
        let merged = merge_promises(promises([
            (1, vec![(5, accepted(7, cmd(2)))]),
            (2, vec![(5, SlotState::Chosen(cmd(1)))]),
        ]))
        .unwrap();
        assert_eq!(merged[&Slot(5)], SlotState::Chosen(cmd(1)));
    }

    #[test]
    fn two_values_reported_chosen_in_one_slot_are_an_error() {
        let error = merge_promises(promises([
            (1, vec![(4, SlotState::Chosen(cmd(1)))]),
            (2, vec![(4, SlotState::Chosen(cmd(2)))]),
        ]));
        assert_eq!(error, Err(ConflictingChosen { slot: Slot(4) }));
        let same = merge_promises(promises([
            (1, vec![(4, SlotState::Chosen(cmd(1)))]),
            (2, vec![(4, SlotState::Chosen(cmd(1)))]),
        ]));
        assert!(same.is_ok());
    }

    #[test]
    fn holes_are_filled_with_noops_and_every_slot_through_the_last_is_proposed() {
        let merged = merge_promises(promises([
            (1, vec![(3, accepted(1, cmd(3)))]),
            (2, vec![(6, accepted(2, cmd(6)))]),
        ]))
        .unwrap();
        let recovery = plan(Slot(2), Slot(1), &BTreeMap::new(), merged);
        assert!(recovery.learned.is_empty());
        assert_eq!(
            recovery.to_propose.into_iter().collect::<Vec<_>>(),
            vec![
                (Slot(2), Value::Noop),
                (Slot(3), cmd(3)),
                (Slot(4), Value::Noop),
                (Slot(5), Value::Noop),
                (Slot(6), cmd(6)),
            ]
        );
    }

    #[test]
    fn chosen_values_before_the_first_gap_are_learned_and_later_ones_proposed_again() {
        let merged = merge_promises(promises([(
            1,
            vec![
                (2, SlotState::Chosen(cmd(2))),
                (3, accepted(1, cmd(3))),
                (4, SlotState::Chosen(cmd(4))),
            ],
        )]))
        .unwrap();
        let recovery = plan(Slot(2), Slot(1), &BTreeMap::new(), merged);
        assert_eq!(recovery.learned, vec![(Slot(2), cmd(2))]);
        assert_eq!(recovery.to_propose.keys().next(), Some(&Slot(3)));
        assert_eq!(recovery.through(), Slot(4));
        assert_eq!(recovery.to_propose[&Slot(4)], cmd(4));
    }

    #[test]
    fn values_this_node_knows_chosen_are_kept_and_not_learned_again() {
        let log = BTreeMap::from([
            (Slot(2), SlotState::Chosen(cmd(2))),
            (Slot(4), SlotState::Chosen(cmd(4))),
        ]);
        // A promise reports an older accepted value in a slot this node
        // knows chosen: the chosen value stands.
        let merged = merge_promises(promises([(1, vec![(4, accepted(1, cmd(9)))])])).unwrap();
        let recovery = plan(Slot(2), Slot(1), &log, merged);
        assert!(recovery.learned.is_empty(), "slot 2 is known already");
        assert_eq!(
            recovery.to_propose.into_iter().collect::<Vec<_>>(),
            vec![(Slot(3), Value::Noop), (Slot(4), cmd(4))]
        );
    }

    #[test]
    fn with_nothing_to_recover_one_noop_is_proposed_after_the_commit_index() {
        let recovery = plan(Slot(3), Slot(7), &BTreeMap::new(), BTreeMap::new());
        assert!(recovery.learned.is_empty());
        assert_eq!(
            recovery.to_propose.into_iter().collect::<Vec<_>>(),
            vec![(Slot(8), Value::Noop)]
        );
        // Everything reported is chosen: learned, then one no-op after it.
        let merged = merge_promises(promises([(1, vec![(1, SlotState::Chosen(cmd(1)))])])).unwrap();
        let recovery = plan(Slot(1), Slot(0), &BTreeMap::new(), merged);
        assert_eq!(recovery.learned, vec![(Slot(1), cmd(1))]);
        assert_eq!(
            recovery.to_propose.into_iter().collect::<Vec<_>>(),
            vec![(Slot(2), Value::Noop)]
        );
    }
}
