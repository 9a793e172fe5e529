//! SQLite's one writer. A thread owns the write connection and runs every write of this process, taking as
//! many queued jobs as are waiting into one transaction (group commit): under load, a hundred refreshes share
//! one `BEGIN`, one `COMMIT` and one write of each WAL page they touch, and no job pays a trip through the
//! blocking pool or waits on a lock.
//!
//! Each job after the first runs inside a savepoint, so a job that fails takes back only its own writes. A job
//! hears its result after the transaction commits; should the commit fail, every job of the batch hears so.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use diesel::RunQueryDsl;
use tokio::sync::oneshot;

use super::{Cached, DbConn, DbError};

/// The most jobs one transaction takes, which bounds how long the first of them waits for its commit.
const MAX_BATCH: usize = 64;

/// The sending side; the thread ends when the last one is dropped.
#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    pub(super) fn start(conn: DbConn) -> Result<Writer, DbError> {
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue))
            .map_err(|e| DbError::Unavailable(format!("cannot start the database writer: {e}")))?;
        Ok(Writer { jobs })
    }

    /// Runs `work` in the writer's current transaction and returns its result once that has committed.
    pub(super) async fn submit<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match self.queue(work, true) {
            Ok(answer) => answer.await.unwrap_or_else(|_| Err(stopped())),
            Err(e) => Err(e),
        }
    }

    /// [`Writer::submit`] for a job that only reads: it needs no savepoint of its own (see [`run`]).
    pub(super) async fn submit_read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match self.queue(work, false) {
            Ok(answer) => answer.await.unwrap_or_else(|_| Err(stopped())),
            Err(e) => Err(e),
        }
    }

    /// [`Writer::submit`] for blocking code (the key ring's maintenance, start-up), never on an async task.
    pub(super) fn submit_blocking<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match self.queue(work, true) {
            Ok(answer) => answer.blocking_recv().unwrap_or_else(|_| Err(stopped())),
            Err(e) => Err(e),
        }
    }

    fn queue<T, E, F>(&self, work: F, savepoint: bool) -> Result<oneshot::Receiver<Result<T, E>>, E>
    where
        F: FnOnce(&mut DbConn) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Typed {
            work: Some(work),
            result: None,
            reply,
            span: tracing::Span::current(),
            savepoint,
        });
        self.jobs.send(job).map_err(|_| stopped())?;
        Ok(answer)
    }
}

fn stopped<E: From<DbError>>() -> E {
    E::from(DbError::Unavailable("the database writer has stopped".into()))
}

/// A queued unit of work, with its result kept until its transaction ends.
trait Job: Send {
    /// Runs the work; `true` when it succeeded and its writes are to be kept.
    fn run(&mut self, conn: &mut DbConn) -> bool;
    /// Sends the result, now that the transaction has ended (`Err`: it did not commit).
    fn finish(self: Box<Self>, commit: Result<(), &DbError>);
    /// Whether the job may write, and so needs a savepoint when it shares a transaction.
    fn savepoint(&self) -> bool;
}

struct Typed<F, T, E> {
    work: Option<F>,
    result: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
    /// The request's span, so the job's log lines carry its id.
    span: tracing::Span,
    /// `false` for a job that only reads.
    savepoint: bool,
}

impl<F, T, E> Job for Typed<F, T, E>
where
    F: FnOnce(&mut DbConn) -> Result<T, E> + Send,
    T: Send,
    E: From<DbError> + Send,
{
    fn run(&mut self, conn: &mut DbConn) -> bool {
        let _request = self.span.enter();
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), &DbError>) {
        let Typed { result, reply, .. } = *self;
        let result = match (result, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(e)) => Err(E::from(DbError::Unavailable(format!("commit failed: {e}")))),
            // It panicked, and its savepoint was rolled back.
            (None, _) => Err(E::from(DbError::Unavailable("the write failed".into()))),
        };
        let _ = reply.send(result);
    }

    fn savepoint(&self) -> bool {
        self.savepoint
    }
}

/// The writer thread: one transaction per batch of queued jobs, until every sender is gone.
fn run(mut conn: DbConn, queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut committed: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(mut job) = queue.recv() {
        if let Err(e) = exec(&mut conn, "BEGIN IMMEDIATE") {
            // Another process holds the write lock past the busy timeout: this job fails, the next tries again.
            job.finish(Err(&DbError::Query(e)));
            continue;
        }
        // The first job has the transaction to itself, so it needs no savepoint: if it fails, all is rolled back.
        if !run_job(&mut *job, &mut conn) {
            let _ = exec(&mut conn, "ROLLBACK");
            job.finish(Ok(()));
            continue;
        }
        committed.push(job);
        let mut broken = None;
        while committed.len() < MAX_BATCH {
            let Ok(mut job) = queue.try_recv() else {
                break;
            };
            if !job.savepoint() {
                // A read writes nothing to take back. Should it fail, the batch ends here: if the failure ended
                // SQLite's transaction too (an I/O error), the commit says so to the jobs before it.
                if run_job(&mut *job, &mut conn) {
                    committed.push(job);
                    continue;
                }
                job.finish(Ok(()));
                break;
            }
            if let Err(e) = exec(&mut conn, "SAVEPOINT job") {
                job.finish(Err(&DbError::Query(e)));
                continue;
            }
            let ok = run_job(&mut *job, &mut conn);
            let kept = if ok {
                exec(&mut conn, "RELEASE job")
            } else {
                exec(&mut conn, "ROLLBACK TO job").and_then(|()| exec(&mut conn, "RELEASE job"))
            };
            match kept {
                Ok(()) if ok => committed.push(job),
                Ok(()) => job.finish(Ok(())),
                Err(e) => {
                    // SQLite ended the transaction itself (an I/O error, a full disk): nothing of it stands.
                    let e = DbError::Query(e);
                    job.finish(Err(&e));
                    broken = Some(e);
                    break;
                }
            }
        }
        let outcome = match broken {
            Some(e) => Err(e),
            None => exec(&mut conn, "COMMIT").map_err(DbError::Query),
        };
        if outcome.is_err() {
            let _ = exec(&mut conn, "ROLLBACK");
        }
        for job in committed.drain(..) {
            job.finish(outcome.as_ref().map(|_| ()));
        }
    }
}

