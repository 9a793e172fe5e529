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
//! The ring keeps one such chain of keys per algorithm of `tokens.algorithms`, all on this schedule: the
//! configured algorithm's chain is Stoke's (it signs `/api/login` and `/api/refresh` tokens and is all that
//! `/api/pkeys` lists), the others sign only for OAuth clients that chose them and appear only in the JWKS.
//! A key of an algorithm no longer configured stays in Stoke's chain until it expires, so switching
//! `tokens.algorithm` keeps tokens verifying. At start-up only Stoke's chain is filled synchronously; the others
//! (RSA generation takes up to a second) are made by the background task right after, or ahead by `migrate`.
//!
//! The JWKS and `/api/pkeys` bodies are serialized once per change, not per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::crypto::jwt::{self, SignatureCache};
use crate::crypto::keys::{Alg, KeyError, PublicJwk, SigningKey};
use crate::crypto::seal::Row;
use crate::db::keys::{self as key_db, KeyRow};
use crate::db::{Db, DbError};
use crate::services::at_rest::Kek;

/// Rotation settings, from `tokens` and `cluster`.
#[derive(Debug, Clone)]
pub struct RingSettings {
    /// The configured algorithm: Stoke's face signs with it.
    pub alg: Alg,
    /// The other algorithms the ring keeps a key for (never `alg`), for OAuth clients.
    pub extra: Vec<Alg>,
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

impl LiveKey {
    /// A key that signs at some time (a verification-only key never does).
    fn signs(&self) -> bool {
        self.key.can_sign() && self.sign_from < self.expires_at
    }

    /// Whether it signs at `now` (never a verification-only key, whatever its stored window says).
    fn can_sign(&self, now: i64) -> bool {
        self.key.can_sign() && self.sign_from <= now && self.expires_at > now
    }
}

/// An immutable snapshot of the ring; a change builds a new one.
#[derive(Debug, Default)]
pub struct RingState {
    /// Oldest rotation step first.
    pub keys: Vec<Arc<LiveKey>>,
    /// [`RingSettings::extra`]: keys of any other algorithm are Stoke's.
    extra: Vec<Alg>,
    /// `/api/pkeys` body (padded base64url members, Stoke's form).
    pub pkeys_body: Bytes,
    /// `/.well-known/jwks.json` body (RFC 7517).
    pub jwks_body: Bytes,
    /// When clients should fetch the keys again: between the next key's publication and its first use.
    pub refetch_at: i64,
    /// Signatures of tokens already verified by these keys (shared by every snapshot of one ring).
    pub signatures: Arc<SignatureCache>,
}

impl RingState {
    /// Stoke's face's key at `now`: the most recent of its chain whose signing window has begun.
    pub fn signer(&self, now: i64) -> Option<&Arc<LiveKey>> {
        self.newest_signer(now, |k| self.stoke(k))
    }

    /// The key for tokens in `alg` (an OAuth client's `signing_alg`): its chain's current key; Stoke's
    /// signer for the configured algorithm, for none, or for an algorithm no longer configured.
    pub fn signer_for(&self, alg: Option<Alg>, now: i64) -> Option<&Arc<LiveKey>> {
        match alg {
            Some(alg) if self.extra.contains(&alg) => self.newest_signer(now, |k| k.key.alg == alg),
            _ => self.signer(now),
        }
    }

    /// The kids that sign at `now`, one per chain.
    pub fn signing_kids(&self, now: i64) -> Vec<&str> {
        let extra = self.extra.iter().filter_map(|a| self.signer_for(Some(*a), now));
        self.signer(now)
            .into_iter()
            .chain(extra)
            .map(|k| k.key.kid.as_str())
            .collect()
    }

    fn newest_signer(&self, now: i64, member: impl Fn(&LiveKey) -> bool) -> Option<&Arc<LiveKey>> {
        self.keys
            .iter()
            .filter(|k| member(k) && k.can_sign(now))
            .max_by_key(|k| (k.sign_from, k.step))
    }

    /// Whether a key belongs to Stoke's chain (published in `/api/pkeys`).
    fn stoke(&self, key: &LiveKey) -> bool {
        Chain::stoke_holds(key, &self.extra)
    }

    pub fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.keys.iter().find(|k| k.key.kid == kid).map(|k| k.key.clone())
    }
}

