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
    pub detail: String,
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
