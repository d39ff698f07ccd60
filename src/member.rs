//! `synod member`: list, add, promote and remove members of a running
//! cluster, addressed like `synod status` ([`ClusterFlags`]), through the
//! Rust client (which finds the leader and follows redirects).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Subcommand;
use synod_client::{Client, ClientConfig, ClientError, Members};

use crate::cli::ClusterFlags;

/// How far (in slots) a member may trail the leader and still count as
/// caught up in `synod member list` (the bound `promote` uses).
const CAUGHT_UP_SLOTS: u64 = synod_paxos::PROMOTE_MAX_LAG_SLOTS;
/// A member the leader has not heard for this long is shown unreachable.
const REACHABLE: Duration = Duration::from_secs(2);
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
    let config = ClientConfig::from_addrs(cluster.node_addrs(), cluster.tls()?)
        .timeout(Duration::from_secs(10));
    let client = Client::connect(config).await?;
    match command {
        MemberCommand::List => print_members(&client.members().await?),
        MemberCommand::Add {
            id,
            peer_addr,
            client_addr,
            learner,
        } => {
            client.add_member(id, peer_addr, client_addr).await?;
            println!("node {id} added as a learner");
            if !learner {
                promote_when_caught_up(&client, id).await?;
                println!("node {id} promoted to voter");
            }
        }
        MemberCommand::Promote { id } => {
            client.promote_member(id).await?;
            println!("node {id} promoted to voter");
        }
        MemberCommand::Remove { id } => {
            client.remove_member(id).await?;
            println!("node {id} removed");
        }
    }
    Ok(())
}

/// Waits until learner `id` is caught up (as the leader sees it), then
/// promotes it.
async fn promote_when_caught_up(client: &Client, id: u32) -> anyhow::Result<()> {
    let give_up = tokio::time::Instant::now() + PROMOTE_WAIT;
    loop {
        if client.members().await?.is_caught_up(id, CAUGHT_UP_SLOTS) {
            match client.promote_member(id).await {
                Ok(()) => return Ok(()),
                // It fell behind again, or a change is still taking effect.
                Err(ClientError::BadRequest(reason)) if tokio::time::Instant::now() < give_up => {
                    tracing::debug!(%reason, "promotion refused; retrying");
                }
                Err(e) => return Err(e.into()),
            }
        }
        if tokio::time::Instant::now() >= give_up {
            anyhow::bail!(
                "node {id} did not catch up within {} s; it stays a learner (is it running with \
                 --join and every member as --peer, and can the members reach its peer address?)",
                PROMOTE_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn print_members(members: &Members) {
    println!(
        "{:>4}  {:<8} {:<22} {:<22} {:>10}  {:<11} caught up",
        "id", "role", "peer address", "client address", "commit", "reachable"
    );
    for m in &members.members {
        let role = match (m.voter, m.id == members.leader) {
            (true, true) => "leader",
            (true, false) => "voter",
            (false, _) => "learner",
        };
        let reachable = match m.heard_ago {
            Some(ago) if ago <= REACHABLE => "yes".to_string(),
            Some(ago) => format!("no ({} s)", ago.as_secs()),
            None => "never".to_string(),
        };
        let caught_up = if members.is_caught_up(m.id, CAUGHT_UP_SLOTS) {
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
