//! Queries of the second factor (`services::mfa`): TOTP factors, recovery codes and the tokens of a login's
//! first step. Every decision that two replicas could race on is one conditional `UPDATE` here.

use diesel::prelude::*;

use super::schema::{mfa_tokens, recovery_codes, totp_factors};
use super::{DbConn, DbError};

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = totp_factors)]
pub struct FactorRow {
    pub user_id: i64,
    /// The secret as stored (encrypted under the KEK, or base64).
    pub secret: String,
    pub created_at: i64,
    /// `None`: enrolment started, not confirmed.
    pub confirmed_at: Option<i64>,
    pub last_step: i64,
    pub failures: i64,
    pub locked_until: i64,
}

pub fn factor(c: &mut DbConn, user: i64) -> Result<Option<FactorRow>, DbError> {
    Ok(totp_factors::table
        .find(user)
        .select(FactorRow::as_select())
        .get_result(c)
        .optional()?)
}

/// Starts an enrolment, replacing one that was never confirmed; `false` (nothing written) when the user has
/// a confirmed factor.
pub fn start(c: &mut DbConn, row: &FactorRow) -> Result<bool, DbError> {
    diesel::delete(
        totp_factors::table
            .find(row.user_id)
            .filter(totp_factors::confirmed_at.is_null()),
    )
    .execute(c)?;
    if factor(c, row.user_id)?.is_some() {
        return Ok(false);
    }
    diesel::insert_into(totp_factors::table).values(row).execute(c)?;
    Ok(true)
}

/// Confirms a started enrolment with the step of its first code; `false` when there is none to confirm.
pub fn confirm(c: &mut DbConn, user: i64, step: i64, now: i64) -> Result<bool, DbError> {
    let n = diesel::update(
        totp_factors::table
            .find(user)
            .filter(totp_factors::confirmed_at.is_null()),
    )
    .set((
        totp_factors::confirmed_at.eq(Some(now)),
        totp_factors::last_step.eq(step),
        totp_factors::failures.eq(0),
        totp_factors::locked_until.eq(0),
    ))
    .execute(c)?;
    Ok(n == 1)
}

/// Removes the user's factor and recovery codes; `true` when there was a factor.
pub fn remove(c: &mut DbConn, user: i64) -> Result<bool, DbError> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user))).execute(c)?;
    Ok(diesel::delete(totp_factors::table.find(user)).execute(c)? == 1)
}

/// Takes the user's turn to try a code: allowed when the factor is not locked at `now`, and then locked
/// until `now + 1` (a wrong code keeps that lock, a right one lifts it), so parallel guesses get one try per
/// second between them. `Err(seconds)`: locked for that much longer.
pub fn reserve_attempt(c: &mut DbConn, user: i64, now: i64) -> Result<Result<(), i64>, DbError> {
    let n = diesel::update(
        totp_factors::table
            .find(user)
            .filter(totp_factors::locked_until.le(now)),
    )
    .set(totp_factors::locked_until.eq(now + 1))
    .execute(c)?;
    if n == 1 {
        return Ok(Ok(()));
    }
    let until: i64 = totp_factors::table
        .find(user)
        .select(totp_factors::locked_until)
        .get_result(c)
        .optional()?
        .unwrap_or(now + 1);
    Ok(Err((until - now).max(1)))
}

/// Accepts a code of time step `step` once: only if no code of this step or a later one was accepted before
/// (a compare-and-set of `last_step`). Clears the failures and the attempt's lock. `false`: a replay.
pub fn accept_step(c: &mut DbConn, user: i64, step: i64) -> Result<bool, DbError> {
    let n = diesel::update(totp_factors::table.find(user).filter(totp_factors::last_step.lt(step)))
        .set((
            totp_factors::last_step.eq(step),
            totp_factors::failures.eq(0),
            totp_factors::locked_until.eq(0),
        ))
        .execute(c)?;
    Ok(n == 1)
}

/// Clears the failures and the attempt's lock (a recovery code was accepted).
pub fn clear_failures(c: &mut DbConn, user: i64) -> Result<(), DbError> {
    diesel::update(totp_factors::table.find(user))
        .set((totp_factors::failures.eq(0), totp_factors::locked_until.eq(0)))
        .execute(c)?;
    Ok(())
}

