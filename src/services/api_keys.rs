//! API keys (Keyosk's model): long-lived credentials a user owns, for scripts, CI jobs and devices.
//!
//! A key is `tsk_<id>_<secret>`: `tsk_` a prefix secret scanners can match, `<id>` 16 hex digits naming the
//! row (not secret; `tsk_<id>` is the `prefix` listings show), `<secret>` 256 random bits in base64url, shown
//! once at creation and stored only as its SHA-256. A key logs in wherever a password does (`/api/login`, the
//! OAuth `password` grant) with its owner's name; its session is of the `api_key` credential kind, so groups
//! limited to other kinds give it nothing, and its claims are its owner's at that moment, kept by the key's
//! filter. Deleting a key revokes its sessions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api_types::rfc3339;
use crate::credential::Kind;
use crate::db::api_keys::{self as db, ApiKeyRow};
use crate::db::users::UserRow;
use crate::db::{DbConn, audit, refresh, users};
use crate::services::{AppState, ServiceError};

/// The prefix of every key.
pub const PREFIX: &str = "tsk_";
/// Hex digits of a key id.
const ID_LEN: usize = 16;
/// Characters of a secret: 32 bytes in base64url without padding.
const SECRET_LEN: usize = 43;
/// Short names a key's filter may list.
const MAX_FILTER: usize = 64;

/// A key as presented at a login: its id and the SHA-256 of its secret.
pub struct Presented {
    pub id: String,
    digest: [u8; 32],
}

impl Presented {
    /// A well-formed key (`tsk_`, 16 lowercase hex digits, `_`, 43 base64url characters), or `None`: then the
    /// text is a password like any other.
    pub fn parse(raw: &str) -> Option<Presented> {
        let rest = raw.strip_prefix(PREFIX)?;
        let (id, secret) = rest.split_once('_')?;
        let id_ok = id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let secret_ok = secret.len() == SECRET_LEN
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        (id_ok && secret_ok).then(|| Presented {
            id: id.to_string(),
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }
}

/// A new key: its row's id, the full key (shown once) and the digest of its secret.
fn generate() -> (String, String, Vec<u8>) {
    let id = format!("{:016x}", rand::random::<u64>());
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let digest = Sha256::digest(secret.as_bytes()).to_vec();
    (id.clone(), format!("{PREFIX}{id}_{secret}"), digest)
}

/// `POST …/api-keys`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    /// What the key is for (1–255 characters).
    pub name: String,
    /// When the key stops working (RFC 3339, in the future); absent: it works until revoked.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Claim short names the key's tokens may carry at most (of those the owner holds); absent: all of them.
    #[serde(default)]
    pub claim_filter: Option<Vec<String>>,
}

/// A key as listings show it (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// `tsk_<id>`: how the key starts.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub claim_filter: Option<Vec<String>>,
}

/// The answer to a creation: the key itself, this once.
// No `Debug`: it holds the key.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyCreated {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    /// The key, `tsk_<id>_<secret>`: shown only here.
    pub key: String,
}

pub fn key_dto(r: ApiKeyRow) -> ApiKey {
    ApiKey {
        prefix: format!("{PREFIX}{}", r.id),
        id: r.id,
        name: r.name,
        created_at: rfc3339(r.created_at),
        last_used_at: r.last_used_at.map(rfc3339),
        expires_at: r.expires_at.map(rfc3339),
        claim_filter: r.claim_filter.as_deref().and_then(|f| serde_json::from_str(f).ok()),
    }
}

/// A creation request, checked: the row to insert (with a fresh id and digest) and the key to show.
pub fn prepare(input: ApiKeyInput, owner: i64, now: i64) -> Result<(ApiKeyRow, String), ServiceError> {
    crate::services::admin::text("name", &input.name, 255, true)?;
    let expires_at = match input.expires_at.as_deref() {
        None => None,
        Some(t) => {
            let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ServiceError::invalid("invalid_field", "expires_at must be an RFC 3339 time"))?
                .unix_timestamp();
            if at <= now {
                return Err(ServiceError::invalid(
                    "invalid_field",
                    "expires_at must be in the future",
                ));
            }
            Some(at)
        }
    };
    if let Some(filter) = &input.claim_filter {
        if filter.len() > MAX_FILTER {
            return Err(ServiceError::invalid(
                "invalid_field",
                format!("claim_filter lists at most {MAX_FILTER} names"),
            ));
        }
        for name in filter {
            crate::services::admin::text("claim_filter", name, 255, true)?;
        }
    }
    let (id, key, digest) = generate();
    let row = ApiKeyRow {
        id,
        user_id: owner,
        name: input.name,
        secret_digest: digest,
        claim_filter: input.claim_filter.as_ref().and_then(|f| serde_json::to_string(f).ok()),
        created_at: now,
        last_used_at: None,
        expires_at,
    };
    Ok((row, key))
}

/// Stores a prepared key within the owner's limit, in the caller's write transaction. The owner's row is
/// locked first (PostgreSQL, MySQL; SQLite has one writer), so a burst of parallel creations cannot pass the
/// limit together.
pub fn store(c: &mut DbConn, row: &ApiKeyRow, limit: u32) -> Result<(), ServiceError> {
    users::lock(c, row.user_id)?;
    if limit == 0 {
        return Err(ServiceError::forbidden(
            "api_keys_disabled",
            "API keys are turned off on this server",
        ));
    }
    if db::count_of_user(c, row.user_id)? >= i64::from(limit) {
        return Err(ServiceError::Conflict {
            code: "too_many_keys",
            message: format!("a user may hold at most {limit} API keys; revoke one first"),
        });
    }
    db::insert(c, row)?;
    Ok(())
}

