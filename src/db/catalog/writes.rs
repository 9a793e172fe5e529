//! Inserts, updates and deletes of claims, claim groups and links.

use diesel::prelude::*;

use super::{ClaimRow, GroupRow, LinkRow};
use crate::db::schema::{claim_groups, claims, group_links};
use crate::db::{DbConn, DbError};

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
            claim_groups::credentials.eq(&row.credentials),
        ))
        .execute(c)?;
    Ok(())
}

pub fn update_group(c: &mut DbConn, row: &GroupRow) -> Result<(), DbError> {
    diesel::update(claim_groups::table.find(row.id))
        .set((
            claim_groups::name.eq(&row.name),
            claim_groups::description.eq(&row.description),
            claim_groups::credentials.eq(&row.credentials),
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
