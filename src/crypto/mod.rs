//! Cryptography: password hashing, signing keys, JWTs, sealing. Pure functions, no I/O.

pub mod jwt;
pub mod keys;
pub mod password;
pub mod seal;
pub mod stoke;

/// SHA-256 of `data` as lowercase hex: how opaque tokens and limit keys are stored.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
