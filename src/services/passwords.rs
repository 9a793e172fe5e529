//! Password checks on the blocking pool with bounded concurrency, so a login storm queues for hashing instead
//! of starving refreshes and JWKS of threads. Unknown users are checked against a dummy hash made with the same
//! parameters, so their failure costs the same time as a wrong password.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::config::SecurityConfig;
use crate::crypto::password::{Hasher, PasswordError, Stored, Verdict};

#[derive(Clone)]
pub struct Passwords {
    hasher: Hasher,
    permits: Arc<Semaphore>,
    dummy: Arc<str>,
    max_bytes: usize,
}

impl Passwords {
    pub fn new(hasher: Hasher, cfg: &SecurityConfig) -> Result<Self, PasswordError> {
        let concurrency = match cfg.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let dummy = hasher.hash(&format!("{:x}", rand::random::<u128>()))?;
        Ok(Passwords {
            hasher,
            permits: Arc::new(Semaphore::new(concurrency)),
            dummy: dummy.into(),
            max_bytes: cfg.max_password_bytes,
        })
    }

    /// Longer passwords are refused before any hashing (argon2 time grows with input; nobody types 1 KiB).
    pub fn too_long(&self, password: &str) -> bool {
        password.len() > self.max_bytes
    }

    /// Hashing operations waiting for a permit, for `/metrics`.
    pub fn available_permits(&self) -> usize {
        self.permits.available_permits()
    }

    /// Checks `password` against the stored columns; `None` (no such user, or no local password) costs the same
    /// as a wrong password and never matches.
    pub async fn verify(&self, password: String, stored: Option<(Option<String>, Option<String>)>) -> Verdict {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return Verdict::Wrong;
        };
        let (hasher, dummy) = (self.hasher.clone(), self.dummy.clone());
        tokio::task::spawn_blocking(move || {
            let columns = stored
                .as_ref()
                .and_then(|(h, s)| Stored::from_columns(h.as_deref(), s.as_deref()));
            match columns {
                Some(stored) => hasher.verify(&password, stored),
                None => {
                    let _ = hasher.verify(&password, Stored::Phc(&dummy));
                    Verdict::Wrong
                }
            }
        })
        .await
        .unwrap_or(Verdict::Wrong)
    }

    /// A new PHC string for `password`.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else {
            return Err(PasswordError::Hash("hashing is shut down".into()));
        };
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || hasher.hash(&password))
            .await
            .map_err(|e| PasswordError::Hash(e.to_string()))?
    }
}
