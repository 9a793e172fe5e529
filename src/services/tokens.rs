//! Access-token contents: claims from the user's groups (comma-joined per short name, duplicates removed), the
//! user_info mapping, registered claims, `required_claims` and `filter_claims`; and signing with the ring.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::config::{AmrClaim, TokensConfig, UserInfoConfig};
use crate::crypto::jwt::{self, JwtError, Rules};
use crate::crypto::keys::{Alg, KeyError};
use crate::db::users::UserRow;
use crate::services::ServiceError;
use crate::services::keyring::RingState;

/// Registered claim names, and `sid` (the session); a group claim of the same short name is left out rather than
/// overriding them.
const REGISTERED: [&str; 9] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", SESSION, AMR];

/// The claim naming how the session was authenticated (RFC 8176 `amr`: `pwd`, `api_key`, …).
pub const AMR: &str = "amr";

/// What a user's token says about its session: the id, the claim filter it keeps, its credential kind and its
/// refresh count.
pub struct SessionView<'a> {
    pub id: &'a str,
    pub filter: Option<&'a [String]>,
    /// `None`: a stored kind this version does not know (the token carries no `amr`).
    pub kind: Option<crate::credential::Kind>,
    /// The login's second factor (`otp`, `mfa`), added to `amr`.
    pub second_factor: Option<&'a str>,
    pub refresh_count: i64,
}

/// The claim naming the session (refresh family) a token was issued in (OpenID's `sid`): what the admin API
/// checks against the database on every request, so a revoked session loses admin access at once.
pub const SESSION: &str = "sid";

/// Whether a key of `tokens.user_info` (or the refresh-count key) may carry a user's data: not a registered
/// claim, and not `stk`, which only claim groups grant (a username `S` must not read as a superuser).
pub fn may_carry_user_data(key: &str) -> bool {
    !key.is_empty() && !REGISTERED.contains(&key) && key != crate::authz::STK
}

/// What every token carries, from `tokens`.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub subject: String,
    pub audience: Vec<String>,
    pub token_duration: i64,
    pub include_iat: bool,
    pub include_nbf: bool,
    pub amr: AmrClaim,
    pub user_info: UserInfoConfig,
    pub refresh_count_key: String,
    pub refresh_limit: i64,
    pub reuse_grace: i64,
    pub max_age: i64,
    pub idle_timeout: i64,
    /// Seconds of clock skew accepted when verifying.
    pub leeway: i64,
}

impl TokenSettings {
    pub fn from_config(t: &TokensConfig) -> Self {
        TokenSettings {
            issuer: t.issuer.clone(),
            subject: t.subject.clone(),
            audience: t.audience.clone(),
            token_duration: t.token_duration.as_secs() as i64,
            include_iat: t.include_issued_at,
            include_nbf: t.include_not_before,
            amr: t.amr_claim,
            user_info: t.user_info.clone(),
            refresh_count_key: t.token_refresh_count_key.clone(),
            refresh_limit: i64::from(t.token_refresh_limit),
            reuse_grace: t.refresh_reuse_grace.as_secs() as i64,
            max_age: t.refresh_max_age.as_secs() as i64,
            idle_timeout: t.refresh_idle_timeout.as_secs() as i64,
            leeway: 5,
        }
    }

    /// The verification rules at `now`.
    pub fn rules(&self, now: i64, check_exp: bool) -> Rules<'_> {
        Rules {
            now,
            leeway: self.leeway,
            check_exp,
            issuer: &self.issuer,
            audience: &self.audience,
        }
    }
}

/// Group claims as the token carries them: short name → values joined by commas (sorted, no duplicates).
pub fn group_claims(held: &[(String, String)]) -> Map<String, Value> {
    let mut grouped: std::collections::BTreeMap<&str, Vec<&str>> = std::collections::BTreeMap::new();
    for (short, value) in held {
        grouped.entry(short).or_default().push(value);
    }
    grouped
        .into_iter()
        .map(|(k, mut values)| {
            values.sort_unstable();
            values.dedup();
            (k.to_string(), Value::String(values.join(",")))
        })
        .collect()
}

