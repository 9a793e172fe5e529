//! Stoke's own database (hppr-dev/stoke-auth, `internal/ent/migrate/schema.go`), read for `import-stoke`, and
//! recognised where Tessera's tables are expected (`migrate` and `serve` then refuse, naming the import).
//!
//! Stoke's tables share names with Tessera's (`users`, `claims`, …) but not columns, so they are read with plain
//! SQL, never through `schema.rs`. Dates differ per backend (SQLite text, PostgreSQL `timestamptz`, MySQL
//! `timestamp`) and are read as Unix seconds by the backend itself. The source is opened read-only where the
//! backend allows it (SQLite), and only ever read.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::{DbConn, DbError};

/// Why `migrate`/`serve` refuse a Stoke database.
pub const HOLDS_STOKE: &str = "this database holds Stoke's tables, not Tessera's. Point database.url (or \
    database.type) at a new, empty database and bring Stoke's users, groups, claims and keys over with \
    `tessera import-stoke --from <this database>`";

/// Tables only Stoke has: their presence means "a Stoke database".
const STOKE_ONLY: [&str; 3] = ["claim_group_users", "claim_claim_groups", "private_keys"];
/// Every table the import reads.
const STOKE_TABLES: [&str; 7] = [
    "users",
    "claims",
    "claim_groups",
    "group_links",
    "claim_claim_groups",
    "claim_group_users",
    "private_keys",
];

