//! The key ring: which keys are published, which one signs, and when the next one is made.
//!
//! Stoke's schedule, with K = `tokens.key_duration` and T = `tokens.token_duration`: a successor is created
//! (and published) 2T before the newest key expires, signs from T before that expiry, and the old key is
//! dropped when it expires, after every token it signed has expired. Keys live in the database, so a restart
//! loses nothing and replicas share one ring: a successor is inserted under a unique rotation step, so when
//! two replicas decide to rotate at once exactly one insert wins and the other reloads. Every replica reloads
//! at least every `cluster.key_check_interval`, which must be shorter than T, so a new key is in every
//! replica's JWKS a whole T before anyone signs with it.
//!
//! The JWKS and `/api/pkeys` bodies are serialized once per change, not per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::crypto::jwt;
use crate::crypto::keys::{Alg, KeyError, PublicJwk, SigningKey};
use crate::crypto::seal::Row;
use crate::db::keys::{self as key_db, KeyRow};
use crate::db::{Db, DbError};
use crate::services::at_rest::Kek;

/// Rotation settings, from `tokens` and `cluster`.
#[derive(Debug, Clone)]
pub struct RingSettings {
    pub alg: Alg,
    pub rsa_bits: u32,
    /// K: the life of a key.
    pub key_duration: i64,
    /// T: the life of a token.
    pub token_duration: i64,
    pub persist: bool,
    /// Encrypts private keys at rest ([`crate::services::at_rest`]).
    pub kek: Kek,
}

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("stored key {kid}: {message}")]
    Stored { kid: String, message: String },
}

/// One key of the ring, with its schedule and pre-encoded JWT header.
#[derive(Debug)]
pub struct LiveKey {
    pub key: Arc<SigningKey>,
    pub header: String,
    pub step: i64,
    pub publish_at: i64,
    pub sign_from: i64,
    pub expires_at: i64,
}

/// An immutable snapshot of the ring; a change builds a new one.
#[derive(Debug, Default)]
pub struct RingState {
    /// Oldest rotation step first.
    pub keys: Vec<Arc<LiveKey>>,
    /// `/api/pkeys` body (padded base64url members, Stoke's form).
    pub pkeys_body: Bytes,
    /// `/.well-known/jwks.json` body (RFC 7517).
    pub jwks_body: Bytes,
    /// When clients should fetch the keys again: between the next key's publication and its first use.
    pub refetch_at: i64,
}

impl RingState {
    /// The key to sign with at `now`: the most recent whose signing window has begun.
    pub fn signer(&self, now: i64) -> Option<&Arc<LiveKey>> {
        self.keys
            .iter()
            .filter(|k| k.sign_from <= now && k.expires_at > now)
            .max_by_key(|k| (k.sign_from, k.step))
    }

    pub fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.keys.iter().find(|k| k.key.kid == kid).map(|k| k.key.clone())
    }

    fn newest(&self) -> Option<&Arc<LiveKey>> {
        self.keys.last()
    }
}

pub struct KeyRing {
    /// Keys this process created, for `/metrics`.
    pub rotations: std::sync::atomic::AtomicU64,
    settings: RingSettings,
    db: Db,
    state: RwLock<Arc<RingState>>,
}

impl KeyRing {
    /// Loads the ring (creating the first key if there is none) so that a signer exists from the start.
    pub fn load(settings: RingSettings, db: Db, now: i64) -> Result<KeyRing, RingError> {
        let ring = KeyRing {
            rotations: std::sync::atomic::AtomicU64::new(0),
            settings,
            db,
            state: RwLock::new(Arc::new(RingState::default())),
        };
        ring.refresh(now)?;
        Ok(ring)
    }

    pub fn settings(&self) -> &RingSettings {
        &self.settings
    }

    /// The current snapshot (cheap: an `Arc` clone under a read lock).
    pub fn current(&self) -> Arc<RingState> {
        match self.state.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, state: RingState) {
        match self.state.write() {
            Ok(mut guard) => *guard = Arc::new(state),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(state),
        }
    }

    /// Re-reads the shared ring, creates a successor when one is due (or when none can sign), drops
    /// expired keys, and publishes a new snapshot. Blocking: call it off the async executor.
    pub fn refresh(&self, now: i64) -> Result<(), RingError> {
        let previous = self.current();
        let mut keys = if self.settings.persist {
            self.load_rows(&previous, now)?
        } else {
            live(&previous, now)
        };
        if let Some(successor) = self.successor_due(&keys, now) {
            match self.create(successor, now) {
                Ok(key) => {
                    tracing::info!(kid = %key.key.kid, alg = %key.key.alg, sign_from = key.sign_from, "signing key created");
                    keys.push(Arc::new(key));
                }
                Err(RingError::Db(e)) if e.is_unique_violation() => {
                    // Another replica made this step's key first: use theirs.
                    keys = self.load_rows(&previous, now)?;
                }
                Err(e) => return Err(e),
            }
        }
        if self.settings.persist {
            // Any replica may clean up; deleting twice is harmless.
            self.db
                .write_blocking(move |c| key_db::delete_expired(c, now).map(drop))?;
        }
        keys.sort_by_key(|k| k.step);
        self.replace(self.build_state(keys, now));
        Ok(())
    }

