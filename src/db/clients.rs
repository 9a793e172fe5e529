//! OAuth 2.0 clients, the claim groups their own subject holds, and revoked access tokens.

use diesel::prelude::*;

use super::catalog::Page;
use super::schema::{claim_group_claims, claim_groups, claims, oauth_client_groups, oauth_clients, revoked_tokens};
use super::{DbConn, DbError};

/// A client as stored (with its secret digests: never leaves the services layer).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = oauth_clients)]
pub struct ClientRow {
    pub client_id: String,
    pub name: String,
    pub kind: String,
    pub grant_types: String,
    pub scopes: String,
    pub redirect_uris: String,
    pub audience: Option<String>,
    pub claim_filter: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    pub jwt_profile: Option<String>,
    pub introspect: i64,
    pub signing_alg: Option<String>,
    pub secret_digest: Option<Vec<u8>>,
    pub previous_digest: Option<Vec<u8>>,
    pub previous_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ClientRow {
    /// Its settings as they are, to change some of them.
    pub fn settings(&self, now: i64) -> ClientSettings {
        ClientSettings {
            name: self.name.clone(),
            grant_types: self.grant_types.clone(),
            scopes: self.scopes.clone(),
            redirect_uris: self.redirect_uris.clone(),
            audience: self.audience.clone(),
            claim_filter: self.claim_filter.clone(),
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            jwt_profile: self.jwt_profile.clone(),
            introspect: self.introspect,
            signing_alg: self.signing_alg.clone(),
            updated_at: now,
        }
    }
}

/// The settings an admin changes (everything but the id, the secrets and the creation time).
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = oauth_clients, treat_none_as_null = true)]
pub struct ClientSettings {
    pub name: String,
    pub grant_types: String,
    pub scopes: String,
    pub redirect_uris: String,
    pub audience: Option<String>,
    pub claim_filter: Option<String>,
    pub access_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    pub jwt_profile: Option<String>,
    pub introspect: i64,
    pub signing_alg: Option<String>,
    pub updated_at: i64,
}

pub fn insert(conn: &mut DbConn, row: &ClientRow, groups: &[i64]) -> Result<(), DbError> {
    diesel::insert_into(oauth_clients::table).values(row).execute(conn)?;
    set_groups(conn, &row.client_id, groups)
}

pub fn find(conn: &mut DbConn, client_id: &str) -> Result<Option<ClientRow>, DbError> {
    Ok(oauth_clients::table
        .find(client_id)
        .select(ClientRow::as_select())
        .get_result(conn)
        .optional()?)
}

pub fn list(conn: &mut DbConn, p: Page) -> Result<Vec<ClientRow>, DbError> {
    Ok(oauth_clients::table
        .order((oauth_clients::created_at, oauth_clients::client_id))
        .offset(p.offset)
        .limit(p.limit)
        .select(ClientRow::as_select())
        .load(conn)?)
}

pub fn count(conn: &mut DbConn) -> Result<i64, DbError> {
    Ok(oauth_clients::table.count().get_result(conn)?)
}

/// Replaces a client's settings; false when there is no such client.
pub fn update(conn: &mut DbConn, client_id: &str, settings: &ClientSettings) -> Result<bool, DbError> {
    let n = diesel::update(oauth_clients::table.find(client_id))
        .set(settings)
        .execute(conn)?;
    Ok(n == 1)
}

pub fn delete(conn: &mut DbConn, client_id: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(oauth_clients::table.find(client_id)).execute(conn)? == 1)
}

