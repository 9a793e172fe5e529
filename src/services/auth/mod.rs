//! Login and refresh: the token flows of `/api/login` and `/api/refresh` (the refresh in [`refresh`]).

pub use crate::services::ServiceError;
use std::collections::HashMap;

mod refresh;

pub use refresh::{family_of_token, refresh, refresh_for_client};

use serde::{Deserialize, Serialize};

use crate::credential::{Kind, Login};
use crate::crypto::password::Verdict;
use crate::db::api_keys::ApiKeyRow;
use crate::db::refresh::{self as refresh_db, FamilyRow};
use crate::db::{DbConn, DbError, audit, users};
use crate::services::AppState;
use crate::services::api_keys;
use crate::services::error::SecondFactor;
use crate::services::mfa;
use crate::services::throttle::{ClientAddr, Settle};
use crate::services::tokens::{self, ClientGrant};
use crate::user_source::{DirectoryUser, Outcome, sync};

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
    /// A current TOTP code, for a user with a second factor (else the answer is `mfa_required`).
    #[serde(default)]
    pub otp: Option<String>,
}

/// An access token and its refresh token.
// No `Debug`: both are credentials.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Pair {
    pub token: String,
    pub refresh: String,
}

/// Checks credentials and starts a session, within the brute-force limits of the name and the address.
pub async fn login(
    state: &AppState,
    input: LoginInput,
    addr: Option<ClientAddr>,
) -> Result<(Pair, String), ServiceError> {
    login_as(state, input, addr, None).await
}

/// A login through an OAuth client (the `password` grant): the same checks and limits, a session bound to the
/// client, and tokens carrying its `client_id`, `scope`, audience and lifetimes.
pub async fn login_for_client(
    state: &AppState,
    input: LoginInput,
    addr: Option<ClientAddr>,
    grant: ClientGrant,
) -> Result<(Pair, String), ServiceError> {
    login_as(state, input, addr, Some(grant)).await
}

async fn login_as(
    state: &AppState,
    input: LoginInput,
    addr: Option<ClientAddr>,
    grant: Option<ClientGrant>,
) -> Result<(Pair, String), ServiceError> {
    let result = limited_login(state, input, addr, grant).await;
    count(state, &result);
    result
}

/// Counts a login's outcome.
fn count(state: &AppState, result: &Result<(Pair, String), ServiceError>) {
    state.metrics.logins.add(match result {
        Ok(_) => "success",
        Err(ServiceError::BadCredentials) => "failure",
        Err(ServiceError::Busy) => "busy",
        Err(ServiceError::Limited(_)) => "throttled",
        Err(ServiceError::Invalid { .. }) => "bad_request",
        Err(ServiceError::SecondFactor(SecondFactor::Required { .. })) => "mfa_required",
        Err(ServiceError::SecondFactor(SecondFactor::EnrollmentRequired { .. })) => "mfa_enrollment_required",
        Err(ServiceError::SecondFactor(_)) => "mfa_failure",
        Err(_) => "error",
    });
    match result {
        Err(ServiceError::Busy) => state.metrics.throttled.add("hash_queue"),
        Err(ServiceError::Limited(_)) => state.metrics.throttled.add("login"),
        _ => {}
    }
}

/// `POST /api/login/mfa`: the second step of a login whose password was right, with a code or a recovery code
/// (limited by the factor's own counter, not the password's). The session is the one the first step asked for.
pub async fn login_second_step(state: &AppState, step: mfa::SecondStep) -> Result<(Pair, String), ServiceError> {
    let result = async {
        let (user, context, factor) = mfa::second_step(state, step).await?;
        let kind = Kind::parse(&context.kind).unwrap_or(Kind::Password);
        let input = LoginInput {
            username: user.username.clone(),
            password: String::new(),
            provider: None,
            required_claims: context.required_claims,
            filter_claims: context.filter_claims,
            otp: None,
        };
        issue(state, user, input, None, (Credential::Other(kind), Some(factor))).await
    }
    .await;
    count(state, &result);
    result
}

