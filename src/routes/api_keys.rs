//! API keys: `/api/me/api-keys` (the caller's own, with a user's token) and `/api/admin/users/{id}/api-keys`
//! (admins with `U`/`u`, within the rules of `crate::authz`). A key itself appears only in the answer that
//! created it.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::routes::auth::{Admin, Bearer};
use crate::routes::openapi::AdminErrors;
use crate::services::AppState;
use crate::services::admin;
use crate::services::api_keys::{self, ApiKey, ApiKeyCreated, ApiKeyInput};

type State = web::Data<AppState>;
type Reply = Result<HttpResponse, ApiError>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/me/api-keys", web::get().to(list_mine))
        .route("/api/me/api-keys", web::post().to(create_mine))
        .route("/api/me/api-keys/{key}", web::delete().to(revoke_mine))
        .route("/api/admin/users/{id}/api-keys", web::get().to(list_of_user))
        .route("/api/admin/users/{id}/api-keys", web::post().to(create_for_user))
        .route("/api/admin/users/{id}/api-keys/{key}", web::delete().to(revoke_of_user));
}

/// 201 with the new key, never cached.
fn created(key: ApiKeyCreated) -> Reply {
    Ok(HttpResponse::Created()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(key))
}

#[utoipa::path(get, path = "/api/me/api-keys", tag = "api-keys", security(("bearer" = [])),
    responses((status = 200, description = "The caller's keys, oldest first", body = [ApiKey]), AdminErrors))]
pub async fn list_mine(s: State, bearer: Bearer) -> Reply {
    Ok(HttpResponse::Ok().json(api_keys::list_mine(&s, &bearer.claims).await?))
}

#[utoipa::path(post, path = "/api/me/api-keys", tag = "api-keys", request_body = ApiKeyInput, security(("bearer" = [])),
    responses((status = 201, description = "The key, shown this once", body = ApiKeyCreated), AdminErrors))]
pub async fn create_mine(s: State, bearer: Bearer, body: web::Json<ApiKeyInput>) -> Reply {
    created(api_keys::create_mine(&s, &bearer.claims, body.into_inner()).await?)
}

#[utoipa::path(delete, path = "/api/me/api-keys/{key}", tag = "api-keys", security(("bearer" = [])),
    params(("key" = String, Path, description = "Key id")),
    responses((status = 204, description = "Revoked; its sessions ended"), AdminErrors))]
pub async fn revoke_mine(s: State, bearer: Bearer, key: web::Path<String>) -> Reply {
    api_keys::revoke_mine(&s, &bearer.claims, key.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/admin/users/{id}/api-keys", tag = "api-keys", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "The user's keys, oldest first", body = [ApiKey]), AdminErrors))]
pub async fn list_of_user(s: State, a: Admin, id: web::Path<i64>) -> Reply {
    Ok(HttpResponse::Ok().json(admin::user_api_keys(&s, &a.0, id.into_inner()).await?))
}

#[utoipa::path(post, path = "/api/admin/users/{id}/api-keys", tag = "api-keys", request_body = ApiKeyInput,
    security(("bearer" = [])), params(("id" = i64, Path, description = "User id")),
    responses((status = 201, description = "The key, shown this once", body = ApiKeyCreated), AdminErrors))]
pub async fn create_for_user(s: State, a: Admin, id: web::Path<i64>, body: web::Json<ApiKeyInput>) -> Reply {
    created(admin::create_api_key(&s, &a.0, id.into_inner(), body.into_inner()).await?)
}

#[utoipa::path(delete, path = "/api/admin/users/{id}/api-keys/{key}", tag = "api-keys", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id"), ("key" = String, Path, description = "Key id")),
    responses((status = 204, description = "Revoked; its sessions ended"), AdminErrors))]
pub async fn revoke_of_user(s: State, a: Admin, path: web::Path<(i64, String)>) -> Reply {
    let (id, key) = path.into_inner();
    admin::revoke_api_key(&s, &a.0, id, key).await?;
    Ok(HttpResponse::NoContent().finish())
}
