//! AES-256-GCM sealing, for two secrets the database must not hold in the clear:
//! - a refresh successor, under a key derived from the old refresh token, which the database never stores:
//!   only a client presenting the old token during the reuse grace can open it;
//! - private keys (signing keys, the key of encrypted forms), under the key-encryption key
//!   ([`KeyEncryption`]), bound to their row.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
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

/// The first form of an encrypted private key: `enc:v1:` then [`seal_with`]'s output, under one SHA-256 of
/// the secret ([`derive`]), with the kid as associated data. Still opened; re-wrapped to v2 at the next start.
const WRAPPED_V1: &str = "enc:v1:";
/// The current form: `enc:v2:` then [`seal_with`]'s output, under an HKDF-SHA256 key, with the table and the
/// row's id as associated data ([`Row::aad`]).
const WRAPPED_V2: &str = "enc:v2:";

const HKDF_SALT: &[u8] = b"tessera/key-encryption-key/v2";
const HKDF_INFO: &[u8] = b"tessera/private-key-at-rest/aes-256-gcm";

/// The AES-256-GCM key of the v2 form: HKDF-SHA256 (RFC 5869) of the secret, with a fixed salt and info.
fn derive_v2(secret: &[u8]) -> Option<LessSafeKey> {
    let prk = Salt::new(HKDF_SHA256, HKDF_SALT).extract(secret);
    let info = [HKDF_INFO];
    let okm = prk.expand(&info, &AES_256_GCM).ok()?;
    Some(LessSafeKey::new(UnboundKey::from(okm)))
}

/// Which stored row a private key belongs to; bound into its ciphertext, so a ciphertext copied into
/// another row (or another table) does not open.
#[derive(Debug, Clone, Copy)]
pub enum Row<'a> {
    /// A `signing_keys` row, by kid.
    SigningKey(&'a str),
    /// A `form_keys` row (the key of encrypted forms), by id.
    FormKey(&'a str),
}

impl Row<'_> {
    fn aad(&self) -> Vec<u8> {
        let (table, id) = match self {
            Row::SigningKey(kid) => ("signing_keys", *kid),
            Row::FormKey(id) => ("form_keys", *id),
        };
        [table.as_bytes(), &b"\0"[..], id.as_bytes()].concat()
    }

    /// The v1 form existed for signing keys only.
    fn v1_aad(&self) -> Option<&[u8]> {
        match self {
            Row::SigningKey(kid) => Some(kid.as_bytes()),
            Row::FormKey(_) => None,
        }
    }
}

/// What a stored private key turned out to be.
#[derive(PartialEq, Eq)]
pub enum Opened {
    /// Base64 PKCS#8 in the clear: to be encrypted.
    Plain,
    /// Opened, and already in the current form under the current key.
    Current(Vec<u8>),
    /// Opened, but in the v1 form or under an older key: to be re-wrapped.
    Stale(Vec<u8>),
    /// Encrypted, and none of the known keys opens it (another secret, another row, tampering).
    Sealed,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Opened::Plain => "Plain",
            Opened::Current(_) => "Current([redacted])",
            Opened::Stale(_) => "Stale([redacted])",
            Opened::Sealed => "Sealed",
        })
    }
}

/// Encryption of private keys at rest under the key-encryption key (KEK): `tokens.key_encryption_secret`
/// (or its file), or the KEK file beside a SQLite database. Wraps with the current secret; opens with it or
/// with an older one (the v1 derivation, or a KEK file being replaced by a configured secret).
pub struct KeyEncryption {
    current: LessSafeKey,
    /// v2 keys of older secrets, for opening only.
    older: Vec<LessSafeKey>,
    /// v1 keys of every known secret (current first), for opening only.
    v1: Vec<LessSafeKey>,
}

impl std::fmt::Debug for KeyEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryption([redacted])")
    }
}

impl KeyEncryption {
    pub fn new(secret: &str) -> Option<Self> {
        Some(KeyEncryption {
            current: derive_v2(secret.as_bytes())?,
            older: Vec::new(),
            v1: vec![derive_v1(secret)?],
        })
    }

    /// Also opens (never wraps) what `secret` encrypted.
    pub fn also_opening(mut self, secret: &str) -> Option<Self> {
        self.older.push(derive_v2(secret.as_bytes())?);
        self.v1.push(derive_v1(secret)?);
        Some(self)
    }

    /// The stored form of a private key (PKCS#8 DER) of `row`.
    pub fn wrap(&self, row: Row<'_>, der: &[u8]) -> Option<String> {
        Some(format!("{WRAPPED_V2}{}", seal_with(&self.current, &row.aad(), der)?))
    }

