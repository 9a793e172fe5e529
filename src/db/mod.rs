//! The database: one connection enum over the three backends, an r2d2 pool, embedded migrations and dbinit.
//!
//! Everything here is blocking; async callers go through [`Db::run`], which moves the work to tokio's blocking
//! pool. Backend-specific SQL stays in this module and in [`migrations`]. This module knows nothing of HTTP.
//!
//! Lookups of one row by a unique key use `get_result`, not `first`: `first` adds `LIMIT ?`, and SQLite's
//! planner peeks at a bound LIMIT, which marks the statement to be compiled again at every execution (that
//! re-preparation was a fifth of a refresh's CPU time). `first` stays where several rows may match.

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod catalog;
pub mod clients;
pub mod dbinit;
pub mod import;
pub mod keys;
pub mod mfa;
pub mod migrations;
pub mod oidc;
pub mod outbox;
pub mod refresh;
pub mod schema;
pub mod stoke;
pub mod throttle;
pub mod users;
mod writer;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::Connection;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use tracing::Instrument as _;

use crate::config::{Backend, DatabaseConfig};

/// A connection to whichever backend the configuration selects.
#[cfg(feature = "mysql")]
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Mysql(diesel::mysql::MysqlConnection),
    Sqlite(SqliteConnection),
}

/// A connection to whichever backend the configuration selects.
#[cfg(not(feature = "mysql"))]
#[derive(diesel::MultiConnection)]
pub enum DbConn {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be had within the pool timeout: the database is down or overloaded.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    /// The configuration asks for a backend this build does not include.
    #[error("{0}")]
    Unsupported(String),
}

impl DbError {
    /// Whether this is a unique-constraint violation (the caller usually answers 409).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Query(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }
}

impl From<r2d2::PoolError> for DbError {
    fn from(e: r2d2::PoolError) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// Opens connections of one backend, never by trial: the backend was decided from the configuration.
#[derive(Debug, Clone)]
pub struct Manager {
    backend: Backend,
    url: String,
    sqlite_pragmas: String,
}

impl ManageConnection for Manager {
    type Connection = DbConn;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConn, r2d2::Error> {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = SqliteConnection::establish(&self.url).map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(&self.sqlite_pragmas)
                    .map_err(r2d2::Error::QueryError)?;
                Ok(DbConn::Sqlite(conn))
            }
            Backend::Postgres => PgConnection::establish(&self.url)
                .map(DbConn::Postgres)
                .map_err(r2d2::Error::ConnectionError),
            #[cfg(feature = "mysql")]
            Backend::Mysql => diesel::mysql::MysqlConnection::establish(&self.url)
                .map(DbConn::Mysql)
                .map_err(r2d2::Error::ConnectionError),
            #[cfg(not(feature = "mysql"))]
            Backend::Mysql => Err(r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(
                "this build has no MySQL support (build with --features mysql)".into(),
            ))),
        }
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1").map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConn) -> bool {
        // A connection left inside a failed transaction is not handed out again.
        match conn {
            DbConn::Sqlite(c) => is_broken(c),
            DbConn::Postgres(c) => is_broken(c),
            #[cfg(feature = "mysql")]
            DbConn::Mysql(c) => is_broken(c),
        }
    }
}

fn is_broken<C: Connection>(conn: &mut C) -> bool {
    use diesel::connection::TransactionManager;
    C::TransactionManager::is_broken_transaction_manager(conn)
}

/// The pool, and which backend it talks to.
#[derive(Clone)]
pub struct Db {
    pool: Pool<Manager>,
    backend: Backend,
    /// SQLite has one writer at a time. Writers of this process queue here instead of in SQLite's busy
    /// handler, which sleeps in coarse steps and collapses throughput under contention.
    writer: Option<Writer>,
}