/// Whether the user's claims satisfy `required`: every pair of at least one map matches (an empty required
/// value means the claim must exist with any value). No maps: no requirement.
pub fn satisfies(claims: &Map<String, Value>, required: &[HashMap<String, String>]) -> bool {
    if required.is_empty() {
        return true;
    }
    required.iter().any(|wanted| {
        wanted
            .iter()
            .all(|(key, value)| match claims.get(key).and_then(Value::as_str) {
                Some(held) => value.is_empty() || held.split(',').any(|v| v == value),
                None => false,
            })
    })
}

/// The whole claim set of a token for `user`, issued in `session`.
pub fn build_claims(
    s: &TokenSettings,
    user: &UserRow,
    groups: Map<String, Value>,
    session: &SessionView<'_>,
    now: i64,
) -> Map<String, Value> {
    let mut claims = group_part(groups, session.filter);
    let info = &s.user_info;
    let full_name = format!("{} {}", user.fname, user.lname).trim().to_string();
    for (key, value) in [
        (&info.username, Some(user.username.clone())),
        (&info.first_name, Some(user.fname.clone())),
        (&info.last_name, Some(user.lname.clone())),
        (&info.full_name, Some(full_name)),
        (&info.email, user.email.clone()),
    ] {
        if let (true, Some(v)) = (may_carry_user_data(key), value) {
            claims.insert(key.clone(), Value::String(v));
        }
    }
    if may_carry_user_data(&s.refresh_count_key) {
        claims.insert(
            s.refresh_count_key.clone(),
            Value::String(session.refresh_count.to_string()),
        );
    }
    let sub = if s.subject.is_empty() {
        user.id.to_string()
    } else {
        s.subject.clone()
    };
    add_registered(&mut claims, s, sub, now);
    claims.insert(SESSION.into(), Value::String(session.id.to_string()));
    if let Some(kind) = session.kind.filter(|k| !k.amr().is_empty()) {
        let amr: Vec<&str> = kind.amr().iter().copied().chain(session.second_factor).collect();
        match s.amr {
            AmrClaim::Array => {
                claims.insert(AMR.into(), Value::from(amr));
            }
            AmrClaim::String => {
                claims.insert(AMR.into(), Value::String(amr.join(",")));
            }
            AmrClaim::Off => {}
        }
    }
    claims
}

/// The claim filter of a session started with an API key through a filter of its own: the short names both
/// keep (`None` on either side keeps everything).
pub fn intersect_filters(a: Option<Vec<String>>, b: Option<Vec<String>>) -> Option<Vec<String>> {
    match (a, b) {
        (None, f) | (f, None) => f,
        (Some(a), Some(b)) => Some(a.into_iter().filter(|k| b.contains(k)).collect()),
    }
}

/// The group claims a token may carry: those `filter` keeps (all without one), never a registered name.
fn group_part(mut groups: Map<String, Value>, filter: Option<&[String]>) -> Map<String, Value> {
    if let Some(keep) = filter {
        groups.retain(|k, _| keep.iter().any(|f| f == k));
    }
    groups
        .into_iter()
        .filter(|(k, _)| !REGISTERED.contains(&k.as_str()) && !k.is_empty())
        .collect()
}

/// `iss`, `sub`, `aud`, `exp`, `iat`, `nbf` as `tokens` configures them, and a fresh `jti`.
fn add_registered(claims: &mut Map<String, Value>, s: &TokenSettings, sub: String, now: i64) {
    if !s.issuer.is_empty() {
        claims.insert("iss".into(), Value::String(s.issuer.clone()));
    }
    claims.insert("sub".into(), Value::String(sub));
    if !s.audience.is_empty() {
        claims.insert("aud".into(), Value::from(s.audience.clone()));
    }
    claims.insert("exp".into(), Value::from(now + s.token_duration));
    if s.include_iat {
        claims.insert("iat".into(), Value::from(now));
    }
    if s.include_nbf {
        claims.insert("nbf".into(), Value::from(now));
    }
    claims.insert(
        "jti".into(),
        Value::String(URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())),
    );
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no signing key is available")]
    NoKey,
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Signs `claims` with the ring's current signer.
pub fn sign(ring: &RingState, claims: &Map<String, Value>, now: i64) -> Result<String, SignError> {
    let signer = ring.signer(now).ok_or(SignError::NoKey)?;
    Ok(jwt::encode(&signer.key, &signer.header, claims)?)
}

