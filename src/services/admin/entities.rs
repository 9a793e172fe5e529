//! Claims, claim groups and group links.

use crate::api_types::{Claim, ClaimGroup, ClaimInput, GroupInput, GroupLink, LinkInput};
use crate::authz::{self, STK};
use crate::db::catalog::{self, ClaimRow, GroupRow, Kind, LinkRow};
use crate::db::{DbConn, new_id};

use super::{Policy, ServiceError, changed, dedup, existing, text};

pub fn claim_dto(r: ClaimRow) -> Claim {
    Claim {
        id: r.id,
        name: r.name,
        short_name: r.short_name,
        value: r.value,
        description: r.description,
    }
}

pub fn group_dto(r: GroupRow) -> ClaimGroup {
    ClaimGroup {
        id: r.id,
        name: r.name,
        description: r.description,
        credentials: crate::credential::listed(r.credentials.as_deref()),
    }
}

pub fn link_dto(r: LinkRow) -> GroupLink {
    GroupLink {
        id: r.id,
        link_type: r.link_type,
        resource_spec: r.resource_spec,
    }
}

/// 409 naming the value that is taken.
fn taken(code: &'static str, message: String) -> ServiceError {
    ServiceError::Conflict { code, message }
}

/// Refuses a claim whose name, or whose short name and value, another claim (not `id`) has.
fn claim_unique(c: &mut DbConn, r: &ClaimRow) -> Result<(), ServiceError> {
    if let Some(other) = catalog::claim_by_value(c, &r.short_name, &r.value)?
        && other.id != r.id
    {
        return Err(taken(
            "claim_exists",
            format!("claim {:?} already grants {}={:?}", other.name, r.short_name, r.value),
        ));
    }
    if catalog::claim_named(c, &r.name)?.is_some_and(|other| other != r.id) {
        return Err(taken(
            "claim_name_taken",
            format!("a claim is already named {:?}", r.name),
        ));
    }
    Ok(())
}

/// Refuses a group name another group (not `id`) has.
fn group_unique(c: &mut DbConn, r: &GroupRow) -> Result<(), ServiceError> {
    if catalog::group_by_name(c, &r.name)?.is_some_and(|other| other.id != r.id) {
        return Err(taken(
            "group_name_taken",
            format!("a claim group is already named {:?}", r.name),
        ));
    }
    Ok(())
}

fn not_found(what: &str, id: i64) -> ServiceError {
    ServiceError::NotFound(format!("no {what} with id {id}"))
}

/// Each touched entity must be free of protection.
fn guard(c: &mut DbConn, policy: &Policy, kind: Kind, ids: &[i64]) -> Result<(), ServiceError> {
    for name in catalog::policy_names(c, kind, ids)? {
        match kind {
            Kind::User => policy.user(&name)?,
            Kind::Group => policy.group(&name)?,
            Kind::Claim => policy.claim(&name)?,
            Kind::Link => {}
        }
    }
    Ok(())
}

fn check_claim(r: &ClaimRow) -> Result<(), ServiceError> {
    text("name", &r.name, 255, true)?;
    text("short_name", &r.short_name, 255, true)?;
    text("value", &r.value, 255, false)?;
    text("description", &r.description, 4096, false)?;
    if r.short_name == STK {
        authz::check_stk_value(&r.value).map_err(|message| ServiceError::Unprocessable {
            code: authz::INVALID_STK_VALUE,
            message,
        })?;
    }
    Ok(())
}

