//! Client authentication at the token, revocation and introspection endpoints: `client_secret_basic`,
//! `client_secret_post` and `none` (public clients), with failures limited per client id and per address.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Client, secret_digest};
use crate::config::OAuthConfig;
use crate::crypto::constant_time_eq;
use crate::db::clients;
use crate::services::throttle::{ClientAddr, Limited};
use crate::services::{AppState, ServiceError};

/// The longest client id or secret looked at; longer ones are refused unread.
const MAX_CREDENTIAL: usize = 256;

/// What a request says about its client: HTTP Basic credentials and the form's `client_id`/`client_secret`.
// No `Debug`: it holds a secret.
#[derive(Clone, Default)]
pub struct ClientAuth {
    pub basic: Option<(String, String)>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

impl ClientAuth {
    /// Whether the caller used HTTP Basic (an `invalid_client` answer then carries `WWW-Authenticate`).
    pub fn used_basic(&self) -> bool {
        self.basic.is_some()
    }

    /// The client id and secret the request presents. Both methods at once (oauthlib's clients do that) must
    /// name the same client and secret: `invalid_request` when they differ.
    fn presented(&self) -> Result<(String, Option<String>), ServiceError> {
        let body_secret = self.client_secret.clone().filter(|s| !s.is_empty());
        match &self.basic {
            Some((id, secret)) => {
                if self.client_id.as_ref().is_some_and(|b| b != id) {
                    return Err(ServiceError::invalid(
                        "invalid_request",
                        "client_id differs from the client of the Authorization header",
                    ));
                }
                let secret = Some(secret.clone()).filter(|s| !s.is_empty());
                if body_secret.is_some() && body_secret != secret {
                    return Err(ServiceError::invalid(
                        "invalid_request",
                        "client_secret differs from the secret of the Authorization header",
                    ));
                }
                Ok((id.clone(), secret))
            }
            None => match &self.client_id {
                Some(id) => Ok((id.clone(), body_secret)),
                None => Err(invalid_client("client authentication is required")),
            },
        }
    }
}

/// `invalid_client`; why is only logged (at debug), so the answer does not tell which part was wrong.
fn invalid_client(why: &str) -> ServiceError {
    tracing::debug!(reason = why, "client authentication failed");
    ServiceError::Unauthenticated
}

/// Authenticates the client of a request: a confidential client by its current secret (or the previous one
/// within the rotation overlap), a public client by its id alone and never with a secret. Failures count
/// against the client id and the address; once either has too many, it is refused before any lookup.
pub async fn authenticate(
    state: &AppState,
    auth: &ClientAuth,
    addr: Option<ClientAddr>,
) -> Result<Client, ServiceError> {
    let (id, secret) = auth.presented()?;
    let now = state.clock.now();
    let failures = &state.client_failures;
    // Early refusal of a caller that used up its failures, so a flood costs no lookups.
    failures.check(&id, addr, now)?;
    let row = match id.len() > MAX_CREDENTIAL || secret.as_ref().is_some_and(|s| s.len() > MAX_CREDENTIAL) {
        true => None,
        false => {
            let wanted = id.clone();
            state.db.read_now(move |c| clients::find(c, &wanted)).await?
        }
    };
    // The limit is checked again, the secret compared and a failure counted in one step under one lock, so
    // a parallel burst of wrong secrets gets no more tries than the limit, and right ones are never counted
    // (however many of a client's workers are in flight).
    failures.decide(&id, addr, now, || verdict(row.as_ref(), secret.as_deref(), now))?;
    match row {
        Some(row) => Ok(Client::from_row(&row)),
        None => Err(invalid_client("unknown client")),
    }
}

/// Whether `secret` authenticates the client `row` at `now`; why not (for the debug log) otherwise.
fn verdict(row: Option<&clients::ClientRow>, secret: Option<&str>, now: i64) -> Result<(), &'static str> {
    match row {
        None => Err("unknown client or wrong secret"),
        Some(r) if r.kind == super::PUBLIC => match secret {
            None => Ok(()),
            Some(_) => Err("a public client has no secret"),
        },
        Some(r) => match secret {
            None => Err("this client must authenticate with its secret"),
            Some(s) => {
                let digest = secret_digest(s);
                let current = r.secret_digest.as_deref().is_some_and(|d| constant_time_eq(d, &digest));
                let previous = r.previous_until.is_some_and(|until| now < until)
                    && r.previous_digest
                        .as_deref()
                        .is_some_and(|d| constant_time_eq(d, &digest));
                if current || previous {
                    Ok(())
                } else {
                    Err("unknown client or wrong secret")
                }
            }
        },
    }
}

/// Failed client authentications per client id and per address on this replica, each in a fixed window.
///
/// Client secrets are 256 random bits, so guessing one is hopeless whatever the limit; the limit keeps a
/// misconfigured or hostile caller from flooding the endpoint and the audit of failures. It is per replica,
/// which keeps a successful authentication free of any database write.
pub struct ClientFailures {
    max: u32,
    window: i64,
    counts: Mutex<HashMap<String, (i64, u32)>>,
}

/// Entries kept before expired ones are dropped.
const MAX_ENTRIES: usize = 10_000;

impl ClientFailures {
    pub fn new(config: &OAuthConfig) -> Self {
        ClientFailures {
            max: config.max_client_failures,
            window: i64::try_from(config.failure_window.as_secs())
                .unwrap_or(i64::MAX)
                .max(1),
            counts: Mutex::new(HashMap::new()),
        }
    }

    fn keys(id: &str, addr: Option<ClientAddr>) -> impl Iterator<Item = String> {
        let id: String = id.chars().take(MAX_CREDENTIAL).collect();
        std::iter::once(format!("id:{id}")).chain(addr.map(|a| format!("ip:{}", a.ip())))
    }

