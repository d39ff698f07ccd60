//! Range reads: the keys of an interval or under a prefix, a page at a time
//! (etcd's `Range` with `limit` and `more`).

use synod_wire::limits::MAX_SCAN_LIMIT;
use synod_wire::{KeyValue, Op, Outcome, Scan};

use crate::client::{unexpected, Client};
use crate::error::ClientError;

/// A range read to run: every key in `[start, end)` and/or under a prefix,
/// in key order, at most [`limit`](Range::limit) per page.
///
/// Each page is one read, linearizable (or serializable, if asked); a node
/// also cuts a page at 4 MiB of keys and values
/// ([`MAX_SCAN_RESPONSE_BYTES`](synod_wire::limits::MAX_SCAN_RESPONSE_BYTES)).
/// Pages are separate reads: a range read over several pages is not one
/// snapshot (a key written between two pages shows in the later page as it
/// is then); each [`RangePage`] says at which revision it was read.
///
/// ```no_run
/// # async fn demo(client: synod_client::Client) -> Result<(), synod_client::ClientError> {
/// // Every key under `users/`, 500 per read.
/// let mut pages = client.prefix(b"users/").limit(500).pages();
/// while let Some(page) = pages.next().await? {
///     for kv in &page.kvs {
///         println!("{}", String::from_utf8_lossy(&kv.key));
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Range {
    client: Client,
    scan: Scan,
    serializable: bool,
}

/// One page of a [`Range`].
#[derive(Clone, Debug, PartialEq)]
pub struct RangePage {
    /// The entries, in key order.
    pub kvs: Vec<KeyValue>,
    /// Whether the range holds more keys after the last one here.
    pub more: bool,
    /// The store revision this page was read at.
    pub revision: u64,
}

impl Client {
    /// The keys in `[start, end)`; an empty `end` means to the end of the
    /// keyspace, an empty `start` from its beginning.
    pub fn range(&self, start: &[u8], end: &[u8]) -> Range {
        Range::new(self, start, end, b"")
    }

    /// The keys that start with `prefix`.
    pub fn prefix(&self, prefix: &[u8]) -> Range {
        Range::new(self, b"", b"", prefix)
    }
}

impl Range {
    fn new(client: &Client, start: &[u8], end: &[u8], prefix: &[u8]) -> Range {
        Range {
            client: client.clone(),
            scan: Scan {
                start: start.to_vec(),
                end: end.to_vec(),
                prefix: prefix.to_vec(),
                limit: MAX_SCAN_LIMIT,
                keys_only: false,
            },
            serializable: false,
        }
    }

    /// At most `limit` entries per page (1 to
    /// [`MAX_SCAN_LIMIT`](synod_wire::limits::MAX_SCAN_LIMIT), the default;
    /// 0 means the default).
    pub fn limit(mut self, limit: u32) -> Range {
        self.scan.limit = if limit == 0 { MAX_SCAN_LIMIT } else { limit };
        self
    }

    /// Keys and their metadata only, values left empty.
    pub fn keys_only(mut self) -> Range {
        self.scan.keys_only = true;
        self
    }

    /// Read from any node, possibly stale (see
    /// [`Client::get_serializable`]).
    pub fn serializable(mut self) -> Range {
        self.serializable = true;
        self
    }

    /// The first page.
    pub async fn page(&self) -> Result<RangePage, ClientError> {
        let response = self
            .client
            .read(Op::Scan(self.scan.clone()), self.serializable)
            .await?;
        match response.outcome {
            Some(Outcome::Scan(scan)) => Ok(RangePage {
                kvs: scan.kvs,
                more: scan.more,
                revision: response.revision,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// The pages from the first to the last, read one by one as
    /// [`RangePages::next`] asks.
    pub fn pages(self) -> RangePages {
        RangePages { range: Some(self) }
    }

    /// Every entry of the range, following the pages to the end.
    pub async fn all(self) -> Result<Vec<KeyValue>, ClientError> {
        let mut pages = self.pages();
        let mut kvs = Vec::new();
        while let Some(page) = pages.next().await? {
            kvs.extend(page.kvs);
        }
        Ok(kvs)
    }
}

/// The pages of a [`Range`], from [`Range::pages`].
#[derive(Debug)]
pub struct RangePages {
    /// The range still to read (starting after the last key returned);
    /// `None` once the last page was returned.
    range: Option<Range>,
}

impl RangePages {
    /// The next page, or `None` after the last. A failed read may be
    /// retried by calling again: it reads the same page.
    pub async fn next(&mut self) -> Result<Option<RangePage>, ClientError> {
        let Some(range) = &mut self.range else {
            return Ok(None);
        };
        let page = range.page().await?;
        match page.kvs.last() {
            Some(last) if page.more => {
                // The smallest key after `last`.
                let mut start = last.key.clone();
                start.push(0);
                range.scan.start = start;
            }
            _ => self.range = None,
        }
        Ok(Some(page))
    }
}
