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

/// Compares two byte strings in time that depends only on their lengths (`subtle`, whose optimisation barrier
/// keeps the compiler from turning the comparison back into an early exit). Every secret comparison calls this.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_is_equality() {
        assert!(super::constant_time_eq(b"", b""));
        assert!(super::constant_time_eq(b"digest", b"digest"));
        assert!(!super::constant_time_eq(b"digest", b"digesT"));
        assert!(!super::constant_time_eq(b"digest", b"diges"));
        assert!(!super::constant_time_eq(b"", b"x"));
    }
}
