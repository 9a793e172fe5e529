//! Every periodic job of a replica, started by [`start`]: the key ring's upkeep, SQLite's WAL checkpoints, the
//! email outbox worker, and the maintenance sweep, in which rows that can do nothing any more are deleted, so
//! the database does not grow forever. The sweep runs once a minute on each replica; any replica may run it,
//! and two at once only find less to delete.
//!
//! Deleted, at most [`BATCH`] rows per table per sweep (a backlog drains over the following minutes instead
//! of holding the database for long):
//! - refresh families that can no longer refresh (past `tokens.refresh_max_age`, or idle for
//!   `tokens.refresh_idle_timeout`; revoked families go idle too), one access-token lifetime and a minute after
//!   that (the admin API checks an access token's session, `sid`, and the last token of a session may outlive
//!   it by its lifetime), with their tokens.
//!   Used tokens of live families stay: they are how a replayed token is recognised;
//! - link tokens (confirmation, reset, email change) once used or expired;
//! - throttle rows that no longer limit anything;
//! - audit rows older than `security.audit_retention` (0 keeps them);
//! - records of access tokens revoked through `/oauth/revoke`, once those tokens have expired;
//! - and sealed refresh successors whose reuse grace has passed (an update, not a delete): a family's `grace`
//!   in rounds of [`GRACE_BATCH`] until none is left or [`GRACE_ROUNDS`] rounds ran, each its own write (a
//!   minute of refreshes can leave tens of thousands, and one long write would hold up the refreshes behind it),
//!   and the tokens from before generations.
//!
//! Candidates are found with reads on pooled connections, so a scan never holds up writers; the deletes go by
//! key through [`crate::db::Db::write`] (on SQLite, the one writer thread), each re-checking its condition, so a row used
//! between the read and the write stays.

use std::sync::Arc;

use crate::db::{self, Db, DbError};
use crate::services::AppState;

/// Starts every periodic job of this replica: the key ring's upkeep with the sweep below, SQLite's WAL
/// checkpoints, and the email outbox worker when SMTP is configured. Each runs until the process ends.
pub fn start(state: Arc<AppState>) {
    tokio::spawn(maintain(state.clone()));
    tokio::spawn(checkpoints(state.db.clone()));
    if state.mail.enabled() {
        tokio::spawn(crate::services::mail::run(state));
    }
}

/// The most rows deleted from one table by one sweep.
pub const BATCH: i64 = 500;

/// The most families whose grace one write clears.
pub const GRACE_BATCH: i64 = 1000;

/// The most such writes per sweep: with one sweep a minute, graces of up to about a thousand refreshes a second
/// are cleared as fast as they end; beyond that they stay sealed a little longer, under tokens the database
/// never stores.
pub const GRACE_ROUNDS: usize = 64;

/// How long after its deadline a refresh family is deleted, so a refresh in flight at the deadline never
/// races the sweep (it is refused as expired, not as unknown, either way).
pub const FAMILY_MARGIN: i64 = 60;

/// What one sweep deleted (or, for sealed successors, cleared).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub refresh_families: usize,
    pub refresh_tokens: usize,
    pub account_tokens: usize,
    pub throttle_rows: usize,
    pub audit_rows: usize,
    pub sealed_successors: usize,
    pub revoked_tokens: usize,
    pub mfa_tokens: usize,
    /// Sign-ins through an OpenID provider that were never finished or redeemed.
    pub oidc_pending: usize,
}

impl Swept {
    pub fn total(&self) -> usize {
        self.refresh_families
            + self.refresh_tokens
            + self.account_tokens
            + self.throttle_rows
            + self.audit_rows
            + self.sealed_successors
            + self.revoked_tokens
            + self.mfa_tokens
            + self.oidc_pending
    }
}

/// What the read phase found.
struct Candidates {
    families: Vec<String>,
    account_tokens: Vec<String>,
    throttle: db::throttle::Stale,
    audit: Vec<i64>,
}

