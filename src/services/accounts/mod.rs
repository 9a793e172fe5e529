//! Self-service accounts (TokTok's lifecycle, DESIGN 4.3): registration with optional email confirmation,
//! password reset and change, profile and email change, logout, anonymous tokens.
//!
//! Link tokens are 256 random bits, stored only as SHA-256 (base64url), used once (the use and its effect share one
//! transaction) and expire. Every message is queued in the outbox in the transaction of its change; links come
//! from `email.public_url` only. HTTP-agnostic: routes identify the caller and map [`ServiceError`].

pub mod forms;
mod password;
mod profile;
mod register;

pub use forms::{FormKey, FormKeyError};
pub use password::{change_password, forgot_password, reset_password};
pub use profile::{Profile, ProfileUpdate, change_email, logout, profile, update_profile};
pub use register::{Confirmed, RegisterInput, Registered, anonymous, confirm, is_anonymous, register};

use crate::crypto::password::Verdict;
use crate::db::users::UserRow;
use crate::db::{DbError, audit};
use crate::services::AppState;
pub use crate::services::ServiceError;
use crate::services::throttle::{Settle, ThrottleError};

/// A new link token (256 random bits, base64url) and the digest it is stored under.
fn new_link_token() -> (String, String) {
    use base64::Engine as _;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let digest = link_digest(&token);
    (token, digest)
}

