//! The second factor: TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, the previous and the next step accepted, as
//! authenticator apps expect) with single-use recovery codes.
//!
//! Every code is checked by [`check_code`] (and every recovery code by [`check_recovery_code`]), whatever the
//! path: enrolment, disabling, a login in one request (`otp`), the second step of `/api/login/mfa`. Each
//! takes the factor's turn first ([`db::reserve_attempt`]: one try per second between all requests and
//! replicas), so a burst of parallel guesses gets no further than guesses one after another; a code is
//! accepted once (a compare-and-set of the last accepted step); five wrong codes in a row lock the factor for
//! five minutes, even for the right code. Failures count on the factor, not on the password's limits.
//!
//! Secrets are encrypted at rest under the key-encryption key, as signing keys are. Recovery codes (80 random
//! bits each) and the tokens of a login's first step (256 bits) are stored as SHA-256 digests.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use totp_rs::{Builder, Secret, Totp};

use crate::crypto::seal::Row;
use crate::db::mfa::{self as db, FactorRow, MfaTokenRow};
use crate::db::{DbConn, audit, users};
use crate::services::error::SecondFactor;
use crate::services::{AppState, ServiceError};

/// Seconds of a time step.
const STEP: u64 = 30;
/// Wrong codes in a row that lock the factor, and for how long.
const LOCK_AFTER: i64 = 5;
const LOCK_FOR: i64 = 300;
/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation).
const SECRET_BYTES: usize = 20;
/// Recovery codes made at once; bytes of each (80 bits: 16 base32 characters).
const RECOVERY_CODES: usize = 10;
const RECOVERY_BYTES: usize = 10;
/// Life of the token of a login's first step, and the codes it may be tried with.
const TOKEN_TTL: i64 = 300;
const TOKEN_ATTEMPTS: i64 = 5;
/// Life of an enrolment token (`security.mfa.require_for`).
const ENROLL_TTL: i64 = 900;

fn sf(f: SecondFactor) -> ServiceError {
    ServiceError::SecondFactor(f)
}

fn totp(secret: Vec<u8>) -> Totp {
    Builder::new().with_secret(secret).build_noncompliant()
}

/// A code as typed: six digits (spaces allowed, as apps show `123 456`), or `None`.
fn normalise_code(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// A recovery code as typed: its 16 base32 characters, case and dashes ignored.
fn normalise_recovery(code: &str) -> Option<String> {
    let chars: String = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (chars.len() == 16
        && chars
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)))
    .then_some(chars)
}

fn digest(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// New recovery codes, as shown (`ABCD-EFGH-IJKL-MNOP`), and their digests.
fn new_recovery_codes() -> (Vec<String>, Vec<Vec<u8>>) {
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw = Secret::from(rand::random::<[u8; RECOVERY_BYTES]>().to_vec()).to_base32();
            let shown = raw
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-");
            (shown, digest(&raw))
        })
        .unzip()
}

/// The stored form of a user's secret, and back.
fn seal_secret(state: &AppState, user: i64, secret: &[u8]) -> Result<String, ServiceError> {
    state
        .kek
        .store(Row::TotpSecret(&user.to_string()), secret)
        .map_err(ServiceError::internal)
}

fn open_secret(state: &AppState, row: &FactorRow) -> Result<Vec<u8>, ServiceError> {
    let (secret, _) = state
        .kek
        .open(Row::TotpSecret(&row.user_id.to_string()), &row.secret)
        .map_err(|e| ServiceError::internal(format!("TOTP secret of user {}: {e}", row.user_id)))?;
    Ok(secret)
}

/// The user's confirmed factor, if any.
pub async fn confirmed_factor(state: &AppState, user: i64) -> Result<Option<FactorRow>, ServiceError> {
    let row = state.db.run(move |c| db::factor(c, user)).await?;
    Ok(row.filter(|f| f.confirmed_at.is_some()))
}

