//! `synod member`: list, add, promote and remove members of a running
//! cluster, addressed like `synod status` ([`ClusterFlags`]). Every call goes
//! to the leader: each node given is tried in turn, and a follower's
//! redirect is followed.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use prost::Message as _;
use synod_net::proto::api::{
    api_request::Call, api_response, member_change_call, AddMember, ApiRequest, ApiResponse,
    MemberChangeCall, Members, MembersCall,
};
use synod_net::tls::TlsIdentity;
use synod_net::{ClientConnection, ErrorCode, Outcome};

use crate::cli::ClusterFlags;

/// How far (in slots) a member may trail the leader and still count as
/// caught up in `synod member list` (the bound `promote` uses).
const CAUGHT_UP_SLOTS: u64 = synod_paxos::PROMOTE_MAX_LAG_SLOTS;
/// A member the leader has not heard for this long is shown unreachable.
const REACHABLE_MS: u64 = 2_000;
/// How long one call to one node may take (a change waits until it governs).
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to keep looking for a leader while none is known.
const ELECTION_PATIENCE: Duration = Duration::from_secs(10);
/// How long connecting to one node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `add` waits for the new learner to catch up before promoting it.
const PROMOTE_WAIT: Duration = Duration::from_secs(120);

/// What `synod member` does.
#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Every member: id, voter or learner, addresses, whether the leader
    /// hears it and whether it is caught up.
    List,
    /// Add a node (started with `synod start --join`) as a learner; without
    /// `--learner`, promote it to voter once it has caught up.
    Add {
        /// The new node's id (never used before in this cluster).
        id: u32,
        /// Where peers reach it (ip:port).
        #[arg(long)]
        peer_addr: SocketAddr,
        /// Where clients reach it (ip:port).
        #[arg(long)]
        client_addr: SocketAddr,
        /// Leave it a learner (it receives the log but does not vote).
        #[arg(long)]
        learner: bool,
    },
    /// Make a caught-up learner a voter.
    Promote {
        /// The learner's id.
        id: u32,
    },
    /// Remove a member for good (the leader too: it hands over first).
    Remove {
        /// The member's id.
        id: u32,
    },
}

/// Runs `command` against the cluster `cluster` names.
pub async fn run(cluster: &ClusterFlags, command: MemberCommand) -> anyhow::Result<()> {
    let tls = cluster.tls()?;
    let nodes = cluster.node_addrs();
    match command {
        MemberCommand::List => print_members(&list(&nodes, &tls).await?),
        MemberCommand::Add {
            id,
            peer_addr,
            client_addr,
            learner,
        } => {
            let add = member_change_call::Change::Add(AddMember {
                id,
                peer_addr: peer_addr.to_string(),
                client_addr: client_addr.to_string(),
            });
            change(&nodes, &tls, add).await?;
            println!("node {id} added as a learner");
            if !learner {
                promote_when_caught_up(&nodes, &tls, id).await?;
                println!("node {id} promoted to voter");
            }
        }
        MemberCommand::Promote { id } => {
            change(&nodes, &tls, member_change_call::Change::Promote(id)).await?;
            println!("node {id} promoted to voter");
        }
        MemberCommand::Remove { id } => {
            change(&nodes, &tls, member_change_call::Change::Remove(id)).await?;
            println!("node {id} removed");
        }
    }
    Ok(())
}

/// The members, from the leader.
pub async fn list(nodes: &[SocketAddr], tls: &TlsIdentity) -> anyhow::Result<Members> {
    let call = Call::Members(MembersCall {});
    match call_leader(nodes, tls, call).await? {
        api_response::Result::Members(members) => Ok(members),
        _ => anyhow::bail!("the leader answered something else"),
    }
}

/// Makes one change at the leader; returns once it governs.
pub async fn change(
    nodes: &[SocketAddr],
    tls: &TlsIdentity,
    change: member_change_call::Change,
) -> anyhow::Result<()> {
    let call = Call::MemberChange(MemberChangeCall {
        change: Some(change),
    });
    match call_leader(nodes, tls, call).await? {
        api_response::Result::MemberChange(_) => Ok(()),
        _ => anyhow::bail!("the leader answered something else"),
    }
}

