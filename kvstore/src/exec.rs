//! Executing validated ops against the kv table.
//!
//! Reads ([`get`], [`scan`]) work on any readable table, so the same code serves `apply` (inside
//! the write transaction) and `read` (in a read transaction). Writes go through [`execute`], which
//! assumes a request that passed [`Request::validate`](crate::Request::validate) and checks every
//! condition that can refuse the command before it writes anything, so a refused command leaves
//! the table as it was.

use std::cmp::Ordering;

use prost::Message;
use redb::{ReadableTable, Table};

use crate::command::{
    Compare, CompareAndSwap, CompareOp, CompareTarget, DeleteRange, Expected, Incr, Op, Scan, Txn,
    TxnOpKind,
};
use crate::error::{RequestError, StorageError};
use crate::limits::{MAX_SCAN_LIMIT, MAX_SCAN_RESPONSE_BYTES};
use crate::range::KeyInterval;
use crate::response::{
    CompareAndSwapResponse, DeleteRangeResponse, DeleteResponse, GetResponse, IncrResponse,
    Outcome, PutResponse, ScanResponse, TxnOpResponse, TxnOutcome, TxnResponse,
};
use crate::tables::{decode_record, get_kv, KvRecord};

/// The kv table as opened in a write transaction.
pub(crate) type KvTable<'txn> = Table<'txn, &'static [u8], &'static [u8]>;

/// Why executing a command stopped: the command is refused, or storage failed.
#[derive(Debug)]
pub(crate) enum ExecError {
    Request(RequestError),
    Storage(StorageError),
}

impl From<RequestError> for ExecError {
    fn from(e: RequestError) -> ExecError {
        ExecError::Request(e)
    }
}

impl From<StorageError> for ExecError {
    fn from(e: StorageError) -> ExecError {
        ExecError::Storage(e)
    }
}

impl From<redb::StorageError> for ExecError {
    fn from(e: redb::StorageError) -> ExecError {
        ExecError::Storage(e.into())
    }
}

