//! The Rust client against an in-process cluster (`synod::server::run_node`,
//! real QUIC): endpoints given as DNS names, a write redirected from a
//! follower named by DNS to the leader, `Client::status` reporting every
//! node (and a stopped one as unreachable), and `close`.

mod quic_cluster;

use std::time::{Duration, Instant};

use quic_cluster::Cluster;
use synod_client::{Client, ClientConfig, ClientError, EndpointStatus, NodeRole, NodeStatus};

/// Node `id`'s client endpoint by name: `localhost:<port>`.
fn by_name(cluster: &Cluster, id: u32) -> String {
    let port = synod::dev::dev_addrs(cluster.base_port, id).client.port();
    format!("localhost:{port}")
}

/// A client of nodes `ids`, each named by DNS.
async fn client_of(cluster: &Cluster, ids: &[u32]) -> Client {
    let dev = ClientConfig::from_dev_cluster(&cluster.dir, cluster.base_port).unwrap();
    let endpoints = ids.iter().map(|id| by_name(cluster, *id));
    let config = ClientConfig::with_identity(endpoints, dev.tls)
        .unwrap()
        .timeout(Duration::from_secs(30));
    Client::connect(config).await.unwrap()
}

/// The statuses once every node answers, agrees on one leader and has
/// applied through `revision`; panics after 20 s.
async fn settled(client: &Client, revision: u64) -> Vec<NodeStatus> {
    let started = Instant::now();
    loop {
        let statuses: Vec<EndpointStatus> = client.status().await.unwrap();
        let answered: Vec<NodeStatus> = statuses
            .iter()
            .filter_map(|s| s.status.clone().ok())
            .collect();
        let leaders: Vec<&NodeStatus> = answered
            .iter()
            .filter(|s| s.role == NodeRole::Leader)
            .collect();
        if answered.len() == statuses.len()
            && leaders.len() == 1
            && answered.iter().all(|s| s.leader == Some(leaders[0].id))
            && answered.iter().all(|s| s.revision >= revision)
        {
            return answered;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the cluster never settled: {statuses:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn status_reports_every_node_by_dns_name_and_a_stopped_one_as_unreachable() {
    let cluster = Cluster::start("clientstatus", 3, None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = client_of(&cluster, &[1, 2, 3]).await;
        let revision = client.put(b"status", b"written").await.unwrap();

        let statuses = settled(&client, revision).await;
        let ids: Vec<u32> = statuses.iter().map(|s| s.id).collect();
        assert_eq!(ids, [1, 2, 3], "in the endpoints' order");
        let leader = statuses
            .iter()
            .find(|s| s.role == NodeRole::Leader)
            .unwrap();
        for status in &statuses {
            assert!(status.applied_index <= status.commit_index, "{status:?}");
            assert!(status.commit_index > 0, "{status:?}");
            assert_eq!(status.ballot, leader.ballot, "one leadership: {status:?}");
        }

        // A client of one follower, named by DNS, writes through the leader.
        let follower = statuses.iter().find(|s| s.id != leader.id).unwrap().id;
        let through_follower = client_of(&cluster, &[follower]).await;
        through_follower.put(b"redirected", b"yes").await.unwrap();
        assert_eq!(
            client.get(b"redirected").await.unwrap().unwrap().value,
            b"yes"
        );
        through_follower.close().await;

        // A stopped node is reported with why; the others still answer.
        let stopped = statuses.iter().find(|s| s.id != leader.id).unwrap().id;
        cluster.stop(stopped as usize);
        let statuses = client.status().await.unwrap();
        for (status, id) in statuses.iter().zip(1..) {
            assert_eq!(
                status.is_reachable(),
                id != stopped,
                "node {id}: {:?}",
                status.status
            );
        }
        let why = statuses[stopped as usize - 1].status.clone().unwrap_err();
        assert!(
            matches!(why, ClientError::Timeout | ClientError::Unreachable(_)),
            "{why:?}"
        );

        client.close().await;
        assert_eq!(client.status().await, Err(ClientError::Closed));
    });
}