/// How SQLite writes are serialised in this process.
#[derive(Clone)]
enum Writer {
    /// One thread with its own connection runs every write, many to a transaction ([`writer`]). Its page
    /// cache stays warm (a pooled connection must drop its cache whenever another connection has written).
    Thread(writer::Writer),
    /// Take turns on a pooled connection (a shared in-memory database, which must not get a second one).
    Turn(Arc<Mutex<()>>),
}

pub type PooledConn = PooledConnection<Manager>;

impl Db {
    /// Opens the pool and one connection, so an unreachable database fails here with a clear message.
    pub fn connect(cfg: &DatabaseConfig) -> Result<Db, DbError> {
        let (backend, url) = cfg.resolve().map_err(DbError::Unsupported)?;
        let memory = backend == Backend::Sqlite && url.contains("mode=memory");
        let sqlite_pragmas = format!(
            "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = {};",
            cfg.sqlite.busy_timeout.as_duration().as_millis(),
            cfg.sqlite.synchronous.to_ascii_uppercase(),
        );
        let manager = Manager {
            backend,
            url,
            sqlite_pragmas,
        };
        // A shared in-memory SQLite database lives as long as one connection does, and its shared cache
        // would answer concurrent writers with lock errors: it gets exactly one, kept open.
        let max_size = if memory { 1 } else { cfg.max_connections.max(1) };
        let pool = Pool::builder()
            .max_size(max_size)
            .min_idle(Some(1))
            .connection_timeout(cfg.connect_timeout.as_duration().max(Duration::from_millis(100)))
            .test_on_check_out(backend != Backend::Sqlite)
            .build(manager.clone())
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        let writer = match backend {
            Backend::Sqlite if memory => Some(Writer::Turn(Arc::new(Mutex::new(())))),
            Backend::Sqlite => {
                let mut conn = manager.connect().map_err(|e| DbError::Unavailable(e.to_string()))?;
                // Checkpoints (and their fsyncs) mostly run in the background (`checkpoint`). Under steady writes
                // the WAL can only start over after a checkpoint by the writer itself, which this threshold
                // (10,000 pages, 40 MiB) makes rare: each costs the writer two fsyncs, and at 2,000 pages
                // they showed in the refresh p99 during a login flood.
                conn.batch_execute("PRAGMA wal_autocheckpoint = 10000;")
                    .map_err(DbError::Query)?;
                Some(Writer::Thread(writer::Writer::start(conn)?))
            }
            _ => None,
        };
        Ok(Db { pool, backend, writer })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A connection for blocking code (start-up, CLI commands).
    pub fn get(&self) -> Result<PooledConn, DbError> {
        Ok(self.pool.get()?)
    }

    /// The span of one database call in an exported trace (`operation`: "db read", "db write", …); disabled
    /// (and free) when traces are not exported.
    fn span(&self, operation: &'static str) -> tracing::Span {
        let system = match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
            Backend::Mysql => "mysql",
        };
        tracing::trace_span!(target: crate::telemetry::otlp::TARGET, "db", otel.name = operation, db.system.name = system)
    }

