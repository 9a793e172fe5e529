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
use crate::services::tokens::{self, RefreshToken, SignError, TokenSettings};
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
    let session = tokens::new_family_id();
    let tag_key = tokens::new_tag_key();
    let (refresh, digest) = tokens::new_session_token(&session, 0, &tag_key);
    let username = user.username.clone();
    let pair = state
        .db
        .write(move |c| -> Result<Pair, AuthError> {
            let groups = tokens::group_claims(&users::claims_of(c, user.id)?);
            if !tokens::satisfies(&groups, &input.required_claims) {
                return Err(AuthError::Unauthorized);
            }
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
            refresh_db::create_family(c, &family, &digest, &tag_key)?;
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
    /// A replay within the grace: the pair already issued.
    Replayed(Pair),
    /// Unknown, revoked, expired or over the limit.
    Rejected(&'static str),
    /// A used token replayed after the grace: its family is now revoked.
    Reused,
}

/// The most tokens used within the grace that can still get the current pair back (see
/// [`crate::crypto::seal::grace`]): racing tabs and replicas are a generation or two behind, and a token further
/// behind is a reuse, so a session refreshed in a tight loop keeps a bounded grace.
const GRACE_WRAPS: usize = 4;

/// The presented refresh token, parsed, with what it is stored under.
#[derive(Clone)]
enum Presented {
    Generation {
        token: tokens::GenerationToken,
        digest: Vec<u8>,
    },
    /// A token from before generations, by its SHA-256 hex in `refresh_tokens`.
    Legacy { hash: String },
}

impl Presented {
    fn parse(raw: &str) -> Option<Presented> {
        Some(match tokens::parse_refresh_token(raw)? {
            RefreshToken::Generation(token) => Presented::Generation {
                token,
                digest: tokens::refresh_digest(raw),
            },
            RefreshToken::Legacy => Presented::Legacy {
                hash: tokens::refresh_hash(raw),
            },
        })
    }
}

/// What the read phase prepared for the write phase.
enum Prepared {
    Done(Step),
    /// A successor, signed and sealed, to install if the presented token is still current.
    Rotate(Rotation),
    /// The token was used already: decide between the grace and reuse under the write lock.
    Used,
}

/// The new pair, sealed for the grace of the presented token.
enum Sealed {
    /// The family's new `grace` (current form).
    Grace(Vec<u8>),
    /// Under the presented token, for its `refresh_tokens` row (a token from before generations).
    Legacy(String),
}

struct Rotation {
    family: String,
    /// The presented token's generation (the family's refresh count).
    generation: i64,
    /// SHA-256 of the new token.
    digest: Vec<u8>,
    sealed: Sealed,
    /// For a token from before generations: the key of the tags of the family's tokens from now on.
    tag_key: Option<Vec<u8>>,
    pair: Pair,
}

/// Rotates a refresh token. The session is read first, and its successor signed and sealed here, outside the
/// database (on SQLite, off its one writer thread); the write is then one compare-and-set `UPDATE` of the
/// family row, which installs the successor only if the presented token is still current, so concurrent uses
/// of one token get exactly one winner.
pub async fn refresh(state: &AppState, presented: String, bearer: Option<String>) -> Result<Pair, AuthError> {
    let now = state.clock.now();
    let ring = state.keys.current();
    if let Some(old) = bearer {
        // Stoke clients send the old access token; expired is fine, forged is not.
        tokens::verify(&ring, &state.tokens, &old, now, false).map_err(|_| AuthError::Unauthorized)?;
    }
    let Some(parsed) = Presented::parse(&presented) else {
        return Err(AuthError::Unauthorized);
    };
    let settings = state.tokens.clone();
    let loaded = {
        let parsed = parsed.clone();
        state.db.on_writer(move |c| load_rotation(c, &parsed)).await?
    };
    let step = match prepare_rotation(&settings, &ring, &presented, &parsed, loaded, now)? {
        Prepared::Done(step) => step,
        other => {
            state
                .db
                .write(move |c| finish_rotation(c, &settings, other, &presented, &parsed, now))
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

/// What the read phase found: the session, whether the presented token is its current one, and (if so) the
/// user and claims.
struct Loaded {
    family: FamilyRow,
    generations: Option<refresh_db::Generations>,
    current: bool,
    user: Option<(users::UserRow, Vec<(String, String)>)>,
}

/// Reads what a rotation needs; no decision is taken here.
fn load_rotation(c: &mut DbConn, presented: &Presented) -> Result<Option<Loaded>, AuthError> {
    let (family, generations, current) = match presented {
        Presented::Generation { token, digest } => {
            let Some((family, g)) = refresh_db::family_with_generations(c, &token.family)? else {
                return Ok(None);
            };
            let current = family.refresh_count == token.generation && g.current_digest.as_ref() == Some(digest);
            (family, Some(g), current)
        }
        Presented::Legacy { hash } => {
            let Some((token, family)) = refresh_db::token_with_family(c, hash)? else {
                return Ok(None);
            };
            (family, None, token.used_at.is_none())
        }
    };
    let user = match current {
        true => match users::find(c, family.user_id)? {
            Some(user) => {
                let claims = users::claims_of(c, user.id)?;
                Some((user, claims))
            }
            None => None,
        },
        false => None,
    };
    Ok(Some(Loaded {
        family,
        generations,
        current,
        user,
    }))
}

/// Checks the session and builds its successor, touching no database.
fn prepare_rotation(
    s: &TokenSettings,
    ring: &crate::services::keyring::RingState,
    presented: &str,
    parsed: &Presented,
    loaded: Option<Loaded>,
    now: i64,
) -> Result<Prepared, AuthError> {
    let Some(Loaded {
        family,
        generations,
        current,
        user,
    }) = loaded
    else {
        return Ok(Prepared::Done(Step::Rejected("unknown")));
    };
    let tag_key = generations.as_ref().and_then(|g| g.tag_key.clone());
    if let Presented::Generation { token, .. } = parsed {
        // Only a token the family issued counts, even as a replay: its id and generation alone are no proof.
        let genuine = tag_key.as_deref().is_some_and(|key| token.genuine(key));
        if !genuine || token.generation > family.refresh_count || (token.generation == family.refresh_count && !current)
        {
            return Ok(Prepared::Done(Step::Rejected("unknown")));
        }
    }
    if let Some(why) = family_rejection(s, &family, now) {
        return Ok(Prepared::Done(Step::Rejected(why)));
    }
    if !current {
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
    let next = family.refresh_count + 1;
    let claims = tokens::build_claims(s, &user, groups, (filter.as_deref(), &family.id), next, now);
    let access = tokens::sign(ring, &claims, now)?;
    let (key, adopting) = match tag_key {
        Some(key) => (key, false),
        None => (tokens::new_tag_key(), true),
    };
    let (refresh, digest) = tokens::new_session_token(&family.id, next, &key);
    let pair = Pair { token: access, refresh };
    let plain = serde_json::to_vec(&pair).map_err(|e| AuthError::Internal(e.to_string()))?;
    let sealing = || AuthError::Internal("sealing failed".into());
    let sealed = match parsed {
        Presented::Generation { .. } => {
            let previous = generations.as_ref().and_then(|g| g.grace.as_deref());
            let since = now - s.reuse_grace;
            Sealed::Grace(
                seal::grace::rotate(previous, presented, &pair.refresh, &plain, (now, since, GRACE_WRAPS))
                    .ok_or_else(sealing)?,
            )
        }
        Presented::Legacy { .. } => Sealed::Legacy(seal::seal(presented, &plain).ok_or_else(sealing)?),
    };
    Ok(Prepared::Rotate(Rotation {
        family: family.id,
        generation: family.refresh_count,
        digest,
        sealed,
        tag_key: adopting.then_some(key),
        pair,
    }))
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

/// The write phase, in one transaction. The limit and lifetimes were checked on the row the compare-and-set
/// requires (same generation, same digest), so only a revocation can have happened since.
fn finish_rotation(
    c: &mut DbConn,
    s: &TokenSettings,
    prepared: Prepared,
    presented: &str,
    parsed: &Presented,
    now: i64,
) -> Result<Step, AuthError> {
    if let Prepared::Rotate(r) = prepared {
        let won = match (parsed, &r.sealed) {
            (Presented::Generation { digest, .. }, Sealed::Grace(grace)) => {
                refresh_db::advance(c, &r.family, (r.generation, digest), (&r.digest, grace), now)?
            }
            (Presented::Legacy { hash }, Sealed::Legacy(sealed)) => {
                let successor = tokens::refresh_hash(&r.pair.refresh);
                if refresh_db::claim_rotation(c, hash, &successor, sealed, now)? {
                    let key = r.tag_key.as_deref().unwrap_or_default();
                    // The family may have been revoked since the read: then roll back.
                    if !refresh_db::adopt(c, &r.family, r.generation, &r.digest, key, now)? {
                        return Err(AuthError::Unauthorized);
                    }
                    true
                } else {
                    false
                }
            }
            _ => return Err(AuthError::Internal("a rotation sealed for the other token form".into())),
        };
        if won {
            return Ok(Step::Issued(r.pair));
        }
    }
    // Someone used the token between our read and our write, or it was used already: a replay.
    let (family, pair) = match parsed {
        Presented::Generation { token, .. } => {
            let Some((family, g)) = refresh_db::family_with_generations(c, &token.family)? else {
                return Ok(Step::Rejected("unknown"));
            };
            if family.revoked_at.is_some() {
                return Ok(Step::Rejected("revoked"));
            }
            let Some(back) = usize::try_from(family.refresh_count - token.generation)
                .ok()
                .filter(|b| *b > 0)
            else {
                // Still the current token: nothing but a revocation fails the compare-and-set, and that was seen.
                return Ok(Step::Rejected("unknown"));
            };
            let opened = g
                .grace
                .as_deref()
                .and_then(|grace| seal::grace::open(grace, presented, back, now - s.reuse_grace));
            (family, opened)
        }
        Presented::Legacy { hash } => {
            let Some((token, family)) = refresh_db::token_with_family(c, hash)? else {
                return Ok(Step::Rejected("unknown"));
            };
            if family.revoked_at.is_some() {
                return Ok(Step::Rejected("revoked"));
            }
            let used_at = token.used_at.unwrap_or(now);
            let opened = token
                .successor_sealed
                .as_deref()
                .filter(|_| now - used_at <= s.reuse_grace)
                .and_then(|sealed| seal::open(presented, sealed));
            (family, opened)
        }
    };
    if let Some(pair) = pair
        && let Ok(pair) = serde_json::from_slice::<Pair>(&pair)
    {
        return Ok(Step::Replayed(pair));
    }
    refresh_db::revoke_family(c, &family.id, "reuse", now)?;
    let actor = family.user_id.to_string();
    audit::record(c, now, &actor, "refresh.reuse_detected", &family.id, "session revoked")?;
    Ok(Step::Reused)
}

/// The session a refresh token of either form belongs to (used or not), for logout. A token of the current
/// form counts only with the family's tag, so naming a session is not enough to end it.
pub fn family_of_token(c: &mut DbConn, token: &str) -> Result<Option<FamilyRow>, DbError> {
    Ok(match tokens::parse_refresh_token(token) {
        Some(RefreshToken::Generation(t)) => refresh_db::family_with_generations(c, &t.family)?
            .filter(|(family, g)| {
                t.generation <= family.refresh_count && g.tag_key.as_deref().is_some_and(|key| t.genuine(key))
            })
            .map(|(family, _)| family),
        Some(RefreshToken::Legacy) => {
            refresh_db::token_with_family(c, &tokens::refresh_hash(token))?.map(|(_, family)| family)
        }
        None => None,
    })
}
