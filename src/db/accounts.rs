//! Queries of self-service accounts: link tokens (stored as the base64url of their SHA-256, used once,
//! expiring) and the links between anonymous tokens and the accounts registered with them. Outbox queries live
//! in [`super::outbox`].

use diesel::prelude::*;

use super::schema::{account_tokens, anonymous_links};
use super::{DbConn, DbError};

/// What a link token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Confirms a pending registration; `payload` holds the registration.
    Register,
    /// Confirms a new email address of `user_id`; `payload` holds the address.
    EmailChange,
    /// Lets the holder set a new password for `user_id`.
    Reset,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Register => "register",
            TokenKind::EmailChange => "email_change",
            TokenKind::Reset => "reset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "register" => Some(TokenKind::Register),
            "email_change" => Some(TokenKind::EmailChange),
            "reset" => Some(TokenKind::Reset),
            _ => None,
        }
    }
}

// No `Debug`: a pending registration's payload holds a password hash.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = account_tokens)]
pub struct AccountTokenRow {
    pub token_hash: String,
    pub kind: String,
    pub user_id: Option<i64>,
    pub payload: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

/// Stores a new, unused link token (its SHA-256 `token_hash`) of `kind`, valid for `lifetime` seconds.
pub fn insert_token(
    c: &mut DbConn,
    token_hash: String,
    kind: TokenKind,
    user_id: Option<i64>,
    payload: String,
    now: i64,
    lifetime: i64,
) -> Result<(), DbError> {
    let row = AccountTokenRow {
        token_hash,
        kind: kind.as_str().into(),
        user_id,
        payload,
        created_at: now,
        expires_at: now + lifetime,
        used_at: None,
    };
    diesel::insert_into(account_tokens::table).values(&row).execute(c)?;
    Ok(())
}

/// The live (unused, unexpired) token with this hash, if it is one of `kinds`.
pub fn live_token(
    c: &mut DbConn,
    hash: &str,
    kinds: &[TokenKind],
    now: i64,
) -> Result<Option<AccountTokenRow>, DbError> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    Ok(account_tokens::table
        .find(hash)
        .filter(account_tokens::kind.eq_any(kinds))
        .filter(account_tokens::used_at.is_null())
        .filter(account_tokens::expires_at.gt(now))
        .select(AccountTokenRow::as_select())
        .get_result(c)
        .optional()?)
}

/// Uses a live token of one of `kinds`: marks it used, only if nobody did first. Call it inside the
/// transaction that applies the token's effect, so the effect happens exactly once.
pub fn take_token(
    c: &mut DbConn,
    hash: &str,
    kinds: &[TokenKind],
    now: i64,
) -> Result<Option<AccountTokenRow>, DbError> {
    let Some(row) = live_token(c, hash, kinds, now)? else {
        return Ok(None);
    };
    let n = diesel::update(
        account_tokens::table
            .find(hash)
            .filter(account_tokens::used_at.is_null()),
    )
    .set(account_tokens::used_at.eq(Some(now)))
    .execute(c)?;
    Ok((n == 1).then_some(row))
}

/// Marks every unused token of `kind` of a user used (an older reset link stops working when a newer one is
/// sent, and every reset link when the password changes). Returns how many.
pub fn supersede(c: &mut DbConn, user_id: i64, kind: TokenKind, now: i64) -> Result<usize, DbError> {
    Ok(diesel::update(
        account_tokens::table
            .filter(account_tokens::user_id.eq(user_id))
            .filter(account_tokens::kind.eq(kind.as_str()))
            .filter(account_tokens::used_at.is_null()),
    )
    .set(account_tokens::used_at.eq(Some(now)))
    .execute(c)?)
}

/// The address a user asked to change to and has not confirmed yet (the newest live request).
pub fn pending_email(c: &mut DbConn, user_id: i64, now: i64) -> Result<Option<String>, DbError> {
    Ok(account_tokens::table
        .filter(account_tokens::user_id.eq(user_id))
        .filter(account_tokens::kind.eq(TokenKind::EmailChange.as_str()))
        .filter(account_tokens::used_at.is_null())
        .filter(account_tokens::expires_at.gt(now))
        .order(account_tokens::created_at.desc())
        .select(account_tokens::payload)
        .first(c)
        .optional()?)
}

