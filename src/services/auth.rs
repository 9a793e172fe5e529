//! Login and refresh: the token flows of `/api/login` and `/api/refresh`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::crypto::password::Verdict;
use crate::crypto::seal;
use crate::db::refresh::{self as refresh_db, FamilyRow};
use crate::db::{DbConn, DbError, audit, users};
use crate::services::AppState;
use crate::services::passwords::HashError;
use crate::services::throttle::{ClientAddr, Limited, Settle, ThrottleError};
use crate::services::tokens::{self, SignError, TokenSettings};
use crate::user_source::{DirectoryUser, Outcome, sync};

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
    /// A brute-force limit: this name or address must wait.
    #[error("too many attempts")]
    Limited(Limited),
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

impl From<ThrottleError> for AuthError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Limited(l) => AuthError::Limited(l),
            ThrottleError::Db(e) => e.into(),
        }
    }
}

impl From<SignError> for AuthError {
    fn from(e: SignError) -> Self {
        AuthError::Internal(e.to_string())
    }
}

// No `Debug`: it holds a password, and nothing may print it.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
pub struct LoginInput {
    pub username: String,
    pub password: String,
    /// A provider of `/api/available_providers`, or `local` for local users only. Absent: the only configured
    /// provider, or local users when there are none or several.
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub required_claims: Vec<HashMap<String, String>>,
    #[serde(default)]
    pub filter_claims: Option<Vec<String>>,
}

/// An access token and its refresh token.
// No `Debug`: both are credentials.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pair {
    pub token: String,
    pub refresh: String,
}

/// Checks credentials and starts a session, within the brute-force limits of the name and the address.
pub async fn login(state: &AppState, input: LoginInput, addr: Option<ClientAddr>) -> Result<(Pair, String), AuthError> {
    let result = limited_login(state, input, addr).await;
    state.metrics.logins.add(match &result {
        Ok(_) => "success",
        Err(AuthError::Unauthorized) => "failure",
        Err(AuthError::Busy) => "busy",
        Err(AuthError::Limited(_)) => "throttled",
        Err(AuthError::PasswordTooLong | AuthError::UnknownProvider(_)) => "bad_request",
        Err(AuthError::Unavailable | AuthError::Internal(_)) => "error",
    });
    match &result {
        Err(AuthError::Busy) => state.metrics.throttled.add("hash_queue"),
        Err(AuthError::Limited(_)) => state.metrics.throttled.add("login"),
        _ => {}
    }
    result
}

async fn limited_login(
    state: &AppState,
    input: LoginInput,
    addr: Option<ClientAddr>,
) -> Result<(Pair, String), AuthError> {
    // Refused input costs nothing and counts nothing.
    if state.passwords.too_long(&input.password) {
        return Err(AuthError::PasswordTooLong);
    }
    let provider = match input.provider.as_deref().filter(|p| !p.is_empty()) {
        Some(p) if p.eq_ignore_ascii_case("local") => None,
        Some(p) => Some(
            state
                .providers
                .get(p)
                .ok_or_else(|| AuthError::UnknownProvider(p.to_string()))?,
        ),
        None => state.providers.only(),
    };
    let throttle = &state.throttle;
    let attempt = throttle
        .reserve_login(&state.db, &input.username, addr, state.clock.now())
        .await?;
    let result = login_inner(state, provider, input).await;
    let outcome = match &result {
        Ok(_) => Settle::Succeeded,
        Err(AuthError::Unauthorized) => Settle::Failed,
        Err(_) => Settle::Void,
    };
    if let Err(e) = throttle.settle(&state.db, attempt, outcome, state.clock.now()).await {
        // The login's own outcome stands; a refund lost only tightens the limit once.
        tracing::warn!(error = %e, "login attempt not settled");
    }
    result
}

async fn login_inner(
    state: &AppState,
    provider: Option<std::sync::Arc<crate::user_source::LdapProvider>>,
    input: LoginInput,
) -> Result<(Pair, String), AuthError> {
    let user = match provider {
        // The directory decides when it knows the user; local users answer when it does not or cannot.
        Some(p) => match p.authenticate(&input.username, &input.password).await {
            Outcome::Authenticated(entry) => directory_user(state, p.name(), &input.username, entry).await?,
            Outcome::Rejected => {
                // A decoy hash, so a wrong directory password takes as long as a name nobody has (which costs a
                // local check): the time of a 401 must not tell which names the directory knows.
                state.passwords.verify(input.password.clone(), None).await?;
                audit_failed_login(state, Some(input.username.clone())).await;
                return Err(AuthError::Unauthorized);
            }
            // A directory user's kept local password counts only while its directory cannot be asked.
            Outcome::Unreachable => local_user(state, &input, true).await?,
            Outcome::NotFound => local_user(state, &input, false).await?,
        },
        None => local_user(state, &input, false).await?,
    };
    issue(state, user, input).await
}

