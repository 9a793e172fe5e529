//! Edges between users, claim groups, claims and links: set wholesale, added one at a time, listed by id.

use diesel::prelude::*;

use crate::db::schema::{claim_group_claims, group_links, user_claim_groups};
use crate::db::{DbConn, DbError};

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