    /// Opens a stored private key of `row`, saying whether it needs to be written again.
    pub fn open(&self, row: Row<'_>, stored: &str) -> Opened {
        if let Some(body) = stored.strip_prefix(WRAPPED_V2) {
            let aad = row.aad();
            if let Some(der) = open_with(&self.current, &aad, body) {
                return Opened::Current(der);
            }
            return match self.older.iter().find_map(|k| open_with(k, &aad, body)) {
                Some(der) => Opened::Stale(der),
                None => Opened::Sealed,
            };
        }
        if let Some(body) = stored.strip_prefix(WRAPPED_V1) {
            let opened = row
                .v1_aad()
                .and_then(|aad| self.v1.iter().find_map(|k| open_with(k, aad, body)));
            return opened.map_or(Opened::Sealed, Opened::Stale);
        }
        if is_wrapped(stored) {
            // A form of a later version.
            return Opened::Sealed;
        }
        Opened::Plain
    }
}

/// The v1 key: one SHA-256 of a context and the secret.
fn derive_v1(secret: &str) -> Option<LessSafeKey> {
    derive(b"tessera/signing-key-at-rest/v1\0", secret.as_bytes())
}

/// Whether a stored private key is encrypted, in any form (else it is plain base64 PKCS#8).
pub fn is_wrapped(stored: &str) -> bool {
    stored.starts_with("enc:")
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

    use super::{KeyEncryption, Opened, Row};

    const KID: Row<'static> = Row::SigningKey("kid-1");

    #[test]
    fn wrapped_keys_open_only_with_their_secret_and_row() {
        let Some(enc) = KeyEncryption::new("a secret of some length") else {
            return;
        };
        let stored = enc.wrap(KID, b"der bytes").unwrap_or_default();
        assert!(stored.starts_with("enc:v2:") && super::is_wrapped(&stored));
        assert_eq!(enc.open(KID, &stored), Opened::Current(b"der bytes".to_vec()));
        assert_eq!(enc.open(Row::SigningKey("kid-2"), &stored), Opened::Sealed);
        // The same id in another table is another row.
        assert_eq!(enc.open(Row::FormKey("kid-1"), &stored), Opened::Sealed);
        let other = KeyEncryption::new("another secret").map(|o| o.open(KID, &stored));
        assert_eq!(other, Some(Opened::Sealed));
        assert_eq!(enc.open(KID, "plain-base64"), Opened::Plain);
        assert_eq!(enc.open(KID, "enc:v9:whatever"), Opened::Sealed);
        let truncated = &stored[..stored.len() - 4];
        assert_eq!(enc.open(KID, truncated), Opened::Sealed);
    }

    /// What the v1 code stored: one SHA-256 of the context and the secret, the kid as associated data.
    fn v1_wrap(secret: &str, kid: &str, der: &[u8]) -> String {
        let key = super::derive(b"tessera/signing-key-at-rest/v1\0", secret.as_bytes());
        format!(
            "enc:v1:{}",
            key.and_then(|k| super::seal_with(&k, kid.as_bytes(), der))
                .unwrap_or_default()
        )
    }

    #[test]
    fn v1_keys_open_as_stale_and_v2_differs_from_v1() {
        let Some(enc) = KeyEncryption::new("a secret of some length") else {
            return;
        };
        let v1 = v1_wrap("a secret of some length", "kid-1", b"der");
        assert_eq!(enc.open(KID, &v1), Opened::Stale(b"der".to_vec()));
        assert_eq!(enc.open(Row::SigningKey("kid-2"), &v1), Opened::Sealed);
        // The form key never had a v1 form.
        assert_eq!(enc.open(Row::FormKey("kid-1"), &v1), Opened::Sealed);
        // A v1 body under a v2 prefix does not open: the derivations differ.
        let relabelled = v1.replacen("enc:v1:", "enc:v2:", 1);
        assert_eq!(enc.open(KID, &relabelled), Opened::Sealed);
    }

    #[test]
    fn older_secrets_open_but_never_wrap() {
        let (Some(old), Some(new)) = (
            KeyEncryption::new("the old secret, long enough"),
            KeyEncryption::new("the new secret, long enough")
                .and_then(|n| n.also_opening("the old secret, long enough")),
        ) else {
            return;
        };
        let stored = old.wrap(KID, b"der").unwrap_or_default();
        assert_eq!(new.open(KID, &stored), Opened::Stale(b"der".to_vec()));
        let rewrapped = new.wrap(KID, b"der").unwrap_or_default();
        assert_eq!(old.open(KID, &rewrapped), Opened::Sealed);
        assert_eq!(new.open(KID, &rewrapped), Opened::Current(b"der".to_vec()));
    }
}