/// Read `key`.
pub(crate) fn get(
    kv: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<GetResponse, StorageError> {
    Ok(GetResponse {
        kv: get_kv(kv, key)?.map(|r| r.to_key_value(key, true)),
    })
}

/// Read a range, bounded by the scan's limit and [`MAX_SCAN_RESPONSE_BYTES`].
pub(crate) fn scan(
    kv: &impl ReadableTable<&'static [u8], &'static [u8]>,
    scan: &Scan,
) -> Result<ScanResponse, StorageError> {
    let limit = if scan.limit == 0 {
        MAX_SCAN_LIMIT
    } else {
        scan.limit.min(MAX_SCAN_LIMIT)
    } as usize;
    let mut response = ScanResponse::default();
    let Some(interval) = KeyInterval::new(&scan.start, &scan.end, &scan.prefix) else {
        return Ok(response);
    };
    let mut size_bytes = 0usize;
    for entry in kv.range::<&[u8]>(interval.bounds())? {
        let (key, value) = entry?;
        if response.kvs.len() == limit {
            response.more = true;
            break;
        }
        let record: KvRecord = decode_record("sm_kv", value.value())?;
        let key = key.value();
        let entry_bytes = key.len()
            + if scan.keys_only {
                0
            } else {
                record.value.len()
            };
        if !response.kvs.is_empty() && size_bytes + entry_bytes > MAX_SCAN_RESPONSE_BYTES {
            response.more = true;
            break;
        }
        size_bytes += entry_bytes;
        response.kvs.push(record.to_key_value(key, !scan.keys_only));
    }
    Ok(response)
}

/// Writes of one command: every key written gets `revision` as its mod revision; `changed` says
/// whether anything was written, i.e. whether the command consumes that revision.
struct Writer<'a, 'txn> {
    kv: &'a mut KvTable<'txn>,
    revision: u64,
    changed: bool,
}

impl Writer<'_, '_> {
    fn put(&mut self, key: &[u8], value: &[u8], prev_kv: bool) -> Result<PutResponse, ExecError> {
        let prev = get_kv(self.kv, key)?;
        let record = match &prev {
            Some(p) => KvRecord {
                value: value.to_vec(),
                create_revision: p.create_revision,
                mod_revision: self.revision,
                version: p.version + 1,
            },
            None => KvRecord {
                value: value.to_vec(),
                create_revision: self.revision,
                mod_revision: self.revision,
                version: 1,
            },
        };
        self.kv.insert(key, record.encode_to_vec().as_slice())?;
        self.changed = true;
        Ok(PutResponse {
            prev: prev.filter(|_| prev_kv).map(|p| p.to_key_value(key, true)),
        })
    }

    fn delete(&mut self, key: &[u8], prev_kv: bool) -> Result<DeleteResponse, ExecError> {
        let removed = match self.kv.remove(key)? {
            None => None,
            Some(guard) => Some(decode_record::<KvRecord>("sm_kv", guard.value())?),
        };
        self.changed |= removed.is_some();
        Ok(DeleteResponse {
            deleted: removed.is_some(),
            prev: removed
                .filter(|_| prev_kv)
                .map(|p| p.to_key_value(key, true)),
        })
    }

    fn delete_range(&mut self, range: &DeleteRange) -> Result<DeleteRangeResponse, ExecError> {
        let mut deleted = 0u64;
        if let Some(interval) = KeyInterval::new(&range.start, &range.end, &range.prefix) {
            self.kv.retain_in::<&[u8], _>(interval.bounds(), |_, _| {
                deleted += 1;
                false
            })?;
        }
        self.changed |= deleted > 0;
        Ok(DeleteRangeResponse { deleted })
    }

    fn compare_and_swap(
        &mut self,
        cas: &CompareAndSwap,
    ) -> Result<CompareAndSwapResponse, ExecError> {
        let current = get_kv(self.kv, &cas.key)?;
        let matches = match (&cas.expected, &current) {
            (None, current) => current.is_none(),
            (Some(Expected::Value(expected)), Some(current)) => current.value == *expected,
            (Some(Expected::Value(_)), None) => false,
            (Some(Expected::ModRevision(expected)), current) => {
                current.as_ref().map_or(0, |c| c.mod_revision) == *expected
            }
        };
        if !matches {
            return Ok(CompareAndSwapResponse {
                succeeded: false,
                current: current.map(|c| c.to_key_value(&cas.key, true)),
            });
        }
        self.put(&cas.key, &cas.new_value, false)?;
        Ok(CompareAndSwapResponse {
            succeeded: true,
            current: None,
        })
    }

    fn incr(&mut self, incr: &Incr) -> Result<IncrResponse, ExecError> {
        let current = match get_kv(self.kv, &incr.key)? {
            None => 0,
            Some(record) => parse_canonical_i64(&record.value).ok_or(RequestError::NotAnInteger)?,
        };
        let value = current
            .checked_add(incr.delta)
            .ok_or(RequestError::IncrOverflow)?;
        self.put(&incr.key, value.to_string().as_bytes(), false)?;
        Ok(IncrResponse { value })
    }

    fn txn(&mut self, txn: &Txn) -> Result<TxnResponse, ExecError> {
        let mut succeeded = true;
        for compare in &txn.compares {
            if !compare_holds(self.kv, compare)? {
                succeeded = false;
                break;
            }
        }
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let mut responses = Vec::with_capacity(branch.len());
        for txn_op in branch {
            let outcome = match &txn_op.op {
                // Refused by validation; nothing to do for it here.
                None => None,
                Some(TxnOpKind::Put(put)) => Some(TxnOutcome::Put(self.put(
                    &put.key,
                    &put.value,
                    put.prev_kv,
                )?)),
                Some(TxnOpKind::Delete(delete)) => Some(TxnOutcome::Delete(
                    self.delete(&delete.key, delete.prev_kv)?,
                )),
                Some(TxnOpKind::Get(g)) => Some(TxnOutcome::Get(get(self.kv, &g.key)?)),
            };
            responses.push(TxnOpResponse { outcome });
        }
        Ok(TxnResponse {
            succeeded,
            responses,
        })
    }
}

/// Whether `compare` holds against the current table.
fn compare_holds(
    kv: &impl ReadableTable<&'static [u8], &'static [u8]>,
    compare: &Compare,
) -> Result<bool, StorageError> {
    let (Ok(target), Ok(op)) = (
        CompareTarget::try_from(compare.target),
        CompareOp::try_from(compare.op),
    ) else {
        // Refused by validation.
        return Ok(false);
    };
    let record = get_kv(kv, &compare.key)?;
    let number = |f: fn(&KvRecord) -> u64| record.as_ref().map_or(0, f).cmp(&compare.number);
    let ordering = match target {
        CompareTarget::Value => match &record {
            None => return Ok(false),
            Some(r) => r.value.as_slice().cmp(compare.value.as_slice()),
        },
        CompareTarget::Version => number(|r| r.version),
        CompareTarget::CreateRevision => number(|r| r.create_revision),
        CompareTarget::ModRevision => number(|r| r.mod_revision),
    };
    Ok(match op {
        CompareOp::Equal => ordering == Ordering::Equal,
        CompareOp::NotEqual => ordering != Ordering::Equal,
        CompareOp::Less => ordering == Ordering::Less,
        CompareOp::Greater => ordering == Ordering::Greater,
    })
}

/// Parse a value stored as decimal ASCII in canonical form (what `i64::to_string` produces):
/// optional `-`, no `+`, no leading zeros, no spaces, within `i64`.
pub(crate) fn parse_canonical_i64(bytes: &[u8]) -> Option<i64> {
    // 20 bytes hold every i64 ("-9223372036854775808"); longer is never canonical.
    if bytes.len() > 20 {
        return None;
    }
    let n: i64 = std::str::from_utf8(bytes).ok()?.parse().ok()?;
    (n.to_string().as_bytes() == bytes).then_some(n)
}

/// Execute a validated op in a write transaction. `revision` is the store revision; it goes up by
/// one if the op changed the table.
///
/// On `Err(ExecError::Request)` nothing was written; on `Err(ExecError::Storage)` the caller
/// must drop the transaction.
pub(crate) fn execute(
    kv: &mut KvTable<'_>,
    op: &Op,
    revision: &mut u64,
) -> Result<Outcome, ExecError> {
    let mut writer = Writer {
        kv,
        revision: *revision + 1,
        changed: false,
    };
    let outcome = match op {
        Op::Put(put) => Outcome::Put(writer.put(&put.key, &put.value, put.prev_kv)?),
        Op::Get(g) => Outcome::Get(get(writer.kv, &g.key)?),
        Op::Delete(delete) => Outcome::Delete(writer.delete(&delete.key, delete.prev_kv)?),
        Op::DeleteRange(range) => Outcome::DeleteRange(writer.delete_range(range)?),
        Op::Scan(s) => Outcome::Scan(scan(writer.kv, s)?),
        Op::CompareAndSwap(cas) => Outcome::CompareAndSwap(writer.compare_and_swap(cas)?),
        Op::Txn(txn) => Outcome::Txn(writer.txn(txn)?),
        Op::Incr(incr) => Outcome::Incr(writer.incr(incr)?),
    };
    if writer.changed {
        *revision = writer.revision;
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::parse_canonical_i64;

    #[test]
    fn only_canonical_decimal_i64_parses() {
        assert_eq!(parse_canonical_i64(b"0"), Some(0));
        assert_eq!(parse_canonical_i64(b"-42"), Some(-42));
        assert_eq!(parse_canonical_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_canonical_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"+1",
            b"01",
            b"-0",
            b" 1",
            b"1 ",
            b"1.0",
            b"abc",
            b"9223372036854775808",
            b"\xff",
        ] {
            assert_eq!(parse_canonical_i64(bad), None, "{bad:?}");
        }
    }
}