    /// Makes a successor now, signing after one token lifetime (admin "rotate now"; also on algorithm change).
    pub fn rotate_now(&self, now: i64) -> Result<String, RingError> {
        let state = self.current();
        let t = self.settings.token_duration;
        let sign_from = match state.newest() {
            Some(n) => (now + t).min(n.expires_at - t).max(now),
            None => now,
        };
        let step = self.next_step(&state.keys)?;
        let key = self.create(Successor { step, sign_from }, now)?;
        let kid = key.key.kid.clone();
        let mut keys: Vec<Arc<LiveKey>> = state.keys.clone();
        keys.push(Arc::new(key));
        self.replace(self.build_state(keys, now));
        Ok(kid)
    }

    fn next_step(&self, keys: &[Arc<LiveKey>]) -> Result<i64, RingError> {
        let in_memory = keys.iter().map(|k| k.step).max();
        let stored = if self.settings.persist {
            key_db::max_step(&mut *self.db.get()?)?
        } else {
            None
        };
        Ok(in_memory.max(stored).map_or(0, |s| s + 1))
    }

    /// When a new key is needed: none can sign soon enough, the newest nears its expiry, or the configured
    /// algorithm changed.
    fn successor_due(&self, keys: &[Arc<LiveKey>], now: i64) -> Option<Successor> {
        let t = self.settings.token_duration;
        let step = keys.iter().map(|k| k.step).max().map_or(0, |s| s + 1);
        let Some(newest) = keys.iter().max_by_key(|k| k.step) else {
            return Some(Successor { step, sign_from: now });
        };
        if newest.expires_at - 2 * t <= now {
            return Some(Successor {
                step,
                sign_from: (newest.expires_at - t).max(now),
            });
        }
        if newest.key.alg != self.settings.alg {
            return Some(Successor {
                step,
                sign_from: (now + t).min(newest.expires_at - t).max(now),
            });
        }
        None
    }

    fn create(&self, s: Successor, now: i64) -> Result<LiveKey, RingError> {
        let (key, der) = SigningKey::generate(self.settings.alg, self.settings.rsa_bits)?;
        self.rotations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (k, t) = (self.settings.key_duration, self.settings.token_duration);
        // The first key signs at once for K; a successor signs for K - 2T after one T of publication.
        let expires_at = if s.sign_from == now {
            now + k
        } else {
            s.sign_from + k - t
        };
        let live = LiveKey {
            header: jwt::encoded_header(&key),
            step: s.step,
            publish_at: now,
            sign_from: s.sign_from,
            expires_at,
            key: Arc::new(key),
        };
        if self.settings.persist {
            let private_key = self
                .settings
                .kek
                .store(Row::SigningKey(&live.key.kid), &der)
                .map_err(|message| RingError::Stored {
                    kid: live.key.kid.clone(),
                    message,
                })?;
            let row = KeyRow {
                kid: live.key.kid.clone(),
                algorithm: live.key.alg.name().to_string(),
                public_jwk: jwk(&live.key, false).to_string(),
                private_key,
                rotation_step: live.step,
                publish_at: live.publish_at,
                sign_from: live.sign_from,
                expires_at: live.expires_at,
                created_at: now,
            };
            // The key and its audit line in one transaction, on SQLite through its one writer.
            self.db.write_blocking(move |c| -> Result<(), DbError> {
                key_db::insert(c, &row)?;
                let detail = format!("{} signs from {}", row.algorithm, row.sign_from);
                crate::db::audit::record(c, now, "tessera", "keys.rotated", &row.kid, &detail)
            })?;
        }
        Ok(live)
    }

