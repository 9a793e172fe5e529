//! The OAuth 2.0 endpoints: `POST /oauth/token` (RFC 6749), `/oauth/revoke` (RFC 7009) and `/oauth/introspect`
//! (RFC 7662). Form bodies in, RFC-shaped JSON out; errors as RFC 6749 §5.2 `{error, error_description}`.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, WWW_AUTHENTICATE};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::error::RETRY_AFTER_SECS;
use crate::routes::auth::{Admin, client_addr};
use crate::routes::openapi::{OAuthErrors, TokenForm, TokenHintForm};
use crate::services::error::{SecondFactor, chain};
use crate::services::oauth::introspect::{self, Introspector};
use crate::services::oauth::token::{self, TokenRequest, TokenResponse};
use crate::services::oauth::{self, ClientAuth};
use crate::services::{AppState, ServiceError};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/token", web::post().to(token_endpoint))
        .route("/oauth/revoke", web::post().to(revoke_endpoint))
        .route("/oauth/introspect", web::post().to(introspect_endpoint));
}

/// The longest parameter value read; a longer one is `invalid_request`.
const MAX_VALUE: usize = 8192;

/// The error codes of RFC 6749 §5.2 and RFC 7009 §2.2.1 that are passed through as they are; any other
/// `Invalid` code is sent as `invalid_request` with its message.
const RFC_CODES: [&str; 7] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "unsupported_token_type",
];

/// An OAuth answer that went wrong, and whether the client used HTTP Basic (then `invalid_client` carries
/// `WWW-Authenticate`).
struct Failure {
    error: ServiceError,
    basic: bool,
}

impl From<ServiceError> for Failure {
    fn from(error: ServiceError) -> Self {
        Failure { error, basic: false }
    }
}

fn no_store(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"));
    b
}

fn error_response(f: Failure) -> HttpResponse {
    let body = |code: &str, description: String| json!({ "error": code, "error_description": description });
    match f.error {
        ServiceError::Invalid { code, message } => {
            let code = if RFC_CODES.contains(&code) {
                code
            } else {
                "invalid_request"
            };
            no_store(StatusCode::BAD_REQUEST).json(body(code, message))
        }
        ServiceError::BadCredentials => no_store(StatusCode::BAD_REQUEST).json(body(
            "invalid_grant",
            "the credentials or the refresh token are invalid, expired or revoked".into(),
        )),
        ServiceError::Unauthenticated => {
            let mut b = no_store(StatusCode::UNAUTHORIZED);
            if f.basic {
                b.insert_header((WWW_AUTHENTICATE, "Basic realm=\"tessera\", charset=\"UTF-8\""));
            }
            b.json(body("invalid_client", "client authentication failed".into()))
        }
        ServiceError::Forbidden { code, message } => {
            let code = if RFC_CODES.contains(&code) {
                code
            } else {
                "access_denied"
            };
            no_store(StatusCode::FORBIDDEN).json(body(code, message))
        }
        ServiceError::NotFound(message)
        | ServiceError::Conflict { message, .. }
        | ServiceError::Unprocessable { message, .. } => {
            no_store(StatusCode::BAD_REQUEST).json(body("invalid_request", message))
        }
        ServiceError::Limited(l) => no_store(StatusCode::TOO_MANY_REQUESTS)
            .insert_header(("Retry-After", l.retry_after.to_string()))
            .json(body(
                "too_many_attempts",
                format!("too many attempts; retry after {} s", l.retry_after),
            )),
        // The password grant of a user with a second factor: `mfa_required` (send `otp`) or a wrong code.
        ServiceError::SecondFactor(SecondFactor::Locked(retry_after)) => no_store(StatusCode::TOO_MANY_REQUESTS)
            .insert_header(("Retry-After", retry_after.to_string()))
            .json(body(
                "too_many_attempts",
                format!("too many wrong codes; retry after {retry_after} s"),
            )),
        ServiceError::SecondFactor(f) => no_store(StatusCode::BAD_REQUEST).json(body("invalid_grant", f.code().into())),
        ServiceError::Busy | ServiceError::Unavailable => no_store(StatusCode::SERVICE_UNAVAILABLE)
            .insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()))
            .json(body(
                "temporarily_unavailable",
                "the server is busy; retry shortly".into(),
            )),
        ServiceError::Internal(cause) => {
            tracing::error!(cause = %chain(cause.as_ref()), "OAuth request failed");
            no_store(StatusCode::INTERNAL_SERVER_ERROR).json(body("server_error", "internal error".into()))
        }
    }
}

fn invalid_request(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid("invalid_request", message)
}

/// The parameters of a form body: `application/x-www-form-urlencoded` only (a JSON body is `invalid_request`,
/// not 415), every parameter at most once (RFC 6749 §3.2), no value longer than [`MAX_VALUE`].
fn form(req: &HttpRequest, body: &[u8]) -> Result<HashMap<String, String>, ServiceError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(invalid_request(
            "the body must be application/x-www-form-urlencoded (RFC 6749 §4)",
        ));
    }
    let mut params = HashMap::new();
    for (key, value) in form_urlencoded::parse(body) {
        if value.len() > MAX_VALUE || key.len() > 64 {
            return Err(invalid_request(format!("parameter {:.64} is too long", key)));
        }
        if params.insert(key.to_string(), value.into_owned()).is_some() {
            return Err(invalid_request(format!("parameter {key} is repeated")));
        }
    }
    Ok(params)
}