/// One chain of the ring: Stoke's (the configured algorithm, and any no longer configured) or an extra one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chain {
    Stoke(Alg),
    Extra(Alg),
}

impl Chain {
    fn alg(self) -> Alg {
        match self {
            Chain::Stoke(a) | Chain::Extra(a) => a,
        }
    }

    fn holds(self, key: &LiveKey, extra: &[Alg]) -> bool {
        match self {
            Chain::Stoke(_) => Self::stoke_holds(key, extra),
            Chain::Extra(a) => key.key.alg == a && key.signs(),
        }
    }

    /// Stoke's chain: keys of the configured algorithm or of one no longer configured, and keys imported from
    /// Stoke (verification-only, whatever their algorithm: Stoke's clients verify its last tokens with them).
    fn stoke_holds(key: &LiveKey, extra: &[Alg]) -> bool {
        !extra.contains(&key.key.alg) || !key.signs()
    }

    /// The chain's newest key that ever signs (verification-only keys never need a successor).
    fn newest<'k>(self, keys: &'k [Arc<LiveKey>], extra: &[Alg]) -> Option<&'k Arc<LiveKey>> {
        keys.iter()
            .filter(|k| k.signs() && self.holds(k, extra))
            .max_by_key(|k| k.step)
    }
}

pub struct KeyRing {
    /// Keys this process created, for `/metrics`.
    pub rotations: std::sync::atomic::AtomicU64,
    settings: RingSettings,
    db: Db,
    state: RwLock<Arc<RingState>>,
    signatures: Arc<SignatureCache>,
}

impl KeyRing {
    /// Loads the ring (creating the first key of Stoke's chain if there is none) so that a signer exists from the
    /// start; the other chains follow at the first [`refresh`](Self::refresh).
    pub fn load(settings: RingSettings, db: Db, now: i64) -> Result<KeyRing, RingError> {
        let ring = KeyRing {
            rotations: std::sync::atomic::AtomicU64::new(0),
            settings,
            db,
            state: RwLock::new(Arc::new(RingState::default())),
            signatures: Arc::new(SignatureCache::default()),
        };
        ring.refresh_chains(now, false)?;
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
        self.refresh_chains(now, true)
    }

