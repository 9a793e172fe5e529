//! The login limits: an attempt reserved before its password is checked and settled after it, and this
//! replica's turns per name (see the module above for the policy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Bucket, ClientAddr, Limited, Throttle, ThrottleError, row_name};
use crate::config::LoginThrottleConfig;
use crate::db::throttle::{self as db, Failures, Gcra};
use crate::db::{Db, DbError};

/// A login attempt that holds its reservations (see [`Throttle::reserve_login`]) until [`Throttle::settle`].
#[derive(Debug)]
pub struct LoginAttempt {
    /// The name's row, its record before this attempt, and the record this attempt left.
    name: Option<(String, Option<Failures>, Failures)>,
    /// The address's failed-login bucket and row, when a token was taken from it.
    addr: Option<(Gcra, String)>,
    /// This replica's count of checks of the name in flight, released when the attempt is dropped.
    _in_flight: Option<InFlight>,
}

/// How a reserved attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// The password was right: the name's failures are cleared and the address's token given back.
    Succeeded,
    /// The password was wrong: the reservations stand as the failure they counted.
    Failed,
    /// No password was checked (busy, database trouble): both reservations are refunded.
    Void,
}

/// Attempts of one name that may wait for a turn on one replica, beyond those running; more get 429 at once.
const WAITING_MAX: usize = 16;

/// How long an attempt waits for its turn before it gets 429.
const WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// The turns of each name: a semaphore of `max_in_flight` permits, dropped from the map once nobody holds or
/// waits for one.
pub(super) type Turns = Arc<Mutex<HashMap<String, Arc<Semaphore>>>>;

/// One check of a name in flight on this replica; dropping it ends it.
#[derive(Debug)]
struct InFlight {
    name: String,
    turns: Turns,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map holds it: nobody runs or waits for this name.
        if turns.get(&self.name).is_some_and(|s| Arc::strong_count(s) == 1) {
            turns.remove(&self.name);
        }
    }
}

impl Throttle {
    /// The failed-login bucket of this address, and its row name.
    fn failures_bucket(&self, addr: Option<ClientAddr>) -> Option<(Gcra, String)> {
        let name = |a: ClientAddr| row_name(Bucket::LoginFailures.prefix(), &a.0.to_string());
        self.login_failures.zip(addr).map(|(g, a)| (g, name(a)))
    }

    /// What tells whether a login of `username` from `addr` must wait now (the name locked or delayed, the
    /// address out of failed logins), counting nothing: for API keys, whose 256-bit secrets cannot be guessed,
    /// so that a success writes nothing here and only a failure is counted
    /// ([`Throttle::record_failed_login`]). Run it with [`LoginCheck::wait`] in the login's read.
    pub fn login_check(&self, username: &str, addr: Option<ClientAddr>, now: i64) -> LoginCheck {
        LoginCheck {
            name: self.login.enabled.then(|| self.login_row(username)),
            addr: self.failures_bucket(addr),
            now,
        }
    }

    /// Counts a failed login against the name and the address, as a wrong password would be counted.
    pub async fn record_failed_login(
        &self,
        db: &Db,
        username: &str,
        addr: Option<ClientAddr>,
        now: i64,
    ) -> Result<(), ThrottleError> {
        let attempt = self.reserve_login(db, username, addr, now).await?;
        Ok(self.settle(db, attempt, Settle::Failed, now).await?)
    }

    /// Reserves a login attempt before its password is checked: refused (429) while the name waits or is
    /// locked, while the address has used up its failed logins, or when too many checks of the name run or wait
    /// on this replica; otherwise one failure is counted against the name and one token taken from
    /// the address's bucket, to be kept or refunded by [`Throttle::settle`].
    pub async fn reserve_login(
        &self,
        db: &Db,
        username: &str,
        addr: Option<ClientAddr>,
        now: i64,
    ) -> Result<LoginAttempt, ThrottleError> {
        let name = self.login.enabled.then(|| self.login_row(username));
        let in_flight = match &name {
            Some(n) => Some(self.enter(n).await?),
            None => None,
        };
        let ip = self.failures_bucket(addr);
        if name.is_none() && ip.is_none() {
            return Ok(LoginAttempt {
                name: None,
                addr: None,
                _in_flight: in_flight,
            });
        }
        let policy = self.login.clone();
        let reserved = db
            .on_writer(move |c| -> Result<Result<LoginAttempt, i64>, DbError> {
                let name = match name {
                    Some(n) => match db::reserve_failure(c, &n, now, |old| next_failures(&policy, old, now))? {
                        Ok((before, after)) => Some((n, before, after)),
                        Err(wait) => return Ok(Err(wait)),
                    },
                    None => None,
                };
                if let Some((gcra, row)) = &ip
                    && let Err(wait) = db::take(c, row, *gcra, now * 1000)?
                {
                    if let Some((n, before, after)) = &name {
                        db::refund_failure(c, n, *before, *after)?;
                    }
                    return Ok(Err(wait));
                }
                Ok(Ok(LoginAttempt {
                    name,
                    addr: ip,
                    _in_flight: None,
                }))
            })
            .await?;
        match reserved {
            Ok(attempt) => Ok(LoginAttempt {
                _in_flight: in_flight,
                ..attempt
            }),
            Err(wait) => Err(ThrottleError::Limited(Limited::from_ms(wait))),
        }
    }

