//! Queries of sign-in through upstream OpenID providers (`services::oidc`): identities, authorization requests
//! in flight and verified logins waiting to be redeemed. A state and an exchange pair each work once: taking one
//! is a `DELETE` whose count says whether this request won it.

use diesel::prelude::*;

use super::schema::{oidc_exchanges, oidc_flows, oidc_identities};
use super::{DbConn, DbError};

/// An authorization request on its way through the provider.
#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oidc_flows)]
pub struct FlowRow {
    /// SHA-256 of the state.
    pub digest: Vec<u8>,
    pub provider: String,
    pub nonce: String,
    /// The PKCE code verifier (RFC 7636).
    pub verifier: String,
    /// Where the browser goes after (checked when the request started).
    pub next_url: String,
    /// `local` or `window`.
    pub xfer: String,
    pub expires_at: i64,
}

pub fn insert_flow(c: &mut DbConn, row: &FlowRow) -> Result<(), DbError> {
    diesel::insert_into(oidc_flows::table).values(row).execute(c)?;
    Ok(())
}

/// Takes (deletes) the live request of `provider` with this state digest; `None` when there is none or another
/// request took it first.
pub fn take_flow(c: &mut DbConn, digest: &[u8], provider: &str, now: i64) -> Result<Option<FlowRow>, DbError> {
    let row = oidc_flows::table
        .find(digest)
        .filter(oidc_flows::provider.eq(provider))
        .filter(oidc_flows::expires_at.gt(now))
        .select(FlowRow::as_select())
        .get_result(c)
        .optional()?;
    if row.is_none() || diesel::delete(oidc_flows::table.find(digest)).execute(c)? != 1 {
        return Ok(None);
    }
    Ok(row)
}

/// The user a provider's (issuer, subject) is linked to.
pub fn identity_user(c: &mut DbConn, provider: &str, issuer: &str, subject: &str) -> Result<Option<i64>, DbError> {
    Ok(oidc_identities::table
        .find((provider, issuer, subject))
        .select(oidc_identities::user_id)
        .get_result(c)
        .optional()?)
}

/// Whether `user` already has an identity at `provider` (a user has at most one per provider).
pub fn has_identity_at(c: &mut DbConn, provider: &str, user: i64) -> Result<bool, DbError> {
    let n: i64 = oidc_identities::table
        .filter(oidc_identities::provider.eq(provider))
        .filter(oidc_identities::user_id.eq(user))
        .count()
        .get_result(c)?;
    Ok(n > 0)
}

pub fn link_identity(
    c: &mut DbConn,
    (provider, issuer, subject): (&str, &str, &str),
    user: i64,
    now: i64,
) -> Result<(), DbError> {
    diesel::insert_into(oidc_identities::table)
        .values((
            oidc_identities::provider.eq(provider),
            oidc_identities::issuer.eq(issuer),
            oidc_identities::subject.eq(subject),
            oidc_identities::user_id.eq(user),
            oidc_identities::created_at.eq(now),
            oidc_identities::last_login_at.eq(now),
        ))
        .execute(c)?;
    Ok(())
}

pub fn touch_identity(
    c: &mut DbConn,
    (provider, issuer, subject): (&str, &str, &str),
    now: i64,
) -> Result<(), DbError> {
    diesel::update(oidc_identities::table.find((provider, issuer, subject)))
        .set(oidc_identities::last_login_at.eq(now))
        .execute(c)?;
    Ok(())
}

/// The providers a user signs in through, with when it last did: `(provider, last_login_at)`.
pub fn identities_of(c: &mut DbConn, user: i64) -> Result<Vec<(String, i64)>, DbError> {
    Ok(oidc_identities::table
        .filter(oidc_identities::user_id.eq(user))
        .select((oidc_identities::provider, oidc_identities::last_login_at))
        .order(oidc_identities::provider)
        .load(c)?)
}

pub fn insert_exchange(
    c: &mut DbConn,
    digest: &[u8],
    provider: &str,
    user: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    diesel::insert_into(oidc_exchanges::table)
        .values((
            oidc_exchanges::digest.eq(digest),
            oidc_exchanges::provider.eq(provider),
            oidc_exchanges::user_id.eq(user),
            oidc_exchanges::expires_at.eq(expires_at),
        ))
        .execute(c)?;
    Ok(())
}

/// Redeems a live exchange pair of `provider`: its user, once.
pub fn take_exchange(c: &mut DbConn, digest: &[u8], provider: &str, now: i64) -> Result<Option<i64>, DbError> {
    let user = oidc_exchanges::table
        .find(digest)
        .filter(oidc_exchanges::provider.eq(provider))
        .filter(oidc_exchanges::expires_at.gt(now))
        .select(oidc_exchanges::user_id)
        .get_result(c)
        .optional()?;
    if user.is_none() || diesel::delete(oidc_exchanges::table.find(digest)).execute(c)? != 1 {
        return Ok(None);
    }
    Ok(user)
}

/// Deletes up to `limit` requests and exchange pairs each that expired before `now`.
pub fn delete_expired(c: &mut DbConn, now: i64, limit: i64) -> Result<usize, DbError> {
    let flows: Vec<Vec<u8>> = oidc_flows::table
        .filter(oidc_flows::expires_at.le(now))
        .select(oidc_flows::digest)
        .limit(limit)
        .load(c)?;
    let exchanges: Vec<Vec<u8>> = oidc_exchanges::table
        .filter(oidc_exchanges::expires_at.le(now))
        .select(oidc_exchanges::digest)
        .limit(limit)
        .load(c)?;
    let mut n = 0;
    if !flows.is_empty() {
        n += diesel::delete(oidc_flows::table.filter(oidc_flows::digest.eq_any(&flows))).execute(c)?;
    }
    if !exchanges.is_empty() {
        n += diesel::delete(oidc_exchanges::table.filter(oidc_exchanges::digest.eq_any(&exchanges))).execute(c)?;
    }
    Ok(n)
}
