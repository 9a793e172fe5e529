//! Queries on refresh families (sessions) and their tokens. Tokens are stored only as SHA-256 hex.

use diesel::prelude::*;

use super::schema::{refresh_families, refresh_tokens};
use super::{Cached, DbConn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_families)]
pub struct FamilyRow {
    pub id: String,
    pub user_id: i64,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub refresh_count: i64,
    /// The login's `filter_claims` (JSON array), re-applied at every refresh.
    pub filter_claims: Option<String>,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct TokenRow {
    pub token_hash: String,
    pub family_id: String,
    pub created_at: i64,
    pub used_at: Option<i64>,
    pub successor_hash: Option<String>,
    /// The successor pair, encrypted under a key derived from this (used) token; kept only during the grace.
    pub successor_sealed: Option<String>,
}

/// The user of a session that is not revoked, if it exists.
pub fn live_session_user(conn: &mut DbConn, family_id: &str) -> Result<Option<i64>, DbError> {
    Ok(refresh_families::table
        .find(family_id)
        .filter(refresh_families::revoked_at.is_null())
        .select(refresh_families::user_id)
        .get_result(conn)
        .optional()?)
}

/// Starts a session with its first refresh token.
pub fn create_family(conn: &mut DbConn, family: &FamilyRow, token_hash: &str) -> Result<(), DbError> {
    diesel::insert_into(refresh_families::table)
        .values(family)
        .execute(conn)?;
    insert_token(conn, token_hash, &family.id, family.created_at)
}

pub fn insert_token(conn: &mut DbConn, token_hash: &str, family_id: &str, now: i64) -> Result<(), DbError> {
    Cached(diesel::insert_into(refresh_tokens::table).values((
        refresh_tokens::token_hash.eq(token_hash),
        refresh_tokens::family_id.eq(family_id),
        refresh_tokens::created_at.eq(now),
    )))
    .execute(conn)?;
    Ok(())
}

/// The token with this hash and its family.
pub fn token_with_family(conn: &mut DbConn, token_hash: &str) -> Result<Option<(TokenRow, FamilyRow)>, DbError> {
    Ok(refresh_tokens::table
        .inner_join(refresh_families::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((TokenRow::as_select(), FamilyRow::as_select()))
        .get_result(conn)
        .optional()?)
}

/// Marks `old` used with its successor, only if nobody did first. `true`: this caller won the rotation.
pub fn claim_rotation(conn: &mut DbConn, old: &str, successor: &str, sealed: &str, now: i64) -> Result<bool, DbError> {
    let n = Cached(
        diesel::update(
            refresh_tokens::table
                .find(old)
                .filter(refresh_tokens::used_at.is_null()),
        )
        .set((
            refresh_tokens::used_at.eq(Some(now)),
            refresh_tokens::successor_hash.eq(Some(successor)),
            refresh_tokens::successor_sealed.eq(Some(sealed)),
        )),
    )
    .execute(conn)?;
    Ok(n == 1)
}

/// Counts a refresh on a live family; `false` when it is revoked or at `limit` (0: no limit).
pub fn touch_family(conn: &mut DbConn, family_id: &str, now: i64, limit: i64) -> Result<bool, DbError> {
    let live = refresh_families::table
        .find(family_id)
        .filter(refresh_families::revoked_at.is_null());
    let set = (
        refresh_families::refresh_count.eq(refresh_families::refresh_count + 1),
        refresh_families::last_used_at.eq(now),
    );
    let n = if limit > 0 {
        Cached(diesel::update(live.filter(refresh_families::refresh_count.lt(limit))).set(set)).execute(conn)?
    } else {
        Cached(diesel::update(live).set(set)).execute(conn)?
    };
    Ok(n == 1)
}

/// Revokes one family; `false` when it was revoked already (or does not exist).
pub fn revoke_family(conn: &mut DbConn, family_id: &str, reason: &str, now: i64) -> Result<bool, DbError> {
    let n = diesel::update(
        refresh_families::table
            .find(family_id)
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set((
        refresh_families::revoked_at.eq(Some(now)),
        refresh_families::revoked_reason.eq(Some(reason)),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Revokes every live family of a user; returns how many.
pub fn revoke_user_families(conn: &mut DbConn, user_id: i64, reason: &str, now: i64) -> Result<usize, DbError> {
    Ok(diesel::update(
        refresh_families::table
            .filter(refresh_families::user_id.eq(user_id))
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set((
        refresh_families::revoked_at.eq(Some(now)),
        refresh_families::revoked_reason.eq(Some(reason)),
    ))
    .execute(conn)?)
}

/// Forgets sealed successors whose grace ended before `before`.
pub fn clear_sealed(conn: &mut DbConn, before: i64) -> Result<usize, DbError> {
    Ok(diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::used_at.lt(before))
            .filter(refresh_tokens::successor_sealed.is_not_null()),
    )
    .set(refresh_tokens::successor_sealed.eq(None::<String>))
    .execute(conn)?)
}

/// Ids of up to `limit` families that could no longer refresh at `at`: past their absolute expiry, or idle
/// for `idle` seconds (revoked families included: they stop being used, so they go idle).
pub fn expired_families(conn: &mut DbConn, at: i64, idle: i64, limit: i64) -> Result<Vec<String>, DbError> {
    Ok(refresh_families::table
        .filter(
            refresh_families::expires_at
                .le(at)
                .or(refresh_families::last_used_at.le(at.saturating_sub(idle))),
        )
        .select(refresh_families::id)
        .limit(limit)
        .load(conn)?)
}

/// Of `ids`, deletes the families still expired at `at` (see [`expired_families`]) with their tokens: at most
/// `limit` tokens, then the families left with none (a family with more tokens goes at a later call).
/// Returns (tokens, families) deleted.
pub fn delete_expired_families(
    conn: &mut DbConn,
    ids: &[String],
    at: i64,
    idle: i64,
    limit: i64,
) -> Result<(usize, usize), DbError> {
    let idle_before = at.saturating_sub(idle);
    let expired = refresh_families::expires_at
        .le(at)
        .or(refresh_families::last_used_at.le(idle_before));
    let confirmed: Vec<String> = refresh_families::table
        .filter(refresh_families::id.eq_any(ids))
        .filter(expired)
        .select(refresh_families::id)
        .load(conn)?;
    if confirmed.is_empty() {
        return Ok((0, 0));
    }
    let tokens: Vec<String> = refresh_tokens::table
        .filter(refresh_tokens::family_id.eq_any(&confirmed))
        .select(refresh_tokens::token_hash)
        .limit(limit)
        .load(conn)?;
    let deleted_tokens = match tokens.is_empty() {
        true => 0,
        false => {
            diesel::delete(refresh_tokens::table.filter(refresh_tokens::token_hash.eq_any(&tokens))).execute(conn)?
        }
    };
    let left: Vec<String> = refresh_tokens::table
        .filter(refresh_tokens::family_id.eq_any(&confirmed))
        .select(refresh_tokens::family_id)
        .distinct()
        .load(conn)?;
    let done: Vec<&String> = confirmed.iter().filter(|id| !left.contains(id)).collect();
    let deleted_families = match done.is_empty() {
        true => 0,
        false => diesel::delete(
            refresh_families::table
                .filter(refresh_families::id.eq_any(done))
                .filter(
                    refresh_families::expires_at
                        .le(at)
                        .or(refresh_families::last_used_at.le(idle_before)),
                ),
        )
        .execute(conn)?,
    };
    Ok((deleted_tokens, deleted_families))
}