    /// Takes a turn to check this name: at once while fewer than `max_in_flight` checks run, else after a
    /// short wait behind at most [`WAITING_MAX`] others; refused when the line is longer or the wait too long.
    async fn enter(&self, name: &str) -> Result<InFlight, ThrottleError> {
        let max = usize::try_from(self.login.max_in_flight.max(1)).unwrap_or(usize::MAX);
        let turns = {
            let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(name.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(max)))
                .clone()
        };
        let busy = Limited { retry_after: 1 };
        // Everyone holding a clone: the map, the checks running and the attempts waiting, and this one.
        let running = max.saturating_sub(turns.available_permits());
        if Arc::strong_count(&turns).saturating_sub(2 + running) >= WAITING_MAX && turns.available_permits() == 0 {
            return Err(ThrottleError::Limited(busy));
        }
        let permit = tokio::time::timeout(WAIT_MAX, turns.acquire_owned())
            .await
            .map_err(|_| ThrottleError::Limited(busy))?
            .map_err(|_| ThrottleError::Limited(busy))?;
        Ok(InFlight {
            name: name.to_string(),
            turns: self.in_flight.clone(),
            permit: Some(permit),
        })
    }

    /// Keeps or refunds what [`Throttle::reserve_login`] reserved, by how the attempt ended.
    pub async fn settle(&self, db: &Db, attempt: LoginAttempt, outcome: Settle, now: i64) -> Result<(), DbError> {
        let LoginAttempt { name, addr, .. } = attempt;
        if outcome == Settle::Failed || (name.is_none() && addr.is_none()) {
            return Ok(());
        }
        db.on_writer(move |c| -> Result<(), DbError> {
            if let Some((row, before, after)) = &name {
                match outcome {
                    Settle::Succeeded => db::clear_failures(c, row)?,
                    _ => db::refund_failure(c, row, *before, *after)?,
                }
            }
            if let Some((gcra, row)) = &addr {
                db::give_back(c, row, *gcra, now * 1000)?;
            }
            Ok(())
        })
        .await
    }
}

/// See [`Throttle::login_check`].
pub struct LoginCheck {
    name: Option<String>,
    addr: Option<(Gcra, String)>,
    now: i64,
}

impl LoginCheck {
    /// `Some`: the login must wait that long.
    pub fn wait(&self, c: &mut crate::db::DbConn) -> Result<Option<Limited>, DbError> {
        let now = self.now;
        if let Some(n) = &self.name
            && let Some(f) = db::failures(c, n)?
            && f.locked_until > now
        {
            return Ok(Some(Limited::from_ms((f.locked_until - now) * 1000)));
        }
        if let Some((gcra, row)) = &self.addr
            && let Err(wait) = db::peek(c, row, *gcra, now * 1000)?
        {
            return Ok(Some(Limited::from_ms(wait)));
        }
        Ok(None)
    }
}

/// The failure record after one more failure at `now`.
pub(super) fn next_failures(policy: &LoginThrottleConfig, old: Option<Failures>, now: i64) -> Failures {
    let window = i64::try_from(policy.failure_window.as_secs()).unwrap_or(i64::MAX);
    // Failures are forgotten a window after the last one, or after the lock it caused ended: a failure right
    // after a lock locks again.
    let previous = old
        .filter(|f| now.saturating_sub(f.last_failure.max(f.locked_until)) < window)
        .map_or(0, |f| f.failures);
    let failures = previous + 1;
    let secs = |d: crate::config::GoDuration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let delay = if failures >= i64::from(policy.lockout_after.max(1)) {
        secs(policy.lockout_duration)
    } else if failures > i64::from(policy.delay_after) {
        let doublings = u32::try_from(failures - i64::from(policy.delay_after) - 1).unwrap_or(u32::MAX);
        secs(policy.base_delay)
            .saturating_mul(2i64.saturating_pow(doublings.min(62)))
            .min(secs(policy.max_delay))
    } else {
        0
    };
    Failures {
        failures,
        last_failure: now,
        locked_until: if delay > 0 { now + delay } else { 0 },
    }
}
