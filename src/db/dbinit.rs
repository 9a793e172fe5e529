//! Writing a dbinit file's contents (parsed and checked by `services::dbinit`): claims, claim groups with their
//! links, and users, created or updated by name in one transaction, at most once per (file name, content hash).

use std::collections::HashMap;

use diesel::prelude::*;

use super::catalog::{add_group_claim, add_user_group};
use super::schema::{claim_groups, claims, dbinit_files, group_links, users};
use super::{DbConn, DbError, new_id};

/// What a checked dbinit file asks for; every name a group or user refers to is defined in it.
#[derive(Debug, Default)]
pub struct Plan {
    pub claims: Vec<PlanClaim>,
    pub groups: Vec<PlanGroup>,
    pub users: Vec<PlanUser>,
    pub clients: Vec<PlanClient>,
}

/// An OAuth client, created or updated by `client_id`; its groups by name.
#[derive(Debug)]
pub struct PlanClient {
    pub row: super::clients::ClientRow,
    pub groups: Vec<String>,
}

#[derive(Debug, Default)]
pub struct PlanClaim {
    pub name: String,
    pub description: String,
    pub short_name: String,
    pub value: String,
}

#[derive(Debug, Default)]
pub struct PlanGroup {
    pub name: String,
    pub description: String,
    /// Claim names.
    pub claims: Vec<String>,
    pub links: Vec<PlanLink>,
    /// The credential limit, normalised (`crate::credential::normalise`); `None`: the file names none.
    pub credentials: Option<String>,
}

/// A link as stored: `type` is `KIND:provider` (Stoke's form; an empty provider matches every provider of
/// that kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLink {
    pub link_type: String,
    pub resource_spec: String,
}

#[derive(Debug, Default)]
pub struct PlanUser {
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    /// A PHC string, or Stoke's base64 hash (with `password_salt`); empty: no password.
    pub password_hash: String,
    pub password_salt: String,
    /// Group names.
    pub groups: Vec<String>,
}

