//! `/api/admin/…`: Stoke's admin CRUD, plus sessions. Each handler checks the caller's letters through the
//! admin service, calls it, and maps rows to the API's shapes.

use crate::api_types::{AuditEntry, Claim, ClaimGroup, GroupLink, KeyRingInfo, Session, User};
use crate::openapi::AdminErrors;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::api_types::{
    ClaimInput, GroupInput, LinkInput, LocalUserCreate, LocalUserPassword, Message, PageQuery, Rotated, Totals,
    UserInput,
};
use crate::db::catalog;
use crate::db::users;
use crate::db::{DbConn, DbError};
use crate::error::ApiError;
use crate::routes::auth::Admin;
use crate::services::admin::{self, AdminError, Area, Change, Policy};
use crate::state::AppState;

type Reply = Result<HttpResponse, ApiError>;
type Query = web::Query<PageQuery>;
type Id = web::Path<i64>;

fn json<T: Serialize>(value: T) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

/// A read in `area`, mapped to the API's shape.
async fn read<T, U, F>(state: &AppState, bearer: &Admin, area: Area, f: F, map: fn(T) -> U) -> Reply
where
    F: FnOnce(&mut DbConn) -> Result<T, AdminError> + Send + 'static,
    T: Send + 'static,
    U: Serialize,
{
    let value = admin::read(state, &bearer.0, area, f).await?;
    Ok(json(map(value)))
}

/// A write in `area`, answering 200 with the entity.
async fn write<T, F>(state: &AppState, bearer: &Admin, area: Area, change: Change, f: F) -> Reply
where
    F: FnOnce(&mut DbConn, &Policy, i64) -> Result<T, AdminError> + Send + 'static,
    T: Serialize + Send + 'static,
{
    Ok(json(admin::write(state, &bearer.0, area, change, f).await?))
}

