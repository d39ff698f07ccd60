//! Synod's own commands, all prefixed `SYNOD.` so they cannot be taken for
//! Redis commands: compare-and-swap, cluster status, locks with fencing
//! tokens, fenced writes and elections.
//!
//! Locks and candidacies belong to a session. A connection opens one on its
//! first `SYNOD.LOCK` or `SYNOD.CAMPAIGN` (with that command's TTL, default
//! [`DEFAULT_SESSION_TTL_MS`]), keeps it alive every third of its TTL from
//! a background task while the client shows traffic, and closes it when
//! the connection ends, which releases its locks and candidacies. A client
//! silent for longer than the TTL (its host may be gone, with the
//! connection still open) is no longer kept alive: the session expires,
//! and its locks are released after the lock-delay, as any expired
//! session's. If the session ends that way, or expires anyway (the node
//! was cut off longer than the TTL), the next lock or election command
//! says so once and then opens a new session. A client that holds a lock
//! and has nothing to say sends `PING` within the TTL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use synod_kvstore::{
    Campaign, CloseSession, CompareAndSwap, ElectionStatus, ErrorCode, Expected, Fence, KeepAlive,
    Leader, Lock, LockHolder, LockStatus, Op, OpenSession, Outcome, Proclaim, Put, Request, Resign,
    Unlock,
};

use super::backend::Backend;
use super::resp::{parse_i64, Reply};
use super::RedisShared;
use super::{
    call_error_reply, call_numbered, check_key, outcome, read, request_error_reply, write, Conn,
};
use crate::node::ReadConsistency;

/// TTL of a connection's session when the opening command names none.
pub const DEFAULT_SESSION_TTL_MS: u64 = 10_000;

/// The session a connection owns.
pub(super) struct ConnSession {
    id: u64,
    keepalive: tokio::task::JoinHandle<()>,
    /// Set by the keep-alive task when the cluster no longer knows the
    /// session.
    lost: Arc<AtomicBool>,
}

impl ConnSession {
    /// Stops the keep-alives and closes the session in the background.
    pub(super) fn close(self, backend: &Arc<Backend>) {
        self.keepalive.abort();
        if self.lost.load(Ordering::SeqCst) {
            return;
        }
        let backend = backend.clone();
        let close = Request::anonymous(Op::CloseSession(CloseSession { session: self.id }));
        tokio::spawn(async move {
            if let Err(e) = backend.call(&close, ReadConsistency::Linearizable).await {
                tracing::warn!(session = close_id(&close), error = %e, "could not close a Redis connection's session; it will expire");
            }
        });
    }
}

fn close_id(request: &Request) -> u64 {
    match &request.op {
        Some(Op::CloseSession(close)) => close.session,
        _ => 0,
    }
}

/// Keeps `session` alive every third of `ttl_ms` while the connection's
/// client sent something within the last `ttl_ms` (`silent_ms` says how
/// long it has been silent); sets `lost` when it stops.
fn keepalive_task(
    backend: Arc<Backend>,
    session: u64,
    ttl_ms: u64,
    silent_ms: impl Fn() -> u64 + Send + 'static,
    lost: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let period = Duration::from_millis((ttl_ms / 3).max(100));
    tokio::spawn(async move {
        let request = Request::anonymous(Op::KeepAlive(KeepAlive { session }));
        loop {
            tokio::time::sleep(period).await;
            let silent = silent_ms();
            if silent > ttl_ms {
                tracing::info!(session, silent_ms = silent, ttl_ms, "a Redis connection owning a session was silent longer than its TTL; letting the session expire");
                lost.store(true, Ordering::SeqCst);
                return;
            }
            let Ok(response) = backend.call(&request, ReadConsistency::Linearizable).await else {
                continue;
            };
            if response
                .as_error()
                .is_some_and(|e| e.error_code() == ErrorCode::SessionNotFound)
            {
                lost.store(true, Ordering::SeqCst);
                return;
            }
        }
    })
}

