//! Who holds which `stk` letters, read the way tokens read them (`crate::authz`), and the lock that serialises changes of it.

use diesel::prelude::*;

use crate::authz::{Holdings, Letters, STK};
use crate::db::schema::{claim_group_claims, claims, group_links, user_claim_groups};
use crate::db::{DbConn, DbError};

/// Who holds which `stk` letters now: every user's and every group's letters (read with
/// [`Letters::granted_by`], the token parser's reading) and every group link. The before and after of an admin
/// write; small, since only admins hold `stk` claims.
pub fn holdings(c: &mut DbConn) -> Result<Holdings, DbError> {
    let users: Vec<(i64, String)> = user_claim_groups::table
        .inner_join(
            claim_group_claims::table.on(claim_group_claims::claim_group_id.eq(user_claim_groups::claim_group_id)),
        )
        .inner_join(claims::table.on(claims::id.eq(claim_group_claims::claim_id)))
        .filter(claims::short_name.eq(STK))
        .select((user_claim_groups::user_id, claims::value))
        .load(c)?;
    let links: Vec<(i64, String, String, Option<i64>)> = group_links::table
        .select((
            group_links::id,
            group_links::link_type,
            group_links::resource_spec,
            group_links::claim_group_id,
        ))
        .load(c)?;
    Ok(Holdings::build(users, group_letters(c)?, links))
}

/// The `stk` values each claim group grants: (group, value).
pub fn group_letters(c: &mut DbConn) -> Result<Vec<(i64, String)>, DbError> {
    Ok(claim_group_claims::table
        .inner_join(claims::table)
        .filter(claims::short_name.eq(STK))
        .select((claim_group_claims::claim_group_id, claims::value))
        .load(c)?)
}

/// The letters one user holds now, through any credential: what decides who may manage the account.
pub fn letters_of_user(c: &mut DbConn, user: i64) -> Result<Letters, DbError> {
    let claims = crate::db::users::claims_of(c, user)?;
    Ok(Letters::of_claims(claims.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
}

/// The letters a session (`login`) of one user gets now (groups that do not admit it left out): what an admin
/// request of that session may use.
pub fn letters_of_session(
    c: &mut DbConn,
    user: i64,
    login: Option<crate::credential::Login>,
) -> Result<Letters, DbError> {
    let claims = crate::db::users::claims_for(c, user, login)?;
    Ok(Letters::of_claims(claims.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
}

/// Serialises the writes that may change who holds which letter (PostgreSQL and MySQL; SQLite has one writer),
/// so two admins demoting each other cannot both pass the last-superuser check.
pub fn lock_letters(c: &mut DbConn) -> Result<(), DbError> {
    if !matches!(c, DbConn::Sqlite(_)) {
        diesel::sql_query("SELECT name FROM admin_locks WHERE name = 'letters' FOR UPDATE").execute(c)?;
    }
    Ok(())
}
