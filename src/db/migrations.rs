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

/// Runs `f` (migrations, dbinit, bootstrap) while holding a database-wide lock on PostgreSQL or MySQL, so
/// replicas starting together take turns: each migration and dbinit file is applied once and one superuser is
/// created. SQLite's own write lock serialises processes sharing a file.
pub fn exclusively<T, E: From<DbError>>(
    conn: &mut DbConn,
    f: impl FnOnce(&mut DbConn) -> Result<T, E>,
) -> Result<T, E> {
    let unlock = match conn {
        DbConn::Sqlite(_) => None,
        DbConn::Postgres(c) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({PG_LOCK_ID})"))
                .execute(c)
                .map_err(DbError::from)?;
            Some(format!("SELECT pg_advisory_unlock({PG_LOCK_ID})"))
        }
        #[cfg(feature = "mysql")]
        DbConn::Mysql(c) => {
            diesel::sql_query("SELECT GET_LOCK('tessera_startup', 60)")
                .execute(c)
                .map_err(DbError::from)?;
            Some("SELECT RELEASE_LOCK('tessera_startup')".to_string())
        }
    };
    let result = f(conn);
    if let Some(unlock) = unlock {
        // The lock is the session's: should this fail, closing the connection releases it.
        let _ = conn.batch_execute(&unlock);
    }
    result
}

/// Applies pending migrations; call it inside [`exclusively`].
pub fn run(conn: &mut DbConn) -> Result<usize, DbError> {
    // Stoke's tables share names with Tessera's: migrating over them would fail half-way, with no hint.
    if super::stoke::holds_stoke_tables(conn)? {
        return Err(DbError::Migration(super::stoke::HOLDS_STOKE.into()));
    }
    let applied = match conn {
        DbConn::Sqlite(c) => {
            // WAL lets readers proceed during a write; it is a property of the file, set once.
            let _ = c.batch_execute("PRAGMA journal_mode = WAL;");
            c.run_pending_migrations(SQLITE).map(|v| v.len())
        }
        DbConn::Postgres(c) => c.run_pending_migrations(POSTGRES).map(|v| v.len()),
        #[cfg(feature = "mysql")]
        DbConn::Mysql(c) => c.run_pending_migrations(MYSQL).map(|v| v.len()),
    };
    applied.map_err(|e| DbError::Migration(e.to_string()))
}