    /// Runs `f` with a pooled connection on the blocking thread pool.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        self.run_in(self.span("db"), f).await
    }

    /// [`Db::run`] inside `span`.
    async fn run_in<T, E, F>(&self, span: tracing::Span, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        // On the blocking thread, log lines keep their request: the database span, or the request's own.
        let (pool, span) = (self.pool.clone(), crate::telemetry::otlp::child(span));
        match tokio::task::spawn_blocking(move || {
            let _request = span.enter();
            let mut conn = pool.get().map_err(DbError::from)?;
            f(&mut conn)
        })
        .await
        {
            Ok(result) => result,
            Err(e) => Err(E::from(DbError::Unavailable(format!("database task failed: {e}")))),
        }
    }

    /// Runs a short read by key (`f`: a statement or two on indexed columns) at once on the calling thread when
    /// the backend is SQLite and a pooled connection is idle; otherwise (another backend, whose answer crosses a
    /// network, or no idle connection) like [`Db::run`]. A read of SQLite's pages takes microseconds, less than
    /// handing it to the blocking pool and back (two thread wake-ups, which were most of the time of a
    /// `client_credentials` token or an introspection); it never waits for a connection, and in WAL mode a
    /// reader does not wait for the writer.
    pub async fn read_now<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let span = self.span("db read");
        if self.backend == Backend::Sqlite
            && let Some(mut conn) = self.pool.try_get()
        {
            return span.in_scope(|| f(&mut conn));
        }
        self.run_in(span, f).await
    }

    /// Runs `f` without a transaction of its own: on SQLite as a job of the writer thread, elsewhere on a pooled
    /// connection (autocommit). For reads on a write-heavy path (a pooled SQLite connection must re-read every
    /// page another connection changed; the writer's cache stays warm), and for single-statement writes such as
    /// the throttle's compare-and-set updates (a write on a pooled SQLite connection would hold the lock the
    /// writer thread then waits for in SQLite's busy handler, which sleeps in steps of milliseconds).
    pub async fn on_writer<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let span = self.span("db");
        match &self.writer {
            Some(Writer::Thread(writer)) => writer.submit(f).instrument(span).await,
            _ => self.run_in(span, f).await,
        }
    }

    /// Like [`Db::on_writer`], for a job that only reads: on SQLite's writer thread it runs in the batch's
    /// transaction without a savepoint of its own (two statements fewer per job on the one thread every write
    /// waits for). Should it fail, the batch ends there, so a failure can take nothing of other jobs with it.
    pub async fn read_on_writer<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let span = self.span("db read");
        match &self.writer {
            Some(Writer::Thread(writer)) => writer.submit_read(f).instrument(span).await,
            _ => self.run_in(span, f).await,
        }
    }

    /// [`Db::write`] for blocking code (the key ring's maintenance, start-up); never call it on an async task.
    pub fn write_blocking<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match &self.writer {
            Some(Writer::Thread(writer)) => writer.submit_blocking(f),
            turn => {
                let mut conn = self.get()?;
                let _turn = match turn {
                    Some(Writer::Turn(t)) => Some(t.lock().unwrap_or_else(|p| p.into_inner())),
                    _ => None,
                };
                write_transaction(&mut conn, f)
            }
        }
    }

    /// Runs `f` in a write transaction: on SQLite's writer thread (where it may share its transaction with
    /// other jobs, each in a savepoint of its own), elsewhere in a [`write_transaction`] on the blocking pool.
    /// Either way, an `Err` from `f` takes back all that `f` wrote.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let span = self.span("db write");
        match self.writer.clone() {
            Some(Writer::Thread(writer)) => writer.submit(f).instrument(span).await,
            turn => {
                self.run_in(span, move |conn| {
                    // The connection first, then the lock: a lock holder never waits for the pool.
                    let _turn = match &turn {
                        Some(Writer::Turn(t)) => Some(t.lock().unwrap_or_else(|p| p.into_inner())),
                        _ => None,
                    };
                    write_transaction(conn, f)
                })
                .await
            }
        }
    }

    /// Whether the database answers a trivial query now.
    pub async fn ping(&self) -> Result<(), DbError> {
        self.run(|conn| {
            conn.batch_execute("SELECT 1")
                .map_err(|e| DbError::Unavailable(e.to_string()))
        })
        .await
    }

    /// Copies committed WAL pages into the SQLite database file without blocking writers (a no-op elsewhere).
    pub fn checkpoint(&self) -> Result<(), DbError> {
        if matches!(self.writer, Some(Writer::Thread(_))) {
            self.get()?.batch_execute("PRAGMA wal_checkpoint(PASSIVE);")?;
        }
        Ok(())
    }

    /// Connections in use and idle, for `/metrics`.
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections - s.idle_connections, s.idle_connections)
    }
}

/// A statement whose prepared form diesel may keep, keyed by its SQL text. diesel never keeps an UPDATE's,
/// since a changeset's SQL can vary; keyed by the text, that is harmless, and a fixed UPDATE on a hot path
/// (a refresh has two) is then prepared once per connection instead of at every execution.
#[derive(Debug, Clone, Copy)]
pub struct Cached<Q>(pub Q);