/// Checks a TOTP code of `row`'s factor (confirmed or being confirmed): the one check of every path. Takes the
/// factor's turn, accepts a right code of a step not accepted before and returns that step; anything else
/// counts as a failure. 429 `mfa_locked` while the factor waits.
async fn check_code(state: &AppState, row: &FactorRow, code: &str) -> Result<i64, ServiceError> {
    let user = row.user_id;
    let now = state.clock.now();
    let turn = state.db.write(move |c| db::reserve_attempt(c, user, now)).await?;
    if let Err(wait) = turn {
        state.metrics.mfa_codes.add("locked");
        return Err(sf(SecondFactor::Locked(wait.unsigned_abs())));
    }
    let step = match normalise_code(code) {
        Some(code) => totp(open_secret(state, row)?).check(&code, now.max(0).unsigned_abs()),
        None => None,
    };
    let accepted = match step {
        Some(step) => {
            let step = i64::try_from(step).unwrap_or(i64::MAX);
            let confirming = row.confirmed_at.is_none();
            let won = state
                .db
                .write(move |c| match confirming {
                    // The first code of an enrolment confirms it (its step becomes the last accepted one).
                    true => db::confirm(c, user, step, now),
                    false => db::accept_step(c, user, step),
                })
                .await?;
            won.then_some(step)
        }
        None => None,
    };
    match accepted {
        Some(step) => {
            state.metrics.mfa_codes.add("accepted");
            Ok(step)
        }
        None => {
            state
                .metrics
                .mfa_codes
                .add(if step.is_some() { "replayed" } else { "wrong" });
            state
                .db
                .write(move |c| db::record_failure(c, user, now, (LOCK_AFTER, LOCK_FOR)))
                .await?;
            Err(sf(SecondFactor::WrongCode))
        }
    }
}

/// Checks and consumes a recovery code of the user's factor, under the same turn and failure count as codes.
async fn check_recovery_code(state: &AppState, row: &FactorRow, code: &str) -> Result<(), ServiceError> {
    let user = row.user_id;
    let now = state.clock.now();
    let turn = state.db.write(move |c| db::reserve_attempt(c, user, now)).await?;
    if let Err(wait) = turn {
        state.metrics.mfa_codes.add("locked");
        return Err(sf(SecondFactor::Locked(wait.unsigned_abs())));
    }
    let used = match normalise_recovery(code) {
        Some(code) => {
            let d = digest(&code);
            state
                .db
                .write(move |c| -> Result<bool, ServiceError> {
                    let used = db::use_code(c, user, &d, now)?;
                    if used {
                        db::clear_failures(c, user)?;
                        audit_as(c, user, now, "mfa.recovery_code_used")?;
                    }
                    Ok(used)
                })
                .await?
        }
        None => false,
    };
    if used {
        state.metrics.mfa_codes.add("recovery");
        return Ok(());
    }
    state.metrics.mfa_codes.add("wrong");
    state
        .db
        .write(move |c| db::record_failure(c, user, now, (LOCK_AFTER, LOCK_FOR)))
        .await?;
    Err(sf(SecondFactor::WrongCode))
}

fn audit_as(c: &mut DbConn, user: i64, now: i64, action: &str) -> Result<(), ServiceError> {
    let name = users::find(c, user)?.map(|u| u.username).unwrap_or_default();
    audit::record(c, now, &name, action, "", "")?;
    Ok(())
}

// ---------------------------------------------------------------- enrolment

/// `POST /api/mfa/totp`: a new secret, its `otpauth://` URI and that URI as an SVG QR code.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct Enrolment {
    /// The secret in base32 (what an app asks for when the QR code cannot be scanned).
    pub secret: String,
    pub otpauth_uri: String,
    /// An SVG image of the URI's QR code.
    pub qr_svg: String,
}

