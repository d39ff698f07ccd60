//! One-line descriptions of messages for traces.

use synod_paxos::{Envelope, Message, Value};

/// A one-line summary of a message for traces.
pub fn describe(envelope: &Envelope) -> String {
    let body = match &envelope.message {
        Message::Prepare { ballot, first_slot } => {
            format!("Prepare b={ballot} from slot {first_slot}")
        }
        Message::Promise { ballot, slots, .. } => {
            format!("Promise b={ballot} {} slots", slots.len())
        }
        Message::Accept {
            ballot,
            entries,
            commit,
            lazy,
        } => format!(
            "Accept{} b={ballot} slots {:?} commit {commit}",
            if *lazy { " (lazy)" } else { "" },
            entries
                .iter()
                .map(|(s, v)| format!("{s}:{}", describe_value(v)))
                .collect::<Vec<_>>()
        ),
        Message::Accepted { ballot, slots } => format!("Accepted b={ballot} slots {slots:?}"),
        Message::Reject { ballot, promised } => format!("Reject b={ballot} promised {promised}"),
        Message::Heartbeat {
            ballot,
            commit,
            round,
        } => format!("Heartbeat b={ballot} commit {commit} round {round}"),
        Message::HeartbeatAck {
            ballot,
            round,
            commit,
        } => format!("HeartbeatAck b={ballot} round {round} commit {commit}"),
        Message::Fetch { first_slot } => format!("Fetch from {first_slot}"),
        Message::Chosen { entries } => format!("Chosen {} entries", entries.len()),
        Message::ReadIndex { request } => format!("ReadIndex request {request}"),
        Message::ReadIndexReply {
            ballot,
            request,
            index,
        } => format!("ReadIndexReply b={ballot} request {request} index {index:?}"),
    };
    format!("{} -> {} {body}", envelope.from, envelope.to)
}

pub fn describe_value(value: &Value) -> String {
    match value {
        Value::Noop => "noop".to_string(),
        Value::Commands(commands) => format!("{} cmds", commands.len()),
        Value::Reconfigure(change) => format!("membership: {change}"),
    }
}
