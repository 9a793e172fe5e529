//! Limits shared by every replica: token buckets (GCRA, one integer per bucket) and failed-login counters.
//!
//! Every change is a conditional update of a single row in autocommit mode, so it is exact on all three
//! backends without row locks or transactions (a `REPEATABLE READ` snapshot would hide the row a concurrent
//! replica just changed): the buckets' by arithmetic in the statement itself (no lost race under a burst), the
//! failure records' by compare-and-set, retried.

use diesel::prelude::*;

use super::schema::{login_failures, throttle_buckets};
use super::{DbConn, DbError};

/// Compare-and-set attempts before giving up; a lost race means another request just changed the row.
const ATTEMPTS: usize = 8;

/// A bucket holding `burst` tokens that refills one token every `interval_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Gcra {
    pub interval_ms: i64,
    /// How far the theoretical arrival time may run ahead of now: `(burst - 1) * interval_ms`.
    pub tolerance_ms: i64,
}

/// Takes one token from the bucket. `Ok(Err(wait_ms))`: the bucket is empty for that long.
pub fn take(conn: &mut DbConn, name: &str, gcra: Gcra, now_ms: i64) -> Result<Result<(), i64>, DbError> {
    // Single conditional statements rather than read-then-compare-and-set: under many concurrent takes of one
    // bucket (a burst of logins from one address) a compare-and-set loop runs out of attempts and refuses
    // requests the bucket had room for. Each statement decides atomically; the loop only covers a bucket
    // changing between the cases in between two statements.
    let bucket = || throttle_buckets::table.filter(throttle_buckets::name.eq(name));
    for _ in 0..ATTEMPTS {
        // Running ahead of now, within the tolerance: one interval further.
        let ahead = diesel::update(
            bucket().filter(
                throttle_buckets::tat
                    .ge(now_ms)
                    .and(throttle_buckets::tat.le(now_ms + gcra.tolerance_ms)),
            ),
        )
        .set(throttle_buckets::tat.eq(throttle_buckets::tat + gcra.interval_ms))
        .execute(conn)?;
        if ahead == 1 {
            return Ok(Ok(()));
        }
        // Behind now (a full bucket): one interval from now.
        let behind = diesel::update(bucket().filter(throttle_buckets::tat.lt(now_ms)))
            .set(throttle_buckets::tat.eq(now_ms + gcra.interval_ms))
            .execute(conn)?;
        if behind == 1 {
            return Ok(Ok(()));
        }
        let tat: Option<i64> = bucket().select(throttle_buckets::tat).get_result(conn).optional()?;
        match tat {
            Some(tat) if tat > now_ms + gcra.tolerance_ms => return Ok(Err(tat - gcra.tolerance_ms - now_ms)),
            // It moved between the statements: try again.
            Some(_) => continue,
            None => {
                let inserted = diesel::insert_into(throttle_buckets::table)
                    .values((
                        throttle_buckets::name.eq(name),
                        throttle_buckets::tat.eq(now_ms + gcra.interval_ms),
                    ))
                    .execute(conn);
                match inserted.map_err(DbError::from) {
                    Ok(_) => return Ok(Ok(())),
                    Err(e) if e.is_unique_violation() => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    // Constant churn on one bucket: treat it as empty rather than let the race decide.
    Ok(Err(gcra.interval_ms))
}

/// Whether the bucket has a token, without taking it. `Ok(Err(wait_ms))`: it is empty for that long.
pub fn peek(conn: &mut DbConn, name: &str, gcra: Gcra, now_ms: i64) -> Result<Result<(), i64>, DbError> {
    let tat: Option<i64> = crate::native!(conn, c => throttle_buckets::table
        .filter(throttle_buckets::name.eq(name))
        .select(throttle_buckets::tat)
        .get_result(c)
        .optional())?;
    Ok(match tat {
        Some(tat) if tat > now_ms + gcra.tolerance_ms => Err(tat - gcra.tolerance_ms - now_ms),
        _ => Ok(()),
    })
}

/// Gives back a token taken by [`take`] (the attempt it paid for did not count): the bucket's arrival time
/// moves back one interval, never before now.
pub fn give_back(conn: &mut DbConn, name: &str, gcra: Gcra, now_ms: i64) -> Result<(), DbError> {
    // Two single statements instead of a compare-and-set loop: under many concurrent refunds on one bucket
    // (logins from one address) a loop can run out of attempts and leak the token, refusing later logins.
    let bucket = throttle_buckets::table.filter(throttle_buckets::name.eq(name));
    let moved = diesel::update(bucket.filter(throttle_buckets::tat.ge(now_ms + gcra.interval_ms)))
        .set(throttle_buckets::tat.eq(throttle_buckets::tat - gcra.interval_ms))
        .execute(conn)?;
    if moved == 0 {
        // Less than one interval ahead of now: giving one back leaves the bucket full.
        diesel::update(bucket.filter(throttle_buckets::tat.gt(now_ms)))
            .set(throttle_buckets::tat.eq(now_ms))
            .execute(conn)?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = login_failures)]
pub struct Failures {
    pub failures: i64,
    pub last_failure: i64,
    pub locked_until: i64,
}

pub fn failures(conn: &mut DbConn, name: &str) -> Result<Option<Failures>, DbError> {
    // On the backend's own connection (every login reads it; see `crate::native`).
    Ok(crate::native!(conn, c => login_failures::table
        .find(name)
        .select(Failures::as_select())
        .get_result(c)
        .optional())?)
}

/// Counts one more attempt before its password is checked, unless the name must wait: `Ok(Err(wait_ms))`
/// while it is locked (or when other attempts keep winning the race, which only happens under a flood of
/// them), else the record before and after. The compare-and-set makes parallel attempts queue: each sees the
/// count the one before it left, so no more of them pass than the policy lets through one at a time.
pub fn reserve_failure(
    conn: &mut DbConn,
    name: &str,
    now: i64,
    next: impl Fn(Option<Failures>) -> Failures,
) -> Result<Result<(Option<Failures>, Failures), i64>, DbError> {
    for _ in 0..ATTEMPTS * 4 {
        let old = failures(conn, name)?;
        if let Some(f) = old.filter(|f| f.locked_until > now) {
            return Ok(Err((f.locked_until - now) * 1000));
        }
        let new = next(old);
        if swap_failures(conn, name, old, Some(new))? {
            return Ok(Ok((old, new)));
        }
    }
    Ok(Err(1000))
}

/// Takes back an attempt counted by [`reserve_failure`] that checked no password: the record it left is put
/// back as it was, or, when later attempts changed it since, one failure fewer is counted.
pub fn refund_failure(
    conn: &mut DbConn,
    name: &str,
    before: Option<Failures>,
    reserved: Failures,
) -> Result<(), DbError> {
    for _ in 0..ATTEMPTS {
        let Some(current) = failures(conn, name)? else {
            return Ok(());
        };
        let restored = if current == reserved {
            before
        } else {
            Some(Failures {
                failures: (current.failures - 1).max(0),
                ..current
            })
        };
        if swap_failures(conn, name, Some(current), restored)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Replaces the record `old` (none: no row) with `new` (none: delete) if it is still what the row holds.
fn swap_failures(conn: &mut DbConn, name: &str, old: Option<Failures>, new: Option<Failures>) -> Result<bool, DbError> {
    let Some(old) = old else {
        let Some(new) = new else { return Ok(true) };
        return match diesel::insert_into(login_failures::table)
            .values((
                login_failures::name.eq(name),
                login_failures::failures.eq(new.failures),
                login_failures::last_failure.eq(new.last_failure),
                login_failures::locked_until.eq(new.locked_until),
            ))
            .execute(conn)
            .map_err(DbError::from)
        {
            Ok(n) => Ok(n == 1),
            Err(e) if e.is_unique_violation() => Ok(false),
            Err(e) => Err(e),
        };
    };
    let row = login_failures::table.filter(
        login_failures::name
            .eq(name)
            .and(login_failures::failures.eq(old.failures))
            .and(login_failures::last_failure.eq(old.last_failure))
            .and(login_failures::locked_until.eq(old.locked_until)),
    );
    let n = match new {
        Some(new) => diesel::update(row)
            .set((
                login_failures::failures.eq(new.failures),
                login_failures::last_failure.eq(new.last_failure),
                login_failures::locked_until.eq(new.locked_until),
            ))
            .execute(conn)?,
        None => diesel::delete(row).execute(conn)?,
    };
    Ok(n == 1)
}

/// Up to `limit` failure records whose lock or delay lasts past `now`, the longest first: (row name, record).
pub fn locked(conn: &mut DbConn, now: i64, limit: i64) -> Result<Vec<(String, Failures)>, DbError> {
    Ok(login_failures::table
        .filter(login_failures::locked_until.gt(now))
        .order(login_failures::locked_until.desc())
        .limit(limit)
        .select((login_failures::name, Failures::as_select()))
        .load(conn)?)
}

pub fn clear_failures(conn: &mut DbConn, name: &str) -> Result<(), DbError> {
    diesel::delete(login_failures::table.find(name)).execute(conn)?;
    Ok(())
}

/// Rows that no longer limit anything: full buckets, and failures forgotten (`forget_before`: a window ago)
/// since both the last failure and the end of its lock.
#[derive(Debug, Default, Clone)]
pub struct Stale {
    pub buckets: Vec<String>,
    pub failures: Vec<String>,
}

/// Up to `limit` stale rows of each table.
pub fn stale(conn: &mut DbConn, now: i64, forget_before: i64, limit: i64) -> Result<Stale, DbError> {
    let buckets = throttle_buckets::table
        .filter(throttle_buckets::tat.lt(now.saturating_mul(1000)))
        .select(throttle_buckets::name)
        .limit(limit)
        .load(conn)?;
    let failures = login_failures::table
        .filter(
            login_failures::last_failure
                .lt(forget_before)
                .and(login_failures::locked_until.lt(forget_before)),
        )
        .select(login_failures::name)
        .limit(limit)
        .load(conn)?;
    Ok(Stale { buckets, failures })
}

/// Deletes the rows of `stale` that are still stale (a bucket used since keeps its row).
pub fn delete_stale(conn: &mut DbConn, stale: &Stale, now: i64, forget_before: i64) -> Result<usize, DbError> {
    let mut n = 0;
    if !stale.buckets.is_empty() {
        n += diesel::delete(
            throttle_buckets::table
                .filter(throttle_buckets::name.eq_any(&stale.buckets))
                .filter(throttle_buckets::tat.lt(now.saturating_mul(1000))),
        )
        .execute(conn)?;
    }
    if !stale.failures.is_empty() {
        n += diesel::delete(
            login_failures::table
                .filter(login_failures::name.eq_any(&stale.failures))
                .filter(
                    login_failures::last_failure
                        .lt(forget_before)
                        .and(login_failures::locked_until.lt(forget_before)),
                ),
        )
        .execute(conn)?;
    }
    Ok(n)
}