/// This connection's session, opened with `ttl_ms` if it has none.
async fn session_of(
    shared: &RedisShared,
    conn: &mut Conn,
    ttl_ms: Option<u64>,
) -> Result<u64, Reply> {
    if let Some(session) = &conn.session {
        if !session.lost.load(Ordering::SeqCst) {
            return Ok(session.id);
        }
        let lost = conn.session.take().expect("checked above");
        lost.keepalive.abort();
        return Err(Reply::err(format!(
            "this connection's session {} expired (the node was cut off, or the connection \
             was silent longer than the session's TTL), releasing its locks and candidacies; \
             the next command opens a new session",
            lost.id
        )));
    }
    let ttl_ms = ttl_ms.unwrap_or(DEFAULT_SESSION_TTL_MS);
    let Outcome::OpenSession(opened) =
        write(shared, conn, Op::OpenSession(OpenSession { ttl_ms })).await?
    else {
        return Err(Reply::err(
            "the state machine answered with an unexpected outcome",
        ));
    };
    let lost = Arc::new(AtomicBool::new(false));
    let last_input_ms = conn.last_input_ms.clone();
    let started = shared.started;
    let silent_ms = move || {
        (started.elapsed().as_millis() as u64).saturating_sub(last_input_ms.load(Ordering::Relaxed))
    };
    conn.session = Some(ConnSession {
        id: opened.session,
        keepalive: keepalive_task(
            shared.backend.clone(),
            opened.session,
            opened.ttl_ms,
            silent_ms,
            lost.clone(),
        ),
        lost,
    });
    Ok(opened.session)
}

/// A numbered write whose refusals with `tolerated` codes come back as
/// `Ok(None)`.
async fn write_tolerating(
    shared: &RedisShared,
    conn: &mut Conn,
    op: Op,
    tolerated: ErrorCode,
) -> Result<Option<Outcome>, Reply> {
    let request = conn.numbered(op);
    let response = call_numbered(shared, conn, request).await?;
    match response.as_error() {
        Some(e) if e.error_code() == tolerated => Ok(None),
        Some(e) => Err(request_error_reply(e)),
        None => outcome(response.outcome).map(Some),
    }
}

fn optional_ttl(arg: Option<&Vec<u8>>) -> Result<Option<u64>, Reply> {
    match arg {
        None => Ok(None),
        Some(arg) => match parse_i64(arg) {
            Some(ttl) if ttl > 0 => Ok(Some(ttl as u64)),
            _ => Err(Reply::err(
                "the TTL must be a positive integer of milliseconds",
            )),
        },
    }
}

fn pairs(items: Vec<(&str, Reply)>) -> Reply {
    Reply::Array(
        items
            .into_iter()
            .flat_map(|(k, v)| [Reply::text(k), v])
            .collect(),
    )
}

fn unexpected() -> Reply {
    Reply::err("the state machine answered with an unexpected outcome")
}

fn flatten(result: Result<Reply, Reply>) -> Reply {
    result.unwrap_or_else(|error| error)
}

