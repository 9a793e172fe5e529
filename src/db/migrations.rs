//! Embedded migrations, one folder per backend with identical names (a test checks they match).

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{DbConn, DbError};

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");
#[cfg(feature = "mysql")]
const MYSQL: EmbeddedMigrations = embed_migrations!("migrations/mysql");

/// Any lock id will do as long as every replica uses the same one.
const PG_LOCK_ID: i64 = 0x7e55_e7a0;

/// Applies pending migrations. Replicas starting together on PostgreSQL or MySQL serialise on a database lock,
/// so each migration runs once; SQLite's own write lock does the same for processes sharing a file.
pub fn run(conn: &mut DbConn) -> Result<usize, DbError> {
    let applied = match conn {
        DbConn::Sqlite(c) => {
            // WAL lets readers proceed during a write; it is a property of the file, set once.
            let _ = c.batch_execute("PRAGMA journal_mode = WAL;");
            c.run_pending_migrations(SQLITE).map(|v| v.len())
        }
        DbConn::Postgres(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({PG_LOCK_ID})")).execute(c)?;
            let result = c.run_pending_migrations(POSTGRES).map(|v| v.len());
            diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_LOCK_ID})")).execute(c)?;
            result
        }
        #[cfg(feature = "mysql")]
        DbConn::Mysql(c) => {
            diesel::sql_query("SELECT GET_LOCK('tessera_migrations', 60)").execute(c)?;
            let result = c.run_pending_migrations(MYSQL).map(|v| v.len());
            diesel::sql_query("SELECT RELEASE_LOCK('tessera_migrations')").execute(c)?;
            result
        }
    };
    applied.map_err(|e| DbError::Migration(e.to_string()))
}
