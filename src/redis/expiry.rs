//! Key expiry: `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT` (with `NX`,
//! `XX`, `GT`, `LT`), `PERSIST`, `TTL`, `PTTL`, `EXPIRETIME`,
//! `PEXPIRETIME`, and the time arithmetic of `SET`'s `EX`, `PX`, `EXAT` and
//! `PXAT`.
//!
//! The state machine knows TTLs, not instants: a relative time goes to it
//! as is, an absolute one (`EXAT`, `EXPIREAT`, ...) is turned into a TTL
//! here, on this node's wall clock, when the command arrives. The leader
//! counts each TTL down on its own monotonic clock from when the write
//! applied, and proposes the key's deletion when it runs out (see
//! `synod_kvstore::key_expiry::clock`); `TTL` reports the leader's count.
//! `GT` and `LT` compare with the TTL just read, then set the new expiry
//! only if the key's expiry is still the one read (else they read again).

use std::time::{SystemTime, UNIX_EPOCH};

use synod_kvstore::{Expire, ExpireIf, Op, Outcome, Persist, Ttl, TtlResponse};
use synod_wire::limits::MAX_KEY_TTL_MS;

use super::resp::{int_arg, Reply};
use super::{check_key, read, write, Conn, RedisShared};

/// Most read-then-set rounds of `EXPIRE .. GT|LT` under concurrent changes
/// of the same key's expiry.
const COMPARE_ATTEMPTS: usize = 64;

/// The unit of a time argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unit {
    Seconds,
    Millis,
}

/// Whether a time argument counts from now or from the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Base {
    FromNow,
    UnixEpoch,
}

/// Now on this node's wall clock, in ms since the Unix epoch.
fn unix_now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The TTL in ms that the time argument `value` means (negative if an
/// absolute time has passed), or Redis's error for a time out of range.
/// Redis's rules decide what is out of range: seconds that overflow in ms,
/// or a relative time that overflows when added to now; an absolute time
/// is never out of range (a past one deletes the key). A TTL beyond
/// [`MAX_KEY_TTL_MS`] (2^62 ms, 146 million years) is given that TTL.
pub(super) fn ttl_ms(value: i64, unit: Unit, base: Base, command: &str) -> Result<i64, Reply> {
    let invalid = || Reply::err(format!("invalid expire time in '{command}' command"));
    let ms = match unit {
        Unit::Seconds => value.checked_mul(1000).ok_or_else(invalid)?,
        Unit::Millis => value,
    };
    let now = unix_now_ms();
    let ttl = match base {
        Base::FromNow if ms > i64::MAX - now => return Err(invalid()),
        Base::FromNow => ms,
        Base::UnixEpoch => ms.saturating_sub(now),
    };
    Ok(ttl.min(MAX_KEY_TTL_MS as i64))
}

/// Runs the expiry command `name` (lower case, arity already checked).
pub(super) async fn execute(
    shared: &RedisShared,
    conn: &mut Conn,
    name: &str,
    args: &[Vec<u8>],
) -> Reply {
    let result = match name {
        "ttl" => ttl(shared, &args[1], Unit::Seconds, Base::FromNow).await,
        "pttl" => ttl(shared, &args[1], Unit::Millis, Base::FromNow).await,
        "expiretime" => ttl(shared, &args[1], Unit::Seconds, Base::UnixEpoch).await,
        "pexpiretime" => ttl(shared, &args[1], Unit::Millis, Base::UnixEpoch).await,
        "persist" => persist(shared, conn, &args[1]).await,
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            let (unit, base) = expire_time_kind(name);
            expire(shared, conn, name, args, unit, base).await
        }
        _ => Err(Reply::err(format!("command '{name}' is not implemented"))),
    };
    result.unwrap_or_else(|error| error)
}

/// The unit and base of the time argument of `EXPIRE`, `PEXPIRE`,
/// `EXPIREAT` or `PEXPIREAT` (`name`, lower case).
pub(super) fn expire_time_kind(name: &str) -> (Unit, Base) {
    let unit = if name.starts_with('p') {
        Unit::Millis
    } else {
        Unit::Seconds
    };
    let base = if name.ends_with("at") {
        Base::UnixEpoch
    } else {
        Base::FromNow
    };
    (unit, base)
}

/// A linearizable read of `key`'s expiry, the remaining TTL on the
/// leader's clock.
async fn read_ttl(shared: &RedisShared, key: &[u8]) -> Result<TtlResponse, Reply> {
    check_key(key)?;
    match read(shared, Op::Ttl(Ttl { key: key.to_vec() })).await? {
        Outcome::Ttl(ttl) => Ok(ttl),
        _ => Err(Reply::err(
            "the state machine answered with an unexpected outcome",
        )),
    }
}

/// `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME`: -2 for a missing key, -1
/// for a key without expiry; seconds are rounded as Redis rounds them.
async fn ttl(shared: &RedisShared, key: &[u8], unit: Unit, base: Base) -> Result<Reply, Reply> {
    let ttl = read_ttl(shared, key).await?;
    if !ttl.exists {
        return Ok(Reply::Integer(-2));
    }
    if ttl.expiry_revision == 0 {
        return Ok(Reply::Integer(-1));
    }
    let remaining_ms = i64::try_from(ttl.remaining_ms).unwrap_or(i64::MAX);
    let ms = match base {
        Base::FromNow => remaining_ms,
        Base::UnixEpoch => unix_now_ms().saturating_add(remaining_ms),
    };
    Ok(Reply::Integer(match unit {
        Unit::Millis => ms,
        Unit::Seconds => ms.saturating_add(500) / 1000,
    }))
}

