//! The one error type at the HTTP edge. Inner layers return their own precise errors; handlers map them here.
//! Bodies are `{"error": "<stable snake_case code>", "message": "<for humans>"}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::DbError;
use crate::services::ServiceError;
use crate::services::error::{Cause, SecondFactor, chain};

/// How long a client should wait before retrying when the database is unavailable.
pub const RETRY_AFTER_SECS: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed (bad JSON, a missing or invalid field).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401 `{}` (Stoke's clients read an empty object): bad credentials or an invalid refresh token.
    #[error("not authorized")]
    BadCredentials,
    /// 401: no valid bearer token.
    #[error("a valid bearer token is required")]
    Unauthenticated,
    /// 403: a valid token without the permission this needs.
    #[error("the token lacks the permission this needs")]
    Forbidden,
    /// 403 with a specific code: a policy refuses the change (`read_only`, `protected`, `superuser_required`).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// 422: a well-formed value this field cannot hold (e.g. an `stk` value that is no letter list).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 409: a unique value is taken, or the change would break an invariant.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 404: no such route or entity.
    #[error("{0}")]
    NotFound(String),
    /// 413: the body is larger than `server.max_body_bytes`.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 429 with `Retry-After`: a brute-force limit or token bucket refuses the request for now.
    #[error("too many attempts; retry after {retry_after} s")]
    TooManyRequests { code: &'static str, retry_after: u64 },
    /// 503 with `Retry-After`: more password checks are waiting than `security.hash_queue_limit` allows.
    #[error("the server is busy; retry shortly")]
    Busy,
    /// 503 with `Retry-After`: the request took longer than `server.timeout`.
    #[error("the request took too long; retry shortly")]
    Timeout,
    /// 503 with `Retry-After`: the database cannot be reached within the pool timeout.
    #[error("the database is unavailable; retry shortly")]
    Unavailable,
    /// 500: a bug or an unexpected failure; the cause is logged, never sent.
    #[error("{0}")]
    SecondFactor(crate::services::error::SecondFactor),
    #[error("internal error")]
    Internal(#[source] Cause),
}

/// The body of every error of Tessera's own endpoints.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// A stable snake_case code, e.g. `invalid_field`, `forbidden`, `conflict`.
    pub error: &'a str,
    /// What went wrong, for humans.
    pub message: String,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. } => code,
            ApiError::BadCredentials => "unauthorized",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden => "forbidden",
            ApiError::Refused { code, .. } | ApiError::Conflict { code, .. } | ApiError::Unprocessable { code, .. } => {
                code
            }
            ApiError::NotFound(_) => "not_found",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::TooManyRequests { code, .. } => code,
            ApiError::Busy => "busy",
            ApiError::Timeout => "timeout",
            ApiError::Unavailable => "database_unavailable",
            ApiError::SecondFactor(f) => f.code(),
            ApiError::Internal(_) => "internal_error",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::BadCredentials | ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::Refused { .. } => StatusCode::FORBIDDEN,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable | ApiError::Busy | ApiError::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::SecondFactor(f) => match f {
                SecondFactor::Locked(_) => StatusCode::TOO_MANY_REQUESTS,
                SecondFactor::EnrollmentRequired { .. } => StatusCode::FORBIDDEN,
                _ => StatusCode::UNAUTHORIZED,
            },
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status_code());
        if let ApiError::Internal(cause) = self {
            tracing::error!(cause = %chain(cause.as_ref()), "request failed");
        }
        if let ApiError::BadCredentials = self {
            return builder
                .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
                .json(serde_json::json!({}));
        }
        match self {
            ApiError::Unavailable | ApiError::Busy | ApiError::Timeout => {
                builder.insert_header(("Retry-After", RETRY_AFTER_SECS.to_string()));
            }
            ApiError::TooManyRequests { retry_after, .. }
            | ApiError::SecondFactor(SecondFactor::Locked(retry_after)) => {
                builder.insert_header(("Retry-After", retry_after.to_string()));
            }
            _ => {}
        }
        if let ApiError::SecondFactor(f) = self {
            let mut body = serde_json::json!({"error": f.code(), "message": f.to_string()});
            match f {
                SecondFactor::Required { mfa_token } => body["mfa_token"] = mfa_token.as_str().into(),
                SecondFactor::EnrollmentRequired { enrollment_token } => {
                    body["enrollment_token"] = enrollment_token.as_str().into()
                }
                _ => {}
            }
            return builder
                .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
                .json(body);
        }
        builder.json(ErrorBody {
            error: self.code(),
            message: self.to_string(),
        })
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "database unavailable");
                ApiError::Unavailable
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        use ServiceError as S;
        match e {
            S::Invalid { code, message } => ApiError::BadRequest { code, message },
            S::SecondFactor(f) => ApiError::SecondFactor(f),
            S::BadCredentials => ApiError::BadCredentials,
            S::Unauthenticated => ApiError::Unauthenticated,
            S::Forbidden { code: "forbidden", .. } => ApiError::Forbidden,
            S::Forbidden { code, message } => ApiError::Refused { code, message },
            S::NotFound(m) => ApiError::NotFound(m),
            S::Conflict { code, message } => ApiError::Conflict { code, message },
            S::Unprocessable { code, message } => ApiError::Unprocessable { code, message },
            S::Limited(l) => ApiError::TooManyRequests {
                code: "too_many_attempts",
                retry_after: l.retry_after,
            },
            S::Busy => ApiError::Busy,
            S::Unavailable => ApiError::Unavailable,
            S::Internal(cause) => ApiError::Internal(cause),
        }
    }
}
