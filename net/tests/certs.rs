//! Certificate generation and PEM files.

mod common;

use std::collections::HashMap;

use common::*;
use synod_net::certs::{self, CertAuthority};
use synod_net::tls::node_id_of_cert;
use synod_net::{NetError, NodeEndpoint};
use synod_paxos::NodeId;

#[test]
fn a_node_certificate_names_its_node_and_a_client_certificate_names_none() {
    let cluster = Cluster::new("names");
    assert_eq!(
        node_id_of_cert(cluster.node(7).certificate()).unwrap(),
        NodeId(7)
    );
    assert!(matches!(
        node_id_of_cert(cluster.client("alice").certificate()),
        Err(NetError::NotANode(_))
    ));
}

#[test]
fn bad_names_are_refused() {
    let ca = CertAuthority::generate("names").unwrap();
    for name in ["", "has space", "dots.are.out", &"x".repeat(64)] {
        assert!(ca.issue_client(name).is_err(), "{name:?}");
    }
    // Extra names must not let a node speak for another.
    assert!(matches!(
        ca.issue_node(NodeId(1), &["node-2".to_owned()]),
        Err(NetError::ForeignNodeName(_))
    ));
    assert!(ca.issue_node(NodeId(1), &["node-1".to_owned()]).is_ok());
    assert!(ca.issue_node(NodeId(1), &["db.example".to_owned()]).is_ok());
}

#[test]
fn a_node_cannot_bind_with_another_nodes_certificate() {
    let cluster = Cluster::new("bind");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let result = NodeEndpoint::bind(NodeId(1), loopback(), &cluster.node(2), test_options());
    assert!(matches!(result, Err(NetError::NotANode(_))));
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("synod-net-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[tokio::test]
async fn certificates_written_to_a_directory_work_after_reloading_the_ca() {
    let dir = temp_dir("certs");
    let ca = CertAuthority::generate("files").unwrap();
    certs::write_ca(&dir, &ca).unwrap();
    certs::write_issued(&dir, "node-1", &ca.issue_node(NodeId(1), &[]).unwrap()).unwrap();
    // A later `synod cert` run reloads the CA from disk to issue node 2.
    let reloaded = certs::read_ca(&dir).unwrap();
    let paths = certs::write_issued(
        &dir,
        "node-2",
        &reloaded.issue_node(NodeId(2), &[]).unwrap(),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&paths.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let bind = |id: u32| {
        let identity = certs::load_identity(&dir, &format!("node-{id}")).unwrap();
        NodeEndpoint::bind(NodeId(id), loopback(), &identity, test_options()).unwrap()
    };
    let (one, two) = (bind(1), bind(2));
    let addr_2 = two.local_addr().unwrap();
    let node_1 = one.start(HashMap::from([(NodeId(2), addr_2)]));
    let mut node_2 = two.start(HashMap::new());
    node_1.peers.send(heartbeat(1, 2, 1)).unwrap();
    let got = eventually("envelope", node_2.inbound.recv()).await;
    assert_eq!(got, Some(heartbeat(1, 2, 1)));
    let _ = std::fs::remove_dir_all(&dir);
}