/// Space-separated words, in order, without duplicates.
pub fn words(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in s.split_whitespace() {
        if !out.iter().any(|o| o == w) {
            out.push(w.to_string());
        }
    }
    out
}

/// The scopes of `requested` that `allowed` has, in `allowed`'s order; `invalid_scope` if it names another.
pub fn narrow_scope(allowed: &[String], requested: &str) -> Result<Vec<String>, ServiceError> {
    let wanted = words(requested);
    if let Some(unknown) = wanted.iter().find(|w| !allowed.contains(w)) {
        return Err(ServiceError::invalid(
            "invalid_scope",
            format!("scope {unknown:?} is not granted to this client"),
        ));
    }
    Ok(allowed.iter().filter(|a| wanted.contains(a)).cloned().collect())
}

/// What an OAuth client adds to a token it gets: `client_id`, the granted `scope`, its audience and lifetime.
#[derive(Debug, Clone)]
pub struct ClientGrant {
    pub client_id: String,
    pub scope: Vec<String>,
    pub audience: Option<String>,
    pub access_ttl: Option<i64>,
    pub refresh_ttl: Option<i64>,
    pub claim_filter: Option<Vec<String>>,
    pub rfc9068: bool,
    /// The client's `signing_alg`.
    pub alg: Option<Alg>,
}

impl ClientGrant {
    /// Seconds the access token lives.
    pub fn access_ttl(&self, s: &TokenSettings) -> i64 {
        self.access_ttl.unwrap_or(s.token_duration)
    }

    /// Adds the client's claims to a token's `claims` (over any group claim of the same name): `client_id`,
    /// `scope`, `aud` (the client's audience, else the configured one; for RFC 9068, which requires one, else
    /// the client id), `exp` by the client's lifetime, and for RFC 9068 `iat` always.
    pub fn apply(&self, claims: &mut Map<String, Value>, s: &TokenSettings, now: i64) {
        claims.insert("client_id".into(), Value::String(self.client_id.clone()));
        claims.insert("scope".into(), Value::String(self.scope.join(" ")));
        match &self.audience {
            Some(aud) => {
                claims.insert("aud".into(), Value::String(aud.clone()));
            }
            None if self.rfc9068 && !claims.contains_key("aud") => {
                claims.insert("aud".into(), Value::String(self.client_id.clone()));
            }
            None => {}
        }
        claims.insert("exp".into(), Value::from(now + self.access_ttl(s)));
        if self.rfc9068 {
            claims.insert("iat".into(), Value::from(now));
        }
    }

    /// Signs `claims` in the client's profile, with its algorithm's key.
    pub fn sign(&self, ring: &RingState, claims: &Map<String, Value>, now: i64) -> Result<String, SignError> {
        let signer = ring.signer_for(self.alg, now).ok_or(SignError::NoKey)?;
        if self.rfc9068 {
            let header = jwt::typed_header(&signer.key, "at+jwt");
            Ok(jwt::encode(&signer.key, &header, claims)?)
        } else {
            Ok(jwt::encode(&signer.key, &signer.header, claims)?)
        }
    }
}

/// The claim set of a client's own token (`client_credentials`): its groups' claims under `sub`, the registered
/// claims, no session and no user data.
pub fn build_client_claims(
    s: &TokenSettings,
    sub: &str,
    groups: Map<String, Value>,
    filter: Option<&[String]>,
    now: i64,
) -> Map<String, Value> {
    let mut claims = group_part(groups, filter);
    add_registered(&mut claims, s, sub.to_string(), now);
    claims
}

/// Verifies a token issued by this ring.
pub fn verify(
    ring: &RingState,
    s: &TokenSettings,
    token: &str,
    now: i64,
    check_exp: bool,
) -> Result<Map<String, Value>, JwtError> {
    jwt::verify_with(
        token,
        |kid| ring.find(kid),
        &s.rules(now, check_exp),
        Some(&ring.signatures),
    )
}

