//! Sign-in through an upstream OpenID provider, on Stoke's wire contract (`GET /oidc/<name>?next=…&xfer=…`, a
//! page that hands `id_token` and `access_code` to the front-end, `POST /api/login` with `provider: <name>`),
//! without Stoke's holes:
//!
//! 1. [`start`]: a random state (also set as an HttpOnly cookie, which binds the sign-in to this browser), nonce
//!    and PKCE verifier are stored for 10 minutes, and the browser is sent to the provider. `next` is checked
//!    here, by [`allowed_next`]: no open redirect.
//! 2. [`finish`]: the provider returns with a code. The state must be the cookie's and live; it is taken once.
//!    The code is redeemed with the verifier, the id_token verified, the claims mapped, the account found,
//!    joined or created and its linked groups synced; then a fresh exchange pair (256 random bits, stored as a
//!    digest, single-use, 2 minutes) is what the page hands over. The provider's tokens never reach the browser.
//! 3. [`redeem`] (from `/api/login`): the pair becomes the account, once.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::config::{ClaimsSource, Config};
use crate::db::users::UserRow;
use crate::db::{audit, oidc as oidc_db, users};
use crate::services::{AppState, ServiceError};
use crate::user_source::OidcProvider;
use crate::user_source::oidc::OidcError;
use crate::user_source::oidc::claims::SignIn;
use crate::user_source::oidc::store::{self, Exchange, Policy, Stored};

/// The code of a return whose state is not the browser's.
pub const STATE_MISMATCH: &str = "oidc_state_mismatch";
/// How long a sign-in may stay at the provider.
const FLOW_SECONDS: i64 = 600;
/// How long the front-end has to redeem the exchange pair.
const EXCHANGE_SECONDS: i64 = 120;
/// The longest `next` kept.
const MAX_NEXT: usize = 2048;

/// How the callback page hands the pair to the front-end (Stoke's `xfer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Xfer {
    /// Into `sessionStorage`, then to `next`.
    Local,
    /// To the window that opened this one (`postMessage`, only to the origin of `next` or this server's).
    Window,
}

impl Xfer {
    pub fn parse(text: Option<&str>) -> Option<Xfer> {
        match text.unwrap_or("local") {
            "" | "local" => Some(Xfer::Local),
            "window" => Some(Xfer::Window),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Xfer::Local => "local",
            Xfer::Window => "window",
        }
    }
}

/// Why a step of the sign-in failed: the status of the error page, a stable code and what the user reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Failure {
    /// 404: no OpenID provider has this name.
    pub fn unknown_provider(name: &str) -> Failure {
        Failure {
            status: 404,
            code: "unknown_provider",
            message: format!("there is no OpenID provider named {name:?}"),
        }
    }

    pub fn bad(code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            status: 400,
            code,
            message: message.into(),
        }
    }
}

