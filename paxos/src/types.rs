//! Identifiers and values the core agrees on: nodes, ballots, slots, commands.

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
    /// The slot after this one.
    pub fn next(self) -> Slot {
        Slot(self.0 + 1)
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
}

impl Value {
    /// Bytes of command payload in this value (no-ops are empty).
    pub fn payload_bytes(&self) -> usize {
        match self {
            Value::Noop => 0,
            Value::Commands(cmds) => cmds.iter().map(Vec::len).sum(),
        }
    }
}