/// The answer to a creation.
pub fn created(row: &ApiKeyRow, key: String) -> ApiKeyCreated {
    ApiKeyCreated {
        id: row.id.clone(),
        name: row.name.clone(),
        prefix: format!("{PREFIX}{}", row.id),
        created_at: rfc3339(row.created_at),
        expires_at: row.expires_at.map(rfc3339),
        key,
    }
}

/// The caller of a self-service request: the user of the token's live session and its credential kind.
pub async fn session_of(
    state: &AppState,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<(i64, Kind), ServiceError> {
    let sid = claims
        .get(crate::services::tokens::SESSION)
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
        .ok_or(ServiceError::Unauthenticated)?;
    let session = state.db.run(move |c| refresh::live_session_user(c, &sid)).await?;
    let (user, kind, _) = session.ok_or(ServiceError::Unauthenticated)?;
    Ok((user, Kind::parse(&kind).ok_or(ServiceError::Unauthenticated)?))
}

/// `POST /api/me/api-keys`. A session started with an API key cannot make more: a leaked key must not be a
/// way to keep access after it is revoked.
pub async fn create_mine(
    state: &AppState,
    claims: &serde_json::Map<String, serde_json::Value>,
    input: ApiKeyInput,
) -> Result<ApiKeyCreated, ServiceError> {
    let (user, kind) = session_of(state, claims).await?;
    if kind == Kind::ApiKey {
        return Err(ServiceError::forbidden(
            "api_key_session",
            "a session started with an API key cannot create API keys",
        ));
    }
    let now = state.clock.now();
    let (row, key) = prepare(input, user, now)?;
    let limit = state.config.security.max_api_keys_per_user;
    state
        .db
        .write(move |c| -> Result<ApiKeyCreated, ServiceError> {
            store(c, &row, limit)?;
            let owner = users::find(c, row.user_id)?.ok_or(ServiceError::Unauthenticated)?;
            audit::record(c, now, &owner.username, "api_key.create", &row.id, &row.name)?;
            Ok(created(&row, key))
        })
        .await
}

/// `GET /api/me/api-keys`.
pub async fn list_mine(
    state: &AppState,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<ApiKey>, ServiceError> {
    let (user, _) = session_of(state, claims).await?;
    let rows = state.db.run(move |c| db::of_user(c, user)).await?;
    Ok(rows.into_iter().map(key_dto).collect())
}

/// `DELETE /api/me/api-keys/{id}`: the key stops working and its sessions end.
pub async fn revoke_mine(
    state: &AppState,
    claims: &serde_json::Map<String, serde_json::Value>,
    id: String,
) -> Result<(), ServiceError> {
    let (user, _) = session_of(state, claims).await?;
    let now = state.clock.now();
    state
        .db
        .write(move |c| -> Result<(), ServiceError> {
            let owner = users::find(c, user)?.ok_or(ServiceError::Unauthenticated)?;
            revoke(c, &owner, &id, now)?;
            audit::record(c, now, &owner.username, "api_key.revoke", &id, "")?;
            Ok(())
        })
        .await
}

/// Deletes `owner`'s key `id` (404 when it has none such) and revokes its sessions.
pub fn revoke(c: &mut DbConn, owner: &UserRow, id: &str, now: i64) -> Result<(), ServiceError> {
    if !db::delete(c, owner.id, id, now)? {
        return Err(ServiceError::NotFound(format!(
            "{} has no API key {id:?}",
            owner.username
        )));
    }
    Ok(())
}

/// A key login that passed: the owner and the key.
pub struct Authenticated {
    pub user: UserRow,
    pub key: ApiKeyRow,
}

/// Checks a presented key, as read (`found`: the key of its id with its owner), for the name it came with: the
/// key exists, its secret's digest matches (compared in constant time), it has not expired at `now`, and
/// `login` is its owner's username or email. Anything else is `Err`, with the owner's name when `login` named
/// them (for the audit trail).
pub fn verify(
    found: Option<(ApiKeyRow, UserRow)>,
    login: &str,
    presented: &Presented,
    now: i64,
) -> Result<Authenticated, Option<String>> {
    let Some((key, user)) = found else {
        return Err(None);
    };
    let named = login == user.username || user.email.as_deref() == Some(login);
    let genuine = crate::crypto::constant_time_eq(&key.secret_digest, &presented.digest);
    let live = key.expires_at.is_none_or(|at| at > now);
    if !named {
        return Err(None);
    }
    if !(genuine && live) {
        return Err(Some(user.username));
    }
    Ok(Authenticated { user, key })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_match_their_digest() {
        let (id, key, digest) = generate();
        let p = Presented::parse(&key).unwrap_or_else(|| unreachable!());
        assert_eq!(p.id, id);
        assert_eq!(p.digest.to_vec(), digest);
        assert!(key.starts_with("tsk_") && key.len() == 4 + 16 + 1 + 43);
    }

    #[test]
    fn malformed_keys_are_passwords() {
        let (_, key, _) = generate();
        for bad in [
            key.replacen("tsk_", "tsx_", 1),
            key[..key.len() - 1].to_string(),
            format!("{key}A"),
            key.replacen("tsk_", "tsk_A", 1),
            key.to_uppercase(),
            format!("{}+", &key[..key.len() - 1]),
            "tsk_".into(),
            "tsk__".into(),
            String::new(),
        ] {
            assert!(Presented::parse(&bad).is_none(), "{bad}");
        }
    }
}
