//! One upstream OpenID provider (users.providers of `type: oidc`): what Tessera asks of it and how it checks
//! the answers. The authorization code flow with PKCE (S256) only; the id_token's signature is verified against
//! the provider's published keys, and its `iss`, `aud`, `azp`, `exp`, `iat` and `nonce` are checked (OpenID
//! Connect Core 3.1.3.7). Stoke parsed id_tokens without verifying them.
//!
//! Discovery and the key set are fetched when first needed, not at start-up (a provider that is down must not
//! stop the server), and kept: the discovery document for an hour, the keys until a token names a key they do
//! not hold (fetched again then, at most once a minute). Every request has a timeout and a size limit, follows
//! no redirect and goes only to https URLs (or plain http on a loopback address).

pub mod claims;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};

use crate::config::{ClaimsSource, Config, OidcSettings, ProviderConfig, provider_url_ok};
use crate::crypto::jwt::{self, Rules};
use crate::crypto::keys::{Alg, SigningKey};

pub use claims::Profile;

/// The largest answer read from a provider.
const MAX_BODY: usize = 1024 * 1024;
/// How long a discovery document is used before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// The key set is fetched again for an unknown `kid` at most this often.
const JWKS_REFETCH: Duration = Duration::from_secs(60);
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY: i64 = 60;
/// An id_token issued longer ago than this is stale (the whole sign-in has 10 minutes).
const MAX_ID_TOKEN_AGE: i64 = 600;

/// Why a step with the provider failed. The message is for the log and the error page: it never holds a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// No answer in time, a connection or TLS failure: the provider is unavailable (502).
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    /// An answer Tessera cannot use: a server error, not JSON, a missing member (502).
    #[error("the provider's answer cannot be used: {0}")]
    Garbage(String),
    /// The provider refused the request (an OAuth error; 400).
    #[error("the provider refused the sign-in: {0}")]
    Refused(String),
    /// The id_token or UserInfo answer failed a check (400).
    #[error("the provider's answer failed a check: {0}")]
    Check(String),
}

impl OidcError {
    /// Whether the provider, not the request, is at fault (502 rather than 400).
    pub fn is_upstream(&self) -> bool {
        matches!(self, OidcError::Unreachable(_) | OidcError::Garbage(_))
    }
}

/// What the provider's discovery document (or the provider's settings without one) says.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    /// The id_token algorithms accepted: the provider's, among those Tessera verifies (RS256 when it lists none).
    pub algorithms: Vec<Alg>,
    /// Client authentication at the token endpoint: HTTP Basic (the default), else in the form.
    pub basic_auth: bool,
}

/// The tokens of a redeemed authorization code.
pub struct Tokens {
    pub id_token: String,
    pub access_token: Option<String>,
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Map<String, Value>>,
    fetched: Option<Instant>,
}

pub struct OidcProvider {
    name: String,
    settings: OidcSettings,
    client_secret: Option<String>,
    redirect_uri: String,
    source: ClaimsSource,
    http: reqwest::Client,
    metadata: tokio::sync::Mutex<Option<(Arc<Metadata>, Instant)>>,
    keys: tokio::sync::Mutex<KeySet>,
}

