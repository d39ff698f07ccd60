//! Server streams: a request answered by several frames, in order, the last with
//! `more = false`; a runtime that ends the stream early shows as UNAVAILABLE; a client that
//! stops reading stops the sender.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use synod_net::{ClientConnection, ErrorCode};

#[tokio::test]
async fn frames_arrive_in_order_and_the_last_ends_the_stream() {
    let cluster = Cluster::new("stream-order");
    let mut net = cluster.bind(1).start(HashMap::new());
    let client = ClientConnection::connect(net.handle.local_addr().unwrap(), &cluster.client("a"))
        .await
        .unwrap();
    let reading = tokio::spawn(async move {
        let mut frames = client.request_stream(b"go".to_vec()).await.unwrap();
        let mut payloads = Vec::new();
        while let Some(frame) = frames.next().await.unwrap() {
            payloads.push((frame.payload().unwrap().to_vec(), frame.more));
        }
        payloads
    });
    let incoming = eventually("request", net.requests.recv()).await.unwrap();
    let stream = incoming.responder.respond_stream().unwrap();
    // Bigger frames than the queue holds, so the sender waits for the reader.
    for n in 0..10u8 {
        stream
            .send_payload(vec![n; 256 * 1024], n < 9)
            .await
            .unwrap();
    }
    let payloads = eventually("frames", reading).await.unwrap();
    assert_eq!(payloads.len(), 10);
    for (n, (payload, more)) in payloads.iter().enumerate() {
        assert_eq!(payload[0], n as u8);
        assert_eq!(payload.len(), 256 * 1024);
        assert_eq!(*more, n < 9);
    }
}

#[tokio::test]
async fn a_stream_the_runtime_drops_early_ends_unavailable() {
    let cluster = Cluster::new("stream-dropped");
    let mut net = cluster.bind(1).start(HashMap::new());
    let client = ClientConnection::connect(net.handle.local_addr().unwrap(), &cluster.client("a"))
        .await
        .unwrap();
    let reading = tokio::spawn(async move {
        let mut frames = client.request_stream(b"go".to_vec()).await.unwrap();
        let mut seen = Vec::new();
        while let Some(frame) = frames.next().await.unwrap() {
            seen.push(frame.error_code());
        }
        seen
    });
    let incoming = eventually("request", net.requests.recv()).await.unwrap();
    let stream = incoming.responder.respond_stream().unwrap();
    stream.send_payload(b"one".to_vec(), true).await.unwrap();
    drop(stream);
    let seen = eventually("frames", reading).await.unwrap();
    assert_eq!(seen, vec![None, Some(ErrorCode::Unavailable)]);
}

#[tokio::test]
async fn a_client_that_stops_reading_stops_the_sender() {
    let cluster = Cluster::new("stream-abandoned");
    let mut net = cluster.bind(1).start(HashMap::new());
    let client = ClientConnection::connect(net.handle.local_addr().unwrap(), &cluster.client("a"))
        .await
        .unwrap();
    let mut frames = client.request_stream(b"go".to_vec()).await.unwrap();
    let incoming = eventually("request", net.requests.recv()).await.unwrap();
    let stream = incoming.responder.respond_stream().unwrap();
    stream.send_payload(b"first".to_vec(), true).await.unwrap();
    let first = eventually("first frame", frames.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.payload(), Some(&b"first"[..]));
    drop(frames);
    // The sender learns it within a few frames (what the queue and QUIC buffers hold).
    let sender = tokio::spawn(async move {
        let mut sent = 0u64;
        while stream.send_payload(vec![0; 64 * 1024], true).await.is_ok() {
            sent += 1;
            assert!(sent < 100_000, "the sender never learned the client left");
        }
    });
    tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .expect("the sender stops")
        .unwrap();
}
