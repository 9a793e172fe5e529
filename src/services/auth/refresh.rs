//! Rotating a refresh token: one conditional update of the session's row, one winner among concurrent uses,
//! the reuse grace, and the family's revocation on a replay after it.

use super::{Pair, Rotated, ServiceError};
use crate::crypto::seal;
use crate::db::refresh::{self as refresh_db, FamilyRow};
use crate::db::{DbConn, DbError, audit, users};
use crate::services::AppState;
use crate::services::tokens::{self, ClientGrant, RefreshToken, TokenSettings};

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
pub async fn refresh(state: &AppState, presented: String, bearer: Option<String>) -> Result<Pair, ServiceError> {
    Ok(rotate(state, presented, bearer, Via::Stoke).await?.0)
}

/// Rotates a refresh token of a session the client of `grant` started (the OAuth `refresh_token` grant). The
/// access token's scope is the session's, or narrower when `requested` asks (never wider: `invalid_scope`);
/// the session keeps its scope. A session of another client, or a Stoke session, is an invalid token.
pub async fn refresh_for_client(
    state: &AppState,
    presented: String,
    grant: ClientGrant,
    requested: Option<String>,
) -> Result<Rotated, ServiceError> {
    let (pair, grant) = rotate(state, presented, None, Via::Client { grant, requested }).await?;
    let grant = grant.ok_or_else(|| ServiceError::internal("a client rotation without its grant"))?;
    Ok(Rotated {
        expires_in: grant.access_ttl(&state.tokens),
        scope: grant.scope.join(" "),
        pair,
    })
}

/// Through which face a refresh comes.
enum Via {
    /// `/api/refresh`: only sessions of `/api/login`.
    Stoke,
    /// `/oauth/token`: only sessions of this client (`grant.scope` is filled from the session).
    Client {
        grant: ClientGrant,
        requested: Option<String>,
    },
}

impl Via {
    /// The grant the new access token carries, or why the session is not this face's to refresh.
    fn grant_for(self, family: &FamilyRow) -> Result<Result<Option<ClientGrant>, &'static str>, ServiceError> {
        match self {
            Via::Stoke if family.client_id.is_some() => Ok(Err("client_session")),
            Via::Stoke => Ok(Ok(None)),
            Via::Client { grant, .. } if family.client_id.as_deref() != Some(grant.client_id.as_str()) => {
                Ok(Err("other_client"))
            }
            Via::Client { mut grant, requested } => {
                let granted = tokens::words(family.scope.as_deref().unwrap_or(""));
                grant.scope = match requested.as_deref() {
                    Some(r) => tokens::narrow_scope(&granted, r)?,
                    None => granted,
                };
                Ok(Ok(Some(grant)))
            }
        }
    }
}

async fn rotate(
    state: &AppState,
    presented: String,
    bearer: Option<String>,
    via: Via,
) -> Result<(Pair, Option<ClientGrant>), ServiceError> {
    let now = state.clock.now();
    let ring = state.keys.current();
    if let Some(old) = bearer {
        // Stoke clients send the old access token; expired is fine, forged is not.
        tokens::verify(&ring, &state.tokens, &old, now, false).map_err(|_| ServiceError::BadCredentials)?;
    }
    let Some(parsed) = Presented::parse(&presented) else {
        return Err(ServiceError::BadCredentials);
    };
    let settings = state.tokens.clone();
    let loaded = {
        let parsed = parsed.clone();
        // A read, in the writer's transaction without a savepoint (on SQLite the writer's page cache is warm).
        state.db.read_on_writer(move |c| load_rotation(c, &parsed)).await?
    };
    let grant = match loaded.as_ref().map(|l| via.grant_for(&l.family)).transpose()? {
        Some(Err(why)) => {
            state.metrics.refreshes.add(why);
            tracing::debug!(reason = why, "refresh rejected");
            return Err(ServiceError::BadCredentials);
        }
        Some(Ok(grant)) => grant,
        None => None,
    };
    let step = match prepare_rotation(&settings, &ring, (&presented, &parsed), loaded, grant.as_ref(), now)? {
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
        Step::Issued(pair) | Step::Replayed(pair) => Ok((pair, grant)),
        Step::Rejected(why) => {
            tracing::debug!(reason = why, "refresh rejected");
            Err(ServiceError::BadCredentials)
        }
        Step::Reused => {
            tracing::warn!("refresh token reuse detected; session revoked");
            Err(ServiceError::BadCredentials)
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
fn load_rotation(c: &mut DbConn, presented: &Presented) -> Result<Option<Loaded>, ServiceError> {
    let (family, generations, current) = match presented {
        Presented::Generation { token, digest } => {
            // Family, user and claims in one statement.
            let Some(read) = refresh_db::session_for_rotation(c, &token.family)? else {
                return Ok(None);
            };
            let (family, g) = (read.family, read.generations);
            let current = family.refresh_count == token.generation && g.current_digest.as_ref() == Some(digest);
            let user = match current {
                true => read.user.map(|user| (user, read.claims)),
                false => None,
            };
            return Ok(Some(Loaded {
                family,
                generations: Some(g),
                current,
                user,
            }));
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
                let claims = users::claims_for(c, user.id, family.login())?;
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
    (presented, parsed): (&str, &Presented),
    loaded: Option<Loaded>,
    grant: Option<&ClientGrant>,
    now: i64,
) -> Result<Prepared, ServiceError> {
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
    // A client's session follows the client's current filter (within its API key's); a Stoke session the one
    // its login asked for (see `issue`).
    let stored: Option<Vec<String>> = family
        .filter_claims
        .as_deref()
        .and_then(|f| serde_json::from_str(f).ok());
    let filter = match grant {
        Some(g) if family.api_key_id.is_some() => tokens::intersect_filters(g.claim_filter.clone(), stored),
        Some(g) => g.claim_filter.clone(),
        None => stored,
    };
    let next = family.refresh_count + 1;
    let view = tokens::SessionView {
        id: &family.id,
        filter: filter.as_deref(),
        kind: family.kind(),
        second_factor: family.second_factor.as_deref(),
        refresh_count: next,
    };
    let mut claims = tokens::build_claims(s, &user, groups, &view, now);
    let access = match grant {
        Some(g) => {
            g.apply(&mut claims, s, now);
            g.sign(ring, &claims, now)?
        }
        None => tokens::sign(ring, &claims, now)?,
    };
    let (key, adopting) = match tag_key {
        Some(key) => (key, false),
        None => (tokens::new_tag_key(), true),
    };
    let (refresh, digest) = tokens::new_session_token(&family.id, next, &key);
    let pair = Pair { token: access, refresh };
    let plain = serde_json::to_vec(&pair)?;
    let sealing = || ServiceError::internal("sealing failed");
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
) -> Result<Step, ServiceError> {
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
                        return Err(ServiceError::BadCredentials);
                    }
                    true
                } else {
                    false
                }
            }
            _ => return Err(ServiceError::internal("a rotation sealed for the other token form")),
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