impl<Q> diesel::query_builder::QueryId for Cached<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q, DB> diesel::query_builder::QueryFragment<DB> for Cached<Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, pass: diesel::query_builder::AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<Q, Conn> diesel::RunQueryDsl<Conn> for Cached<Q> {}

/// [`Cached`] found by a key type instead of its SQL text, for a statement whose text never varies (every value
/// bound, no optional parts). The statement cache then looks it up by the key alone, so a hot statement's SQL
/// text is not built at every execution just to find its prepared form. Each key names one statement.
pub struct CachedAs<K, Q>(pub Q, pub std::marker::PhantomData<K>);

impl<K, Q> CachedAs<K, Q> {
    pub fn new(query: Q) -> Self {
        CachedAs(query, std::marker::PhantomData)
    }
}

impl<K: 'static, Q> diesel::query_builder::QueryId for CachedAs<K, Q> {
    type QueryId = K;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<K, Q, DB> diesel::query_builder::QueryFragment<DB> for CachedAs<K, Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, pass: diesel::query_builder::AstPass<'_, 'b, DB>) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<K, Q, Conn> diesel::RunQueryDsl<Conn> for CachedAs<K, Q> {}

/// Runs `$body` with `$c` bound to the backend's own connection inside a [`DbConn`], for the statements of the
/// hottest paths (a refresh's read and write). Through `MultiConnection` every execution builds its SQL text
/// again (once per pass over the query, identifiers quoted one allocation each); on the backend's own
/// connection a statement with a static query id is found in the cache by its type and its text is built only
/// when it is first prepared. `$body` is compiled once per backend, so it must be backend-neutral diesel.
#[macro_export]
macro_rules! native {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite($c) => $body,
            $crate::db::DbConn::Postgres($c) => $body,
            #[cfg(feature = "mysql")]
            $crate::db::DbConn::Mysql($c) => $body,
        }
    };
}

/// A new row id: a random positive integer below 2^53, so JavaScript clients read it exactly. Ids are made
/// by the application so that inserts need no `RETURNING` (which MySQL lacks).
pub fn new_id() -> i64 {
    ((rand::random::<u64>() >> 11) as i64).max(1)
}

/// Seconds since the Unix epoch.
pub type Timestamp = i64;

/// Runs `f` in a write transaction. On SQLite it begins `IMMEDIATE`, taking the write lock up front, so a
/// transaction that reads before it writes cannot fail its lock upgrade under concurrency; elsewhere it is an
/// ordinary transaction. `f` must not open transactions of its own.
pub fn write_transaction<T, E, F>(conn: &mut DbConn, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E>,
    E: From<DbError>,
{
    if !matches!(conn, DbConn::Sqlite(_)) {
        return conn
            .transaction(|c| f(c).map_err(TxError::App))
            .map_err(TxError::into_app);
    }
    conn.batch_execute("BEGIN IMMEDIATE")
        .map_err(|e| E::from(DbError::Query(e)))?;
    match f(conn) {
        Ok(value) => match conn.batch_execute("COMMIT") {
            Ok(()) => Ok(value),
            Err(e) => {
                let _ = conn.batch_execute("ROLLBACK");
                Err(E::from(DbError::Query(e)))
            }
        },
        Err(e) => {
            let _ = conn.batch_execute("ROLLBACK");
            Err(e)
        }
    }
}

/// Lets a diesel transaction carry an application error out.
enum TxError<E> {
    App(E),
    Db(diesel::result::Error),
}

impl<E> From<diesel::result::Error> for TxError<E> {
    fn from(e: diesel::result::Error) -> Self {
        TxError::Db(e)
    }
}

impl<E: From<DbError>> TxError<E> {
    fn into_app(self) -> E {
        match self {
            TxError::App(e) => e,
            TxError::Db(e) => E::from(DbError::Query(e)),
        }
    }
}
