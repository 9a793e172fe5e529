//! The state every handler sees, passed as `web::Data<AppState>`. No process-global configuration.

use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::password::Hasher;
use crate::db::Db;

pub struct AppState {
    /// The effective configuration, read-only after start-up.
    pub config: Arc<Config>,
    /// The connection pool.
    pub db: Db,
    /// Where services read `now` from.
    pub clock: Arc<dyn Clock>,
    /// Password hashing with the configured parameters.
    pub hasher: Hasher,
}
