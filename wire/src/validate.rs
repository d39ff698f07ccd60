//! Decoding untrusted bytes into a [`Request`] and checking it against [`crate::limits`].
//!
//! Decoding never panics: prost checks every length against the input, and nested messages are
//! bounded by prost's recursion limit (our messages nest at most four deep anyway). Validation is
//! pure and deterministic, so every node refuses the same requests with the same error.

use std::collections::BTreeSet;

use prost::Message;

use crate::command::{
    Campaign, CheckpointSessions, Compare, CompareAndSwap, CompareOp, CompareTarget, Delete,
    DeleteRange, Expected, Expire, ExpireIf, Get, Incr, KeyTtl, Op, Persist, Proclaim, Put,
    Request, Scan, Ttl, Txn, TxnOp, TxnOpKind,
};
use crate::error::RequestError;
use crate::limits::{
    MAX_CHECKPOINT_ENTRIES, MAX_ELECTION_VALUE_BYTES, MAX_KEY_BYTES, MAX_KEY_EXPIRY_ENTRIES,
    MAX_KEY_TTL_MS, MAX_NAME_BYTES, MAX_REQUEST_BYTES, MAX_SCAN_LIMIT, MAX_SESSION_TTL_MS,
    MAX_TXN_OPS, MAX_VALUE_BYTES, MIN_SESSION_TTL_MS,
};

impl Request {
    /// Decode `bytes` and [`validate`](Request::validate) the result.
    ///
    /// The one entry point for untrusted input: checks the size against
    /// [`MAX_REQUEST_BYTES`] first, never panics, and returns a typed error for garbage.
    pub fn decode_validated(bytes: &[u8]) -> Result<Request, RequestError> {
        let request = Request::decode_bounded(bytes)?;
        request.validate()?;
        Ok(request)
    }

    /// Decode `bytes` after checking their size against [`MAX_REQUEST_BYTES`], without
    /// validating the result. Never panics.
    pub fn decode_bounded(bytes: &[u8]) -> Result<Request, RequestError> {
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(RequestError::RequestTooLarge {
                size_bytes: bytes.len(),
                limit_bytes: MAX_REQUEST_BYTES,
            });
        }
        Request::decode(bytes).map_err(|e| RequestError::Malformed(e.to_string()))
    }

    /// Check the request against the limits and the rules of its op: an op is present, keys are
    /// non-empty and within [`MAX_KEY_BYTES`], values within [`MAX_VALUE_BYTES`], enums known,
    /// transaction lists within [`MAX_TXN_OPS`] and without duplicate writes per branch, scan
    /// limits within [`MAX_SCAN_LIMIT`], and a non-zero client's `seq` at least 1. Coordination
    /// ops: names non-empty and within [`MAX_NAME_BYTES`], sessions not 0, TTLs within
    /// [`MIN_SESSION_TTL_MS`]..=[`MAX_SESSION_TTL_MS`], election values within
    /// [`MAX_ELECTION_VALUE_BYTES`], checkpoints within [`MAX_CHECKPOINT_ENTRIES`]. A fence names
    /// a valid lock name. Key expiry: TTLs within [`MAX_KEY_TTL_MS`], a [`KeyTtl`] does not both
    /// keep and set, batches within [`MAX_KEY_EXPIRY_ENTRIES`].
    ///
    /// Requests built in Rust (not decoded) should be validated too: the state machine's
    /// `apply_slots` does.
    pub fn validate(&self) -> Result<(), RequestError> {
        self.validate_header()?;
        if let Some(fence) = &self.fence {
            check_name("lock", &fence.lock_name)?;
        }
        if let Some(key_ttl) = &self.key_ttl {
            check_key_ttl(key_ttl)?;
        }
        if matches!(self.op, Some(Op::Redis(_) | Op::RedisMulti(_)))
            && (self.session != 0 || self.key_ttl.is_some())
        {
            return Err(RequestError::BadRedisCommand(
                "a Redis command carries neither a session nor a key ttl".into(),
            ));
        }
        match &self.op {
            None => Err(RequestError::MissingOp("request")),
            Some(op) => validate_op(op),
        }
    }

    /// The part of [`validate`](Request::validate) that concerns who sent the request: a
    /// non-zero client's `seq` is at least 1.
    pub fn validate_header(&self) -> Result<(), RequestError> {
        if self.client_id != 0 && self.seq == 0 {
            return Err(RequestError::ZeroSequence {
                client_id: self.client_id,
            });
        }
        Ok(())
    }
}

impl Op {
    /// Check this op against the limits: the op's part of [`Request::validate`] (a read served
    /// outside the log is checked with this alone).
    pub fn validate(&self) -> Result<(), RequestError> {
        validate_op(self)
    }
}

