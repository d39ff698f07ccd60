//! The node's operations endpoint, plain HTTP on `metrics_addr`:
//!
//! - `GET /metrics`: every metric in Prometheus's text format
//!   ([`crate::metrics`]).
//! - `GET /health`: 200 when the node sees a leader and has applied the log
//!   to within [`MAX_APPLY_LAG`] slots of its commit index; else 503. The
//!   body is JSON with the reason and the figures it was decided on.
//! - `GET /ready`: 200 once the node's core answers (it takes requests);
//!   else 503.
//!
//! One request per connection, at most [`MAX_REQUEST_BYTES`] of head read
//! within [`REQUEST_TIMEOUT`], at most [`MAX_CONNECTIONS`] at once: a
//! scraper cannot hold more than that.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use crate::metrics::{render, CoreMetrics};
use crate::node::{NodeHandle, NodeStatus};

/// A node further than this many slots behind its commit index in applying
/// is reported unhealthy.
pub const MAX_APPLY_LAG: u64 = 10_000;
/// Most bytes of a request's head (request line and headers).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time a client has to send its request's head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 64;
/// After answering, how long and how much of the client's further input is
/// read and dropped before the connection closes.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
/// Time the core has to answer a health or readiness check.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// What the endpoint serves from.
pub struct OpsEndpoint {
    /// The node's metrics.
    pub registry: Registry,
    /// The node, for its status.
    pub node: NodeHandle,
    /// The core's metrics, whose state sizes a scrape refreshes.
    pub core: CoreMetrics,
}

/// Serves `endpoint` on `listener` in a new task until `shutdown` turns
/// true; returns the address it listens on.
pub fn spawn(
    listener: TcpListener,
    endpoint: OpsEndpoint,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let local = listener.local_addr()?;
    let endpoint = Arc::new(endpoint);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics endpoint: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => return,
            };
            let endpoint = endpoint.clone();
            tokio::spawn(async move {
                let _permit = permit;
                serve(&endpoint, stream).await;
            });
        }
    });
    Ok(local)
}

/// An HTTP response: status line's code and reason, content type, body.
struct Response {
    status: (u16, &'static str),
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: (u16, &'static str), body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

const OK: (u16, &str) = (200, "OK");
const BAD_REQUEST: (u16, &str) = (400, "Bad Request");
const NOT_FOUND: (u16, &str) = (404, "Not Found");
const METHOD_NOT_ALLOWED: (u16, &str) = (405, "Method Not Allowed");
const HEADERS_TOO_LARGE: (u16, &str) = (431, "Request Header Fields Too Large");
const UNAVAILABLE: (u16, &str) = (503, "Service Unavailable");

async fn serve(endpoint: &OpsEndpoint, mut stream: TcpStream) {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(response)) => {
            write(&mut stream, &response, false).await;
            return;
        }
        Err(_) => return,
    };
    let (response, head_only) = match parse_request_line(&head) {
        Ok((method, path)) => (route(endpoint, path).await, method == "HEAD"),
        Err(response) => (response, false),
    };
    write(&mut stream, &response, head_only).await;
}

/// Reads up to the blank line ending the request's head.
async fn read_head(stream: &mut TcpStream) -> Result<String, Response> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| Response::text(BAD_REQUEST, "unreadable request\n"))?;
        if n == 0 {
            return Err(Response::text(BAD_REQUEST, "incomplete request\n"));
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return String::from_utf8(head)
                .map_err(|_| Response::text(BAD_REQUEST, "the request is not UTF-8\n"));
        }
        if head.len() > MAX_REQUEST_BYTES {
            return Err(Response::text(
                HEADERS_TOO_LARGE,
                format!("request head over {MAX_REQUEST_BYTES} bytes\n"),
            ));
        }
    }
}

/// The method and path of `head`'s request line (`GET /metrics HTTP/1.1`);
/// only GET and HEAD are served.
fn parse_request_line(head: &str) -> Result<(&str, &str), Response> {
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Response::text(BAD_REQUEST, "malformed request line\n"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Response::text(BAD_REQUEST, "only HTTP/1.x is served\n"));
    }
    if method != "GET" && method != "HEAD" {
        return Err(Response::text(
            METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n",
        ));
    }
    let path = target.split('?').next().unwrap_or(target);
    Ok((method, path))
}