async fn limited_login(
    state: &AppState,
    input: LoginInput,
    addr: Option<ClientAddr>,
    grant: Option<ClientGrant>,
) -> Result<(Pair, String), ServiceError> {
    // Refused input costs nothing and counts nothing.
    if state.passwords.too_long(&input.password) {
        return Err(ServiceError::invalid("password_too_long", "the password is too long"));
    }
    let named = input.provider.as_deref().filter(|p| !p.is_empty());
    if let Some(name) = named.filter(|name| state.providers.oidc(name).is_some()) {
        let name = name.to_string();
        return oidc_login(state, input, grant, &name).await;
    }
    let provider = match named {
        Some(p) if p.eq_ignore_ascii_case("local") => None,
        Some(p) => Some(
            state
                .providers
                .get(p)
                .ok_or_else(|| ServiceError::invalid("unknown_provider", format!("no provider named {p:?}")))?,
        ),
        None => state.providers.only(),
    };
    // A well-formed API key logs in as its owner, whatever the provider; any other text is a password.
    if let Some(key) = api_keys::Presented::parse(&input.password) {
        return key_login(state, input, addr, grant, key).await;
    }
    let throttle = &state.throttle;
    let attempt = throttle
        .reserve_login(&state.db, &input.username, addr, state.clock.now())
        .await?;
    let result = login_inner(state, provider, input, grant).await;
    let outcome = match &result {
        // A second factor needed, wrong or locked: the password was right (codes count on their own).
        Ok(_) | Err(ServiceError::SecondFactor(_)) => Settle::Succeeded,
        Err(ServiceError::BadCredentials) => Settle::Failed,
        Err(_) => Settle::Void,
    };
    if let Err(e) = throttle.settle(&state.db, attempt, outcome, state.clock.now()).await {
        // The login's own outcome stands; a refund lost only tightens the limit once.
        tracing::warn!(error = %e, "login attempt not settled");
    }
    result
}

/// A login with an API key. Its secret has 256 bits, so the limits need no reservation: a name or address that
/// must wait is refused first (nothing written), and only a failure is counted, as a wrong password is. API
/// keys stand alone: no second factor (limit groups to `password` to keep them from a key).
async fn key_login(
    state: &AppState,
    input: LoginInput,
    addr: Option<ClientAddr>,
    grant: Option<ClientGrant>,
    key: api_keys::Presented,
) -> Result<(Pair, String), ServiceError> {
    let now = state.clock.now();
    let check = state.throttle.login_check(&input.username, addr, now);
    let id = key.id.clone();
    // One read, on the writer like a refresh's (SQLite's warm cache): the limits, the key with its owner, and the
    // claims a key session of the owner gets.
    let read = state
        .db
        .read_on_writer(move |c| -> Result<_, ServiceError> {
            if let Some(wait) = check.wait(c)? {
                return Err(ServiceError::Limited(wait));
            }
            let found = crate::db::api_keys::with_owner(c, &id)?;
            let held = match &found {
                Some((_, owner)) => users::claims_for(c, owner.id, Some(Login::new(Kind::ApiKey, false)))?,
                None => Vec::new(),
            };
            Ok((found, held))
        })
        .await;
    let (found, held) = read?;
    match api_keys::verify(found, &input.username, &key, now) {
        Ok(found) => {
            let credential = (Credential::ApiKey(found.key), None);
            issue_with(state, found.user, input, grant, credential, held).await
        }
        Err(owner) => {
            audit_failed_login(state, owner).await;
            match state
                .throttle
                .record_failed_login(&state.db, &input.username, addr, now)
                .await
            {
                // Parallel failures locked the name meanwhile: this one is refused all the same.
                Ok(()) | Err(crate::services::throttle::ThrottleError::Limited(_)) => {}
                Err(e) => tracing::warn!(error = %e, "failed key login not counted"),
            }
            Err(ServiceError::BadCredentials)
        }
    }
}

/// A login with the exchange pair of an upstream sign-in (`username`: the page's `id_token`, `password`: its
/// `access_code`). The pair has 256 random bits and works once, so, as for API keys, no name is reserved; a
/// user's second factor is asked for as after a password.
async fn oidc_login(
    state: &AppState,
    input: LoginInput,
    grant: Option<ClientGrant>,
    provider: &str,
) -> Result<(Pair, String), ServiceError> {
    let user = crate::services::oidc::redeem(state, provider, &input.username, &input.password).await?;
    let factor = second_factor(state, &user, &input, Kind::Oidc, grant.is_some()).await?;
    issue(state, user, input, grant, (Credential::Other(Kind::Oidc), factor)).await
}

