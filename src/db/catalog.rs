//! Queries behind the admin API: claims, claim groups, group links, their edges, paging and totals.

use diesel::prelude::*;

use super::schema::{
    claim_group_claims, claim_groups, claims, group_links, refresh_families, user_claim_groups, users,
};
use super::users::UserRow;
use super::{DbConn, DbError};
use crate::authz::{Holdings, Letters, STK};

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

pub fn set_user_groups(c: &mut DbConn, user: i64, groups: &[i64]) -> Result<(), DbError> {
    diesel::delete(user_claim_groups::table.filter(user_claim_groups::user_id.eq(user))).execute(c)?;
    // One row per statement: batch inserts are not portable through MultiConnection.
    for g in groups {
        diesel::insert_into(user_claim_groups::table)
            .values((
                user_claim_groups::user_id.eq(user),
                user_claim_groups::claim_group_id.eq(*g),
            ))
            .execute(c)?;
    }
    Ok(())
}

pub fn set_group_users(c: &mut DbConn, group: i64, members: &[i64]) -> Result<(), DbError> {
    diesel::delete(user_claim_groups::table.filter(user_claim_groups::claim_group_id.eq(group))).execute(c)?;
    for u in members {
        diesel::insert_into(user_claim_groups::table)
            .values((
                user_claim_groups::user_id.eq(*u),
                user_claim_groups::claim_group_id.eq(group),
            ))
            .execute(c)?;
    }
    Ok(())
}

pub fn set_group_claims(c: &mut DbConn, group: i64, claim_ids: &[i64]) -> Result<(), DbError> {
    diesel::delete(claim_group_claims::table.filter(claim_group_claims::claim_group_id.eq(group))).execute(c)?;
    for cl in claim_ids {
        diesel::insert_into(claim_group_claims::table)
            .values((
                claim_group_claims::claim_group_id.eq(group),
                claim_group_claims::claim_id.eq(*cl),
            ))
            .execute(c)?;
    }
    Ok(())
}

pub fn set_claim_groups(c: &mut DbConn, claim: i64, groups: &[i64]) -> Result<(), DbError> {
    diesel::delete(claim_group_claims::table.filter(claim_group_claims::claim_id.eq(claim))).execute(c)?;
    for g in groups {
        diesel::insert_into(claim_group_claims::table)
            .values((
                claim_group_claims::claim_group_id.eq(*g),
                claim_group_claims::claim_id.eq(claim),
            ))
            .execute(c)?;
    }
    Ok(())
}

/// Makes `links` exactly the links of `group` (links moved here from elsewhere; others detached).
pub fn set_group_links(c: &mut DbConn, group: i64, links: &[i64]) -> Result<(), DbError> {
    diesel::update(group_links::table.filter(group_links::claim_group_id.eq(group)))
        .set(group_links::claim_group_id.eq(None::<i64>))
        .execute(c)?;
    diesel::update(group_links::table.filter(group_links::id.eq_any(links)))
        .set(group_links::claim_group_id.eq(Some(group)))
        .execute(c)?;
    Ok(())
}

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

