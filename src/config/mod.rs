//! Configuration: Stoke's `config.yaml` schema plus Tessera's own sections.
//!
//! Every key has a default (see `Default` impls and the repository's `config.yaml`, which documents each key and
//! is parsed by a test). Loading, environment overrides and unknown-key warnings live in [`load`]; checks that
//! need more than one key live in [`validate`]. Nothing here touches the network or the database.

mod cidr;
mod duration;
mod load;
mod secret;
mod security;
mod template;
#[cfg(test)]
mod tests;
mod validate;

use serde::{Deserialize, Serialize};

pub use cidr::{Cidr, parse_cidr};
pub use duration::{GoDuration, Millis, parse as parse_duration};
pub(crate) use load::yaml_files_in;
pub use load::{ConfigError, LoadedConfig, Problem, load, load_from_str};
pub use secret::Secret;
pub use template::{Placeholder, Template};

/// The warning of a shared database without a key-encryption secret (at start and in `validate`).
pub const NO_SECRET_WARNING: &str = "not set: private signing keys and the encrypted-forms key are stored in \
    the clear in the database, so anyone with a copy of it (a backup) can forge tokens; set \
    tokens.key_encryption_secret or tokens.key_encryption_secret_file";

pub use security::{LoginThrottleConfig, PasswordHashConfig, RateLimit, RateLimitsConfig, SecurityConfig};

