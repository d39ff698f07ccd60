//! Writes never wedge on the exactly-once table: a Redis connection or a
//! Rust client's id that the table forgot (here a table of two clients,
//! so that other clients push it out) moves to a fresh id at its next
//! write instead of answering every write with an unknown-client error.

mod quic_cluster;

use quic_cluster::{bulk, int, ok, Cluster};

fn cluster() -> &'static Cluster {
    static CLUSTER: std::sync::OnceLock<Cluster> = std::sync::OnceLock::new();
    CLUSTER.get_or_init(|| {
        Cluster::start_with("forgotten", 3, |config| {
            config.exactly_once.clients = 2;
        })
    })
}

#[test]
fn a_connection_forgotten_by_the_exactly_once_table_keeps_writing() {
    let cluster = cluster();
    let mut idle = cluster.client(1);
    assert_eq!(idle.cmd("SET once:idle 1"), ok());
    for other in ["a", "b", "c"] {
        let mut c = cluster.client(1);
        assert_eq!(c.cmd(&format!("SET once:{other} x")), ok());
    }
    // The table remembers the last two connections only.
    assert_eq!(idle.cmd("INCR once:idle"), int(2));
    assert_eq!(idle.cmd("INCR once:idle"), int(3));
    assert_eq!(idle.cmd("GET once:idle"), bulk("3"));
}

#[test]
fn a_rust_client_id_forgotten_by_the_exactly_once_table_keeps_writing() {
    let cluster = cluster();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let config = synod_client::ClientConfig::from_dev_cluster(&cluster.dir, cluster.base_port)
            .expect("client config");
        let client = synod_client::Client::connect(config.clone()).await.unwrap();
        client.put(b"once:rust", b"1").await.unwrap();
        // Other clients' writes push this client's id out of the table.
        for _ in 0..3 {
            let other = synod_client::Client::connect(config.clone()).await.unwrap();
            other.put(b"once:other", b"x").await.unwrap();
        }
        assert_eq!(client.incr(b"once:rust", 1).await.unwrap(), 2);
        assert_eq!(client.incr(b"once:rust", 1).await.unwrap(), 3);
    });
}
