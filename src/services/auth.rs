//! Login and refresh: the token flows of `/api/login` and `/api/refresh`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::crypto::password::Verdict;
use crate::crypto::seal;
use crate::db::refresh::{self as refresh_db, FamilyRow};
use crate::db::{DbConn, DbError, users};
use crate::services::passwords::HashError;
use crate::services::tokens::{self, SignError, TokenSettings};
use crate::state::AppState;

/// Why a token request failed; every variant but `Unavailable` and `Internal` is a 4xx.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong username or password, unknown user, unmet `required_claims`: 401 `{}`.
    #[error("not authorized")]
    Unauthorized,
    /// The password is longer than `security.max_password_bytes`.
    #[error("password too long")]
    PasswordTooLong,
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    #[error("database unavailable")]
    Unavailable,
    /// Too many password checks are queued.
    #[error("busy")]
    Busy,
    #[error("{0}")]
    Internal(String),
}

impl From<DbError> for AuthError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                AuthError::Unavailable
            }
            other => AuthError::Internal(other.to_string()),
        }
    }
}

impl From<HashError> for AuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => AuthError::Busy,
            other => AuthError::Internal(other.to_string()),
        }
    }
}

impl From<SignError> for AuthError {
    fn from(e: SignError) -> Self {
        AuthError::Internal(e.to_string())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct LoginInput {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub required_claims: Vec<HashMap<String, String>>,
    #[serde(default)]
    pub filter_claims: Option<Vec<String>>,
}

/// An access token and its refresh token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pair {
    pub token: String,
    pub refresh: String,
}

/// Checks credentials and starts a session.
pub async fn login(state: &AppState, input: LoginInput) -> Result<(Pair, String), AuthError> {
    if state.passwords.too_long(&input.password) {
        return Err(AuthError::PasswordTooLong);
    }
    if let Some(p) = input
        .provider
        .as_deref()
        .filter(|p| !p.is_empty() && !p.eq_ignore_ascii_case("local"))
    {
        if !state.config.users.providers.iter().any(|c| c.name == p) {
            return Err(AuthError::UnknownProvider(p.to_string()));
        }
    }
    let login = input.username.clone();
    let user = if login.is_empty() || login.len() > 255 {
        None
    } else {
        state.db.run(move |c| users::find_for_login(c, &login)).await?
    };
    let stored = user
        .as_ref()
        .map(|u| (u.password_hash.clone(), u.password_salt.clone()));
    let verdict = state.passwords.verify(input.password.clone(), stored).await?;
    let user = match (verdict, user) {
        (Verdict::Wrong, _) | (_, None) => return Err(AuthError::Unauthorized),
        (_, Some(user)) => user,
    };
    if verdict == Verdict::RightNeedsRehash {
        upgrade_hash(state, &user, input.password).await;
    }

    let now = state.clock.now();
    let settings = state.tokens.clone();
    let ring = state.keys.current();
    let (refresh, refresh_hash) = tokens::new_refresh_token();
    let username = user.username.clone();
    let pair = state
        .db
        .write(move |c| -> Result<Pair, AuthError> {
            let groups = tokens::group_claims(&users::claims_of(c, user.id)?);
            if !tokens::satisfies(&groups, &input.required_claims) {
                return Err(AuthError::Unauthorized);
            }
            let claims = tokens::build_claims(&settings, &user, groups, input.filter_claims.as_deref(), 0, now);
            let token = tokens::sign(&ring, &claims, now)?;
            let family = FamilyRow {
                id: format!("{:032x}", rand::random::<u128>()),
                user_id: user.id,
                created_at: now,
                last_used_at: now,
                expires_at: now + settings.max_age,
                refresh_count: 0,
                filter_claims: input.filter_claims.as_ref().and_then(|f| serde_json::to_string(f).ok()),
                revoked_at: None,
                revoked_reason: None,
            };
            refresh_db::create_family(c, &family, &refresh_hash)?;
            Ok(Pair { token, refresh })
        })
        .await?;
    Ok((pair, username))
}

/// Replaces a Stoke-format (or outdated) hash after a successful login. Failure only costs a later retry.
async fn upgrade_hash(state: &AppState, user: &users::UserRow, password: String) {
    let Some(old) = user.password_hash.clone() else { return };
    match state.passwords.hash(password).await {
        Ok(phc) => {
            let (id, now) = (user.id, state.clock.now());
            let result = state
                .db
                .run(move |c| users::upgrade_password_hash(c, id, &old, &phc, now))
                .await;
            if let Err(e) = result {
                tracing::warn!(user_id = id, error = %e, "password rehash not stored");
            }
        }
        Err(e) => tracing::warn!(error = %e, "password rehash failed"),
    }
}

/// How one refresh attempt ended.
enum Step {
    Issued(Pair),
    /// A replay within the grace: the successor already issued.
    Replayed(Pair),
    /// Unknown, revoked, expired or over the limit.
    Rejected(&'static str),
    /// A used token replayed after the grace: its family is now revoked.
    Reused,
    /// Another request rotated this token between our read and our write; try again.
    Raced,
}

/// Rotates a refresh token: one write transaction, exactly one winner among concurrent uses.
pub async fn refresh(state: &AppState, presented: String, bearer: Option<String>) -> Result<Pair, AuthError> {
    let now = state.clock.now();
    let ring = state.keys.current();
    if let Some(old) = bearer {
        // Stoke clients send the old access token; expired is fine, forged is not.
        tokens::verify(&ring, &state.tokens, &old, now, false).map_err(|_| AuthError::Unauthorized)?;
    }
    if !tokens::plausible_refresh_token(&presented) {
        return Err(AuthError::Unauthorized);
    }
    let settings = state.tokens.clone();
    let presented: Arc<str> = presented.into();
    let mut step = Step::Raced;
    // A lost race ends its transaction so that the retry reads the winner's commit.
    for _ in 0..2 {
        let (settings, ring, presented) = (settings.clone(), ring.clone(), presented.clone());
        step = state
            .db
            .write(move |c| rotate(c, &settings, &ring, &presented, now))
            .await?;
        if !matches!(step, Step::Raced) {
            break;
        }
    }
    match step {
        Step::Issued(pair) | Step::Replayed(pair) => Ok(pair),
        Step::Rejected(why) => {
            tracing::debug!(reason = why, "refresh rejected");
            Err(AuthError::Unauthorized)
        }
        Step::Reused => {
            tracing::warn!("refresh token reuse detected; session revoked");
            Err(AuthError::Unauthorized)
        }
        Step::Raced => Err(AuthError::Unauthorized),
    }
}

fn rotate(
    c: &mut DbConn,
    s: &TokenSettings,
    ring: &crate::services::keyring::RingState,
    presented: &str,
    now: i64,
) -> Result<Step, AuthError> {
    let hash = tokens::refresh_hash(presented);
    {
        let c = &mut *c;
        let Some((token, family)) = refresh_db::token_with_family(c, &hash)? else {
            return Ok(Step::Rejected("unknown"));
        };
        if family.revoked_at.is_some() {
            return Ok(Step::Rejected("revoked"));
        }
        if family.expires_at <= now || family.last_used_at + s.idle_timeout <= now {
            return Ok(Step::Rejected("expired"));
        }
        if let Some(used_at) = token.used_at {
            let within_grace = now - used_at <= s.reuse_grace;
            let sealed = token.successor_sealed.as_deref().filter(|_| within_grace);
            if let Some(pair) = sealed.and_then(|sealed| seal::open(presented, sealed)) {
                if let Ok(pair) = serde_json::from_slice::<Pair>(&pair) {
                    return Ok(Step::Replayed(pair));
                }
            }
            refresh_db::revoke_family(c, &family.id, "reuse", now)?;
            return Ok(Step::Reused);
        }
        if s.refresh_limit > 0 && family.refresh_count >= s.refresh_limit {
            return Ok(Step::Rejected("limit"));
        }
        let Some(user) = users::find(c, family.user_id)? else {
            return Ok(Step::Rejected("user gone"));
        };
        let groups = tokens::group_claims(&users::claims_of(c, user.id)?);
        let filter: Option<Vec<String>> = family
            .filter_claims
            .as_deref()
            .and_then(|f| serde_json::from_str(f).ok());
        let count = family.refresh_count + 1;
        let claims = tokens::build_claims(s, &user, groups, filter.as_deref(), count, now);
        let access = tokens::sign(ring, &claims, now)?;
        let (refresh, new_hash) = tokens::new_refresh_token();
        let pair = Pair { token: access, refresh };
        let plain = serde_json::to_vec(&pair).map_err(|e| AuthError::Internal(e.to_string()))?;
        let sealed = seal::seal(presented, &plain).ok_or_else(|| AuthError::Internal("sealing failed".into()))?;
        if !refresh_db::claim_rotation(c, &hash, &new_hash, &sealed, now)? {
            return Ok(Step::Raced);
        }
        refresh_db::insert_token(c, &new_hash, &family.id, now)?;
        refresh_db::touch_family(c, &family.id, now)?;
        Ok(Step::Issued(pair))
    }
}
