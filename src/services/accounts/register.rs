//! Registration (open, or pending until the address confirms), confirmation links, anonymous tokens.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{
    ServiceError, check_email, check_password, check_text, human, invalid_token, plausible_link_token, record,
};
use crate::db::DbConn;
use crate::db::accounts::{self as accounts_db, AccountTokenRow, TokenKind};
use crate::db::users::{self, UserRow};
use crate::services::AppState;
use crate::services::mail;
use crate::services::tokens;

/// What `POST /api/register` takes.
// No `Debug`: it holds a password.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterInput {
    /// 1–64 characters: ASCII letters, digits, `.`, `_` and `-`, starting with a letter or a digit (no `@`, so
    /// nobody can register someone else's email address as a username; no spaces, markup or line breaks, since
    /// the name appears in emails). Otherwise 400 `invalid_username`.
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", min_length = 1, max_length = 64)]
    pub username: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub fname: String,
    #[serde(default)]
    pub lname: String,
    /// A token from `POST /api/anonymous` (or send it as `Authorization: Bearer`); the new account is linked
    /// to it. Required when `registration.require_anonymous_token` is set.
    #[serde(default)]
    pub anonymous_token: Option<String>,
}

/// How a registration ended.
pub enum Registered {
    /// `registration.mode: open`: the account exists and can log in.
    Created(UserRow),
    /// `registration.mode: confirm`: a link went to the address (or, when the address has an account already,
    /// a notice did); the account exists once the link is used.
    ConfirmationSent,
}

/// What a pending registration keeps until its address confirms.
// No `Debug`: it holds a password hash.
#[derive(Serialize, Deserialize)]
struct Pending {
    username: String,
    email: String,
    fname: String,
    lname: String,
    password_hash: String,
    anonymous_id: Option<String>,
}

/// Registers an account, as `registration.mode` says. `bearer` is the request's bearer token, taken as the
/// anonymous token when the body has none and `registration.anonymous_tokens` is on.
pub async fn register(
    state: &AppState,
    input: RegisterInput,
    bearer: Option<String>,
) -> Result<Registered, ServiceError> {
    let reg = &state.config.registration;
    let confirm = match reg.mode.as_str() {
        "open" => false,
        "confirm" => true,
        _ => return Err(ServiceError::forbidden("registration_closed", "registration is closed")),
    };
    // The bearer counts only where anonymous tokens exist, so a client that sends a user's token along with
    // a registration is not refused for it.
    let bearer = bearer.filter(|_| reg.anonymous_tokens);
    let anonymous_id = match input.anonymous_token.clone().or(bearer) {
        Some(token) => Some(anonymous_subject(state, &token)?),
        None if reg.require_anonymous_token => {
            return Err(ServiceError::forbidden(
                "anonymous_token_required",
                "registration needs a token from /api/anonymous",
            ));
        }
        None => None,
    };
    check_username(&input.username)?;
    check_email(&input.email)?;
    check_text("fname", &input.fname, false)?;
    check_text("lname", &input.lname, false)?;
    check_password(state, &input.password)?;
    if confirm && !state.mail.enabled() {
        return Err(ServiceError::forbidden("email_disabled", "email is not configured"));
    }
    let (username, anon) = (input.username.clone(), anonymous_id.clone());
    state.db.run(move |c| precheck(c, &username, anon.as_deref())).await?;
    let password_hash = state.passwords.hash(input.password).await?;
    let now = state.clock.now();
    let pending = Pending {
        username: input.username,
        email: input.email,
        fname: input.fname,
        lname: input.lname,
        password_hash,
        anonymous_id,
    };
    if !confirm {
        let user = state.db.write(move |c| create_user(c, &pending, now)).await?;
        return Ok(Registered::Created(user));
    }
    let (token, hash) = super::new_link_token();
    let duration = state.config.email.confirm_link_duration.as_secs();
    let link = state.mail.confirm_link(&token);
    let message = state.mail.render(
        "confirm_registration",
        &[
            ("username", &pending.username),
            ("link", &link),
            ("expires_in", &human(duration)),
        ],
    );
    let notice = state
        .mail
        .render("already_registered", &[("username", &pending.username)]);
    state
        .db
        .write(move |c| -> Result<(), ServiceError> {
            if accounts_db::user_by_email(c, &pending.email)?.is_some() {
                // The same answer as for a new address; the owner learns of the attempt, nobody else does.
                mail::queue(c, &pending.email, &notice, now)?;
                record(c, now, &pending.username, "account.register_existing_email", "", "")?;
                return Ok(());
            }
            let payload = serde_json::to_string(&pending)?;
            accounts_db::insert_token(c, hash, TokenKind::Register, None, payload, now, duration as i64)?;
            mail::queue(c, &pending.email, &message, now)?;
            record(
                c,
                now,
                &pending.username,
                "account.registration_requested",
                &pending.email,
                "",
            )?;
            Ok(())
        })
        .await?;
    state.mail.wake.notify_one();
    Ok(Registered::ConfirmationSent)
}

