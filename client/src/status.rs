//! The cluster's status as each configured endpoint's node reports it.

use std::time::Duration;

use prost::Message as _;
use synod_wire::proto::api::api_response::Result as ApiResult;
use synod_wire::proto::api::{api_request::Call, ApiRequest, StatusCall};
use tokio::task::JoinSet;

use crate::client::{Attempt, Client};
use crate::connections::Target;
use crate::endpoint::Endpoint;
use crate::error::ClientError;

/// How long [`Client::status`] waits for one node at most (dial included):
/// a status is a glance, and a node that does not answer must not hold up
/// the others' report for a whole call timeout.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// What a node is doing in the consensus protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// It leads: it orders writes and serves linearizable reads.
    Leader,
    /// It is running Phase 1 to lead.
    Candidate,
    /// It follows a leader (or waits to hear one).
    Follower,
    /// A role this client does not know, as the node named it.
    Other(String),
}

impl NodeRole {
    fn from_name(name: &str) -> NodeRole {
        match name {
            "leader" => NodeRole::Leader,
            "candidate" => NodeRole::Candidate,
            "follower" => NodeRole::Follower,
            other => NodeRole::Other(other.to_owned()),
        }
    }
}

/// One node's view of itself, as it answered a status call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's id.
    pub id: u32,
    /// What it is doing.
    pub role: NodeRole,
    /// The node it believes leads, if any.
    pub leader: Option<u32>,
    /// The highest ballot it promised: `(round << 32) | node id`.
    pub ballot: u64,
    /// Every slot through this one is chosen.
    pub commit_index: u64,
    /// Its state machine applied every slot through this one.
    pub applied_index: u64,
    /// Its state machine's revision.
    pub revision: u64,
    /// Its log is compacted through this slot.
    pub compacted_through: u64,
}

/// What one configured endpoint answered to [`Client::status`].
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointStatus {
    /// The endpoint asked.
    pub endpoint: Endpoint,
    /// Its node's status, or why it could not be had:
    /// [`ClientError::Timeout`] (no answer in time),
    /// [`ClientError::Unreachable`], [`ClientError::Tls`].
    pub status: Result<NodeStatus, ClientError>,
}

impl EndpointStatus {
    /// Whether the node answered.
    pub fn is_reachable(&self) -> bool {
        self.status.is_ok()
    }
}

impl Client {
    /// Every configured endpoint's node status, in the endpoints' order,
    /// asked of all at once: one try each (no redirect: any node answers),
    /// within the client's timeout but at most 2 s, so a node that does
    /// not answer costs that much and no more.
    ///
    /// # Errors
    /// [`ClientError::Closed`] if the client is closed. A node that cannot
    /// be asked is not an error of the call: its entry holds why.
    pub async fn status(&self) -> Result<Vec<EndpointStatus>, ClientError> {
        if self.is_closed() {
            return Err(ClientError::Closed);
        }
        let mut asking = JoinSet::new();
        for (i, endpoint) in self.endpoints().iter().enumerate() {
            let (client, endpoint) = (self.clone(), endpoint.clone());
            asking.spawn(async move {
                let status = client.node_status(i).await;
                (i, EndpointStatus { endpoint, status })
            });
        }
        let mut answers = Vec::with_capacity(self.endpoints().len());
        while let Some(answered) = asking.join_next().await {
            answers.push(answered.expect("a status task never panics"));
        }
        answers.sort_by_key(|(i, _)| *i);
        if self.is_closed() {
            return Err(ClientError::Closed);
        }
        Ok(answers.into_iter().map(|(_, status)| status).collect())
    }

    /// The status of endpoint `i`'s node.
    async fn node_status(&self, i: usize) -> Result<NodeStatus, ClientError> {
        let payload = ApiRequest {
            call: Some(Call::Status(StatusCall {})),
        }
        .encode_to_vec();
        let target = Target::Endpoint(i);
        let patience = self.timeout().min(STATUS_TIMEOUT);
        let answer = match tokio::time::timeout(patience, self.attempt(target, payload)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(failure)) => {
                self.forget(target);
                return Err(failure.into());
            }
            Err(_) => {
                self.forget(target);
                return Err(ClientError::Timeout);
            }
        };
        match answer {
            Attempt::Served(ApiResult::Status(s)) => Ok(NodeStatus {
                id: s.id,
                role: NodeRole::from_name(&s.role),
                leader: Some(s.leader).filter(|id| *id != 0),
                ballot: s.ballot,
                commit_index: s.commit_index,
                applied_index: s.applied_index,
                revision: s.revision,
                compacted_through: s.compacted_through,
            }),
            Attempt::Served(other) => Err(ClientError::Protocol(format!(
                "a status call was answered with {other:?}"
            ))),
            Attempt::Refused(message) => Err(ClientError::BadRequest(message)),
            Attempt::Redirect(_) => Err(ClientError::Unreachable(
                "the node answered NOT_LEADER to a status call".into(),
            )),
            Attempt::Unavailable(why) => Err(ClientError::Unreachable(why)),
        }
    }
}
