//! The admin API's reads: one named function per route, each checking the caller's letters for its area, then
//! reading on the blocking pool and mapping rows to the API's shapes.

use crate::api_types::{Claim, ClaimGroup, GroupLink, Session, TokenPreview, Totals, User};
use crate::db::catalog::{self, Page};
use crate::db::{DbConn, DbError, users};
use crate::services::AppState;

use super::{Area, Caller, ServiceError, claim_dto, group_dto, link_dto, read, session_dto, user_dto};

fn found<T>(what: &'static str, id: i64) -> impl FnOnce(Option<T>) -> Result<T, ServiceError> {
    move |row| row.ok_or_else(|| ServiceError::NotFound(format!("no {what} with id {id}")))
}

fn all<T, U>(rows: Vec<T>, f: fn(T) -> U) -> Vec<U> {
    rows.into_iter().map(f).collect()
}

/// A paged list in `area`.
async fn list<T, U>(
    state: &AppState,
    caller: &Caller,
    area: Area,
    page: Page,
    query: fn(&mut DbConn, Page) -> Result<Vec<T>, DbError>,
    map: fn(T) -> U,
) -> Result<Vec<U>, ServiceError>
where
    T: Send + 'static,
{
    let rows = read(state, caller, area, move |c| Ok(query(c, page)?)).await?;
    Ok(all(rows, map))
}

/// A paged list in `area`, or with `q` the page of those `search` finds.
async fn searched<T, U>(
    state: &AppState,
    caller: &Caller,
    (area, page, q): (Area, Page, Option<String>),
    list: fn(&mut DbConn, Page) -> Result<Vec<T>, DbError>,
    search: fn(&mut DbConn, Page, &str) -> Result<Vec<T>, DbError>,
    map: fn(T) -> U,
) -> Result<Vec<U>, ServiceError>
where
    T: Send + 'static,
{
    let rows = read(state, caller, area, move |c| {
        Ok(match q.as_deref() {
            Some(q) => search(c, page, q)?,
            None => list(c, page)?,
        })
    })
    .await?;
    Ok(all(rows, map))
}