/// Creates a claim (and its group edges when given).
pub(super) fn create_claim(
    c: &mut DbConn,
    policy: &Policy,
    now: i64,
    input: ClaimInput,
) -> Result<Claim, ServiceError> {
    let row = ClaimRow {
        id: new_id(),
        name: input.name.unwrap_or_default(),
        short_name: input.short_name.unwrap_or_default(),
        value: input.value.unwrap_or_default(),
        description: input.description.unwrap_or_default(),
        created_at: now,
    };
    check_claim(&row)?;
    policy.claim(&row.short_name)?;
    claim_unique(c, &row)?;
    catalog::insert_claim(c, &row)?;
    if let Some(groups) = input.claim_groups {
        let groups = dedup(&groups);
        existing(c, Kind::Group, "claim_groups", &groups)?;
        guard(c, policy, Kind::Group, &groups)?;
        catalog::set_claim_groups(c, row.id, &groups)?;
    }
    Ok(claim_dto(row))
}

/// Sets the given fields; a given `claim_groups` replaces the claim's groups.
pub(super) fn update_claim(c: &mut DbConn, policy: &Policy, id: i64, input: ClaimInput) -> Result<Claim, ServiceError> {
    let mut row = catalog::claim(c, id)?.ok_or_else(|| not_found("claim", id))?;
    policy.claim(&row.short_name)?;
    if let Some(v) = input.name {
        row.name = v;
    }
    if let Some(v) = input.short_name {
        row.short_name = v;
    }
    if let Some(v) = input.value {
        row.value = v;
    }
    if let Some(v) = input.description {
        row.description = v;
    }
    check_claim(&row)?;
    policy.claim(&row.short_name)?;
    claim_unique(c, &row)?;
    catalog::update_claim(c, &row)?;
    if let Some(groups) = input.claim_groups {
        let groups = dedup(&groups);
        existing(c, Kind::Group, "claim_groups", &groups)?;
        let old = catalog::claim_group_ids(c, id)?;
        guard(c, policy, Kind::Group, &changed(&old, &groups))?;
        catalog::set_claim_groups(c, id, &groups)?;
    }
    Ok(claim_dto(row))
}

pub(super) fn delete_claim(c: &mut DbConn, policy: &Policy, id: i64) -> Result<(), ServiceError> {
    let row = catalog::claim(c, id)?.ok_or_else(|| not_found("claim", id))?;
    policy.claim(&row.short_name)?;
    catalog::delete_claim(c, id)?;
    Ok(())
}

/// A group's credential limit as given (`None`: keep; `Some(None)`: no limit), checked and normalised.
fn credential_limit(given: Option<&Option<Vec<String>>>) -> Result<Option<Option<String>>, ServiceError> {
    given
        .map(|g| crate::credential::normalise(g.as_deref()))
        .transpose()
        .map_err(|m| ServiceError::invalid("invalid_credentials", m))
}

fn check_group(r: &GroupRow) -> Result<(), ServiceError> {
    text("name", &r.name, 255, true)?;
    text("description", &r.description, 4096, false)
}

/// Replaces the edges given in `input` (users, claims, links), checking references and protections.
fn group_edges(c: &mut DbConn, policy: &Policy, id: i64, input: &GroupInput) -> Result<(), ServiceError> {
    if let Some(users) = &input.users {
        let users = dedup(users);
        existing(c, Kind::User, "users", &users)?;
        let old = catalog::group_user_ids(c, id)?;
        guard(c, policy, Kind::User, &changed(&old, &users))?;
        catalog::set_group_users(c, id, &users)?;
    }
    if let Some(claims) = &input.claims {
        let claims = dedup(claims);
        existing(c, Kind::Claim, "claims", &claims)?;
        let old = catalog::group_claim_ids(c, id)?;
        guard(c, policy, Kind::Claim, &changed(&old, &claims))?;
        catalog::set_group_claims(c, id, &claims)?;
    }
    if let Some(links) = &input.group_links {
        let links = dedup(links);
        existing(c, Kind::Link, "group_links", &links)?;
        catalog::set_group_links(c, id, &links)?;
    }
    Ok(())
}