    /// [`refresh`](Self::refresh) of Stoke's chain only, and of the others when `all`.
    fn refresh_chains(&self, now: i64, all: bool) -> Result<(), RingError> {
        let previous = self.current();
        let mut keys = if self.settings.persist {
            self.load_rows(&previous, now)?
        } else {
            live(&previous, now)
        };
        let due: Vec<Successor> = self
            .chains()
            .into_iter()
            .filter(|c| all || matches!(c, Chain::Stoke(_)))
            .filter_map(|c| self.successor_due(c, &keys, now))
            .collect();
        let mut failure = None;
        if !due.is_empty() {
            let mut step = self.next_step(&keys)?;
            for successor in due {
                match self.create(successor, step, now) {
                    Ok(key) => {
                        tracing::info!(kid = %key.key.kid, alg = %key.key.alg, sign_from = %crate::api_types::rfc3339(key.sign_from), "signing key created");
                        keys.push(Arc::new(key));
                        step += 1;
                    }
                    Err(RingError::Db(e)) if e.is_unique_violation() => {
                        // Another replica made this step's key first: use theirs (the next round makes the rest).
                        keys = self.load_rows(&previous, now)?;
                        break;
                    }
                    Err(e) => {
                        // Keep the keys made so far (a memory-only ring would lose them); report the failure.
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        if self.settings.persist && failure.is_none() {
            // Any replica may clean up; deleting twice is harmless.
            self.db
                .write_blocking(move |c| key_db::delete_expired(c, now).map(drop))?;
        }
        keys.sort_by_key(|k| k.step);
        self.replace(self.build_state(keys, now));
        failure.map_or(Ok(()), Err)
    }

    /// Makes a successor in every chain now, signing after one token lifetime (admin "rotate now"). Returns
    /// the kid of Stoke's chain's new key.
    pub fn rotate_now(&self, now: i64) -> Result<String, RingError> {
        let state = self.current();
        let t = self.settings.token_duration;
        let mut keys: Vec<Arc<LiveKey>> = state.keys.clone();
        let first_step = self.next_step(&keys)?;
        let mut kid = String::new();
        for (step, chain) in (first_step..).zip(self.chains()) {
            let sign_from = match chain.newest(&state.keys, &self.settings.extra) {
                Some(n) => (now + t).min(n.expires_at - t).max(now),
                None => now,
            };
            let key = self.create(
                Successor {
                    alg: chain.alg(),
                    sign_from,
                },
                step,
                now,
            )?;
            if matches!(chain, Chain::Stoke(_)) {
                kid = key.key.kid.clone();
            }
            keys.push(Arc::new(key));
        }
        self.replace(self.build_state(keys, now));
        Ok(kid)
    }

    /// Stoke's chain first, then one per extra algorithm.
    fn chains(&self) -> Vec<Chain> {
        let extra = self.settings.extra.iter().map(|a| Chain::Extra(*a));
        std::iter::once(Chain::Stoke(self.settings.alg)).chain(extra).collect()
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

    /// When a chain needs a new key: it has none (the first of its algorithm signs at once), its newest nears
    /// its expiry, or (Stoke's chain) the configured algorithm changed.
    fn successor_due(&self, chain: Chain, keys: &[Arc<LiveKey>], now: i64) -> Option<Successor> {
        let t = self.settings.token_duration;
        let alg = chain.alg();
        let Some(newest) = chain.newest(keys, &self.settings.extra) else {
            return Some(Successor { alg, sign_from: now });
        };
        if newest.expires_at - 2 * t <= now {
            return Some(Successor {
                alg,
                sign_from: (newest.expires_at - t).max(now),
            });
        }
        if newest.key.alg != alg {
            return Some(Successor {
                alg,
                sign_from: (now + t).min(newest.expires_at - t).max(now),
            });
        }
        None
    }

    fn create(&self, s: Successor, step: i64, now: i64) -> Result<LiveKey, RingError> {
        let (key, der) = SigningKey::generate(s.alg, self.settings.rsa_bits)?;
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
            step,
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
            let key = if row.private_key.is_empty() {
                // A verification-only key (Stoke's, from `import-stoke`): published and trusted until it expires;
                // `sign_from = expires_at`, so it never signs.
                SigningKey::verify_only(alg, &row.public_jwk)?
            } else {
                let (der, rewrite) = self
                    .settings
                    .kek
                    .open(Row::SigningKey(&row.kid), &row.private_key)
                    .map_err(stored)?;
                if let Some(new) = rewrite {
                    self.rewrite_stored(&row, &new);
                }
                SigningKey::from_pkcs8(alg, &der)?
            };
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
        let extra = self.settings.extra.clone();
        let refetch_at = self
            .chains()
            .into_iter()
            .filter_map(|c| c.newest(&keys, &extra))
            .map(|n| (n.expires_at - t - t / 2).max(now + 1))
            .min()
            .unwrap_or(now + 1);
        let exp = time::OffsetDateTime::from_unix_timestamp(refetch_at)
            .ok()
            .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        let stoke = keys.iter().filter(|k| Chain::stoke_holds(k, &extra));
        let pkeys = json!({ "exp": exp, "keys": stoke.map(|k| jwk(&k.key, true)).collect::<Vec<_>>() });
        let jwks = json!({ "keys": keys.iter().map(|k| jwk(&k.key, false)).collect::<Vec<_>>() });
        RingState {
            keys,
            extra,
            pkeys_body: Bytes::from(pkeys.to_string()),
            jwks_body: Bytes::from(jwks.to_string()),
            refetch_at,
            signatures: self.signatures.clone(),
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
        for chain in self.chains() {
            match chain.newest(&state.keys, &self.settings.extra) {
                Some(n) => next = next.min(n.expires_at - 2 * t),
                None => next = now,
            }
        }
        next.max(now)
    }

    /// Whether every chain has a key (the background task fills the others right after start-up).
    pub fn is_whole(&self) -> bool {
        let state = self.current();
        self.chains()
            .into_iter()
            .all(|c| c.newest(&state.keys, &self.settings.extra).is_some())
    }

    /// When Stoke's chain next gets a successor (for the console).
    pub fn next_rotation(&self, now: i64) -> i64 {
        let state = self.current();
        Chain::Stoke(self.settings.alg)
            .newest(&state.keys, &self.settings.extra)
            .map_or(now, |k| k.expires_at - 2 * self.settings.token_duration)
            .max(now)
    }
}

struct Successor {
    alg: Alg,
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