/// One sweep as of `now` (tests pass a time of their choosing).
pub async fn sweep(state: &AppState, now: i64) -> Result<Swept, DbError> {
    let idle = state.tokens.idle_timeout;
    let family_at = now.saturating_sub(FAMILY_MARGIN + state.tokens.token_duration);
    let forget_before = state.throttle.forget_before(now);
    let retention = i64::try_from(state.config.security.audit_retention.as_secs()).unwrap_or(i64::MAX);
    let audit_before = (retention > 0).then(|| now.saturating_sub(retention));
    let grace_ended = now.saturating_sub(state.tokens.reuse_grace);
    // A revoked access token's record is needed until the token expires (and its leeway has passed).
    let revoked_before = now.saturating_sub(state.tokens.leeway);

    let found = state
        .db
        .run(move |c| -> Result<Candidates, DbError> {
            Ok(Candidates {
                families: db::refresh::expired_families(c, family_at, idle, BATCH)?,
                account_tokens: db::accounts::dead_tokens(c, now, BATCH)?,
                throttle: db::throttle::stale(c, now, forget_before, BATCH)?,
                audit: match audit_before {
                    Some(before) => db::audit::older_than(c, before, BATCH)?,
                    None => Vec::new(),
                },
            })
        })
        .await?;
    let swept = state
        .db
        .write(move |c| -> Result<Swept, DbError> {
            let (refresh_tokens, refresh_families) =
                db::refresh::delete_expired_families(c, &found.families, family_at, idle, BATCH)?;
            Ok(Swept {
                refresh_families,
                refresh_tokens,
                account_tokens: db::accounts::delete_dead_tokens(c, &found.account_tokens, now)?,
                throttle_rows: db::throttle::delete_stale(c, &found.throttle, now, forget_before)?,
                audit_rows: match audit_before {
                    Some(before) => db::audit::delete_older(c, &found.audit, before)?,
                    None => 0,
                },
                sealed_successors: db::refresh::clear_sealed(c, grace_ended)?,
                revoked_tokens: db::clients::sweep_revoked(c, revoked_before, BATCH)?,
                mfa_tokens: db::mfa::delete_expired_tokens(c, now, BATCH)?,
                oidc_pending: db::oidc::delete_expired(c, now, BATCH)?,
            })
        })
        .await?;
    let mut swept = swept;
    for _ in 0..GRACE_ROUNDS {
        let ids = state
            .db
            .run(move |c| db::refresh::grace_ended(c, grace_ended, GRACE_BATCH))
            .await?;
        let found = ids.len();
        if found == 0 {
            break;
        }
        swept.sealed_successors += state
            .db
            .write(move |c| db::refresh::clear_grace(c, &ids, grace_ended))
            .await?;
        if found < GRACE_BATCH as usize {
            break;
        }
    }
    Ok(swept)
}

/// Checkpoints SQLite's WAL every second, off the request path.
async fn checkpoints(db: Db) {
    if db.backend() != crate::config::Backend::Sqlite {
        return;
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let db = db.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || db.checkpoint()).await {
            tracing::debug!(error = %e, "checkpoint skipped");
        }
    }
}

/// Keeps the key ring current (rotation, reloads from other replicas, expiry) and, once a minute, runs the
/// maintenance sweep ([`sweep`]). Database trouble is logged; the cached ring keeps serving.
async fn maintain(state: Arc<AppState>) {
    let interval = state
        .config
        .cluster
        .key_check_interval
        .as_duration()
        .max(std::time::Duration::from_millis(100));
    // The first sweep a minute after start-up, not at the first tick (which comes at once when the ring has
    // keys to make).
    let mut last_sweep = state.clock.now();
    loop {
        let now = state.clock.now();
        let until_event = std::time::Duration::from_secs((state.keys.next_event(now) - now).max(0) as u64);
        tokio::time::sleep(interval.min(until_event).max(std::time::Duration::from_millis(100))).await;
        let st = state.clone();
        match tokio::task::spawn_blocking(move || st.keys.refresh(st.clock.now())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "key ring maintenance failed; serving the cached ring"),
            Err(e) => tracing::error!(error = %e, "key ring maintenance task failed"),
        }
        let now = state.clock.now();
        if now - last_sweep >= 60 {
            match sweep(&state, now).await {
                Ok(swept) => {
                    last_sweep = now;
                    if swept.total() > 0 {
                        tracing::debug!(?swept, "maintenance sweep");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "maintenance sweep failed; retried at the next tick"),
            }
        }
    }
}