/// Installs a new secret; the current one stays valid until `previous_until`. False when there is no such client.
pub fn rotate_secret(
    conn: &mut DbConn,
    client_id: &str,
    digest: &[u8],
    previous_until: i64,
    now: i64,
) -> Result<bool, DbError> {
    // MySQL assigns left to right: the old digest is copied before it is replaced.
    let n = diesel::update(oauth_clients::table.find(client_id))
        .set((
            oauth_clients::previous_digest.eq(oauth_clients::secret_digest),
            oauth_clients::secret_digest.eq(digest),
            oauth_clients::previous_until.eq(previous_until),
            oauth_clients::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Sets the secret (a dbinit file's), ending any rotation overlap.
pub fn set_secret(conn: &mut DbConn, client_id: &str, digest: Option<&[u8]>) -> Result<(), DbError> {
    diesel::update(oauth_clients::table.find(client_id))
        .set((
            oauth_clients::secret_digest.eq(digest),
            oauth_clients::previous_digest.eq(None::<Vec<u8>>),
            oauth_clients::previous_until.eq(None::<i64>),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_groups(conn: &mut DbConn, client_id: &str, groups: &[i64]) -> Result<(), DbError> {
    diesel::delete(oauth_client_groups::table.filter(oauth_client_groups::client_id.eq(client_id))).execute(conn)?;
    // One row at a time: MultiConnection has no portable batch insert.
    for g in groups {
        diesel::insert_into(oauth_client_groups::table)
            .values((
                oauth_client_groups::client_id.eq(client_id),
                oauth_client_groups::claim_group_id.eq(*g),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn groups_of(conn: &mut DbConn, client_id: &str) -> Result<Vec<i64>, DbError> {
    Ok(oauth_client_groups::table
        .filter(oauth_client_groups::client_id.eq(client_id))
        .select(oauth_client_groups::claim_group_id)
        .order(oauth_client_groups::claim_group_id)
        .load(conn)?)
}

/// Every (short_name, value) the client's own subject holds through its groups that admit the `client`
/// credential kind ([`crate::credential::admitted`]), ordered.
pub fn claims_of(conn: &mut DbConn, client_id: &str) -> Result<Vec<(String, String)>, DbError> {
    let rows: Vec<((String, String), Option<String>)> = oauth_client_groups::table
        .inner_join(claim_groups::table.on(claim_groups::id.eq(oauth_client_groups::claim_group_id)))
        .inner_join(
            claim_group_claims::table.on(claim_group_claims::claim_group_id.eq(oauth_client_groups::claim_group_id)),
        )
        .inner_join(claims::table.on(claims::id.eq(claim_group_claims::claim_id)))
        .filter(oauth_client_groups::client_id.eq(client_id))
        .select(((claims::short_name, claims::value), claim_groups::credentials))
        .order((claims::short_name.asc(), claims::value.asc()))
        .load(conn)?;
    let client = crate::credential::Login::new(crate::credential::Kind::Client, false);
    Ok(crate::credential::admitted(rows, Some(client)))
}

/// The scopes of every client, space-separated lists (for `scopes_supported`).
pub fn all_scopes(conn: &mut DbConn) -> Result<Vec<String>, DbError> {
    Ok(oauth_clients::table.select(oauth_clients::scopes).load(conn)?)
}

/// Records an access token as revoked until it expires (a second revocation changes nothing).
pub fn revoke_jti(conn: &mut DbConn, jti: &str, expires_at: i64) -> Result<(), DbError> {
    let known = revoked_tokens::table
        .find(jti)
        .select(revoked_tokens::jti)
        .get_result::<String>(conn)
        .optional()?;
    if known.is_none() {
        diesel::insert_into(revoked_tokens::table)
            .values((revoked_tokens::jti.eq(jti), revoked_tokens::expires_at.eq(expires_at)))
            .execute(conn)?;
    }
    Ok(())
}

pub fn is_revoked(conn: &mut DbConn, jti: &str) -> Result<bool, DbError> {
    Ok(revoked_tokens::table
        .find(jti)
        .select(revoked_tokens::jti)
        .get_result::<String>(conn)
        .optional()?
        .is_some())
}

/// Deletes up to `batch` revocations of tokens expired before `before`; how many went.
pub fn sweep_revoked(conn: &mut DbConn, before: i64, batch: i64) -> Result<usize, DbError> {
    let expired: Vec<String> = revoked_tokens::table
        .filter(revoked_tokens::expires_at.lt(before))
        .select(revoked_tokens::jti)
        .limit(batch)
        .load(conn)?;
    if expired.is_empty() {
        return Ok(0);
    }
    Ok(diesel::delete(revoked_tokens::table.filter(revoked_tokens::jti.eq_any(&expired))).execute(conn)?)
}

/// The OAuth client of a session and the scope it was granted; both `None` for a Stoke session.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = super::schema::refresh_families)]
pub struct Binding {
    pub client_id: Option<String>,
    pub scope: Option<String>,
}

/// The binding of a session; `None` when there is no such session.
pub fn family_binding(conn: &mut DbConn, family: &str) -> Result<Option<Binding>, DbError> {
    use super::schema::refresh_families as f;
    Ok(f::table
        .find(family)
        .select(Binding::as_select())
        .get_result(conn)
        .optional()?)
}
