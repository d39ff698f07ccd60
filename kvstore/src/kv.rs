//! The key-value commands: [`get`] and [`scan`] (reads, on any readable table, so the same code
//! serves `apply_slots` inside the write transaction and `read` in a read transaction), and the writes
//! [`delete`], [`compare_and_swap`], [`incr`] and [`txn`] (a put and a delete-range are a
//! [`Writer`]'s own). Each write checks everything that can refuse it (the session's key count,
//! the stored value for incr, a transaction's reply size, ...) before it writes anything.

use std::cmp::Ordering;
use std::collections::HashMap;

use redb::ReadableTable;

use crate::error::{ExecError, StorageError};
use crate::range::KeyInterval;
use crate::tables::{decode_record, get_kv, KvRecord};
use crate::writer::{TtlMode, Writer};
use crate::KIND_STRING;
use synod_wire::command::{
    Compare, CompareAndSwap, CompareOp, CompareTarget, Expected, Incr, Scan, Txn, TxnOp, TxnOpKind,
};
use synod_wire::limits::{
    MAX_KEY_BYTES, MAX_REPLY_BYTES, MAX_SCAN_LIMIT, MAX_SCAN_RESPONSE_BYTES, MAX_VALUE_BYTES,
};
use synod_wire::response::{
    CompareAndSwapResponse, DeleteResponse, GetResponse, IncrResponse, ScanResponse, TxnOpResponse,
    TxnOutcome, TxnResponse,
};
use synod_wire::RequestError;

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

pub(crate) fn delete(
    w: &mut Writer<'_, '_>,
    key: &[u8],
    prev_kv: bool,
) -> Result<DeleteResponse, ExecError> {
    let removed = w.remove_key(key, true)?;
    Ok(DeleteResponse {
        deleted: removed.is_some(),
        prev: removed
            .filter(|_| prev_kv)
            .map(|p| p.to_key_value(key, true)),
    })
}

pub(crate) fn compare_and_swap(
    w: &mut Writer<'_, '_>,
    cas: &CompareAndSwap,
) -> Result<CompareAndSwapResponse, ExecError> {
    let current = get_kv(w.kv, &cas.key)?;
    let matches = match (&cas.expected, &current) {
        (None, current) => current.is_none(),
        (Some(Expected::Value(expected)), Some(current)) => {
            current.kind == KIND_STRING && current.value == *expected
        }
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
    w.check_owner([cas.key.as_slice()])?;
    w.put(&cas.key, &cas.new_value, false, TtlMode::Clear)?;
    Ok(CompareAndSwapResponse {
        succeeded: true,
        current: None,
    })
}

pub(crate) fn incr(w: &mut Writer<'_, '_>, incr: &Incr) -> Result<IncrResponse, ExecError> {
    let current = match get_kv(w.kv, &incr.key)? {
        None => 0,
        Some(record) if record.kind != KIND_STRING => return Err(RequestError::WrongType.into()),
        Some(record) => parse_canonical_i64(&record.value).ok_or(RequestError::NotAnInteger)?,
    };
    let value = current
        .checked_add(incr.delta)
        .ok_or(RequestError::IncrOverflow)?;
    w.check_owner([incr.key.as_slice()])?;
    w.put(
        &incr.key,
        value.to_string().as_bytes(),
        false,
        TtlMode::Keep,
    )?;
    Ok(IncrResponse { value })
}

/// Refuses `branch` if its answer would carry more than [`MAX_REPLY_BYTES`] of stored data:
/// the keys and values its gets return and the previous values its puts and deletes return,
/// each as it will be when that op runs (a key written earlier in the branch counts with its
/// new value). Checked before the branch writes anything, so a refused transaction changes
/// nothing; without it the answer could outgrow its frame after the writes were applied.
fn check_txn_reply(w: &Writer<'_, '_>, branch: &[TxnOp]) -> Result<(), ExecError> {
    let answers = |op: &TxnOp| match &op.op {
        Some(TxnOpKind::Get(_)) => true,
        Some(TxnOpKind::Put(put)) => put.prev_kv,
        Some(TxnOpKind::Delete(delete)) => delete.prev_kv,
        None => false,
    };
    let worst_case =
        branch.iter().filter(|op| answers(op)).count() * (MAX_VALUE_BYTES + MAX_KEY_BYTES);
    if worst_case <= MAX_REPLY_BYTES {
        return Ok(());
    }
    // Value sizes of keys written earlier in the branch (`None`: deleted).
    let mut written: HashMap<&[u8], Option<usize>> = HashMap::new();
    let mut total = 0usize;
    for op in branch {
        let (key, new_len) = match &op.op {
            Some(TxnOpKind::Get(get)) => (get.key.as_slice(), None),
            Some(TxnOpKind::Put(put)) => (put.key.as_slice(), Some(Some(put.value.len()))),
            Some(TxnOpKind::Delete(delete)) => (delete.key.as_slice(), Some(None)),
            None => continue,
        };
        if answers(op) {
            let len = match written.get(key) {
                Some(len) => *len,
                None => get_kv(w.kv, key)?.map(|record| record.value.len()),
            };
            total += len.map_or(0, |len| key.len() + len);
            if total > MAX_REPLY_BYTES {
                return Err(RequestError::ResponseTooLarge {
                    size_bytes: total,
                    limit_bytes: MAX_REPLY_BYTES,
                }
                .into());
            }
        }
        if let Some(new_len) = new_len {
            written.insert(key, new_len);
        }
    }
    Ok(())
}

pub(crate) fn txn(w: &mut Writer<'_, '_>, txn: &Txn) -> Result<TxnResponse, ExecError> {
    let mut succeeded = true;
    for compare in &txn.compares {
        if !compare_holds(w.kv, compare)? {
            succeeded = false;
            break;
        }
    }
    let branch = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    w.check_owner(branch.iter().filter_map(|op| match &op.op {
        Some(TxnOpKind::Put(put)) => Some(put.key.as_slice()),
        _ => None,
    }))?;
    check_txn_reply(w, branch)?;
    let mut responses = Vec::with_capacity(branch.len());
    for txn_op in branch {
        let outcome = match &txn_op.op {
            // Refused by validation; nothing to do for it here.
            None => None,
            Some(TxnOpKind::Put(put)) => Some(TxnOutcome::Put(w.put(
                &put.key,
                &put.value,
                put.prev_kv,
                TtlMode::Clear,
            )?)),
            Some(TxnOpKind::Delete(d)) => Some(TxnOutcome::Delete(delete(w, &d.key, d.prev_kv)?)),
            Some(TxnOpKind::Get(g)) => Some(TxnOutcome::Get(get(w.kv, &g.key)?)),
        };
        responses.push(TxnOpResponse { outcome });
    }
    Ok(TxnResponse {
        succeeded,
        responses,
    })
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
            // A collection has no value to compare, like an absent key.
            None => return Ok(false),
            Some(r) if r.kind != KIND_STRING => return Ok(false),
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
fn parse_canonical_i64(bytes: &[u8]) -> Option<i64> {
    // 20 bytes hold every i64 ("-9223372036854775808"); longer is never canonical.
    if bytes.len() > 20 {
        return None;
    }
    let n: i64 = std::str::from_utf8(bytes).ok()?.parse().ok()?;
    (n.to_string().as_bytes() == bytes).then_some(n)
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
