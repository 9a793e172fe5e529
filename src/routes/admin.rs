//! `/api/admin/…`: Stoke's admin CRUD, plus sessions, keys and the audit trail. Each handler extracts the
//! caller ([`Admin`]: the letters it holds now) and the input, calls one function of [`crate::services::admin`],
//! which checks the letters and the rules, and answers with what it returns.

use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::api_types::{
    AdminStatus, AuditEntry, AuditQuery, Claim, ClaimGroup, ClaimInput, GroupInput, GroupLink, KeyRingInfo, LinkInput,
    LocalUserCreate, LocalUserPassword, Message, PageQuery, Rotated, Session, TokenPreview, Totals, User, UserInput,
};
use crate::error::ApiError;
use crate::routes::auth::Admin;
use crate::routes::openapi::AdminErrors;
use crate::services::AppState;
use crate::services::admin;

type State = web::Data<AppState>;
type Reply = Result<HttpResponse, ApiError>;
type Query = web::Query<PageQuery>;
type Id = web::Path<i64>;

/// 200 with `value` as JSON.
fn ok<T: Serialize>(value: T) -> Reply {
    Ok(HttpResponse::Ok().json(value))
}

/// 204.
fn done() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

// ---- users

#[utoipa::path(get, path = "/api/admin/locks", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "The login names that must wait now (security.login_throttle), the longest lock first", body = [admin::LockedName]), AdminErrors))]
pub async fn list_locks(s: State, a: Admin) -> Reply {
    ok(admin::locks(&s, &a.0).await?)
}

#[utoipa::path(delete, path = "/api/admin/locks/{name}", tag = "admin", params(("name" = String, Path, description = "The locked name: a username or an email, as typed at the login")), security(("bearer" = [])), responses((status = 204, description = "Lifted: the name's failed logins are forgotten"), AdminErrors))]
pub async fn lift_lock(s: State, a: Admin, name: web::Path<String>) -> Reply {
    admin::lift_lock(&s, &a.0, name.into_inner()).await?;
    Ok(done())
}

#[utoipa::path(get, path = "/api/admin/users", tag = "admin", params(PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [User]), AdminErrors))]
pub async fn list_users(s: State, a: Admin, q: Query) -> Reply {
    ok(admin::users(&s, &a.0, admin::page(&q)?, admin::search(&q)?).await?)
}

#[utoipa::path(get, path = "/api/admin/users/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = User), AdminErrors))]
pub async fn get_user(s: State, a: Admin, id: Id) -> Reply {
    ok(admin::user(&s, &a.0, id.into_inner()).await?)
}

#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin", request_body = UserInput, params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = User), AdminErrors))]
pub async fn patch_user(s: State, a: Admin, id: Id, body: web::Json<UserInput>) -> Reply {
    ok(admin::update_user(&s, &a.0, id.into_inner(), body.into_inner()).await?)
}

#[utoipa::path(delete, path = "/api/admin/users/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn delete_user(s: State, a: Admin, id: Id) -> Reply {
    admin::delete_user(&s, &a.0, id.into_inner()).await?;
    Ok(done())
}

#[utoipa::path(get, path = "/api/admin/users/{id}/claim-groups", tag = "admin", params(("id" = i64, Path, description = "Entity id"), PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [ClaimGroup]), AdminErrors))]
pub async fn user_groups(s: State, a: Admin, id: Id, q: Query) -> Reply {
    ok(admin::user_groups(&s, &a.0, id.into_inner(), admin::page(&q)?).await?)
}

#[utoipa::path(get, path = "/api/admin/users/{id}/token-preview", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = TokenPreview), AdminErrors))]
pub async fn token_preview(s: State, a: Admin, id: Id) -> Reply {
    ok(admin::token_preview(&s, &a.0, id.into_inner()).await?)
}

#[utoipa::path(get, path = "/api/admin/users/{id}/sessions", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = [Session]), AdminErrors))]
pub async fn user_sessions(s: State, a: Admin, id: Id) -> Reply {
    ok(admin::user_sessions(&s, &a.0, id.into_inner()).await?)
}

