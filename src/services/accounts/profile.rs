//! The caller's own account: profile, email change (applied once the new address confirms), logout.

use serde::{Deserialize, Serialize};

use super::{ServiceError, check_current_password, check_email, check_text, human, record};
use crate::api_types::rfc3339;
use crate::db::accounts::{self as accounts_db, TokenKind};
use crate::db::refresh as refresh_db;
use crate::db::users::{self, UserRow};
use crate::services::AppState;
use crate::services::mail;
use crate::services::tokens;

/// The caller's account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Profile {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub fname: String,
    pub lname: String,
    /// `LOCAL`, or `LDAP` for a directory user.
    pub source: String,
    /// RFC 3339.
    pub created_at: String,
    /// An address asked for and not confirmed yet; the account keeps `email` until then.
    pub pending_email: Option<String>,
    /// The `sub` of the anonymous token the account registered with, if any.
    pub anonymous_id: Option<String>,
}

/// `PATCH /api/me`: the fields a user may change themselves. The username is fixed (tokens and other
/// services refer to it); the email changes through `POST /api/me/email`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    pub fname: Option<String>,
    pub lname: Option<String>,
}

fn profile_of(u: UserRow, pending_email: Option<String>, anonymous_id: Option<String>) -> Profile {
    Profile {
        id: u.id,
        username: u.username,
        email: u.email.unwrap_or_default(),
        fname: u.fname,
        lname: u.lname,
        source: u.source,
        created_at: rfc3339(u.created_at),
        pending_email,
        anonymous_id,
    }
}

pub async fn profile(state: &AppState, user_id: i64) -> Result<Profile, ServiceError> {
    let now = state.clock.now();
    state
        .db
        .run(move |c| -> Result<Profile, ServiceError> {
            let user = users::find(c, user_id)?.ok_or(ServiceError::Unauthenticated)?;
            let pending = accounts_db::pending_email(c, user_id, now)?;
            let anonymous = accounts_db::anonymous_of(c, user_id)?;
            Ok(profile_of(user, pending, anonymous))
        })
        .await
}

pub async fn update_profile(state: &AppState, user_id: i64, input: ProfileUpdate) -> Result<Profile, ServiceError> {
    if let Some(v) = &input.fname {
        check_text("fname", v, false)?;
    }
    if let Some(v) = &input.lname {
        check_text("lname", v, false)?;
    }
    let now = state.clock.now();
    state
        .db
        .write(move |c| -> Result<Profile, ServiceError> {
            let mut user = users::find(c, user_id)?.ok_or(ServiceError::Unauthenticated)?;
            if let Some(v) = input.fname {
                user.fname = v;
            }
            if let Some(v) = input.lname {
                user.lname = v;
            }
            users::update_profile(c, &user, now)?;
            record(
                c,
                now,
                &user.username,
                "account.profile_updated",
                &user.id.to_string(),
                "",
            )?;
            let pending = accounts_db::pending_email(c, user_id, now)?;
            let anonymous = accounts_db::anonymous_of(c, user_id)?;
            Ok(profile_of(user, pending, anonymous))
        })
        .await
}

/// Asks to move the caller's account to `email`, after checking the password: a confirmation link goes to
/// the new address, and the account keeps its old address until the link is used. An address that has an
/// account already gets a notice instead, and the caller the same answer (it reveals nothing).
pub async fn change_email(state: &AppState, user_id: i64, email: String, password: String) -> Result<(), ServiceError> {
    check_email(&email)?;
    if !state.mail.enabled() {
        return Err(ServiceError::forbidden("email_disabled", "email is not configured"));
    }
    let user = state
        .db
        .run(move |c| users::find(c, user_id))
        .await?
        .ok_or(ServiceError::Unauthenticated)?;
    if user.password_hash.is_none() {
        return Err(ServiceError::forbidden(
            "not_local",
            "this account's address is kept by its directory",
        ));
    }
    if user.email.as_deref() == Some(email.as_str()) {
        return Err(ServiceError::invalid(
            "same_email",
            "that is the account's address already",
        ));
    }
    check_current_password(state, &user, password, "the password does not match").await?;
    let now = state.clock.now();
    let duration = state.config.email.confirm_link_duration.as_secs();
    let (token, hash) = super::new_link_token();
    let link = state.mail.confirm_link(&token);
    let message = state.mail.render(
        "confirm_email_change",
        &[
            ("username", &user.username),
            ("link", &link),
            ("expires_in", &human(duration)),
        ],
    );
    let notice = state.mail.render("already_registered", &[("username", "")]);
    state
        .db
        .write(move |c| -> Result<(), ServiceError> {
            if accounts_db::user_by_email(c, &email)?.is_some() {
                mail::queue(c, &email, &notice, now)?;
                record(
                    c,
                    now,
                    &user.username,
                    "account.email_change_to_taken",
                    &user.id.to_string(),
                    "",
                )?;
                return Ok(());
            }
            // Only the newest request can confirm.
            accounts_db::supersede(c, user.id, TokenKind::EmailChange, now)?;
            accounts_db::insert_token(
                c,
                hash,
                TokenKind::EmailChange,
                Some(user.id),
                email.clone(),
                now,
                duration as i64,
            )?;
            mail::queue(c, &email, &message, now)?;
            record(
                c,
                now,
                &user.username,
                "account.email_change_requested",
                &user.id.to_string(),
                &email,
            )?;
            Ok(())
        })
        .await?;
    state.mail.wake.notify_one();
    Ok(())
}

/// Ends the session (refresh family) of `refresh`, or with `all` every session of its user. An unknown or
/// already revoked token is not an error: logging out is idempotent and tells nothing.
pub async fn logout(state: &AppState, refresh: String, all: bool) -> Result<(), ServiceError> {
    if !tokens::plausible_refresh_token(&refresh) {
        return Ok(());
    }
    let now = state.clock.now();
    state
        .db
        .write(move |c| -> Result<(), ServiceError> {
            let Some(family) = crate::services::auth::family_of_token(c, &refresh)? else {
                return Ok(());
            };
            let revoked = if all {
                refresh_db::revoke_user_families(c, family.user_id, "logout", now)?
            } else {
                usize::from(refresh_db::revoke_family(c, &family.id, "logout", now)?)
            };
            if revoked > 0 {
                let actor = family.user_id.to_string();
                let target = if all { "all" } else { family.id.as_str() };
                record(c, now, &actor, "account.logout", target, "")?;
            }
            Ok(())
        })
        .await
}
