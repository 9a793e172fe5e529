//! Cryptography: password hashing now; signing keys and JWTs join later. Pure functions, no I/O.

pub mod jwt;
pub mod keys;
pub mod password;
pub mod seal;

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
