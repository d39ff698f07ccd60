//! Who votes: the cluster's membership, chosen through the log.
//!
//! A [`Change`] is a log value like any other ([`Value::Reconfigure`](crate::Value)). The
//! membership it makes governs the slots from `i + ACTIVATION_DELAY` on, where `i` is the slot it
//! was chosen in (Lamport's α rule, α = [`ACTIVATION_DELAY`]). A leader never proposes a slot
//! more than `α` above its commit index (its pipeline window is at most `α`), so whoever
//! proposes in slot `s` knows every change chosen at or below `s − α`: the membership governing a
//! slot is a function of chosen values alone, the same for every ballot. Paxos for slot `s` then
//! runs with one fixed set of acceptors, the voters of [`MembershipLog::governing`]`(s)`:
//! Phase 1 needs promises from a quorum of them, Phase 2 acknowledgments from a quorum of them.
//!
//! On top of that, each change adds or removes at most one voter, and a change is only proposed
//! once the previous one governs, so the majorities of consecutive memberships intersect (a
//! check the simulator repeats). That keeps leases and ReadIndex sound across a change: a
//! leader confirms its lease with a quorum of every membership governing its pipeline window.
//!
//! Node ids are never reused: a removed id is remembered as retired, and peers drop its
//! messages.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::types::{NodeId, Slot};

/// α: a change chosen in slot `i` governs slots from `i + ACTIVATION_DELAY` on. The leader's
/// pipeline window (`Config::max_inflight_slots`) may not exceed it. Every node of a cluster
/// must use the same value, so it is a constant of the protocol.
pub const ACTIVATION_DELAY: u64 = 8;

/// One member of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Member {
    /// Its id, unique for the cluster's lifetime.
    pub id: NodeId,
    /// True if it votes (counts toward quorums); false for a learner.
    pub voter: bool,
    /// Where peers reach it (`host:port`, QUIC).
    pub peer_addr: String,
    /// Where clients reach it (`host:port`, QUIC).
    pub client_addr: String,
}

/// A change to the membership, chosen in the log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// Adds a learner: it receives the log but does not vote.
    AddLearner {
        /// The new node's id (never used before).
        id: NodeId,
        /// Where peers reach it.
        peer_addr: String,
        /// Where clients reach it.
        client_addr: String,
    },
    /// Makes a learner a voter.
    Promote(NodeId),
    /// Removes a voter or learner for good; its id is retired.
    Remove(NodeId),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddLearner { id, peer_addr, .. } => {
                write!(f, "add learner {id} at {peer_addr}")
            }
            Change::Promote(id) => write!(f, "promote {id}"),
            Change::Remove(id) => write!(f, "remove {id}"),
        }
    }
}

/// Why a membership change was refused. Nothing of a refused change is applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The id belongs to a current member.
    #[error("node id {0} is already a member")]
    IdInUse(NodeId),
    /// The id belonged to a removed member; ids are never reused.
    #[error("node id {0} was removed before; ids are never reused")]
    IdRetired(NodeId),
    /// Id zero is not a node id.
    #[error("node id 0 is not valid")]
    IdZero,
    /// Another member already has this address.
    #[error("address {0} is already used by node {1}")]
    AddressInUse(String, NodeId),
    /// An address is empty.
    #[error("a member needs a peer address and a client address")]
    MissingAddress,
    /// No member has this id.
    #[error("node {0} is not a member")]
    UnknownMember(NodeId),
    /// The member already votes.
    #[error("node {0} is already a voter")]
    AlreadyVoter(NodeId),
    /// Removing the only voter would leave nobody to choose anything.
    #[error("node {0} is the last voter and cannot be removed")]
    LastVoter(NodeId),
    /// A learner must be caught up before it votes.
    #[error(
        "node {id} is not caught up (it has slot {has}, the leader {leader}); retry when it is"
    )]
    Lagging {
        /// The learner.
        id: NodeId,
        /// Its commit index, as the leader last heard.
        has: Slot,
        /// The leader's commit index.
        leader: Slot,
    },
    /// The previous change does not govern yet (one change at a time).
    #[error("a membership change is in progress; retry when it completes")]
    InProgress,
}