/// The letters one user holds now.
pub fn letters_of_user(c: &mut DbConn, user: i64) -> Result<Letters, DbError> {
    let claims = super::users::claims_of(c, user)?;
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

/// Sessions of a user, newest first.
pub fn sessions_of(c: &mut DbConn, user: i64) -> Result<Vec<super::refresh::FamilyRow>, DbError> {
    Ok(refresh_families::table
        .filter(refresh_families::user_id.eq(user))
        .order(refresh_families::created_at.desc())
        .select(super::refresh::FamilyRow::as_select())
        .load(c)?)
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

/// Every link that belongs to a claim group: (type, resource, group).
pub fn attached_links(c: &mut DbConn) -> Result<Vec<(String, String, i64)>, DbError> {
    let rows: Vec<(String, String, Option<i64>)> = group_links::table
        .filter(group_links::claim_group_id.is_not_null())
        .select((
            group_links::link_type,
            group_links::resource_spec,
            group_links::claim_group_id,
        ))
        .load(c)?;
    Ok(rows.into_iter().filter_map(|(t, r, g)| Some((t, r, g?))).collect())
}

/// Takes a user out of `gone` and into `added` (groups it is not in yet).
pub fn change_user_groups(c: &mut DbConn, user: i64, gone: &[i64], added: &[i64]) -> Result<(), DbError> {
    if !gone.is_empty() {
        diesel::delete(
            user_claim_groups::table
                .filter(user_claim_groups::user_id.eq(user))
                .filter(user_claim_groups::claim_group_id.eq_any(gone)),
        )
        .execute(c)?;
    }
    for group in added {
        diesel::insert_into(user_claim_groups::table)
            .values((
                user_claim_groups::user_id.eq(user),
                user_claim_groups::claim_group_id.eq(*group),
            ))
            .execute(c)?;
    }
    Ok(())
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

/// Puts a claim into a group, unless it is there already.
pub fn add_group_claim(conn: &mut DbConn, group_id: i64, claim_id: i64) -> Result<(), DbError> {
    if !group_claim_ids(conn, group_id)?.contains(&claim_id) {
        diesel::insert_into(claim_group_claims::table)
            .values((
                claim_group_claims::claim_group_id.eq(group_id),
                claim_group_claims::claim_id.eq(claim_id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Puts a user into a group, unless it is there already.
pub fn add_user_group(conn: &mut DbConn, user_id: i64, group_id: i64) -> Result<(), DbError> {
    if !user_group_ids(conn, user_id)?.contains(&group_id) {
        change_user_groups(conn, user_id, &[], &[group_id])?;
    }
    Ok(())
}

/// Current edges, for diffing a wholesale replacement.
pub fn user_group_ids(c: &mut DbConn, user: i64) -> Result<Vec<i64>, DbError> {
    Ok(user_claim_groups::table
        .filter(user_claim_groups::user_id.eq(user))
        .select(user_claim_groups::claim_group_id)
        .load(c)?)
}

pub fn group_user_ids(c: &mut DbConn, group: i64) -> Result<Vec<i64>, DbError> {
    Ok(user_claim_groups::table
        .filter(user_claim_groups::claim_group_id.eq(group))
        .select(user_claim_groups::user_id)
        .load(c)?)
}

pub fn group_claim_ids(c: &mut DbConn, group: i64) -> Result<Vec<i64>, DbError> {
    Ok(claim_group_claims::table
        .filter(claim_group_claims::claim_group_id.eq(group))
        .select(claim_group_claims::claim_id)
        .load(c)?)
}

pub fn claim_group_ids(c: &mut DbConn, claim: i64) -> Result<Vec<i64>, DbError> {
    Ok(claim_group_claims::table
        .filter(claim_group_claims::claim_id.eq(claim))
        .select(claim_group_claims::claim_group_id)
        .load(c)?)
}

pub fn group_link_ids(c: &mut DbConn, group: i64) -> Result<Vec<i64>, DbError> {
    Ok(group_links::table
        .filter(group_links::claim_group_id.eq(group))
        .select(group_links::id)
        .load(c)?)
}

pub fn insert_claim(c: &mut DbConn, row: &ClaimRow) -> Result<(), DbError> {
    diesel::insert_into(claims::table)
        .values((
            claims::id.eq(row.id),
            claims::name.eq(&row.name),
            claims::short_name.eq(&row.short_name),
            claims::value.eq(&row.value),
            claims::description.eq(&row.description),
            claims::created_at.eq(row.created_at),
        ))
        .execute(c)?;
    Ok(())
}

pub fn update_claim(c: &mut DbConn, row: &ClaimRow) -> Result<(), DbError> {
    diesel::update(claims::table.find(row.id))
        .set((
            claims::name.eq(&row.name),
            claims::short_name.eq(&row.short_name),
            claims::value.eq(&row.value),
            claims::description.eq(&row.description),
        ))
        .execute(c)?;
    Ok(())
}

pub fn delete_claim(c: &mut DbConn, id: i64) -> Result<bool, DbError> {
    Ok(diesel::delete(claims::table.find(id)).execute(c)? == 1)
}

pub fn insert_group(c: &mut DbConn, row: &GroupRow) -> Result<(), DbError> {
    diesel::insert_into(claim_groups::table)
        .values((
            claim_groups::id.eq(row.id),
            claim_groups::name.eq(&row.name),
            claim_groups::description.eq(&row.description),
            claim_groups::created_at.eq(row.created_at),
        ))
        .execute(c)?;
    Ok(())
}

pub fn update_group(c: &mut DbConn, row: &GroupRow) -> Result<(), DbError> {
    diesel::update(claim_groups::table.find(row.id))
        .set((
            claim_groups::name.eq(&row.name),
            claim_groups::description.eq(&row.description),
        ))
        .execute(c)?;
    Ok(())
}

pub fn delete_group(c: &mut DbConn, id: i64) -> Result<bool, DbError> {
    Ok(diesel::delete(claim_groups::table.find(id)).execute(c)? == 1)
}

pub fn insert_link(c: &mut DbConn, row: &LinkRow) -> Result<(), DbError> {
    diesel::insert_into(group_links::table)
        .values((
            group_links::id.eq(row.id),
            group_links::link_type.eq(&row.link_type),
            group_links::resource_spec.eq(&row.resource_spec),
            group_links::claim_group_id.eq(row.claim_group_id),
            group_links::created_at.eq(row.created_at),
        ))
        .execute(c)?;
    Ok(())
}

pub fn update_link(c: &mut DbConn, row: &LinkRow) -> Result<(), DbError> {
    diesel::update(group_links::table.find(row.id))
        .set((
            group_links::link_type.eq(&row.link_type),
            group_links::resource_spec.eq(&row.resource_spec),
            group_links::claim_group_id.eq(row.claim_group_id),
        ))
        .execute(c)?;
    Ok(())
}

pub fn delete_link(c: &mut DbConn, id: i64) -> Result<bool, DbError> {
    Ok(diesel::delete(group_links::table.find(id)).execute(c)? == 1)
}