fn validate_op(op: &Op) -> Result<(), RequestError> {
    match op {
        Op::Put(put) => validate_put(put),
        Op::Get(Get { key }) | Op::Incr(Incr { key, .. }) => check_key(key),
        Op::Delete(Delete { key, .. }) => check_key(key),
        Op::DeleteRange(DeleteRange { start, end, prefix }) => check_bounds(start, end, prefix),
        Op::Scan(scan) => validate_scan(scan),
        Op::CompareAndSwap(cas) => validate_cas(cas),
        Op::Txn(txn) => validate_txn(txn),
        Op::OpenSession(open) => check_ttl(open.ttl_ms),
        Op::KeepAlive(k) => check_session(k.session),
        Op::CloseSession(c) => check_session(c.session),
        Op::ExpireSession(e) => check_session(e.session),
        Op::CheckpointSessions(c) => validate_checkpoint(c),
        Op::Lock(lock) => {
            check_name("lock", &lock.name)?;
            check_session(lock.session)
        }
        Op::Unlock(unlock) => {
            check_name("lock", &unlock.name)?;
            check_session(unlock.session)
        }
        Op::ReleaseLockDelay(release) => check_name("lock", &release.name),
        Op::LockHolder(holder) => check_name("lock", &holder.name),
        Op::Campaign(Campaign {
            election,
            session,
            value,
        })
        | Op::Proclaim(Proclaim {
            election,
            session,
            value,
        }) => {
            check_name("election", election)?;
            check_session(*session)?;
            check_election_value(value)
        }
        Op::Resign(resign) => {
            check_name("election", &resign.election)?;
            check_session(resign.session)
        }
        Op::Leader(leader) => check_name("election", &leader.election),
        Op::Expire(expire) => validate_expire(expire),
        Op::Persist(Persist { key }) | Op::Ttl(Ttl { key }) => check_key(key),
        Op::ExpireKeys(e) => {
            check_expiry_batch(e.entries.len())?;
            e.entries.iter().try_for_each(|entry| check_key(&entry.key))
        }
        Op::CheckpointKeys(c) => {
            check_expiry_batch(c.entries.len())?;
            c.entries.iter().try_for_each(|entry| check_key(&entry.key))
        }
        Op::Redis(command) => crate::redis::validate(command),
        Op::RedisMulti(multi) => crate::redis::validate_multi(multi),
    }
}

fn check_key_ttl(key_ttl: &KeyTtl) -> Result<(), RequestError> {
    if key_ttl.keep && key_ttl.ttl_ms != 0 {
        return Err(RequestError::KeyTtlConflict);
    }
    if key_ttl.ttl_ms > MAX_KEY_TTL_MS {
        return Err(RequestError::KeyTtlOutOfRange {
            ttl_ms: i64::try_from(key_ttl.ttl_ms).unwrap_or(i64::MAX),
            max_ms: MAX_KEY_TTL_MS,
        });
    }
    Ok(())
}

fn validate_expire(expire: &Expire) -> Result<(), RequestError> {
    check_key(&expire.key)?;
    ExpireIf::try_from(expire.condition).map_err(|_| RequestError::InvalidEnum {
        field: "expire condition",
        value: expire.condition,
    })?;
    if expire.ttl_ms > 0 && expire.ttl_ms.unsigned_abs() > MAX_KEY_TTL_MS {
        return Err(RequestError::KeyTtlOutOfRange {
            ttl_ms: expire.ttl_ms,
            max_ms: MAX_KEY_TTL_MS,
        });
    }
    Ok(())
}

fn check_expiry_batch(count: usize) -> Result<(), RequestError> {
    if count > MAX_KEY_EXPIRY_ENTRIES {
        return Err(RequestError::ExpiryBatchTooLarge {
            count,
            limit: MAX_KEY_EXPIRY_ENTRIES,
        });
    }
    Ok(())
}

/// A lock or election name: non-empty, at most [`MAX_NAME_BYTES`].
fn check_name(what: &'static str, name: &[u8]) -> Result<(), RequestError> {
    if name.is_empty() {
        return Err(RequestError::EmptyName { what });
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(RequestError::NameTooLarge {
            what,
            size_bytes: name.len(),
            limit_bytes: MAX_NAME_BYTES,
        });
    }
    Ok(())
}

/// A session id: 0 is never one.
fn check_session(session: u64) -> Result<(), RequestError> {
    if session == 0 {
        return Err(RequestError::SessionNotFound { session });
    }
    Ok(())
}