/// Starts an enrolment (replacing one not confirmed); 409 `mfa_already_enrolled` when a factor is active.
pub async fn start_enrolment(state: &AppState, user: i64) -> Result<Enrolment, ServiceError> {
    let secret = rand::random::<[u8; SECRET_BYTES]>().to_vec();
    let row = FactorRow {
        user_id: user,
        secret: seal_secret(state, user, &secret)?,
        created_at: state.clock.now(),
        confirmed_at: None,
        last_step: 0,
        failures: 0,
        locked_until: 0,
    };
    let username = state
        .db
        .write(move |c| -> Result<String, ServiceError> {
            let owner = users::find(c, user)?.ok_or(ServiceError::Unauthenticated)?;
            if !db::start(c, &row)? {
                return Err(ServiceError::conflict(
                    "mfa_already_enrolled",
                    "a second factor is active; disable it first to enrol another",
                ));
            }
            Ok(owner.username)
        })
        .await?;
    let encoded = Secret::from(secret).to_base32();
    let issuer = match state.tokens.issuer.as_str() {
        "" => "Tessera",
        i => i,
    };
    let uri = format!(
        "otpauth://totp/{}:{}?secret={encoded}&issuer={}&algorithm=SHA1&digits=6&period={STEP}",
        percent(issuer),
        percent(&username),
        percent(issuer)
    );
    let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| ServiceError::internal(e.to_string()))?;
    let qr_svg = qr
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    Ok(Enrolment {
        secret: encoded,
        otpauth_uri: uri,
        qr_svg,
    })
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST /api/mfa/totp/confirm`: the first right code activates the factor; returns new recovery codes.
pub async fn confirm_enrolment(state: &AppState, user: i64, code: &str) -> Result<Vec<String>, ServiceError> {
    let row = state.db.run(move |c| db::factor(c, user)).await?;
    let Some(row) = row.filter(|r| r.confirmed_at.is_none()) else {
        return Err(ServiceError::conflict(
            "no_pending_enrolment",
            "no enrolment was started (POST /api/mfa/totp), or it is confirmed already",
        ));
    };
    check_code(state, &row, code).await?;
    let (shown, digests) = new_recovery_codes();
    let now = state.clock.now();
    state
        .db
        .write(move |c| -> Result<(), ServiceError> {
            db::replace_codes(c, user, &digests)?;
            audit_as(c, user, now, "mfa.enrolled")
        })
        .await?;
    Ok(shown)
}

/// What proves the user for a change of their factor: a current code, or the password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

// No `Debug` for `Proof`: it holds a password.

async fn prove(state: &AppState, user: i64, row: &FactorRow, proof: &Proof) -> Result<(), ServiceError> {
    match (&proof.code, &proof.password) {
        (Some(code), None) => check_code(state, row, code).await.map(|_| ()),
        (None, Some(password)) => {
            let owner = state.db.run(move |c| users::find(c, user)).await?;
            let owner = owner.ok_or(ServiceError::Unauthenticated)?;
            let stored = Some((owner.password_hash.clone(), owner.password_salt.clone()));
            match state.passwords.verify(password.clone(), stored).await? {
                crate::crypto::password::Verdict::Wrong => {
                    Err(ServiceError::invalid("wrong_password", "the password does not match"))
                }
                _ => Ok(()),
            }
        }
        _ => Err(ServiceError::invalid(
            "invalid_field",
            "send either a current code or the password",
        )),
    }
}

async fn active(state: &AppState, user: i64) -> Result<FactorRow, ServiceError> {
    confirmed_factor(state, user)
        .await?
        .ok_or_else(|| ServiceError::conflict("mfa_not_enrolled", "no second factor is active for this account"))
}

/// `DELETE /api/mfa/totp` with a current code or the password.
pub async fn disable(state: &AppState, user: i64, proof: Proof) -> Result<(), ServiceError> {
    let row = active(state, user).await?;
    prove(state, user, &row, &proof).await?;
    let now = state.clock.now();
    state
        .db
        .write(move |c| -> Result<(), ServiceError> {
            db::remove(c, user)?;
            audit_as(c, user, now, "mfa.disabled")
        })
        .await
}

/// `POST /api/mfa/recovery-codes` with a current code or the password: new codes, the old ones void.
pub async fn regenerate_codes(state: &AppState, user: i64, proof: Proof) -> Result<Vec<String>, ServiceError> {
    let row = active(state, user).await?;
    prove(state, user, &row, &proof).await?;
    let (shown, digests) = new_recovery_codes();
    let now = state.clock.now();
    state
        .db
        .write(move |c| -> Result<(), ServiceError> {
            db::replace_codes(c, user, &digests)?;
            audit_as(c, user, now, "mfa.recovery_codes_replaced")
        })
        .await?;
    Ok(shown)
}

// ---------------------------------------------------------------- logins

/// What the first step of a login decided, kept with its token for the second.
#[derive(Clone, Serialize, Deserialize)]
pub struct LoginContext {
    /// The credential kind (`password`, `ldap`).
    pub kind: String,
    #[serde(default)]
    pub filter_claims: Option<Vec<String>>,
    #[serde(default)]
    pub required_claims: Vec<std::collections::HashMap<String, String>>,
}

/// A token for `purpose` (`login`, `enroll`), stored by its digest.
async fn mint(
    state: &AppState,
    user: i64,
    purpose: &'static str,
    context: String,
    ttl: i64,
) -> Result<String, ServiceError> {
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let row = MfaTokenRow {
        digest: digest(&token),
        user_id: user,
        purpose: purpose.into(),
        context,
        attempts: 0,
        expires_at: state.clock.now() + ttl,
    };
    state.db.write(move |c| db::insert_token(c, &row)).await?;
    Ok(token)
}

/// The answer to a right password of a user with a factor and no code: 401 `mfa_required` with a token.
pub async fn required(state: &AppState, user: i64, context: &LoginContext) -> ServiceError {
    let context = serde_json::to_string(context).unwrap_or_default();
    match mint(state, user, "login", context, TOKEN_TTL).await {
        Ok(mfa_token) => sf(SecondFactor::Required { mfa_token }),
        Err(e) => e,
    }
}

/// The answer to a right password of a user who must enrol first: 403 `mfa_enrollment_required`.
pub async fn enrollment_required(state: &AppState, user: i64) -> ServiceError {
    match mint(state, user, "enroll", "{}".into(), ENROLL_TTL).await {
        Ok(enrollment_token) => sf(SecondFactor::EnrollmentRequired { enrollment_token }),
        Err(e) => e,
    }
}

/// The user an enrolment token stands for, if it is live.
pub async fn enrolling_user(state: &AppState, token: &str) -> Result<Option<i64>, ServiceError> {
    let (d, now) = (digest(token), state.clock.now());
    let row = state.db.run(move |c| db::live_token(c, &d, "enroll", now)).await?;
    Ok(row.map(|r| r.user_id))
}

/// The second factor given with a password in one request: `otp` (a code) checked now. Returns the `amr`
/// value it adds.
pub async fn check_login_code(state: &AppState, row: &FactorRow, code: &str) -> Result<&'static str, ServiceError> {
    check_code(state, row, code).await.map(|_| "otp")
}

/// `POST /api/login/mfa`: a code or a recovery code for the token of a login's first step.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecondStep {
    pub mfa_token: String,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// Completes a login: the token (live, single-use, with attempts left) and a right code or recovery code.
/// Returns the user, what the first step decided, and the `amr` value of the factor (`otp`, or `mfa` for a
/// recovery code). The token is consumed by the one request that completes it.
pub async fn second_step(
    state: &AppState,
    step: SecondStep,
) -> Result<(users::UserRow, LoginContext, &'static str), ServiceError> {
    let (d, now) = (digest(&step.mfa_token), state.clock.now());
    let token = {
        let d = d.clone();
        state
            .db
            .write(move |c| db::take_attempt(c, &d, "login", now, TOKEN_ATTEMPTS))
            .await?
    };
    let token = token.ok_or(sf(SecondFactor::InvalidToken))?;
    let user = token.user_id;
    let row = confirmed_factor(state, user)
        .await?
        .ok_or(sf(SecondFactor::InvalidToken))?;
    let amr = match (&step.code, &step.recovery_code) {
        (Some(code), None) => check_login_code(state, &row, code).await?,
        (None, Some(code)) => {
            check_recovery_code(state, &row, code).await?;
            "mfa"
        }
        _ => {
            return Err(ServiceError::invalid(
                "invalid_field",
                "send either code or recovery_code",
            ));
        }
    };
    let owner = state
        .db
        .write(move |c| -> Result<Option<users::UserRow>, ServiceError> {
            if !db::consume_token(c, &d)? {
                return Ok(None);
            }
            Ok(users::find(c, user)?)
        })
        .await?;
    let owner = owner.ok_or(sf(SecondFactor::InvalidToken))?;
    let context = serde_json::from_str(&token.context).map_err(ServiceError::internal)?;
    Ok((owner, context, amr))
}

// ---------------------------------------------------------------- admin

/// A user's second factor as admins see it.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct MfaStatus {
    /// A TOTP factor is active.
    pub totp: bool,
    pub enrolled_at: Option<String>,
    /// Recovery codes not used yet.
    pub recovery_codes_left: i64,
}

pub fn status_of(c: &mut DbConn, user: i64) -> Result<MfaStatus, ServiceError> {
    let factor = db::factor(c, user)?.filter(|f| f.confirmed_at.is_some());
    Ok(MfaStatus {
        totp: factor.is_some(),
        enrolled_at: factor.and_then(|f| f.confirmed_at).map(crate::api_types::rfc3339),
        recovery_codes_left: db::codes_left(c, user)?,
    })
}

/// Removes a user's factor and recovery codes (the admin's reset); `false` when there was none.
pub fn reset(c: &mut DbConn, user: i64) -> Result<bool, ServiceError> {
    Ok(db::remove(c, user)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_recovery_codes_are_normalised() {
        assert_eq!(normalise_code("123 456").as_deref(), Some("123456"));
        for bad in ["12345", "1234567", "12345a", "", "１２３４５６"] {
            assert!(normalise_code(bad).is_none(), "{bad}");
        }
        let (shown, digests) = new_recovery_codes();
        assert_eq!((shown.len(), digests.len()), (10, 10));
        let raw = normalise_recovery(&shown[0].to_lowercase()).unwrap_or_default();
        assert_eq!(digest(&raw), digests[0]);
        assert!(normalise_recovery("ABCD-EFGH-IJKL-MNO1").is_none());
    }

    #[test]
    fn labels_are_percent_encoded() {
        assert_eq!(percent("a b:c@d"), "a%20b%3Ac%40d");
    }
}