/// The client credentials of a request: `Authorization: Basic` (id and secret form-urlencoded, RFC 6749
/// §2.3.1) and the form's `client_id` / `client_secret`.
fn client_auth(req: &HttpRequest, params: &mut HashMap<String, String>) -> Result<ClientAuth, Failure> {
    let basic = match req.headers().get(AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value.to_str().unwrap_or("");
            match value.split_once(' ') {
                Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
                    let decoded = STANDARD
                        .decode(rest.trim())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .and_then(|s| s.split_once(':').map(|(i, p)| (form_decode(i), form_decode(p))));
                    match decoded {
                        Some(pair) => Some(pair),
                        None => {
                            return Err(Failure {
                                error: ServiceError::Unauthenticated,
                                basic: true,
                            });
                        }
                    }
                }
                // A bearer token is not client authentication; introspection reads it separately.
                _ => None,
            }
        }
    };
    Ok(ClientAuth {
        basic,
        client_id: params.remove("client_id"),
        client_secret: params.remove("client_secret"),
    })
}

/// `application/x-www-form-urlencoded` decoding of one value (`+` is a space).
fn form_decode(s: &str) -> String {
    form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[utoipa::path(post, path = "/oauth/token", tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded",
        description = "RFC 6749; the client's credentials with HTTP Basic or in the form"),
    responses((status = 200, description = "The tokens", body = TokenResponse), OAuthErrors))]
pub async fn token_endpoint(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match token_inner(&state, &req, &body).await {
        Ok(answer) => no_store(StatusCode::OK).json(answer),
        Err(f) => error_response(f),
    }
}

async fn token_inner(state: &AppState, req: &HttpRequest, body: &[u8]) -> Result<TokenResponse, Failure> {
    let mut params = form(req, body)?;
    let auth = client_auth(req, &mut params)?;
    let basic = auth.used_basic();
    let request = TokenRequest {
        grant_type: params.remove("grant_type"),
        scope: params.remove("scope"),
        username: params.remove("username"),
        password: params.remove("password"),
        otp: params.remove("otp"),
        refresh_token: params.remove("refresh_token"),
    };
    token::token(state, &auth, request, client_addr(req, state))
        .await
        .map_err(|error| Failure { error, basic })
}

#[utoipa::path(post, path = "/oauth/revoke", tag = "oauth",
    request_body(content = TokenHintForm, content_type = "application/x-www-form-urlencoded",
        description = "RFC 7009; the client's credentials with HTTP Basic or in the form"),
    responses((status = 200, description = "Revoked, or unknown, or another client's: the same answer"), OAuthErrors))]
pub async fn revoke_endpoint(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let result: Result<(), Failure> = async {
        let mut params = form(&req, &body)?;
        let auth = client_auth(&req, &mut params)?;
        let basic = auth.used_basic();
        let token = params
            .remove("token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid_request("token is required"))?;
        let client = oauth::auth::authenticate(&state, &auth, client_addr(&req, &state))
            .await
            .map_err(|error| Failure { error, basic })?;
        introspect::revoke(&state, &client, &token).await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => no_store(StatusCode::OK).finish(),
        Err(f) => error_response(f),
    }
}

#[utoipa::path(post, path = "/oauth/introspect", tag = "oauth",
    request_body(content = TokenHintForm, content_type = "application/x-www-form-urlencoded",
        description = "RFC 7662; a confidential client with `introspect: true` (HTTP Basic or the form), or an admin bearer token with stk `s` or `S`"),
    responses((status = 200, description = "`{\"active\":false}`, or the token's `active scope client_id username token_type exp iat nbf sub aud iss jti`", body = Object), OAuthErrors))]
pub async fn introspect_endpoint(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let result: Result<serde_json::Value, Failure> = async {
        let mut params = form(&req, &body)?;
        let token = params
            .remove("token")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid_request("token is required"))?;
        let bearer = crate::routes::auth::bearer_token(&req).is_some();
        let caller = if bearer {
            let admin = Admin::extract(&req).await.map_err(|_| ServiceError::Unauthenticated)?;
            Introspector::Admin(admin.0)
        } else {
            let auth = client_auth(&req, &mut params)?;
            let basic = auth.used_basic();
            let client = oauth::auth::authenticate(&state, &auth, client_addr(&req, &state))
                .await
                .map_err(|error| Failure { error, basic })?;
            Introspector::Client(client)
        };
        Ok(introspect::introspect(&state, &caller, &token).await?)
    }
    .await;
    match result {
        Ok(answer) => no_store(StatusCode::OK).json(answer),
        Err(f) => error_response(f),
    }
}