async fn route(endpoint: &OpsEndpoint, path: &str) -> Response {
    match path {
        "/metrics" => {
            // The state's sizes are read now (three table lengths); if the
            // core is busy or stopping, the last values are shown.
            let counts = tokio::time::timeout(STATUS_TIMEOUT, endpoint.node.state_counts()).await;
            if let Ok(Ok(counts)) = counts {
                endpoint.core.observe_counts(&counts);
            }
            Response {
                status: OK,
                content_type: prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                body: render(&endpoint.registry),
            }
        }
        "/health" => health(endpoint).await,
        "/ready" => ready(endpoint).await,
        _ => Response::text(NOT_FOUND, "served: /metrics, /health, /ready\n"),
    }
}

async fn status(endpoint: &OpsEndpoint) -> Result<NodeStatus, &'static str> {
    match tokio::time::timeout(STATUS_TIMEOUT, endpoint.node.status()).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(_)) => Err("the node is shutting down"),
        Err(_) => Err("the node's core did not answer within 1 s"),
    }
}

fn json(status: (u16, &'static str), body: String) -> Response {
    Response {
        status,
        content_type: "application/json",
        body: body + "\n",
    }
}

async fn health(endpoint: &OpsEndpoint) -> Response {
    let status = match status(endpoint).await {
        Ok(status) => status,
        Err(reason) => {
            return json(
                UNAVAILABLE,
                format!(r#"{{"health":false,"reason":"{reason}"}}"#),
            )
        }
    };
    let verdict = health_of(
        status.leader.is_some(),
        status.commit_index.0,
        status.applied_index.0,
    );
    let role = status.role.name();
    let figures = format!(
        r#""role":"{role}","leader":{},"commit_index":{},"applied_index":{}"#,
        status.leader.map_or(0, |l| l.0),
        status.commit_index.0,
        status.applied_index.0,
    );
    match verdict {
        Ok(()) => json(OK, format!(r#"{{"health":true,{figures}}}"#)),
        Err(reason) => json(
            UNAVAILABLE,
            format!(r#"{{"health":false,"reason":"{reason}",{figures}}}"#),
        ),
    }
}

/// Whether a node is healthy, and if not, why: it must know a leader and
/// have applied to within [`MAX_APPLY_LAG`] slots of its commit index.
pub fn health_of(leader_known: bool, commit_index: u64, applied_index: u64) -> Result<(), String> {
    if !leader_known {
        return Err("no leader".to_string());
    }
    let lag = commit_index.saturating_sub(applied_index);
    if lag > MAX_APPLY_LAG {
        return Err(format!(
            "applied index {lag} slots behind the commit index (bound {MAX_APPLY_LAG})"
        ));
    }
    Ok(())
}

async fn ready(endpoint: &OpsEndpoint) -> Response {
    match status(endpoint).await {
        Ok(_) => json(OK, r#"{"ready":true}"#.to_string()),
        Err(reason) => json(
            UNAVAILABLE,
            format!(r#"{{"ready":false,"reason":"{reason}"}}"#),
        ),
    }
}

async fn write(stream: &mut TcpStream, response: &Response, head_only: bool) {
    let (code, reason) = response.status;
    let mut out = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(response.body.as_bytes());
    }
    let _ = stream.write_all(&out).await;
    // The client may still be sending an over-long head.
    crate::tcp::close_gently(stream, LINGER, LINGER_BYTES).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_needs_a_leader_and_a_bounded_apply_lag() {
        assert_eq!(health_of(true, 100, 100), Ok(()));
        assert_eq!(
            health_of(true, MAX_APPLY_LAG + 5, 5),
            Ok(()),
            "at the bound"
        );
        assert_eq!(health_of(false, 100, 100), Err("no leader".to_string()));
        let behind = health_of(true, MAX_APPLY_LAG + 6, 5).unwrap_err();
        assert!(behind.contains("behind the commit index"), "{behind}");
    }
    #[test]
    fn request_lines_are_checked() {
        assert_eq!(
            parse_request_line("GET /metrics?x=1 HTTP/1.1\r\n\r\n").ok(),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            parse_request_line("POST /metrics HTTP/1.1\r\n\r\n")
                .err()
                .map(|r| r.status.0),
            Some(405)
        );
        for bad in ["GET /metrics\r\n\r\n", "GET / HTTP/2\r\n\r\n", "\r\n\r\n"] {
            assert_eq!(
                parse_request_line(bad).err().map(|r| r.status.0),
                Some(400),
                "{bad:?}"
            );
        }
    }
}