    /// Live keys from the database; keys already parsed in `previous` are reused, not parsed again.
    fn load_rows(&self, previous: &RingState, now: i64) -> Result<Vec<Arc<LiveKey>>, RingError> {
        let rows = key_db::live(&mut *self.db.get()?, now)?;
        let known: HashMap<&str, &Arc<LiveKey>> = previous.keys.iter().map(|k| (k.key.kid.as_str(), k)).collect();
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(k) = known.get(row.kid.as_str()) {
                keys.push((*k).clone());
                continue;
            }
            let stored = |message: String| RingError::Stored {
                kid: row.kid.clone(),
                message,
            };
            let alg =
                Alg::parse(&row.algorithm).ok_or_else(|| stored(format!("unknown algorithm {}", row.algorithm)))?;
            if row.private_key.is_empty() {
                // A verification-only key (Stoke's, from `import-stoke`): published and trusted until it expires;
                // `sign_from = expires_at`, so it never signs.
                let key = SigningKey::verify_only(alg, &row.public_jwk)?;
                if key.kid != row.kid {
                    return Err(stored("kid does not match the key".into()));
                }
                keys.push(Arc::new(LiveKey {
                    header: jwt::encoded_header(&key),
                    key: Arc::new(key),
                    step: row.rotation_step,
                    publish_at: row.publish_at,
                    sign_from: row.sign_from,
                    expires_at: row.expires_at,
                }));
                continue;
            }
            let (der, rewrite) = self
                .settings
                .kek
                .open(Row::SigningKey(&row.kid), &row.private_key)
                .map_err(stored)?;
            if let Some(new) = rewrite {
                self.rewrite_stored(&row, &new);
            }
            let key = SigningKey::from_pkcs8(alg, &der)?;
            if key.kid != row.kid {
                return Err(stored("kid does not match the key".into()));
            }
            keys.push(Arc::new(LiveKey {
                header: jwt::encoded_header(&key),
                key: Arc::new(key),
                step: row.rotation_step,
                publish_at: row.publish_at,
                sign_from: row.sign_from,
                expires_at: row.expires_at,
            }));
        }
        Ok(keys)
    }

    /// Replaces a stored key that is not in the current form (in the clear before a KEK existed, v1, or under
    /// an older KEK) with its current form.
    fn rewrite_stored(&self, row: &KeyRow, new: &str) {
        let (kid, old, new) = (row.kid.clone(), row.private_key.clone(), new.to_string());
        let result = self
            .db
            .write_blocking(move |c| key_db::replace_private_key(c, &kid, &old, &new));
        match result {
            Ok(()) => tracing::info!(kid = %row.kid, "signing key re-written encrypted in the current form"),
            Err(e) => {
                tracing::warn!(kid = %row.kid, error = %e, "signing key not re-written; retried at the next start")
            }
        }
    }

    fn build_state(&self, keys: Vec<Arc<LiveKey>>, now: i64) -> RingState {
        let t = self.settings.token_duration;
        let refetch_at = keys.last().map_or(now + 1, |n| (n.expires_at - t - t / 2).max(now + 1));
        let exp = time::OffsetDateTime::from_unix_timestamp(refetch_at)
            .ok()
            .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let pkeys = json!({ "exp": exp, "keys": keys.iter().map(|k| jwk(&k.key, true)).collect::<Vec<_>>() });
        let jwks = json!({ "keys": keys.iter().map(|k| jwk(&k.key, false)).collect::<Vec<_>>() });
        RingState {
            keys,
            pkeys_body: Bytes::from(pkeys.to_string()),
            jwks_body: Bytes::from(jwks.to_string()),
            refetch_at,
        }
    }

    /// When the ring next needs attention (a rotation or an expiry), for the background task's sleep.
    pub fn next_event(&self, now: i64) -> i64 {
        let state = self.current();
        let t = self.settings.token_duration;
        let mut next = i64::MAX;
        for k in &state.keys {
            next = next.min(k.expires_at);
        }
        if let Some(n) = state.newest() {
            next = next.min(n.expires_at - 2 * t);
        }
        next.max(now)
    }
}

struct Successor {
    step: i64,
    sign_from: i64,
}

/// Keys of a memory-only ring (`persist_keys: false`) that are still alive.
fn live(previous: &RingState, now: i64) -> Vec<Arc<LiveKey>> {
    previous.keys.iter().filter(|k| k.expires_at > now).cloned().collect()
}

/// A key as a JWK; `padded` gives Stoke's padded base64url members.
pub fn jwk(key: &SigningKey, padded: bool) -> Value {
    let b = |v: &[u8]| {
        if padded {
            URL_SAFE.encode(v)
        } else {
            URL_SAFE_NO_PAD.encode(v)
        }
    };
    let mut m = json!({ "kid": key.kid, "use": "sig", "alg": key.alg.name() });
    let extra = match &key.public {
        PublicJwk::Ec { crv, x, y } => json!({ "kty": "EC", "crv": crv, "x": b(x), "y": b(y) }),
        PublicJwk::Okp { x } => json!({ "kty": "OKP", "crv": "Ed25519", "x": b(x) }),
        PublicJwk::Rsa { n, e } => json!({ "kty": "RSA", "n": b(n), "e": b(e) }),
    };
    if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
        m.extend(extra);
    }
    m
}
