//! Forgotten passwords (a reset link by email), resets, and changes by a logged-in user. A reset or a change
//! revokes every session (refresh family) of the user and every reset link still unused.

use super::{
    ServiceError, check_current_password, check_email, check_password, human, invalid_token, plausible_link_token,
    record,
};
use crate::db::accounts::{self as accounts_db, TokenKind};
use crate::db::refresh as refresh_db;
use crate::db::users;
use crate::services::AppState;
use crate::services::mail;

/// Sends a reset link to `email` if it belongs to a user with a local password; otherwise sends nothing. The
/// caller answers the same either way, and both paths do one read and one small write transaction (an audit
/// row), so neither the answer nor its timing tells whether the address has an account.
pub async fn forgot_password(state: &AppState, email: String) -> Result<(), ServiceError> {
    check_email(&email)?;
    if !state.mail.enabled() {
        return Err(ServiceError::forbidden("email_disabled", "email is not configured"));
    }
    let lookup = email.clone();
    let user = state
        .db
        .run(move |c| accounts_db::user_by_email(c, &lookup))
        .await?
        .filter(|u| u.password_hash.is_some());
    let now = state.clock.now();
    let duration = state.config.email.reset_link_duration.as_secs();
    // Prepared for both paths alike.
    let (token, hash) = super::new_link_token();
    let link = state.mail.reset_link(&token);
    let username = user.as_ref().map(|u| u.username.clone()).unwrap_or_default();
    let message = state.mail.render(
        "password_reset",
        &[
            ("username", &username),
            ("link", &link),
            ("expires_in", &human(duration)),
        ],
    );
    let queued = user.is_some();
    state
        .db
        .write(move |c| -> Result<(), ServiceError> {
            let Some(user) = user else {
                // The same statements as below where they cost alike (none of them matches a row).
                accounts_db::supersede(c, 0, TokenKind::Reset, now)?;
                record(c, now, "(unknown address)", "password.reset_requested", "", "")?;
                return Ok(());
            };
            // Only the newest link works.
            accounts_db::supersede(c, user.id, TokenKind::Reset, now)?;
            accounts_db::insert_token(
                c,
                hash,
                TokenKind::Reset,
                Some(user.id),
                String::new(),
                now,
                duration as i64,
            )?;
            mail::queue(c, &email, &message, now)?;
            record(
                c,
                now,
                &user.username,
                "password.reset_requested",
                &user.id.to_string(),
                "",
            )?;
            Ok(())
        })
        .await?;
    if queued {
        state.mail.wake.notify_one();
    }
    Ok(())
}

/// Sets a new password with a reset link: the link is used up, every other reset link of the user too, and
/// every session of the user is revoked.
pub async fn reset_password(state: &AppState, token: String, password: String) -> Result<(), ServiceError> {
    if !plausible_link_token(&token) {
        return Err(invalid_token());
    }
    check_password(state, &password)?;
    let hash = super::link_digest(&token);
    let (lookup, now) = (hash.clone(), state.clock.now());
    // Refuse a dead link before spending a hash on it; the write below checks again.
    state
        .db
        .run(move |c| accounts_db::live_token(c, &lookup, &[TokenKind::Reset], now))
        .await?
        .ok_or_else(invalid_token)?;
    let phc = state.passwords.hash(password).await?;
    let now = state.clock.now();
    let names = state
        .db
        .write(move |c| -> Result<Vec<String>, ServiceError> {
            let row = accounts_db::take_token(c, &hash, &[TokenKind::Reset], now)?.ok_or_else(invalid_token)?;
            let user_id = row.user_id.ok_or_else(invalid_token)?;
            let user = users::find(c, user_id)?.ok_or_else(invalid_token)?;
            replace_password(c, user.id, &user.username, &phc, "password_reset", now)?;
            Ok(user.email.into_iter().chain([user.username]).collect::<Vec<_>>())
        })
        .await?;
    // The owner proved themselves by email: a guessing lock on their names must not outlive that.
    if let Err(e) = state.throttle.clear_login_failures(&state.db, names).await {
        tracing::warn!(error = %e, "login failures not cleared after a reset");
    }
    Ok(())
}

/// Changes the caller's password after checking the current one. Every session and reset link of the user
/// ends (the client logs in again with the new password).
pub async fn change_password(
    state: &AppState,
    user_id: i64,
    old_password: String,
    new_password: String,
) -> Result<(), ServiceError> {
    check_password(state, &new_password)?;
    let user = state
        .db
        .run(move |c| users::find(c, user_id))
        .await?
        .ok_or(ServiceError::Unauthenticated)?;
    if user.password_hash.is_none() {
        return Err(ServiceError::forbidden(
            "not_local",
            "this account's password is kept by its directory",
        ));
    }
    check_current_password(state, &user, old_password, "the current password does not match").await?;
    let phc = state.passwords.hash(new_password).await?;
    let now = state.clock.now();
    state
        .db
        .write(move |c| replace_password(c, user.id, &user.username, &phc, "password_changed", now))
        .await
}

/// Stores a new password hash and ends every session and reset link of the user, audited as a reset
/// (`why: password_reset`) or a change (`password_changed`).
fn replace_password(
    c: &mut crate::db::DbConn,
    user_id: i64,
    username: &str,
    phc: &str,
    why: &str,
    now: i64,
) -> Result<(), ServiceError> {
    users::set_password(c, user_id, phc, now)?;
    accounts_db::supersede(c, user_id, TokenKind::Reset, now)?;
    let revoked = refresh_db::revoke_user_families(c, user_id, why, now)?;
    let action = if why == "password_reset" {
        "password.reset"
    } else {
        "password.changed"
    };
    record(
        c,
        now,
        username,
        action,
        &user_id.to_string(),
        &format!("{revoked} sessions revoked"),
    )?;
    Ok(())
}
