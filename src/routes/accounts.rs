//! Self-service account endpoints (DESIGN 4.3): `/api/register`, `/api/confirm`, `/api/password/*`,
//! `/api/me`, `/api/me/email`, `/api/logout`, `/api/anonymous`. Extract, identify the caller, call
//! `services::accounts`, map to a DTO.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::IntoResponses;

use crate::error::{ApiError, ErrorBody};
use crate::routes::auth::{Bearer, bearer_token, rate_limit};
use crate::routes::openapi::Status;
use crate::services::AppState;
use crate::services::accounts::{self, Confirmed, Profile, ProfileUpdate, RegisterInput, Registered};
use crate::services::throttle::Bucket;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/register", web::post().to(register))
        .route("/api/confirm", web::post().to(confirm))
        .route("/api/password/forgot", web::post().to(forgot_password))
        .route("/api/password/reset", web::post().to(reset_password))
        .route("/api/password/change", web::post().to(change_password))
        .route("/api/me", web::get().to(me))
        .route("/api/me", web::patch().to(update_me))
        .route("/api/me/email", web::post().to(change_email))
        .route("/api/logout", web::post().to(logout))
        .route("/api/anonymous", web::post().to(anonymous))
        .route("/api/public_key", web::get().to(public_key));
}

/// The error responses of the account endpoints.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum AccountErrors<'a> {
    /// Bad input: `invalid_json`, `invalid_field`, `invalid_email` (CR/LF, a second `@`, …), `weak_password`,
    /// `password_too_long`, `invalid_token` (a link that is unknown, used, superseded or expired),
    /// `wrong_password`, `same_email`.
    #[response(status = 400)]
    BadRequest(ErrorBody<'a>),
    /// No valid bearer token of a user (`unauthenticated`); anonymous tokens do not count.
    #[response(status = 401)]
    Unauthenticated(ErrorBody<'a>),
    /// Refused by configuration or account kind: `registration_closed`, `anonymous_token_required`,
    /// `invalid_anonymous_token`, `anonymous_disabled`, `email_disabled`, `not_local`.
    #[response(status = 403)]
    Forbidden(ErrorBody<'a>),
    /// Taken: `username_taken`, `email_taken`, `anonymous_token_used`.
    #[response(status = 409)]
    Conflict(ErrorBody<'a>),
    /// The body is larger than `server.max_body_bytes`.
    #[response(status = 413)]
    TooLarge(ErrorBody<'a>),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody<'a>),
    /// A rate limit of `security.rate_limits` (`too_many_requests`): register, forgot-password and anonymous
    /// tokens are token buckets per client address (forgot-password also per target address); or
    /// `too_many_attempts`: a password or email change whose current password was wrong too often counts
    /// against the name's login limit (`security.login_throttle`). See `Retry-After`.
    #[response(status = 429)]
    TooManyRequests(ErrorBody<'a>),
    /// The database is unreachable, too many password checks wait, or the request took longer than
    /// `server.timeout`; see `Retry-After`.
    #[response(status = 503)]
    Unavailable(ErrorBody<'a>),
}

/// The user a bearer token stands for, or 401.
async fn caller(state: &AppState, bearer: &Bearer) -> Result<i64, ApiError> {
    accounts::user_of(state, &bearer.claims)
        .await?
        .ok_or(ApiError::Unauthenticated)
}

fn status(code: actix_web::http::StatusCode, status: &str) -> HttpResponse {
    HttpResponse::build(code)
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(Status { status: status.into() })
}

#[utoipa::path(post, path = "/api/register", tag = "accounts", request_body = RegisterInput,
    responses(
        (status = 201, description = "Registered (`registration.mode: open`); log in next", body = Profile),
        (status = 202, description = "`registration.mode: confirm`: `{\"status\":\"confirmation_sent\"}`, the same whether or not the address has an account", body = Status),
        AccountErrors))]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<RegisterInput>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &req, Bucket::Register, &[]).await?;
    let bearer = bearer_token(&req).map(str::to_string);
    match accounts::register(&state, body.into_inner(), bearer).await? {
        Registered::Created(user) => {
            let profile = accounts::profile(&state, user.id).await?;
            Ok(HttpResponse::Created().json(profile))
        }
        Registered::ConfirmationSent => Ok(status(actix_web::http::StatusCode::ACCEPTED, "confirmation_sent")),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenInput {
    /// The token of the link (its `token` query parameter).
    pub token: String,
}

/// What a confirmation did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ConfirmResponse {
    /// `registered` (the account exists now) or `email_changed`.
    pub status: String,
    pub username: String,
}

#[utoipa::path(post, path = "/api/confirm", tag = "accounts", request_body = TokenInput,
    responses((status = 200, description = "The link was used", body = ConfirmResponse), AccountErrors))]
