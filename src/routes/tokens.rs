//! Stoke's token endpoints: `/api/login`, `/api/refresh`, `/api/pkeys`, `/api/available_providers`,
//! `/api/capabilities`.

use crate::routes::openapi::{AdminErrors, Capabilities, Providers, PublicKeys, TokenErrors};
use crate::services::auth::Pair;
use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::routes::auth::{Admin, bearer_token, client_addr};
use crate::services::AppState;
use crate::services::admin::Area;
use crate::services::auth::{self, LoginInput};

#[derive(Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    token: String,
    refresh: String,
    username: String,
}

impl LoginResponse {
    pub fn new(pair: Pair, username: String) -> Self {
        LoginResponse {
            token: pair.token,
            refresh: pair.refresh,
            username,
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    refresh: String,
}

/// The credentials of a login: the JSON body, or `Authorization: Basic base64(username:password-or-key)` with
/// no body (Keyosk's form), or both when they name the same credentials.
pub struct LoginRequest(LoginInput);

impl FromRequest for LoginRequest {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let basic = basic_credentials(req);
        let no_body = req.headers().get(CONTENT_LENGTH).map_or_else(
            || !req.headers().contains_key(TRANSFER_ENCODING),
            |n| n.as_bytes() == b"0",
        );
        let json = match (&basic, no_body) {
            (Ok(Some(_)), true) => None,
            _ => Some(web::Json::<LoginInput>::from_request(req, payload)),
        };
        Box::pin(async move {
            let basic = basic?;
            let body = match json {
                Some(json) => Some(json.await?.into_inner()),
                None => None,
            };
            Ok(LoginRequest(combine(basic, body)?))
        })
    }
}

/// The user and password of an `Authorization: Basic` header; `None` without one (or with another scheme).
fn basic_credentials(req: &HttpRequest) -> Result<Option<(String, String)>, ApiError> {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = |why: &str| ApiError::bad_request("invalid_authorization", format!("Authorization: Basic {why}"));
    let raw = value.as_bytes();
    if raw.len() < 6 || !raw[..6].eq_ignore_ascii_case(b"basic ") {
        return Ok(None);
    }
    let encoded = std::str::from_utf8(&raw[6..])
        .map_err(|_| bad("must be base64"))?
        .trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| bad("must be base64"))?;
    let text = String::from_utf8(decoded).map_err(|_| bad("credentials must be UTF-8"))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| bad("credentials must be username:password"))?;
    Ok(Some((user.to_string(), password.to_string())))
}

/// One login from Basic credentials and a body: either alone, or both when they agree.
fn combine(basic: Option<(String, String)>, body: Option<LoginInput>) -> Result<LoginInput, ApiError> {
    match (basic, body) {
        (None, Some(input)) => Ok(input),
        (Some((username, password)), None) => Ok(LoginInput {
            username,
            password,
            provider: None,
            required_claims: Vec::new(),
            filter_claims: None,
            otp: None,
        }),
        (Some((username, password)), Some(input)) => {
            if input.username == username && input.password == password {
                Ok(input)
            } else {
                Err(ApiError::bad_request(
                    "conflicting_credentials",
                    "the Authorization header and the body name different credentials",
                ))
            }
        }
        (None, None) => Err(ApiError::bad_request("invalid_json", "no credentials")),
    }
}

#[utoipa::path(post, path = "/api/login", tag = "tokens", request_body(content = LoginInput,
        description = "The credentials; or none, with `Authorization: Basic base64(username:password)` (a password or an API key `tsk_…`)"),
    responses((status = 200, description = "Success", body = LoginResponse), TokenErrors))]
pub async fn login(state: web::Data<AppState>, req: HttpRequest, body: LoginRequest) -> Result<HttpResponse, ApiError> {
    let addr = client_addr(&req, &state);
    let (pair, username) = auth::login(&state, body.0, addr).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(LoginResponse::new(pair, username)))
}

#[utoipa::path(post, path = "/api/refresh", tag = "tokens", request_body = RefreshRequest, responses((status = 200, description = "Success", body = Pair), TokenErrors))]
pub async fn refresh(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let addr = client_addr(&req, &state);
    if let Err(l) = state.throttle.take_refresh(addr, state.clock.now() * 1000) {
        state.metrics.throttled.add("refresh");
        return Err(ApiError::TooManyRequests {
            code: "too_many_requests",
            retry_after: l.retry_after,
        });
    }
    let bearer = bearer_token(&req).map(str::to_string);
    let pair = auth::refresh(&state, body.into_inner().refresh, bearer).await?;
    Ok(HttpResponse::Ok().insert_header((CACHE_CONTROL, "no-store")).json(pair))
}

#[utoipa::path(get, path = "/api/pkeys", tag = "keys", responses((status = 200, description = "Success", body = PublicKeys)))]
/// Pre-serialized: clients poll this hard.
pub async fn pkeys(state: web::Data<AppState>) -> HttpResponse {
    let ring = state.keys.current();
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(ring.pkeys_body.clone())
}

#[utoipa::path(get, path = "/api/available_providers", tag = "tokens", responses((status = 200, description = "Success", body = Providers)))]
pub async fn available_providers(state: web::Data<AppState>) -> HttpResponse {
    let providers: Vec<_> = state
        .config
        .users
        .providers
        .iter()
        .map(|p| {
            let kind = p.kind.to_ascii_uppercase();
            json!({ "name": p.name, "provider_type": kind, "type_spec": format!("{kind}:{}", p.name) })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "providers": providers }))
}

#[utoipa::path(get, path = "/api/capabilities", tag = "tokens", security(("bearer" = [])), responses((status = 200, description = "Success", body = Capabilities), AdminErrors))]
pub async fn capabilities(state: web::Data<AppState>, caller: Admin) -> Result<HttpResponse, ApiError> {
    if !caller.0.may(Area::Totals, false) {
        return Err(ApiError::Forbidden);
    }
    let mut caps = Vec::new();
    if !state.config.server.disable_admin {
        caps.push("admin");
    }
    if !state.config.telemetry.disable_monitoring {
        caps.push("monitoring");
    }
    Ok(HttpResponse::Ok().json(json!({ "capabilities": caps })))
}