/// The whole configuration. Sections follow Stoke's file layout; `security`, `email` and `registration` are
/// Tessera's additions.
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// Address to listen on. Absent: 127.0.0.1. Empty (as in Stoke's example): every interface.
    pub address: String,
    pub port: u16,
    /// Whole-request budget (headers, body, work); a bare integer is milliseconds, as in Stoke. 0: none.
    pub timeout: Millis,
    pub tls_private_key: String,
    pub tls_public_cert: String,
    pub disable_admin: bool,
    /// Origins allowed by CORS; `*` allows any.
    pub allowed_hosts: Vec<String>,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest accepted JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_timeout: GoDuration,
    /// Stoke's URL prefix for running behind a proxy; Tessera serves at the root and only reports it.
    pub base_path: String,
    /// The public base URL (e.g. `https://auth.example.com`) for discovery documents; empty: from the request.
    pub public_url: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            address: "127.0.0.1".into(),
            port: 8080,
            timeout: Millis(std::time::Duration::from_secs(10)),
            tls_private_key: String::new(),
            tls_public_cert: String::new(),
            disable_admin: false,
            allowed_hosts: Vec::new(),
            workers: 0,
            max_body_bytes: 64 * 1024,
            shutdown_timeout: GoDuration::from_secs(30),
            base_path: String::new(),
            public_url: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseConfig {
    /// `sqlite`, `postgres` or `mysql`; ignored when `url` is set (the URL scheme decides).
    #[serde(rename = "type")]
    pub kind: String,
    /// A full connection URL (`sqlite://file.db`, `postgres://…`, `mysql://…`); overrides the sections below.
    pub url: Secret,
    pub sqlite: SqliteConfig,
    pub postgres: PostgresConfig,
    pub mysql: MysqlConfig,
    /// Most connections kept in the pool.
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (or a new one) before the database counts as down.
    pub connect_timeout: GoDuration,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            kind: "sqlite".into(),
            url: Secret::default(),
            sqlite: SqliteConfig::default(),
            postgres: PostgresConfig::default(),
            mysql: MysqlConfig::default(),
            max_connections: 8,
            connect_timeout: GoDuration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SqliteConfig {
    pub file: String,
    /// SQLite URI parameters, e.g. `mode=memory&cache=shared`. Go driver flags such as `_fk=1` are accepted
    /// and ignored (Tessera always enables foreign keys).
    pub flags: String,
    /// `NORMAL` (default; a killed process loses nothing) or `FULL` (also survives power loss).
    pub synchronous: String,
    pub busy_timeout: GoDuration,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            file: "tessera.db".into(),
            flags: String::new(),
            synchronous: "NORMAL".into(),
            busy_timeout: GoDuration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresConfig {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Secret,
    /// Appended to the connection URL's query, e.g. `sslmode=require`.
    pub extra_args: String,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            host: "127.0.0.1".into(),
            port: 5432,
            database: "tessera".into(),
            user: "tessera".into(),
            password: Secret::default(),
            extra_args: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct MysqlConfig {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Secret,
    /// Appended to the connection URL's query. Stoke's code reads this key as `flag`; both are accepted.
    pub flags: String,
}

impl Default for MysqlConfig {
    fn default() -> Self {
        MysqlConfig {
            host: "127.0.0.1".into(),
            port: 3306,
            database: "tessera".into(),
            user: "tessera".into(),
            password: Secret::default(),
            flags: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LoggingConfig {
    /// trace, debug, info, warn or error.
    pub level: String,
    /// Also write JSON lines to this file (created if missing).
    pub log_file: String,
    /// Human-readable stdout; otherwise JSON lines.
    pub pretty_stdout: bool,
    pub write_to_stdout: bool,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            log_file: String::new(),
            pretty_stdout: true,
            write_to_stdout: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TokensConfig {
    /// Stoke's families (`ECDSA`, `EdDSA`, `RSA`) or a JWS name (`ES256`, `PS256`, `RS256`, …).
    pub algorithm: String,
    /// With a family name: 256/384/512 picks the curve (ECDSA) or the hash (RSA, PSS padding).
    pub num_bits: u32,
    /// RSA modulus size: 2048, 3072 or 4096.
    pub rsa_key_bits: u32,
    pub persist_keys: bool,
    /// Encrypts private signing keys in the database (AES-256-GCM); at least 16 characters, better 32 random
    /// bytes in base64. Or `key_encryption_secret_file`: a file holding it (a container secret).
    pub key_encryption_secret: Secret,
    pub key_encryption_secret_file: String,
    pub key_duration: GoDuration,
    pub token_duration: GoDuration,
    pub issuer: String,
    pub subject: String,
    pub audience: Vec<String>,
    pub include_issued_at: bool,
    pub include_not_before: bool,
    /// Most refreshes per session (refresh family); 0 means unlimited.
    pub token_refresh_limit: u32,
    /// Claim that carries the refresh count; empty means none is added.
    pub token_refresh_count_key: String,
    pub user_info: UserInfoConfig,
    /// A refresh token presented again within this time returns the same successor instead of revoking.
    pub refresh_reuse_grace: GoDuration,
    /// A session ends this long after login, however often it is refreshed.
    pub refresh_max_age: GoDuration,
    /// A session ends when it has not been refreshed for this long.
    pub refresh_idle_timeout: GoDuration,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            algorithm: "ECDSA".into(),
            num_bits: 256,
            rsa_key_bits: 2048,
            persist_keys: true,
            key_encryption_secret: Secret::default(),
            key_encryption_secret_file: String::new(),
            key_duration: GoDuration::from_secs(3 * 3600),
            token_duration: GoDuration::from_secs(30 * 60),
            issuer: "tessera".into(),
            subject: String::new(),
            audience: Vec::new(),
            include_issued_at: true,
            include_not_before: false,
            token_refresh_limit: 0,
            token_refresh_count_key: String::new(),
            user_info: UserInfoConfig::default(),
            refresh_reuse_grace: GoDuration::from_secs(10),
            refresh_max_age: GoDuration::from_secs(30 * 24 * 3600),
            refresh_idle_timeout: GoDuration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Which token claim carries each piece of user information; empty leaves it out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UserInfoConfig {
    pub full_name: String,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl Default for UserInfoConfig {
    fn default() -> Self {
        UserInfoConfig {
            full_name: "n".into(),
            username: "u".into(),
            email: "e".into(),
            first_name: String::new(),
            last_name: String::new(),
        }
    }
}

/// Stoke's OpenTelemetry keys. Tessera accepts them so Stoke configs load; it exports Prometheus text at
/// `/metrics` and does not push traces or metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TelemetryConfig {
    pub trace_provider: String,
    pub trace_export_url: String,
    pub trace_insecure: bool,
    pub metric_provider: String,
    pub metric_exporter_url: String,
    pub metric_insecure: bool,
    /// Disables `/metrics`.
    pub disable_monitoring: bool,
    /// Requires a token with `stk` m or S to read `/metrics`.
    pub require_prometheus_authentication: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            trace_provider: "none".into(),
            trace_export_url: String::new(),
            trace_insecure: false,
            metric_provider: "none".into(),
            metric_exporter_url: String::new(),
            metric_insecure: false,
            disable_monitoring: false,
            require_prometheus_authentication: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UsersConfig {
    /// Create the `stk` admin claims (S, s, m, u, U, g, G, c, C) and the admin group at start-up if missing.
    pub create_stoke_claims: bool,
    /// A dbinit file applied at start-up (like `--dbinit`).
    pub user_init_file: String,
    /// A directory whose `*.yaml` dbinit files are applied at start-up, in name order.
    pub user_init_dir: String,
    /// A directory whose `*.yaml` files each define one more user provider.
    pub provider_config_dir: String,
    pub providers: Vec<ProviderConfig>,
    pub policy_config: PolicyConfig,
    /// Stoke's older flat LDAP settings: with `enable_ldap: true` they become one provider named `ldap`.
    pub enable_ldap: bool,
    #[serde(flatten)]
    pub ldap: LdapSettings,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            create_stoke_claims: true,
            user_init_file: String::new(),
            user_init_dir: String::new(),
            provider_config_dir: String::new(),
            providers: Vec::new(),
            policy_config: PolicyConfig::default(),
            enable_ldap: false,
            ldap: LdapSettings::default(),
        }
    }
}

/// One user source besides the local database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderConfig {
    pub name: String,
    /// `ldap` (the only kind so far).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub ldap: LdapSettings,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            name: String::new(),
            kind: "ldap".into(),
            ldap: LdapSettings::default(),
        }
    }
}

/// How to reach and read an LDAP directory (Stoke's key names).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LdapSettings {
    /// `ldap://`, `ldaps://` or `ldapi://`.
    pub server_url: String,
    pub bind_user_dn: String,
    pub bind_user_password: Secret,
    pub group_search_root: String,
    /// May use `{{ .UserDN }}` and `{{ .Username }}` (both escaped).
    pub group_filter_template: String,
    pub user_search_root: String,
    /// Must select one entry; may use `{{ .Username }}` (escaped).
    pub user_filter_template: String,
    pub ldap_group_name_field: String,
    pub ldap_first_name_field: String,
    pub ldap_last_name_field: String,
    pub ldap_email_field: String,
    /// 0 means no limit.
    pub search_timeout: GoDuration,
    /// PEM file of the CA that signed the directory's certificate.
    pub ldap_ca_cert: String,
    pub skip_certificate_verify: bool,
}

impl Default for LdapSettings {
    fn default() -> Self {
        LdapSettings {
            server_url: String::new(),
            bind_user_dn: String::new(),
            bind_user_password: Secret::default(),
            group_search_root: String::new(),
            group_filter_template: String::new(),
            user_search_root: String::new(),
            user_filter_template: String::new(),
            ldap_group_name_field: "cn".into(),
            ldap_first_name_field: "givenName".into(),
            ldap_last_name_field: "sn".into(),
            ldap_email_field: "mail".into(),
            search_timeout: GoDuration::default(),
            ldap_ca_cert: String::new(),
            skip_certificate_verify: false,
        }
    }
}

/// Limits on what the admin API may change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyConfig {
    /// Refuse every admin write.
    pub read_only_mode: bool,
    /// Usernames that admin writes may not touch.
    pub protected_users: Vec<String>,
    /// Claim group names that admin writes may not touch.
    pub protected_groups: Vec<String>,
    /// Claim short names that admin writes may not touch.
    pub protected_claims: Vec<String>,
    /// Let a superuser (`stk=S`) write protected entities anyway.
    pub allow_superuser_override: bool,
}

/// Settings for several replicas. Tessera replicas share one key ring through their common database, so
/// Stoke's peer federation keys (`enabled`, `discovery`, `static_peers`, `refresh_sec`, `instance_id`) are
/// accepted for compatibility and not needed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    pub enabled: bool,
    pub discovery: String,
    pub static_peers: Vec<String>,
    pub refresh_sec: u64,
    pub instance_id: String,
    /// How often each replica re-reads the shared key ring (and takes its turn to rotate).
    pub key_check_interval: GoDuration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            enabled: false,
            discovery: "static".into(),
            static_peers: Vec::new(),
            refresh_sec: 30,
            instance_id: String::new(),
            key_check_interval: GoDuration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EmailConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    /// `none`, `starttls` or `tls`.
    pub smtp_security: String,
    /// A PEM file with the CA certificate that signed the SMTP server's (for a private CA); empty: the system's
    /// trusted roots only.
    pub smtp_ca_file: String,
    pub smtp_username: String,
    pub smtp_password: Secret,
    /// The From address of every message.
    pub from: String,
    /// Base URL used in every link a message carries; never taken from a request.
    pub public_url: String,
    /// Path (under `public_url`) of the page that takes `?token=` from a confirmation link (registration or
    /// a new email address) and posts it to `/api/confirm`.
    pub confirm_path: String,
    /// Path (under `public_url`) of the page that takes `?token=` from a reset link and posts the new password
    /// to `/api/password/reset`.
    pub reset_path: String,
    /// How long a confirmation link (registration, email change) stays valid.
    pub confirm_link_duration: GoDuration,
    /// How long a password reset link stays valid.
    pub reset_link_duration: GoDuration,
    /// A directory whose `<name>.subject`, `<name>.txt` and `<name>.html` files replace the built-in templates
    /// (`confirm_registration`, `confirm_email_change`, `password_reset`, `already_registered`).
    pub templates_dir: String,
    /// How often the outbox is checked for messages due (a new message is picked up at once on this replica).
    pub outbox_poll_interval: GoDuration,
    /// How long a replica owns a message it is sending; another replica may retry it after that.
    pub send_lease: GoDuration,
    /// Connecting to and talking with the SMTP server gives up after this long.
    pub smtp_timeout: GoDuration,
    /// First wait before a failed message is retried; it doubles with each failure, up to `retry_max`.
    pub retry_base: GoDuration,
    pub retry_max: GoDuration,
    /// Sends tried before a message is given up (and its body forgotten).
    pub max_attempts: u32,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_host: String::new(),
            smtp_port: 587,
            smtp_security: "starttls".into(),
            smtp_ca_file: String::new(),
            smtp_username: String::new(),
            smtp_password: Secret::default(),
            from: String::new(),
            public_url: String::new(),
            confirm_path: "/confirm".into(),
            reset_path: "/reset-password".into(),
            confirm_link_duration: GoDuration::from_secs(24 * 3600),
            reset_link_duration: GoDuration::from_secs(30 * 60),
            templates_dir: String::new(),
            outbox_poll_interval: GoDuration::from_secs(5),
            send_lease: GoDuration::from_secs(60),
            smtp_timeout: GoDuration::from_secs(10),
            retry_base: GoDuration::from_secs(30),
            retry_max: GoDuration::from_secs(3600),
            max_attempts: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistrationConfig {
    /// `closed`, `open` or `confirm` (open, with email confirmation before the first login).
    pub mode: String,
    /// Registration must present an anonymous token from `/api/anonymous`.
    pub require_anonymous_token: bool,
    pub anonymous_token_duration: GoDuration,
    /// `POST /api/anonymous` hands out anonymous tokens (needed by `require_anonymous_token`).
    pub anonymous_tokens: bool,
    /// Extra string claims of every anonymous token (not `stk` nor a registered claim name).
    pub anonymous_claims: std::collections::BTreeMap<String, String>,
    /// TokTok's encrypted forms: `GET /api/public_key` serves an RSA key, and login and register bodies may
    /// come as `{"encrypted": base64(RSA-OAEP-SHA256(body))}`. TLS is the real protection; this adds nothing
    /// to it and is off by default.
    pub rsa_encryption: bool,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            mode: "closed".into(),
            require_anonymous_token: false,
            anonymous_token_duration: GoDuration::from_secs(15 * 60),
            anonymous_tokens: false,
            anonymous_claims: std::collections::BTreeMap::new(),
            rsa_encryption: false,
        }
    }
}

/// Which database backend a configuration selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    Mysql,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
        }
    }
}
