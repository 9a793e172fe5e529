//! Users: profile edits, local users and their passwords, sessions, API keys.

use crate::api_types::{LocalUserCreate, LocalUserPassword, Session, User, UserInput, rfc3339};
use crate::crypto::password::Verdict;
use crate::db::DbConn;
use crate::db::catalog::{self, Kind};
use crate::db::refresh::{self as refresh_db, FamilyRow};
use crate::db::users::{self, UserRow};
use crate::services::AppState;
use crate::services::api_keys::{self, ApiKey, ApiKeyCreated};
use crate::services::mfa;

use super::{Area, Caller, Change, Policy, ServiceError, changed, dedup, existing, text, write};

pub fn user_dto(u: UserRow) -> User {
    User {
        id: u.id,
        fname: u.fname,
        lname: u.lname,
        source: u.source,
        email: u.email.unwrap_or_default(),
        username: u.username,
        created_at: rfc3339(u.created_at),
    }
}

pub fn session_dto(f: FamilyRow) -> Session {
    Session {
        id: f.id,
        created_at: rfc3339(f.created_at),
        last_used_at: rfc3339(f.last_used_at),
        expires_at: rfc3339(f.expires_at),
        refresh_count: f.refresh_count,
        revoked_at: f.revoked_at.map(rfc3339),
        revoked_reason: f.revoked_reason,
    }
}

fn not_found(id: i64) -> ServiceError {
    ServiceError::NotFound(format!("no user with id {id}"))
}

/// An email address, or none: the same rule as the account flows' ([`crate::services::accounts::check_email`]), so
/// an address an admin enters is one Tessera can write into a message.
fn check_email(email: &str) -> Result<(), ServiceError> {
    if email.is_empty() {
        return Ok(());
    }
    crate::services::accounts::check_email(email)
}

/// Refuses a username or an email address another user (not `u`) has.
fn user_unique(c: &mut DbConn, u: &UserRow) -> Result<(), ServiceError> {
    if users::find_by_username(c, &u.username)?.is_some_and(|other| other.id != u.id) {
        return Err(ServiceError::Conflict {
            code: "username_taken",
            message: format!("a user is already named {:?}", u.username),
        });
    }
    if let Some(email) = u.email.as_deref()
        && crate::db::accounts::user_by_email(c, email)?.is_some_and(|other| other.id != u.id)
    {
        return Err(ServiceError::Conflict {
            code: "email_taken",
            message: "another user has that email address".into(),
        });
    }
    Ok(())
}

fn check_user(u: &UserRow) -> Result<(), ServiceError> {
    text("username", &u.username, 255, true)?;
    text("fname", &u.fname, 255, false)?;
    text("lname", &u.lname, 255, false)?;
    text("source", &u.source, 64, true)?;
    check_email(u.email.as_deref().unwrap_or(""))
}

/// Sets the given fields; a given `claim_groups` replaces the user's groups.
pub(super) fn update_user(
    c: &mut DbConn,
    policy: &Policy,
    now: i64,
    id: i64,
    input: UserInput,
) -> Result<User, ServiceError> {
    let mut row = users::find(c, id)?.ok_or_else(|| not_found(id))?;
    policy.user(&row.username)?;
    let profile = [&input.fname, &input.lname, &input.source, &input.email, &input.username];
    if profile.iter().any(|f| f.is_some()) {
        // Group changes alone are judged by the letters they give or take (`write`'s transition check).
        policy.account(c, id)?;
    }
    if let Some(v) = input.fname {
        row.fname = v;
    }
    if let Some(v) = input.lname {
        row.lname = v;
    }
    if let Some(v) = input.source {
        row.source = v;
    }
    if let Some(v) = input.email {
        row.email = Some(v).filter(|e| !e.is_empty());
    }
    if let Some(v) = input.username {
        row.username = v;
    }
    check_user(&row)?;
    // A rename must not land on a protected name either.
    policy.user(&row.username)?;
    user_unique(c, &row)?;
    users::update_profile(c, &row, now)?;
    if let Some(groups) = input.claim_groups {
        let groups = dedup(&groups);
        existing(c, Kind::Group, "claim_groups", &groups)?;
        let old = catalog::user_group_ids(c, id)?;
        for name in catalog::policy_names(c, Kind::Group, &changed(&old, &groups))? {
            policy.group(&name)?;
        }
        catalog::set_user_groups(c, id, &groups)?;
    }
    Ok(user_dto(row))
}