/// Up to `limit` link tokens nothing can use any more at `now`: used, or expired. (A pending registration's
/// holds a password hash, so it is not kept a moment longer than it must be.)
pub fn dead_tokens(c: &mut DbConn, now: i64, limit: i64) -> Result<Vec<String>, DbError> {
    Ok(account_tokens::table
        .filter(
            account_tokens::used_at
                .is_not_null()
                .or(account_tokens::expires_at.le(now)),
        )
        .select(account_tokens::token_hash)
        .limit(limit)
        .load(c)?)
}

/// Deletes the tokens of `hashes` that are still dead at `now` (see [`dead_tokens`]).
pub fn delete_dead_tokens(c: &mut DbConn, hashes: &[String], now: i64) -> Result<usize, DbError> {
    if hashes.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(
        account_tokens::table
            .filter(account_tokens::token_hash.eq_any(hashes))
            .filter(
                account_tokens::used_at
                    .is_not_null()
                    .or(account_tokens::expires_at.le(now)),
            ),
    )
    .execute(c)?)
}

/// Whether an anonymous token has registered an account already.
pub fn anonymous_linked(c: &mut DbConn, anonymous_id: &str) -> Result<bool, DbError> {
    Ok(anonymous_links::table.find(anonymous_id).count().get_result::<i64>(c)? > 0)
}

/// Records that `user_id` registered with the anonymous token `anonymous_id` (its `sub`). A second
/// registration with the same token is a unique violation.
pub fn link_anonymous(c: &mut DbConn, anonymous_id: &str, user_id: i64, now: i64) -> Result<(), DbError> {
    diesel::insert_into(anonymous_links::table)
        .values((
            anonymous_links::anonymous_id.eq(anonymous_id),
            anonymous_links::user_id.eq(user_id),
            anonymous_links::linked_at.eq(now),
        ))
        .execute(c)?;
    Ok(())
}

/// The anonymous token a user registered with, if any.
pub fn anonymous_of(c: &mut DbConn, user_id: i64) -> Result<Option<String>, DbError> {
    Ok(anonymous_links::table
        .filter(anonymous_links::user_id.eq(user_id))
        .select(anonymous_links::anonymous_id)
        .get_result(c)
        .optional()?)
}

/// The user with this email address, if any.
pub fn user_by_email(c: &mut DbConn, email: &str) -> Result<Option<super::users::UserRow>, DbError> {
    use super::schema::users;
    Ok(users::table
        .filter(users::email.eq(email))
        .select(super::users::UserRow::as_select())
        .get_result(c)
        .optional()?)
}

/// The stored private key (base64 PKCS#8) of encrypted forms, if one was made.
pub fn form_key(c: &mut DbConn, id: &str) -> Result<Option<String>, DbError> {
    use super::schema::form_keys;
    Ok(form_keys::table
        .find(id)
        .select(form_keys::private_key)
        .first(c)
        .optional()?)
}

/// Stores the key of encrypted forms; `false` when another replica stored one first.
pub fn insert_form_key(c: &mut DbConn, id: &str, private_key: &str, now: i64) -> Result<bool, DbError> {
    use super::schema::form_keys;
    let result = diesel::insert_into(form_keys::table)
        .values((
            form_keys::id.eq(id),
            form_keys::private_key.eq(private_key),
            form_keys::created_at.eq(now),
        ))
        .execute(c);
    match result.map_err(DbError::from) {
        Ok(_) => Ok(true),
        Err(e) if e.is_unique_violation() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Swaps the stored key of encrypted forms, if it is still `old` (another replica may have done it already).
pub fn replace_form_key(c: &mut DbConn, id: &str, old: &str, new: &str) -> Result<(), DbError> {
    use super::schema::form_keys;
    diesel::update(form_keys::table.filter(form_keys::id.eq(id).and(form_keys::private_key.eq(old))))
        .set(form_keys::private_key.eq(new))
        .execute(c)?;
    Ok(())
}

/// Whether a key of encrypted forms is stored encrypted.
pub fn form_key_encrypted(c: &mut DbConn) -> Result<bool, DbError> {
    use super::schema::form_keys;
    let n: i64 = form_keys::table
        .filter(form_keys::private_key.like("enc:%"))
        .count()
        .get_result(c)?;
    Ok(n > 0)
}
