//! The one error type of the service layer. Every flow (login, refresh, accounts, admin) fails with a
//! [`ServiceError`]; `error.rs` maps it to HTTP in one place, and the OAuth endpoints map it to RFC 6749 codes.

use crate::authz;
use crate::db::DbError;
use crate::services::passwords::HashError;
use crate::services::throttle::{Limited, ThrottleError};
use crate::services::tokens::SignError;

/// A cause kept for the log (never sent to the caller).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a service call failed; each variant is one kind of answer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// 400: bad input (`invalid_field`, `password_too_long`, `unknown_provider`, `invalid_token`, …).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// 401 `{}` on the token endpoints: wrong username or password, an unknown user, unmet `required_claims`,
    /// an invalid refresh token. Nothing more is said.
    #[error("not authorized")]
    BadCredentials,
    /// 401: no valid bearer token, or its user is gone.
    #[error("not authenticated")]
    Unauthenticated,
    /// 403: the caller lacks the letter (`forbidden`), or a policy or the configuration refuses the change
    /// (`read_only`, `superuser_required`, `registration_closed`, …).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// 404: no such entity.
    #[error("{0}")]
    NotFound(String),
    /// 409: a unique value is taken (the code names the field), or the change would break an invariant.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 422: well-formed input with a value this field cannot hold (an `stk` value that is no letter list).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// 429: a brute-force limit: this name or address must wait.
    #[error("too many attempts")]
    Limited(Limited),
    /// 503: too many password checks are waiting.
    #[error("busy")]
    Busy,
    /// 503: the database cannot be reached.
    #[error("database unavailable")]
    Unavailable,
    /// A second factor is needed, wrong or locked (`services::mfa`).
    #[error("{0}")]
    SecondFactor(SecondFactor),
    /// 500: a bug or an unexpected failure; the cause is logged, never sent.
    #[error("internal error")]
    Internal(#[source] Cause),
}

/// The answers of the second factor.
// No `Debug`: it holds tokens.
#[derive(Clone, thiserror::Error)]
pub enum SecondFactor {
    /// 401 `mfa_required` with `mfa_token`: the password was right; send a code to `/api/login/mfa`.
    #[error("a second factor is required")]
    Required { mfa_token: String },
    /// 401 `invalid_code`: a wrong, malformed or replayed code or recovery code.
    #[error("the code is not valid")]
    WrongCode,
    /// 401 `invalid_mfa_token`: unknown, expired, used or out of attempts.
    #[error("the mfa token is not valid; log in again")]
    InvalidToken,
    /// 429 `mfa_locked`: too many wrong codes; even the right code waits (`Retry-After`).
    #[error("too many wrong codes; retry after {0} s")]
    Locked(u64),
    /// 403 `mfa_enrollment_required` with `enrollment_token`: this account must enrol a second factor first.
    #[error("this account must enrol a second factor before it logs in")]
    EnrollmentRequired { enrollment_token: String },
}

impl std::fmt::Debug for SecondFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SecondFactor::Required { .. } => "Required",
            SecondFactor::WrongCode => "WrongCode",
            SecondFactor::InvalidToken => "InvalidToken",
            SecondFactor::Locked(_) => "Locked",
            SecondFactor::EnrollmentRequired { .. } => "EnrollmentRequired",
        })
    }
}

impl SecondFactor {
    pub fn code(&self) -> &'static str {
        match self {
            SecondFactor::Required { .. } => "mfa_required",
            SecondFactor::WrongCode => "invalid_code",
            SecondFactor::InvalidToken => "invalid_mfa_token",
            SecondFactor::Locked(_) => "mfa_locked",
            SecondFactor::EnrollmentRequired { .. } => "mfa_enrollment_required",
        }
    }
}

impl ServiceError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn internal(cause: impl Into<Cause>) -> Self {
        ServiceError::Internal(cause.into())
    }
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        if e.is_unique_violation() {
            // The writes check each unique value first and name it; this is a race lost to another writer.
            return ServiceError::conflict(
                "conflict",
                "a unique value (username, email, name, or claim short_name and value) is already taken",
            );
        }
        match e {
            DbError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                ServiceError::Unavailable
            }
            other => ServiceError::internal(other),
        }
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        ServiceError::from(DbError::Query(e))
    }
}

impl From<HashError> for ServiceError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ServiceError::Busy,
            other => ServiceError::internal(other),
        }
    }
}

impl From<ThrottleError> for ServiceError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Limited(l) => ServiceError::Limited(l),
            ThrottleError::Db(e) => e.into(),
        }
    }
}

impl From<SignError> for ServiceError {
    fn from(e: SignError) -> Self {
        match e {
            // A key still being made (an algorithm just added): try again shortly, as when busy.
            SignError::NoKey => {
                tracing::warn!("no signing key of the requested algorithm yet; answering 503");
                ServiceError::Busy
            }
            e => ServiceError::internal(e),
        }
    }
}

impl From<authz::Denied> for ServiceError {
    fn from(d: authz::Denied) -> Self {
        ServiceError::forbidden(d.code(), d.message())
    }
}

impl From<authz::Refusal> for ServiceError {
    fn from(r: authz::Refusal) -> Self {
        match r {
            authz::Refusal::Denied(d) => d.into(),
            authz::Refusal::LastSuperuser => {
                ServiceError::conflict("last_superuser", "this change would leave no user holding stk=S")
            }
        }
    }
}

impl From<serde_json::Error> for ServiceError {
    fn from(e: serde_json::Error) -> Self {
        ServiceError::internal(e)
    }
}

/// The cause and every source under it, `: `-separated, for the log.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_line_keeps_every_cause() {
        let e = ServiceError::from(HashError::Stopped);
        assert_eq!(chain(&e), "internal error: the hashing pool stopped");
        let db = ServiceError::from(DbError::Migration("table users already exists".into()));
        assert_eq!(
            chain(&db),
            "internal error: migration failed: table users already exists"
        );
    }

    #[test]
    fn a_unique_violation_is_a_conflict_wherever_it_happens() {
        let e = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            Box::new("UNIQUE constraint failed".to_string()),
        );
        assert!(matches!(
            ServiceError::from(e),
            ServiceError::Conflict { code: "conflict", .. }
        ));
    }
}
