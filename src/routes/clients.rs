//! `/api/admin/clients`: the OAuth 2.0 clients (superusers write; read-all operators read). Every path takes the
//! `client_id`. A secret appears in an answer once: when the client is created or its secret rotated.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};

use crate::api_types::{ClientCreated, ClientInput, OAuthClient, PageQuery};
use crate::error::ApiError;
use crate::routes::auth::Admin;
use crate::routes::openapi::AdminErrors;
use crate::services::AppState;
use crate::services::admin::{self, clients};

type State = web::Data<AppState>;
type Reply = Result<HttpResponse, ApiError>;
type ClientId = web::Path<String>;

/// 200 with a secret in it: never cached.
fn secret(value: ClientCreated) -> Reply {
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(value))
}

#[utoipa::path(get, path = "/api/admin/clients", tag = "admin", params(PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [OAuthClient]), AdminErrors))]
pub async fn list_clients(s: State, a: Admin, q: web::Query<PageQuery>) -> Reply {
    Ok(HttpResponse::Ok().json(clients::list(&s, &a.0, admin::page(&q)?).await?))
}

#[utoipa::path(post, path = "/api/admin/clients", tag = "admin", request_body = ClientInput, security(("bearer" = [])), responses((status = 200, description = "The client, with its `client_secret` (confidential clients): shown this once", body = ClientCreated), AdminErrors))]
pub async fn create_client(s: State, a: Admin, body: web::Json<ClientInput>) -> Reply {
    secret(clients::create(&s, &a.0, body.into_inner()).await?)
}

#[utoipa::path(get, path = "/api/admin/clients/{id}", tag = "admin", params(("id" = String, Path, description = "client_id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = OAuthClient), AdminErrors))]
pub async fn get_client(s: State, a: Admin, id: ClientId) -> Reply {
    Ok(HttpResponse::Ok().json(clients::get(&s, &a.0, id.into_inner()).await?))
}

#[utoipa::path(patch, path = "/api/admin/clients/{id}", tag = "admin", request_body = ClientInput, params(("id" = String, Path, description = "client_id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = OAuthClient), AdminErrors))]
pub async fn patch_client(s: State, a: Admin, id: ClientId, body: web::Json<ClientInput>) -> Reply {
    Ok(HttpResponse::Ok().json(clients::update(&s, &a.0, id.into_inner(), body.into_inner()).await?))
}

#[utoipa::path(delete, path = "/api/admin/clients/{id}", tag = "admin", params(("id" = String, Path, description = "client_id")), security(("bearer" = [])), responses((status = 204, description = "Deleted; its sessions ended with it"), AdminErrors))]
pub async fn delete_client(s: State, a: Admin, id: ClientId) -> Reply {
    clients::delete(&s, &a.0, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/admin/clients/{id}/secret", tag = "admin", params(("id" = String, Path, description = "client_id")), security(("bearer" = [])), responses((status = 200, description = "The new `client_secret`, shown this once; the previous one works for `oauth.secret_rotation_overlap`", body = ClientCreated), AdminErrors))]
pub async fn rotate_client_secret(s: State, a: Admin, id: ClientId) -> Reply {
    secret(clients::rotate_secret(&s, &a.0, id.into_inner()).await?)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/clients", web::get().to(list_clients))
        .route("/api/admin/clients", web::post().to(create_client))
        .route("/api/admin/clients/{id}", web::get().to(get_client))
        .route("/api/admin/clients/{id}", web::patch().to(patch_client))
        .route("/api/admin/clients/{id}", web::delete().to(delete_client))
        .route("/api/admin/clients/{id}/secret", web::post().to(rotate_client_secret));
}