async fn persist(shared: &RedisShared, conn: &mut Conn, key: &[u8]) -> Result<Reply, Reply> {
    check_key(key)?;
    match write(shared, conn, Op::Persist(Persist { key: key.to_vec() })).await? {
        Outcome::Persist(p) => Ok(Reply::Integer(p.removed.into())),
        _ => Err(Reply::err(
            "the state machine answered with an unexpected outcome",
        )),
    }
}

/// The options of `EXPIRE` and its siblings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Conditions {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_conditions(options: &[Vec<u8>]) -> Result<Conditions, Reply> {
    let mut c = Conditions::default();
    for option in options {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" => c.nx = true,
            b"XX" => c.xx = true,
            b"GT" => c.gt = true,
            b"LT" => c.lt = true,
            _ => {
                return Err(Reply::err(format!(
                    "Unsupported option {}",
                    String::from_utf8_lossy(option)
                )))
            }
        }
    }
    if c.nx && (c.xx || c.gt || c.lt) {
        return Err(Reply::err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if c.gt && c.lt {
        return Err(Reply::err(
            "GT and LT options at the same time are not compatible",
        ));
    }
    Ok(c)
}

/// `EXPIRE key time [NX|XX|GT|LT]` and siblings: 1 if the key's expiry was
/// set (or, for a time not in the future, the key deleted), 0 if the key
/// is missing or a condition failed.
async fn expire(
    shared: &RedisShared,
    conn: &mut Conn,
    name: &str,
    args: &[Vec<u8>],
    unit: Unit,
    base: Base,
) -> Result<Reply, Reply> {
    let key = &args[1];
    let when = int_arg(&args[2])?;
    let conditions = parse_conditions(&args[3..])?;
    let ttl_ms = ttl_ms(when, unit, base, name)?;
    check_key(key)?;
    if !conditions.gt && !conditions.lt {
        let condition = if conditions.nx {
            ExpireIf::NoExpiry
        } else if conditions.xx {
            ExpireIf::HasExpiry
        } else {
            ExpireIf::Always
        };
        return set_expiry(shared, conn, key, ttl_ms, condition, 0)
            .await
            .map(|applied| Reply::Integer(applied.into()));
    }
    for _ in 0..COMPARE_ATTEMPTS {
        let current = read_ttl(shared, key).await?;
        if !current.exists {
            return Ok(Reply::Integer(0));
        }
        let has_expiry = current.expiry_revision != 0;
        let remaining_ms = i64::try_from(current.remaining_ms).unwrap_or(i64::MAX);
        // No expiry counts as an infinite TTL, as in Redis.
        let holds = if conditions.gt {
            has_expiry && ttl_ms > remaining_ms
        } else {
            !has_expiry || ttl_ms < remaining_ms
        };
        if !holds || (conditions.xx && !has_expiry) {
            return Ok(Reply::Integer(0));
        }
        let condition = ExpireIf::ExpiryRevision;
        if set_expiry(
            shared,
            conn,
            key,
            ttl_ms,
            condition,
            current.expiry_revision,
        )
        .await?
        {
            return Ok(Reply::Integer(1));
        }
    }
    Err(Reply::Error(format!(
        "TRYAGAIN {} lost to concurrent changes of the key's expiry too many times",
        name.to_ascii_uppercase()
    )))
}

async fn set_expiry(
    shared: &RedisShared,
    conn: &mut Conn,
    key: &[u8],
    ttl_ms: i64,
    condition: ExpireIf,
    expiry_revision: u64,
) -> Result<bool, Reply> {
    let op = Op::Expire(Expire {
        key: key.to_vec(),
        ttl_ms,
        condition: condition as i32,
        expiry_revision,
    });
    match write(shared, conn, op).await? {
        Outcome::Expire(e) => Ok(e.applied),
        _ => Err(Reply::err(
            "the state machine answered with an unexpected outcome",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_become_ttls_or_redis_errors() {
        assert_eq!(ttl_ms(5, Unit::Seconds, Base::FromNow, "x"), Ok(5_000));
        assert_eq!(ttl_ms(-5, Unit::Millis, Base::FromNow, "x"), Ok(-5));
        let invalid = Err(Reply::err("invalid expire time in 'expire' command"));
        assert_eq!(
            ttl_ms(i64::MAX, Unit::Seconds, Base::FromNow, "expire"),
            invalid
        );
        assert_eq!(
            ttl_ms(i64::MAX, Unit::Millis, Base::FromNow, "expire"),
            invalid
        );
        let in_a_minute = unix_now_ms() + 60_000;
        let ttl = ttl_ms(in_a_minute, Unit::Millis, Base::UnixEpoch, "x").unwrap();
        assert!((59_000..=60_000).contains(&ttl), "{ttl}");
        assert!(ttl_ms(1, Unit::Seconds, Base::UnixEpoch, "x").unwrap() < 0);
    }

    #[test]
    fn conditions_combine_as_in_redis() {
        let args = |list: &[&str]| {
            list.iter()
                .map(|s| s.as_bytes().to_vec())
                .collect::<Vec<_>>()
        };
        assert!(parse_conditions(&args(&["xx", "GT"])).is_ok());
        assert_eq!(
            parse_conditions(&args(&["NX", "LT"])),
            Err(Reply::err(
                "NX and XX, GT or LT options at the same time are not compatible"
            ))
        );
        assert_eq!(
            parse_conditions(&args(&["GT", "LT"])),
            Err(Reply::err(
                "GT and LT options at the same time are not compatible"
            ))
        );
        assert_eq!(
            parse_conditions(&args(&["soon"])),
            Err(Reply::err("Unsupported option soon"))
        );
    }
}