/// Counts a wrong code; at `lock_after` in a row the factor is locked until `now + lock_for`. Returns the
/// count.
pub fn record_failure(c: &mut DbConn, user: i64, now: i64, (lock_after, lock_for): (i64, i64)) -> Result<i64, DbError> {
    diesel::update(totp_factors::table.find(user))
        .set(totp_factors::failures.eq(totp_factors::failures + 1))
        .execute(c)?;
    let failures: i64 = totp_factors::table
        .find(user)
        .select(totp_factors::failures)
        .get_result(c)
        .optional()?
        .unwrap_or(0);
    if failures >= lock_after {
        diesel::update(totp_factors::table.find(user))
            .set(totp_factors::locked_until.eq(now + lock_for))
            .execute(c)?;
    }
    Ok(failures)
}

/// Replaces the user's recovery codes by these digests.
pub fn replace_codes(c: &mut DbConn, user: i64, digests: &[Vec<u8>]) -> Result<(), DbError> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user))).execute(c)?;
    // One statement each: the multi-backend connection has no batch insert (ten rows, once per enrolment).
    for d in digests {
        diesel::insert_into(recovery_codes::table)
            .values((recovery_codes::user_id.eq(user), recovery_codes::digest.eq(d)))
            .execute(c)?;
    }
    Ok(())
}

/// Consumes one recovery code: `true` only for the one caller that marked it used.
pub fn use_code(c: &mut DbConn, user: i64, digest: &[u8], now: i64) -> Result<bool, DbError> {
    let n = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user))
            .filter(recovery_codes::digest.eq(digest))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(Some(now)))
    .execute(c)?;
    Ok(n == 1)
}

/// Recovery codes the user has not used.
pub fn codes_left(c: &mut DbConn, user: i64) -> Result<i64, DbError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(c)?)
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mfa_tokens)]
pub struct MfaTokenRow {
    pub digest: Vec<u8>,
    pub user_id: i64,
    /// `login` or `enroll`.
    pub purpose: String,
    /// What the first step decided (JSON).
    pub context: String,
    pub attempts: i64,
    pub expires_at: i64,
}

pub fn insert_token(c: &mut DbConn, row: &MfaTokenRow) -> Result<(), DbError> {
    diesel::insert_into(mfa_tokens::table).values(row).execute(c)?;
    Ok(())
}

/// Counts one use of a token of `purpose` that is live at `now` and has attempts left (fewer than `max`), and
/// returns it; `None` otherwise. Concurrent uses each take one attempt.
pub fn take_attempt(
    c: &mut DbConn,
    digest: &[u8],
    purpose: &str,
    now: i64,
    max: i64,
) -> Result<Option<MfaTokenRow>, DbError> {
    let n = diesel::update(
        mfa_tokens::table
            .find(digest)
            .filter(mfa_tokens::purpose.eq(purpose))
            .filter(mfa_tokens::expires_at.gt(now))
            .filter(mfa_tokens::attempts.lt(max)),
    )
    .set(mfa_tokens::attempts.eq(mfa_tokens::attempts + 1))
    .execute(c)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(mfa_tokens::table
        .find(digest)
        .select(MfaTokenRow::as_select())
        .get_result(c)
        .optional()?)
}

/// A live token of `purpose`, without counting a use (an enrolment token presented as a bearer).
pub fn live_token(c: &mut DbConn, digest: &[u8], purpose: &str, now: i64) -> Result<Option<MfaTokenRow>, DbError> {
    Ok(mfa_tokens::table
        .find(digest)
        .filter(mfa_tokens::purpose.eq(purpose))
        .filter(mfa_tokens::expires_at.gt(now))
        .select(MfaTokenRow::as_select())
        .get_result(c)
        .optional()?)
}

/// Ends a token (its login completed); `true` for the one caller that deleted it.
pub fn consume_token(c: &mut DbConn, digest: &[u8]) -> Result<bool, DbError> {
    Ok(diesel::delete(mfa_tokens::table.find(digest)).execute(c)? == 1)
}

/// Deletes up to `limit` tokens that expired before `now`.
pub fn delete_expired_tokens(c: &mut DbConn, now: i64, limit: i64) -> Result<usize, DbError> {
    let expired: Vec<Vec<u8>> = mfa_tokens::table
        .filter(mfa_tokens::expires_at.le(now))
        .select(mfa_tokens::digest)
        .limit(limit)
        .load(c)?;
    if expired.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(mfa_tokens::table.filter(mfa_tokens::digest.eq_any(&expired))).execute(c)?)
}
