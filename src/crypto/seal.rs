//! AES-256-GCM sealing, for two secrets the database must not hold in the clear:
//! - a refresh successor, under a key derived from the old refresh token, which the database never stores:
//!   only a client presenting the old token during the reuse grace can open it;
//! - private signing keys, under `tokens.key_encryption_secret` ([`KeyEncryption`]), bound to their kid.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// An AES-256 key derived from `secret` for one purpose (`context`), so one secret never serves two.
fn derive(context: &[u8], secret: &[u8]) -> Option<LessSafeKey> {
    let mut h = Sha256::new();
    h.update(context);
    h.update(secret);
    UnboundKey::new(&AES_256_GCM, &h.finalize()).ok().map(LessSafeKey::new)
}

/// base64 of nonce ‖ ciphertext ‖ tag.
fn seal_with(key: &LessSafeKey, aad: &[u8], plain: &[u8]) -> Option<String> {
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(aad), &mut buf)
        .ok()?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&buf);
    Some(STANDARD.encode(out))
}

fn open_with(key: &LessSafeKey, aad: &[u8], sealed: &str) -> Option<Vec<u8>> {
    let data = STANDARD.decode(sealed).ok()?;
    if data.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = data.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = body.to_vec();
    let plain = key.open_in_place(nonce, Aad::from(aad), &mut buf).ok()?;
    Some(plain.to_vec())
}

const SUCCESSOR: &[u8] = b"tessera/refresh-successor/v1\0";

/// Encrypts `plain` under `token`.
pub fn seal(token: &str, plain: &[u8]) -> Option<String> {
    seal_with(&derive(SUCCESSOR, token.as_bytes())?, &[], plain)
}

/// Decrypts what [`seal`] made with the same `token`.
pub fn open(token: &str, sealed: &str) -> Option<Vec<u8>> {
    open_with(&derive(SUCCESSOR, token.as_bytes())?, &[], sealed)
}

/// How a stored private key says it is encrypted: `enc:v1:` then [`seal_with`]'s output.
const WRAPPED: &str = "enc:v1:";

/// Encryption of private signing keys at rest, under the operator's key-encryption secret. The kid is the
/// associated data, so a ciphertext moved to another key's row does not open.
pub struct KeyEncryption(LessSafeKey);

impl std::fmt::Debug for KeyEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryption([redacted])")
    }
}

impl KeyEncryption {
    pub fn new(secret: &str) -> Option<Self> {
        derive(b"tessera/signing-key-at-rest/v1\0", secret.as_bytes()).map(KeyEncryption)
    }

    /// The stored form of a private key (PKCS#8 DER).
    pub fn wrap(&self, kid: &str, der: &[u8]) -> Option<String> {
        Some(format!("{WRAPPED}{}", seal_with(&self.0, kid.as_bytes(), der)?))
    }

    /// The DER of a stored key: `None` when it does not open (another secret, another row, tampering).
    pub fn unwrap(&self, kid: &str, stored: &str) -> Option<Vec<u8>> {
        open_with(&self.0, kid.as_bytes(), stored.strip_prefix(WRAPPED)?)
    }
}

/// Whether a stored private key is encrypted (else it is plain base64 PKCS#8).
pub fn is_wrapped(stored: &str) -> bool {
    stored.starts_with(WRAPPED)
}

#[cfg(test)]
mod tests {
    #[test]
    fn opens_only_with_the_same_token() {
        let sealed = super::seal("old-token", b"secret pair").unwrap_or_default();
        assert_eq!(super::open("old-token", &sealed).as_deref(), Some(&b"secret pair"[..]));
        assert_eq!(super::open("other-token", &sealed), None);
        assert_eq!(super::open("old-token", "garbage"), None);
    }

    #[test]
    fn wrapped_keys_open_only_with_their_secret_and_kid() {
        let Some(enc) = super::KeyEncryption::new("a secret of some length") else {
            return;
        };
        let stored = enc.wrap("kid-1", b"der bytes").unwrap_or_default();
        assert!(super::is_wrapped(&stored));
        assert_eq!(enc.unwrap("kid-1", &stored).as_deref(), Some(&b"der bytes"[..]));
        assert_eq!(enc.unwrap("kid-2", &stored), None);
        let other = super::KeyEncryption::new("another secret");
        assert_eq!(other.and_then(|o| o.unwrap("kid-1", &stored)), None);
        assert_eq!(enc.unwrap("kid-1", "plain-base64"), None);
    }
}
