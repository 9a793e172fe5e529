//! Configuration: Stoke's `config.yaml` schema plus Tessera's own sections.
//!
//! Every key has a default (see `Default` impls and the repository's `config.yaml`, which documents each key and
//! is parsed by a test). Loading, environment overrides and unknown-key warnings live in [`load`]; checks that
//! need more than one key live in [`validate`]. Nothing here touches the network or the database.

mod accounts;
mod cidr;
mod database;
mod duration;
mod load;
mod oauth;
mod secret;
mod security;
mod server;
mod template;
#[cfg(test)]
mod tests;
mod tokens;
mod tree;
mod users;
mod validate;

use serde::{Deserialize, Serialize};

pub use accounts::*;
pub use cidr::{Cidr, parse_cidr};
pub use database::*;
pub use duration::{GoDuration, Millis, parse as parse_duration};
pub(crate) use load::yaml_files_in;
pub use load::{CONFIG_ENV, CONFIG_PLACES, ConfigError, LoadedConfig, Problem, load, load_from_str, locate};
pub use oauth::OAuthConfig;
pub use secret::Secret;
pub use server::*;
pub use template::{Placeholder, Template};
pub use tokens::*;
pub use users::*;

/// The warning of a shared database without a key-encryption secret (at start and in `validate`).
pub const NO_SECRET_WARNING: &str = "not set: private signing keys and the encrypted-forms key are stored in \
    the clear in the database, so anyone with a copy of it (a backup) can forge tokens; set \
    tokens.key_encryption_secret or tokens.key_encryption_secret_file";

pub use security::{LoginThrottleConfig, PasswordHashConfig, RateLimit, RateLimitsConfig, SecurityConfig};

/// The whole configuration. Sections follow Stoke's file layout; `security`, `email`, `registration` and `oauth`
/// are Tessera's additions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub logging: LoggingConfig,
    pub tokens: TokensConfig,
    pub telemetry: TelemetryConfig,
    pub users: UsersConfig,
    pub cluster: ClusterConfig,
    pub security: SecurityConfig,
    pub email: EmailConfig,
    pub registration: RegistrationConfig,
    pub oauth: OAuthConfig,
}
