//! The bearer-token extractors: [`Bearer`], a valid token of ours; [`Admin`], the caller of an admin request
//! with the `stk` letters it holds now.

use std::future::{Future, Ready, ready};
use std::pin::Pin;

use actix_web::{FromRequest, HttpRequest, web};
use serde_json::{Map, Value};

use crate::authz::{Letters, STK};
use crate::error::ApiError;
use crate::services::AppState;
use crate::services::admin::Caller;
use crate::services::throttle::{Bucket, ClientAddr, ThrottleError};
use crate::services::tokens;

/// The claims of a verified, unexpired bearer token.
#[derive(Debug, Clone)]
pub struct Bearer {
    pub claims: Map<String, Value>,
}

impl Bearer {
    /// The letters of the token's `stk` claim, as the token says (not what its user holds now: see [`Admin`]).
    pub fn letters(&self) -> Letters {
        Letters::granted_by(self.claims.get(STK).and_then(Value::as_str).unwrap_or(""))
    }
}

/// The caller of an admin request: a valid token whose session is live, with the token's letters that its user
/// still holds in the database (`services::rights`). A revoked session or a deleted user is 401.
pub struct Admin(pub Caller);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let bearer = extract(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let bearer = bearer?;
            let state = state.ok_or_else(|| ApiError::Internal("no state".into()))?;
            let username_key = &state.config.tokens.user_info.username;
            state
                .rights
                .caller(&state.db, &bearer.claims, username_key)
                .await?
                .map(Admin)
                .ok_or(ApiError::Unauthenticated)
        })
    }
}

/// The client's address as the limits count it: the TCP peer, or behind `security.trusted_proxies` the
/// right-most untrusted `X-Forwarded-For` hop.
pub fn client_addr(req: &HttpRequest, state: &AppState) -> Option<ClientAddr> {
    let forwarded = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
    ClientAddr::resolve(
        req.peer_addr().map(|a| a.ip()),
        forwarded,
        state.throttle.trusted_proxies(),
    )
}

/// Takes a token from `bucket` for this request's client (and for `keys`), or refuses with 429.
pub async fn rate_limit(state: &AppState, req: &HttpRequest, bucket: Bucket, keys: &[&str]) -> Result<(), ApiError> {
    let addr = client_addr(req, state);
    match state
        .throttle
        .take(&state.db, bucket, addr, keys, state.clock.now())
        .await
    {
        Ok(()) => Ok(()),
        Err(ThrottleError::Limited(l)) => {
            state.metrics.throttled.add(bucket.name());
            Err(ApiError::TooManyRequests {
                code: "too_many_requests",
                retry_after: l.retry_after,
            })
        }
        Err(ThrottleError::Db(e)) => Err(e.into()),
    }
}

/// The raw token of an `Authorization: Bearer …` header, if any.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(extract(req))
    }
}

/// The verified bearer token of a request (what [`Bearer`] extracts).
pub fn extract(req: &HttpRequest) -> Result<Bearer, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("no state".into()))?;
    let token = bearer_token(req).ok_or(ApiError::Unauthenticated)?;
    let now = state.clock.now();
    let ring = state.keys.current();
    let claims = tokens::verify(&ring, &state.tokens, token, now, true).map_err(|_| ApiError::Unauthenticated)?;
    // Anonymous tokens (`POST /api/anonymous`) stand for nobody: they only open registration.
    if crate::services::accounts::is_anonymous(&claims) {
        return Err(ApiError::Unauthenticated);
    }
    Ok(Bearer { claims })
}
