//! The bearer-token extractor: a valid token of ours, with its `stk` letters.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, web};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::services::throttle::{Bucket, ClientAddr, ThrottleError};
use crate::services::tokens;
use crate::state::AppState;

/// The claims of a verified, unexpired bearer token.
#[derive(Debug, Clone)]
pub struct Bearer {
    pub claims: Map<String, Value>,
}

impl Bearer {
    /// The admin permission letters of the `stk` claim.
    pub fn stk(&self) -> impl Iterator<Item = &str> {
        self.claims
            .get("stk")
            .and_then(Value::as_str)
            .unwrap_or("")
            .split(',')
            .map(str::trim)
    }

    /// Whether `stk` holds `S` or any of `letters`.
    pub fn has_any(&self, letters: &[&str]) -> bool {
        self.stk().any(|l| l == "S" || letters.contains(&l))
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

fn extract(req: &HttpRequest) -> Result<Bearer, ApiError> {
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