fn check_ttl(ttl_ms: u64) -> Result<(), RequestError> {
    if !(MIN_SESSION_TTL_MS..=MAX_SESSION_TTL_MS).contains(&ttl_ms) {
        return Err(RequestError::TtlOutOfRange {
            ttl_ms,
            min_ms: MIN_SESSION_TTL_MS,
            max_ms: MAX_SESSION_TTL_MS,
        });
    }
    Ok(())
}

fn check_election_value(value: &[u8]) -> Result<(), RequestError> {
    if value.len() > MAX_ELECTION_VALUE_BYTES {
        return Err(RequestError::ValueTooLarge {
            size_bytes: value.len(),
            limit_bytes: MAX_ELECTION_VALUE_BYTES,
        });
    }
    Ok(())
}

fn validate_checkpoint(checkpoint: &CheckpointSessions) -> Result<(), RequestError> {
    if checkpoint.entries.len() > MAX_CHECKPOINT_ENTRIES {
        return Err(RequestError::CheckpointTooLarge {
            count: checkpoint.entries.len(),
            limit: MAX_CHECKPOINT_ENTRIES,
        });
    }
    for entry in &checkpoint.entries {
        check_session(entry.session)?;
    }
    Ok(())
}

fn check_key(key: &[u8]) -> Result<(), RequestError> {
    if key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    check_bound(key)
}

/// A range bound or prefix: may be empty, at most [`MAX_KEY_BYTES`].
fn check_bound(bound: &[u8]) -> Result<(), RequestError> {
    if bound.len() > MAX_KEY_BYTES {
        return Err(RequestError::KeyTooLarge {
            size_bytes: bound.len(),
            limit_bytes: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

fn check_bounds(start: &[u8], end: &[u8], prefix: &[u8]) -> Result<(), RequestError> {
    check_bound(start)?;
    check_bound(end)?;
    check_bound(prefix)
}

fn check_value(value: &[u8]) -> Result<(), RequestError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(RequestError::ValueTooLarge {
            size_bytes: value.len(),
            limit_bytes: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

fn validate_put(put: &Put) -> Result<(), RequestError> {
    check_key(&put.key)?;
    check_value(&put.value)
}

fn validate_scan(scan: &Scan) -> Result<(), RequestError> {
    check_bounds(&scan.start, &scan.end, &scan.prefix)?;
    if scan.limit > MAX_SCAN_LIMIT {
        return Err(RequestError::ScanLimitTooLarge {
            limit: scan.limit,
            max: MAX_SCAN_LIMIT,
        });
    }
    Ok(())
}

fn validate_cas(cas: &CompareAndSwap) -> Result<(), RequestError> {
    check_key(&cas.key)?;
    if let Some(Expected::Value(expected)) = &cas.expected {
        check_value(expected)?;
    }
    check_value(&cas.new_value)
}

fn check_count(list: &'static str, count: usize) -> Result<(), RequestError> {
    if count > MAX_TXN_OPS {
        return Err(RequestError::TxnTooLarge {
            list,
            count,
            limit: MAX_TXN_OPS,
        });
    }
    Ok(())
}

fn validate_txn(txn: &Txn) -> Result<(), RequestError> {
    check_count("compares", txn.compares.len())?;
    check_count("success ops", txn.success.len())?;
    check_count("failure ops", txn.failure.len())?;
    for compare in &txn.compares {
        validate_compare(compare)?;
    }
    validate_branch("success", &txn.success)?;
    validate_branch("failure", &txn.failure)
}

fn validate_compare(compare: &Compare) -> Result<(), RequestError> {
    check_key(&compare.key)?;
    CompareTarget::try_from(compare.target).map_err(|_| RequestError::InvalidEnum {
        field: "compare target",
        value: compare.target,
    })?;
    CompareOp::try_from(compare.op).map_err(|_| RequestError::InvalidEnum {
        field: "compare op",
        value: compare.op,
    })?;
    check_value(&compare.value)
}

fn validate_branch(branch: &'static str, ops: &[TxnOp]) -> Result<(), RequestError> {
    let mut written: BTreeSet<&[u8]> = BTreeSet::new();
    for txn_op in ops {
        let key = match &txn_op.op {
            None => return Err(RequestError::MissingOp("transaction op")),
            Some(TxnOpKind::Get(get)) => {
                check_key(&get.key)?;
                continue;
            }
            Some(TxnOpKind::Put(put)) => {
                validate_put(put)?;
                &put.key
            }
            Some(TxnOpKind::Delete(delete)) => {
                check_key(&delete.key)?;
                &delete.key
            }
        };
        if !written.insert(key.as_slice()) {
            return Err(RequestError::DuplicateTxnKey { branch });
        }
    }
    Ok(())
}