/// Stores what the directory said about the user (profile, `source: LDAP`, linked groups) and returns the row.
/// A local account of the same name is never taken over: the login is refused and audited.
async fn directory_user(
    state: &AppState,
    provider: &str,
    username: &str,
    entry: DirectoryUser,
) -> Result<users::UserRow, AuthError> {
    let now = state.clock.now();
    let (provider, username) = (provider.to_string(), username.to_string());
    let store = {
        let (provider, username, entry) = (provider.clone(), username.clone(), entry.clone());
        move |c: &mut DbConn| sync::store(c, &provider, &username, &entry, now)
    };
    let stored = match state.db.write::<_, DbError, _>(store).await {
        // Two first logins of one user at once: the other one inserted the row; ours now updates it.
        Err(e) if e.is_unique_violation() => {
            let retry = {
                let username = username.clone();
                move |c: &mut DbConn| sync::store(c, &provider, &username, &entry, now)
            };
            state.db.write(retry).await?
        }
        other => other?,
    };
    match stored {
        sync::Stored::User(user) => Ok(user),
        sync::Stored::Conflict => {
            tracing::warn!(
                "a directory user has the name of a local account; the login is refused and the account left alone"
            );
            let result = state
                .db
                .write(move |c| audit::record(c, now, &username, "login.directory_conflict", "", ""))
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "directory conflict not audited");
            }
            Err(AuthError::Unauthorized)
        }
    }
}

/// A local user whose password matches, or 401. A directory user's row (`source: LDAP`) may have kept a local
/// password from before it was a directory user's; that password counts only when `directory_down`.
async fn local_user(state: &AppState, input: &LoginInput, directory_down: bool) -> Result<users::UserRow, AuthError> {
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
        (Verdict::Wrong, user) | (_, user @ None) => {
            audit_failed_login(state, user.map(|u| u.username)).await;
            return Err(AuthError::Unauthorized);
        }
        (_, Some(user)) if user.source == sync::SOURCE && !directory_down => {
            audit_failed_login(state, Some(user.username)).await;
            return Err(AuthError::Unauthorized);
        }
        (_, Some(user)) => user,
    };
    if verdict == Verdict::RightNeedsRehash {
        upgrade_hash(state, &user, input.password.clone()).await;
    }
    Ok(user)
}

/// Signs the token pair of an authenticated user and records the session.
async fn issue(state: &AppState, user: users::UserRow, input: LoginInput) -> Result<(Pair, String), AuthError> {
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
            let session = format!("{:032x}", rand::random::<u128>());
            let filter = input.filter_claims.as_deref();
            let claims = tokens::build_claims(&settings, &user, groups, (filter, &session), 0, now);
            let token = tokens::sign(&ring, &claims, now)?;
            let family = FamilyRow {
                id: session,
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
            audit::record(c, now, &user.username, "login.succeeded", &family.id, "")?;
            Ok(Pair { token, refresh })
        })
        .await?;
    Ok((pair, username))
}

/// Audits a failed login. The attempted name is kept only when it names a user: a password typed into the
/// username field must not land in the audit trail.
async fn audit_failed_login(state: &AppState, username: Option<String>) {
    let now = state.clock.now();
    let actor = username.unwrap_or_else(|| "(unknown user)".into());
    let result = state
        .db
        .write(move |c| audit::record(c, now, &actor, "login.failed", "", ""))
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "failed login not audited");
    }
}

/// Replaces a Stoke-format (or outdated) hash after a successful login. Failure only costs a later retry.
async fn upgrade_hash(state: &AppState, user: &users::UserRow, password: String) {
    let Some(old) = user.password_hash.clone() else { return };
    match state.passwords.hash(password).await {
        Ok(phc) => {
            let (id, now) = (user.id, state.clock.now());
            let result = state
                .db
                .write(move |c| users::upgrade_password_hash(c, id, &old, &phc, now))
                .await;
            if let Err(e) = result {
                tracing::warn!(user_id = id, error = %e, "password rehash not stored");
            }
        }
        Err(e) => tracing::warn!(error = %e, "password rehash failed"),
    }
}

/// How a refresh ended.
enum Step {
    Issued(Pair),
    /// A replay within the grace: the successor already issued.
    Replayed(Pair),
    /// Unknown, revoked, expired or over the limit.
    Rejected(&'static str),
    /// A used token replayed after the grace: its family is now revoked.
    Reused,
}

/// What the read phase prepared for the write phase.
enum Prepared {
    Done(Step),
    /// A successor, signed and sealed, to install if the presented token is still unused.
    Rotate {
        family: String,
        new_hash: String,
        sealed: String,
        pair: Pair,
    },
    /// The token was used already: decide between the grace and reuse under the write lock.
    Used,
}

/// Rotates a refresh token. The session is read first, and its successor signed and sealed here, outside the
/// database (on SQLite, off its one writer thread); the write then only installs the successor if the
/// presented token is still unused, so concurrent uses of one token get exactly one winner, and the write is
/// three short statements.
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
    let hash = tokens::refresh_hash(&presented);
    let loaded = {
        let hash = hash.clone();
        state.db.on_writer(move |c| load_rotation(c, &hash)).await?
    };
    let step = match prepare_rotation(&settings, &ring, &presented, loaded, now)? {
        Prepared::Done(step) => step,
        other => {
            state
                .db
                .write(move |c| finish_rotation(c, &settings, other, &presented, &hash, now))
                .await?
        }
    };
    state.metrics.refreshes.add(match &step {
        Step::Issued(_) => "ok",
        Step::Replayed(_) => "replayed",
        Step::Rejected(why) => why,
        Step::Reused => "reused",
    });
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
    }
}

