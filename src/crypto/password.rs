//! Password hashes: argon2id PHC strings for everything Tessera writes, and Stoke's (hash, salt) pair for
//! users imported from Stoke, verified and then replaced by a PHC string at the next successful login.
//!
//! Every function takes the argon2 working memory as a parameter (`Memory`), so the hashing threads can keep
//! one buffer each for their whole life: no 19 MiB allocation per hash, and a resident size that stays at
//! threads × memory instead of growing with every thread the allocator ever handed such a block to.

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

use crate::config::PasswordHashConfig;

/// Stoke's fixed parameters: argon2id, t=2, m=19 MiB, p=1, 64-byte output.
const STOKE_M_KIB: u32 = 19 * 1024;
const STOKE_T: u32 = 2;
const STOKE_OUTPUT: usize = 64;
/// Length of the hashes Tessera writes.
const OUTPUT: usize = 32;

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

/// Reusable argon2 working memory; grows to the largest cost it has served.
#[derive(Default)]
pub struct Memory(Vec<Block>);

impl Memory {
    fn blocks(&mut self, params: &Params) -> &mut [Block] {
        let n = params.block_count();
        if self.0.len() < n {
            self.0.resize(n, Block::default());
        }
        &mut self.0[..n]
    }
}

/// Hashes and verifies passwords with the configured argon2id parameters.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
}

impl Hasher {
    pub fn new(cfg: &PasswordHashConfig) -> Result<Self, PasswordError> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, Some(OUTPUT))
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Hasher { params })
    }

    /// A new PHC string for `password`, with a random 16-byte salt.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        self.hash_in(password, &mut Memory::default())
    }

    /// Like [`Hasher::hash`], in the given working memory.
    pub fn hash_in(&self, password: &str, memory: &mut Memory) -> Result<String, PasswordError> {
        let salt: [u8; 16] = rand::random();
        let mut out = [0u8; OUTPUT];
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
            .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory.blocks(&self.params))
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        Ok(self.phc(&salt, &out))
    }

    fn phc(&self, salt: &[u8], hash: &[u8]) -> String {
        let p = &self.params;
        format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            p.m_cost(),
            p.t_cost(),
            p.p_cost(),
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(hash)
        )
    }

    /// A well-formed PHC string with the configured parameters that no password matches: checking a
    /// password against it costs exactly what a real check costs (for users that do not exist).
    pub fn decoy(&self) -> String {
        self.phc(&rand::random::<[u8; 16]>(), &rand::random::<[u8; OUTPUT]>())
    }

    /// Checks `password` against `stored`. A malformed stored hash never matches.
    pub fn verify(&self, password: &str, stored: Stored<'_>) -> Verdict {
        self.verify_in(password, stored, &mut Memory::default())
    }

    /// Like [`Hasher::verify`], in the given working memory.
    pub fn verify_in(&self, password: &str, stored: Stored<'_>, memory: &mut Memory) -> Verdict {
        match stored {
            Stored::Phc(phc) => {
                let Some((algorithm, params, right)) = verify_phc(password, phc, memory) else {
                    return Verdict::Wrong;
                };
                if !right {
                    return Verdict::Wrong;
                }
                let current = algorithm == Algorithm::Argon2id
                    && params.m_cost() == self.params.m_cost()
                    && params.t_cost() == self.params.t_cost()
                    && params.p_cost() == self.params.p_cost();
                if current {
                    Verdict::Right
                } else {
                    Verdict::RightNeedsRehash
                }
            }
            Stored::Stoke { hash, salt } => {
                if verify_stoke(password, hash, salt, memory) {
                    Verdict::RightNeedsRehash
                } else {
                    Verdict::Wrong
                }
            }
        }
    }
}

