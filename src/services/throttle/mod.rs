//! Online-guessing limits and token buckets.
//!
//! - Per login name (whether or not a user has it, so a limit never tells which names exist): after
//!   `delay_after` failures each further one makes the name wait, doubling up to `max_delay`; at
//!   `lockout_after` it is locked for `lockout_duration`. While a name waits, even the right password is
//!   refused, and no hash is computed. Shared by replicas through the database.
//! - Every attempt is counted *before* its password is checked ([`Throttle::reserve_login`]: a failure against
//!   the name, a token of the address's failed-login bucket, both by compare-and-set) and settled after it:
//!   kept for a wrong password, refunded for a right one or for an attempt that checked nothing. So parallel
//!   guesses queue on the counters instead of all passing a gate that only read them; on top of that each
//!   replica lets at most `max_in_flight` checks of one name run at once (a few more wait their turn, briefly;
//!   the rest are refused at once).
//! - Per client address: failed logins, registrations, forgot-password and anonymous tokens are token buckets
//!   in the database (shared by replicas); refreshes are a bucket in memory (per replica: a refresh token
//!   cannot be guessed, so that limit only caps load and must cost no write).
//!
//! Names and addresses are stored only as SHA-256 hex. A password reset clears a name's failures, so guessing
//! a user's password can delay their logins but never lock them out of every path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

pub use crate::config::{Cidr, parse_cidr};
use crate::config::{LoginThrottleConfig, RateLimit, SecurityConfig};
use crate::db::throttle::{self as db, Gcra};
use crate::db::{Db, DbError};

/// Entries the in-memory buckets may hold before full ones are dropped.
const LOCAL_BUCKETS_MAX: usize = 100_000;

/// Refused for now: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: u64,
}

impl Limited {
    fn from_ms(ms: i64) -> Self {
        Limited {
            retry_after: (ms.max(1) as u64).div_ceil(1000),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error("too many attempts")]
    Limited(Limited),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The address a request comes from, as the limits see it: IPv6 clients by their /64, since one host
/// usually holds a whole /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(IpAddr);

impl ClientAddr {
    pub fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientAddr(IpAddr::V4(v4)),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    ClientAddr(IpAddr::V6(bits.into()))
                }
            },
            v4 => ClientAddr(v4),
        }
    }

    /// The address (an IPv6 client's /64 network address).
    pub fn ip(&self) -> IpAddr {
        self.0
    }

    /// Which address a request with this TCP peer and `X-Forwarded-For` value comes from: the right-most
    /// forwarded address that is not a trusted proxy, and only when the peer itself is one.
    pub fn resolve(peer: Option<IpAddr>, forwarded_for: Option<&str>, trusted: &[Cidr]) -> Option<ClientAddr> {
        let peer = peer?;
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|c| c.contains(ip));
        if !is_trusted(&peer) {
            return Some(ClientAddr::new(peer));
        }
        let mut client = peer;
        if let Some(list) = forwarded_for {
            for hop in list.rsplit(',') {
                match hop.trim().parse::<IpAddr>() {
                    Ok(ip) if is_trusted(&ip) => client = ip,
                    Ok(ip) => return Some(ClientAddr::new(ip)),
                    Err(_) => break,
                }
            }
        }
        Some(ClientAddr::new(client))
    }
}

/// The database-backed buckets.
#[derive(Debug, Clone, Copy)]
pub enum Bucket {
    LoginFailures,
    Register,
    ForgotPassword,
    Anonymous,
}

impl Bucket {
    /// The reason label of `tessera_throttled_requests_total`.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::LoginFailures => "login",
            Bucket::Register => "register",
            Bucket::ForgotPassword => "forgot_password",
            Bucket::Anonymous => "anonymous",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Bucket::LoginFailures => "login-ip",
            Bucket::Register => "register",
            Bucket::ForgotPassword => "forgot",
            Bucket::Anonymous => "anonymous",
        }
    }
}