/// What the read phase found: the presented token, its session, and (for an unused token) the user and claims.
struct Loaded {
    token: refresh_db::TokenRow,
    family: FamilyRow,
    user: Option<(users::UserRow, Vec<(String, String)>)>,
}

/// Reads what a rotation needs; no decision is taken here.
fn load_rotation(c: &mut DbConn, hash: &str) -> Result<Option<Loaded>, AuthError> {
    let Some((token, family)) = refresh_db::token_with_family(c, hash)? else {
        return Ok(None);
    };
    let user = match token.used_at {
        Some(_) => None,
        None => match users::find(c, family.user_id)? {
            Some(user) => {
                let claims = users::claims_of(c, user.id)?;
                Some((user, claims))
            }
            None => None,
        },
    };
    Ok(Some(Loaded { token, family, user }))
}

/// Checks the session and builds its successor, touching no database.
fn prepare_rotation(
    s: &TokenSettings,
    ring: &crate::services::keyring::RingState,
    presented: &str,
    loaded: Option<Loaded>,
    now: i64,
) -> Result<Prepared, AuthError> {
    let Some(Loaded { token, family, user }) = loaded else {
        return Ok(Prepared::Done(Step::Rejected("unknown")));
    };
    if let Some(why) = family_rejection(s, &family, now) {
        return Ok(Prepared::Done(Step::Rejected(why)));
    }
    if token.used_at.is_some() {
        return Ok(Prepared::Used);
    }
    let Some((user, claims)) = user else {
        return Ok(Prepared::Done(Step::Rejected("user_gone")));
    };
    let groups = tokens::group_claims(&claims);
    let filter: Option<Vec<String>> = family
        .filter_claims
        .as_deref()
        .and_then(|f| serde_json::from_str(f).ok());
    let claims = tokens::build_claims(
        s,
        &user,
        groups,
        (filter.as_deref(), &family.id),
        family.refresh_count + 1,
        now,
    );
    let access = tokens::sign(ring, &claims, now)?;
    let (refresh, new_hash) = tokens::new_refresh_token();
    let pair = Pair { token: access, refresh };
    let plain = serde_json::to_vec(&pair).map_err(|e| AuthError::Internal(e.to_string()))?;
    let sealed = seal::seal(presented, &plain).ok_or_else(|| AuthError::Internal("sealing failed".into()))?;
    Ok(Prepared::Rotate {
        family: family.id,
        new_hash,
        sealed,
        pair,
    })
}

/// Why a session can no longer refresh, if it cannot.
fn family_rejection(s: &TokenSettings, family: &FamilyRow, now: i64) -> Option<&'static str> {
    if family.revoked_at.is_some() {
        Some("revoked")
    } else if family.expires_at <= now || family.last_used_at + s.idle_timeout <= now {
        Some("expired")
    } else if s.refresh_limit > 0 && family.refresh_count >= s.refresh_limit {
        Some("limit")
    } else {
        None
    }
}

/// The write phase, in one transaction.
fn finish_rotation(
    c: &mut DbConn,
    s: &TokenSettings,
    prepared: Prepared,
    presented: &str,
    hash: &str,
    now: i64,
) -> Result<Step, AuthError> {
    if let Prepared::Rotate {
        family,
        new_hash,
        sealed,
        pair,
    } = prepared
        && refresh_db::claim_rotation(c, hash, &new_hash, &sealed, now)?
    {
        // The family may have been revoked (or refreshed to its limit) since the read: then roll back.
        if !refresh_db::touch_family(c, &family, now, s.refresh_limit)? {
            return Err(AuthError::Unauthorized);
        }
        refresh_db::insert_token(c, &new_hash, &family, now)?;
        return Ok(Step::Issued(pair));
    }
    // Someone used the token between our read and our write: treat this as a replay.
    let Some((token, family)) = refresh_db::token_with_family(c, hash)? else {
        return Ok(Step::Rejected("unknown"));
    };
    if family.revoked_at.is_some() {
        return Ok(Step::Rejected("revoked"));
    }
    let used_at = token.used_at.unwrap_or(now);
    let sealed = token
        .successor_sealed
        .as_deref()
        .filter(|_| now - used_at <= s.reuse_grace);
    if let Some(pair) = sealed.and_then(|sealed| seal::open(presented, sealed))
        && let Ok(pair) = serde_json::from_slice::<Pair>(&pair)
    {
        return Ok(Step::Replayed(pair));
    }
    refresh_db::revoke_family(c, &family.id, "reuse", now)?;
    let actor = family.user_id.to_string();
    audit::record(c, now, &actor, "refresh.reuse_detected", &family.id, "session revoked")?;
    Ok(Step::Reused)
}
