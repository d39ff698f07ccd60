//! The exactly-once table: per client, its last sequence number and the response it got.
//!
//! Rule (see also [`crate::StateMachine`]): for a decoded request from client `c` (not 0) with
//! sequence `s >= 1`, whether or not its op is valid:
//! - `c` remembered with last sequence `l`: `s == l` gets the recorded response (nothing is
//!   applied again), `s < l` is refused as stale, `s > l` is applied and recorded;
//! - `c` not remembered: `s == 1` is applied and recorded (a new client); `s > 1` is refused as an
//!   unknown client, because the client was forgotten and a retry can no longer be told from a
//!   new request.
//!
//! The table holds at most `max_clients` clients. Recording a client that is not remembered while
//! the table is full first forgets the client whose last request was applied longest ago, i.e.
//! the smallest (slot, position in batch) of its record. The order depends only on the log, so
//! every node forgets the same clients, and each eviction costs O(log n).
//!
//! That order, [`DedupAges`], is kept in memory and derived from `sm_dedup` when first needed.
//! (It was once a table of its own, `sm_dedup_age`; keeping it in redb cost two B-tree writes
//! per command, about as much as the record itself, and it holds nothing the records do not.)
//!
//! A request reads its client's record once: [`admit`] hands what [`remember`] needs (where
//! the client's last request was applied) over in its [`Fresh`] admission.

use std::collections::BTreeMap;

use prost::Message;
use redb::{ReadableTable, ReadableTableMetadata, Table};

use crate::error::StorageError;
use crate::tables::{decode_record, DedupRecord};
use synod_wire::response::Response;
use synod_wire::RequestError;

/// What to do with a request, given the exactly-once table.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Apply it and record its response ([`remember`] it).
    Fresh(Fresh),
    /// A retry of the client's last request: answer with the recorded response.
    Replay(Response),
    /// Refuse it (stale sequence, or unknown client).
    Refused(RequestError),
}

/// A request admitted as fresh: what [`remember`] needs besides its response, so that it does
/// not read and decode the client's record again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fresh {
    client_id: u64,
    seq: u64,
    /// Where the client's last request was applied, as `sm_dedup` holds it; `None` for a client
    /// not remembered (a new one).
    previous: Option<AppliedAt>,
}

/// Decide what to do with request `seq` of `client_id` (not 0, `seq >= 1`).
pub(crate) fn admit(
    dedup: &impl ReadableTable<u64, &'static [u8]>,
    client_id: u64,
    seq: u64,
) -> Result<Admission, StorageError> {
    debug_assert!(client_id != 0 && seq >= 1);
    let Some(guard) = dedup.get(client_id)? else {
        return Ok(if seq == 1 {
            Admission::Fresh(Fresh {
                client_id,
                seq,
                previous: None,
            })
        } else {
            Admission::Refused(RequestError::UnknownClient { client_id, seq })
        });
    };
    let record: DedupRecord = decode_record("sm_dedup", guard.value())?;
    Ok(match seq.cmp(&record.seq) {
        std::cmp::Ordering::Greater => Admission::Fresh(Fresh {
            client_id,
            seq,
            previous: Some(AppliedAt {
                slot: record.slot,
                position: record.position,
            }),
        }),
        std::cmp::Ordering::Less => Admission::Refused(RequestError::StaleSequence {
            client_id,
            seq,
            last_seq: record.seq,
        }),
        std::cmp::Ordering::Equal => match record.response {
            Some(response) => Admission::Replay(response),
            None => {
                return Err(StorageError::Corrupt {
                    table: "sm_dedup",
                    reason: format!("client {client_id} has no recorded response"),
                })
            }
        },
    })
}

/// Where a request was applied: its slot and position in the slot's batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AppliedAt {
    pub slot: u64,
    pub position: u64,
}

/// The eviction order of the exactly-once table: every remembered client by where its last
/// request was applied, oldest first. A pure function of `sm_dedup` (each record says where),
/// so every node holds the same one; [`remember`] keeps the two in step.
#[derive(Debug, Default)]
pub(crate) struct DedupAges {
    clients: BTreeMap<AppliedAt, u64>,
}

impl DedupAges {
    /// The order of the clients `dedup` remembers (reads every record).
    ///
    /// # Errors
    /// A record that does not decode, or two clients applied at the same place.
    pub(crate) fn load(
        dedup: &impl ReadableTable<u64, &'static [u8]>,
    ) -> Result<DedupAges, StorageError> {
        let mut clients = BTreeMap::new();
        for row in dedup.iter()? {
            let (client, record) = row?;
            let (client_id, record) = (client.value(), record.value());
            let record: DedupRecord = decode_record("sm_dedup", record)?;
            let at = AppliedAt {
                slot: record.slot,
                position: record.position,
            };
            if let Some(other) = clients.insert(at, client_id) {
                return Err(StorageError::Corrupt {
                    table: "sm_dedup",
                    reason: format!("clients {other} and {client_id} both applied at {at:?}"),
                });
            }
        }
        Ok(DedupAges { clients })
    }

    /// The clients remembered, oldest first, with where each one's last request was applied.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (AppliedAt, u64)> + '_ {
        self.clients.iter().map(|(at, client)| (*at, *client))
    }
}

/// Record `response` as the answer to the `fresh` request (from [`admit`], with `sm_dedup`
/// unchanged since), applied at `at`, forgetting the oldest clients first if the table is full.
/// `ages` must be the order of `dedup` as it is ([`DedupAges::load`]); it is kept in step.
pub(crate) fn remember(
    dedup: &mut Table<'_, u64, &'static [u8]>,
    ages: &mut DedupAges,
    max_clients: u64,
    fresh: Fresh,
    at: AppliedAt,
    response: &Response,
) -> Result<(), StorageError> {
    assert!(
        max_clients >= 1,
        "the dedup table must hold at least one client"
    );
    let Fresh {
        client_id,
        seq,
        previous,
    } = fresh;
    debug_assert_eq!(
        previous,
        dedup
            .get(client_id)?
            .map(|guard| decode_record::<DedupRecord>("sm_dedup", guard.value()))
            .transpose()?
            .map(|record| AppliedAt {
                slot: record.slot,
                position: record.position
            }),
        "admitted against the table as it is"
    );
    debug_assert_eq!(
        ages.clients.len() as u64,
        dedup.len()?,
        "one age per remembered client"
    );
    match previous {
        Some(previous) => {
            let aged = ages.clients.remove(&previous);
            assert_eq!(
                aged,
                Some(client_id),
                "a client's age is where it was applied"
            );
        }
        None => {
            while dedup.len()? >= max_clients {
                let Some((_, oldest)) = ages.clients.pop_first() else {
                    return Err(StorageError::Corrupt {
                        table: "sm_dedup",
                        reason: "more clients than their eviction order holds".to_string(),
                    });
                };
                dedup.remove(oldest)?;
            }
        }
    }
    let record = DedupRecord {
        seq,
        slot: at.slot,
        position: at.position,
        response: Some(response.clone()),
    };
    dedup.insert(client_id, record.encode_to_vec().as_slice())?;
    let replaced = ages.clients.insert(at, client_id);
    assert!(replaced.is_none(), "one request applied at {at:?}");
    Ok(())
}