impl From<OidcError> for Failure {
    fn from(e: OidcError) -> Failure {
        let (status, code) = match &e {
            OidcError::Unreachable(_) => (502, "oidc_provider_unavailable"),
            OidcError::Garbage(_) => (502, "oidc_provider_error"),
            OidcError::Refused(_) => (400, "oidc_refused"),
            OidcError::Check(_) => (400, "oidc_check_failed"),
        };
        Failure {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Failure {
        tracing::error!(error = %e, "an OpenID sign-in could not be stored");
        Failure {
            status: 503,
            code: "unavailable",
            message: "the sign-in could not be completed now; try again".into(),
        }
    }
}

/// A sign-in sent to the provider: where the browser goes, and the state its cookie holds.
pub struct Started {
    pub location: String,
    pub state: String,
}

/// What the callback page hands over.
pub struct Transfer {
    pub xfer: Xfer,
    pub next: String,
    /// The origin `postMessage` may post to; empty: this server's own.
    pub origin: String,
    /// Stoke's field names: the pair `/api/login` takes as `username` and `password`.
    pub id_token: String,
    pub access_code: String,
}

/// What the provider sent back to `/oidc/<name>`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
    /// RFC 9207.
    pub iss: Option<String>,
}

fn provider(state: &AppState, name: &str) -> Result<std::sync::Arc<OidcProvider>, Failure> {
    state
        .providers
        .oidc(name)
        .ok_or_else(|| Failure::unknown_provider(name))
}

fn digest(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Starts a sign-in at provider `name`.
pub async fn start(state: &AppState, name: &str, next: Option<&str>, xfer: Option<&str>) -> Result<Started, Failure> {
    let p = provider(state, name)?;
    let xfer = Xfer::parse(xfer).ok_or_else(|| Failure::bad("invalid_xfer", "xfer must be local or window"))?;
    let next = next.unwrap_or_default();
    if allowed_next(&state.config, next).is_none() {
        return Err(Failure::bad(
            "invalid_next",
            "next must be a path on this server or a URL of an origin in server.allowed_hosts",
        ));
    }
    let md = p.metadata().await.map_err(|e| logged(name, e))?;
    let (flow_state, nonce, verifier) = (random_token(), random_token(), random_token());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let row = oidc_db::FlowRow {
        digest: digest(&flow_state),
        provider: name.to_string(),
        nonce: nonce.clone(),
        verifier,
        next_url: next.to_string(),
        xfer: xfer.as_str().to_string(),
        expires_at: state.clock.now() + FLOW_SECONDS,
    };
    state
        .db
        .write(move |c| oidc_db::insert_flow(c, &row))
        .await
        .map_err(|e| Failure::from(ServiceError::from(e)))?;
    Ok(Started {
        location: p.authorization_url(&md, &flow_state, &nonce, &challenge),
        state: flow_state,
    })
}

/// Finishes a sign-in the provider returned: every check, then the account and the exchange pair.
pub async fn finish(state: &AppState, name: &str, back: Callback, cookie: Option<&str>) -> Result<Transfer, Failure> {
    let p = provider(state, name)?;
    let presented = back.state.as_deref().unwrap_or_default();
    // The state must be the one this browser was given (login CSRF), and it works once.
    if presented.is_empty()
        || !cookie.is_some_and(|c| crate::crypto::constant_time_eq(c.as_bytes(), presented.as_bytes()))
    {
        return Err(Failure::bad(
            STATE_MISMATCH,
            "this sign-in was not started in this browser (its state is missing or not this browser's); start again",
        ));
    }
    let (now, key, provider_name) = (state.clock.now(), digest(presented), name.to_string());
    let flow = state
        .db
        .write(move |c| oidc_db::take_flow(c, &key, &provider_name, now))
        .await
        .map_err(|e| Failure::from(ServiceError::from(e)))?
        .ok_or_else(|| {
            Failure::bad(
                "oidc_state_unknown",
                "this sign-in expired or was already used; start again",
            )
        })?;
    if let Some(error) = back.error.as_deref() {
        let detail = back.error_description.as_deref().unwrap_or_default();
        tracing::info!(provider = name, error, detail, "the provider refused a sign-in");
        return Err(Failure::bad(
            "oidc_refused",
            format!(
                "the provider did not sign you in ({error}{}{detail})",
                if detail.is_empty() { "" } else { ": " }
            ),
        ));
    }
    let md = p.metadata().await.map_err(|e| logged(name, e))?;
    // RFC 9207: an answer that names another issuer is a mix-up attack.
    if back.iss.as_deref().is_some_and(|iss| iss != md.issuer) {
        return Err(logged(
            name,
            OidcError::Check("the answer names another issuer (iss)".into()),
        ));
    }
    let code = back
        .code
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Failure::bad("oidc_no_code", "the provider sent no authorization code"))?;
    let tokens = p
        .redeem_code(&md, code, &flow.verifier)
        .await
        .map_err(|e| logged(name, e))?;
    let id_claims = p
        .verify_id_token(&md, &tokens.id_token, &flow.nonce, state.clock.now())
        .await
        .map_err(|e| logged(name, e))?;
    let source = match p.claims_source() {
        ClaimsSource::IdToken => id_claims.clone(),
        ClaimsSource::Endpoint => {
            let access = tokens.access_token.as_deref().ok_or_else(|| {
                logged(
                    name,
                    OidcError::Garbage("no access_token for the UserInfo endpoint".into()),
                )
            })?;
            let sub = id_claims.get("sub").and_then(|s| s.as_str()).unwrap_or_default();
            let mut merged = id_claims.clone();
            for (k, v) in p.userinfo(&md, access, sub).await.map_err(|e| logged(name, e))? {
                // The identity is the id_token's.
                if k != "iss" && k != "sub" && k != "aud" {
                    merged.insert(k, v);
                }
            }
            merged
        }
    };
    let sign_in = SignIn {
        id_token: id_claims,
        source,
    };
    let s = p.settings();
    let profile = sign_in.profile(&s.first_name_claim, &s.last_name_claim, &s.email_claim);
    let policy = Policy {
        require_group_link: state.config.users.oidc_require_group_link,
        link_by_verified_email: s.link_by_verified_email,
    };
    let (id_token, access_code) = (random_token(), random_token());
    let pair = pair_digest(&id_token, &access_code);
    let now = state.clock.now();
    let job = std::sync::Arc::new((name.to_string(), sign_in, profile, policy, pair));
    let attempt = || {
        let job = job.clone();
        state.db.write(move |c| {
            let (provider, sign_in, profile, policy, pair) = &*job;
            let exchange = Exchange {
                digest: pair,
                expires_at: now + EXCHANGE_SECONDS,
            };
            store::store(c, provider, sign_in, profile, policy, &exchange, now)
        })
    };
    let stored = match attempt().await {
        // Two first sign-ins of one identity at once: the other one created the account; ours now finds it.
        Err(e) if e.is_unique_violation() => attempt().await,
        other => other,
    }
    .map_err(|e| Failure::from(ServiceError::from(e)))?;
    let user = match stored {
        Stored::User(user) => user,
        Stored::Refused(code, message) => {
            tracing::info!(provider = name, code, "an OpenID sign-in was refused");
            audit_refusal(state, name, code).await;
            return Err(Failure::bad(code, message));
        }
    };
    tracing::info!(provider = name, user = %user.username, "an OpenID sign-in was verified");
    let xfer = Xfer::parse(Some(&flow.xfer)).unwrap_or(Xfer::Local);
    let origin = allowed_next(&state.config, &flow.next_url).unwrap_or_default();
    Ok(Transfer {
        xfer,
        next: flow.next_url,
        origin: origin.unwrap_or_default(),
        id_token,
        access_code,
    })
}

/// The digest an exchange pair is stored under.
fn pair_digest(id_token: &str, access_code: &str) -> Vec<u8> {
    digest(&format!("{id_token}.{access_code}"))
}

/// The account of a verified sign-in at `name`, for the exchange pair the callback page handed over; once.
pub async fn redeem(state: &AppState, name: &str, id_token: &str, access_code: &str) -> Result<UserRow, ServiceError> {
    if state.providers.oidc(name).is_none() {
        return Err(ServiceError::invalid(
            "unknown_provider",
            format!("no provider named {name:?}"),
        ));
    }
    let (key, name, now) = (pair_digest(id_token, access_code), name.to_string(), state.clock.now());
    let user = state
        .db
        .write(move |c| -> Result<Option<UserRow>, ServiceError> {
            match oidc_db::take_exchange(c, &key, &name, now)? {
                Some(id) => Ok(users::find(c, id)?),
                None => Ok(None),
            }
        })
        .await?;
    user.ok_or(ServiceError::BadCredentials)
}

async fn audit_refusal(state: &AppState, provider: &str, code: &'static str) {
    let (now, provider) = (state.clock.now(), provider.to_string());
    let result = state
        .db
        .write(move |c| audit::record(c, now, &format!("OIDC:{provider}"), "login.oidc_refused", "", code))
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "an OpenID refusal was not audited");
    }
}