/// The members at one point of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Membership {
    members: BTreeMap<NodeId, Member>,
    retired: BTreeSet<NodeId>,
}

impl Membership {
    /// A cluster's first membership: these voters, no learner.
    pub fn founding(voters: impl IntoIterator<Item = Member>) -> Membership {
        Membership {
            members: voters.into_iter().map(|m| (m.id, m)).collect(),
            retired: BTreeSet::new(),
        }
    }

    /// Every member, in id order.
    pub fn members(&self) -> impl Iterator<Item = &Member> + '_ {
        self.members.values()
    }

    /// The member with this id.
    pub fn get(&self, id: NodeId) -> Option<&Member> {
        self.members.get(&id)
    }

    /// The voters' ids, in order.
    pub fn voters(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.values().filter(|m| m.voter).map(|m| m.id)
    }

    /// Number of voters.
    pub fn voter_count(&self) -> usize {
        self.voters().count()
    }

    /// True if `id` votes here.
    pub fn is_voter(&self, id: NodeId) -> bool {
        self.members.get(&id).is_some_and(|m| m.voter)
    }

    /// True if `id` is a voter or a learner here.
    pub fn is_member(&self, id: NodeId) -> bool {
        self.members.contains_key(&id)
    }

    /// True if `id` was removed (it may never come back).
    pub fn is_retired(&self, id: NodeId) -> bool {
        self.retired.contains(&id)
    }

    /// Ids removed so far.
    pub fn retired(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.retired.iter().copied()
    }

    /// Voters needed for a quorum: a majority.
    pub fn quorum(&self) -> usize {
        self.voter_count() / 2 + 1
    }

    /// True if the voters among `nodes` make a quorum (nodes that do not vote here count for
    /// nothing).
    pub fn has_quorum<'a>(&self, nodes: impl IntoIterator<Item = &'a NodeId>) -> bool {
        nodes.into_iter().filter(|n| self.is_voter(**n)).count() >= self.quorum()
    }

    /// True if `change` is already in force here: the member added with these very addresses,
    /// the learner promoted, the member removed. A retried change (its first attempt chosen
    /// before its caller heard) is in force.
    pub fn has_made(&self, change: &Change) -> bool {
        match change {
            Change::AddLearner {
                id,
                peer_addr,
                client_addr,
            } => self
                .members
                .get(id)
                .is_some_and(|m| m.peer_addr == *peer_addr && m.client_addr == *client_addr),
            Change::Promote(id) => self.is_voter(*id),
            Change::Remove(id) => self.is_retired(*id),
        }
    }

    /// The membership after `change`, or why it cannot be made.
    pub fn apply(&self, change: &Change) -> Result<Membership, ChangeError> {
        let mut next = self.clone();
        match change {
            Change::AddLearner {
                id,
                peer_addr,
                client_addr,
            } => {
                if id.0 == 0 {
                    return Err(ChangeError::IdZero);
                }
                if self.retired.contains(id) {
                    return Err(ChangeError::IdRetired(*id));
                }
                if self.members.contains_key(id) {
                    return Err(ChangeError::IdInUse(*id));
                }
                if peer_addr.is_empty() || client_addr.is_empty() {
                    return Err(ChangeError::MissingAddress);
                }
                for member in self.members.values() {
                    for addr in [peer_addr, client_addr] {
                        if *addr == member.peer_addr || *addr == member.client_addr {
                            return Err(ChangeError::AddressInUse(addr.clone(), member.id));
                        }
                    }
                }
                next.members.insert(
                    *id,
                    Member {
                        id: *id,
                        voter: false,
                        peer_addr: peer_addr.clone(),
                        client_addr: client_addr.clone(),
                    },
                );
            }
            Change::Promote(id) => {
                let member = next
                    .members
                    .get_mut(id)
                    .ok_or(ChangeError::UnknownMember(*id))?;
                if member.voter {
                    return Err(ChangeError::AlreadyVoter(*id));
                }
                member.voter = true;
            }
            Change::Remove(id) => {
                if !self.members.contains_key(id) {
                    return Err(ChangeError::UnknownMember(*id));
                }
                if self.is_voter(*id) && self.voter_count() == 1 {
                    return Err(ChangeError::LastVoter(*id));
                }
                next.members.remove(id);
                next.retired.insert(*id);
            }
        }
        Ok(next)
    }
}