/// Applies `plan` under (`name`, `hash`) in one transaction, unless that content was applied before; `true`
/// when it was applied now.
pub fn apply(conn: &mut DbConn, name: &str, hash: &str, plan: &Plan, now: i64) -> Result<bool, DbError> {
    conn.transaction::<bool, DbError, _>(|conn| {
        let seen = dbinit_files::table
            .filter(dbinit_files::file_name.eq(name))
            .filter(dbinit_files::content_hash.eq(hash))
            .count()
            .get_result::<i64>(conn)?;
        if seen > 0 {
            return Ok(false);
        }
        write(conn, plan, now)?;
        diesel::insert_into(dbinit_files::table)
            .values((
                dbinit_files::file_name.eq(name),
                dbinit_files::content_hash.eq(hash),
                dbinit_files::applied_at.eq(now),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

fn write(conn: &mut DbConn, f: &Plan, now: i64) -> Result<(), DbError> {
    let mut claim_ids: HashMap<&str, i64> = HashMap::new();
    for c in &f.claims {
        let existing = claims::table
            .filter(claims::name.eq(&c.name))
            .select(claims::id)
            .first::<i64>(conn)
            .optional()?;
        let id = match existing {
            Some(id) => {
                diesel::update(claims::table.find(id))
                    .set((
                        claims::short_name.eq(&c.short_name),
                        claims::value.eq(&c.value),
                        claims::description.eq(&c.description),
                    ))
                    .execute(conn)?;
                id
            }
            None => {
                let id = new_id();
                diesel::insert_into(claims::table)
                    .values((
                        claims::id.eq(id),
                        claims::name.eq(&c.name),
                        claims::short_name.eq(&c.short_name),
                        claims::value.eq(&c.value),
                        claims::description.eq(&c.description),
                        claims::created_at.eq(now),
                    ))
                    .execute(conn)?;
                id
            }
        };
        claim_ids.insert(&c.name, id);
    }

    let mut group_ids: HashMap<&str, i64> = HashMap::new();
    for g in &f.groups {
        let existing = claim_groups::table
            .filter(claim_groups::name.eq(&g.name))
            .select(claim_groups::id)
            .first::<i64>(conn)
            .optional()?;
        let id = match existing {
            Some(id) => {
                diesel::update(claim_groups::table.find(id))
                    .set(claim_groups::description.eq(&g.description))
                    .execute(conn)?;
                // A file that names no limit leaves the group's as it is.
                if g.credentials.is_some() {
                    diesel::update(claim_groups::table.find(id))
                        .set(claim_groups::credentials.eq(&g.credentials))
                        .execute(conn)?;
                }
                id
            }
            None => {
                let id = new_id();
                diesel::insert_into(claim_groups::table)
                    .values((
                        claim_groups::id.eq(id),
                        claim_groups::name.eq(&g.name),
                        claim_groups::description.eq(&g.description),
                        claim_groups::created_at.eq(now),
                        claim_groups::credentials.eq(&g.credentials),
                    ))
                    .execute(conn)?;
                id
            }
        };
        group_ids.insert(&g.name, id);
        for claim in &g.claims {
            if let Some(&claim_id) = claim_ids.get(claim.as_str()) {
                add_group_claim(conn, id, claim_id)?;
            }
        }
        for link in &g.links {
            let exists = group_links::table
                .filter(group_links::claim_group_id.eq(id))
                .filter(group_links::link_type.eq(&link.link_type))
                .filter(group_links::resource_spec.eq(&link.resource_spec))
                .count()
                .get_result::<i64>(conn)?;
            if exists == 0 {
                diesel::insert_into(group_links::table)
                    .values((
                        group_links::id.eq(new_id()),
                        group_links::link_type.eq(&link.link_type),
                        group_links::resource_spec.eq(&link.resource_spec),
                        group_links::claim_group_id.eq(Some(id)),
                        group_links::created_at.eq(now),
                    ))
                    .execute(conn)?;
            }
        }
    }

    for u in &f.users {
        let email = Some(u.email.as_str()).filter(|e| !e.is_empty());
        let (hash, salt) = match (u.password_hash.as_str(), u.password_salt.as_str()) {
            ("", _) => (None, None),
            (h, _) if h.starts_with('$') => (Some(h), None),
            (h, s) => (Some(h), Some(s)),
        };
        let existing = users::table
            .filter(users::username.eq(&u.username))
            .select(users::id)
            .first::<i64>(conn)
            .optional()?;
        let id = match existing {
            Some(id) => {
                diesel::update(users::table.find(id))
                    .set((
                        users::fname.eq(&u.first_name),
                        users::lname.eq(&u.last_name),
                        users::email.eq(email),
                        users::updated_at.eq(now),
                        users::version.eq(users::version + 1),
                    ))
                    .execute(conn)?;
                if hash.is_some() {
                    diesel::update(users::table.find(id))
                        .set((users::password_hash.eq(hash), users::password_salt.eq(salt)))
                        .execute(conn)?;
                }
                id
            }
            None => {
                let row = super::users::UserRow::new_local(
                    &u.username,
                    email,
                    (&u.first_name, &u.last_name),
                    (hash, salt),
                    now,
                );
                super::users::insert(conn, &row)?;
                row.id
            }
        };
        for group in &u.groups {
            if let Some(&group_id) = group_ids.get(group.as_str()) {
                add_user_group(conn, id, group_id)?;
            }
        }
    }

    for c in &f.clients {
        let groups: Vec<i64> = c
            .groups
            .iter()
            .filter_map(|g| group_ids.get(g.as_str()).copied())
            .collect();
        let row = &c.row;
        if super::clients::find(conn, &row.client_id)?.is_some() {
            let settings = row.settings(now);
            super::clients::update(conn, &row.client_id, &settings)?;
            super::clients::set_secret(conn, &row.client_id, row.secret_digest.as_deref())?;
            super::clients::set_groups(conn, &row.client_id, &groups)?;
        } else {
            super::clients::insert(conn, row, &groups)?;
        }
    }
    Ok(())
}