pub async fn confirm(state: web::Data<AppState>, body: web::Json<TokenInput>) -> Result<HttpResponse, ApiError> {
    // Not rate-limited: link tokens are 256-bit random and a wrong one costs one indexed read.
    let (status, user) = match accounts::confirm(&state, body.into_inner().token).await? {
        Confirmed::Registered(u) => ("registered", u),
        Confirmed::EmailChanged(u) => ("email_changed", u),
    };
    Ok(HttpResponse::Ok().json(ConfirmResponse {
        status: status.into(),
        username: user.username,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ForgotInput {
    pub email: String,
}

#[utoipa::path(post, path = "/api/password/forgot", tag = "accounts", request_body = ForgotInput,
    responses((status = 202, description = "`{\"status\":\"reset_requested\"}` whether or not the address has an account (a link is sent only when it has)", body = Status), AccountErrors))]
pub async fn forgot_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ForgotInput>,
) -> Result<HttpResponse, ApiError> {
    let email = body.into_inner().email;
    // Per client and per address, so no one floods a mailbox; the same for addresses without an account.
    rate_limit(&state, &req, Bucket::ForgotPassword, &[&email]).await?;
    accounts::forgot_password(&state, email).await?;
    Ok(status(actix_web::http::StatusCode::ACCEPTED, "reset_requested"))
}

// No `Debug`: it holds a password.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetInput {
    /// The token of the reset link.
    pub token: String,
    pub password: String,
}

#[utoipa::path(post, path = "/api/password/reset", tag = "accounts", request_body = ResetInput,
    responses((status = 200, description = "`{\"status\":\"password_reset\"}`; every session of the user was revoked", body = Status), AccountErrors))]
pub async fn reset_password(state: web::Data<AppState>, body: web::Json<ResetInput>) -> Result<HttpResponse, ApiError> {
    // Not rate-limited: the link token (256-bit) is checked before any hash is spent.
    let body = body.into_inner();
    accounts::reset_password(&state, body.token, body.password).await?;
    Ok(status(actix_web::http::StatusCode::OK, "password_reset"))
}

// No `Debug`: it holds passwords.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChangePasswordInput {
    #[serde(alias = "oldPassword")]
    pub old_password: String,
    #[serde(alias = "newPassword")]
    pub new_password: String,
}

#[utoipa::path(post, path = "/api/password/change", tag = "accounts", request_body = ChangePasswordInput, security(("bearer" = [])),
    responses((status = 200, description = "`{\"status\":\"password_changed\"}`; every session of the user was revoked: log in again", body = Status), AccountErrors))]
pub async fn change_password(
    state: web::Data<AppState>,
    bearer: Bearer,
    body: web::Json<ChangePasswordInput>,
) -> Result<HttpResponse, ApiError> {
    // Needs a valid access token and the current password (`wrong_password` is audited).
    let user = caller(&state, &bearer).await?;
    let body = body.into_inner();
    accounts::change_password(&state, user, body.old_password, body.new_password).await?;
    Ok(status(actix_web::http::StatusCode::OK, "password_changed"))
}

