//! Queries on `signing_keys`.

use diesel::prelude::*;

use super::schema::signing_keys;
use super::{DbConn, DbError};

/// One stored signing key. `private_key` is base64 PKCS#8, or `enc:v2:…` (`enc:v1:…` before) when encrypted at
/// rest ([`crate::crypto::seal`]).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct KeyRow {
    pub kid: String,
    pub algorithm: String,
    pub public_jwk: String,
    pub private_key: String,
    pub rotation_step: i64,
    pub publish_at: i64,
    pub sign_from: i64,
    pub expires_at: i64,
    pub created_at: i64,
}

/// Keys that have not expired, oldest rotation step first.
pub fn live(conn: &mut DbConn, now: i64) -> Result<Vec<KeyRow>, DbError> {
    Ok(signing_keys::table
        .filter(signing_keys::expires_at.gt(now))
        .order(signing_keys::rotation_step.asc())
        .select(KeyRow::as_select())
        .load(conn)?)
}

/// The highest rotation step ever used (expired keys included), so steps never repeat.
pub fn max_step(conn: &mut DbConn) -> Result<Option<i64>, DbError> {
    Ok(signing_keys::table
        .select(diesel::dsl::max(signing_keys::rotation_step))
        .get_result(conn)?)
}

/// Stores a new key. Fails with a unique violation when another replica took this rotation step first.
pub fn insert(conn: &mut DbConn, row: &KeyRow) -> Result<(), DbError> {
    diesel::insert_into(signing_keys::table).values(row).execute(conn)?;
    Ok(())
}

/// Swaps a key's stored private key, if it is still `old` (another replica may have done it already).
pub fn replace_private_key(conn: &mut DbConn, kid: &str, old: &str, new: &str) -> Result<(), DbError> {
    diesel::update(signing_keys::table.filter(signing_keys::kid.eq(kid).and(signing_keys::private_key.eq(old))))
        .set(signing_keys::private_key.eq(new))
        .execute(conn)?;
    Ok(())
}

/// Forgets keys that expired before `before`.
pub fn delete_expired(conn: &mut DbConn, before: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(signing_keys::table.filter(signing_keys::expires_at.le(before))).execute(conn)?)
}

/// The kid of one key stored encrypted, if any is (expired ones included: they are still a sign of a KEK).
pub fn first_encrypted(conn: &mut DbConn) -> Result<Option<String>, DbError> {
    Ok(signing_keys::table
        .filter(signing_keys::private_key.like("enc:%"))
        .select(signing_keys::kid)
        .first(conn)
        .optional()?)
}
