//! The `database` section, and which backend it selects.

use serde::{Deserialize, Serialize};

use super::{GoDuration, Secret};

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