/// Bytes of a refresh token's random part: 256 bits.
const SECRET_LEN: usize = 32;
/// Bytes of its tag (HMAC-SHA256 truncated to 128 bits).
const TAG_LEN: usize = 16;
/// Characters of a family id: 128 random bits in lowercase hex.
const FAMILY_LEN: usize = 32;
/// Characters of a refresh token from before generations (base64url of 32 random bytes).
const LEGACY_LEN: usize = 43;

/// A refresh token as presented, parsed without touching the database.
///
/// The current form is `<family>.<generation>.<base64url(secret ‖ tag)>`: the family id (the session, `sid`),
/// the generation the token was issued at (the family's refresh count then), 256 random bits, and a tag
/// (HMAC-SHA256 under the family's `tag_key`, truncated to 128 bits) over the rest. Only the token's SHA-256 is
/// stored, as the family's current digest, so a refresh finds its row by id and rewrites it in place. The tag
/// lets a token of an older generation be recognised as the family's own (a replay, which revokes the family)
/// while a string that merely names a family and a generation, as anyone who has seen an access token could
/// write, is only an unknown token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshToken {
    /// The current form.
    Generation(GenerationToken),
    /// 43 base64url characters, issued before generations: found by its SHA-256 hex in `refresh_tokens`, and
    /// refreshed once into the current form.
    Legacy,
}

/// The parts of a refresh token of the current form.
#[derive(Clone, PartialEq, Eq)]
pub struct GenerationToken {
    pub family: String,
    pub generation: i64,
    secret: [u8; SECRET_LEN],
    tag: [u8; TAG_LEN],
}

impl std::fmt::Debug for GenerationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationToken")
            .field("family", &self.family)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl GenerationToken {
    /// Whether the tag is the one `tag_key` gives: the token was issued for this family and generation.
    pub fn genuine(&self, tag_key: &[u8]) -> bool {
        let expected = tag(tag_key, &self.family, self.generation, &self.secret);
        crate::crypto::constant_time_eq(&expected, &self.tag)
    }
}

fn tag(tag_key: &[u8], family: &str, generation: i64, secret: &[u8]) -> [u8; TAG_LEN] {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, tag_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(family.as_bytes());
    ctx.update(b".");
    ctx.update(generation.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(secret);
    let full = ctx.sign();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&full.as_ref()[..TAG_LEN]);
    out
}

/// A new family id (the session id, `sid`).
pub fn new_family_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A new key for the tags of one family's tokens.
pub fn new_tag_key() -> Vec<u8> {
    rand::random::<[u8; 32]>().to_vec()
}

/// A new opaque token (256 random bits) and the SHA-256 hex under which it is stored: link tokens (and, before
/// generations, refresh tokens).
pub fn new_refresh_token() -> (String, String) {
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let hash = refresh_hash(&token);
    (token, hash)
}

/// A new refresh token of `family` at `generation` (see [`RefreshToken`]) and the SHA-256 under which it is
/// stored.
pub fn new_session_token(family: &str, generation: i64, tag_key: &[u8]) -> (String, Vec<u8>) {
    let secret: [u8; SECRET_LEN] = rand::random();
    let mut body = secret.to_vec();
    body.extend_from_slice(&tag(tag_key, family, generation, &secret));
    let token = format!("{family}.{generation}.{}", URL_SAFE_NO_PAD.encode(body));
    let digest = refresh_digest(&token);
    (token, digest)
}

/// The SHA-256 of a refresh token of the current form, as the family row keeps it.
pub fn refresh_digest(token: &str) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(token.as_bytes()).to_vec()
}

/// SHA-256 hex: how link tokens are stored, and how a refresh token from before generations is found in
/// `refresh_tokens`.
pub fn refresh_hash(token: &str) -> String {
    crate::crypto::sha256_hex(token.as_bytes())
}

