//! The second factor: enrolment (`/api/mfa/…`, with the user's token or, for a user who must enrol before
//! logging in, the enrolment token of that refusal), the second step of a login (`/api/login/mfa`), and the
//! admins' view and reset (`/api/admin/users/{id}/mfa`).

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::credential::Kind;
use crate::error::ApiError;
use crate::error::ErrorBody;
use crate::routes::auth::{Admin, bearer_token, extract};
use crate::routes::tokens::LoginResponse;
use crate::services::AppState;
use crate::services::admin;
use crate::services::api_keys;
use crate::services::auth;
use crate::services::mfa::{self, Enrolment, MfaStatus, Proof, SecondStep};

type State = web::Data<AppState>;

/// The error responses of the second-factor endpoints.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum MfaErrors<'a> {
    /// Bad input (`invalid_json`, `invalid_field`, `wrong_password`).
    #[response(status = 400)]
    BadRequest(ErrorBody<'a>),
    /// No valid bearer token (`unauthenticated`); a wrong, malformed or replayed code (`invalid_code`); an
    /// unknown, expired, used or exhausted mfa token (`invalid_mfa_token`).
    #[response(status = 401)]
    Unauthenticated(ErrorBody<'a>),
    /// `api_key_session`, `forbidden`, `superuser_required`, `letter_required`, `mfa_enrollment_required`.
    #[response(status = 403)]
    Forbidden(ErrorBody<'a>),
    /// No such user, or no factor to reset (`not_found`).
    #[response(status = 404)]
    NotFound(ErrorBody<'a>),
    /// `mfa_already_enrolled`, `no_pending_enrolment`, `mfa_not_enrolled`.
    #[response(status = 409)]
    Conflict(ErrorBody<'a>),
    /// The factor waits after wrong codes (`mfa_locked`); see `Retry-After`.
    #[response(status = 429)]
    TooManyRequests(ErrorBody<'a>),
    /// The database is unreachable, or the request took longer than `server.timeout`; see `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody<'a>),
}
type Reply = Result<HttpResponse, ApiError>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/mfa/totp", web::post().to(start))
        .route("/api/mfa/totp", web::delete().to(disable))
        .route("/api/mfa/totp/confirm", web::post().to(confirm))
        .route("/api/mfa/recovery-codes", web::post().to(regenerate))
        .route("/api/login/mfa", web::post().to(second_step))
        .route("/api/admin/users/{id}/mfa", web::get().to(status))
        .route("/api/admin/users/{id}/mfa", web::delete().to(reset));
}

/// Who asks: the user of a live session (not one started with an API key: a leaked key must not take over the
/// account's factor), or, where `enrolment` allows, the user of an enrolment token.
async fn caller(state: &AppState, req: &HttpRequest, enrolment: bool) -> Result<i64, ApiError> {
    match extract(req) {
        Ok(bearer) => {
            let (user, kind) = api_keys::session_of(state, &bearer.claims).await?;
            if kind == Kind::ApiKey {
                return Err(ApiError::Refused {
                    code: "api_key_session",
                    message: "a session started with an API key cannot change the second factor".into(),
                });
            }
            Ok(user)
        }
        Err(e) if !enrolment => Err(e),
        Err(e) => {
            let token = bearer_token(req).ok_or(e)?.to_string();
            mfa::enrolling_user(state, &token)
                .await?
                .ok_or(ApiError::Unauthenticated)
        }
    }
}

fn no_store(mut b: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    b.insert_header((CACHE_CONTROL, "no-store"));
    b
}

#[utoipa::path(post, path = "/api/mfa/totp", tag = "mfa", security(("bearer" = [])),
    responses((status = 200, description = "A new secret, its otpauth:// URI and QR code; confirm it with a code", body = Enrolment), MfaErrors))]
pub async fn start(s: State, req: HttpRequest) -> Reply {
    let user = caller(&s, &req, true).await?;
    Ok(no_store(HttpResponse::Ok()).json(mfa::start_enrolment(&s, user).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeInput {
    /// A current code of the authenticator app (6 digits).
    pub code: String,
}

/// Recovery codes, shown this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

#[utoipa::path(post, path = "/api/mfa/totp/confirm", tag = "mfa", request_body = CodeInput, security(("bearer" = [])),
    responses((status = 200, description = "Active; ten single-use recovery codes", body = RecoveryCodes), MfaErrors))]
pub async fn confirm(s: State, req: HttpRequest, body: web::Json<CodeInput>) -> Reply {
    let user = caller(&s, &req, true).await?;
    let recovery_codes = mfa::confirm_enrolment(&s, user, &body.code).await?;
    Ok(no_store(HttpResponse::Ok()).json(RecoveryCodes { recovery_codes }))
}

#[utoipa::path(delete, path = "/api/mfa/totp", tag = "mfa", request_body = Proof, security(("bearer" = [])),
    responses((status = 204, description = "The factor and its recovery codes are removed"), MfaErrors))]
pub async fn disable(s: State, req: HttpRequest, body: web::Json<Proof>) -> Reply {
    let user = caller(&s, &req, false).await?;
    mfa::disable(&s, user, body.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/mfa/recovery-codes", tag = "mfa", request_body = Proof, security(("bearer" = [])),
    responses((status = 200, description = "New recovery codes; the old ones no longer work", body = RecoveryCodes), MfaErrors))]
pub async fn regenerate(s: State, req: HttpRequest, body: web::Json<Proof>) -> Reply {
    let user = caller(&s, &req, false).await?;
    let recovery_codes = mfa::regenerate_codes(&s, user, body.into_inner()).await?;
    Ok(no_store(HttpResponse::Ok()).json(RecoveryCodes { recovery_codes }))
}

#[utoipa::path(post, path = "/api/login/mfa", tag = "tokens", request_body = SecondStep,
    responses((status = 200, description = "The usual token pair", body = LoginResponse), MfaErrors))]
pub async fn second_step(s: State, body: web::Json<SecondStep>) -> Reply {
    let (pair, username) = auth::login_second_step(&s, body.into_inner()).await?;
    Ok(no_store(HttpResponse::Ok()).json(LoginResponse::new(pair, username)))
}

#[utoipa::path(get, path = "/api/admin/users/{id}/mfa", tag = "mfa", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, description = "The user's second factor", body = MfaStatus), MfaErrors))]
pub async fn status(s: State, a: Admin, id: web::Path<i64>) -> Reply {
    Ok(HttpResponse::Ok().json(admin::user_mfa(&s, &a.0, id.into_inner()).await?))
}

#[utoipa::path(delete, path = "/api/admin/users/{id}/mfa", tag = "mfa", security(("bearer" = [])),
    params(("id" = i64, Path, description = "User id")),
    responses((status = 204, description = "Removed; the user's sessions ended, and they log in with the password alone until they enrol again"), MfaErrors))]
pub async fn reset(s: State, a: Admin, id: web::Path<i64>) -> Reply {
    admin::reset_mfa(&s, &a.0, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
