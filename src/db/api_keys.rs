//! Queries on API keys (`services::api_keys`): a key row holds the SHA-256 of its secret, never the secret.

use diesel::prelude::*;

use super::schema::{api_keys, refresh_families, users};
use super::users::UserRow;
use super::{DbConn, DbError};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    /// The `<id>` of `tsk_<id>_<secret>`: random, not secret.
    pub id: String,
    pub user_id: i64,
    pub name: String,
    /// SHA-256 of the secret part.
    pub secret_digest: Vec<u8>,
    /// A JSON array of claim short names (`None`: every claim the owner holds).
    pub claim_filter: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}

pub fn insert(c: &mut DbConn, row: &ApiKeyRow) -> Result<(), DbError> {
    diesel::insert_into(api_keys::table).values(row).execute(c)?;
    Ok(())
}

/// The user's keys, oldest first.
pub fn of_user(c: &mut DbConn, user: i64) -> Result<Vec<ApiKeyRow>, DbError> {
    Ok(api_keys::table
        .filter(api_keys::user_id.eq(user))
        .order((api_keys::created_at, api_keys::id))
        .select(ApiKeyRow::as_select())
        .load(c)?)
}

pub fn count_of_user(c: &mut DbConn, user: i64) -> Result<i64, DbError> {
    Ok(api_keys::table
        .filter(api_keys::user_id.eq(user))
        .count()
        .get_result(c)?)
}

/// A key with its owner, in one statement (the read of a key login, on the backend's own connection: see
/// [`crate::native`]).
pub fn with_owner(c: &mut DbConn, id: &str) -> Result<Option<(ApiKeyRow, UserRow)>, DbError> {
    Ok(crate::native!(c, c => api_keys::table
        .inner_join(users::table)
        .filter(api_keys::id.eq(id))
        .select((ApiKeyRow::as_select(), UserRow::as_select()))
        .get_result(c)
        .optional())?)
}

/// Deletes the user's key `id` and revokes the sessions it started; `false` when the user has no such key.
pub fn delete(c: &mut DbConn, user: i64, id: &str, now: i64) -> Result<bool, DbError> {
    let n = diesel::delete(api_keys::table.find(id).filter(api_keys::user_id.eq(user))).execute(c)?;
    if n == 0 {
        return Ok(false);
    }
    diesel::update(
        refresh_families::table
            .filter(refresh_families::api_key_id.eq(id))
            .filter(refresh_families::revoked_at.is_null()),
    )
    .set((
        refresh_families::revoked_at.eq(Some(now)),
        refresh_families::revoked_reason.eq(Some("api_key_revoked")),
    ))
    .execute(c)?;
    Ok(true)
}

/// Records a use of the key.
pub fn touch(c: &mut DbConn, id: &str, now: i64) -> Result<(), DbError> {
    diesel::update(api_keys::table.find(id))
        .set(api_keys::last_used_at.eq(Some(now)))
        .execute(c)?;
    Ok(())
}
