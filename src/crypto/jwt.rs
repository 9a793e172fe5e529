//! Compact JWS tokens: signing with a [`SigningKey`] and strict verification.
//!
//! Tessera signs and verifies JWTs itself on aws-lc-rs: jsonwebtoken has no ES512, and one code path for every
//! algorithm is easier to keep strict. Verification accepts only `kid`-identified keys of our own ring, with the
//! header `alg` equal to that key's algorithm (no `none`, no HMAC, no algorithm confusion), and refuses headers
//! that point elsewhere for keys (`jku`, `jwk`, `x5u`, `x5c`) or demand unknown extensions (`crit`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::Digest as _;

use super::keys::{Alg, KeyError, SigningKey};

/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("token header not accepted: {0}")]
    Header(&'static str),
    #[error("unknown signing key")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
}

/// The base64url header for tokens signed by `key`: `{"alg","kid","typ":"JWT"}`. Computed once per key.
pub fn encoded_header(key: &SigningKey) -> String {
    typed_header(key, "JWT")
}

/// The same header with another `typ`, e.g. `at+jwt` for RFC 9068 access tokens.
pub fn typed_header(key: &SigningKey, typ: &str) -> String {
    let header = serde_json::json!({ "alg": key.alg.name(), "kid": key.kid, "typ": typ });
    URL_SAFE_NO_PAD.encode(header.to_string())
}

/// Signs `claims` with `key`, whose header is `header` (from [`encoded_header`]).
pub fn encode(key: &SigningKey, header: &str, claims: &Map<String, Value>) -> Result<String, KeyError> {
    let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
    token.push_str(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    Ok(token)
}

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct Rules<'a> {
    pub now: i64,
    /// Seconds of clock skew tolerated on `exp` and `nbf`.
    pub leeway: i64,
    /// Refuse expired tokens (off for the old token a refresh may carry).
    pub check_exp: bool,
    /// Required `iss`, unless empty.
    pub issuer: &'a str,
    /// When non-empty, `aud` must name at least one of these.
    pub audience: &'a [String],
}

/// Tokens whose signature has been verified, by the SHA-256 of the whole token (header, payload and signature),
/// with the key that verified it. A token presented again (a resource server introspecting, an admin console's
/// requests) skips only the signature arithmetic: its header, key (still in the ring, the same key object),
/// algorithm, expiry and every other rule are checked each time. Bounded: emptied when full.
#[derive(Debug, Default)]
pub struct SignatureCache {
    seen: Mutex<HashMap<[u8; 32], Arc<SigningKey>>>,
}

impl SignatureCache {
    /// Tokens remembered before the cache is emptied (about 100 bytes each).
    const MAX: usize = 8192;

    fn verified(&self, digest: &[u8; 32], key: &Arc<SigningKey>) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(digest).is_some_and(|k| Arc::ptr_eq(k, key))
    }

    fn remember(&self, digest: [u8; 32], key: Arc<SigningKey>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= Self::MAX {
            seen.clear();
        }
        seen.insert(digest, key);
    }
}

/// Verifies `token` against the keys `find_key` knows (by `kid`) and `rules`; returns its claims.
pub fn verify(
    token: &str,
    find_key: impl Fn(&str) -> Option<Arc<SigningKey>>,
    rules: &Rules<'_>,
) -> Result<Map<String, Value>, JwtError> {
    verify_with(token, find_key, rules, None)
}

/// [`verify`], skipping the signature check of a token `cache` saw verified by the same key.
pub fn verify_with(
    token: &str,
    find_key: impl Fn(&str) -> Option<Arc<SigningKey>>,
    rules: &Rules<'_>,
    cache: Option<&SignatureCache>,
) -> Result<Map<String, Value>, JwtError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };
    let header = decode_object(h)?;
    for forbidden in ["jku", "jwk", "x5u", "x5c", "crit"] {
        if header.contains_key(forbidden) {
            return Err(JwtError::Header("key references and crit are not accepted"));
        }
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtError::Header("no alg"))?;
    let alg = Alg::parse(alg).ok_or(JwtError::Header("algorithm not accepted"))?;
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(JwtError::Header("no kid"))?;
    let key = find_key(kid).ok_or(JwtError::UnknownKey)?;
    if key.alg != alg {
        return Err(JwtError::Header("alg does not match the key"));
    }
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    let signed = &token[..h.len() + 1 + p.len()];
    let digest: Option<[u8; 32]> = cache.map(|_| sha2::Sha256::digest(token.as_bytes()).into());
    let known = matches!((cache, &digest), (Some(c), Some(d)) if c.verified(d, &key));
    if !known {
        if !key.verify(signed.as_bytes(), &signature) {
            return Err(JwtError::BadSignature);
        }
        if let (Some(c), Some(d)) = (cache, digest) {
            c.remember(d, key.clone());
        }
    }
    let claims = decode_object(p)?;
    let exp = claims.get("exp").and_then(Value::as_i64).ok_or(JwtError::Malformed)?;
    if rules.check_exp && rules.now > exp + rules.leeway {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_i64().ok_or(JwtError::Malformed)?;
        if rules.now + rules.leeway < nbf {
            return Err(JwtError::NotYetValid);
        }
    }
    if !rules.issuer.is_empty() && claims.get("iss").and_then(Value::as_str) != Some(rules.issuer) {
        return Err(JwtError::Issuer);
    }
    if !rules.audience.is_empty() {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => rules.audience.contains(a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| rules.audience.iter().any(|x| x == a)),
            _ => false,
        };
        if !ok {
            return Err(JwtError::Audience);
        }
    }
    Ok(claims)
}