async fn login_inner(
    state: &AppState,
    provider: Option<std::sync::Arc<crate::user_source::LdapProvider>>,
    input: LoginInput,
    grant: Option<ClientGrant>,
) -> Result<(Pair, String), ServiceError> {
    let (user, kind) = match provider {
        // The directory decides when it knows the user; local users answer when it does not or cannot.
        Some(p) => match p.authenticate(&input.username, &input.password).await {
            Outcome::Authenticated(entry) => (
                directory_user(state, p.name(), &input.username, entry).await?,
                Kind::Ldap,
            ),
            Outcome::Rejected => {
                // A decoy hash, so a wrong directory password takes as long as a name nobody has (which costs a
                // local check): the time of a 401 must not tell which names the directory knows.
                state.passwords.verify(input.password.clone(), None).await?;
                audit_failed_login(state, Some(input.username.clone())).await;
                return Err(ServiceError::BadCredentials);
            }
            // A directory user's kept local password counts only while its directory cannot be asked.
            Outcome::Unreachable => (local_user(state, &input, true).await?, Kind::Password),
            Outcome::NotFound => (local_user(state, &input, false).await?, Kind::Password),
        },
        None => (local_user(state, &input, false).await?, Kind::Password),
    };
    let factor = second_factor(state, &user, &input, kind, grant.is_some()).await?;
    issue(state, user, input, grant, (Credential::Other(kind), factor)).await
}

/// The second factor of a login whose password was right: none for a user without one (unless
/// `security.mfa.require_for` asks for one: 403 `mfa_enrollment_required`), the `otp` given with the password,
/// or 401 `mfa_required` with the token of `/api/login/mfa` (an OAuth client must send `otp`: no token).
async fn second_factor(
    state: &AppState,
    user: &users::UserRow,
    input: &LoginInput,
    kind: Kind,
    via_client: bool,
) -> Result<Option<&'static str>, ServiceError> {
    let Some(factor) = mfa::confirmed_factor(state, user.id).await? else {
        if must_enrol(state, user.id, kind).await? {
            return Err(mfa::enrollment_required(state, user.id).await);
        }
        return Ok(None);
    };
    match &input.otp {
        Some(code) => Ok(Some(mfa::check_login_code(state, &factor, code).await?)),
        None if via_client => Err(ServiceError::SecondFactor(SecondFactor::Required {
            mfa_token: String::new(),
        })),
        None => {
            let context = mfa::LoginContext {
                kind: kind.as_str().into(),
                filter_claims: input.filter_claims.clone(),
                required_claims: input.required_claims.clone(),
            };
            Err(mfa::required(state, user.id, &context).await)
        }
    }
}

/// Would a session of `kind` of this user get a letter of `security.mfa.require_for`?
async fn must_enrol(state: &AppState, user: i64, kind: Kind) -> Result<bool, ServiceError> {
    let required = crate::authz::Letters::granted_by(&state.config.security.mfa.require_for.join(","));
    if required.is_empty() {
        return Ok(false);
    }
    let held = state
        .db
        .run(move |c| crate::db::catalog::letters_of_session(c, user, Some(Login::new(kind, false))))
        .await?;
    Ok(!held.intersection(required).is_empty())
}

/// Seconds within which a key's `last_used_at` is not written again.
const KEY_USE_PRECISION: i64 = 60;

/// What a login was authenticated with.
enum Credential {
    ApiKey(ApiKeyRow),
    Other(Kind),
}

impl Credential {
    fn kind(&self) -> Kind {
        match self {
            Credential::ApiKey(_) => Kind::ApiKey,
            Credential::Other(kind) => *kind,
        }
    }

    fn key(&self) -> Option<&ApiKeyRow> {
        match self {
            Credential::ApiKey(key) => Some(key),
            Credential::Other(_) => None,
        }
    }
}

/// Stores what the directory said about the user (profile, `source: LDAP`, linked groups) and returns the row.
/// A local account of the same name is never taken over: the login is refused and audited.
async fn directory_user(
    state: &AppState,
    provider: &str,
    username: &str,
    entry: DirectoryUser,
) -> Result<users::UserRow, ServiceError> {
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
            Err(ServiceError::BadCredentials)
        }
    }
}

/// A local user whose password matches, or 401. A directory user's row (`source: LDAP`) may have kept a local
/// password from before it was a directory user's; that password counts only when `directory_down`.
async fn local_user(
    state: &AppState,
    input: &LoginInput,
    directory_down: bool,
) -> Result<users::UserRow, ServiceError> {
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
            return Err(ServiceError::BadCredentials);
        }
        (_, Some(user)) if user.source == sync::SOURCE && !directory_down => {
            audit_failed_login(state, Some(user.username)).await;
            return Err(ServiceError::BadCredentials);
        }
        (_, Some(user)) => user,
    };
    if verdict == Verdict::RightNeedsRehash {
        upgrade_hash(state, &user, input.password.clone()).await;
    }
    Ok(user)
}