#[utoipa::path(delete, path = "/api/admin/users/{id}/sessions", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn revoke_user_sessions(s: State, a: Admin, id: Id) -> Reply {
    admin::revoke_sessions(&s, &a.0, id.into_inner(), None).await?;
    Ok(done())
}

#[utoipa::path(delete, path = "/api/admin/users/{id}/sessions/{session}", tag = "admin", params(("id" = i64, Path, description = "Entity id"), ("session" = String, Path, description = "Session id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn revoke_user_session(s: State, a: Admin, path: web::Path<(i64, String)>) -> Reply {
    let (id, family) = path.into_inner();
    admin::revoke_sessions(&s, &a.0, id, Some(family)).await?;
    Ok(done())
}

#[utoipa::path(post, path = "/api/admin/localuser", tag = "admin", request_body = LocalUserCreate, security(("bearer" = [])), responses((status = 200, description = "Success", body = User), AdminErrors))]
pub async fn create_local_user(s: State, a: Admin, body: web::Json<LocalUserCreate>) -> Reply {
    ok(admin::create_local_user(&s, &a.0, body.into_inner()).await?)
}

#[utoipa::path(patch, path = "/api/admin/localuser", tag = "admin", request_body = LocalUserPassword, security(("bearer" = [])), responses((status = 200, description = "Success", body = Message), AdminErrors))]
pub async fn set_local_password(s: State, a: Admin, body: web::Json<LocalUserPassword>) -> Reply {
    admin::set_local_password(&s, &a.0, body.into_inner()).await?;
    ok(Message {
        message: "Password Updated".into(),
    })
}

#[utoipa::path(get, path = "/api/admin/totals", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "Success", body = Totals), AdminErrors))]
pub async fn totals(s: State, a: Admin) -> Reply {
    ok(admin::totals(&s, &a.0).await?)
}

// ---- claim groups

#[utoipa::path(get, path = "/api/admin/claim-groups", tag = "admin", params(PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [ClaimGroup]), AdminErrors))]
pub async fn list_groups(s: State, a: Admin, q: Query) -> Reply {
    ok(admin::groups(&s, &a.0, admin::page(&q)?, admin::search(&q)?).await?)
}

#[utoipa::path(get, path = "/api/admin/claim-groups/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = ClaimGroup), AdminErrors))]
pub async fn get_group(s: State, a: Admin, id: Id) -> Reply {
    ok(admin::group(&s, &a.0, id.into_inner()).await?)
}

#[utoipa::path(post, path = "/api/admin/claim-groups", tag = "admin", request_body = GroupInput, security(("bearer" = [])), responses((status = 200, description = "Success", body = ClaimGroup), AdminErrors))]
pub async fn create_group(s: State, a: Admin, body: web::Json<GroupInput>) -> Reply {
    ok(admin::create_group(&s, &a.0, body.into_inner()).await?)
}

#[utoipa::path(patch, path = "/api/admin/claim-groups/{id}", tag = "admin", request_body = GroupInput, params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = ClaimGroup), AdminErrors))]
pub async fn patch_group(s: State, a: Admin, id: Id, body: web::Json<GroupInput>) -> Reply {
    ok(admin::update_group(&s, &a.0, id.into_inner(), body.into_inner()).await?)
}

#[utoipa::path(delete, path = "/api/admin/claim-groups/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn delete_group(s: State, a: Admin, id: Id) -> Reply {
    admin::delete_group(&s, &a.0, id.into_inner()).await?;
    Ok(done())
}

#[utoipa::path(get, path = "/api/admin/claim-groups/{id}/claims", tag = "admin", params(("id" = i64, Path, description = "Entity id"), PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [Claim]), AdminErrors))]
pub async fn group_claims(s: State, a: Admin, id: Id, q: Query) -> Reply {
    ok(admin::group_claims(&s, &a.0, id.into_inner(), admin::page(&q)?).await?)
}

