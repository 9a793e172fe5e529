//! What `import-stoke` compares against and writes: Tessera's catalog by natural key (claim and group names,
//! usernames, link specs, key ids), and the rows an import adds. Deciding what to add, and what conflicts, is
//! `services::stoke_import`'s; this only reads and writes, inside the caller's transaction.

use std::collections::HashMap;

use diesel::prelude::*;

use super::catalog::{add_group_claim, add_user_group};
use super::keys::KeyRow;
use super::schema::{claim_group_claims, claim_groups, claims, group_links, signing_keys, user_claim_groups, users};
use super::users::UserRow;
use super::{DbConn, DbError, new_id};

/// Tessera's catalog as the import sees it.
#[derive(Debug, Default, Clone)]
pub struct Target {
    /// id, name, short_name, value
    pub claims: Vec<(i64, String, String, String)>,
    /// id, name
    pub groups: Vec<(i64, String)>,
    /// group id, link type, resource spec
    pub links: Vec<(Option<i64>, String, String)>,
    /// group id, claim id
    pub group_claims: Vec<(i64, i64)>,
    /// id, username, email
    pub users: Vec<(i64, String, Option<String>)>,
    /// user id, group id
    pub members: Vec<(i64, i64)>,
    /// kid, public JWK, rotation step
    pub keys: Vec<(String, String, i64)>,
}

/// Reads the catalog (all of it: an import runs once, on a catalog of operator scale).
pub fn read_target(c: &mut DbConn) -> Result<Target, DbError> {
    Ok(Target {
        claims: claims::table
            .select((claims::id, claims::name, claims::short_name, claims::value))
            .load(c)?,
        groups: claim_groups::table
            .select((claim_groups::id, claim_groups::name))
            .load(c)?,
        links: group_links::table
            .select((
                group_links::claim_group_id,
                group_links::link_type,
                group_links::resource_spec,
            ))
            .load(c)?,
        group_claims: claim_group_claims::table
            .select((claim_group_claims::claim_group_id, claim_group_claims::claim_id))
            .load(c)?,
        users: users::table
            .select((users::id, users::username, users::email))
            .load(c)?,
        members: user_claim_groups::table
            .select((user_claim_groups::user_id, user_claim_groups::claim_group_id))
            .load(c)?,
        keys: signing_keys::table
            .select((signing_keys::kid, signing_keys::public_jwk, signing_keys::rotation_step))
            .load(c)?,
    })
}

/// A claim or group to create.
#[derive(Debug, Clone)]
pub struct NewClaim {
    pub name: String,
    pub short_name: String,
    pub value: String,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct NewGroup {
    pub name: String,
    pub description: String,
}

/// What an import adds; edges name their ends (groups and claims by name, users by username), which exist
/// already or are created by the same change set. (No `Debug`: the users carry password hashes.)
#[derive(Default, Clone)]
pub struct Changes {
    pub claims: Vec<NewClaim>,
    pub groups: Vec<NewGroup>,
    /// group name, claim name
    pub group_claims: Vec<(String, String)>,
    /// group name, link type, resource spec
    pub links: Vec<(String, String, String)>,
    pub users: Vec<UserRow>,
    /// username, group name
    pub members: Vec<(String, String)>,
    pub keys: Vec<KeyRow>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty()
            && self.groups.is_empty()
            && self.group_claims.is_empty()
            && self.links.is_empty()
            && self.users.is_empty()
            && self.members.is_empty()
            && self.keys.is_empty()
    }
}

/// Writes `changes` (inside the caller's transaction).
pub fn apply(c: &mut DbConn, changes: &Changes, now: i64) -> Result<(), DbError> {
    for claim in &changes.claims {
        diesel::insert_into(claims::table)
            .values((
                claims::id.eq(new_id()),
                claims::name.eq(&claim.name),
                claims::short_name.eq(&claim.short_name),
                claims::value.eq(&claim.value),
                claims::description.eq(&claim.description),
                claims::created_at.eq(now),
            ))
            .execute(c)?;
    }
    for group in &changes.groups {
        diesel::insert_into(claim_groups::table)
            .values((
                claim_groups::id.eq(new_id()),
                claim_groups::name.eq(&group.name),
                claim_groups::description.eq(&group.description),
                claim_groups::created_at.eq(now),
            ))
            .execute(c)?;
    }
    for user in &changes.users {
        super::users::insert(c, user)?;
    }
    let target = read_target(c)?;
    let claim_ids: HashMap<&str, i64> = target.claims.iter().map(|(id, n, ..)| (n.as_str(), *id)).collect();
    let group_ids: HashMap<&str, i64> = target.groups.iter().map(|(id, n)| (n.as_str(), *id)).collect();
    let user_ids: HashMap<&str, i64> = target.users.iter().map(|(id, n, _)| (n.as_str(), *id)).collect();
    let missing =
        |what: &str, name: &str| DbError::Migration(format!("import: {what} {name:?} vanished during the import"));
    for (group, claim) in &changes.group_claims {
        let g = *group_ids.get(group.as_str()).ok_or_else(|| missing("group", group))?;
        let cl = *claim_ids.get(claim.as_str()).ok_or_else(|| missing("claim", claim))?;
        add_group_claim(c, g, cl)?;
    }
    for (group, link_type, spec) in &changes.links {
        let g = *group_ids.get(group.as_str()).ok_or_else(|| missing("group", group))?;
        diesel::insert_into(group_links::table)
            .values((
                group_links::id.eq(new_id()),
                group_links::link_type.eq(link_type),
                group_links::resource_spec.eq(spec),
                group_links::claim_group_id.eq(Some(g)),
                group_links::created_at.eq(now),
            ))
            .execute(c)?;
    }
    for (username, group) in &changes.members {
        let u = *user_ids
            .get(username.as_str())
            .ok_or_else(|| missing("user", username))?;
        let g = *group_ids.get(group.as_str()).ok_or_else(|| missing("group", group))?;
        add_user_group(c, u, g)?;
    }
    for key in &changes.keys {
        super::keys::insert(c, key)?;
        let detail = format!("{} from Stoke, verifies until {}", key.algorithm, key.expires_at);
        super::audit::record(c, now, "import-stoke", "keys.imported", &key.kid, &detail)?;
    }
    if !changes.is_empty() {
        let detail = format!(
            "{} users, {} groups, {} claims, {} links, {} memberships, {} keys",
            changes.users.len(),
            changes.groups.len(),
            changes.claims.len(),
            changes.links.len(),
            changes.members.len(),
            changes.keys.len()
        );
        super::audit::record(c, now, "import-stoke", "import.stoke", "", &detail)?;
    }
    Ok(())
}