/// Runs a transaction-control statement, prepared once (they are run several times per batch).
fn exec(conn: &mut DbConn, sql: &'static str) -> Result<(), diesel::result::Error> {
    Cached(diesel::sql_query(sql)).execute(conn).map(|_| ())
}

/// Runs one job; a panic counts as a failure.
fn run_job(job: &mut dyn Job, conn: &mut DbConn) -> bool {
    catch_unwind(AssertUnwindSafe(|| job.run(conn))).unwrap_or(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use diesel::sql_types::BigInt;

    use crate::config::DatabaseConfig;
    use crate::db::{Db, DbError};

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    fn open(dir: &tempfile::TempDir) -> Db {
        let mut cfg = DatabaseConfig::default();
        cfg.sqlite.file = dir.path().join("w.db").display().to_string();
        let db = Db::connect(&cfg).unwrap();
        db.get()
            .unwrap()
            .batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER NOT NULL UNIQUE);")
            .unwrap();
        db
    }

    fn rows(db: &Db) -> i64 {
        diesel::sql_query("SELECT COUNT(*) AS n FROM t")
            .get_result::<Count>(&mut *db.get().unwrap())
            .unwrap()
            .n
    }

    /// Jobs that share a transaction keep their own outcome: a failed or panicking job takes back only its own
    /// writes, and the writer goes on serving.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn each_job_of_a_batch_stands_or_falls_alone() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let jobs: Vec<_> = (0..300i64)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(move |c| {
                        c.batch_execute(&format!("INSERT INTO t VALUES ({i})"))?;
                        match i % 3 {
                            0 => Ok(i),
                            1 => Err(DbError::Unavailable("refused".into())),
                            _ => panic!("a job that panics"),
                        }
                    })
                    .await
                })
            })
            .collect();
        let mut kept = 0;
        for (i, job) in jobs.into_iter().enumerate() {
            match job.await.unwrap() {
                Ok(v) => {
                    assert_eq!(v, i as i64);
                    kept += 1;
                }
                Err(DbError::Unavailable(_)) => assert_ne!(i % 3, 0),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(kept, 100);
        assert_eq!(rows(&db), 100);
        let n: i64 = db
            .write(|c| {
                Ok::<_, DbError>(
                    diesel::sql_query("SELECT COUNT(*) AS n FROM t")
                        .get_result::<Count>(c)?
                        .n,
                )
            })
            .await
            .unwrap();
        assert_eq!(n, 100);
    }

    /// Reads share the writers' transactions without savepoints; a read that fails ends its batch, and neither
    /// it nor the writes around it lose anything of each other's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn reads_without_savepoints_keep_the_batch_whole() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let jobs: Vec<_> = (0..300i64)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    match i % 3 {
                        0 => db
                            .write(move |c| Ok::<_, DbError>(c.batch_execute(&format!("INSERT INTO t VALUES ({i})"))?))
                            .await
                            .map(|()| 0),
                        1 => {
                            db.read_on_writer(|c| {
                                Ok::<_, DbError>(
                                    diesel::sql_query("SELECT COUNT(*) AS n FROM t")
                                        .get_result::<Count>(c)?
                                        .n,
                                )
                            })
                            .await
                        }
                        _ => {
                            db.read_on_writer(|_| Err::<i64, _>(DbError::Unavailable("refused".into())))
                                .await
                        }
                    }
                })
            })
            .collect();
        for (i, job) in jobs.into_iter().enumerate() {
            let result = job.await.unwrap();
            assert_eq!(result.is_ok(), i % 3 != 2, "job {i}: {result:?}");
        }
        assert_eq!(rows(&db), 100);
    }

    /// A statement error inside a job (here a unique violation) is that job's error; the batch commits the rest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failed_statement_fails_only_its_job() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let jobs: Vec<_> = (0..100i64)
            .map(|i| {
                let db = db.clone();
                // Every value twice: one of each pair must fail on the unique index.
                tokio::spawn(async move {
                    db.write(move |c| Ok::<_, DbError>(c.batch_execute(&format!("INSERT INTO t VALUES ({})", i / 2))?))
                        .await
                })
            })
            .collect();
        let mut failed = 0;
        for job in jobs {
            if let Err(e) = job.await.unwrap() {
                assert!(matches!(e, DbError::Query(_)), "{e}");
                failed += 1;
            }
        }
        assert_eq!(failed, 50);
        assert_eq!(rows(&db), 50);
    }
}
