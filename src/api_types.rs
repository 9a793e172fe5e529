//! The JSON shapes of the admin API (Stoke's). Database rows never leave the services layer; these do.

use serde::{Deserialize, Serialize};

/// Format of `created_at`: RFC 3339, UTC, whole seconds.
pub fn rfc3339(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    pub fname: String,
    pub lname: String,
    pub source: String,
    pub email: String,
    pub username: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ClaimGroup {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// The credential kinds whose logins get this group's claims (`password`, `api_key`, `ldap`, `oidc`,
    /// `anonymous`, `client`), and `mfa` when only logins with a second factor get them; absent: every login
    /// (Stoke's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Claim {
    pub id: i64,
    pub name: String,
    pub short_name: String,
    pub value: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct GroupLink {
    pub id: i64,
    #[serde(rename = "type")]
    pub link_type: String,
    pub resource_spec: String,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ClaimInput {
    pub name: Option<String>,
    pub short_name: Option<String>,
    pub value: Option<String>,
    pub description: Option<String>,
    pub claim_groups: Option<Vec<i64>>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct GroupInput {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Limits the group to logins of these credential kinds; `null` lifts the limit, absent keeps it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub credentials: Option<Option<Vec<String>>>,
    pub users: Option<Vec<i64>>,
    pub claims: Option<Vec<i64>>,
    pub group_links: Option<Vec<i64>>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct LinkInput {
    #[serde(rename = "type")]
    pub link_type: Option<String>,
    pub resource_spec: Option<String>,
    pub claim_group: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct UserInput {
    pub fname: Option<String>,
    pub lname: Option<String>,
    pub source: Option<String>,
    pub email: Option<String>,
    pub username: Option<String>,
    pub claim_groups: Option<Vec<i64>>,
}

// No `Debug`: it holds a password.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
pub struct LocalUserCreate {
    pub fname: String,
    pub lname: String,
    pub username: String,
    pub email: String,
    pub password: String,
}

// No `Debug`: it holds passwords.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
pub struct LocalUserPassword {
    pub username: String,
    #[serde(rename = "newPassword")]
    pub new_password: String,
    #[serde(rename = "oldPassword", default)]
    pub old_password: Option<String>,
    #[serde(default)]
    pub force: bool,
}

/// `?page=1&itemsPerPage=30`.
#[derive(Debug, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Entries per page, 1 to 255 (default 30).
    #[serde(rename = "itemsPerPage")]
    #[param(rename = "itemsPerPage")]
    pub items_per_page: Option<i64>,
    /// Search (the lists of users, claim groups and claims): a case-insensitive substring of the username,
    /// email, first or last name of a user, or of a group's or claim's name; at most 255 characters.
    pub q: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Totals {
    pub users: i64,
    pub claims: i64,
    pub claim_groups: i64,
}

/// One session (refresh family) of a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Session {
    pub id: String,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
    pub refresh_count: i64,
    pub revoked_at: Option<String>,
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Message {
    pub message: String,
}

/// One audit trail entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    /// The target's name when the target is the id of a user, claim, claim group or group link that still
    /// exists (the username, the name, the link's resource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
    pub detail: String,
}

/// The claims a user's next login would put in its access token, and that token's size: what an operator
/// checks before a group change reaches the user. The token itself is never shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TokenPreview {
    /// The login it previews: `password`, `ldap` or `oidc` (by the user's source), with `mfa` when the user
    /// has a confirmed second factor.
    pub login: String,
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The signed token's length in bytes, with the current signing key (what a client's header carries).
    pub size: usize,
}

/// What the console's overview shows: the version and readiness for any admin; the signing key with the next
/// rotation, and failed logins in the last hour, for operators (stk s); the locks for user readers. A part the
/// caller may not see is absent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AdminStatus {
    pub version: String,
    /// What `/readyz` says: the database answers and a key signs.
    pub ready: bool,
    /// `sqlite`, `postgres` or `mysql`.
    pub database: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<KeyInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<String>,
    /// `login.failed` audit entries of the last hour, counted up to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_logins_last_hour: Option<usize>,
    /// Names and addresses the login throttle holds locked now, counted up to 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locks: Option<usize>,
}

/// `?actor=&action=&target=&since=&until=`: which audit entries a page shows (each absent one does not narrow).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Exactly this actor, ignoring case (a username, `tessera`, `import-stoke`, `OIDC:<provider>`, …).
    pub actor: Option<String>,
    /// Actions that start with this, ignoring case: `login.` for every login event, `user.delete` for one.
    pub action: Option<String>,
    /// Exactly this target, ignoring case (an id, a key id, a username).
    pub target: Option<String>,
    /// Entries recorded at or after this time: RFC 3339 (`2026-12-01T00:00:00Z`) or Unix seconds.
    pub since: Option<String>,
    /// Entries recorded before this time, likewise.
    pub until: Option<String>,
}

/// Public metadata of one signing key (private keys are never served).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub published_at: String,
    pub signs_from: String,
    pub expires_at: String,
    /// Whether this key signs new tokens now.
    pub signing: bool,
}

/// The key ring and its schedule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KeyRingInfo {
    pub keys: Vec<KeyInfo>,
    /// When the next key will be created (2 token lifetimes before the newest key expires).
    pub next_rotation: String,
    pub key_duration_seconds: i64,
    pub token_duration_seconds: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rotated {
    pub kid: String,
}

/// An OAuth 2.0 client, as the admin API shows it (never its secret, except once in [`ClientCreated`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OAuthClient {
    pub client_id: String,
    pub name: String,
    /// `confidential` or `public`.
    #[serde(rename = "type")]
    pub kind: String,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub redirect_uris: Vec<String>,
    pub audience: Option<String>,
    /// The short names its tokens may carry; absent: every claim.
    pub claim_filter: Option<Vec<String>>,
    /// The claim groups the client's own subject (`client:<client_id>`) holds in `client_credentials` tokens.
    pub claim_groups: Vec<i64>,
    /// Seconds; absent: `tokens.token_duration`.
    pub access_token_ttl: Option<i64>,
    /// Seconds; absent: `tokens.refresh_max_age`.
    pub refresh_token_ttl: Option<i64>,
    /// `rfc9068` for RFC 9068 access tokens (`typ: at+jwt`); absent: Tessera's usual tokens.
    pub jwt_profile: Option<String>,
    /// Whether it may call `/oauth/introspect`.
    pub introspect: bool,
    /// The JWS algorithm of its access tokens, one of `tokens.algorithms`; absent: `tokens.algorithm`.
    pub signing_alg: Option<String>,
    /// Until when the secret before the last rotation still works.
    pub previous_secret_valid_until: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A client with its secret: the answer of a creation or a rotation, the only time the secret is shown.
// No `Debug`: it holds a secret.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientCreated {
    #[serde(flatten)]
    pub client: OAuthClient,
    /// Absent for a public client.
    pub client_secret: Option<String>,
}

/// `POST /api/admin/clients` (every field but `name`, `type` and `grant_types` optional) and
/// `PATCH /api/admin/clients/{id}` (every field optional; `type` cannot change).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub redirect_uris: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub audience: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub claim_filter: Option<Option<Vec<String>>>,
    pub claim_groups: Option<Vec<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub access_token_ttl: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub refresh_token_ttl: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    pub jwt_profile: Option<Option<String>>,
    pub introspect: Option<bool>,
    /// One of `tokens.algorithms`; `null`: `tokens.algorithm`.
    #[serde(default, deserialize_with = "nullable")]
    pub signing_alg: Option<Option<String>>,
}

/// A field that may be absent (keep), `null` (clear) or a value (set).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
