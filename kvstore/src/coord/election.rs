//! Leader election on the lock's queue, with a value (etcd's campaign / proclaim / resign /
//! leader / observe).
//!
//! An election (a record in `sm_elections`) has at most one leader session with its value
//! and the revision it became leader at, and a FIFO queue of candidates with the values they
//! will announce. [`Campaign`] makes a candidate leader at once if there is none, else queues
//! it; [`Resign`], session close and session expiry pass leadership to the next candidate in
//! the same command (no delay: an election has no fenced resource of its own; a leader that
//! needs fencing takes a lock too). Since one record holds the one leader, two leaders never
//! coexist at any revision, and each leadership's revision is unique and increasing, so it
//! serves as a term number. Observing is watching
//! [`EventFilter::election`](crate::EventFilter::election).

use redb::ReadableTable;

use super::owned;
use super::queue;
use super::tables::{QueueRecord, OWNED_ELECTION};
use crate::bugs::Bug;
use crate::error::{ExecError, StorageError};
use crate::writer::Writer;
use crate::EventKind;
use synod_wire::command::{Campaign, Proclaim, Resign};
use synod_wire::error::display_name;
use synod_wire::response::{
    CampaignResponse, ElectionStatus, LeaderInfo, LeaderResponse, ProclaimResponse, ResignResponse,
};
use synod_wire::RequestError;

const WHAT: (&str, u8) = ("election", OWNED_ELECTION);

fn load(w: &mut Writer<'_, '_>, name: &[u8]) -> Result<QueueRecord, StorageError> {
    queue::load(w.coord.elections()?, "sm_elections", name)
}

fn leader_info(record: &QueueRecord) -> Option<LeaderInfo> {
    (record.holder != 0).then(|| LeaderInfo {
        session: record.holder,
        value: record.holder_value.clone(),
        revision: record.holder_revision,
    })
}

/// The leader `prev` (session, value) left: make the next candidate leader and record the
/// change. Returns the new leader (0 if none).
fn pass_on(
    w: &mut Writer<'_, '_>,
    record: &mut QueueRecord,
    name: &[u8],
    prev: (u64, Vec<u8>),
) -> u64 {
    let prev_revision = std::mem::take(&mut record.holder_revision);
    record.holder = 0;
    record.holder_value = Vec::new();
    let revision = if w.bugs.has(Bug::ElectionReusesRevision) {
        prev_revision
    } else {
        w.revision
    };
    let next = queue::promote_next(record, revision);
    let (next_session, next_value) = next.map_or((0, None), |n| (n.session, Some(n.value)));
    w.changed = true;
    w.event(
        EventKind::ElectionLeader,
        name,
        (Some(prev.1), prev.0),
        (next_value, next_session),
    );
    next_session
}

/// Apply a [`Campaign`].
pub(crate) fn campaign(
    w: &mut Writer<'_, '_>,
    campaign: &Campaign,
) -> Result<CampaignResponse, ExecError> {
    let (name, session) = (campaign.election.as_slice(), campaign.session);
    if w.coord.session(session)?.is_none() {
        return Err(RequestError::SessionNotFound { session }.into());
    }
    let mut record = load(w, name)?;
    if record.holder == session {
        return Ok(CampaignResponse {
            status: ElectionStatus::Elected as i32,
            position: 0,
            leader: leader_info(&record),
        });
    }
    if let Some(position) = record.position(session) {
        return Ok(CampaignResponse {
            status: ElectionStatus::Queued as i32,
            position,
            leader: leader_info(&record),
        });
    }
    if record.holder == 0 {
        assert!(
            record.waiters.is_empty(),
            "a leaderless election has no waiters"
        );
        owned::add_claim(w.coord, session, OWNED_ELECTION, name)?;
        record.holder = session;
        record.holder_revision = w.revision;
        record.holder_value = campaign.value.clone();
        queue::store(w.coord.elections()?, name, &record)?;
        w.changed = true;
        w.event(
            EventKind::ElectionLeader,
            name,
            (None, 0),
            (Some(campaign.value.clone()), session),
        );
        return Ok(CampaignResponse {
            status: ElectionStatus::Elected as i32,
            position: 0,
            leader: leader_info(&record),
        });
    }
    let position = queue::enqueue(w.coord, &mut record, WHAT, name, session, &campaign.value)?;
    queue::store(w.coord.elections()?, name, &record)?;
    w.changed = true;
    Ok(CampaignResponse {
        status: ElectionStatus::Queued as i32,
        position,
        leader: leader_info(&record),
    })
}

/// Apply a [`Proclaim`].
pub(crate) fn proclaim(
    w: &mut Writer<'_, '_>,
    proclaim: &Proclaim,
) -> Result<ProclaimResponse, ExecError> {
    let (name, session) = (proclaim.election.as_slice(), proclaim.session);
    let mut record = load(w, name)?;
    if record.holder != session {
        return Err(RequestError::NotElectionLeader {
            election: display_name(name),
            session,
        }
        .into());
    }
    let prev_value = std::mem::replace(&mut record.holder_value, proclaim.value.clone());
    queue::store(w.coord.elections()?, name, &record)?;
    w.changed = true;
    w.event(
        EventKind::ElectionLeader,
        name,
        (Some(prev_value), session),
        (Some(proclaim.value.clone()), session),
    );
    Ok(ProclaimResponse {
        revision: record.holder_revision,
    })
}

/// Apply a [`Resign`].
pub(crate) fn resign(w: &mut Writer<'_, '_>, resign: &Resign) -> Result<ResignResponse, ExecError> {
    let (name, session) = (resign.election.as_slice(), resign.session);
    let mut record = load(w, name)?;
    let response = if record.holder == session {
        let value = record.holder_value.clone();
        let next_leader = pass_on(w, &mut record, name, (session, value));
        ResignResponse {
            resigned: true,
            next_leader,
        }
    } else if queue::remove_waiter(&mut record, session) {
        w.changed = true;
        ResignResponse::default()
    } else {
        return Err(RequestError::NotCandidate {
            election: display_name(name),
            session,
        }
        .into());
    };
    owned::remove_claim(w.coord, session, OWNED_ELECTION, name)?;
    queue::store(w.coord.elections()?, name, &record)?;
    Ok(response)
}

/// Session `session` ended: pass leadership of `name` on if it led, or take it out of the
/// queue. The caller forgets the session's claims.
pub(crate) fn session_ended(
    w: &mut Writer<'_, '_>,
    name: &[u8],
    session: u64,
) -> Result<(), ExecError> {
    let mut record = load(w, name)?;
    if record.holder == session {
        let value = record.holder_value.clone();
        pass_on(w, &mut record, name, (session, value));
    } else if queue::remove_waiter(&mut record, session) {
        w.changed = true;
    } else {
        return Err(StorageError::Corrupt {
            table: "sm_session_owned",
            reason: format!(
                "session {session} claims election {} it neither leads nor waits in",
                display_name(name)
            ),
        }
        .into());
    }
    queue::store(w.coord.elections()?, name, &record)?;
    Ok(())
}

/// Answer a [`Leader`](crate::Leader) query.
pub(crate) fn leader(
    elections: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &[u8],
) -> Result<LeaderResponse, StorageError> {
    let record = queue::load(elections, "sm_elections", name)?;
    Ok(LeaderResponse {
        leader: leader_info(&record),
        waiters: record.waiter_sessions(),
    })
}
