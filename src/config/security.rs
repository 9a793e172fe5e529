//! The `security` section: password hashing, the hash queue, brute-force limits and rate limits.

use serde::{Deserialize, Serialize};

use super::GoDuration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    pub password_hash: PasswordHashConfig,
    /// Longer passwords are refused before any hashing.
    pub max_password_bytes: usize,
    pub min_password_length: usize,
    /// Password hashes computed at once; 0 means one per core.
    pub hash_concurrency: usize,
    /// Password checks that may wait for a hashing thread; beyond that, logins get 503 with `Retry-After`.
    pub hash_queue_limit: usize,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client; when empty, the
    /// TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Growing delays, then a lock, after failed logins for one username, whether or not such a user exists.
    pub login_throttle: LoginThrottleConfig,
    /// Token buckets per client address (IPv6 clients by their /64).
    pub rate_limits: RateLimitsConfig,
    /// How long a replica may reuse what the database said about an admin caller's session and letters (at
    /// most 5 s; 0 reads it on every admin request).
    pub admin_rights_cache: GoDuration,
    /// Audit rows older than this are deleted by the maintenance sweep; 0 keeps them forever.
    pub audit_retention: GoDuration,
    /// API keys one user may hold at once; the next one is refused (409 `too_many_keys`). 0: no API keys.
    pub max_api_keys_per_user: u32,
    pub mfa: MfaConfig,
}

/// The second factor (TOTP).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MfaConfig {
    /// `stk` letters (`S`, `U`, …): a user whose session would get one of them must have a second factor; a
    /// password login without one is refused with an enrolment token. Empty: nobody must.
    pub require_for: Vec<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            password_hash: PasswordHashConfig::default(),
            max_password_bytes: 1024,
            min_password_length: 8,
            hash_concurrency: 0,
            hash_queue_limit: 256,
            trusted_proxies: Vec::new(),
            login_throttle: LoginThrottleConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            admin_rights_cache: GoDuration::from_secs(2),
            audit_retention: GoDuration::from_secs(365 * 24 * 3600),
            max_api_keys_per_user: 20,
            mfa: MfaConfig::default(),
        }
    }
}

/// After `delay_after` failures the username waits `base_delay`, doubling with each further failure up to
/// `max_delay`; at `lockout_after` failures it is locked for `lockout_duration`, and each further failure locks
/// it again. Failures are forgotten `failure_window` after the last one (or after the end of its lock); a
/// successful login or a password reset clears them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LoginThrottleConfig {
    pub enabled: bool,
    pub delay_after: u32,
    pub base_delay: GoDuration,
    pub max_delay: GoDuration,
    pub lockout_after: u32,
    pub lockout_duration: GoDuration,
    pub failure_window: GoDuration,
    /// Password checks of one name that may run at once on one replica; more get 429 at once.
    pub max_in_flight: u32,
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        LoginThrottleConfig {
            enabled: true,
            delay_after: 5,
            base_delay: GoDuration::from_secs(1),
            max_delay: GoDuration::from_secs(60),
            lockout_after: 10,
            lockout_duration: GoDuration::from_secs(15 * 60),
            failure_window: GoDuration::from_secs(15 * 60),
            max_in_flight: 4,
        }
    }
}

/// A token bucket: up to `burst` requests at once, refilled at `burst` per `period`. `burst: 0` turns it off.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimit {
    pub burst: u32,
    pub period: GoDuration,
}

impl RateLimit {
    pub const fn new(burst: u32, period_secs: u64) -> Self {
        RateLimit {
            burst,
            period: GoDuration::from_secs(period_secs),
        }
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit::new(0, 60)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitsConfig {
    /// Failed logins per client address (shared by replicas); when empty, every login from it gets 429.
    pub login_failures: RateLimit,
    pub register: RateLimit,
    pub forgot_password: RateLimit,
    pub anonymous: RateLimit,
    /// Refreshes per client address, counted in memory by each replica (refresh tokens cannot be guessed;
    /// this only caps load).
    pub refresh: RateLimit,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        RateLimitsConfig {
            login_failures: RateLimit::new(100, 15 * 60),
            register: RateLimit::new(10, 60 * 60),
            forgot_password: RateLimit::new(5, 15 * 60),
            anonymous: RateLimit::new(30, 60),
            refresh: RateLimit::new(1200, 60),
        }
    }
}

/// argon2id parameters for new hashes (existing hashes keep their own, read from the PHC string).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PasswordHashConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordHashConfig {
    fn default() -> Self {
        PasswordHashConfig {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }
    }
}