/// The longest self-registered username.
pub const MAX_USERNAME: usize = 64;

/// The names `POST /api/register` accepts: 1 to [`MAX_USERNAME`] ASCII letters, digits, `.`, `_` and `-`,
/// starting with a letter or a digit. Self-chosen names go into emails and admin screens, so nothing that
/// could pass for markup, a header, another person's address or another script's look-alike letter is
/// allowed. Admin-created and directory users are not held to this.
pub fn check_username(name: &str) -> Result<(), ServiceError> {
    let ok = (1..=MAX_USERNAME).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b));
    if ok {
        return Ok(());
    }
    Err(ServiceError::invalid(
        "invalid_username",
        format!(
            "username must be 1 to {MAX_USERNAME} characters of ASCII letters, digits, '.', '_' and '-', \
             starting with a letter or a digit"
        ),
    ))
}

/// Refuses a taken username or a used anonymous token before any hashing.
fn precheck(c: &mut DbConn, username: &str, anonymous_id: Option<&str>) -> Result<(), ServiceError> {
    if users::find_by_username(c, username)?.is_some() {
        return Err(ServiceError::conflict("username_taken", "that username is taken"));
    }
    if let Some(id) = anonymous_id
        && accounts_db::anonymous_linked(c, id)?
    {
        return Err(ServiceError::conflict(
            "anonymous_token_used",
            "that anonymous token has registered an account already",
        ));
    }
    Ok(())
}

/// Inserts the user of a registration (and its anonymous link), in the caller's transaction.
fn create_user(c: &mut DbConn, p: &Pending, now: i64) -> Result<UserRow, ServiceError> {
    precheck(c, &p.username, p.anonymous_id.as_deref())?;
    if accounts_db::user_by_email(c, &p.email)?.is_some() {
        return Err(ServiceError::conflict(
            "email_taken",
            "that email address has an account",
        ));
    }
    let user = UserRow::new_local(
        &p.username,
        Some(&p.email),
        (&p.fname, &p.lname),
        (Some(&p.password_hash), None),
        now,
    );
    match users::insert(c, &user) {
        Err(e) if e.is_unique_violation() => {
            return Err(ServiceError::conflict("conflict", "that username or email is taken"));
        }
        other => other?,
    }
    let detail = match &p.anonymous_id {
        Some(id) => {
            accounts_db::link_anonymous(c, id, user.id, now)?;
            format!("anonymous {id}")
        }
        None => String::new(),
    };
    record(
        c,
        now,
        &user.username,
        "account.registered",
        &user.id.to_string(),
        &detail,
    )?;
    Ok(user)
}

/// What a confirmation link did.
pub enum Confirmed {
    /// A pending registration became an account.
    Registered(UserRow),
    /// The user's address is now the confirmed one.
    EmailChanged(UserRow),
}

/// Uses a confirmation link (registration or new address). Invalid, used or expired: 400 `invalid_token`.
pub async fn confirm(state: &AppState, token: String) -> Result<Confirmed, ServiceError> {
    if !plausible_link_token(&token) {
        return Err(invalid_token());
    }
    let hash = super::link_digest(&token);
    let now = state.clock.now();
    state
        .db
        .write(move |c| {
            let kinds = [TokenKind::Register, TokenKind::EmailChange];
            let row = accounts_db::take_token(c, &hash, &kinds, now)?.ok_or_else(invalid_token)?;
            match TokenKind::parse(&row.kind) {
                Some(TokenKind::Register) => {
                    let pending: Pending = serde_json::from_str(&row.payload)?;
                    create_user(c, &pending, now).map(Confirmed::Registered)
                }
                _ => apply_email_change(c, &row, now).map(Confirmed::EmailChanged),
            }
        })
        .await
}