/// One entity in `area` by id; 404 when there is none.
async fn one<T, U>(
    state: &AppState,
    caller: &Caller,
    (area, what): (Area, &'static str),
    id: i64,
    query: fn(&mut DbConn, i64) -> Result<Option<T>, DbError>,
    map: fn(T) -> U,
) -> Result<U, ServiceError>
where
    T: Send + 'static,
{
    let row = read(state, caller, area, move |c| found(what, id)(query(c, id)?)).await?;
    Ok(map(row))
}

/// What a paged list of an entity's children reads: the parent's kind, how to find it, how to list them.
struct Children<P, T> {
    area: Area,
    what: &'static str,
    parent: fn(&mut DbConn, i64) -> Result<Option<P>, DbError>,
    list: fn(&mut DbConn, i64, Page) -> Result<Vec<T>, DbError>,
}

/// A paged list of an entity's children; 404 when the entity does not exist.
async fn children<P, T, U>(
    state: &AppState,
    caller: &Caller,
    of: Children<P, T>,
    (id, page): (i64, Page),
    map: fn(T) -> U,
) -> Result<Vec<U>, ServiceError>
where
    P: Send + 'static,
    T: Send + 'static,
{
    let Children {
        area,
        what,
        parent,
        list,
    } = of;
    let rows = read(state, caller, area, move |c| {
        found(what, id)(parent(c, id)?)?;
        Ok(list(c, id, page)?)
    })
    .await?;
    Ok(all(rows, map))
}

pub async fn users(
    state: &AppState,
    caller: &Caller,
    page: Page,
    q: Option<String>,
) -> Result<Vec<User>, ServiceError> {
    let what = (Area::Users, page, q);
    searched(
        state,
        caller,
        what,
        catalog::list_users,
        catalog::search_users,
        user_dto,
    )
    .await
}

pub async fn user(state: &AppState, caller: &Caller, id: i64) -> Result<User, ServiceError> {
    one(state, caller, (Area::Users, "user"), id, users::find, user_dto).await
}

pub async fn user_groups(
    state: &AppState,
    caller: &Caller,
    id: i64,
    page: Page,
) -> Result<Vec<ClaimGroup>, ServiceError> {
    let of = Children {
        area: Area::Users,
        what: "user",
        parent: users::find,
        list: catalog::groups_of_user,
    };
    children(state, caller, of, (id, page), group_dto).await
}

/// The claims of the token `id`'s next login would get (the login their source implies, with the second
/// factor when they have one) and the token's size, built by the same functions a login uses. It shows claim
/// values, so it needs the right to read claims as well as users: a `u` reader alone does not learn who holds
/// which `stk` letters through it.
pub async fn token_preview(state: &AppState, caller: &Caller, id: i64) -> Result<TokenPreview, ServiceError> {
    use crate::credential::{Kind, Login};
    caller.require(Area::Claims, false)?;
    let (user, held, second_factor) = read(state, caller, Area::Users, move |c| {
        let user = found("user", id)(users::find(c, id)?)?;
        let second_factor = crate::db::mfa::factor(c, id)?.is_some_and(|f| f.confirmed_at.is_some());
        let kind = match user.source.as_str() {
            s if s.starts_with("LDAP") => Kind::Ldap,
            s if s.starts_with("OIDC") => Kind::Oidc,
            _ => Kind::Password,
        };
        let held = users::claims_for(c, id, Some(Login::new(kind, second_factor)))?;
        Ok((user, (kind, held), second_factor))
    })
    .await?;
    let (kind, held) = held;
    let now = state.clock.now();
    let session = crate::services::tokens::new_family_id();
    let view = crate::services::tokens::SessionView {
        id: &session,
        filter: None,
        kind: Some(kind),
        second_factor: second_factor.then_some("otp"),
        refresh_count: 0,
    };
    let groups = crate::services::tokens::group_claims(&held);
    let claims = crate::services::tokens::build_claims(&state.tokens, &user, groups, &view, now);
    // Signed for its length only; the token is dropped here.
    let size = crate::services::tokens::sign(&state.keys.current(), &claims, now)?.len();
    let login = match kind {
        Kind::Ldap => "ldap",
        Kind::Oidc => "oidc",
        _ => "password",
    };
    Ok(TokenPreview {
        login: if second_factor {
            format!("{login}+mfa")
        } else {
            login.into()
        },
        claims,
        size,
    })
}

/// Every session of a user, newest first.
pub async fn user_sessions(state: &AppState, caller: &Caller, id: i64) -> Result<Vec<Session>, ServiceError> {
    let rows = read(state, caller, Area::Users, move |c| {
        found("user", id)(users::find(c, id)?)?;
        Ok(catalog::sessions_of(c, id)?)
    })
    .await?;
    Ok(all(rows, session_dto))
}

pub async fn totals(state: &AppState, caller: &Caller) -> Result<Totals, ServiceError> {
    let (users, claims, claim_groups) = read(state, caller, Area::Totals, |c| Ok(catalog::totals(c)?)).await?;
    Ok(Totals {
        users,
        claims,
        claim_groups,
    })
}

pub async fn groups(
    state: &AppState,
    caller: &Caller,
    page: Page,
    q: Option<String>,
) -> Result<Vec<ClaimGroup>, ServiceError> {
    let what = (Area::Groups, page, q);
    searched(
        state,
        caller,
        what,
        catalog::list_groups,
        catalog::search_groups,
        group_dto,
    )
    .await
}

pub async fn group(state: &AppState, caller: &Caller, id: i64) -> Result<ClaimGroup, ServiceError> {
    one(
        state,
        caller,
        (Area::Groups, "claim group"),
        id,
        catalog::group,
        group_dto,
    )
    .await
}

/// The children of a claim group, as the admin API lists them.
fn of_group<T>(list: fn(&mut DbConn, i64, Page) -> Result<Vec<T>, DbError>) -> Children<catalog::GroupRow, T> {
    Children {
        area: Area::Groups,
        what: "claim group",
        parent: catalog::group,
        list,
    }
}

pub async fn group_claims(state: &AppState, caller: &Caller, id: i64, page: Page) -> Result<Vec<Claim>, ServiceError> {
    children(state, caller, of_group(catalog::claims_of_group), (id, page), claim_dto).await
}

pub async fn group_users(state: &AppState, caller: &Caller, id: i64, page: Page) -> Result<Vec<User>, ServiceError> {
    children(state, caller, of_group(catalog::users_of_group), (id, page), user_dto).await
}

pub async fn group_links(
    state: &AppState,
    caller: &Caller,
    id: i64,
    page: Page,
) -> Result<Vec<GroupLink>, ServiceError> {
    children(state, caller, of_group(catalog::links_of_group), (id, page), link_dto).await
}

pub async fn claims(
    state: &AppState,
    caller: &Caller,
    page: Page,
    q: Option<String>,
) -> Result<Vec<Claim>, ServiceError> {
    let what = (Area::Claims, page, q);
    searched(
        state,
        caller,
        what,
        catalog::list_claims,
        catalog::search_claims,
        claim_dto,
    )
    .await
}

pub async fn claim(state: &AppState, caller: &Caller, id: i64) -> Result<Claim, ServiceError> {
    one(state, caller, (Area::Claims, "claim"), id, catalog::claim, claim_dto).await
}

pub async fn claim_groups(
    state: &AppState,
    caller: &Caller,
    id: i64,
    page: Page,
) -> Result<Vec<ClaimGroup>, ServiceError> {
    let of = Children {
        area: Area::Claims,
        what: "claim",
        parent: catalog::claim,
        list: catalog::groups_of_claim,
    };
    children(state, caller, of, (id, page), group_dto).await
}

pub async fn links(state: &AppState, caller: &Caller, page: Page) -> Result<Vec<GroupLink>, ServiceError> {
    list(state, caller, Area::Groups, page, catalog::list_links, link_dto).await
}

pub async fn link(state: &AppState, caller: &Caller, id: i64) -> Result<GroupLink, ServiceError> {
    one(state, caller, (Area::Groups, "group link"), id, catalog::link, link_dto).await
}

/// The claim group a link belongs to; 404 when the link does not exist or belongs to none.
pub async fn link_group(state: &AppState, caller: &Caller, id: i64) -> Result<ClaimGroup, ServiceError> {
    let row = read(state, caller, Area::Groups, move |c| {
        let link = found("group link", id)(catalog::link(c, id)?)?;
        let group = match link.claim_group_id {
            Some(g) => catalog::group(c, g)?,
            None => None,
        };
        group.ok_or_else(|| ServiceError::NotFound(format!("group link {id} belongs to no claim group")))
    })
    .await?;
    Ok(group_dto(row))
}