fn decode_object(part: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::PublicJwk;

    fn setup() -> (Arc<SigningKey>, String) {
        let (key, _) = SigningKey::generate(Alg::ES256, 0).unwrap_or_else(|e| unreachable!("{e}"));
        let header = encoded_header(&key);
        (Arc::new(key), header)
    }

    fn rules(now: i64) -> Rules<'static> {
        Rules {
            now,
            leeway: 5,
            check_exp: true,
            issuer: "tessera",
            audience: &[],
        }
    }

    fn claims(exp: i64) -> Map<String, Value> {
        let v = serde_json::json!({ "iss": "tessera", "exp": exp, "u": "ann" });
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_signature_cache_skips_only_the_arithmetic() {
        let (key, header) = setup();
        let cache = SignatureCache::default();
        let token = encode(&key, &header, &claims(1000)).unwrap_or_default();
        let find = |kid: &str| (kid == key.kid).then(|| key.clone());
        assert!(verify_with(&token, find, &rules(900), Some(&cache)).is_ok());
        // Remembered: still checked for expiry, and for its key being the same one.
        assert!(verify_with(&token, find, &rules(900), Some(&cache)).is_ok());
        assert_eq!(
            verify_with(&token, find, &rules(1006), Some(&cache)),
            Err(JwtError::Expired)
        );
        // Another key object under the same kid (a restart with other keys, an imported kid) checks again.
        let (other, _) = SigningKey::generate(Alg::ES256, 0).unwrap_or_else(|e| unreachable!("{e}"));
        let PublicJwk::Ec { x, y, .. } = &other.public else {
            unreachable!("an ES256 key")
        };
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": key.kid, "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)
        });
        let impostor =
            Arc::new(SigningKey::verify_only(Alg::ES256, &jwk.to_string()).unwrap_or_else(|e| unreachable!("{e}")));
        let find_impostor = |kid: &str| (kid == key.kid).then(|| impostor.clone());
        assert_eq!(
            verify_with(&token, find_impostor, &rules(900), Some(&cache)),
            Err(JwtError::BadSignature)
        );
        // Any change of the token is another digest: verified, refused.
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(verify_with(&tampered, find, &rules(900), Some(&cache)).is_err());
        // A token that failed is never remembered.
        assert!(verify_with(&tampered, find, &rules(900), Some(&cache)).is_err());
    }

    #[test]
    fn round_trip_and_expiry() {
        let (key, header) = setup();
        let token = encode(&key, &header, &claims(1000)).unwrap_or_default();
        let find = |kid: &str| (kid == key.kid).then(|| key.clone());
        assert_eq!(
            verify(&token, find, &rules(900)).map(|c| c["u"].clone()),
            Ok(Value::from("ann"))
        );
        assert_eq!(verify(&token, find, &rules(1006)), Err(JwtError::Expired));
        let lenient = Rules {
            check_exp: false,
            ..rules(5000)
        };
        assert!(verify(&token, find, &lenient).is_ok());
        let other_issuer = Rules {
            issuer: "other",
            ..rules(900)
        };
        assert_eq!(verify(&token, find, &other_issuer), Err(JwtError::Issuer));
    }

    #[test]
    fn tampering_and_hostile_headers_are_refused() {
        let (key, header) = setup();
        let token = encode(&key, &header, &claims(1000)).unwrap_or_default();
        let find = |kid: &str| (kid == key.kid).then(|| key.clone());
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"tessera","exp":1000,"u":"root"}"#);
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(verify(&forged, find, &rules(900)), Err(JwtError::BadSignature));
        for h in [
            serde_json::json!({"alg": "none", "kid": key.kid}),
            serde_json::json!({"alg": "HS256", "kid": key.kid}),
            serde_json::json!({"alg": "ES384", "kid": key.kid}),
            serde_json::json!({"alg": "ES256", "kid": key.kid, "jku": "https://evil.example/jwks"}),
            serde_json::json!({"alg": "ES256", "kid": key.kid, "jwk": {}}),
            serde_json::json!({"alg": "ES256", "kid": "someone-else"}),
            serde_json::json!({"alg": "ES256"}),
        ] {
            let hostile = format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(h.to_string()), parts[1], parts[2]);
            assert!(verify(&hostile, find, &rules(900)).is_err(), "{h}");
        }
        for garbage in ["", "a.b", "a.b.c.d", "!!.??.##", &token[..token.len() - 3]] {
            assert!(verify(garbage, find, &rules(900)).is_err(), "{garbage}");
        }
    }
}