/// Parses a refresh token of either form; `None` when it cannot be one of ours.
pub fn parse_refresh_token(token: &str) -> Option<RefreshToken> {
    if token.len() == LEGACY_LEN && token.bytes().all(is_base64url) {
        return Some(RefreshToken::Legacy);
    }
    let mut parts = token.splitn(3, '.');
    let (family, generation, body) = (parts.next()?, parts.next()?, parts.next()?);
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if family.len() != FAMILY_LEN || !family.bytes().all(hex) {
        return None;
    }
    // Canonical decimal only, so one token has one spelling.
    if generation.is_empty() || generation.len() > 18 || (generation.len() > 1 && generation.starts_with('0')) {
        return None;
    }
    if !generation.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let generation: i64 = generation.parse().ok()?;
    let body = URL_SAFE_NO_PAD.decode(body).ok()?;
    if body.len() != SECRET_LEN + TAG_LEN {
        return None;
    }
    let (secret, tag) = body.split_at(SECRET_LEN);
    Some(RefreshToken::Generation(GenerationToken {
        family: family.to_string(),
        generation,
        secret: secret.try_into().ok()?,
        tag: tag.try_into().ok()?,
    }))
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether `token` has the shape of one of our refresh tokens (either form), before any database work.
pub fn plausible_refresh_token(token: &str) -> bool {
    parse_refresh_token(token).is_some()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn held(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn values_join_without_duplicates() {
        let c = group_claims(&held(&[("log", "w"), ("stk", "S"), ("log", "r"), ("log", "w")]));
        assert_eq!(c["log"], "r,w");
        assert_eq!(c["stk"], "S");
    }

    #[test]
    fn required_claims_any_map_all_pairs() {
        let c = group_claims(&held(&[("stk", "U"), ("stk", "g"), ("ship", "acc")]));
        let req = |maps: &[&[(&str, &str)]]| -> Vec<HashMap<String, String>> {
            maps.iter()
                .map(|m| m.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
                .collect()
        };
        assert!(satisfies(&c, &[]));
        assert!(satisfies(&c, &req(&[&[("stk", "g")]])));
        assert!(satisfies(&c, &req(&[&[("ship", "")]])));
        assert!(!satisfies(&c, &req(&[&[("stk", "g"), ("inv", "")]])));
        assert!(satisfies(&c, &req(&[&[("inv", "")], &[("stk", "U"), ("ship", "acc")]])));
        assert!(!satisfies(&c, &req(&[&[("stk", "S")]])));
    }

    #[test]
    fn refresh_tokens_name_family_and_generation_and_carry_a_tag() {
        let (family, key) = (new_family_id(), new_tag_key());
        let (token, digest) = new_session_token(&family, 7, &key);
        assert_eq!(digest, refresh_digest(&token));
        assert_eq!(digest.len(), 32);
        let Some(RefreshToken::Generation(parsed)) = parse_refresh_token(&token) else {
            panic!("{token} does not parse");
        };
        assert_eq!((parsed.family.as_str(), parsed.generation), (family.as_str(), 7));
        assert!(parsed.genuine(&key));
        assert!(!parsed.genuine(&new_tag_key()), "another family's key");
        // The same secret and tag under another generation or family is not genuine.
        let body = token.rsplit('.').next().unwrap();
        for forged in [format!("{family}.6.{body}"), format!("{}.7.{body}", new_family_id())] {
            let Some(RefreshToken::Generation(f)) = parse_refresh_token(&forged) else {
                panic!("{forged} does not parse");
            };
            assert!(!f.genuine(&key), "{forged}");
        }
        assert!(plausible_refresh_token(&token));
        // Old tokens still parse, as the legacy form.
        assert_eq!(
            parse_refresh_token(&URL_SAFE_NO_PAD.encode([7u8; 32])),
            Some(RefreshToken::Legacy)
        );
        for bad in [
            String::new(),
            format!("{family}.07.{body}"),
            format!("{family}.-1.{body}"),
            format!("{family}.7.{body}A"),
            format!("{}.7.{body}", family.to_uppercase()),
            format!("{family}.7"),
            token.replace('.', "!"),
        ] {
            assert!(!plausible_refresh_token(&bad), "{bad}");
        }
    }
}