/// Waits until learner `id` is caught up (as the leader sees it), then
/// promotes it.
async fn promote_when_caught_up(
    nodes: &[SocketAddr],
    tls: &TlsIdentity,
    id: u32,
) -> anyhow::Result<()> {
    let give_up = tokio::time::Instant::now() + PROMOTE_WAIT;
    loop {
        let members = list(nodes, tls).await?;
        let caught_up = members
            .members
            .iter()
            .any(|m| m.id == id && is_caught_up(&members, m));
        if caught_up {
            let promote = member_change_call::Change::Promote(id);
            match change(nodes, tls, promote).await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() < give_up && is_retryable(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if tokio::time::Instant::now() >= give_up {
            anyhow::bail!(
                "node {id} did not catch up within {} s; it stays a learner (is it running with \
                 --join, and can the members reach its peer address?)",
                PROMOTE_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// True for refusals that pass with time: lagging, a change in progress.
fn is_retryable(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    text.contains("not caught up") || text.contains("in progress")
}

fn is_caught_up(members: &Members, member: &synod_net::proto::api::MemberInfo) -> bool {
    member.heard_ms_ago.is_some() && member.commit_index + CAUGHT_UP_SLOTS >= members.commit_index
}

fn print_members(members: &Members) {
    println!(
        "{:>4}  {:<8} {:<22} {:<22} {:>10}  {:<11} {}",
        "id", "role", "peer address", "client address", "commit", "reachable", "caught up"
    );
    for m in &members.members {
        let role = match (m.voter, m.id == members.leader) {
            (true, true) => "leader",
            (true, false) => "voter",
            (false, _) => "learner",
        };
        let reachable = match m.heard_ms_ago {
            Some(ms) if ms <= REACHABLE_MS => "yes".to_string(),
            Some(ms) => format!("no ({} s)", ms / 1000),
            None => "never".to_string(),
        };
        let caught_up = if is_caught_up(members, m) {
            "yes"
        } else {
            "no"
        };
        println!(
            "{:>4}  {:<8} {:<22} {:<22} {:>10}  {:<11} {caught_up}",
            m.id, role, m.peer_addr, m.client_addr, m.commit_index, reachable
        );
    }
    if members.change_in_progress {
        println!("(a membership change is taking effect)");
    }
}

/// Sends `call` to the leader: tries each of `nodes`, following a
/// follower's redirect; while no node knows a leader (an election), tries
/// again for up to [`ELECTION_PATIENCE`].
async fn call_leader(
    nodes: &[SocketAddr],
    tls: &TlsIdentity,
    call: Call,
) -> anyhow::Result<api_response::Result> {
    let payload = ApiRequest { call: Some(call) }.encode_to_vec();
    let give_up = tokio::time::Instant::now() + ELECTION_PATIENCE;
    loop {
        let mut last_error = anyhow::anyhow!("no node to ask");
        let mut to_try: Vec<SocketAddr> = nodes.to_vec();
        let mut tried = Vec::new();
        while let Some(addr) = to_try.first().copied() {
            to_try.remove(0);
            if tried.contains(&addr) {
                continue;
            }
            tried.push(addr);
            match call_one(addr, tls, &payload).await {
                Ok(Answer::Done(result)) => return Ok(result),
                Ok(Answer::Refused(reason)) => anyhow::bail!("{reason}"),
                Ok(Answer::Redirect(Some(leader))) => to_try.insert(0, leader),
                Ok(Answer::Redirect(None)) => {
                    last_error = anyhow::anyhow!("{addr} knows no leader now")
                }
                Err(e) => last_error = e.context(format!("asking {addr}")),
            }
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(last_error);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What one node answered.
enum Answer {
    /// Served.
    Done(api_response::Result),
    /// Not the leader; here is the leader's client address, if known.
    Redirect(Option<SocketAddr>),
    /// The leader refused the call (a bad change); asking elsewhere would
    /// not help.
    Refused(String),
}

async fn call_one(addr: SocketAddr, tls: &TlsIdentity, payload: &[u8]) -> anyhow::Result<Answer> {
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, ClientConnection::connect(addr, tls))
        .await
        .context("no connection in time")??;
    let response = tokio::time::timeout(CALL_TIMEOUT, conn.request(payload.to_vec()))
        .await
        .context("no answer in time")??;
    conn.close().await;
    match response.outcome {
        Some(Outcome::Payload(bytes)) => ApiResponse::decode(bytes.as_slice())?
            .result
            .map(Answer::Done)
            .context("an empty answer"),
        Some(Outcome::Error(e)) if e.code() == ErrorCode::NotLeader => Ok(Answer::Redirect(
            e.leader_hint.and_then(|h| h.address.parse().ok()),
        )),
        Some(Outcome::Error(e)) if e.code() == ErrorCode::BadRequest => {
            Ok(Answer::Refused(e.message))
        }
        Some(Outcome::Error(e)) => anyhow::bail!("{}", e.message),
        None => anyhow::bail!("an empty answer"),
    }
}