/// `SYNOD.CAS key expected new`: 1 if the key held `expected` and now
/// holds `new`, else 0.
pub(super) async fn cas(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Reply {
    flatten(
        async {
            check_key(&args[1])?;
            let op = Op::CompareAndSwap(CompareAndSwap {
                key: args[1].clone(),
                expected: Some(Expected::Value(args[2].clone())),
                new_value: args[3].clone(),
            });
            match write(shared, conn, op).await? {
                Outcome::CompareAndSwap(cas) => Ok(Reply::Integer(cas.succeeded.into())),
                _ => Err(unexpected()),
            }
        }
        .await,
    )
}

/// `SYNOD.SETFENCED lock token key value`: `SET key value` only if `token`
/// is the current fencing token of `lock`.
pub(super) async fn set_fenced(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Reply {
    flatten(
        async {
            let token = parse_i64(&args[2])
                .filter(|t| *t >= 0)
                .ok_or_else(|| Reply::err("the fencing token must be a non-negative integer"))?;
            check_key(&args[3])?;
            let mut request = conn.numbered(Op::Put(Put {
                key: args[3].clone(),
                value: args[4].clone(),
                prev_kv: false,
            }));
            request.fence = Some(Fence {
                lock_name: args[1].clone(),
                token: token as u64,
            });
            let response = call_numbered(shared, conn, request).await?;
            match response.as_error() {
                Some(e) if e.error_code() == ErrorCode::FencingTokenRejected => {
                    Err(Reply::Error(format!("FENCED {}", e.message)))
                }
                _ => outcome(response.outcome).map(|_| Reply::ok()),
            }
        }
        .await,
    )
}

/// `SYNOD.STATUS`: this node's view of the cluster, as field/value pairs.
pub(super) async fn status(shared: &RedisShared) -> Reply {
    let status = match shared.backend.status().await {
        Ok(status) => status,
        Err(error) => return call_error_reply(error),
    };
    let role = status.role.name();
    let int = |n: u64| Reply::Integer(n as i64);
    pairs(vec![
        ("node_id", int(status.id.0.into())),
        ("role", Reply::text(role)),
        ("leader_id", int(status.leader.map_or(0, |l| l.0).into())),
        ("ballot", int(status.ballot.0)),
        ("commit_index", int(status.commit_index.0)),
        ("applied_index", int(status.applied_index.0)),
        ("revision", int(status.revision)),
        ("compacted_through", int(status.compacted_through.0)),
    ])
}

/// `SYNOD.MEMBERS`: one array per member, from the leader: `id`, `role`
/// (leader, voter or learner), `peer_addr`, `client_addr`, `commit_index`,
/// `heard_ms_ago` (-1: never), as field/value pairs.
pub(super) async fn members(shared: &RedisShared) -> Reply {
    let members = match shared.backend.cluster_client().await {
        Ok(client) => client.members().await,
        Err(error) => return call_error_reply(error),
    };
    let members = match members {
        Ok(members) => members,
        Err(error) => return client_error_reply(error),
    };
    let int = |n: u64| Reply::Integer(n as i64);
    Reply::Array(
        members
            .members
            .iter()
            .map(|m| {
                let role = match (m.voter, m.id == members.leader) {
                    (true, true) => "leader",
                    (true, false) => "voter",
                    (false, _) => "learner",
                };
                pairs(vec![
                    ("id", int(m.id.into())),
                    ("role", Reply::text(role)),
                    ("peer_addr", Reply::text(&m.peer_addr)),
                    ("client_addr", Reply::text(&m.client_addr)),
                    ("commit_index", int(m.commit_index)),
                    (
                        "heard_ms_ago",
                        Reply::Integer(m.heard_ago.map_or(-1, |d| d.as_millis() as i64)),
                    ),
                ])
            })
            .collect(),
    )
}

/// `SYNOD.MEMBER ADD id peer_addr client_addr | PROMOTE id | REMOVE id`:
/// one membership change at the leader, answered `OK` once it governs
/// (`ADD` adds a learner; promote it once caught up).
pub(super) async fn member(shared: &RedisShared, args: &[Vec<u8>]) -> Reply {
    let text = |i: usize| String::from_utf8_lossy(&args[i]).to_string();
    let id = |i: usize| -> Result<u32, Reply> {
        text(i)
            .parse()
            .map_err(|_| Reply::err("the node id is not an integer"))
    };
    let addr = |i: usize| -> Result<std::net::SocketAddr, Reply> {
        text(i)
            .parse()
            .map_err(|_| Reply::err(format!("{} is not an address of the form ip:port", text(i))))
    };
    let sub = text(1).to_ascii_lowercase();
    let client = match shared.backend.cluster_client().await {
        Ok(client) => client,
        Err(error) => return call_error_reply(error),
    };
    let result = match (sub.as_str(), args.len()) {
        ("add", 5) => match (id(2), addr(3), addr(4)) {
            (Ok(id), Ok(peer), Ok(client_addr)) => client.add_member(id, peer, client_addr).await,
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
        },
        ("promote", 3) => match id(2) {
            Ok(id) => client.promote_member(id).await,
            Err(e) => return e,
        },
        ("remove", 3) => match id(2) {
            Ok(id) => client.remove_member(id).await,
            Err(e) => return e,
        },
        _ => return Reply::err(
            "syntax error; use SYNOD.MEMBER ADD id peer_addr client_addr | PROMOTE id | REMOVE id",
        ),
    };
    match result {
        Ok(()) => Reply::ok(),
        Err(error) => client_error_reply(error),
    }
}

/// The Redis reply for a failed membership call.
fn client_error_reply(error: synod_client::ClientError) -> Reply {
    match error {
        synod_client::ClientError::BadRequest(reason) => Reply::err(reason),
        synod_client::ClientError::Timeout => Reply::Error(format!(
            "UNCERTAIN {error}; list the members to see where it stands"
        )),
        other => Reply::err(other),
    }
}

/// `SYNOD.LOCK name [ttl_ms]`: try to take `name` for this connection's
/// session; the fencing token if granted (or already held), nil if held by
/// another session.
pub(super) async fn lock(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Reply {
    flatten(
        async {
            if args.len() > 3 {
                return Err(Reply::err("syntax error"));
            }
            let ttl = optional_ttl(args.get(2))?;
            let session = session_of(shared, conn, ttl).await?;
            let op = Op::Lock(Lock {
                name: args[1].clone(),
                session,
                wait: false,
            });
            match write(shared, conn, op).await? {
                Outcome::Lock(lock) => Ok(match lock.lock_status() {
                    LockStatus::Granted => Reply::Integer(lock.token as i64),
                    _ => Reply::Nil,
                }),
                _ => Err(unexpected()),
            }
        }
        .await,
    )
}

/// `SYNOD.UNLOCK name`: 1 if this connection held `name` and released it,
/// else 0.
pub(super) async fn unlock(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Reply {
    let Some(session) = conn.session.as_ref().map(|s| s.id) else {
        return Reply::Integer(0);
    };
    let op = Op::Unlock(Unlock {
        name: args[1].clone(),
        session,
    });
    flatten(
        match write_tolerating(shared, conn, op, ErrorCode::NotLockHolder).await {
            Ok(Some(Outcome::Unlock(unlock))) => Ok(Reply::Integer(unlock.released.into())),
            Ok(None) => Ok(Reply::Integer(0)),
            Ok(Some(_)) => Err(unexpected()),
            Err(error) => Err(error),
        },
    )
}

/// `SYNOD.LOCKINFO name`: holder session, fencing token and waiters.
pub(super) async fn lock_info(shared: &RedisShared, args: &[Vec<u8>]) -> Reply {
    let op = Op::LockHolder(LockHolder {
        name: args[1].clone(),
    });
    flatten(match read(shared, op).await {
        Ok(Outcome::LockHolder(info)) => Ok(pairs(vec![
            ("holder", Reply::Integer(info.holder as i64)),
            ("token", Reply::Integer(info.token as i64)),
            ("waiters", Reply::Integer(info.waiters.len() as i64)),
        ])),
        Ok(_) => Err(unexpected()),
        Err(error) => Err(error),
    })
}

/// `SYNOD.CAMPAIGN election value [ttl_ms]`: run for leader with this
/// connection's session; `status elected revision r` or `status queued
/// position p`.
pub(super) async fn campaign(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Reply {
    flatten(
        async {
            if args.len() > 4 {
                return Err(Reply::err("syntax error"));
            }
            let ttl = optional_ttl(args.get(3))?;
            let session = session_of(shared, conn, ttl).await?;
            let op = Op::Campaign(Campaign {
                election: args[1].clone(),
                session,
                value: args[2].clone(),
            });
            match write(shared, conn, op).await? {
                Outcome::Campaign(c) if c.election_status() == ElectionStatus::Elected => {
                    Ok(pairs(vec![
                        ("status", Reply::text("elected")),
                        (
                            "revision",
                            Reply::Integer(c.leader.map_or(0, |l| l.revision) as i64),
                        ),
                    ]))
                }
                Outcome::Campaign(c) => Ok(pairs(vec![
                    ("status", Reply::text("queued")),
                    ("position", Reply::Integer(c.position as i64)),
                ])),
                _ => Err(unexpected()),
            }
        }
        .await,
    )
}

/// `SYNOD.PROCLAIM election value`: the leader (this connection) announces
/// a new value; answers its leadership revision.
pub(super) async fn proclaim(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Reply {
    let Some(session) = conn.session.as_ref().map(|s| s.id) else {
        return Reply::err("this connection has not campaigned (no session)");
    };
    let op = Op::Proclaim(Proclaim {
        election: args[1].clone(),
        session,
        value: args[2].clone(),
    });
    flatten(match write(shared, conn, op).await {
        Ok(Outcome::Proclaim(p)) => Ok(Reply::Integer(p.revision as i64)),
        Ok(_) => Err(unexpected()),
        Err(error) => Err(error),
    })
}

/// `SYNOD.RESIGN election`: 1 if this connection led and resigned, 0 if it
/// only left the queue or was not a candidate.
pub(super) async fn resign(shared: &RedisShared, conn: &mut Conn, args: &[Vec<u8>]) -> Reply {
    let Some(session) = conn.session.as_ref().map(|s| s.id) else {
        return Reply::Integer(0);
    };
    let op = Op::Resign(Resign {
        election: args[1].clone(),
        session,
    });
    flatten(
        match write_tolerating(shared, conn, op, ErrorCode::NotCandidate).await {
            Ok(Some(Outcome::Resign(r))) => Ok(Reply::Integer(r.resigned.into())),
            Ok(None) => Ok(Reply::Integer(0)),
            Ok(Some(_)) => Err(unexpected()),
            Err(error) => Err(error),
        },
    )
}

/// `SYNOD.LEADER election`: `value v session s revision r`, or nil.
pub(super) async fn leader(shared: &RedisShared, args: &[Vec<u8>]) -> Reply {
    let op = Op::Leader(Leader {
        election: args[1].clone(),
    });
    flatten(match read(shared, op).await {
        Ok(Outcome::Leader(l)) => Ok(l.leader.map_or(Reply::NilArray, |leader| {
            pairs(vec![
                ("value", Reply::Bulk(leader.value)),
                ("session", Reply::Integer(leader.session as i64)),
                ("revision", Reply::Integer(leader.revision as i64)),
            ])
        })),
        Ok(_) => Err(unexpected()),
        Err(error) => Err(error),
    })
}

/// `SYNOD.SESSION`: this connection's session id, or nil if it has none.
pub(super) fn session(conn: &Conn) -> Reply {
    conn.session
        .as_ref()
        .map_or(Reply::Nil, |s| Reply::Integer(s.id as i64))
}