/// Signs the token pair of an authenticated user and records the session (bound to the client of `grant`), of
/// the credential's kind: its claims are those of the groups admitting that kind. A key's session keeps only
/// the claims the key's filter keeps, and ends when the key expires.
async fn issue(
    state: &AppState,
    user: users::UserRow,
    input: LoginInput,
    grant: Option<ClientGrant>,
    (credential, second_factor): (Credential, Option<&'static str>),
) -> Result<(Pair, String), ServiceError> {
    let held = {
        let (id, login) = (user.id, Login::new(credential.kind(), second_factor.is_some()));
        state.db.run(move |c| users::claims_for(c, id, Some(login))).await?
    };
    issue_with(state, user, input, grant, (credential, second_factor), held).await
}

/// [`issue`] with the claims a session of the credential's kind gets, read before the write: a change of the
/// user's groups in between shows at the next refresh, as any change after the login does.
async fn issue_with(
    state: &AppState,
    user: users::UserRow,
    input: LoginInput,
    grant: Option<ClientGrant>,
    (credential, second_factor): (Credential, Option<&'static str>),
    held: Vec<(String, String)>,
) -> Result<(Pair, String), ServiceError> {
    let now = state.clock.now();
    let settings = state.tokens.clone();
    let ring = state.keys.current();
    let session = tokens::new_family_id();
    let tag_key = tokens::new_tag_key();
    let (refresh, digest) = tokens::new_session_token(&session, 0, &tag_key);
    let username = user.username.clone();
    let kind = credential.kind();
    let groups = tokens::group_claims(&held);
    if !tokens::satisfies(&groups, &input.required_claims) {
        return Err(ServiceError::BadCredentials);
    }
    let pair = state
        .db
        .write(move |c| -> Result<Pair, ServiceError> {
            let key_filter: Option<Vec<String>> = credential
                .key()
                .and_then(|k| k.claim_filter.as_deref())
                .and_then(|f| serde_json::from_str(f).ok());
            // What the session keeps at every refresh: a client's session follows the client's current filter
            // and its key's; a Stoke session the one its login asked for, within its key's.
            let stored = match &grant {
                Some(g) if credential.key().is_none() => g.claim_filter.clone(),
                Some(_) => key_filter.clone(),
                None => tokens::intersect_filters(input.filter_claims.clone(), key_filter.clone()),
            };
            let filter = match &grant {
                Some(g) => tokens::intersect_filters(g.claim_filter.clone(), key_filter),
                None => stored.clone(),
            };
            let view = tokens::SessionView {
                id: &session,
                filter: filter.as_deref(),
                kind: Some(kind),
                second_factor,
                refresh_count: 0,
            };
            let mut claims = tokens::build_claims(&settings, &user, groups, &view, now);
            let token = match &grant {
                Some(g) => {
                    g.apply(&mut claims, &settings, now);
                    g.sign(&ring, &claims, now)?
                }
                None => tokens::sign(&ring, &claims, now)?,
            };
            let lifetime = grant.as_ref().and_then(|g| g.refresh_ttl).unwrap_or(settings.max_age);
            let key = credential.key();
            let expires_at = match key.and_then(|k| k.expires_at) {
                Some(until) => until.min(now + lifetime),
                None => now + lifetime,
            };
            let family = FamilyRow {
                id: session,
                user_id: user.id,
                created_at: now,
                last_used_at: now,
                expires_at,
                refresh_count: 0,
                filter_claims: stored.as_ref().and_then(|f| serde_json::to_string(f).ok()),
                revoked_at: None,
                revoked_reason: None,
                client_id: grant.as_ref().map(|g| g.client_id.clone()),
                scope: grant.as_ref().map(|g| g.scope.join(" ")),
                credential_kind: kind.as_str().to_string(),
                api_key_id: key.map(|k| k.id.clone()),
                second_factor: second_factor.map(str::to_string),
            };
            refresh_db::create_family(c, &family, &digest, &tag_key)?;
            if let Some(key) = key {
                // A key's use is its session (the family row) and its `last_used_at`, to the minute; its logins
                // are not audited one by one (a job logging in every second would fill the trail), its
                // failures are.
                if key.last_used_at.is_none_or(|at| at <= now - KEY_USE_PRECISION) {
                    crate::db::api_keys::touch(c, &key.id, now)?;
                }
                return Ok(Pair { token, refresh });
            }
            let detail = family
                .client_id
                .as_ref()
                .map(|c| format!("client={c}"))
                .unwrap_or_default();
            audit::record(c, now, &user.username, "login.succeeded", &family.id, &detail)?;
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

/// A refresh through an OAuth client: the new pair, the access token's lifetime and the granted scope.
// No `Debug`: it holds tokens.
pub struct Rotated {
    pub pair: Pair,
    pub expires_in: i64,
    pub scope: String,
}
