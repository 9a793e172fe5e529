//! Queries on refresh families (sessions). A family row holds its whole refresh state: the SHA-256 of its
//! current token, and for the reuse grace the current pair sealed for the tokens used within it; a refresh
//! rewrites that row in place ([`advance`]), so a session costs constant storage however often it refreshes.
//! `refresh_tokens` holds only tokens issued before generations (SHA-256 hex); each refreshes once into the
//! family row ([`adopt`]) and the table empties as their sessions end.

use diesel::prelude::*;

use super::schema::{
    claim_group_claims, claim_groups, claims, refresh_families, refresh_tokens, user_claim_groups, users,
};
use super::users::UserRow;
use super::{Cached, CachedAs, DbConn, DbError};

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
    /// The OAuth client that started the session; `None` for a Stoke `/api/login` session.
    pub client_id: Option<String>,
    /// The scope granted to that client, space-separated.
    pub scope: Option<String>,
    /// The kind of credential the session was started with ([`crate::credential::Kind`]).
    pub credential_kind: String,
    /// The API key the session was started with.
    pub api_key_id: Option<String>,
    /// The second factor of the session's login: `otp` or `mfa` (a recovery code).
    pub second_factor: Option<String>,
}

impl FamilyRow {
    /// The session's credential kind; `None` for a kind this version does not know.
    pub fn kind(&self) -> Option<crate::credential::Kind> {
        crate::credential::Kind::parse(&self.credential_kind)
    }

    /// How the session was started (`None` for a kind this version does not know).
    pub fn login(&self) -> Option<crate::credential::Login> {
        session_login(&self.credential_kind, self.second_factor.as_deref())
    }
}

