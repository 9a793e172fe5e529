//! The state every handler sees, passed as `web::Data<AppState>`. No process-global configuration.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::services::keyring::KeyRing;
use crate::services::passwords::Passwords;
use crate::services::throttle::Throttle;
use crate::services::tokens::TokenSettings;

pub struct AppState {
    /// The effective configuration, read-only after start-up.
    pub config: Arc<Config>,
    /// The connection pool.
    pub db: Db,
    /// Where services read `now` from.
    pub clock: Arc<dyn Clock>,
    /// Password checks and hashing, bounded in concurrency.
    pub passwords: Passwords,
    /// The signing keys and their pre-serialized public forms.
    pub keys: Arc<KeyRing>,
    /// Token contents and lifetimes, from `tokens`.
    pub tokens: Arc<TokenSettings>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The current rights of admin callers, read from the database and cached for seconds.
    pub rights: Arc<crate::services::rights::Rights>,
    /// Brute-force limits and token buckets.
    pub throttle: Arc<Throttle>,
    /// Failed OAuth client authentications, per client id and address.
    pub client_failures: Arc<crate::services::oauth::ClientFailures>,
    /// The user providers (LDAP directories, OpenID providers) of `users.providers`, with their connections.
    pub providers: Arc<crate::user_source::Providers>,
    /// Email templates, links and the SMTP transport; wakes the outbox worker.
    pub mail: Arc<crate::services::mail::Mailer>,
    /// The key of encrypted login/register bodies, when `registration.rsa_encryption` is on.
    pub form_key: Option<Arc<crate::services::accounts::FormKey>>,
    /// The key-encryption key: what TOTP secrets are encrypted under at rest.
    pub kek: crate::services::at_rest::Kek,
}

impl AppState {
    /// The values `/metrics` and the OTLP export read from the parts of the server at that moment.
    pub fn gauges(&self) -> crate::metrics::Gauges {
        let (in_use, idle) = self.db.pool_state();
        crate::metrics::Gauges {
            hash_queue_depth: self.passwords.queue_depth(),
            db_connections_in_use: in_use,
            db_connections_idle: idle,
            signing_keys: self.keys.current().keys.len(),
            key_rotations: self.keys.rotations.load(std::sync::atomic::Ordering::Relaxed),
            password_hashes: self.passwords.computed(),
        }
    }
}