/// The memberships that govern the slots from some point on: each entry governs from its slot
/// to the next entry's. Entries for slots not yet reached are changes chosen but not yet in
/// force (at most [`ACTIVATION_DELAY`] slots ahead of the change).
///
/// An empty log means "not known yet": a node joining a cluster starts so, and learns its
/// membership with its first snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipLog {
    by_first_slot: BTreeMap<Slot, Membership>,
}

impl MembershipLog {
    /// The log of a new cluster: `founding` governs from the first slot.
    pub fn new(founding: Membership) -> MembershipLog {
        MembershipLog {
            by_first_slot: BTreeMap::from([(Slot(1), founding)]),
        }
    }

    /// The log as stored: entries by the first slot each governs.
    pub fn from_entries(entries: impl IntoIterator<Item = (Slot, Membership)>) -> MembershipLog {
        MembershipLog {
            by_first_slot: entries.into_iter().collect(),
        }
    }

    /// Entries by the first slot each governs, in slot order.
    pub fn entries(&self) -> impl Iterator<Item = (Slot, &Membership)> + '_ {
        self.by_first_slot.iter().map(|(s, m)| (*s, m))
    }

    /// True if no membership is known (a joining node).
    pub fn is_unknown(&self) -> bool {
        self.by_first_slot.is_empty()
    }

    /// The membership that governs `slot` (empty if none is known).
    pub fn governing(&self, slot: Slot) -> &Membership {
        static NONE: std::sync::OnceLock<Membership> = std::sync::OnceLock::new();
        self.by_first_slot
            .range(..=slot)
            .next_back()
            .or_else(|| self.by_first_slot.iter().next())
            .map(|(_, m)| m)
            .unwrap_or_else(|| NONE.get_or_init(Membership::default))
    }

    /// The newest membership chosen, in force or not.
    pub fn latest(&self) -> &Membership {
        self.governing(Slot::MAX)
    }

    /// The first slot the newest membership governs.
    pub fn latest_from(&self) -> Slot {
        self.by_first_slot
            .keys()
            .next_back()
            .copied()
            .unwrap_or_default()
    }

    /// The distinct memberships governing `first..=last`, in order.
    pub fn governing_range(&self, first: Slot, last: Slot) -> Vec<&Membership> {
        let mut out = vec![self.governing(first)];
        out.extend(
            self.by_first_slot
                .range(Slot(first.0 + 1)..=last)
                .map(|(_, m)| m),
        );
        out
    }

    /// The memberships governing the slots a leader may have in flight when
    /// `first` is the first slot not chosen: `first ..= first +
    /// ACTIVATION_DELAY − 1`, all known then. A candidate needs promises
    /// from a quorum of each, a leader's lease an acknowledgment from a
    /// quorum of each.
    pub(crate) fn window(&self, first: Slot) -> Vec<&Membership> {
        self.governing_range(first, Slot(first.0 + ACTIVATION_DELAY - 1))
    }

    /// Every member (voter or learner) of every membership, in order,
    /// without repeats.
    pub(crate) fn member_ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .entries()
            .flat_map(|(_, m)| m.members().map(|member| member.id))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Records `change`, chosen in `slot`: applied to the newest membership, it governs from
    /// `slot + delay` (`delay` is [`ACTIVATION_DELAY`]; bug injection shortens it). A change
    /// that cannot be applied changes nothing, deterministically on every node.
    pub fn record_chosen(
        &mut self,
        slot: Slot,
        change: &Change,
        delay: u64,
    ) -> Result<(), ChangeError> {
        let next = self.latest().apply(change)?;
        let from = Slot(slot.0 + delay).max(self.latest_from().next());
        self.by_first_slot.insert(from, next);
        Ok(())
    }

    /// Forgets entries that govern no slot from `slot` on.
    pub fn forget_before(&mut self, slot: Slot) {
        let keep_from = self
            .by_first_slot
            .range(..=slot)
            .next_back()
            .map(|(s, _)| *s);
        if let Some(keep_from) = keep_from {
            self.by_first_slot = self.by_first_slot.split_off(&keep_from);
        }
    }
}