pub(super) fn create_group(
    c: &mut DbConn,
    policy: &Policy,
    now: i64,
    input: GroupInput,
) -> Result<ClaimGroup, ServiceError> {
    let row = GroupRow {
        id: new_id(),
        name: input.name.clone().unwrap_or_default(),
        description: input.description.clone().unwrap_or_default(),
        created_at: now,
        credentials: credential_limit(input.credentials.as_ref())?.flatten(),
    };
    check_group(&row)?;
    policy.group(&row.name)?;
    group_unique(c, &row)?;
    catalog::insert_group(c, &row)?;
    group_edges(c, policy, row.id, &input)?;
    Ok(group_dto(row))
}

pub(super) fn update_group(
    c: &mut DbConn,
    policy: &Policy,
    id: i64,
    input: GroupInput,
) -> Result<ClaimGroup, ServiceError> {
    let mut row = catalog::group(c, id)?.ok_or_else(|| not_found("claim group", id))?;
    policy.group(&row.name)?;
    if let Some(v) = &input.name {
        row.name = v.clone();
    }
    if let Some(v) = &input.description {
        row.description = v.clone();
    }
    if let Some(limit) = credential_limit(input.credentials.as_ref())?
        && limit != row.credentials
    {
        // Which logins get the group's letters is a change of who holds them: only for a caller holding them all.
        policy.group_letters(c, id)?;
        row.credentials = limit;
    }
    check_group(&row)?;
    policy.group(&row.name)?;
    group_unique(c, &row)?;
    catalog::update_group(c, &row)?;
    group_edges(c, policy, id, &input)?;
    Ok(group_dto(row))
}

pub(super) fn delete_group(c: &mut DbConn, policy: &Policy, id: i64) -> Result<(), ServiceError> {
    let row = catalog::group(c, id)?.ok_or_else(|| not_found("claim group", id))?;
    policy.group(&row.name)?;
    catalog::delete_group(c, id)?;
    Ok(())
}

fn check_link(r: &LinkRow) -> Result<(), ServiceError> {
    text("type", &r.link_type, 255, true)?;
    text("resource_spec", &r.resource_spec, 512, true)
}

pub(super) fn create_link(
    c: &mut DbConn,
    policy: &Policy,
    now: i64,
    input: LinkInput,
) -> Result<GroupLink, ServiceError> {
    let row = LinkRow {
        id: new_id(),
        link_type: input.link_type.unwrap_or_default(),
        resource_spec: input.resource_spec.unwrap_or_default(),
        claim_group_id: input.claim_group,
        created_at: now,
    };
    check_link(&row)?;
    if let Some(g) = row.claim_group_id {
        existing(c, Kind::Group, "claim_group", &[g])?;
        guard(c, policy, Kind::Group, &[g])?;
    }
    catalog::insert_link(c, &row)?;
    Ok(link_dto(row))
}

pub(super) fn update_link(
    c: &mut DbConn,
    policy: &Policy,
    id: i64,
    input: LinkInput,
) -> Result<GroupLink, ServiceError> {
    let mut row = catalog::link(c, id)?.ok_or_else(|| not_found("group link", id))?;
    let old_group = row.claim_group_id;
    if let Some(v) = input.link_type {
        row.link_type = v;
    }
    if let Some(v) = input.resource_spec {
        row.resource_spec = v;
    }
    if let Some(g) = input.claim_group {
        existing(c, Kind::Group, "claim_group", &[g])?;
        row.claim_group_id = Some(g);
    }
    check_link(&row)?;
    let touched: Vec<i64> = old_group.into_iter().chain(row.claim_group_id).collect();
    guard(c, policy, Kind::Group, &touched)?;
    catalog::update_link(c, &row)?;
    Ok(link_dto(row))
}

pub(super) fn delete_link(c: &mut DbConn, policy: &Policy, id: i64) -> Result<(), ServiceError> {
    let row = catalog::link(c, id)?.ok_or_else(|| not_found("group link", id))?;
    guard(
        c,
        policy,
        Kind::Group,
        &row.claim_group_id.into_iter().collect::<Vec<_>>(),
    )?;
    catalog::delete_link(c, id)?;
    Ok(())
}
