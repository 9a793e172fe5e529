//! Password hashes: argon2id PHC strings for everything Tessera writes, and Stoke's (hash, salt) pair for
//! users imported from Stoke, verified and then replaced by a PHC string at the next successful login.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::config::PasswordHashConfig;

/// Stoke's fixed parameters: argon2id, t=2, m=19 MiB, p=1, 64-byte output.
const STOKE_M_KIB: u32 = 19 * 1024;
const STOKE_T: u32 = 2;
const STOKE_OUTPUT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Wrong,
    /// Right, and the stored hash is current.
    Right,
    /// Right, but stored in Stoke's format or with other parameters: store a fresh hash.
    RightNeedsRehash,
}

/// How a stored password is written.
#[derive(Debug, Clone, Copy)]
pub enum Stored<'a> {
    /// An argon2 PHC string (`$argon2id$v=19$m=…`).
    Phc(&'a str),
    /// Stoke's pair: base64 of a 64-byte argon2id output, and the salt string whose ASCII bytes were the salt.
    Stoke { hash: &'a str, salt: &'a str },
}

impl<'a> Stored<'a> {
    /// Reads the columns of a user row; `None` when the user has no local password.
    pub fn from_columns(hash: Option<&'a str>, salt: Option<&'a str>) -> Option<Self> {
        match (hash, salt) {
            (Some(h), _) if h.starts_with('$') => Some(Stored::Phc(h)),
            (Some(h), Some(s)) if !h.is_empty() && !s.is_empty() => Some(Stored::Stoke { hash: h, salt: s }),
            _ => None,
        }
    }
}

/// Hashes and verifies passwords with the configured argon2id parameters.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
}

impl Hasher {
    pub fn new(cfg: &PasswordHashConfig) -> Result<Self, PasswordError> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Hasher { params })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// A new PHC string for `password`, with a random 16-byte salt.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let salt_bytes: [u8; 16] = rand::random();
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| PasswordError::Hash(e.to_string()))?;
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    /// Checks `password` against `stored`. A malformed stored hash never matches.
    pub fn verify(&self, password: &str, stored: Stored<'_>) -> Verdict {
        match stored {
            Stored::Phc(phc) => {
                let Ok(parsed) = PasswordHash::new(phc) else {
                    return Verdict::Wrong;
                };
                // The PHC string carries its own parameters; Argon2::default() reads them from it.
                if Argon2::default().verify_password(password.as_bytes(), &parsed).is_err() {
                    return Verdict::Wrong;
                }
                let current = Params::try_from(&parsed)
                    .map(|p| {
                        p.m_cost() == self.params.m_cost()
                            && p.t_cost() == self.params.t_cost()
                            && p.p_cost() == self.params.p_cost()
                    })
                    .unwrap_or(false);
                if parsed.algorithm.as_str() == "argon2id" && current {
                    Verdict::Right
                } else {
                    Verdict::RightNeedsRehash
                }
            }
            Stored::Stoke { hash, salt } => {
                if verify_stoke(password, hash, salt) {
                    Verdict::RightNeedsRehash
                } else {
                    Verdict::Wrong
                }
            }
        }
    }
}

/// Stoke's own check: `base64(argon2id(password, salt_string_bytes, t=2, m=19456, p=1, 64))`.
fn verify_stoke(password: &str, hash_b64: &str, salt: &str) -> bool {
    let Ok(expected) = STANDARD.decode(hash_b64.trim()) else {
        return false;
    };
    let Ok(params) = Params::new(STOKE_M_KIB, STOKE_T, 1, Some(STOKE_OUTPUT)) else {
        return false;
    };
    let mut out = [0u8; STOKE_OUTPUT];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    if argon
        .hash_password_into(password.as_bytes(), salt.as_bytes(), &mut out)
        .is_err()
    {
        return false;
    }
    super::constant_time_eq(&out, &expected)
}

/// Stoke's (hash, salt) pair for `password`, for dbinit files that Stoke must read too.
pub fn stoke_pair(password: &str) -> Result<(String, String), PasswordError> {
    let salt = STANDARD.encode(rand::random::<[u8; 32]>());
    let params =
        Params::new(STOKE_M_KIB, STOKE_T, 1, Some(STOKE_OUTPUT)).map_err(|e| PasswordError::Params(e.to_string()))?;
    let mut out = [0u8; STOKE_OUTPUT];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), salt.as_bytes(), &mut out)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok((STANDARD.encode(out), salt))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Hasher {
        Hasher::new(&PasswordHashConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    #[test]
    fn stoke_readme_hashes_verify() {
        let tester = Stored::Stoke {
            hash: "+OnrEsjkbdXdXugEKwDLGdqlDnMNV9+WyZ6T9wAtSMzp3jKYY+7pLYxoBlMlmWBOXlC9bviWtS9mw0fa4B6gkA==",
            salt: "H3UP6GzWV3UISU7HJN/sVT6YjTYcmOPdJwiFcdXMVyQ=",
        };
        let stoke = Stored::Stoke {
            hash: "LY/qY1w8fE69kKL+2QCRv4YO8azlXaZtRFAKQz3yQd3QAdqjmyA+COUO2nZwrAvlTltXEAVqpbFYh1ptYRG9uQ==",
            salt: "y+hEP0tTMKmETwcJvDASwSoTKtJtA8Z6hDwp7rfLlUE=",
        };
        let h = small();
        assert_eq!(h.verify("tester", tester), Verdict::RightNeedsRehash);
        assert_eq!(h.verify("admin", stoke), Verdict::RightNeedsRehash);
        assert_eq!(h.verify("wrong", tester), Verdict::Wrong);
    }

    #[test]
    fn phc_round_trip_and_rehash_on_parameter_change() {
        let h = small();
        let phc = h.hash("s3cret").unwrap_or_default();
        assert!(phc.starts_with("$argon2id$"));
        assert_eq!(h.verify("s3cret", Stored::Phc(&phc)), Verdict::Right);
        assert_eq!(h.verify("nope", Stored::Phc(&phc)), Verdict::Wrong);
        let stronger = Hasher::new(&PasswordHashConfig {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(stronger.verify("s3cret", Stored::Phc(&phc)), Verdict::RightNeedsRehash);
        assert_eq!(h.verify("x", Stored::Phc("$argon2id$garbage")), Verdict::Wrong);
    }

    #[test]
    fn stoke_pair_verifies() {
        let (hash, salt) = stoke_pair("pw").unwrap_or_default();
        assert_eq!(
            small().verify(
                "pw",
                Stored::Stoke {
                    hash: &hash,
                    salt: &salt
                }
            ),
            Verdict::RightNeedsRehash
        );
    }
}
