//! Conversion between [`synod_paxos::Envelope`] and its protobuf wire form.
//!
//! Decoding treats its input as untrusted: every malformed input (bad
//! protobuf, a missing required field or oneof) is a [`WireError`], never a
//! panic. Absent scalars decode as zero, as proto3 defines.

use prost::Message as _;
use synod_paxos::{Ballot, Change, Envelope, Message, NodeId, Slot, SlotState, Value};

use crate::error::WireError;
use crate::proto::peer as pb;
use pb::peer_envelope::Message as PbMessage;

/// Encodes `envelope` into the bytes of one peer frame (without the length
/// prefix). Never fails: every envelope has a wire form.
pub fn encode_peer(envelope: &Envelope) -> Vec<u8> {
    to_proto(envelope).encode_to_vec()
}

/// Decodes the bytes of one peer frame (without the length prefix).
///
/// Errors on malformed protobuf and on an absent message, value or slot
/// state; never panics, whatever `bytes` holds.
pub fn decode_peer(bytes: &[u8]) -> Result<Envelope, WireError> {
    let wire = pb::PeerEnvelope::decode(bytes)?;
    from_proto(wire)
}

fn to_proto(envelope: &Envelope) -> pb::PeerEnvelope {
    let message = match &envelope.message {
        Message::Prepare { ballot, first_slot } => PbMessage::Prepare(pb::Prepare {
            ballot: ballot.0,
            first_slot: first_slot.0,
        }),
        Message::Promise {
            ballot,
            compacted_through,
            first_slot,
            slots,
            more_from,
        } => PbMessage::Promise(pb::Promise {
            ballot: ballot.0,
            compacted_through: compacted_through.0,
            slots: slots
                .iter()
                .map(|(slot, state)| slot_state_to_proto(*slot, state))
                .collect(),
            first_slot: first_slot.0,
            // Slot 0 is never a slot, so it stands for "complete".
            more_from: more_from.map_or(0, |slot| slot.0),
        }),
        Message::Accept {
            ballot,
            entries,
            commit,
            lazy,
        } => PbMessage::Accept(pb::Accept {
            ballot: ballot.0,
            entries: entries_to_proto(entries),
            commit: commit.0,
            lazy: *lazy,
        }),
        Message::Accepted { ballot, slots } => PbMessage::Accepted(pb::Accepted {
            ballot: ballot.0,
            slots: slots.iter().map(|slot| slot.0).collect(),
        }),
        Message::Reject { ballot, promised } => PbMessage::Reject(pb::Reject {
            ballot: ballot.0,
            promised: promised.0,
        }),
        Message::Heartbeat {
            ballot,
            commit,
            round,
        } => PbMessage::Heartbeat(pb::Heartbeat {
            ballot: ballot.0,
            commit: commit.0,
            round: *round,
        }),
        Message::HeartbeatAck {
            ballot,
            round,
            commit,
        } => PbMessage::HeartbeatAck(pb::HeartbeatAck {
            ballot: ballot.0,
            round: *round,
            commit: commit.0,
        }),
        Message::Fetch { first_slot } => PbMessage::Fetch(pb::Fetch {
            first_slot: first_slot.0,
        }),
        Message::Chosen { entries } => PbMessage::Chosen(pb::Chosen {
            entries: entries_to_proto(entries),
        }),
        Message::ReadIndex { request } => PbMessage::ReadIndex(pb::ReadIndex { request: *request }),
        Message::ReadIndexReply {
            ballot,
            request,
            index,
        } => PbMessage::ReadIndexReply(pb::ReadIndexReply {
            ballot: ballot.0,
            request: *request,
            granted: index.is_some(),
            index: index.map_or(0, |slot| slot.0),
        }),
    };
    pb::PeerEnvelope {
        from: envelope.from.0,
        to: envelope.to.0,
        message: Some(message),
    }
}

fn value_to_proto(value: &Value) -> pb::Value {
    let kind = match value {
        Value::Noop => pb::value::Kind::Noop(pb::Noop {}),
        Value::Commands(commands) => pb::value::Kind::Commands(pb::Commands {
            commands: commands.clone(),
        }),
        Value::Reconfigure(change) => pb::value::Kind::Reconfigure(change.encode()),
    };
    pb::Value { kind: Some(kind) }
}

