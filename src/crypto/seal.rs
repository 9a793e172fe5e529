//! Sealing a refresh successor under the token it replaces: AES-256-GCM with a key derived from the old
//! refresh token, which the database never stores. Only a client presenting the old token during the reuse
//! grace can open it; a database reader cannot.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

fn key_for(token: &str) -> Option<LessSafeKey> {
    let mut h = Sha256::new();
    h.update(b"tessera/refresh-successor/v1\0");
    h.update(token.as_bytes());
    UnboundKey::new(&AES_256_GCM, &h.finalize()).ok().map(LessSafeKey::new)
}

/// Encrypts `plain` under `token`; base64 of nonce ‖ ciphertext ‖ tag.
pub fn seal(token: &str, plain: &[u8]) -> Option<String> {
    let key = key_for(token)?;
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::empty(), &mut buf)
        .ok()?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&buf);
    Some(STANDARD.encode(out))
}

/// Decrypts what [`seal`] made with the same `token`.
pub fn open(token: &str, sealed: &str) -> Option<Vec<u8>> {
    let key = key_for(token)?;
    let data = STANDARD.decode(sealed).ok()?;
    if data.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = data.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = body.to_vec();
    let plain = key.open_in_place(nonce, Aad::empty(), &mut buf).ok()?;
    Some(plain.to_vec())
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
}