#[derive(Debug, Clone, QueryableByName)]
pub struct StokeUser {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub fname: String,
    #[diesel(sql_type = Text)]
    pub lname: String,
    #[diesel(sql_type = Text)]
    pub source: String,
    #[diesel(sql_type = Text)]
    pub email: String,
    #[diesel(sql_type = Text)]
    pub username: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub password: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub salt: Option<String>,
    /// Unix seconds; `None` when the backend could not read the stored date.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub created_at: Option<i64>,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct StokeClaim {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub short_name: String,
    #[diesel(sql_type = Text)]
    pub value: String,
    #[diesel(sql_type = Text)]
    pub description: String,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct StokeGroup {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub description: String,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct StokeLink {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub link_type: String,
    #[diesel(sql_type = Text)]
    pub resource_spec: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub group_id: Option<i64>,
}

#[derive(Debug, Clone, QueryableByName)]
pub struct StokeKey {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub text: String,
    /// Unix seconds; `None` when the backend could not read the stored date.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub expires: Option<i64>,
}

#[derive(Debug, Clone, QueryableByName)]
struct Pair {
    #[diesel(sql_type = BigInt)]
    a: i64,
    #[diesel(sql_type = BigInt)]
    b: i64,
}

#[derive(Debug, QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Everything the import takes from a Stoke database.
#[derive(Debug, Clone, Default)]
pub struct StokeDump {
    pub users: Vec<StokeUser>,
    pub claims: Vec<StokeClaim>,
    pub groups: Vec<StokeGroup>,
    pub links: Vec<StokeLink>,
    /// (claim id, group id)
    pub group_claims: Vec<(i64, i64)>,
    /// (group id, user id)
    pub members: Vec<(i64, i64)>,
    /// Ascending id.
    pub keys: Vec<StokeKey>,
}

/// Opens the Stoke database named by `--from`: a SQLite file (read-only; it must exist), `postgres://…` or
/// `mysql://…` (`mariadb://…`).
pub fn open_source(from: &str) -> Result<DbConn, DbError> {
    let fail = |e: diesel::ConnectionError| DbError::Unavailable(format!("{from}: {e}"));
    let scheme = from.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "postgres" | "postgresql" => diesel::pg::PgConnection::establish(from)
            .map(DbConn::Postgres)
            .map_err(fail),
        #[cfg(feature = "mysql")]
        "mysql" | "mariadb" => diesel::mysql::MysqlConnection::establish(&from.replacen("mariadb://", "mysql://", 1))
            .map(DbConn::Mysql)
            .map_err(fail),
        #[cfg(not(feature = "mysql"))]
        "mysql" | "mariadb" => Err(DbError::Unsupported(
            "this build has no MySQL support (build with --features mysql)".into(),
        )),
        _ => {
            let path = from.strip_prefix("sqlite://").unwrap_or(from);
            if !std::path::Path::new(path).is_file() {
                return Err(DbError::Unavailable(format!(
                    "{from}: no such SQLite file (or use postgres://… or mysql://…)"
                )));
            }
            let encoded: String = path
                .chars()
                .map(|c| match c {
                    '%' => "%25".to_string(),
                    '?' => "%3f".to_string(),
                    '#' => "%23".to_string(),
                    c => c.to_string(),
                })
                .collect();
            diesel::sqlite::SqliteConnection::establish(&format!("file:{encoded}?mode=ro"))
                .map(DbConn::Sqlite)
                .map_err(fail)
        }
    }
}

/// Whether a table of this name exists in the connection's database (its current schema).
pub fn table_exists(conn: &mut DbConn, name: &str) -> Result<bool, DbError> {
    let sql = match conn {
        DbConn::Sqlite(_) => "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?",
        DbConn::Postgres(_) => {
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
        }
        #[cfg(feature = "mysql")]
        DbConn::Mysql(_) => {
            "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
        }
    };
    let count: Count = diesel::sql_query(sql).bind::<Text, _>(name).get_result(conn)?;
    Ok(count.n > 0)
}

/// Whether this database holds Stoke's tables (a table only Stoke has).
pub fn holds_stoke_tables(conn: &mut DbConn) -> Result<bool, DbError> {
    for table in STOKE_ONLY {
        if table_exists(conn, table)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The tables of Stoke's schema this database lacks (none for a Stoke database).
pub fn missing_tables(conn: &mut DbConn) -> Result<Vec<&'static str>, DbError> {
    let mut missing = Vec::new();
    for table in STOKE_TABLES {
        if !table_exists(conn, table)? {
            missing.push(table);
        }
    }
    Ok(missing)
}

/// `column` (a date) as Unix seconds, in this backend's SQL.
fn epoch(conn: &DbConn, column: &str) -> String {
    match conn {
        DbConn::Sqlite(_) => format!("CAST(strftime('%s', {column}) AS INTEGER)"),
        DbConn::Postgres(_) => format!("CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"),
        #[cfg(feature = "mysql")]
        DbConn::Mysql(_) => format!("CAST(UNIX_TIMESTAMP({column}) AS SIGNED)"),
    }
}

/// Reads every row the import needs, in one read transaction (a consistent snapshot of a running Stoke).
pub fn read(conn: &mut DbConn) -> Result<StokeDump, DbError> {
    let created = epoch(conn, "created_at");
    let expires = epoch(conn, "expires");
    conn.transaction::<_, DbError, _>(|c| {
        let users = diesel::sql_query(format!(
            "SELECT id, fname, lname, source, email, username, password, salt, {created} AS created_at \
             FROM users ORDER BY id"
        ))
        .load::<StokeUser>(c)?;
        let claims = diesel::sql_query("SELECT id, name, short_name, value, description FROM claims ORDER BY id")
            .load::<StokeClaim>(c)?;
        let groups =
            diesel::sql_query("SELECT id, name, description FROM claim_groups ORDER BY id").load::<StokeGroup>(c)?;
        let links = diesel::sql_query(
            "SELECT id, type AS link_type, resource_spec, claim_group_group_links AS group_id \
             FROM group_links ORDER BY id",
        )
        .load::<StokeLink>(c)?;
        let group_claims = diesel::sql_query(
            "SELECT claim_id AS a, claim_group_id AS b FROM claim_claim_groups ORDER BY claim_group_id, claim_id",
        )
        .load::<Pair>(c)?;
        let members = diesel::sql_query(
            "SELECT claim_group_id AS a, user_id AS b FROM claim_group_users ORDER BY user_id, claim_group_id",
        )
        .load::<Pair>(c)?;
        let keys = diesel::sql_query(format!(
            "SELECT id, text, {expires} AS expires FROM private_keys ORDER BY id"
        ))
        .load::<StokeKey>(c)?;
        Ok(StokeDump {
            users,
            claims,
            groups,
            links,
            group_claims: group_claims.into_iter().map(|p| (p.a, p.b)).collect(),
            members: members.into_iter().map(|p| (p.a, p.b)).collect(),
            keys,
        })
    })
}
