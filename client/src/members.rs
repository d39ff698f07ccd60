//! Cluster membership through the client: list the members, add a learner,
//! promote it, remove a member (see the server README's "Membership"
//! section for the rules). Every call goes to the leader.

use std::net::SocketAddr;
use std::time::Duration;

use synod_wire::proto::api::api_response::Result as ApiResult;
use synod_wire::proto::api::{
    api_request::Call, member_change_call, AddMember, MemberChangeCall, MembersCall,
};

use crate::client::Client;
use crate::error::ClientError;

/// The least time a membership change is given: the leader answers once it
/// governs, which may take a new Phase 1.
const MIN_CHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// One member, as the leader reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its node id.
    pub id: u32,
    /// True if it votes; false for a learner.
    pub voter: bool,
    /// Where peers reach it.
    pub peer_addr: String,
    /// Where clients reach it.
    pub client_addr: String,
    /// Its commit index as it last reported to the leader.
    pub commit_index: u64,
    /// How long ago the leader last heard it (`None`: never).
    pub heard_ago: Option<Duration>,
}

/// The membership in force, from the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Members {
    /// The leader that answered.
    pub leader: u32,
    /// Its commit index.
    pub commit_index: u64,
    /// Every member, by id.
    pub members: Vec<Member>,
    /// A change is chosen but does not govern yet.
    pub change_in_progress: bool,
}

impl Members {
    /// True if `id` is within `max_lag` slots of the leader's commit index
    /// and the leader has heard it.
    pub fn is_caught_up(&self, id: u32, max_lag: u64) -> bool {
        self.members.iter().any(|m| {
            m.id == id && m.heard_ago.is_some() && m.commit_index + max_lag >= self.commit_index
        })
    }
}

impl Client {
    /// The members, with each one's progress, from the leader.
    pub async fn members(&self) -> Result<Members, ClientError> {
        let timeout = self.timeout();
        match self
            .call_api(Call::Members(MembersCall {}), timeout)
            .await?
        {
            ApiResult::Members(m) => Ok(Members {
                leader: m.leader,
                commit_index: m.commit_index,
                change_in_progress: m.change_in_progress,
                members: m
                    .members
                    .into_iter()
                    .map(|m| Member {
                        id: m.id,
                        voter: m.voter,
                        peer_addr: m.peer_addr,
                        client_addr: m.client_addr,
                        commit_index: m.commit_index,
                        heard_ago: m.heard_ms_ago.map(Duration::from_millis),
                    })
                    .collect(),
            }),
            other => Err(ClientError::Protocol(format!(
                "a members call was answered with {other:?}"
            ))),
        }
    }

    /// Adds node `id` (started with `synod start --join`) as a learner: it
    /// receives the log but does not vote. Returns once the change governs.
    /// Refused ([`ClientError::BadRequest`]) if the id is in use or was
    /// used before, an address is taken, or another change is in progress.
    pub async fn add_member(
        &self,
        id: u32,
        peer_addr: SocketAddr,
        client_addr: SocketAddr,
    ) -> Result<(), ClientError> {
        self.change_membership(member_change_call::Change::Add(AddMember {
            id,
            peer_addr: peer_addr.to_string(),
            client_addr: client_addr.to_string(),
        }))
        .await
    }

    /// Makes learner `id` a voter; refused while it lags the leader.
    pub async fn promote_member(&self, id: u32) -> Result<(), ClientError> {
        self.change_membership(member_change_call::Change::Promote(id))
            .await
    }

    /// Removes member `id` for good (the leader too: it hands over); refused
    /// for the last voter.
    pub async fn remove_member(&self, id: u32) -> Result<(), ClientError> {
        self.change_membership(member_change_call::Change::Remove(id))
            .await
    }

    async fn change_membership(
        &self,
        change: member_change_call::Change,
    ) -> Result<(), ClientError> {
        let timeout = self.timeout().max(MIN_CHANGE_TIMEOUT);
        let call = Call::MemberChange(MemberChangeCall {
            change: Some(change),
        });
        match self.call_api(call, timeout).await? {
            ApiResult::MemberChange(_) => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "a membership change was answered with {other:?}"
            ))),
        }
    }
}