#[utoipa::path(get, path = "/api/me", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, description = "The caller's account", body = Profile), AccountErrors))]
pub async fn me(state: web::Data<AppState>, bearer: Bearer) -> Result<HttpResponse, ApiError> {
    let user = caller(&state, &bearer).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(accounts::profile(&state, user).await?))
}

#[utoipa::path(patch, path = "/api/me", tag = "accounts", request_body = ProfileUpdate, security(("bearer" = [])),
    responses((status = 200, description = "The updated account", body = Profile), AccountErrors))]
pub async fn update_me(
    state: web::Data<AppState>,
    bearer: Bearer,
    body: web::Json<ProfileUpdate>,
) -> Result<HttpResponse, ApiError> {
    let user = caller(&state, &bearer).await?;
    Ok(HttpResponse::Ok().json(accounts::update_profile(&state, user, body.into_inner()).await?))
}

// No `Debug`: it holds a password.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct EmailChangeInput {
    /// The new address; it replaces the old one only once its confirmation link is used.
    pub email: String,
    /// The current password.
    pub password: String,
}

#[utoipa::path(post, path = "/api/me/email", tag = "accounts", request_body = EmailChangeInput, security(("bearer" = [])),
    responses((status = 202, description = "`{\"status\":\"confirmation_sent\"}`: a link went to the new address", body = Status), AccountErrors))]
pub async fn change_email(
    state: web::Data<AppState>,
    bearer: Bearer,
    body: web::Json<EmailChangeInput>,
) -> Result<HttpResponse, ApiError> {
    // Needs a valid access token and the current password.
    let user = caller(&state, &bearer).await?;
    let body = body.into_inner();
    accounts::change_email(&state, user, body.email, body.password).await?;
    Ok(status(actix_web::http::StatusCode::ACCEPTED, "confirmation_sent"))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct LogoutInput {
    /// The session's current refresh token.
    pub refresh: String,
    /// End every session of the user, not only this one.
    #[serde(default)]
    pub all: bool,
}

#[utoipa::path(post, path = "/api/logout", tag = "accounts", request_body = LogoutInput,
    responses((status = 204, description = "The session (refresh family) is revoked; also when the token was unknown or revoked already"), AccountErrors))]
pub async fn logout(state: web::Data<AppState>, body: web::Json<LogoutInput>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    accounts::logout(&state, body.refresh, body.all).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An anonymous token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AnonymousToken {
    /// A JWT with `sub` `anon:<random>`, `anon: "true"` and `registration.anonymous_claims`.
    pub token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
}

#[utoipa::path(post, path = "/api/anonymous", tag = "accounts",
    responses((status = 200, description = "A short-lived anonymous token", body = AnonymousToken), AccountErrors))]
pub async fn anonymous(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &req, Bucket::Anonymous, &[]).await?;
    let (token, expires_in) = accounts::anonymous(&state)?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(AnonymousToken { token, expires_in }))
}

/// The public key of encrypted forms.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FormPublicKey {
    /// base64url SHA-256 of the key.
    pub kid: String,
    /// Always `RSA-OAEP-256` (OAEP with SHA-256 and MGF1-SHA-256).
    pub alg: String,
    /// SubjectPublicKeyInfo PEM (WebCrypto `importKey("spki")`, JSEncrypt, openssl).
    pub public_key: String,
}

#[utoipa::path(get, path = "/api/public_key", tag = "accounts",
    responses(
        (status = 200, description = "The RSA key for encrypted login/register bodies `{\"encrypted\": base64(RSA-OAEP-256(json))}` (`registration.rsa_encryption`); TLS is the real protection", body = FormPublicKey),
        AccountErrors))]
pub async fn public_key(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let key = state.form_key.as_ref().ok_or_else(|| ApiError::Refused {
        code: "encryption_disabled",
        message: "encrypted forms are not enabled".into(),
    })?;
    Ok(HttpResponse::Ok().json(FormPublicKey {
        kid: key.kid.clone(),
        alg: "RSA-OAEP-256".into(),
        public_key: key.pem.clone(),
    }))
}
