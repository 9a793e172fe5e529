//! Stoke's token endpoints: `/api/login`, `/api/refresh`, `/api/pkeys`, `/api/available_providers`,
//! `/api/capabilities`.

use crate::routes::openapi::{AdminErrors, Capabilities, Providers, PublicKeys, TokenErrors};
use crate::services::auth::Pair;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
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

#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    refresh: String,
}

#[utoipa::path(post, path = "/api/login", tag = "tokens", request_body = LoginInput, responses((status = 200, description = "Success", body = LoginResponse), TokenErrors))]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginInput>,
) -> Result<HttpResponse, ApiError> {
    let addr = client_addr(&req, &state);
    let (pair, username) = auth::login(&state, body.into_inner(), addr).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(LoginResponse {
            token: pair.token,
            refresh: pair.refresh,
            username,
        }))
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
