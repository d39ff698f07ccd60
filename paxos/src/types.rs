//! Identifiers and values the core agrees on: nodes, ballots, slots, commands.
//!
//! This module and [`crate::membership`] name each other's types and nothing else: a
//! [`Value::Reconfigure`] carries a membership [`Change`](crate::membership::Change), which is
//! made of node ids and slots from here.

use std::fmt;

/// A member of the cluster. Node ids are unique and never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A Paxos ballot: `(round << 32) | node_id`.
///
/// Ballots compare as integers, so two proposers never share one, and a
/// higher round always wins whatever the node ids. `Ballot::ZERO` is below
/// every ballot a proposer can use (rounds start at 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ballot(pub u64);

impl Ballot {
    /// The ballot no proposer uses; every acceptor starts promised to it.
    pub const ZERO: Ballot = Ballot(0);

    /// The highest round a ballot may have: 2^31 − 1, half of what the
    /// 32 round bits could hold. A ballot from a peer with a higher round is
    /// refused on receipt, so no peer can push this node's rounds to the top
    /// of the range (where it could never campaign again) and no promise
    /// above it is ever made durable. Rounds grow by one per election
    /// attempt: at one attempt every 20 ms, honest nodes need 1.3 years of
    /// uninterrupted dueling to reach it.
    pub const MAX_ROUND: u32 = (1 << 31) - 1;

    /// The highest ballot: [`MAX_ROUND`](Ballot::MAX_ROUND), any node. A
    /// stored promise above it is corruption
    /// ([`RecordRuleError::BallotTooHigh`](crate::RecordRuleError)).
    pub const MAX: Ballot = Ballot(((Ballot::MAX_ROUND as u64) << 32) | u32::MAX as u64);

    /// The ballot of `node` in `round`.
    pub fn new(round: u32, node: NodeId) -> Ballot {
        Ballot((u64::from(round) << 32) | u64::from(node.0))
    }

    /// The round part.
    pub fn round(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The node that owns this ballot.
    pub fn node(self) -> NodeId {
        NodeId(self.0 as u32)
    }

    /// True if the round is at most [`Ballot::MAX_ROUND`] (`ZERO` counts as
    /// usable: it is what a fresh acceptor holds).
    pub fn round_in_range(self) -> bool {
        self.round() <= Ballot::MAX_ROUND
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round(), self.node().0)
    }
}

/// A position in the replicated log. The first slot is 1; `Slot(0)` means
/// "nothing", e.g. the commit index of an empty log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Slot(pub u64);

impl Slot {
    /// The highest slot the core uses: 2^62. Slots above it are refused from
    /// peers (and from disk), so [`Slot::next`] never overflows on any slot
    /// the core holds. At a million slots a second a log reaches it after
    /// 146,000 years.
    pub const MAX: Slot = Slot(1 << 62);

    /// The slot after this one.
    ///
    /// # Panics
    /// On `Slot(u64::MAX)`, which the core never holds (see [`Slot::MAX`]).
    pub fn next(self) -> Slot {
        Slot(self.0.checked_add(1).expect("slot number overflow"))
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One client command: opaque bytes to the core, decoded by the state
/// machine.
pub type Command = Vec<u8>;

/// What a slot holds once chosen: a batch of commands, or a no-op that a new
/// leader uses to fill a hole.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// Fills a slot that carries nothing.
    Noop,
    /// A batch of client commands, applied in order.
    Commands(Vec<Command>),
    /// A membership change (see [`crate::membership`]); always alone in its slot.
    Reconfigure(crate::membership::Change),
}

/// Bytes allowed, on top of its payload, for each slot a message carries:
/// the slot number, a ballot and the nested field tags and lengths of the
/// protobuf wire form (at most 46 bytes, for a slot state in a promise).
pub const SLOT_OVERHEAD_BYTES: usize = 64;

/// Bytes allowed for each command of a value on top of its own bytes: a
/// field tag and a length of up to five bytes.
pub const COMMAND_OVERHEAD_BYTES: usize = 8;

impl Value {
    /// Bytes of command payload in this value (no-ops are empty).
    pub fn payload_bytes(&self) -> usize {
        match self {
            Value::Noop => 0,
            Value::Commands(cmds) => cmds.iter().map(Vec::len).sum(),
            Value::Reconfigure(change) => change.encode().len(),
        }
    }

    /// An upper bound of the bytes this value takes in a message or in
    /// memory, with its slot: the payload plus [`COMMAND_OVERHEAD_BYTES`]
    /// per command and [`SLOT_OVERHEAD_BYTES`]. Byte bounds on messages and
    /// on the log are counted in it.
    pub fn size_bound_bytes(&self) -> usize {
        let commands = match self {
            Value::Noop | Value::Reconfigure(_) => 0,
            Value::Commands(cmds) => cmds.len(),
        };
        SLOT_OVERHEAD_BYTES + self.payload_bytes() + commands * COMMAND_OVERHEAD_BYTES
    }
}