#[utoipa::path(get, path = "/api/admin/claim-groups/{id}/users", tag = "admin", params(("id" = i64, Path, description = "Entity id"), PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [User]), AdminErrors))]
pub async fn group_users(s: State, a: Admin, id: Id, q: Query) -> Reply {
    ok(admin::group_users(&s, &a.0, id.into_inner(), admin::page(&q)?).await?)
}

#[utoipa::path(get, path = "/api/admin/claim-groups/{id}/group-links", tag = "admin", params(("id" = i64, Path, description = "Entity id"), PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [GroupLink]), AdminErrors))]
pub async fn group_links_of(s: State, a: Admin, id: Id, q: Query) -> Reply {
    ok(admin::group_links(&s, &a.0, id.into_inner(), admin::page(&q)?).await?)
}

// ---- claims

#[utoipa::path(get, path = "/api/admin/claims", tag = "admin", params(PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [Claim]), AdminErrors))]
pub async fn list_claims(s: State, a: Admin, q: Query) -> Reply {
    ok(admin::claims(&s, &a.0, admin::page(&q)?, admin::search(&q)?).await?)
}

#[utoipa::path(get, path = "/api/admin/claims/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = Claim), AdminErrors))]
pub async fn get_claim(s: State, a: Admin, id: Id) -> Reply {
    ok(admin::claim(&s, &a.0, id.into_inner()).await?)
}

#[utoipa::path(post, path = "/api/admin/claims", tag = "admin", request_body = ClaimInput, security(("bearer" = [])), responses((status = 200, description = "Success", body = Claim), AdminErrors))]
pub async fn create_claim(s: State, a: Admin, body: web::Json<ClaimInput>) -> Reply {
    ok(admin::create_claim(&s, &a.0, body.into_inner()).await?)
}

#[utoipa::path(patch, path = "/api/admin/claims/{id}", tag = "admin", request_body = ClaimInput, params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = Claim), AdminErrors))]
pub async fn patch_claim(s: State, a: Admin, id: Id, body: web::Json<ClaimInput>) -> Reply {
    ok(admin::update_claim(&s, &a.0, id.into_inner(), body.into_inner()).await?)
}

#[utoipa::path(delete, path = "/api/admin/claims/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn delete_claim(s: State, a: Admin, id: Id) -> Reply {
    admin::delete_claim(&s, &a.0, id.into_inner()).await?;
    Ok(done())
}

#[utoipa::path(get, path = "/api/admin/claims/{id}/claim-groups", tag = "admin", params(("id" = i64, Path, description = "Entity id"), PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [ClaimGroup]), AdminErrors))]
pub async fn claim_groups_of(s: State, a: Admin, id: Id, q: Query) -> Reply {
    ok(admin::claim_groups(&s, &a.0, id.into_inner(), admin::page(&q)?).await?)
}

// ---- group links

#[utoipa::path(get, path = "/api/admin/group-links", tag = "admin", params(PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [GroupLink]), AdminErrors))]
pub async fn list_links(s: State, a: Admin, q: Query) -> Reply {
    ok(admin::links(&s, &a.0, admin::page(&q)?).await?)
}

#[utoipa::path(get, path = "/api/admin/group-links/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = GroupLink), AdminErrors))]
pub async fn get_link(s: State, a: Admin, id: Id) -> Reply {
    ok(admin::link(&s, &a.0, id.into_inner()).await?)
}

#[utoipa::path(post, path = "/api/admin/group-links", tag = "admin", request_body = LinkInput, security(("bearer" = [])), responses((status = 200, description = "Success", body = GroupLink), AdminErrors))]
pub async fn create_link(s: State, a: Admin, body: web::Json<LinkInput>) -> Reply {
    ok(admin::create_link(&s, &a.0, body.into_inner()).await?)
}

#[utoipa::path(patch, path = "/api/admin/group-links/{id}", tag = "admin", request_body = LinkInput, params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = GroupLink), AdminErrors))]
pub async fn patch_link(s: State, a: Admin, id: Id, body: web::Json<LinkInput>) -> Reply {
    ok(admin::update_link(&s, &a.0, id.into_inner(), body.into_inner()).await?)
}