/// A session's stored kind and second factor as a [`crate::credential::Login`].
pub fn session_login(kind: &str, second_factor: Option<&str>) -> Option<crate::credential::Login> {
    crate::credential::Kind::parse(kind).map(|k| crate::credential::Login::new(k, second_factor.is_some()))
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

/// A family's refresh state: what a rotation reads and writes besides [`FamilyRow`].
// No `Debug`: the tag key is a secret.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_families)]
pub struct Generations {
    /// SHA-256 of the current token; `None` while it is still a `refresh_tokens` row.
    pub current_digest: Option<Vec<u8>>,
    pub tag_key: Option<Vec<u8>>,
    /// The current pair, sealed for the tokens used within the grace; cleared after it.
    pub grace: Option<Vec<u8>>,
    pub rotated_at: Option<i64>,
}

/// The user of a session that is not revoked, with its credential kind and second factor, if it exists.
pub fn live_session_user(conn: &mut DbConn, family_id: &str) -> Result<Option<(i64, String, Option<String>)>, DbError> {
    Ok(refresh_families::table
        .find(family_id)
        .filter(refresh_families::revoked_at.is_null())
        .select((
            refresh_families::user_id,
            refresh_families::credential_kind,
            refresh_families::second_factor,
        ))
        .get_result(conn)
        .optional()?)
}

/// Starts a session: its row, holding the digest of its first refresh token and the key of its tokens' tags.
pub fn create_family(conn: &mut DbConn, family: &FamilyRow, digest: &[u8], tag_key: &[u8]) -> Result<(), DbError> {
    // On the backend's own connection (every login's write; see `crate::native`).
    crate::native!(conn, c => diesel::insert_into(refresh_families::table)
        .values((
            family,
            refresh_families::current_digest.eq(Some(digest)),
            refresh_families::tag_key.eq(Some(tag_key)),
        ))
        .execute(c))?;
    Ok(())
}

/// A family and its refresh state, by id.
pub fn family_with_generations(conn: &mut DbConn, id: &str) -> Result<Option<(FamilyRow, Generations)>, DbError> {
    Ok(refresh_families::table
        .find(id)
        .select((FamilyRow::as_select(), Generations::as_select()))
        .get_result(conn)
        .optional()?)
}

/// What a rotation reads of a session (a token of the current form): the family with its refresh state, its
/// user (`None`: deleted) and the claims a session of its credential kind gets, as
/// [`super::users::claims_for`] (duplicates included, unordered: the token builder sorts them).
pub struct SessionRead {
    pub family: FamilyRow,
    pub generations: Generations,
    pub user: Option<UserRow>,
    pub claims: Vec<(String, String)>,
}

/// The family row the statement of [`session_for_rotation`] yields once per claim of the user.
type SessionRow = (
    FamilyRow,
    Generations,
    Option<UserRow>,
    (Option<String>, Option<String>),
    Option<String>,
);

/// Reads a session for a rotation in one statement: family, user and claims, on the backend's own connection
/// (the hot path of every refresh; see [`crate::native`]).
pub fn session_for_rotation(conn: &mut DbConn, id: &str) -> Result<Option<SessionRead>, DbError> {
    let rows: Vec<SessionRow> = crate::native!(conn, c => refresh_families::table
        .left_join(users::table)
        .left_join(user_claim_groups::table.on(user_claim_groups::user_id.eq(refresh_families::user_id)))
        .left_join(claim_groups::table.on(claim_groups::id.eq(user_claim_groups::claim_group_id)))
        .left_join(
            claim_group_claims::table.on(claim_group_claims::claim_group_id.eq(user_claim_groups::claim_group_id)),
        )
        .left_join(claims::table.on(claims::id.eq(claim_group_claims::claim_id)))
        .filter(refresh_families::id.eq(id))
        .select((
            FamilyRow::as_select(),
            Generations::as_select(),
            Option::<UserRow>::as_select(),
            (claims::short_name.nullable(), claims::value.nullable()),
            claim_groups::credentials.nullable(),
        ))
        .load(c))?;
    let mut rows = rows.into_iter();
    let Some((family, generations, user, claim, limit)) = rows.next() else {
        return Ok(None);
    };
    let held = std::iter::once((claim, limit))
        .chain(rows.map(|(_, _, _, claim, limit)| (claim, limit)))
        .filter_map(|pair| match pair {
            ((Some(short), Some(value)), limit) => Some(((short, value), limit)),
            _ => None,
        });
    let held = crate::credential::admitted(held, family.login());
    Ok(Some(SessionRead {
        family,
        generations,
        user,
        claims: held,
    }))
}

/// The one write of a refresh: moves a live family from `generation` to the next, only if `digest` is still
/// its current token's, installing the new token's digest (`next`) and the new grace. `true`: this caller won
/// the rotation (concurrent uses of one token compete for this compare-and-set).
pub fn advance(
    conn: &mut DbConn,
    family_id: &str,
    (generation, digest): (i64, &[u8]),
    (next, grace): (&[u8], &[u8]),
    now: i64,
) -> Result<bool, DbError> {
    /// The key of this statement's prepared form (its text never varies).
    struct Advance;
    // Every value is bound, none read from another column, so the result does not depend on the order in which
    // a backend assigns (MySQL assigns left to right, using values already changed).
    let n = crate::native!(conn, c => CachedAs::<Advance, _>::new(
        diesel::update(
            refresh_families::table
                .find(family_id)
                .filter(refresh_families::refresh_count.eq(generation))
                .filter(refresh_families::current_digest.eq(digest))
                .filter(refresh_families::revoked_at.is_null()),
        )
        .set((
            refresh_families::refresh_count.eq(generation + 1),
            refresh_families::current_digest.eq(next),
            refresh_families::grace.eq(grace),
            refresh_families::rotated_at.eq(now),
            refresh_families::last_used_at.eq(now),
        )),
    )
    .execute(c))?;
    Ok(n == 1)
}

/// Moves a live family whose current token is a `refresh_tokens` row (from before generations) to the family
/// row, at `generation + 1`: called after [`claim_rotation`] won that row, whose sealed successor serves the
/// grace of the token it replaces. `false` when the family was revoked or moved on meanwhile.
pub fn adopt(
    conn: &mut DbConn,
    family_id: &str,
    generation: i64,
    digest: &[u8],
    tag_key: &[u8],
    now: i64,
) -> Result<bool, DbError> {
    let n = diesel::update(
        refresh_families::table
            .find(family_id)
            .filter(refresh_families::refresh_count.eq(generation))
            .filter(refresh_families::current_digest.is_null())
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set((
        refresh_families::refresh_count.eq(generation + 1),
        refresh_families::current_digest.eq(digest),
        refresh_families::tag_key.eq(tag_key),
        refresh_families::last_used_at.eq(now),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// A token from before generations with this hash, and its family.
pub fn token_with_family(conn: &mut DbConn, token_hash: &str) -> Result<Option<(TokenRow, FamilyRow)>, DbError> {
    Ok(refresh_tokens::table
        .inner_join(refresh_families::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((TokenRow::as_select(), FamilyRow::as_select()))
        .get_result(conn)
        .optional()?)
}

/// Marks a token from before generations used with its successor (`successor`: the new token's SHA-256 hex),
/// only if nobody did first. `true`: this caller won the rotation.
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

/// Ids of up to `limit` families whose grace ended before `before`. On SQLite through the partial index
/// `refresh_families_grace`, which holds only those still to clear; on PostgreSQL by a scan, since an index on
/// these columns would keep refreshes from being HOT updates (see its migration); on MySQL by an index on
/// `rotated_at`.
pub fn grace_ended(conn: &mut DbConn, before: i64, limit: i64) -> Result<Vec<String>, DbError> {
    Ok(refresh_families::table
        .filter(refresh_families::grace.is_not_null())
        .filter(refresh_families::rotated_at.lt(before))
        .select(refresh_families::id)
        .limit(limit)
        .load(conn)?)
}

/// Of `ids`, forgets the grace where it ended before `before` (a family refreshed again since keeps its new one).
pub fn clear_grace(conn: &mut DbConn, ids: &[String], before: i64) -> Result<usize, DbError> {
    if ids.is_empty() {
        return Ok(0);
    }
    Ok(diesel::update(
        refresh_families::table
            .filter(refresh_families::id.eq_any(ids))
            .filter(refresh_families::grace.is_not_null())
            .filter(refresh_families::rotated_at.lt(before)),
    )
    .set(refresh_families::grace.eq(None::<Vec<u8>>))
    .execute(conn)?)
}

/// Forgets sealed successors of tokens from before generations whose grace ended before `before`.
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

/// Of `ids`, deletes the families still expired at `at` (see [`expired_families`]) with their tokens from before
/// generations: at most `limit` tokens, then the families left with none (a family with more tokens goes at a
/// later call).
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
