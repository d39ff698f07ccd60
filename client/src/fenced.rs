//! Writes fenced by a lock's token.

use synod_wire::{CompareAndSwap, Delete, Expected, Incr, Op, Outcome, Put, Response};

use crate::client::{unexpected, Client};
use crate::error::ClientError;
use crate::mutex::FencingToken;
use crate::options::WriteOptions;

/// Writes that apply only while a [`FencingToken`] is its lock's current
/// one; made by [`Client::fenced`]. Each write is checked and applied in
/// the same log command, so no write of a holder that lost its lock (by
/// unlock, session close or expiry) is ever applied after the lock changed
/// hands. A refused write fails with [`ClientError::Command`] whose code is
/// [`FencingTokenRejected`](synod_wire::ErrorCode::FencingTokenRejected)
/// and changes nothing.
///
/// ```no_run
/// # async fn demo(client: synod_client::Client, token: synod_client::FencingToken)
/// #     -> Result<(), synod_client::ClientError> {
/// let fenced = client.fenced(&token);
/// fenced.incr(b"counter", 1).await?;
/// fenced.put(b"owner", b"me").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Fenced<'a> {
    client: &'a Client,
    options: WriteOptions,
}

impl Fenced<'_> {
    /// Sets `key` to `value`; returns the revision of the write.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<u64, ClientError> {
        let op = Op::Put(Put {
            key: key.to_vec(),
            value: value.to_vec(),
            prev_kv: false,
        });
        Ok(self.write(op).await?.revision)
    }

    /// Deletes `key`; returns whether it existed.
    pub async fn delete(&self, key: &[u8]) -> Result<bool, ClientError> {
        let op = Op::Delete(Delete {
            key: key.to_vec(),
            prev_kv: false,
        });
        match self.write(op).await?.outcome {
            Some(Outcome::Delete(d)) => Ok(d.deleted),
            other => Err(unexpected(other)),
        }
    }

    /// Adds `delta` to the integer in `key` (absent counts as 0); returns
    /// the new value.
    pub async fn incr(&self, key: &[u8], delta: i64) -> Result<i64, ClientError> {
        let op = Op::Incr(Incr {
            key: key.to_vec(),
            delta,
        });
        match self.write(op).await?.outcome {
            Some(Outcome::Incr(i)) => Ok(i.value),
            other => Err(unexpected(other)),
        }
    }

    /// Sets `key` to `new` if it holds `expected` (`None`: if it is
    /// absent); returns whether it did.
    pub async fn compare_and_swap(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
    ) -> Result<bool, ClientError> {
        let op = Op::CompareAndSwap(CompareAndSwap {
            key: key.to_vec(),
            expected: Some(match expected {
                Some(value) => Expected::Value(value.to_vec()),
                None => Expected::ModRevision(0),
            }),
            new_value: new.to_vec(),
        });
        match self.write(op).await?.outcome {
            Some(Outcome::CompareAndSwap(c)) => Ok(c.succeeded),
            other => Err(unexpected(other)),
        }
    }

    /// Runs any write op (a transaction, say), fenced, exactly once.
    pub async fn write(&self, op: Op) -> Result<Response, ClientError> {
        self.client.write_with(op, &self.options).await
    }
}

impl Client {
    /// The plain (unfenced) writes, which share `Fenced`'s code with
    /// default options.
    pub(crate) fn unfenced(&self) -> Fenced<'_> {
        Fenced {
            client: self,
            options: WriteOptions::default(),
        }
    }

    /// Writes fenced by `token`; see [`Fenced`].
    pub fn fenced(&self, token: &FencingToken) -> Fenced<'_> {
        Fenced {
            client: self,
            options: WriteOptions::new().fenced(token),
        }
    }

    /// Sets `key` to `value` only while `token` is its lock's current one;
    /// returns the revision of the write. Shorthand for
    /// `client.fenced(token).put(key, value)`.
    pub async fn put_fenced(
        &self,
        key: &[u8],
        value: &[u8],
        token: &FencingToken,
    ) -> Result<u64, ClientError> {
        self.fenced(token).put(key, value).await
    }
}