fn entries_to_proto(entries: &[(Slot, Value)]) -> Vec<pb::SlotValue> {
    entries
        .iter()
        .map(|(slot, value)| pb::SlotValue {
            slot: slot.0,
            value: Some(value_to_proto(value)),
        })
        .collect()
}

fn slot_state_to_proto(slot: Slot, state: &SlotState) -> pb::SlotState {
    let state = match state {
        SlotState::Accepted { ballot, value } => {
            pb::slot_state::State::Accepted(pb::AcceptedState {
                ballot: ballot.0,
                value: Some(value_to_proto(value)),
            })
        }
        SlotState::Chosen(value) => pb::slot_state::State::Chosen(value_to_proto(value)),
    };
    pb::SlotState {
        slot: slot.0,
        state: Some(state),
    }
}

fn from_proto(wire: pb::PeerEnvelope) -> Result<Envelope, WireError> {
    let message = match wire.message.ok_or(WireError::MissingField("message"))? {
        PbMessage::Prepare(m) => Message::Prepare {
            ballot: Ballot(m.ballot),
            first_slot: Slot(m.first_slot),
        },
        PbMessage::Promise(m) => Message::Promise {
            ballot: Ballot(m.ballot),
            compacted_through: Slot(m.compacted_through),
            first_slot: Slot(m.first_slot),
            slots: m
                .slots
                .into_iter()
                .map(slot_state_from_proto)
                .collect::<Result<_, _>>()?,
            more_from: (m.more_from != 0).then_some(Slot(m.more_from)),
        },
        PbMessage::Accept(m) => Message::Accept {
            ballot: Ballot(m.ballot),
            entries: entries_from_proto(m.entries)?,
            commit: Slot(m.commit),
            lazy: m.lazy,
        },
        PbMessage::Accepted(m) => Message::Accepted {
            ballot: Ballot(m.ballot),
            slots: m.slots.into_iter().map(Slot).collect(),
        },
        PbMessage::Reject(m) => Message::Reject {
            ballot: Ballot(m.ballot),
            promised: Ballot(m.promised),
        },
        PbMessage::Heartbeat(m) => Message::Heartbeat {
            ballot: Ballot(m.ballot),
            commit: Slot(m.commit),
            round: m.round,
        },
        PbMessage::HeartbeatAck(m) => Message::HeartbeatAck {
            ballot: Ballot(m.ballot),
            round: m.round,
            commit: Slot(m.commit),
        },
        PbMessage::Fetch(m) => Message::Fetch {
            first_slot: Slot(m.first_slot),
        },
        PbMessage::Chosen(m) => Message::Chosen {
            entries: entries_from_proto(m.entries)?,
        },
        PbMessage::ReadIndex(m) => Message::ReadIndex { request: m.request },
        PbMessage::ReadIndexReply(m) => Message::ReadIndexReply {
            ballot: Ballot(m.ballot),
            request: m.request,
            index: m.granted.then_some(Slot(m.index)),
        },
    };
    Ok(Envelope {
        from: NodeId(wire.from),
        to: NodeId(wire.to),
        message,
    })
}

fn value_from_proto(value: Option<pb::Value>) -> Result<Value, WireError> {
    match value.and_then(|v| v.kind) {
        Some(pb::value::Kind::Noop(_)) => Ok(Value::Noop),
        Some(pb::value::Kind::Commands(c)) => Ok(Value::Commands(c.commands)),
        Some(pb::value::Kind::Reconfigure(bytes)) => Change::decode(&bytes)
            .map(Value::Reconfigure)
            .map_err(|e| WireError::Protobuf(e.to_string())),
        None => Err(WireError::MissingField("value")),
    }
}

fn entries_from_proto(entries: Vec<pb::SlotValue>) -> Result<Vec<(Slot, Value)>, WireError> {
    entries
        .into_iter()
        .map(|e| Ok((Slot(e.slot), value_from_proto(e.value)?)))
        .collect()
}

fn slot_state_from_proto(state: pb::SlotState) -> Result<(Slot, SlotState), WireError> {
    let slot = Slot(state.slot);
    let state = match state.state.ok_or(WireError::MissingField("slot_state"))? {
        pb::slot_state::State::Accepted(a) => SlotState::Accepted {
            ballot: Ballot(a.ballot),
            value: value_from_proto(a.value)?,
        },
        pb::slot_state::State::Chosen(v) => SlotState::Chosen(value_from_proto(Some(v))?),
    };
    Ok((slot, state))
}
