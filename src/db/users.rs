//! Queries on users and the claims they hold through their claim groups.

use diesel::prelude::*;

use super::schema::{claim_group_claims, claim_groups, claims, user_claim_groups, users};
use super::{DbConn, DbError};
use crate::credential;

/// A user as stored (with the password columns: never leaves the services layer).
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub fname: String,
    pub lname: String,
    pub source: String,
    pub password_hash: Option<String>,
    pub password_salt: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

/// The user whose username, or else email, is `login`.
pub fn find_for_login(conn: &mut DbConn, login: &str) -> Result<Option<UserRow>, DbError> {
    let by_name = users::table
        .filter(users::username.eq(login))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?;
    if by_name.is_some() {
        return Ok(by_name);
    }
    Ok(users::table
        .filter(users::email.eq(login))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Locks the user's row until the transaction ends (PostgreSQL, MySQL; SQLite has one writer), so checks of
/// what the user holds (a count against a limit) and the write after them are not interleaved with another's.
pub fn lock(conn: &mut DbConn, id: i64) -> Result<(), DbError> {
    if !matches!(conn, DbConn::Sqlite(_)) {
        diesel::sql_query(format!("SELECT id FROM users WHERE id = {id} FOR UPDATE")).execute(conn)?;
    }
    Ok(())
}

pub fn find(conn: &mut DbConn, id: i64) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// Every (short_name, value) the user holds through any group, whatever the credential: what the account holds
/// at all, which decides who may manage it. A token's claims come from [`claims_for`]. Ordered, duplicates
/// included.
pub fn claims_of(conn: &mut DbConn, user_id: i64) -> Result<Vec<(String, String)>, DbError> {
    Ok(user_claim_groups::table
        .inner_join(
            claim_group_claims::table.on(claim_group_claims::claim_group_id.eq(user_claim_groups::claim_group_id)),
        )
        .inner_join(claims::table.on(claims::id.eq(claim_group_claims::claim_id)))
        .filter(user_claim_groups::user_id.eq(user_id))
        .select((claims::short_name, claims::value))
        .order((claims::short_name.asc(), claims::value.asc()))
        .load(conn)?)
}

/// The (short_name, value) claims a session (`login`) of the user gets: those of the groups that admit it
/// ([`credential::admitted`]), ordered, duplicates included. `None`: a stored kind this version does not know,
/// which gets only the groups without a limit.
pub fn claims_for(
    conn: &mut DbConn,
    user_id: i64,
    login: Option<credential::Login>,
) -> Result<Vec<(String, String)>, DbError> {
    // On the backend's own connection (a login's read; see `crate::native`).
    let rows: Vec<((String, String), Option<String>)> = crate::native!(conn, c => user_claim_groups::table
        .inner_join(claim_groups::table.on(claim_groups::id.eq(user_claim_groups::claim_group_id)))
        .inner_join(
            claim_group_claims::table.on(claim_group_claims::claim_group_id.eq(user_claim_groups::claim_group_id)),
        )
        .inner_join(claims::table.on(claims::id.eq(claim_group_claims::claim_id)))
        .filter(user_claim_groups::user_id.eq(user_id))
        .select(((claims::short_name, claims::value), claim_groups::credentials))
        .order((claims::short_name.asc(), claims::value.asc()))
        .load(c))?;
    Ok(credential::admitted(rows, login))
}

/// Replaces a password hash (the PHC string), unless the stored one changed since it was read.
pub fn upgrade_password_hash(conn: &mut DbConn, id: i64, old: &str, phc: &str, now: i64) -> Result<bool, DbError> {
    let n = diesel::update(users::table.find(id).filter(users::password_hash.eq(old)))
        .set((
            users::password_hash.eq(Some(phc)),
            users::password_salt.eq(None::<String>),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn find_by_username(conn: &mut DbConn, username: &str) -> Result<Option<UserRow>, DbError> {
    Ok(users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .get_result(conn)
        .optional()?)
}

/// The users whose username or email is `login` lowercased (trimmed), as the login limits count names.
pub fn holders_of_login(conn: &mut DbConn, login: &str) -> Result<Vec<UserRow>, DbError> {
    let wanted = login.trim().to_lowercase();
    Ok(users::table
        .filter(
            lower(users::username).eq(&wanted).or(users::email
                .is_not_null()
                .and(lower(users::email.assume_not_null()).eq(&wanted))),
        )
        .select(UserRow::as_select())
        .load(conn)?)
}

diesel::define_sql_function! {
    /// SQL `lower()` (ASCII on SQLite, Unicode elsewhere).
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

/// Whether another user than `username` has the address `email` (the column is unique).
pub fn email_taken_by_other(conn: &mut DbConn, email: &str, username: &str) -> Result<bool, DbError> {
    let n: i64 = users::table
        .filter(users::email.eq(email))
        .filter(users::username.ne(username))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The users whose name is `username` but for ASCII case (directories match names without regard to case, so
/// `FRY` and `fry` are one directory user and must be one local row).
pub fn find_any_case(conn: &mut DbConn, username: &str) -> Result<Vec<UserRow>, DbError> {
    Ok(users::table
        .filter(lower(users::username).eq(username.to_ascii_lowercase()))
        .select(UserRow::as_select())
        .order(users::id)
        .limit(16)
        .load(conn)?)
}

impl UserRow {
    /// A new user of the local database (`source: LOCAL`), with a fresh id.
    pub fn new_local(
        username: &str,
        email: Option<&str>,
        names: (&str, &str),
        password: (Option<&str>, Option<&str>),
        now: i64,
    ) -> Self {
        UserRow {
            id: super::new_id(),
            username: username.to_string(),
            email: email.filter(|e| !e.is_empty()).map(str::to_string),
            fname: names.0.to_string(),
            lname: names.1.to_string(),
            source: "LOCAL".into(),
            password_hash: password.0.map(str::to_string),
            password_salt: password.1.map(str::to_string),
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }
}

/// A new user row (a local user when `password_hash` is set).
pub fn insert(conn: &mut DbConn, u: &UserRow) -> Result<(), DbError> {
    diesel::insert_into(users::table)
        .values((
            users::id.eq(u.id),
            users::username.eq(&u.username),
            users::email.eq(&u.email),
            users::fname.eq(&u.fname),
            users::lname.eq(&u.lname),
            users::source.eq(&u.source),
            users::password_hash.eq(&u.password_hash),
            users::password_salt.eq(&u.password_salt),
            users::created_at.eq(u.created_at),
            users::updated_at.eq(u.updated_at),
            users::version.eq(u.version),
        ))
        .execute(conn)?;
    Ok(())
}

/// Writes the profile fields of `u` and bumps its version.
pub fn update_profile(conn: &mut DbConn, u: &UserRow, now: i64) -> Result<(), DbError> {
    diesel::update(users::table.find(u.id))
        .set((
            users::username.eq(&u.username),
            users::email.eq(&u.email),
            users::fname.eq(&u.fname),
            users::lname.eq(&u.lname),
            users::source.eq(&u.source),
            users::updated_at.eq(now),
            users::version.eq(users::version + 1),
        ))
        .execute(conn)?;
    Ok(())
}

/// Sets a new PHC password hash.
pub fn set_password(conn: &mut DbConn, id: i64, phc: &str, now: i64) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set((
            users::password_hash.eq(Some(phc)),
            users::password_salt.eq(None::<String>),
            users::updated_at.eq(now),
            users::version.eq(users::version + 1),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut DbConn, id: i64) -> Result<bool, DbError> {
    Ok(diesel::delete(users::table.find(id)).execute(conn)? == 1)
}
