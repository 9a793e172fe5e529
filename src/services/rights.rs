//! The rights an admin request is authorized with: the letters of the caller's token that its user still
//! holds, through groups that admit the session's kind of credential, in a session that is not revoked, read
//! from the database (cached for `security.admin_rights_cache`, a few seconds).
//!
//! An access token is a bearer credential valid until its `exp`, and other resource servers verify it offline;
//! the admin API is Tessera's own resource server and does better: a deleted or demoted admin, or one whose
//! sessions were revoked (by an admin, a password change or reset, a logout), loses admin access within that
//! cache time on every replica, since every replica reads the same database. A write through this replica
//! empties its cache at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::authz::{Letters, STK};
use crate::db::{Db, DbError, catalog, refresh};
use crate::services::admin::Caller;
use crate::services::tokens::SESSION;

/// Sessions whose rights a replica remembers at most; past it the cache starts over.
const CACHE_MAX: usize = 10_000;

/// What the database said about a session: its user's letters, or `None` when it is revoked or gone.
type Entry = (Instant, Option<Letters>);

pub struct Rights {
    ttl: Duration,
    cache: Mutex<HashMap<String, Entry>>,
}

impl Rights {
    pub fn new(ttl: Duration) -> Self {
        Rights {
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The caller a verified token stands for, with the letters it holds now; `None` when its session is
    /// revoked or gone, its user deleted, or it names no session (a token that predates sessions in tokens).
    /// A token without letters needs no database read: it has no admin rights to lose.
    pub async fn caller(
        &self,
        db: &Db,
        claims: &Map<String, Value>,
        username_key: &str,
    ) -> Result<Option<Caller>, DbError> {
        let claim = |k: &str| claims.get(k).and_then(Value::as_str);
        let token_letters = Letters::granted_by(claim(STK).unwrap_or(""));
        let actor = (!username_key.is_empty())
            .then(|| claim(username_key))
            .flatten()
            .or_else(|| claim("sub"))
            .unwrap_or_default()
            .to_string();
        if token_letters.is_empty() {
            return Ok(Some(Caller {
                letters: token_letters,
                actor,
            }));
        }
        let Some(session) = claim(SESSION).map(str::to_string) else {
            return Ok(None);
        };
        let held = match self.cached(&session) {
            Some(held) => held,
            None => {
                let lookup = session.clone();
                let held = db
                    .run(move |c| -> Result<Option<Letters>, DbError> {
                        match refresh::live_session_user(c, &lookup)? {
                            Some((user, kind, factor)) => Ok(Some(catalog::letters_of_session(
                                c,
                                user,
                                refresh::session_login(&kind, factor.as_deref()),
                            )?)),
                            None => Ok(None),
                        }
                    })
                    .await?;
                self.remember(session, held);
                held
            }
        };
        Ok(held.map(|held| Caller {
            letters: token_letters.intersection(held),
            actor,
        }))
    }

    fn cached(&self, session: &str) -> Option<Option<Letters>> {
        if self.ttl.is_zero() {
            return None;
        }
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(session)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, held)| *held)
    }

    fn remember(&self, session: String, held: Option<Letters>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(session, (crate::clock::monotonic(), held));
    }

    /// Forgets every cached session, after a change made through this replica.
    pub fn forget_all(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