fn gcra(limit: RateLimit) -> Option<Gcra> {
    if limit.burst == 0 {
        return None;
    }
    let period_ms = i64::try_from(limit.period.as_duration().as_millis()).unwrap_or(i64::MAX);
    let interval_ms = (period_ms / i64::from(limit.burst)).max(1);
    Some(Gcra {
        interval_ms,
        tolerance_ms: interval_ms * (i64::from(limit.burst) - 1),
    })
}

fn row_name(kind: &str, key: &str) -> String {
    crate::crypto::sha256_hex(format!("{kind}:{key}").as_bytes())
}

mod login;

use login::Turns;
pub use login::{LoginAttempt, LoginCheck, Settle};

pub struct Throttle {
    login: LoginThrottleConfig,
    login_failures: Option<Gcra>,
    register: Option<Gcra>,
    forgot_password: Option<Gcra>,
    anonymous: Option<Gcra>,
    refresh: Option<Gcra>,
    trusted: Vec<Cidr>,
    /// Theoretical arrival times (ms) of the in-memory refresh buckets.
    local: Mutex<HashMap<ClientAddr, i64>>,
    /// Password checks in flight per login name (its row name), on this replica.
    in_flight: Turns,
}

impl Throttle {
    pub fn new(config: &SecurityConfig) -> Self {
        let limits = &config.rate_limits;
        Throttle {
            login: config.login_throttle.clone(),
            login_failures: gcra(limits.login_failures),
            register: gcra(limits.register),
            forgot_password: gcra(limits.forgot_password),
            anonymous: gcra(limits.anonymous),
            refresh: gcra(limits.refresh),
            trusted: config.trusted_proxies.iter().filter_map(|p| parse_cidr(p)).collect(),
            local: Mutex::new(HashMap::new()),
            in_flight: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn trusted_proxies(&self) -> &[Cidr] {
        &self.trusted
    }

    /// Whether `ip` is one of `security.trusted_proxies`, whose forwarding headers may be believed.
    pub fn is_trusted_proxy(&self, ip: &IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    fn bucket(&self, bucket: Bucket) -> Option<Gcra> {
        match bucket {
            Bucket::LoginFailures => self.login_failures,
            Bucket::Register => self.register,
            Bucket::ForgotPassword => self.forgot_password,
            Bucket::Anonymous => self.anonymous,
        }
    }

    /// Takes a token from `bucket` for this client, and for each of `keys` (e.g. the address a reset link
    /// would go to, so no one floods a mailbox from many clients). Every bucket is charged; the longest wait wins.
    pub async fn take(
        &self,
        db: &Db,
        bucket: Bucket,
        addr: Option<ClientAddr>,
        keys: &[&str],
        now: i64,
    ) -> Result<(), ThrottleError> {
        let Some(gcra) = self.bucket(bucket) else {
            return Ok(());
        };
        let names: Vec<String> = addr
            .map(|a| a.0.to_string())
            .into_iter()
            .chain(keys.iter().map(|k| format!("key:{}", k.trim().to_lowercase())))
            .map(|k| row_name(bucket.prefix(), &k))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let waits = db
            .on_writer(move |c| -> Result<Vec<i64>, DbError> {
                let mut waits = Vec::new();
                for name in &names {
                    if let Err(wait) = db::take(c, name, gcra, now * 1000)? {
                        waits.push(wait);
                    }
                }
                Ok(waits)
            })
            .await?;
        match waits.into_iter().max() {
            Some(wait) => Err(ThrottleError::Limited(Limited::from_ms(wait))),
            None => Ok(()),
        }
    }

    /// Clears the failures of these login names (after a password reset proves the owner).
    /// The record name of the login limit of `name` (lowercased and trimmed, as logins count it).
    pub fn login_row(&self, name: &str) -> String {
        row_name("login", &name.trim().to_lowercase())
    }

    pub async fn clear_login_failures(&self, db: &Db, names: Vec<String>) -> Result<(), DbError> {
        let rows: Vec<String> = names.iter().map(|n| self.login_row(n)).collect();
        db.on_writer(move |c| rows.iter().try_for_each(|r| db::clear_failures(c, r)))
            .await
    }

    /// Takes a refresh token from this client's in-memory bucket.
    pub fn take_refresh(&self, addr: Option<ClientAddr>, now_ms: i64) -> Result<(), Limited> {
        let (Some(gcra), Some(addr)) = (self.refresh, addr) else {
            return Ok(());
        };
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= LOCAL_BUCKETS_MAX {
            map.retain(|_, tat| *tat > now_ms);
        }
        let tat = map.entry(addr).or_insert(now_ms);
        let wait = *tat - gcra.tolerance_ms - now_ms;
        if wait > 0 {
            return Err(Limited::from_ms(wait));
        }
        *tat = (*tat).max(now_ms) + gcra.interval_ms;
        Ok(())
    }

    /// Before when a login failure whose lock has ended is forgotten: one failure window ago. The
    /// maintenance sweep deletes such rows ([`db::stale`]).
    pub fn forget_before(&self, now: i64) -> i64 {
        let window = i64::try_from(self.login.failure_window.as_secs()).unwrap_or(i64::MAX);
        now.saturating_sub(window)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::login::next_failures;
    use super::*;
    use crate::db::throttle::Failures;

    #[test]
    fn delays_grow_then_lock() {
        let policy = LoginThrottleConfig::default();
        let mut record = None;
        let mut delays = Vec::new();
        for _ in 0..11 {
            let f = next_failures(&policy, record, 1000);
            delays.push(if f.locked_until > 0 { f.locked_until - 1000 } else { 0 });
            record = Some(f);
        }
        assert_eq!(delays, [0, 0, 0, 0, 0, 1, 2, 4, 8, 900, 900]);
    }

    #[test]
    fn failures_are_forgotten_after_the_window() {
        let policy = LoginThrottleConfig::default();
        let old = Failures {
            failures: 7,
            last_failure: 0,
            locked_until: 4,
        };
        assert_eq!(next_failures(&policy, Some(old), 10_000).failures, 1);
        assert_eq!(next_failures(&policy, Some(old), 100).failures, 8);
        // Right after a lock ends, the count goes on: one more failure locks again.
        let locked = Failures {
            failures: 10,
            last_failure: 0,
            locked_until: 900,
        };
        assert_eq!(next_failures(&policy, Some(locked), 901).locked_until, 901 + 900);
    }

    #[test]
    fn client_address_behind_trusted_proxies() {
        let trusted = vec![parse_cidr("10.0.0.0/8").unwrap(), parse_cidr("::1").unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let resolve = |peer: &str, xff: Option<&str>| ClientAddr::resolve(Some(ip(peer)), xff, &trusted).unwrap().0;
        // An untrusted peer's header is ignored.
        assert_eq!(resolve("203.0.113.9", Some("1.2.3.4")), ip("203.0.113.9"));
        // Through two proxies: the right-most untrusted hop.
        assert_eq!(
            resolve("10.0.0.2", Some("6.6.6.6, 198.51.100.7, 10.0.0.1")),
            ip("198.51.100.7")
        );
        assert_eq!(resolve("10.0.0.2", None), ip("10.0.0.2"));
        // IPv6 clients count by /64; v4-mapped addresses as IPv4.
        assert_eq!(resolve("2001:db8::1:2:3:4", None), ip("2001:db8::"));
        assert_eq!(resolve("::ffff:192.0.2.1", None), ip("192.0.2.1"));
        assert!(parse_cidr("10.0.0.0/33").is_none() && parse_cidr("nope").is_none());
    }

    #[test]
    fn memory_bucket_allows_a_burst_then_the_rate() {
        let mut config = SecurityConfig::default();
        config.rate_limits.refresh = RateLimit::new(3, 3);
        let t = Throttle::new(&config);
        let a = Some(ClientAddr::new("192.0.2.1".parse().unwrap()));
        assert!((0..3).all(|_| t.take_refresh(a, 0).is_ok()));
        assert_eq!(t.take_refresh(a, 0), Err(Limited { retry_after: 1 }));
        assert!(t.take_refresh(a, 1000).is_ok());
        assert!(
            t.take_refresh(Some(ClientAddr::new("192.0.2.2".parse().unwrap())), 0)
                .is_ok()
        );
    }
}
