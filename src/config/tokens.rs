//! The `tokens` section: what tokens carry, how long they and their keys live.

use serde::{Deserialize, Serialize};

use super::{GoDuration, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TokensConfig {
    /// Stoke's families (`ECDSA`, `EdDSA`, `RSA`) or a JWS name (`ES256`, `PS256`, `RS256`, …).
    pub algorithm: String,
    /// With a family name: 256/384/512 picks the curve (ECDSA) or the hash (RSA, PSS padding).
    pub num_bits: u32,
    /// RSA modulus size: 2048, 3072 or 4096.
    pub rsa_key_bits: u32,
    /// The JWS algorithms the key ring keeps a key for (published, rotated on one schedule; OAuth clients
    /// choose among them). The configured `algorithm` is always one; empty means it plus RS256.
    pub algorithms: Vec<String>,
    pub persist_keys: bool,
    /// Encrypts private signing keys in the database (AES-256-GCM); at least 16 characters, better 32 random
    /// bytes in base64. Or `key_encryption_secret_file`: a file holding it (a container secret).
    pub key_encryption_secret: Secret,
    pub key_encryption_secret_file: String,
    pub key_duration: GoDuration,
    pub token_duration: GoDuration,
    pub issuer: String,
    pub subject: String,
    pub audience: Vec<String>,
    pub include_issued_at: bool,
    pub include_not_before: bool,
    /// How a user's token says how its session was authenticated (`amr`).
    pub amr_claim: AmrClaim,
    /// Most refreshes per session (refresh family); 0 means unlimited.
    pub token_refresh_limit: u32,
    /// Claim that carries the refresh count; empty means none is added.
    pub token_refresh_count_key: String,
    pub user_info: UserInfoConfig,
    /// A refresh token presented again within this time returns the same successor instead of revoking.
    pub refresh_reuse_grace: GoDuration,
    /// A session ends this long after login, however often it is refreshed.
    pub refresh_max_age: GoDuration,
    /// A session ends when it has not been refreshed for this long.
    pub refresh_idle_timeout: GoDuration,
}

/// The form of the `amr` claim (RFC 8176: an array such as `["pwd"]`, `["api_key"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmrClaim {
    /// A JSON array, as RFC 8176 has it.
    Array,
    /// The values joined by commas (`"pwd,otp"`), like every other multi-valued claim: Stoke's Go client
    /// library decodes every claim it does not know as a string and refuses a token with an array in one.
    String,
    /// No `amr` claim.
    Off,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig {
            algorithm: "ECDSA".into(),
            num_bits: 256,
            rsa_key_bits: 2048,
            algorithms: Vec::new(),
            persist_keys: true,
            key_encryption_secret: Secret::default(),
            key_encryption_secret_file: String::new(),
            key_duration: GoDuration::from_secs(3 * 3600),
            token_duration: GoDuration::from_secs(30 * 60),
            issuer: "tessera".into(),
            subject: String::new(),
            audience: Vec::new(),
            include_issued_at: true,
            include_not_before: false,
            amr_claim: AmrClaim::Array,
            token_refresh_limit: 0,
            token_refresh_count_key: String::new(),
            user_info: UserInfoConfig::default(),
            refresh_reuse_grace: GoDuration::from_secs(10),
            refresh_max_age: GoDuration::from_secs(30 * 24 * 3600),
            refresh_idle_timeout: GoDuration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Which token claim carries each piece of user information; empty leaves it out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UserInfoConfig {
    pub full_name: String,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl Default for UserInfoConfig {
    fn default() -> Self {
        UserInfoConfig {
            full_name: "n".into(),
            username: "u".into(),
            email: "e".into(),
            first_name: String::new(),
            last_name: String::new(),
        }
    }
}

impl TokensConfig {
    /// The JWS algorithm name the `algorithm`/`num_bits` pair selects.
    pub fn jws_algorithm(&self) -> Result<&'static str, String> {
        let alg = self.algorithm.as_str();
        let by_bits = |names: [&'static str; 3]| match self.num_bits {
            256 => Ok(names[0]),
            384 => Ok(names[1]),
            512 | 521 => Ok(names[2]),
            n => Err(format!("tokens.num_bits {n} is not one of 256, 384, 512 for {alg}")),
        };
        match alg.to_ascii_uppercase().as_str() {
            "ECDSA" | "EC" => by_bits(["ES256", "ES384", "ES512"]),
            "RSA" | "PSS" => by_bits(["PS256", "PS384", "PS512"]),
            "EDDSA" | "ED25519" => Ok("EdDSA"),
            "ES256" => Ok("ES256"),
            "ES384" => Ok("ES384"),
            "ES512" => Ok("ES512"),
            "PS256" => Ok("PS256"),
            "PS384" => Ok("PS384"),
            "PS512" => Ok("PS512"),
            "RS256" => Ok("RS256"),
            _ => Err(format!(
                "{alg:?} is not supported: use ECDSA, EdDSA or RSA (Stoke's names) or ES256, ES384, ES512, EdDSA, PS256, PS384, PS512, RS256"
            )),
        }
    }

    /// Every algorithm the key ring keeps a key for: the configured one first (Stoke's face signs with it),
    /// then `algorithms` (JWS names) in their order, or RS256 when `algorithms` is empty.
    pub fn signing_algorithms(&self) -> Result<Vec<&'static str>, String> {
        let mut out = vec![self.jws_algorithm()?];
        let listed: Vec<&str> = match self.algorithms.is_empty() {
            true => vec!["RS256"],
            false => self.algorithms.iter().map(String::as_str).collect(),
        };
        for name in listed {
            let known = JWS_NAMES.iter().find(|n| **n == name).ok_or_else(|| {
                format!(
                    "{name:?} is not a JWS algorithm Tessera signs with: use {}",
                    JWS_NAMES.join(", ")
                )
            })?;
            if !out.contains(known) {
                out.push(known);
            }
        }
        Ok(out)
    }
}

/// The JWS names of `tokens.algorithms`.
const JWS_NAMES: [&str; 8] = ["ES256", "ES384", "ES512", "EdDSA", "PS256", "PS384", "PS512", "RS256"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_map_to_jws_names() {
        let mut t = TokensConfig::default();
        assert_eq!(t.jws_algorithm(), Ok("ES256"));
        t.num_bits = 512;
        assert_eq!(t.jws_algorithm(), Ok("ES512"));
        t.algorithm = "RSA".into();
        assert_eq!(t.jws_algorithm(), Ok("PS512"));
        t.algorithm = "HS256".into();
        assert!(t.jws_algorithm().is_err());
    }

    #[test]
    fn the_ring_keeps_the_configured_algorithm_first_and_rs256_by_default() {
        let mut t = TokensConfig::default();
        assert_eq!(t.signing_algorithms(), Ok(vec!["ES256", "RS256"]));
        t.algorithm = "RS256".into();
        assert_eq!(t.signing_algorithms(), Ok(vec!["RS256"]));
        t.algorithm = "EdDSA".into();
        t.algorithms = vec!["PS256".into(), "EdDSA".into(), "PS256".into()];
        assert_eq!(t.signing_algorithms(), Ok(vec!["EdDSA", "PS256"]));
        t.algorithms = vec!["RSA".into()];
        assert!(matches!(t.signing_algorithms(), Err(e) if e.contains("\"RSA\" is not a JWS algorithm")));
        t.algorithms = vec!["HS256".into()];
        assert!(t.signing_algorithms().is_err());
    }
}
