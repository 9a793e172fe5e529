//! The admin API's flows: who may do what (Stoke's `stk` letters), the `policy_config` policies, and CRUD of
//! users, claim groups, claims and group links, each write in one transaction.
//!
//! Every write runs through [`write`], which compares who holds which `stk` letter before and after the change
//! and refuses it unless [`crate::authz`] allows it: a caller only gives or takes letters it holds itself (`S`
//! for `S`), and no write leaves zero superusers. Writes are serialised on one lock row (SQLite serialises all
//! writers). Writes that touch an account (its profile, credentials, sessions, deletion) first check that the
//! caller holds every letter the account holds ([`Policy::account`]).

mod changes;
pub mod clients;
mod entities;
mod locks;
mod operations;
mod reads;
mod users;

use crate::api_types::PageQuery;
use crate::authz::{self, Holdings, Letter, Letters, Transition};
use crate::config::PolicyConfig;
use crate::db::DbConn;
use crate::db::audit;
use crate::db::catalog::{self, Page};
use crate::services::AppState;
pub use crate::services::ServiceError;

pub use changes::*;
pub use entities::{claim_dto, group_dto, link_dto};
pub use locks::{LockedName, lift as lift_lock, locks};
pub use operations::*;
pub use reads::*;
pub use users::{
    create_api_key, create_local_user, reset_mfa, revoke_api_key, revoke_sessions, session_dto, set_local_password,
    user_api_keys, user_dto, user_mfa,
};

/// What a caller wants to touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Users,
    Groups,
    Claims,
    Totals,
    /// Signing keys and the audit trail: superusers and read-all.
    Operations,
}

/// The caller of an admin request: the `stk` letters it holds now, and who it is for the audit trail.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's letters that the user still holds in the database (see `services::rights`).
    pub letters: Letters,
    /// The username claim when tokens carry one, else `sub`.
    pub actor: String,
}

impl Caller {
    pub fn is_superuser(&self) -> bool {
        self.letters.is_superuser()
    }

    /// Stoke's matrix: `S` everything, `s` read all, `u`/`U` users, `g`/`G` groups and links, `c`/`C` claims;
    /// writers may read what they attach (`U` reads groups, `G` and `U` read claims).
    pub fn may(&self, area: Area, write: bool) -> bool {
        use Letter as L;
        let any = |letters: &[Letter]| self.letters.any_of(letters);
        match (area, write) {
            (Area::Users, false) => any(&[L::READ_ALL, L::READ_USERS, L::WRITE_USERS]),
            (Area::Users, true) => any(&[L::WRITE_USERS]),
            (Area::Groups, false) => any(&[L::READ_ALL, L::READ_GROUPS, L::WRITE_GROUPS, L::WRITE_USERS]),
            (Area::Groups, true) => any(&[L::WRITE_GROUPS]),
            (Area::Claims, false) => any(&[
                L::READ_ALL,
                L::READ_CLAIMS,
                L::WRITE_CLAIMS,
                L::WRITE_GROUPS,
                L::WRITE_USERS,
            ]),
            (Area::Claims, true) => any(&[L::WRITE_CLAIMS]),
            (Area::Totals, _) => any(&[
                L::READ_ALL,
                L::READ_USERS,
                L::WRITE_USERS,
                L::READ_GROUPS,
                L::WRITE_GROUPS,
                L::READ_CLAIMS,
                L::WRITE_CLAIMS,
            ]),
            (Area::Operations, false) => any(&[L::READ_ALL]),
            (Area::Operations, true) => self.is_superuser(),
        }
    }

    pub fn require(&self, area: Area, write: bool) -> Result<(), ServiceError> {
        if self.may(area, write) {
            Ok(())
        } else {
            Err(ServiceError::forbidden(
                "forbidden",
                "the token's stk claim does not allow this",
            ))
        }
    }
}

/// The policies of `users.policy_config` and the authorization rules, as seen by one caller.
#[derive(Debug, Clone)]
pub struct Policy {
    config: PolicyConfig,
    overrides: bool,
    letters: Letters,
}

impl Policy {
    fn new(config: &PolicyConfig, caller: &Caller) -> Self {
        Policy {
            config: config.clone(),
            overrides: config.allow_superuser_override && caller.is_superuser(),
            letters: caller.letters,
        }
    }

    /// Refuses a change to an account (profile, credentials, sessions, deletion) that holds letters the caller
    /// does not: `superuser_required` for an account holding `S`.
    pub fn account(&self, c: &mut DbConn, user: i64) -> Result<(), ServiceError> {
        let target = catalog::letters_of_user(c, user)?;
        Ok(authz::may_manage(self.letters, target)?)
    }

    /// Refuses a change to which logins get a group's claims unless the caller holds every letter the group
    /// grants (`superuser_required` for a group granting `S`).
    pub fn group_letters(&self, c: &mut DbConn, group: i64) -> Result<(), ServiceError> {
        let grants = catalog::group_letters(c)?
            .into_iter()
            .filter(|(g, _)| *g == group)
            .fold(Letters::default(), |acc, (_, value)| {
                acc.union(Letters::granted_by(&value))
            });
        Ok(authz::may_manage(self.letters, grants)?)
    }