impl OidcProvider {
    /// Builds the provider from checked settings (`client_secret_file` was read into `client_secret` with the
    /// configuration); nothing is fetched yet.
    pub fn new(config: &Config, p: &ProviderConfig) -> Result<Self, String> {
        let o = &p.oidc;
        let client_secret = (!o.client_secret.is_empty()).then(|| o.client_secret.expose().to_string());
        let source = ClaimsSource::parse(&o.claims_source).ok_or("claims_source is not token or endpoint")?;
        let timeout = o.request_timeout.as_duration();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(OidcProvider {
            name: p.name.clone(),
            settings: o.clone(),
            client_secret,
            redirect_uri: crate::config::oidc_redirect_uri(config, p),
            source,
            http,
            metadata: tokio::sync::Mutex::new(None),
            keys: tokio::sync::Mutex::new(KeySet::default()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    pub fn claims_source(&self) -> ClaimsSource {
        self.source
    }

    /// The discovery document (fetched at most once an hour; the last good one is kept while the provider is
    /// unavailable), with the endpoints the settings name instead.
    pub async fn metadata(&self) -> Result<Arc<Metadata>, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some((md, at)) = cached.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(md.clone());
        }
        match self.fetch_metadata().await {
            Ok(md) => {
                let md = Arc::new(md);
                *cached = Some((md.clone(), crate::clock::monotonic()));
                Ok(md)
            }
            Err(e) => match cached.as_ref() {
                Some((md, _)) => {
                    tracing::warn!(provider = %self.name, error = %e, "discovery failed; the last document is used");
                    Ok(md.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn fetch_metadata(&self) -> Result<Metadata, OidcError> {
        let o = &self.settings;
        let doc = if o.discovery_url.is_empty() {
            Map::new()
        } else {
            let doc = self.get_json(&o.discovery_url, None).await?;
            // OpenID Connect Discovery 4.3: the document's issuer is the one it was fetched for.
            let issuer = text(&doc, "issuer").ok_or_else(|| garbage("the discovery document has no issuer"))?;
            let expected = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
            if expected != o.discovery_url {
                return Err(OidcError::Check(format!(
                    "the discovery document names the issuer {issuer:?}, which is not the one discovery_url belongs to"
                )));
            }
            doc
        };
        let pick = |configured: &str, member: &str| -> Option<String> {
            (!configured.is_empty())
                .then(|| configured.to_string())
                .or_else(|| text(&doc, member).map(str::to_string))
        };
        let need = |configured: &str, member: &str| -> Result<String, OidcError> {
            let url = pick(configured, member).ok_or_else(|| garbage(&format!("no {member}")))?;
            if !provider_url_ok(&url) {
                return Err(OidcError::Check(format!("{member} {url:?} is not an https URL")));
            }
            Ok(url)
        };
        let userinfo_endpoint = match pick(&o.user_info_url, "userinfo_endpoint") {
            Some(url) if !provider_url_ok(&url) => {
                return Err(OidcError::Check(format!(
                    "userinfo_endpoint {url:?} is not an https URL"
                )));
            }
            other => other,
        };
        let listed = |member: &str| -> Option<Vec<String>> {
            doc.get(member)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        };
        let algorithms = match listed("id_token_signing_alg_values_supported") {
            Some(names) => names.iter().filter_map(|n| Alg::parse(n)).collect(),
            None => vec![Alg::RS256],
        };
        if algorithms.is_empty() {
            return Err(OidcError::Check(
                "the provider signs id_tokens with no algorithm Tessera verifies (HMAC and none are refused)".into(),
            ));
        }
        let basic_auth = match listed("token_endpoint_auth_methods_supported") {
            Some(methods) => {
                methods.iter().any(|m| m == "client_secret_basic") || !methods.iter().any(|m| m == "client_secret_post")
            }
            None => true,
        };
        Ok(Metadata {
            issuer: match pick(&o.issuer, "issuer") {
                Some(issuer) => issuer,
                None => return Err(garbage("no issuer")),
            },
            authorization_endpoint: need(&o.auth_url, "authorization_endpoint")?,
            token_endpoint: need(&o.token_url, "token_endpoint")?,
            userinfo_endpoint,
            jwks_uri: need(&o.jwks_url, "jwks_uri")?,
            algorithms,
            basic_auth,
        })
    }

    /// The provider's authorization URL for one sign-in.
    pub fn authorization_url(&self, md: &Metadata, state: &str, nonce: &str, challenge: &str) -> String {
        let mut scopes = vec!["openid".to_string()];
        for scope in self.settings.scopes.iter().flat_map(|s| s.split_whitespace()) {
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_string());
            }
        }
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.settings.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        const OURS: [&str; 8] = [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
        ];
        for (k, v) in &self.settings.extra_arguments {
            if !OURS.contains(&k.as_str()) {
                query.append_pair(k, v);
            }
        }
        let separator = if md.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{separator}{}", md.authorization_endpoint, query.finish())
    }

    /// Redeems an authorization code at the token endpoint, with the PKCE verifier.
    pub async fn redeem_code(&self, md: &Metadata, code: &str, verifier: &str) -> Result<Tokens, OidcError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", code)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("code_verifier", verifier);
        let mut request = self
            .http
            .post(&md.token_endpoint)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        match &self.client_secret {
            Some(secret) if md.basic_auth => {
                // RFC 6749 2.3.1: both halves form-urlencoded before the Basic encoding.
                let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
                let pair = format!("{}:{}", enc(&self.settings.client_id), enc(secret));
                request = request.header(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {}", STANDARD.encode(pair)),
                );
            }
            Some(secret) => {
                form.append_pair("client_id", &self.settings.client_id)
                    .append_pair("client_secret", secret);
            }
            None => {
                form.append_pair("client_id", &self.settings.client_id);
            }
        }
        let response = request.body(form.finish()).send().await.map_err(unreachable)?;
        let status = response.status();
        let body = read_body(response).await?;
        let answer: Map<String, Value> = match serde_json::from_slice(&body) {
            Ok(Value::Object(map)) => map,
            _ if status.is_server_error() => return Err(garbage(&format!("the token endpoint answered {status}"))),
            _ => return Err(garbage("the token endpoint's answer is not a JSON object")),
        };
        if !status.is_success() {
            let error = text(&answer, "error").unwrap_or("no error code");
            return match status.is_server_error() {
                true => Err(garbage(&format!("the token endpoint answered {status} ({error})"))),
                false => Err(OidcError::Refused(format!(
                    "the token endpoint answered {status}: {error}"
                ))),
            };
        }
        let id_token = text(&answer, "id_token")
            .ok_or_else(|| garbage("the token endpoint's answer has no id_token"))?
            .to_string();
        Ok(Tokens {
            id_token,
            access_token: text(&answer, "access_token").map(str::to_string),
        })
    }

    /// Verifies an id_token from the token endpoint (OpenID Connect Core 3.1.3.7) and returns its claims.
    pub async fn verify_id_token(
        &self,
        md: &Metadata,
        token: &str,
        nonce: &str,
        now: i64,
    ) -> Result<Map<String, Value>, OidcError> {
        let bad = |m: &str| OidcError::Check(format!("id_token: {m}"));
        let (alg, kid) = header_of(token).ok_or_else(|| bad("not a signed JWT"))?;
        let alg = Alg::parse(&alg)
            .filter(|a| md.algorithms.contains(a))
            .ok_or_else(|| bad(&format!("signed with {alg}, which is not accepted")))?;
        let kid = kid.ok_or_else(|| bad("its header names no key (kid)"))?;
        let key = self.key(md, &kid, alg).await?;
        let audience = [self.settings.client_id.clone()];
        let rules = Rules {
            now,
            leeway: LEEWAY,
            check_exp: true,
            issuer: &md.issuer,
            audience: &audience,
        };
        let claims =
            jwt::verify(token, |k| (k == kid).then(|| key.clone()), &rules).map_err(|e| bad(&e.to_string()))?;
        let client_id = self.settings.client_id.as_str();
        let audiences = match claims.get("aud") {
            Some(Value::Array(list)) => list.len(),
            _ => 1,
        };
        match claims.get("azp") {
            Some(Value::String(azp)) if azp != client_id => return Err(bad("it was issued to another client (azp)")),
            None if audiences > 1 => return Err(bad("it has several audiences and no azp")),
            _ => {}
        }
        let iat = claims.get("iat").and_then(Value::as_i64).ok_or_else(|| bad("no iat"))?;
        if iat > now + LEEWAY || iat < now - MAX_ID_TOKEN_AGE {
            return Err(bad("issued at a time that does not fit this sign-in (iat)"));
        }
        let presented = claims.get("nonce").and_then(Value::as_str).unwrap_or_default();
        if !crate::crypto::constant_time_eq(presented.as_bytes(), nonce.as_bytes()) {
            return Err(bad("its nonce is not this sign-in's"));
        }
        match claims.get("sub").and_then(Value::as_str) {
            Some(sub) if !sub.is_empty() && sub.len() <= 255 => {}
            _ => return Err(bad("no usable sub")),
        }
        if claims.get("iss").and_then(Value::as_str).is_some_and(|i| i.len() > 255) {
            return Err(bad("an issuer longer than 255 bytes"));
        }
        Ok(claims)
    }

    /// The verification key `kid` for `alg`, fetching the key set again (at most once a minute) when it does not
    /// hold that key.
    async fn key(&self, md: &Metadata, kid: &str, alg: Alg) -> Result<Arc<SigningKey>, OidcError> {
        let mut set = self.keys.lock().await;
        if let Some(key) = find_key(&set.keys, kid, alg)? {
            return Ok(key);
        }
        if set.fetched.is_some_and(|at| at.elapsed() < JWKS_REFETCH) {
            return Err(OidcError::Check(format!("id_token: signed by the unknown key {kid:?}")));
        }
        let doc = self.get_json(&md.jwks_uri, None).await?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| garbage("the key set has no keys"))?;
        set.keys = keys.iter().filter_map(|k| k.as_object().cloned()).collect();
        set.fetched = Some(crate::clock::monotonic());
        find_key(&set.keys, kid, alg)?
            .ok_or_else(|| OidcError::Check(format!("id_token: signed by the unknown key {kid:?}")))
    }

    /// The UserInfo claims of the signed-in user; their `sub` must be the id_token's (Core 5.3.2).
    pub async fn userinfo(
        &self,
        md: &Metadata,
        access_token: &str,
        sub: &str,
    ) -> Result<Map<String, Value>, OidcError> {
        let url = md
            .userinfo_endpoint
            .as_deref()
            .ok_or_else(|| garbage("claims_source is endpoint, and the provider has no UserInfo endpoint"))?;
        let claims = self.get_json(url, Some(access_token)).await?;
        if claims.get("sub").and_then(Value::as_str) != Some(sub) {
            return Err(OidcError::Check(
                "UserInfo describes another user than the id_token (sub)".into(),
            ));
        }
        Ok(claims)
    }

    async fn get_json(&self, url: &str, bearer: Option<&str>) -> Result<Map<String, Value>, OidcError> {
        if !provider_url_ok(url) {
            return Err(OidcError::Check(format!("{url:?} is not an https URL")));
        }
        let mut request = self.http.get(url).header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(garbage(&format!("{url} answered {status}")));
        }
        match serde_json::from_slice(&read_body(response).await?) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(garbage(&format!("{url} did not answer a JSON object"))),
        }
    }
}

/// The key of `kid` among the provider's JWKs, as a verification key for `alg` (a JWK that names another
/// algorithm, or is not for signatures, does not count).
fn find_key(keys: &[Map<String, Value>], kid: &str, alg: Alg) -> Result<Option<Arc<SigningKey>>, OidcError> {
    let Some(jwk) = keys.iter().find(|k| k.get("kid").and_then(Value::as_str) == Some(kid)) else {
        return Ok(None);
    };
    if jwk.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig")
        || jwk.get("alg").and_then(Value::as_str).is_some_and(|a| a != alg.name())
    {
        return Err(OidcError::Check(format!(
            "id_token: key {kid:?} is not a {alg} signing key"
        )));
    }
    SigningKey::verify_only(alg, &Value::Object(jwk.clone()).to_string())
        .map(|k| Some(Arc::new(k)))
        .map_err(|e| OidcError::Check(format!("id_token: key {kid:?}: {e}")))
}

/// The `alg` and `kid` of a compact JWS's header.
fn header_of(token: &str) -> Option<(String, Option<String>)> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let header: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    let alg = header.get("alg")?.as_str()?.to_string();
    Some((alg, header.get("kid").and_then(Value::as_str).map(str::to_string)))
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, OidcError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(garbage("the answer is larger than 1 MiB"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn text<'a>(map: &'a Map<String, Value>, member: &str) -> Option<&'a str> {
    map.get(member).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn garbage(what: &str) -> OidcError {
    OidcError::Garbage(what.to_string())
}

fn unreachable(e: reqwest::Error) -> OidcError {
    let what = if e.is_timeout() {
        "no answer in time".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        // Without the URL (it may carry a query), with the causes.
        let e = e.without_url();
        let mut what = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            what.push_str(&format!(": {c}"));
            cause = c.source();
        }
        what
    };
    OidcError::Unreachable(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_providers_are_asked() {
        for ok in [
            "https://accounts.google.com/.well-known/openid-configuration",
            "http://127.0.0.1:9000/x",
            "http://localhost/x",
            "http://[::1]:80/",
        ] {
            assert!(provider_url_ok(ok), "{ok}");
        }
        for bad in [
            "http://accounts.google.com/",
            "http://127.0.0.1.evil.example/",
            "http://localhost.evil.example/",
            "ftp://127.0.0.1/",
            "https://",
            "",
            "http://10.0.0.1/",
        ] {
            assert!(!provider_url_ok(bad), "{bad}");
        }
    }

    #[test]
    fn headers_are_read_without_trusting_them() {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#);
        assert_eq!(
            header_of(&format!("{h}.x.y")),
            Some(("RS256".into(), Some("k1".into())))
        );
        assert_eq!(header_of("garbage"), None);
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        assert_eq!(header_of(&format!("{none}.x.")), Some(("none".into(), None)));
        assert!(Alg::parse("none").is_none() && Alg::parse("HS256").is_none());
    }
}
