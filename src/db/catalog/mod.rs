//! Queries behind the admin API: claims, claim groups, group links, their edges, paging and totals.

use diesel::prelude::*;

use super::schema::{
    claim_group_claims, claim_groups, claims, group_links, refresh_families, user_claim_groups, users,
};
use super::users::UserRow;
use super::{DbConn, DbError};

mod edges;
mod letters;
mod writes;

pub use edges::*;
pub use letters::*;
pub use writes::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = claims)]
pub struct ClaimRow {
    pub id: i64,
    pub name: String,
    pub short_name: String,
    pub value: String,
    pub description: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = claim_groups)]
pub struct GroupRow {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    /// The credential kinds whose logins get the group's claims, comma-separated (`None`: every kind); read only
    /// through [`crate::credential`].
    pub credentials: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = group_links)]
pub struct LinkRow {
    pub id: i64,
    pub link_type: String,
    pub resource_spec: String,
    pub claim_group_id: Option<i64>,
    pub created_at: i64,
}

/// Offset and limit of a page (`page` from 1).
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}

pub fn list_users(c: &mut DbConn, p: Page) -> Result<Vec<UserRow>, DbError> {
    Ok(users::table
        .order((users::created_at, users::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(UserRow::as_select())
        .load(c)?)
}

diesel::define_sql_function! {
    /// SQL `lower()` of a nullable text (ASCII on SQLite, Unicode elsewhere).
    #[sql_name = "lower"]
    fn lower_nullable(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>;
}

/// A `LIKE` pattern (escaped with `\`) matching texts that contain `q`, lowercased.
fn contains(q: &str) -> String {
    let escaped = q
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// A page of the users whose username, email, first or last name contains `q` (case-insensitive).
pub fn search_users(c: &mut DbConn, p: Page, q: &str) -> Result<Vec<UserRow>, DbError> {
    use super::users::lower;
    let pattern = contains(q);
    Ok(users::table
        .filter(
            lower(users::username)
                .like(&pattern)
                .escape('\\')
                .or(lower_nullable(users::email).like(&pattern).escape('\\'))
                .or(lower(users::fname).like(&pattern).escape('\\'))
                .or(lower(users::lname).like(&pattern).escape('\\')),
        )
        .order((users::created_at, users::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(UserRow::as_select())
        .load(c)?)
}

/// A page of the claims whose name contains `q` (case-insensitive).
pub fn search_claims(c: &mut DbConn, p: Page, q: &str) -> Result<Vec<ClaimRow>, DbError> {
    use super::users::lower;
    Ok(claims::table
        .filter(lower(claims::name).like(contains(q)).escape('\\'))
        .order((claims::created_at, claims::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(ClaimRow::as_select())
        .load(c)?)
}

/// A page of the claim groups whose name contains `q` (case-insensitive).
pub fn search_groups(c: &mut DbConn, p: Page, q: &str) -> Result<Vec<GroupRow>, DbError> {
    use super::users::lower;
    Ok(claim_groups::table
        .filter(lower(claim_groups::name).like(contains(q)).escape('\\'))
        .order((claim_groups::created_at, claim_groups::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(GroupRow::as_select())
        .load(c)?)
}

pub fn list_claims(c: &mut DbConn, p: Page) -> Result<Vec<ClaimRow>, DbError> {
    Ok(claims::table
        .order((claims::created_at, claims::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(ClaimRow::as_select())
        .load(c)?)
}

pub fn list_groups(c: &mut DbConn, p: Page) -> Result<Vec<GroupRow>, DbError> {
    Ok(claim_groups::table
        .order((claim_groups::created_at, claim_groups::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(GroupRow::as_select())
        .load(c)?)
}

pub fn list_links(c: &mut DbConn, p: Page) -> Result<Vec<LinkRow>, DbError> {
    Ok(group_links::table
        .order((group_links::created_at, group_links::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(LinkRow::as_select())
        .load(c)?)
}

pub fn claim(c: &mut DbConn, id: i64) -> Result<Option<ClaimRow>, DbError> {
    Ok(claims::table
        .find(id)
        .select(ClaimRow::as_select())
        .get_result(c)
        .optional()?)
}

pub fn group(c: &mut DbConn, id: i64) -> Result<Option<GroupRow>, DbError> {
    Ok(claim_groups::table
        .find(id)
        .select(GroupRow::as_select())
        .get_result(c)
        .optional()?)
}

pub fn link(c: &mut DbConn, id: i64) -> Result<Option<LinkRow>, DbError> {
    Ok(group_links::table
        .find(id)
        .select(LinkRow::as_select())
        .get_result(c)
        .optional()?)
}

pub fn groups_of_user(c: &mut DbConn, user: i64, p: Page) -> Result<Vec<GroupRow>, DbError> {
    Ok(user_claim_groups::table
        .inner_join(claim_groups::table)
        .filter(user_claim_groups::user_id.eq(user))
        .order((claim_groups::created_at, claim_groups::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(GroupRow::as_select())
        .load(c)?)
}

pub fn groups_of_claim(c: &mut DbConn, claim: i64, p: Page) -> Result<Vec<GroupRow>, DbError> {
    Ok(claim_group_claims::table
        .inner_join(claim_groups::table)
        .filter(claim_group_claims::claim_id.eq(claim))
        .order((claim_groups::created_at, claim_groups::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(GroupRow::as_select())
        .load(c)?)
}

pub fn claims_of_group(c: &mut DbConn, group: i64, p: Page) -> Result<Vec<ClaimRow>, DbError> {
    Ok(claim_group_claims::table
        .inner_join(claims::table)
        .filter(claim_group_claims::claim_group_id.eq(group))
        .order((claims::created_at, claims::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(ClaimRow::as_select())
        .load(c)?)
}

pub fn users_of_group(c: &mut DbConn, group: i64, p: Page) -> Result<Vec<UserRow>, DbError> {
    Ok(user_claim_groups::table
        .inner_join(users::table)
        .filter(user_claim_groups::claim_group_id.eq(group))
        .order((users::created_at, users::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(UserRow::as_select())
        .load(c)?)
}

pub fn links_of_group(c: &mut DbConn, group: i64, p: Page) -> Result<Vec<LinkRow>, DbError> {
    Ok(group_links::table
        .filter(group_links::claim_group_id.eq(group))
        .order((group_links::created_at, group_links::id))
        .offset(p.offset)
        .limit(p.limit)
        .select(LinkRow::as_select())
        .load(c)?)
}

/// (users, claims, claim groups).
pub fn totals(c: &mut DbConn) -> Result<(i64, i64, i64), DbError> {
    Ok((
        users::table.count().get_result(c)?,
        claims::table.count().get_result(c)?,
        claim_groups::table.count().get_result(c)?,
    ))
}

/// The ids among `ids` that do not exist in `table` (users, claims, groups or links).
pub fn missing(c: &mut DbConn, kind: Kind, ids: &[i64]) -> Result<Vec<i64>, DbError> {
    let found: Vec<i64> = match kind {
        Kind::User => users::table.filter(users::id.eq_any(ids)).select(users::id).load(c)?,
        Kind::Claim => claims::table
            .filter(claims::id.eq_any(ids))
            .select(claims::id)
            .load(c)?,
        Kind::Group => claim_groups::table
            .filter(claim_groups::id.eq_any(ids))
            .select(claim_groups::id)
            .load(c)?,
        Kind::Link => group_links::table
            .filter(group_links::id.eq_any(ids))
            .select(group_links::id)
            .load(c)?,
    };
    Ok(ids.iter().copied().filter(|id| !found.contains(id)).collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Claim,
    Group,
    Link,
}

/// Sessions of a user, newest first.
pub fn sessions_of(c: &mut DbConn, user: i64) -> Result<Vec<super::refresh::FamilyRow>, DbError> {
    Ok(refresh_families::table
        .filter(refresh_families::user_id.eq(user))
        .order(refresh_families::created_at.desc())
        .select(super::refresh::FamilyRow::as_select())
        .load(c)?)
}

/// The names people know entities by, by id (usernames, claim and group names, link resource specs); ids that
/// no longer exist are absent.
pub fn display_names(c: &mut DbConn, kind: Kind, ids: &[i64]) -> Result<Vec<(i64, String)>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match kind {
        Kind::User => users::table
            .filter(users::id.eq_any(ids))
            .select((users::id, users::username))
            .load(c)?,
        Kind::Claim => claims::table
            .filter(claims::id.eq_any(ids))
            .select((claims::id, claims::name))
            .load(c)?,
        Kind::Group => claim_groups::table
            .filter(claim_groups::id.eq_any(ids))
            .select((claim_groups::id, claim_groups::name))
            .load(c)?,
        Kind::Link => group_links::table
            .filter(group_links::id.eq_any(ids))
            .select((group_links::id, group_links::resource_spec))
            .load(c)?,
    })
}

/// What policies protect entities by: usernames, group names, claim short names (links: resource specs).
pub fn policy_names(c: &mut DbConn, kind: Kind, ids: &[i64]) -> Result<Vec<String>, DbError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(match kind {
        Kind::User => users::table
            .filter(users::id.eq_any(ids))
            .select(users::username)
            .load(c)?,
        Kind::Claim => claims::table
            .filter(claims::id.eq_any(ids))
            .select(claims::short_name)
            .load(c)?,
        Kind::Group => claim_groups::table
            .filter(claim_groups::id.eq_any(ids))
            .select(claim_groups::name)
            .load(c)?,
        Kind::Link => group_links::table
            .filter(group_links::id.eq_any(ids))
            .select(group_links::resource_spec)
            .load(c)?,
    })
}

/// The claim of this short name and value, if one exists (the pair is unique).
pub fn claim_by_value(c: &mut DbConn, short_name: &str, value: &str) -> Result<Option<ClaimRow>, DbError> {
    Ok(claims::table
        .filter(claims::short_name.eq(short_name))
        .filter(claims::value.eq(value))
        .select(ClaimRow::as_select())
        .first(c)
        .optional()?)
}

/// The id of the claim of this (unique) name.
pub fn claim_named(c: &mut DbConn, name: &str) -> Result<Option<i64>, DbError> {
    Ok(claims::table
        .filter(claims::name.eq(name))
        .select(claims::id)
        .first(c)
        .optional()?)
}

/// Whether a claim has this (unique) name.
pub fn claim_name_taken(c: &mut DbConn, name: &str) -> Result<bool, DbError> {
    let n: i64 = claims::table.filter(claims::name.eq(name)).count().get_result(c)?;
    Ok(n > 0)
}

pub fn group_by_name(c: &mut DbConn, name: &str) -> Result<Option<GroupRow>, DbError> {
    Ok(claim_groups::table
        .filter(claim_groups::name.eq(name))
        .select(GroupRow::as_select())
        .first(c)
        .optional()?)
}

/// How many memberships these groups have, together.
pub fn members_of_any(c: &mut DbConn, groups: &[i64]) -> Result<i64, DbError> {
    Ok(user_claim_groups::table
        .filter(user_claim_groups::claim_group_id.eq_any(groups))
        .count()
        .get_result(c)?)
}