/// Deletes a user; their memberships and sessions go with them.
pub(super) fn delete_user(c: &mut DbConn, policy: &Policy, id: i64) -> Result<(), ServiceError> {
    let row = users::find(c, id)?.ok_or_else(|| not_found(id))?;
    policy.user(&row.username)?;
    policy.account(c, id)?;
    users::delete(c, id)?;
    Ok(())
}

fn check_password(state: &AppState, password: &str) -> Result<(), ServiceError> {
    if state.passwords.too_long(password) {
        return Err(ServiceError::invalid("password_too_long", "the password is too long"));
    }
    if password.chars().count() < state.config.security.min_password_length {
        return Err(ServiceError::invalid(
            "weak_password",
            format!(
                "the password needs at least {} characters",
                state.config.security.min_password_length
            ),
        ));
    }
    Ok(())
}

/// Creates a local user (Stoke's `POST /admin/localuser`).
pub async fn create_local_user(
    state: &AppState,
    caller: &Caller,
    input: LocalUserCreate,
) -> Result<User, ServiceError> {
    caller.require(Area::Users, true)?;
    let now = state.clock.now();
    let mut row = UserRow::new_local(
        &input.username,
        Some(&input.email),
        (&input.fname, &input.lname),
        (None, None),
        now,
    );
    check_user(&row)?;
    check_password(state, &input.password)?;
    row.password_hash = Some(state.passwords.hash(input.password).await?);
    let change = Change::new("localuser.create", &row.username);
    write(state, caller, Area::Users, change, move |c, policy, _| {
        policy.user(&row.username)?;
        user_unique(c, &row)?;
        users::insert(c, &row)?;
        Ok(user_dto(row))
    })
    .await
}

/// Sets a local user's password (Stoke's `PATCH /admin/localuser`): the old one must match unless `force`.
/// Every session of the user is revoked. An account holding letters the caller lacks is refused before any
/// hash, so `oldPassword` is no way to guess a superuser's password either.
pub async fn set_local_password(
    state: &AppState,
    caller: &Caller,
    input: LocalUserPassword,
) -> Result<(), ServiceError> {
    caller.require(Area::Users, true)?;
    super::writable(state)?;
    check_password(state, &input.new_password)?;
    let username = input.username.clone();
    let (user, letters) = state
        .db
        .run(move |c| -> Result<_, ServiceError> {
            let Some(user) = users::find_by_username(c, &username)? else {
                return Ok(None);
            };
            let letters = catalog::letters_of_user(c, user.id)?;
            Ok(Some((user, letters)))
        })
        .await?
        .ok_or_else(|| ServiceError::NotFound(format!("no user named {:?}", input.username)))?;
    crate::authz::may_manage(caller.letters, letters)?;
    if !input.force {
        let old = input.old_password.clone().unwrap_or_default();
        let verdict = state
            .passwords
            .verify(old, Some((user.password_hash.clone(), user.password_salt.clone())))
            .await?;
        if verdict == Verdict::Wrong {
            return Err(ServiceError::invalid("wrong_password", "oldPassword does not match"));
        }
    }
    let phc = state.passwords.hash(input.new_password).await?;
    let change = Change::new("localuser.password", &user.username);
    write(state, caller, Area::Users, change, move |c, policy, now| {
        policy.user(&user.username)?;
        policy.account(c, user.id)?;
        users::set_password(c, user.id, &phc, now)?;
        refresh_db::revoke_user_families(c, user.id, "password_changed", now)?;
        Ok(())
    })
    .await
}