    /// 429 while the client id or the address has used up its failures in the current window.
    pub fn check(&self, id: &str, addr: Option<ClientAddr>, now: i64) -> Result<(), ServiceError> {
        if self.max == 0 {
            return Ok(());
        }
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        self.check_locked(&counts, id, addr, now)
    }

    /// Under one lock: 429 while the limit is used up, else `verdict()` (a constant-time digest comparison,
    /// microseconds), counting a failure against the id and the address. Parallel attempts are decided one
    /// after another, each seeing the failures of those before it.
    pub fn decide(
        &self,
        id: &str,
        addr: Option<ClientAddr>,
        now: i64,
        verdict: impl FnOnce() -> Result<(), &'static str>,
    ) -> Result<(), ServiceError> {
        if self.max == 0 {
            return verdict().map_err(invalid_client);
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        self.check_locked(&counts, id, addr, now)?;
        verdict().map_err(|why| {
            self.record(&mut counts, id, addr, now);
            invalid_client(why)
        })
    }

    fn check_locked(
        &self,
        counts: &HashMap<String, (i64, u32)>,
        id: &str,
        addr: Option<ClientAddr>,
        now: i64,
    ) -> Result<(), ServiceError> {
        for key in Self::keys(id, addr) {
            if let Some((start, n)) = counts.get(&key)
                && now < start + self.window
                && *n >= self.max
            {
                let retry_after = u64::try_from(start + self.window - now).unwrap_or(1).max(1);
                return Err(ServiceError::Limited(Limited { retry_after }));
            }
        }
        Ok(())
    }

    fn record(&self, counts: &mut HashMap<String, (i64, u32)>, id: &str, addr: Option<ClientAddr>, now: i64) {
        if counts.len() >= MAX_ENTRIES {
            let window = self.window;
            counts.retain(|_, (start, _)| now < *start + window);
        }
        for key in Self::keys(id, addr) {
            // Full of live entries (a flood of made-up ids): the counts held go on, no new ones are started,
            // so the map stays bounded.
            if counts.len() >= MAX_ENTRIES && !counts.contains_key(&key) {
                continue;
            }
            let entry = counts.entry(key).or_insert((now, 0));
            if now >= entry.0 + self.window {
                *entry = (now, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn auth(basic: Option<(&str, &str)>, id: Option<&str>, secret: Option<&str>) -> ClientAuth {
        ClientAuth {
            basic: basic.map(|(a, b)| (a.into(), b.into())),
            client_id: id.map(str::to_string),
            client_secret: secret.map(str::to_string),
        }
    }

    #[test]
    fn basic_and_body_must_agree() {
        assert_eq!(auth(Some(("a", "s")), Some("a"), Some("s")).presented().unwrap().0, "a");
        assert_eq!(
            auth(Some(("a", "s")), None, None).presented().unwrap().1.as_deref(),
            Some("s")
        );
        assert_eq!(
            auth(None, Some("a"), Some("s")).presented().unwrap().1.as_deref(),
            Some("s")
        );
        assert_eq!(auth(None, Some("a"), None).presented().unwrap().1, None);
        for differing in [
            auth(Some(("a", "s")), Some("b"), None),
            auth(Some(("a", "s")), Some("a"), Some("t")),
            auth(Some(("a", "")), Some("a"), Some("t")),
        ] {
            assert!(matches!(
                differing.presented(),
                Err(ServiceError::Invalid {
                    code: "invalid_request",
                    ..
                })
            ));
        }
        assert!(matches!(
            auth(None, None, Some("s")).presented(),
            Err(ServiceError::Unauthenticated)
        ));
    }

    #[test]
    fn failures_lock_the_id_and_the_address_for_the_window() {
        let config = OAuthConfig {
            max_client_failures: 2,
            failure_window: crate::config::GoDuration::from_secs(60),
            ..OAuthConfig::default()
        };
        let f = ClientFailures::new(&config);
        let addr = Some(ClientAddr::new("192.0.2.1".parse().unwrap()));
        let other = Some(ClientAddr::new("192.0.2.2".parse().unwrap()));
        let wrong = || Err("wrong secret");
        let right = || Ok(());
        let unauthenticated = |r| matches!(r, Err(ServiceError::Unauthenticated));
        let limited = |r| matches!(r, Err(ServiceError::Limited(_)));
        assert!(unauthenticated(f.decide("c1", addr, 100, wrong)));
        // Successes are never counted, however many.
        for _ in 0..10 {
            assert!(f.decide("c2", addr, 101, right).is_ok());
        }
        assert!(unauthenticated(f.decide("c2", addr, 101, wrong)));
        // The address has two failures (over two ids): even a right secret from it waits; the id c1 has one.
        assert!(limited(f.decide("c3", addr, 102, right)));
        assert!(limited(f.check("c3", addr, 102)));
        assert!(unauthenticated(f.decide("c1", other, 102, wrong)));
        assert!(limited(f.decide("c1", None, 104, right)));
        // The window ends.
        assert!(f.decide("c1", addr, 161, right).is_ok());
    }

    #[test]
    fn a_flood_of_made_up_ids_stays_bounded() {
        let f = ClientFailures::new(&OAuthConfig::default());
        for i in 0..MAX_ENTRIES + 500 {
            let _ = f.decide(&format!("made-up-{i}"), None, 100, || Err("unknown client"));
        }
        let len = f.counts.lock().unwrap().len();
        assert!(len <= MAX_ENTRIES, "{len} entries");
        // An id counted before the map filled keeps counting.
        let limited = (0..20).any(|_| {
            matches!(
                f.decide("made-up-0", None, 101, || Err("unknown client")),
                Err(ServiceError::Limited(_))
            )
        });
        assert!(limited);
    }
}
