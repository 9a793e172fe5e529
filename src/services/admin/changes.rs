//! The admin API's writes of claims, claim groups, group links and user profiles: one named function per
//! route, each one [`write`] (the caller's letters, read-only mode, the authorization rules, the audit line)
//! around the change itself in `entities` or `users`.

use crate::api_types::{Claim, ClaimGroup, ClaimInput, GroupInput, GroupLink, LinkInput, User, UserInput};
use crate::services::AppState;

use super::{Area, Caller, Change, ServiceError, entities, users, write};

pub async fn create_claim(state: &AppState, caller: &Caller, input: ClaimInput) -> Result<Claim, ServiceError> {
    let change = Change::new("claim.create", "new");
    write(state, caller, Area::Claims, change, move |c, p, now| {
        entities::create_claim(c, p, now, input)
    })
    .await
}

pub async fn update_claim(
    state: &AppState,
    caller: &Caller,
    id: i64,
    input: ClaimInput,
) -> Result<Claim, ServiceError> {
    let change = Change::new("claim.update", id);
    write(state, caller, Area::Claims, change, move |c, p, _| {
        entities::update_claim(c, p, id, input)
    })
    .await
}

pub async fn delete_claim(state: &AppState, caller: &Caller, id: i64) -> Result<(), ServiceError> {
    let change = Change::new("claim.delete", id);
    write(state, caller, Area::Claims, change, move |c, p, _| {
        entities::delete_claim(c, p, id)
    })
    .await
}

pub async fn create_group(state: &AppState, caller: &Caller, input: GroupInput) -> Result<ClaimGroup, ServiceError> {
    let change = Change::new("claim_group.create", "new");
    write(state, caller, Area::Groups, change, move |c, p, now| {
        entities::create_group(c, p, now, input)
    })
    .await
}

pub async fn update_group(
    state: &AppState,
    caller: &Caller,
    id: i64,
    input: GroupInput,
) -> Result<ClaimGroup, ServiceError> {
    let change = Change::new("claim_group.update", id);
    write(state, caller, Area::Groups, change, move |c, p, _| {
        entities::update_group(c, p, id, input)
    })
    .await
}

pub async fn delete_group(state: &AppState, caller: &Caller, id: i64) -> Result<(), ServiceError> {
    let change = Change::new("claim_group.delete", id);
    write(state, caller, Area::Groups, change, move |c, p, _| {
        entities::delete_group(c, p, id)
    })
    .await
}

pub async fn create_link(state: &AppState, caller: &Caller, input: LinkInput) -> Result<GroupLink, ServiceError> {
    let change = Change::new("group_link.create", "new");
    write(state, caller, Area::Groups, change, move |c, p, now| {
        entities::create_link(c, p, now, input)
    })
    .await
}

pub async fn update_link(
    state: &AppState,
    caller: &Caller,
    id: i64,
    input: LinkInput,
) -> Result<GroupLink, ServiceError> {
    let change = Change::new("group_link.update", id);
    write(state, caller, Area::Groups, change, move |c, p, _| {
        entities::update_link(c, p, id, input)
    })
    .await
}

pub async fn delete_link(state: &AppState, caller: &Caller, id: i64) -> Result<(), ServiceError> {
    let change = Change::new("group_link.delete", id);
    write(state, caller, Area::Groups, change, move |c, p, _| {
        entities::delete_link(c, p, id)
    })
    .await
}

pub async fn update_user(state: &AppState, caller: &Caller, id: i64, input: UserInput) -> Result<User, ServiceError> {
    let change = Change::new("user.update", id);
    write(state, caller, Area::Users, change, move |c, p, now| {
        users::update_user(c, p, now, id, input)
    })
    .await
}

pub async fn delete_user(state: &AppState, caller: &Caller, id: i64) -> Result<(), ServiceError> {
    let change = Change::new("user.delete", id);
    write(state, caller, Area::Users, change, move |c, p, _| {
        users::delete_user(c, p, id)
    })
    .await
}