#[utoipa::path(delete, path = "/api/admin/group-links/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn delete_link(s: State, a: Admin, id: Id) -> Reply {
    admin::delete_link(&s, &a.0, id.into_inner()).await?;
    Ok(done())
}

#[utoipa::path(get, path = "/api/admin/group-links/{id}/claim-group", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = ClaimGroup), AdminErrors))]
pub async fn link_group(s: State, a: Admin, id: Id) -> Reply {
    ok(admin::link_group(&s, &a.0, id.into_inner()).await?)
}

// ---- operations

#[utoipa::path(get, path = "/api/admin/status", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "Success", body = AdminStatus), AdminErrors))]
pub async fn status(s: State, a: Admin) -> Reply {
    ok(admin::status(&s, &a.0).await?)
}

#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(PageQuery, AuditQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [AuditEntry]), AdminErrors))]
pub async fn audit(s: State, a: Admin, q: Query, f: web::Query<AuditQuery>) -> Reply {
    ok(admin::audit_trail(&s, &a.0, admin::page(&q)?, &f).await?)
}

#[utoipa::path(get, path = "/api/admin/keys", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "Success", body = KeyRingInfo), AdminErrors))]
pub async fn keys(s: State, a: Admin) -> Reply {
    ok(admin::key_ring(&s, &a.0)?)
}

#[utoipa::path(post, path = "/api/admin/keys/rotate", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "Success", body = Rotated), AdminErrors))]
pub async fn rotate_keys(s: State, a: Admin) -> Reply {
    let kid = admin::rotate_keys(&s, &a.0).await?;
    ok(Rotated { kid })
}

/// Registers the admin routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/admin")
            .route("/users", web::get().to(list_users))
            .route("/users/{id}", web::get().to(get_user))
            .route("/users/{id}", web::patch().to(patch_user))
            .route("/users/{id}", web::delete().to(delete_user))
            .route("/users/{id}/claim-groups", web::get().to(user_groups))
            .route("/users/{id}/token-preview", web::get().to(token_preview))
            .route("/users/{id}/sessions", web::get().to(user_sessions))
            .route("/users/{id}/sessions", web::delete().to(revoke_user_sessions))
            .route("/users/{id}/sessions/{session}", web::delete().to(revoke_user_session))
            .route("/localuser", web::post().to(create_local_user))
            .route("/localuser", web::patch().to(set_local_password))
            .route("/totals", web::get().to(totals))
            .route("/locks", web::get().to(list_locks))
            .route("/locks/{name}", web::delete().to(lift_lock))
            .route("/audit", web::get().to(audit))
            .route("/status", web::get().to(status))
            .route("/keys", web::get().to(keys))
            .route("/keys/rotate", web::post().to(rotate_keys))
            .route("/claim-groups", web::get().to(list_groups))
            .route("/claim-groups", web::post().to(create_group))
            .route("/claim-groups/{id}", web::get().to(get_group))
            .route("/claim-groups/{id}", web::patch().to(patch_group))
            .route("/claim-groups/{id}", web::delete().to(delete_group))
            .route("/claim-groups/{id}/claims", web::get().to(group_claims))
            .route("/claim-groups/{id}/users", web::get().to(group_users))
            .route("/claim-groups/{id}/group-links", web::get().to(group_links_of))
            .route("/claims", web::get().to(list_claims))
            .route("/claims", web::post().to(create_claim))
            .route("/claims/{id}", web::get().to(get_claim))
            .route("/claims/{id}", web::patch().to(patch_claim))
            .route("/claims/{id}", web::delete().to(delete_claim))
            .route("/claims/{id}/claim-groups", web::get().to(claim_groups_of))
            .route("/group-links", web::get().to(list_links))
            .route("/group-links", web::post().to(create_link))
            .route("/group-links/{id}", web::get().to(get_link))
            .route("/group-links/{id}", web::patch().to(patch_link))
            .route("/group-links/{id}", web::delete().to(delete_link))
            .route("/group-links/{id}/claim-group", web::get().to(link_group)),
    );
}