/// Logs a provider failure (never a token: the errors hold none) and turns it into the page's failure.
fn logged(provider: &str, e: OidcError) -> Failure {
    if e.is_upstream() {
        tracing::warn!(provider, error = %e, "an OpenID provider failed a sign-in");
    } else {
        tracing::info!(provider, error = %e, "an OpenID sign-in failed a check");
    }
    Failure::from(e)
}

/// The one rule for where a sign-in may send the browser after (`next`): nowhere (empty), a path on this server
/// (`/…`, never `//…` or with a backslash, which browsers read as another host), or an http(s) URL whose origin
/// `server.allowed_hosts` names (an origin `https://app.example`, or a host `app.example`; `*` does not count
/// here: it would be an open redirect) or `server.public_url`'s. `Some(origin)` for a URL, `Some(None)` for a
/// path or nothing, `None` when refused.
pub fn allowed_next(config: &Config, next: &str) -> Option<Option<String>> {
    if next.is_empty() {
        return Some(None);
    }
    if next.len() > MAX_NEXT || next.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return None;
    }
    if let Some(rest) = next.strip_prefix('/') {
        return (!rest.starts_with('/')).then_some(None);
    }
    let (scheme, rest) = next.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], &authority[i + 1..]),
        _ => (authority.as_str(), ""),
    };
    if host.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let origin = format!("{scheme}://{authority}");
    let public = config.server.public_url.trim_end_matches('/').to_ascii_lowercase();
    let allowed = (!public.is_empty() && public == origin)
        || config.server.allowed_hosts.iter().any(|entry| {
            let entry = entry.trim().trim_end_matches('/').to_ascii_lowercase();
            match entry.contains("://") {
                true => entry == origin,
                false => entry != "*" && (entry == host || entry == authority),
            }
        });
    allowed.then_some(Some(origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(hosts: &[&str], public_url: &str) -> Config {
        let mut c = Config::default();
        c.server.allowed_hosts = hosts.iter().map(|h| h.to_string()).collect();
        c.server.public_url = public_url.into();
        c
    }

    #[test]
    fn next_is_a_path_here_or_an_allowed_origin() {
        let c = config(&["app.example", "https://spa.example:8443", "*"], "https://id.example/");
        for (next, origin) in [
            ("", None),
            ("/admin/", None),
            ("/a?b=c#d", None),
            ("https://app.example/after", Some("https://app.example")),
            ("http://APP.example", Some("http://app.example")),
            ("https://spa.example:8443/x", Some("https://spa.example:8443")),
            ("https://id.example/admin/", Some("https://id.example")),
        ] {
            assert_eq!(allowed_next(&c, next), Some(origin.map(str::to_string)), "{next}");
        }
        for next in [
            "//evil.example/",
            "/\\evil.example/",
            "\\\\evil.example",
            "https://evil.example/",
            "https://app.example@evil.example/",
            "https://app.example.evil.example/",
            "https://spa.example/x",
            "javascript:alert(1)",
            "data:text/html,x",
            "https:/app.example",
            "/ok\nLocation: x",
            " /admin/",
            "/\t/evil.example",
            "ftp://app.example/",
        ] {
            assert_eq!(allowed_next(&c, next), None, "{next}");
        }
    }

    /// Whatever text is offered, an accepted `next` is a same-server path or names an allowed origin.
    #[test]
    fn no_accepted_next_leaves_the_allowed_origins() {
        let c = config(&["app.example"], "");
        let alphabet: Vec<char> = "/\\:@.?#%aA-_ \t\nhtpsx[]1".chars().collect();
        let prefixes = [
            "",
            "/",
            "//",
            "https://",
            "http://app.example",
            "https://app.example",
            "/\\",
        ];
        for i in 0..20_000u32 {
            let len = (rand::random::<u8>() % 24) as usize;
            let mut next = prefixes[i as usize % prefixes.len()].to_string();
            next.extend((0..len).map(|_| alphabet[rand::random::<u8>() as usize % alphabet.len()]));
            match allowed_next(&c, &next) {
                None => {}
                Some(None) => assert!(
                    next.is_empty()
                        || (next.starts_with('/')
                            && !next.starts_with("//")
                            && !next.contains('\\')
                            && !next.chars().any(char::is_whitespace)),
                    "{next:?}"
                ),
                Some(Some(origin)) => {
                    let port = origin
                        .strip_prefix("https://app.example")
                        .or_else(|| origin.strip_prefix("http://app.example"))
                        .unwrap_or("?");
                    let port = port.strip_prefix(':').unwrap_or(port);
                    assert!(port.bytes().all(|b| b.is_ascii_digit()), "{next:?} -> {origin}");
                    let rest = &next[origin.len()..];
                    assert!(rest.is_empty() || rest.starts_with(['/', '?', '#']), "{next:?}");
                }
            }
        }
    }
}