fn apply_email_change(c: &mut DbConn, row: &AccountTokenRow, now: i64) -> Result<UserRow, ServiceError> {
    let user_id = row.user_id.ok_or_else(invalid_token)?;
    let mut user = users::find(c, user_id)?.ok_or_else(invalid_token)?;
    let email = row.payload.clone();
    if accounts_db::user_by_email(c, &email)?.is_some_and(|other| other.id != user.id) {
        return Err(ServiceError::conflict(
            "email_taken",
            "that email address has an account",
        ));
    }
    let old = user.email.replace(email.clone()).unwrap_or_default();
    match users::update_profile(c, &user, now) {
        Err(e) if e.is_unique_violation() => {
            return Err(ServiceError::conflict(
                "email_taken",
                "that email address has an account",
            ));
        }
        other => other?,
    }
    accounts_db::supersede(c, user.id, TokenKind::EmailChange, now)?;
    record(
        c,
        now,
        &user.username,
        "account.email_changed",
        &user.id.to_string(),
        &format!("{old} -> {email}"),
    )?;
    Ok(user)
}

/// An anonymous token: short-lived, `sub` = `anon:<random>`, claim `anon: "true"`, plus
/// `registration.anonymous_claims`. Returns the token and its lifetime in seconds.
pub fn anonymous(state: &AppState) -> Result<(String, i64), ServiceError> {
    let reg = &state.config.registration;
    if !reg.anonymous_tokens {
        return Err(ServiceError::forbidden(
            "anonymous_disabled",
            "anonymous tokens are not enabled",
        ));
    }
    let now = state.clock.now();
    let lifetime = reg.anonymous_token_duration.as_secs().max(1) as i64;
    let s = &state.tokens;
    let mut claims: Map<String, Value> = reg
        .anonymous_claims
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    claims.insert("anon".into(), Value::String("true".into()));
    if !s.issuer.is_empty() {
        claims.insert("iss".into(), Value::String(s.issuer.clone()));
    }
    claims.insert(
        "sub".into(),
        Value::String(format!("anon:{:032x}", rand::random::<u128>())),
    );
    if !s.audience.is_empty() {
        claims.insert("aud".into(), Value::from(s.audience.clone()));
    }
    claims.insert("exp".into(), Value::from(now + lifetime));
    if s.include_iat {
        claims.insert("iat".into(), Value::from(now));
    }
    if s.include_nbf {
        claims.insert("nbf".into(), Value::from(now));
    }
    claims.insert("jti".into(), Value::String(format!("{:032x}", rand::random::<u128>())));
    let token = tokens::sign(&state.keys.current(), &claims, now)?;
    Ok((token, lifetime))
}

/// The `sub` of a valid, unexpired anonymous token of ours.
fn anonymous_subject(state: &AppState, token: &str) -> Result<String, ServiceError> {
    let invalid = || ServiceError::forbidden("invalid_anonymous_token", "the anonymous token is invalid or expired");
    let now = state.clock.now();
    let claims = tokens::verify(&state.keys.current(), &state.tokens, token, now, true).map_err(|_| invalid())?;
    claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| s.starts_with("anon:"))
        .map(str::to_string)
        .ok_or_else(invalid)
}

/// Whether these claims are an anonymous token's (routes refuse them where a user is needed).
pub fn is_anonymous(claims: &Map<String, Value>) -> bool {
    claims
        .get("sub")
        .and_then(Value::as_str)
        .is_some_and(|s| s.starts_with("anon:"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn usernames_are_a_small_ascii_set() {
        for ok in ["a", "Z9", "ann.lee", "ann_lee-2", "0day", &"x".repeat(64)] {
            assert!(super::check_username(ok).is_ok(), "{ok:?}");
        }
        for bad in [
            "",
            ".ann",
            "_ann",
            "-ann",
            "ann lee",
            " ann",
            "ann\r\nBcc: x",
            "a<b>",
            "ann@example.com",
            "jos\u{e9}",
            "\u{430}dmin",
            "ann\0",
            "a/b",
            &"x".repeat(65),
        ] {
            assert!(super::check_username(bad).is_err(), "{bad:?}");
        }
    }
}