/// Revokes one session of a user, or all of them (`family: None`). Returns how many were revoked.
pub async fn revoke_sessions(
    state: &AppState,
    caller: &Caller,
    user: i64,
    family: Option<String>,
) -> Result<usize, ServiceError> {
    let change = Change::new(
        "sessions.revoke",
        format!("user {user} {}", family.as_deref().unwrap_or("all")),
    );
    write(state, caller, Area::Users, change, move |c, policy, now| {
        let row = users::find(c, user)?.ok_or_else(|| not_found(user))?;
        policy.user(&row.username)?;
        policy.account(c, user)?;
        match family {
            None => Ok(refresh_db::revoke_user_families(c, user, "admin", now)?),
            Some(id) => {
                let sessions = catalog::sessions_of(c, user)?;
                if !sessions.iter().any(|s| s.id == id) {
                    return Err(ServiceError::NotFound(format!("user {user} has no session {id:?}")));
                }
                Ok(usize::from(refresh_db::revoke_family(c, &id, "admin", now)?))
            }
        }
    })
    .await
}

/// A user's API keys (never their secrets).
pub async fn user_api_keys(state: &AppState, caller: &Caller, user: i64) -> Result<Vec<ApiKey>, ServiceError> {
    caller.require(Area::Users, false)?;
    let rows = state
        .db
        .run(move |c| -> Result<_, ServiceError> {
            users::find(c, user)?.ok_or_else(|| not_found(user))?;
            Ok(crate::db::api_keys::of_user(c, user)?)
        })
        .await?;
    Ok(rows.into_iter().map(api_keys::key_dto).collect())
}

/// Creates an API key for a user, within `security.max_api_keys_per_user`; an account holding letters the
/// caller lacks is refused. The key is in the answer only (the audit trail records its listing form).
pub async fn create_api_key(
    state: &AppState,
    caller: &Caller,
    user: i64,
    input: api_keys::ApiKeyInput,
) -> Result<ApiKeyCreated, ServiceError> {
    caller.require(Area::Users, true)?;
    let (row, key) = api_keys::prepare(input, user, state.clock.now())?;
    let limit = state.config.security.max_api_keys_per_user;
    let change = Change::new("api_key.create", format!("user {user}"));
    let listed = write(state, caller, Area::Users, change, move |c, policy, _| {
        let owner = users::find(c, user)?.ok_or_else(|| not_found(user))?;
        policy.user(&owner.username)?;
        policy.account(c, user)?;
        api_keys::store(c, &row, limit)?;
        Ok(api_keys::key_dto(row))
    })
    .await?;
    Ok(ApiKeyCreated {
        id: listed.id,
        name: listed.name,
        prefix: listed.prefix,
        created_at: listed.created_at,
        expires_at: listed.expires_at,
        key,
    })
}

/// Revokes a user's API key and the sessions it started; an account holding letters the caller lacks is refused.
pub async fn revoke_api_key(state: &AppState, caller: &Caller, user: i64, key: String) -> Result<(), ServiceError> {
    let change = Change::new("api_key.revoke", format!("user {user} {key}"));
    write(state, caller, Area::Users, change, move |c, policy, now| {
        let owner = users::find(c, user)?.ok_or_else(|| not_found(user))?;
        policy.user(&owner.username)?;
        policy.account(c, user)?;
        api_keys::revoke(c, &owner, &key, now)
    })
    .await
}

/// Whether a user has a second factor, and how many recovery codes are left.
pub async fn user_mfa(state: &AppState, caller: &Caller, user: i64) -> Result<mfa::MfaStatus, ServiceError> {
    caller.require(Area::Users, false)?;
    state
        .db
        .run(move |c| -> Result<_, ServiceError> {
            users::find(c, user)?.ok_or_else(|| not_found(user))?;
            mfa::status_of(c, user)
        })
        .await
}

/// Removes a user's second factor and recovery codes (a user who lost their phone), and ends their sessions;
/// an account holding letters the caller lacks is refused. 404 when the user has none.
pub async fn reset_mfa(state: &AppState, caller: &Caller, user: i64) -> Result<(), ServiceError> {
    let change = Change::new("mfa.reset", format!("user {user}"));
    write(state, caller, Area::Users, change, move |c, policy, now| {
        let owner = users::find(c, user)?.ok_or_else(|| not_found(user))?;
        policy.user(&owner.username)?;
        policy.account(c, user)?;
        if !mfa::reset(c, user)? {
            return Err(ServiceError::NotFound(format!(
                "{} has no second factor",
                owner.username
            )));
        }
        refresh_db::revoke_user_families(c, user, "mfa_reset", now)?;
        Ok(())
    })
    .await
}