/// A delete in `area`, answering 204.
async fn remove<F>(state: &AppState, bearer: &Admin, area: Area, change: Change, f: F) -> Reply
where
    F: FnOnce(&mut DbConn, &Policy, i64) -> Result<(), AdminError> + Send + 'static,
{
    admin::write(state, &bearer.0, area, change, f).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A paged list of an entity's children; 404 when the entity does not exist.
#[allow(clippy::too_many_arguments)]
async fn children<P, T, U>(
    state: &AppState,
    bearer: &Admin,
    area: Area,
    (what, id): (&'static str, i64),
    page: catalog::Page,
    parent: fn(&mut DbConn, i64) -> Result<Option<P>, DbError>,
    list: fn(&mut DbConn, i64, catalog::Page) -> Result<Vec<T>, DbError>,
    map: fn(T) -> U,
) -> Reply
where
    P: Send + 'static,
    T: Send + 'static,
    U: Serialize,
{
    let rows = admin::read(state, &bearer.0, area, move |c| {
        found(what, id)(parent(c, id)?)?;
        Ok(list(c, id, page)?)
    })
    .await?;
    Ok(json(all(rows, map)))
}

fn found<T>(what: &'static str, id: i64) -> impl FnOnce(Option<T>) -> Result<T, AdminError> {
    move |row| row.ok_or_else(|| AdminError::NotFound(format!("no {what} with id {id}")))
}

fn all<T, U>(rows: Vec<T>, f: fn(T) -> U) -> Vec<U> {
    rows.into_iter().map(f).collect()
}

// ---- users

#[utoipa::path(get, path = "/api/admin/users", tag = "admin", params(PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [User]), AdminErrors))]
pub async fn list_users(s: web::Data<AppState>, b: Admin, q: Query) -> Reply {
    let page = admin::page(&q)?;
    read(
        &s,
        &b,
        Area::Users,
        move |c| Ok(catalog::list_users(c, page)?),
        |r| all(r, admin::user_dto),
    )
    .await
}

#[utoipa::path(get, path = "/api/admin/users/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = User), AdminErrors))]
pub async fn get_user(s: web::Data<AppState>, b: Admin, id: Id) -> Reply {
    let id = id.into_inner();
    read(
        &s,
        &b,
        Area::Users,
        move |c| found("user", id)(users::find(c, id)?),
        admin::user_dto,
    )
    .await
}

#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin", request_body = UserInput, params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = User), AdminErrors))]
pub async fn patch_user(s: web::Data<AppState>, b: Admin, id: Id, body: web::Json<UserInput>) -> Reply {
    let (id, input) = (id.into_inner(), body.into_inner());
    write(&s, &b, Area::Users, Change::new("user.update", id), move |c, p, now| {
        admin::update_user(c, p, now, id, input)
    })
    .await
}

#[utoipa::path(delete, path = "/api/admin/users/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn delete_user(s: web::Data<AppState>, b: Admin, id: Id) -> Reply {
    let id = id.into_inner();
    remove(&s, &b, Area::Users, Change::new("user.delete", id), move |c, p, _| {
        admin::delete_user(c, p, id)
    })
    .await
}

#[utoipa::path(get, path = "/api/admin/users/{id}/claim-groups", tag = "admin", params(("id" = i64, Path, description = "Entity id"), PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [ClaimGroup]), AdminErrors))]
pub async fn user_groups(s: web::Data<AppState>, b: Admin, id: Id, q: Query) -> Reply {
    let (parent, page) = (("user", id.into_inner()), admin::page(&q)?);
    children(
        &s,
        &b,
        Area::Users,
        parent,
        page,
        users::find,
        catalog::groups_of_user,
        admin::group_dto,
    )
    .await
}

#[utoipa::path(get, path = "/api/admin/users/{id}/sessions", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = [Session]), AdminErrors))]
pub async fn user_sessions(s: web::Data<AppState>, b: Admin, id: Id) -> Reply {
    let id = id.into_inner();
    read(
        &s,
        &b,
        Area::Users,
        move |c| {
            found("user", id)(users::find(c, id)?)?;
            Ok(catalog::sessions_of(c, id)?)
        },
        |r| all(r, admin::session_dto),
    )
    .await
}

#[utoipa::path(delete, path = "/api/admin/users/{id}/sessions", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn revoke_user_sessions(s: web::Data<AppState>, b: Admin, id: Id) -> Reply {
    admin::revoke_sessions(&s, &b.0, id.into_inner(), None).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(delete, path = "/api/admin/users/{id}/sessions/{session}", tag = "admin", params(("id" = i64, Path, description = "Entity id"), ("session" = String, Path, description = "Session id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn revoke_user_session(s: web::Data<AppState>, b: Admin, path: web::Path<(i64, String)>) -> Reply {
    let (id, family) = path.into_inner();
    admin::revoke_sessions(&s, &b.0, id, Some(family)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/admin/localuser", tag = "admin", request_body = LocalUserCreate, security(("bearer" = [])), responses((status = 200, description = "Success", body = User), AdminErrors))]
pub async fn create_local_user(s: web::Data<AppState>, b: Admin, body: web::Json<LocalUserCreate>) -> Reply {
    Ok(json(admin::create_local_user(&s, &b.0, body.into_inner()).await?))
}

#[utoipa::path(patch, path = "/api/admin/localuser", tag = "admin", request_body = LocalUserPassword, security(("bearer" = [])), responses((status = 200, description = "Success", body = Message), AdminErrors))]
pub async fn set_local_password(s: web::Data<AppState>, b: Admin, body: web::Json<LocalUserPassword>) -> Reply {
    admin::set_local_password(&s, &b.0, body.into_inner()).await?;
    Ok(json(Message {
        message: "Password Updated".into(),
    }))
}

#[utoipa::path(get, path = "/api/admin/totals", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "Success", body = Totals), AdminErrors))]
pub async fn totals(s: web::Data<AppState>, b: Admin) -> Reply {
    read(
        &s,
        &b,
        Area::Totals,
        |c| Ok(catalog::totals(c)?),
        |(users, claims, claim_groups)| Totals {
            users,
            claims,
            claim_groups,
        },
    )
    .await
}

// ---- claim groups

#[utoipa::path(get, path = "/api/admin/claim-groups", tag = "admin", params(PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [ClaimGroup]), AdminErrors))]
pub async fn list_groups(s: web::Data<AppState>, b: Admin, q: Query) -> Reply {
    let page = admin::page(&q)?;
    read(
        &s,
        &b,
        Area::Groups,
        move |c| Ok(catalog::list_groups(c, page)?),
        |r| all(r, admin::group_dto),
    )
    .await
}

#[utoipa::path(get, path = "/api/admin/claim-groups/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = ClaimGroup), AdminErrors))]
pub async fn get_group(s: web::Data<AppState>, b: Admin, id: Id) -> Reply {
    let id = id.into_inner();
    read(
        &s,
        &b,
        Area::Groups,
        move |c| found("claim group", id)(catalog::group(c, id)?),
        admin::group_dto,
    )
    .await
}

#[utoipa::path(post, path = "/api/admin/claim-groups", tag = "admin", request_body = GroupInput, security(("bearer" = [])), responses((status = 200, description = "Success", body = ClaimGroup), AdminErrors))]
pub async fn create_group(s: web::Data<AppState>, b: Admin, body: web::Json<GroupInput>) -> Reply {
    let input = body.into_inner();
    write(
        &s,
        &b,
        Area::Groups,
        Change::new("claim_group.create", "new"),
        move |c, p, now| admin::create_group(c, p, now, input),
    )
    .await
}

#[utoipa::path(patch, path = "/api/admin/claim-groups/{id}", tag = "admin", request_body = GroupInput, params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = ClaimGroup), AdminErrors))]
pub async fn patch_group(s: web::Data<AppState>, b: Admin, id: Id, body: web::Json<GroupInput>) -> Reply {
    let (id, input) = (id.into_inner(), body.into_inner());
    write(
        &s,
        &b,
        Area::Groups,
        Change::new("claim_group.update", id),
        move |c, p, _| admin::update_group(c, p, id, input),
    )
    .await
}

#[utoipa::path(delete, path = "/api/admin/claim-groups/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn delete_group(s: web::Data<AppState>, b: Admin, id: Id) -> Reply {
    let id = id.into_inner();
    remove(
        &s,
        &b,
        Area::Groups,
        Change::new("claim_group.delete", id),
        move |c, p, _| admin::delete_group(c, p, id),
    )
    .await
}

#[utoipa::path(get, path = "/api/admin/claim-groups/{id}/claims", tag = "admin", params(("id" = i64, Path, description = "Entity id"), PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [Claim]), AdminErrors))]
pub async fn group_claims(s: web::Data<AppState>, b: Admin, id: Id, q: Query) -> Reply {
    let (parent, page) = (("claim group", id.into_inner()), admin::page(&q)?);
    children(
        &s,
        &b,
        Area::Groups,
        parent,
        page,
        catalog::group,
        catalog::claims_of_group,
        admin::claim_dto,
    )
    .await
}

#[utoipa::path(get, path = "/api/admin/claim-groups/{id}/users", tag = "admin", params(("id" = i64, Path, description = "Entity id"), PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [User]), AdminErrors))]
pub async fn group_users(s: web::Data<AppState>, b: Admin, id: Id, q: Query) -> Reply {
    let (parent, page) = (("claim group", id.into_inner()), admin::page(&q)?);
    children(
        &s,
        &b,
        Area::Groups,
        parent,
        page,
        catalog::group,
        catalog::users_of_group,
        admin::user_dto,
    )
    .await
}

#[utoipa::path(get, path = "/api/admin/claim-groups/{id}/group-links", tag = "admin", params(("id" = i64, Path, description = "Entity id"), PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [GroupLink]), AdminErrors))]
pub async fn group_links_of(s: web::Data<AppState>, b: Admin, id: Id, q: Query) -> Reply {
    let (parent, page) = (("claim group", id.into_inner()), admin::page(&q)?);
    children(
        &s,
        &b,
        Area::Groups,
        parent,
        page,
        catalog::group,
        catalog::links_of_group,
        admin::link_dto,
    )
    .await
}

// ---- claims

#[utoipa::path(get, path = "/api/admin/claims", tag = "admin", params(PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [Claim]), AdminErrors))]
pub async fn list_claims(s: web::Data<AppState>, b: Admin, q: Query) -> Reply {
    let page = admin::page(&q)?;
    read(
        &s,
        &b,
        Area::Claims,
        move |c| Ok(catalog::list_claims(c, page)?),
        |r| all(r, admin::claim_dto),
    )
    .await
}

#[utoipa::path(get, path = "/api/admin/claims/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = Claim), AdminErrors))]
pub async fn get_claim(s: web::Data<AppState>, b: Admin, id: Id) -> Reply {
    let id = id.into_inner();
    read(
        &s,
        &b,
        Area::Claims,
        move |c| found("claim", id)(catalog::claim(c, id)?),
        admin::claim_dto,
    )
    .await
}

#[utoipa::path(post, path = "/api/admin/claims", tag = "admin", request_body = ClaimInput, security(("bearer" = [])), responses((status = 200, description = "Success", body = Claim), AdminErrors))]
pub async fn create_claim(s: web::Data<AppState>, b: Admin, body: web::Json<ClaimInput>) -> Reply {
    let input = body.into_inner();
    write(
        &s,
        &b,
        Area::Claims,
        Change::new("claim.create", "new"),
        move |c, p, now| admin::create_claim(c, p, now, input),
    )
    .await
}

#[utoipa::path(patch, path = "/api/admin/claims/{id}", tag = "admin", request_body = ClaimInput, params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = Claim), AdminErrors))]
pub async fn patch_claim(s: web::Data<AppState>, b: Admin, id: Id, body: web::Json<ClaimInput>) -> Reply {
    let (id, input) = (id.into_inner(), body.into_inner());
    write(&s, &b, Area::Claims, Change::new("claim.update", id), move |c, p, _| {
        admin::update_claim(c, p, id, input)
    })
    .await
}

#[utoipa::path(delete, path = "/api/admin/claims/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn delete_claim(s: web::Data<AppState>, b: Admin, id: Id) -> Reply {
    let id = id.into_inner();
    remove(&s, &b, Area::Claims, Change::new("claim.delete", id), move |c, p, _| {
        admin::delete_claim(c, p, id)
    })
    .await
}

#[utoipa::path(get, path = "/api/admin/claims/{id}/claim-groups", tag = "admin", params(("id" = i64, Path, description = "Entity id"), PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [ClaimGroup]), AdminErrors))]
pub async fn claim_groups_of(s: web::Data<AppState>, b: Admin, id: Id, q: Query) -> Reply {
    let (parent, page) = (("claim", id.into_inner()), admin::page(&q)?);
    children(
        &s,
        &b,
        Area::Claims,
        parent,
        page,
        catalog::claim,
        catalog::groups_of_claim,
        admin::group_dto,
    )
    .await
}

// ---- group links

#[utoipa::path(get, path = "/api/admin/group-links", tag = "admin", params(PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [GroupLink]), AdminErrors))]
pub async fn list_links(s: web::Data<AppState>, b: Admin, q: Query) -> Reply {
    let page = admin::page(&q)?;
    read(
        &s,
        &b,
        Area::Groups,
        move |c| Ok(catalog::list_links(c, page)?),
        |r| all(r, admin::link_dto),
    )
    .await
}

#[utoipa::path(get, path = "/api/admin/group-links/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = GroupLink), AdminErrors))]
pub async fn get_link(s: web::Data<AppState>, b: Admin, id: Id) -> Reply {
    let id = id.into_inner();
    read(
        &s,
        &b,
        Area::Groups,
        move |c| found("group link", id)(catalog::link(c, id)?),
        admin::link_dto,
    )
    .await
}

#[utoipa::path(post, path = "/api/admin/group-links", tag = "admin", request_body = LinkInput, security(("bearer" = [])), responses((status = 200, description = "Success", body = GroupLink), AdminErrors))]
pub async fn create_link(s: web::Data<AppState>, b: Admin, body: web::Json<LinkInput>) -> Reply {
    let input = body.into_inner();
    write(
        &s,
        &b,
        Area::Groups,
        Change::new("group_link.create", "new"),
        move |c, p, now| admin::create_link(c, p, now, input),
    )
    .await
}

#[utoipa::path(patch, path = "/api/admin/group-links/{id}", tag = "admin", request_body = LinkInput, params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = GroupLink), AdminErrors))]
pub async fn patch_link(s: web::Data<AppState>, b: Admin, id: Id, body: web::Json<LinkInput>) -> Reply {
    let (id, input) = (id.into_inner(), body.into_inner());
    write(
        &s,
        &b,
        Area::Groups,
        Change::new("group_link.update", id),
        move |c, p, _| admin::update_link(c, p, id, input),
    )
    .await
}

#[utoipa::path(delete, path = "/api/admin/group-links/{id}", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 204, description = "Done"), AdminErrors))]
pub async fn delete_link(s: web::Data<AppState>, b: Admin, id: Id) -> Reply {
    let id = id.into_inner();
    remove(
        &s,
        &b,
        Area::Groups,
        Change::new("group_link.delete", id),
        move |c, p, _| admin::delete_link(c, p, id),
    )
    .await
}

#[utoipa::path(get, path = "/api/admin/group-links/{id}/claim-group", tag = "admin", params(("id" = i64, Path, description = "Entity id")), security(("bearer" = [])), responses((status = 200, description = "Success", body = ClaimGroup), AdminErrors))]
pub async fn link_group(s: web::Data<AppState>, b: Admin, id: Id) -> Reply {
    let id = id.into_inner();
    read(
        &s,
        &b,
        Area::Groups,
        move |c| {
            let link = found("group link", id)(catalog::link(c, id)?)?;
            let group = match link.claim_group_id {
                Some(g) => catalog::group(c, g)?,
                None => None,
            };
            group.ok_or_else(|| AdminError::NotFound(format!("group link {id} belongs to no claim group")))
        },
        admin::group_dto,
    )
    .await
}

// ---- operations

#[utoipa::path(get, path = "/api/admin/audit", tag = "admin", params(PageQuery), security(("bearer" = [])), responses((status = 200, description = "Success", body = [AuditEntry]), AdminErrors))]
pub async fn audit(s: web::Data<AppState>, b: Admin, q: Query) -> Reply {
    Ok(json(admin::audit_trail(&s, &b.0, admin::page(&q)?).await?))
}

#[utoipa::path(get, path = "/api/admin/keys", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "Success", body = KeyRingInfo), AdminErrors))]
pub async fn keys(s: web::Data<AppState>, b: Admin) -> Reply {
    Ok(json(admin::key_ring(&s, &b.0)?))
}

#[utoipa::path(post, path = "/api/admin/keys/rotate", tag = "admin", security(("bearer" = [])), responses((status = 200, description = "Success", body = Rotated), AdminErrors))]
pub async fn rotate_keys(s: web::Data<AppState>, b: Admin) -> Reply {
    let kid = admin::rotate_keys(&s, &b.0).await?;
    Ok(json(Rotated { kid }))
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
            .route("/users/{id}/sessions", web::get().to(user_sessions))
            .route("/users/{id}/sessions", web::delete().to(revoke_user_sessions))
            .route("/users/{id}/sessions/{session}", web::delete().to(revoke_user_session))
            .route("/localuser", web::post().to(create_local_user))
            .route("/localuser", web::patch().to(set_local_password))
            .route("/totals", web::get().to(totals))
            .route("/audit", web::get().to(audit))
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
