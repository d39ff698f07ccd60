//! How a write is sent: fenced by a lock's token, owned by a session, with
//! its own timeout.

use std::time::Duration;

use crate::mutex::FencingToken;
use crate::session::Session;

/// Options of [`Client::write_with`](crate::Client::write_with). The
/// default is a plain write with the client's timeout.
///
/// ```no_run
/// # async fn demo(client: synod_client::Client, session: synod_client::Session,
/// #               token: synod_client::FencingToken) -> Result<(), synod_client::ClientError> {
/// use std::time::Duration;
/// use synod_client::{Op, WriteOptions};
/// use synod_wire::Put;
/// let options = WriteOptions::new()
///     .fenced(&token)
///     .in_session(&session)
///     .timeout(Duration::from_secs(2));
/// let put = Op::Put(Put { key: b"k".to_vec(), value: b"v".to_vec(), prev_kv: false });
/// client.write_with(put, &options).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Apply only while this is the lock's current token; else the write is
    /// refused with
    /// [`FencingTokenRejected`](synod_wire::ErrorCode::FencingTokenRejected)
    /// and changes nothing.
    pub fence: Option<FencingToken>,
    /// The session owning every key the write creates or changes (they are
    /// deleted when it ends); `None`: persistent keys.
    pub session: Option<u64>,
    /// How long the call may take, retries included; `None`: the client's.
    pub timeout: Option<Duration>,
}

impl WriteOptions {
    /// A plain write.
    pub fn new() -> WriteOptions {
        WriteOptions::default()
    }

    /// Fenced by `token`.
    pub fn fenced(mut self, token: &FencingToken) -> WriteOptions {
        self.fence = Some(token.clone());
        self
    }

    /// With the keys written owned by `session` (ephemeral).
    pub fn in_session(mut self, session: &Session) -> WriteOptions {
        self.session = Some(session.id());
        self
    }

    /// Within `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> WriteOptions {
        self.timeout = Some(timeout);
        self
    }
}
