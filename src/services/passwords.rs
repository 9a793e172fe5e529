//! Password hashing on a small pool of dedicated threads.
//!
//! At most `security.hash_concurrency` hashes run at once, each thread reusing one argon2 buffer, so a login
//! storm costs threads × memory and queues for hashing instead of starving refreshes and JWKS of threads. The
//! queue is bounded (`security.hash_queue_limit`): past it, callers get [`HashError::Busy`] at once (503 with
//! `Retry-After`) instead of waiting without end while memory grows. Unknown users are checked against a decoy
//! hash with the same parameters, so their failure costs the same time as a wrong password.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tracing::Instrument as _;

use crate::config::SecurityConfig;
use crate::crypto::password::{Hasher, Memory, PasswordError, Stored, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue is full: the server is saturated with password checks.
    #[error("too many password checks waiting")]
    Busy,
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("the hashing pool stopped")]
    Stopped,
}

type Job = Box<dyn FnOnce(&Hasher, &mut Memory) + Send>;

#[derive(Clone)]
pub struct Passwords {
    queue: SyncSender<Job>,
    decoy: Arc<str>,
    max_bytes: usize,
    waiting: Arc<AtomicUsize>,
    /// Hashes computed (checks, decoys and new hashes), for `/metrics`.
    computed: Arc<AtomicU64>,
}

impl Passwords {
    /// Starts the hashing threads.
    pub fn new(hasher: Hasher, cfg: &SecurityConfig) -> Result<Self, PasswordError> {
        let threads = match cfg.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let (queue, jobs) = sync_channel::<Job>(cfg.hash_queue_limit.max(1));
        let jobs = Arc::new(Mutex::new(jobs));
        for i in 0..threads {
            let (jobs, hasher) = (jobs.clone(), hasher.clone());
            std::thread::Builder::new()
                .name(format!("tessera-hash-{i}"))
                .spawn(move || work(&jobs, &hasher))
                .map_err(|e| PasswordError::Hash(format!("cannot start hashing threads: {e}")))?;
        }
        Ok(Passwords {
            queue,
            decoy: hasher.decoy().into(),
            max_bytes: cfg.max_password_bytes,
            waiting: Arc::new(AtomicUsize::new(0)),
            computed: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Longer passwords are refused before any hashing (argon2 time grows with input; nobody types 1 KiB).
    pub fn too_long(&self, password: &str) -> bool {
        password.len() > self.max_bytes
    }

    /// Password checks queued or running, for `/metrics`.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Hashes computed since start, for `/metrics`.
    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    async fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Hasher, &mut Memory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (tx, rx) = oneshot::channel();
        let (waiting, computed) = (self.waiting.clone(), self.computed.clone());
        waiting.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move |hasher, memory| {
            let out = f(hasher, memory);
            // Counted before the answer goes out: a hashing thread (nice 19) preempted right after sending
            // would otherwise show a finished check as still queued.
            computed.fetch_add(1, Ordering::Relaxed);
            waiting.fetch_sub(1, Ordering::Relaxed);
            let _ = tx.send(out);
        });
        // In a trace: the wait in the queue and the hash itself, as the caller waits for both.
        let span = tracing::trace_span!(target: crate::telemetry::otlp::TARGET, "password hash");
        match self.queue.try_send(job) {
            Ok(()) => rx.instrument(span).await.map_err(|_| HashError::Stopped),
            Err(e) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => HashError::Busy,
                    TrySendError::Disconnected(_) => HashError::Stopped,
                })
            }
        }
    }

    /// Checks `password` against the stored columns; `None` (no such user, or no local password) costs the same
    /// as a wrong password and never matches.
    pub async fn verify(
        &self,
        password: String,
        stored: Option<(Option<String>, Option<String>)>,
    ) -> Result<Verdict, HashError> {
        let decoy = self.decoy.clone();
        self.submit(move |hasher, memory| {
            let columns = stored
                .as_ref()
                .and_then(|(h, s)| Stored::from_columns(h.as_deref(), s.as_deref()));
            match columns {
                Some(stored) => hasher.verify_in(&password, stored, memory),
                None => {
                    let _ = hasher.verify_in(&password, Stored::Phc(&decoy), memory);
                    Verdict::Wrong
                }
            }
        })
        .await
    }

    /// A new PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        Ok(self
            .submit(move |hasher, memory| hasher.hash_in(&password, memory))
            .await??)
    }
}

/// A hashing thread: one job at a time, one argon2 buffer for its whole life.
fn work(jobs: &Mutex<Receiver<Job>>, hasher: &Hasher) {
    // The lowest priority (nice 19): a hash holds a core for ~15 ms, and a refresh or a key fetch that wakes
    // behind it should not wait for its time slice. With nothing else to run, hashes still get every core.
    if let Err(e) = thread_priority::set_current_thread_priority(thread_priority::ThreadPriority::Min) {
        tracing::debug!(error = ?e, "cannot lower the hashing thread's priority");
    }
    let mut memory = Memory::default();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(hasher, &mut memory),
            Err(_) => return,
        }
    }
}
