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
    /// A file holding `url` (it may carry a password), read once at start.
    pub url_file: String,
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
            url_file: String::new(),
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
    /// A file holding the password (instead of `password`).
    pub password_file: String,
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
            password_file: String::new(),
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
    /// A file holding the password (instead of `password`).
    pub password_file: String,
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
            password_file: String::new(),
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

impl DatabaseConfig {
    /// The backend and connection URL this configuration selects: `url` when set (its scheme decides),
    /// otherwise Stoke's `type` and section.
    pub fn resolve(&self) -> Result<(Backend, String), String> {
        if !self.url.is_empty() {
            let url = self.url.expose();
            let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
            let backend = match scheme {
                "sqlite" | "file" => Backend::Sqlite,
                "postgres" | "postgresql" => Backend::Postgres,
                "mysql" | "mariadb" => Backend::Mysql,
                _ if url.starts_with("file:") => Backend::Sqlite,
                _ => {
                    return Err(
                        "the URL must start with sqlite://, postgres://, postgresql://, mysql:// or mariadb://".into(),
                    );
                }
            };
            let url = match backend {
                Backend::Mysql => url.replacen("mariadb://", "mysql://", 1),
                Backend::Postgres => url.to_string(),
                Backend::Sqlite => sqlite_target(url.strip_prefix("sqlite://").unwrap_or(url), &self.sqlite.flags),
            };
            return Ok((backend, url));
        }
        match self.kind.to_ascii_lowercase().as_str() {
            "sqlite" | "sqlite3" => Ok((Backend::Sqlite, sqlite_target(&self.sqlite.file, &self.sqlite.flags))),
            "postgres" | "postgresql" => {
                let p = &self.postgres;
                let mut url = format!(
                    "postgres://{}:{}@{}:{}/{}",
                    encode(&p.user),
                    encode(p.password.expose()),
                    p.host,
                    p.port,
                    encode(&p.database)
                );
                if !p.extra_args.is_empty() {
                    url.push('?');
                    url.push_str(&p.extra_args.trim().replace(' ', "&"));
                }
                Ok((Backend::Postgres, url))
            }
            "mysql" | "mariadb" => {
                let m = &self.mysql;
                let mut url = format!(
                    "mysql://{}:{}@{}:{}/{}",
                    encode(&m.user),
                    encode(m.password.expose()),
                    m.host,
                    m.port,
                    encode(&m.database)
                );
                if !m.flags.is_empty() {
                    url.push('?');
                    url.push_str(&m.flags);
                }
                Ok((Backend::Mysql, url))
            }
            other => Err(format!("{other:?} is not one of sqlite, postgres, mysql")),
        }
    }
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// What to hand SQLite: a plain path, or a `file:` URI carrying the flags as URI parameters. Go-driver flags
/// (leading `_`, such as `_fk=1`) are dropped, and so is `cache=shared` unless the database is in memory.
fn sqlite_target(file: &str, flags: &str) -> String {
    let file = file.strip_prefix("file:").unwrap_or(file);
    let (path, inline) = file.split_once('?').unwrap_or((file, ""));
    let params: Vec<&str> = inline
        .split('&')
        .chain(flags.split('&'))
        .filter(|p| !p.is_empty())
        .collect();
    let memory = params.contains(&"mode=memory");
    let kept: Vec<&str> = params
        .into_iter()
        .filter(|p| !p.starts_with('_') && (memory || *p != "cache=shared"))
        .collect();
    if kept.is_empty() {
        return path.to_string();
    }
    let escaped = percent_encoding::utf8_percent_encode(path, SQLITE_PATH).to_string();
    format!("file:{escaped}?{}", kept.join("&"))
}

const SQLITE_PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'?').add(b'#').add(b'%').add(b' ');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_flags_become_uri_parameters() {
        assert_eq!(sqlite_target("tessera.db", ""), "tessera.db");
        assert_eq!(sqlite_target("stoke.db", "cache=shared&_fk=1"), "stoke.db");
        assert_eq!(
            sqlite_target("t.db", "mode=memory&cache=shared"),
            "file:t.db?mode=memory&cache=shared"
        );
        assert_eq!(sqlite_target("a b#.db", "mode=ro"), "file:a%20b%23.db?mode=ro");
    }
}
