//! What the TCP endpoints (Redis protocol, operations HTTP) share.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Closes `stream` after a last answer: sends FIN, then reads and drops
/// what the client still sends, for at most `linger` and `max_bytes`.
/// Closing with unread input makes the kernel send RST, which can destroy
/// the answer before the client reads it.
pub(crate) async fn close_gently(stream: &mut TcpStream, linger: Duration, max_bytes: usize) {
    let _ = stream.shutdown().await;
    let mut sink = vec![0u8; 16 * 1024];
    let drain = async {
        let mut drained = 0;
        while drained < max_bytes {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(linger, drain).await;
}