    fn check(&self, list: &[String], name: &str, what: &str) -> Result<(), ServiceError> {
        if !self.overrides && list.iter().any(|p| p == name) {
            return Err(ServiceError::forbidden(
                "protected",
                format!("{what} {name:?} is protected by policy"),
            ));
        }
        Ok(())
    }

    pub fn user(&self, username: &str) -> Result<(), ServiceError> {
        self.check(&self.config.protected_users, username, "user")
    }

    pub fn group(&self, name: &str) -> Result<(), ServiceError> {
        self.check(&self.config.protected_groups, name, "claim group")
    }

    pub fn claim(&self, short_name: &str) -> Result<(), ServiceError> {
        self.check(&self.config.protected_claims, short_name, "claim")
    }
}

/// Validates `?page&itemsPerPage` (page ≥ 1, 1–255 items, default 30).
pub fn page(q: &PageQuery) -> Result<Page, ServiceError> {
    let page = q.page.unwrap_or(1);
    let items = q.items_per_page.unwrap_or(30);
    if page < 1 {
        return Err(ServiceError::invalid("invalid_query", "page must be at least 1"));
    }
    if !(1..=255).contains(&items) {
        return Err(ServiceError::invalid(
            "invalid_query",
            "itemsPerPage must be between 1 and 255",
        ));
    }
    Ok(Page {
        offset: (page - 1).saturating_mul(items),
        limit: items,
    })
}

/// The search of `?q=` (`None` when absent or blank), at most 255 characters.
pub fn search(q: &PageQuery) -> Result<Option<String>, ServiceError> {
    let Some(wanted) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    text("q", wanted, 255, false).map_err(|_| {
        ServiceError::invalid(
            "invalid_query",
            "q must be at most 255 characters, without control characters",
        )
    })?;
    Ok(Some(wanted.to_string()))
}

/// Reads on the blocking pool, after the permission check.
async fn read<T, F>(state: &AppState, caller: &Caller, area: Area, f: F) -> Result<T, ServiceError>
where
    F: FnOnce(&mut DbConn) -> Result<T, ServiceError> + Send + 'static,
    T: Send + 'static,
{
    caller.require(area, false)?;
    state.db.run(f).await
}

/// What an admin write is, for the audit trail: an action such as `claim.update` and its target.
#[derive(Debug, Clone)]
pub struct Change {
    pub action: &'static str,
    pub target: String,
}

impl Change {
    pub fn new(action: &'static str, target: impl ToString) -> Self {
        Change {
            action,
            target: target.to_string(),
        }
    }
}

/// Runs one admin write: permission, read-only mode, then `f` in a write transaction, refused unless
/// [`Transition::check`] allows what it changed of who holds which letter; audited before it commits.
async fn write<T, F>(state: &AppState, caller: &Caller, area: Area, change: Change, f: F) -> Result<T, ServiceError>
where
    F: FnOnce(&mut DbConn, &Policy, i64) -> Result<T, ServiceError> + Send + 'static,
    T: serde::Serialize + Send + 'static,
{
    caller.require(area, true)?;
    writable(state)?;
    let policy = Policy::new(&state.config.users.policy_config, caller);
    let letters = caller.letters;
    let actor = caller.actor.clone();
    let now = state.clock.now();
    let out = state
        .db
        .write(move |c| {
            catalog::lock_letters(c)?;
            let before: Holdings = catalog::holdings(c)?;
            let out = f(c, &policy, now)?;
            let after = catalog::holdings(c)?;
            Transition {
                before: &before,
                after: &after,
            }
            .check(letters)?;
            let detail = serde_json::to_string(&out).unwrap_or_default();
            audit::record(c, now, &actor, change.action, &change.target, &detail)?;
            Ok(out)
        })
        .await;
    // Whatever changed, this replica's cached rights are re-read at once (other replicas within seconds).
    state.rights.forget_all();
    out
}

/// Refuses writes in `read_only_mode`.
pub fn writable(state: &AppState) -> Result<(), ServiceError> {
    if state.config.users.policy_config.read_only_mode {
        return Err(ServiceError::forbidden("read_only", "the server is in read-only mode"));
    }
    Ok(())
}

/// Checks a text field: present when required, at most `max` characters, no control characters.
pub fn text(field: &str, value: &str, max: usize, required: bool) -> Result<(), ServiceError> {
    if required && value.trim().is_empty() {
        return Err(ServiceError::invalid(
            "invalid_field",
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max {
        return Err(ServiceError::invalid(
            "invalid_field",
            format!("{field} is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "invalid_field",
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

/// Refuses ids that do not exist.
pub fn existing(c: &mut DbConn, kind: catalog::Kind, field: &str, ids: &[i64]) -> Result<(), ServiceError> {
    let missing = catalog::missing(c, kind, ids)?;
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "unknown_reference",
            format!("{field}: no such id {missing:?}"),
        ))
    }
}

/// The elements of `old` and `new` that are not in both.
pub fn changed(old: &[i64], new: &[i64]) -> Vec<i64> {
    let mut out: Vec<i64> = old
        .iter()
        .filter(|x| !new.contains(x))
        .chain(new.iter().filter(|x| !old.contains(x)))
        .copied()
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Sorted, without duplicates.
pub fn dedup(ids: &[i64]) -> Vec<i64> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}
