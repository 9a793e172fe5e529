//! `POST /oauth/revoke` (RFC 7009) and `POST /oauth/introspect` (RFC 7662).

use serde_json::{Map, Value, json};

use super::{CLIENT_SUBJECT_PREFIX, Client};
use crate::crypto::jwt::{self, Rules};
use crate::db::{clients, refresh as refresh_db, users};
use crate::services::admin::{Area, Caller};
use crate::services::tokens::{self, RefreshToken};
use crate::services::{AppState, ServiceError};

/// Revokes a token of `client`: a refresh token ends its session, an access token is recorded as revoked until
/// it expires. A token that is unknown, invalid, or another client's changes nothing, and the answer is the
/// same (RFC 7009 §2.2), so the endpoint tells nobody whether a token exists.
pub async fn revoke(state: &AppState, client: &Client, token: &str) -> Result<(), ServiceError> {
    let now = state.clock.now();
    if let Some(RefreshToken::Generation(parsed)) = tokens::parse_refresh_token(token) {
        let client_id = client.id.clone();
        let revoked = state
            .db
            .write(move |c| -> Result<bool, ServiceError> {
                let Some(owner) = clients::family_binding(c, &parsed.family)?.and_then(|b| b.client_id) else {
                    return Ok(false);
                };
                let Some((_, generations)) = refresh_db::family_with_generations(c, &parsed.family)? else {
                    return Ok(false);
                };
                let genuine = generations.tag_key.as_deref().is_some_and(|k| parsed.genuine(k));
                // Any genuine token of the family (the current one or an older one) ends it.
                if owner != client_id || !genuine {
                    return Ok(false);
                }
                Ok(refresh_db::revoke_family(c, &parsed.family, "revoked", now)?)
            })
            .await?;
        if revoked {
            tracing::debug!("refresh token revoked");
        }
        return Ok(());
    }
    let ring = state.keys.current();
    let Ok(claims) = verify_access_token(state, &ring, token, now) else {
        return Ok(());
    };
    let owned = claims.get("client_id").and_then(Value::as_str) == Some(client.id.as_str());
    let jti = claims.get("jti").and_then(Value::as_str).map(str::to_string);
    let exp = claims.get("exp").and_then(Value::as_i64);
    if let (true, Some(jti), Some(exp)) = (owned, jti, exp) {
        state.db.write(move |c| clients::revoke_jti(c, &jti, exp)).await?;
    }
    Ok(())
}

/// Verifies one of our access tokens: signature, issuer and expiry, whatever its audience (a client's tokens
/// may carry the client's own).
fn verify_access_token(
    state: &AppState,
    ring: &crate::services::keyring::RingState,
    token: &str,
    now: i64,
) -> Result<Map<String, Value>, jwt::JwtError> {
    let rules = Rules {
        now,
        leeway: state.tokens.leeway,
        check_exp: true,
        issuer: &state.tokens.issuer,
        audience: &[],
    };
    jwt::verify_with(token, |kid| ring.find(kid), &rules, Some(&ring.signatures))
}

/// Who asks to introspect.
pub enum Introspector {
    /// An authenticated client: only a confidential one registered with `introspect: true` may.
    Client(Client),
    /// An admin bearer token: `s` or `S` may.
    Admin(Caller),
}

impl Introspector {
    /// The one rule of who may introspect.
    fn allowed(&self) -> Result<(), ServiceError> {
        match self {
            Introspector::Client(c) if !c.public && c.introspect => Ok(()),
            Introspector::Client(_) => Err(ServiceError::forbidden(
                "unauthorized_client",
                "this client is not registered to introspect tokens",
            )),
            Introspector::Admin(caller) => caller.require(Area::Operations, false),
        }
    }
}

/// What introspection says of a token: exactly `{"active": false}` unless it is one of ours, unexpired, not
/// revoked, and its session (or client) still exists.
pub async fn introspect(state: &AppState, caller: &Introspector, token: &str) -> Result<Value, ServiceError> {
    caller.allowed()?;
    let inactive = json!({ "active": false });
    let now = state.clock.now();
    if let Some(RefreshToken::Generation(parsed)) = tokens::parse_refresh_token(token) {
        let digest = tokens::refresh_digest(token);
        let idle = state.tokens.idle_timeout;
        let found = state
            .db
            .read_now(move |c| -> Result<Option<Value>, ServiceError> {
                let Some((family, generations)) = refresh_db::family_with_generations(c, &parsed.family)? else {
                    return Ok(None);
                };
                let current = generations
                    .current_digest
                    .as_deref()
                    .is_some_and(|d| crate::crypto::constant_time_eq(d, &digest));
                let idle_ok = idle <= 0 || now < family.last_used_at + idle;
                if !current || family.revoked_at.is_some() || now >= family.expires_at || !idle_ok {
                    return Ok(None);
                }
                let Some(user) = users::find(c, family.user_id)? else {
                    return Ok(None);
                };
                let binding = clients::family_binding(c, &family.id)?;
                let (client_id, scope) = binding.map_or((None, None), |b| (b.client_id, b.scope));
                let mut out = json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "sub": user.id.to_string(),
                    "username": user.username,
                    "iat": family.created_at,
                    "exp": family.expires_at,
                });
                if let Some(client_id) = client_id {
                    out["client_id"] = Value::String(client_id);
                }
                if let Some(scope) = scope {
                    out["scope"] = Value::String(scope);
                }
                Ok(Some(out))
            })
            .await?;
        return Ok(found.unwrap_or(inactive));
    }
    let ring = state.keys.current();
    let Ok(claims) = verify_access_token(state, &ring, token, now) else {
        return Ok(inactive);
    };
    let jti = claims.get("jti").and_then(Value::as_str).map(str::to_string);
    let sid = claims.get(tokens::SESSION).and_then(Value::as_str).map(str::to_string);
    let client_subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|s| s.strip_prefix(CLIENT_SUBJECT_PREFIX))
        .map(str::to_string);
    let live = state
        .db
        .read_now(move |c| -> Result<bool, ServiceError> {
            if let Some(jti) = &jti
                && clients::is_revoked(c, jti)?
            {
                return Ok(false);
            }
            if let Some(sid) = &sid {
                return Ok(match refresh_db::live_session_user(c, sid)? {
                    Some((user, _, _)) => users::find(c, user)?.is_some(),
                    None => false,
                });
            }
            if let Some(client) = &client_subject {
                return Ok(clients::find(c, client)?.is_some());
            }
            Ok(true)
        })
        .await?;
    if !live {
        return Ok(inactive);
    }
    let mut out = Map::new();
    out.insert("active".into(), Value::Bool(true));
    out.insert("token_type".into(), Value::String("Bearer".into()));
    for key in ["scope", "client_id", "exp", "iat", "nbf", "sub", "aud", "iss", "jti"] {
        if let Some(v) = claims.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    let username_key = &state.tokens.user_info.username;
    if let Some(name) = claims.get(username_key.as_str()).filter(|_| !username_key.is_empty()) {
        out.insert("username".into(), name.clone());
    }
    Ok(Value::Object(out))
}