/// Recomputes a PHC hash with its own parameters; `None` when the string is not a usable argon2 PHC.
fn verify_phc(password: &str, phc: &str, memory: &mut Memory) -> Option<(Algorithm, Params, bool)> {
    let parsed = PasswordHash::new(phc).ok()?;
    let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from).ok()?;
    let expected = parsed.hash?;
    let mut salt = [0u8; 64];
    let salt = parsed.salt?.decode_b64(&mut salt).ok()?;
    let decoded = Params::try_from(&parsed).ok()?;
    let params = Params::new(
        decoded.m_cost(),
        decoded.t_cost(),
        decoded.p_cost(),
        Some(expected.len()),
    )
    .ok()?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, memory.blocks(&params))
        .ok()?;
    Some((algorithm, params, super::constant_time_eq(&out, expected.as_bytes())))
}

/// Stoke's own check: `base64(argon2id(password, salt_string_bytes, t=2, m=19456, p=1, 64))`.
fn verify_stoke(password: &str, hash_b64: &str, salt: &str, memory: &mut Memory) -> bool {
    let Ok(expected) = STANDARD.decode(hash_b64.trim()) else {
        return false;
    };
    let Ok(params) = Params::new(STOKE_M_KIB, STOKE_T, 1, Some(STOKE_OUTPUT)) else {
        return false;
    };
    let mut out = [0u8; STOKE_OUTPUT];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt.as_bytes(), &mut out, memory.blocks(&params))
        .is_err()
    {
        return false;
    }
    super::constant_time_eq(&out, &expected)
}

/// Why a stored Stoke (hash, salt) pair can never verify, if it cannot: the hash must be the standard base64 of
/// Stoke's 64-byte output, and the salt (its ASCII bytes are argon2's salt) at least 8 bytes long.
pub fn stoke_pair_problem(hash: &str, salt: &str) -> Option<String> {
    match STANDARD.decode(hash.trim()) {
        Ok(bytes) if bytes.len() == STOKE_OUTPUT => {}
        Ok(bytes) => {
            return Some(format!(
                "the hash is {} bytes long, Stoke's are {STOKE_OUTPUT}",
                bytes.len()
            ));
        }
        Err(_) => return Some("the hash is not base64".into()),
    }
    if salt.len() < 8 {
        return Some("the salt is missing or shorter than 8 bytes".into());
    }
    None
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
        let mut memory = Memory::default();
        let phc = h.hash_in("s3cret", &mut memory).unwrap_or_default();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert_eq!(h.verify_in("s3cret", Stored::Phc(&phc), &mut memory), Verdict::Right);
        assert_eq!(h.verify_in("nope", Stored::Phc(&phc), &mut memory), Verdict::Wrong);
        let stronger = Hasher::new(&PasswordHashConfig {
            memory_kib: 128,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            stronger.verify_in("s3cret", Stored::Phc(&phc), &mut memory),
            Verdict::RightNeedsRehash
        );
        assert_eq!(h.verify("x", Stored::Phc("$argon2id$garbage")), Verdict::Wrong);
        assert_eq!(h.verify("x", Stored::Phc(&h.decoy())), Verdict::Wrong);
    }

    #[test]
    fn reads_phc_strings_of_the_reference_implementation() {
        // Made by the argon2 crate's own PasswordHasher, as other tools write them.
        let h = small();
        let reference = {
            use argon2::password_hash::{PasswordHasher as _, SaltString};
            let salt = SaltString::encode_b64(b"somesalt").unwrap_or_else(|e| unreachable!("{e}"));
            Argon2::new(Algorithm::Argon2id, Version::V0x13, h.params.clone())
                .hash_password(b"password", &salt)
                .map(|p| p.to_string())
                .unwrap_or_default()
        };
        assert_eq!(h.verify("password", Stored::Phc(&reference)), Verdict::Right);
    }

    #[test]
    fn malformed_stoke_pairs_are_named() {
        let (hash, salt) = stoke_pair("pw").unwrap_or_default();
        assert_eq!(stoke_pair_problem(&hash, &salt), None);
        assert!(stoke_pair_problem("not base64!", &salt).is_some());
        assert!(stoke_pair_problem(&STANDARD.encode([1u8; 32]), &salt).is_some());
        assert!(stoke_pair_problem(&hash, "short").is_some());
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
