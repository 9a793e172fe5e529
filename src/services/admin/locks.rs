//! Locked login names (`security.login_throttle`): which names must wait now, and lifting a lock (an admin's
//! answer to a user locked out by someone guessing their password).
//!
//! Names are stored only as the SHA-256 of the name as typed (lowercased), so a listing names the users whose
//! username or email it is, and shows the others by that digest alone.

use serde::Serialize;

use crate::api_types::rfc3339;
use crate::db::schema::users as users_table;
use crate::db::{throttle, users};
use crate::services::AppState;

use super::{Area, Caller, Change, ServiceError, write};

/// Records listed at most.
const MAX_LISTED: i64 = 1000;

/// A name that must wait before its next login.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LockedName {
    /// The user whose username or email the locked name is; `null` for a name no user has.
    pub username: Option<String>,
    /// The record's id (the digest of the name).
    pub id: String,
    /// Failed logins counted.
    pub failures: i64,
    /// When the name may try again (RFC 3339).
    pub locked_until: String,
}

/// The names locked or delayed now, the longest lock first.
pub async fn locks(state: &AppState, caller: &Caller) -> Result<Vec<LockedName>, ServiceError> {
    caller.require(Area::Users, false)?;
    let now = state.clock.now();
    let throttle = state.throttle.clone();
    state
        .db
        .run(move |c| -> Result<Vec<LockedName>, ServiceError> {
            use diesel::prelude::*;
            let rows = throttle::locked(c, now, MAX_LISTED)?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let names: Vec<(String, Option<String>)> = users_table::table
                .select((users_table::username, users_table::email))
                .load(c)?;
            let mut by_row = std::collections::HashMap::new();
            for (username, email) in names {
                for typed in std::iter::once(username.as_str()).chain(email.as_deref()) {
                    by_row
                        .entry(throttle.login_row(typed))
                        .or_insert_with(|| username.clone());
                }
            }
            Ok(rows
                .into_iter()
                .map(|(id, f)| LockedName {
                    username: by_row.get(&id).cloned(),
                    id,
                    failures: f.failures,
                    locked_until: rfc3339(f.locked_until),
                })
                .collect())
        })
        .await
}

/// Lifts the lock of a name (a username or an email, as users type it): its failures are forgotten. An account
/// holding letters the caller lacks is refused; 404 when the name is not locked.
pub async fn lift(state: &AppState, caller: &Caller, name: String) -> Result<(), ServiceError> {
    let row = state.throttle.login_row(&name);
    let now = state.clock.now();
    let change = Change::new("lock.lift", &name);
    write(state, caller, Area::Users, change, move |c, policy, _| {
        // Every account the lock covers (names are counted lowercased, as typed).
        for user in users::holders_of_login(c, &name)? {
            policy.user(&user.username)?;
            policy.account(c, user.id)?;
        }
        match throttle::failures(c, &row)? {
            Some(f) if f.locked_until > now => {}
            _ => return Err(ServiceError::NotFound(format!("{name:?} is not locked"))),
        }
        throttle::clear_failures(c, &row)?;
        Ok(())
    })
    .await
}