/// What a link token is stored under: its SHA-256 in base64url (43 characters; 64-character hex before
/// migration `2026-12-02-000012_link_digests_base64url`, which converted the rows it found).
fn link_digest(token: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The user a verified token stands for: its `sub` (the user id), or with a fixed `tokens.subject` (or no `sub`
/// at all, as in tokens Stoke signed with its default empty subject) the user named by its
/// `tokens.user_info.username` claim; `None` when there is none.
pub async fn user_of(
    state: &AppState,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<Option<i64>, DbError> {
    let claim = |k: &str| claims.get(k).and_then(serde_json::Value::as_str).map(str::to_string);
    if state.tokens.subject.is_empty()
        && let Some(sub) = claim("sub")
    {
        return Ok(sub.parse::<i64>().ok());
    }
    // A configured subject, or a token without `sub` (Stoke's, signed by an imported key): by username.
    let key = &state.tokens.user_info.username;
    let Some(username) = (!key.is_empty()).then(|| claim(key)).flatten() else {
        return Ok(None);
    };
    let user = state
        .db
        .run(move |c| crate::db::users::find_by_username(c, &username))
        .await?;
    Ok(user.map(|u| u.id))
}

/// Checks the caller's current password (before a password or email change) as a login of its name would: a
/// name that waits or is locked is refused before any hash, a wrong password counts against it, a right one
/// clears its failures. So a stolen access token is no faster a way to guess the password than the login form.
async fn check_current_password(
    state: &AppState,
    user: &UserRow,
    password: String,
    wrong: &'static str,
) -> Result<(), ServiceError> {
    let throttle = &state.throttle;
    let attempt = match throttle
        .reserve_login(&state.db, &user.username, None, state.clock.now())
        .await
    {
        Ok(attempt) => attempt,
        Err(ThrottleError::Limited(l)) => {
            state.metrics.throttled.add("login");
            return Err(ServiceError::Limited(l));
        }
        Err(ThrottleError::Db(e)) => return Err(e.into()),
    };
    let verdict = if state.passwords.too_long(&password) {
        Ok(Verdict::Wrong)
    } else {
        let stored = (user.password_hash.clone(), user.password_salt.clone());
        state.passwords.verify(password, Some(stored)).await
    };
    let outcome = match &verdict {
        Ok(Verdict::Wrong) => Settle::Failed,
        Ok(_) => Settle::Succeeded,
        Err(_) => Settle::Void,
    };
    if let Err(e) = throttle.settle(&state.db, attempt, outcome, state.clock.now()).await {
        tracing::warn!(error = %e, "password check not settled");
    }
    let verdict = verdict?;
    match verdict {
        Verdict::Wrong => Err(ServiceError::invalid("wrong_password", wrong)),
        _ => Ok(()),
    }
}

/// An email address Tessera will write into a message header: one `@` with something on each side, a dot in
/// the domain, at most 255 characters, and no whitespace, control characters (CR/LF would inject headers) or
/// address syntax (`<>()[],;:"\`).
pub fn check_email(email: &str) -> Result<(), ServiceError> {
    let bad = |why: &str| {
        Err(ServiceError::invalid(
            "invalid_email",
            format!("the email address {why}"),
        ))
    };
    if email.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return bad("must not contain whitespace or control characters");
    }
    if email.chars().count() > 255 {
        return bad("is longer than 255 characters");
    }
    if email.chars().any(|c| "<>()[],;:\"\\".contains(c)) {
        return bad("must not contain <>()[],;:\"\\");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.contains('@') && domain.contains('.') && !domain.starts_with('.') =>
        {
            if domain.ends_with('.') {
                bad("has no valid domain")
            } else if email.parse::<lettre::Address>().is_err() {
                // What the sender could not put into a message is refused now, not after 20 failed sends.
                bad("is not an address")
            } else {
                Ok(())
            }
        }
        Some((_, domain)) if domain.contains('@') => bad("must contain exactly one @"),
        _ => bad("is not an address"),
    }
}

/// A name-like field: at most 255 characters, no control characters; `required` also refuses blank.
pub fn check_text(field: &str, value: &str, required: bool) -> Result<(), ServiceError> {
    if required && value.trim().is_empty() {
        return Err(ServiceError::invalid(
            "invalid_field",
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > 255 {
        return Err(ServiceError::invalid(
            "invalid_field",
            format!("{field} is longer than 255 characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "invalid_field",
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

/// The password policy of `security`: not longer than `max_password_bytes`, at least `min_password_length`
/// characters.
pub fn check_password(state: &AppState, password: &str) -> Result<(), ServiceError> {
    if state.passwords.too_long(password) {
        return Err(ServiceError::invalid("password_too_long", "the password is too long"));
    }
    let min = state.config.security.min_password_length;
    if password.chars().count() < min {
        return Err(ServiceError::invalid(
            "weak_password",
            format!("the password needs at least {min} characters"),
        ));
    }
    Ok(())
}

/// Whether `token` has the shape of a link token (43 base64url characters), before any database work.
fn plausible_link_token(token: &str) -> bool {
    crate::services::tokens::plausible_refresh_token(token)
}

/// "30 minutes", "24 hours": a lifetime as the messages say it.
fn human(secs: u64) -> String {
    let (n, unit) = match secs {
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Records an account event; failure to audit fails the change (it is in the same transaction).
fn record(
    c: &mut crate::db::DbConn,
    now: i64,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> Result<(), DbError> {
    audit::record(c, now, actor, action, target, detail)
}

/// A link token that is unknown, used or expired: one answer for all three.
fn invalid_token() -> ServiceError {
    ServiceError::invalid("invalid_token", "the link is invalid, used or expired")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rules() {
        for ok in ["a@b.co", "first.last+tag@mail.example.org"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@b.co\r\nBcc: x@y.z",
            "a@b.co\n",
            "a@b@c.co",
            "a b@c.co",
            "<a@b.co>",
            "a@.co",
            "a@b.",
        ] {
            let code = match check_email(bad) {
                Err(ServiceError::Invalid { code, .. }) => code,
                _ => "",
            };
            assert_eq!(code, "invalid_email", "{bad:?}");
        }
    }

    #[test]
    fn lifetimes_read_naturally() {
        assert_eq!(human(1800), "30 minutes");
        assert_eq!(human(86400), "24 hours");
        assert_eq!(human(3600), "1 hour");
        assert_eq!(human(90), "90 seconds");
    }
}