/// A stored or received membership or change that does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed membership encoding: {0}")]
pub struct DecodeError(pub &'static str);

const CHANGE_ADD: u8 = 1;
const CHANGE_PROMOTE: u8 = 2;
const CHANGE_REMOVE: u8 = 3;
/// Longest address accepted when decoding (a DNS name and a port fit well within).
const MAX_ADDR_BYTES: usize = 1024;
/// Most members (and retired ids) a decoded membership may hold.
const MAX_MEMBERS: usize = 1 << 16;

impl Change {
    /// The change's bytes, as the log and the wire carry them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Change::AddLearner {
                id,
                peer_addr,
                client_addr,
            } => {
                out.push(CHANGE_ADD);
                out.extend_from_slice(&id.0.to_le_bytes());
                put_str(&mut out, peer_addr);
                put_str(&mut out, client_addr);
            }
            Change::Promote(id) => {
                out.push(CHANGE_PROMOTE);
                out.extend_from_slice(&id.0.to_le_bytes());
            }
            Change::Remove(id) => {
                out.push(CHANGE_REMOVE);
                out.extend_from_slice(&id.0.to_le_bytes());
            }
        }
        out
    }

    /// Decodes [`Change::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Change, DecodeError> {
        let mut r = Reader(bytes);
        let change = match r.u8()? {
            CHANGE_ADD => Change::AddLearner {
                id: NodeId(r.u32()?),
                peer_addr: r.str()?,
                client_addr: r.str()?,
            },
            CHANGE_PROMOTE => Change::Promote(NodeId(r.u32()?)),
            CHANGE_REMOVE => Change::Remove(NodeId(r.u32()?)),
            _ => return Err(DecodeError("unknown change kind")),
        };
        r.end()?;
        Ok(change)
    }
}

impl MembershipLog {
    /// The log's bytes, for the state machine's table and snapshots.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.by_first_slot.len() as u32).to_le_bytes());
        for (slot, membership) in &self.by_first_slot {
            out.extend_from_slice(&slot.0.to_le_bytes());
            out.extend_from_slice(&(membership.members.len() as u32).to_le_bytes());
            for m in membership.members.values() {
                out.extend_from_slice(&m.id.0.to_le_bytes());
                out.push(u8::from(m.voter));
                put_str(&mut out, &m.peer_addr);
                put_str(&mut out, &m.client_addr);
            }
            out.extend_from_slice(&(membership.retired.len() as u32).to_le_bytes());
            for id in &membership.retired {
                out.extend_from_slice(&id.0.to_le_bytes());
            }
        }
        out
    }

    /// Decodes [`MembershipLog::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<MembershipLog, DecodeError> {
        let mut r = Reader(bytes);
        let mut log = MembershipLog::default();
        let entries = r.count()?;
        for _ in 0..entries {
            let slot = Slot(r.u64()?);
            if slot.0 == 0 || slot > Slot::MAX {
                return Err(DecodeError("slot out of range"));
            }
            let mut membership = Membership::default();
            for _ in 0..r.count()? {
                let id = NodeId(r.u32()?);
                let voter = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError("bad voter flag")),
                };
                let member = Member {
                    id,
                    voter,
                    peer_addr: r.str()?,
                    client_addr: r.str()?,
                };
                membership.members.insert(id, member);
            }
            for _ in 0..r.count()? {
                membership.retired.insert(NodeId(r.u32()?));
            }
            log.by_first_slot.insert(slot, membership);
        }
        r.end()?;
        Ok(log)
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > MAX_MEMBERS {
            return Err(DecodeError("too many entries"));
        }
        Ok(n)
    }

    fn str(&mut self) -> Result<String, DecodeError> {
        let n = self.u32()? as usize;
        if n > MAX_ADDR_BYTES {
            return Err(DecodeError("address too long"));
        }
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| DecodeError("address not UTF-8"))
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
}
