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

/// The key [`seal`] derives from a refresh token.
fn successor_key(token: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(SUCCESSOR);
    h.update(token.as_bytes());
    h.finalize().into()
}

fn aes_key(bytes: &[u8; 32]) -> Option<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, bytes).ok().map(LessSafeKey::new)
}

/// nonce ‖ ciphertext ‖ tag.
fn seal_raw(key: &LessSafeKey, plain: &[u8]) -> Option<Vec<u8>> {
    let nonce_bytes: [u8; NONCE_LEN] = rand::random();
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::empty(), &mut buf)
        .ok()?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&buf);
    Some(out)
}

fn open_raw(key: &LessSafeKey, data: &[u8]) -> Option<Vec<u8>> {
    if data.len() < NONCE_LEN {
        return None;
    }
    let (nonce, body) = data.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = body.to_vec();
    let plain = key.open_in_place(nonce, Aad::empty(), &mut buf).ok()?;
    Some(plain.to_vec())
}

/// The reuse grace of a refresh family, as one binary column: its current pair, sealed under a key derived from
/// the current refresh token, and for each of the last few tokens used within the grace a wrap of the next
/// token's key under its own. A client presenting any of those tokens (two tabs racing, a replica behind) walks
/// the wraps to the current key and gets the current pair back, as it would have by replaying each successor in
/// turn; the database alone opens nothing, since every key comes from a token it never stores.
///
/// Layout: version (1), count, then per wrap the time its token was used (i64 big-endian) and the wrap (nonce ‖
/// 32-byte key ‖ tag), oldest first, the newest wrap being the one of the token just before the current one;
/// then the sealed pair.
pub mod grace {
    use super::{NONCE_LEN, aes_key, open_raw, seal_raw, successor_key};

    const VERSION: u8 = 1;
    const WRAP_LEN: usize = NONCE_LEN + 32 + 16;
    const ENTRY_LEN: usize = 8 + WRAP_LEN;

    /// A wrap: when its token was used, and the next token's key sealed under that token's.
    type Wrap<'a> = (i64, &'a [u8]);

    /// The wraps of `blob`, oldest first, and the sealed pair.
    fn parse(blob: &[u8]) -> Option<(Vec<Wrap<'_>>, &[u8])> {
        let (&version, rest) = blob.split_first()?;
        let (&count, mut rest) = rest.split_first()?;
        if version != VERSION {
            return None;
        }
        let mut wraps = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            if rest.len() < ENTRY_LEN {
                return None;
            }
            let (entry, tail) = rest.split_at(ENTRY_LEN);
            let (at, wrap) = entry.split_at(8);
            wraps.push((i64::from_be_bytes(at.try_into().ok()?), wrap));
            rest = tail;
        }
        Some((wraps, rest))
    }

    /// The grace after `presented` was used at `now` and replaced by `next`, whose pair is `plain`: the wraps of
    /// `previous` used at or after `since` (at most `max - 1` of them, the newest), then the wrap of
    /// `presented`.
    pub fn rotate(
        previous: Option<&[u8]>,
        presented: &str,
        next: &str,
        plain: &[u8],
        (now, since, max): (i64, i64, usize),
    ) -> Option<Vec<u8>> {
        let kept: Vec<Wrap<'_>> = match previous.and_then(parse) {
            Some((wraps, _)) => {
                let recent: Vec<_> = wraps.into_iter().filter(|(at, _)| *at >= since).collect();
                let skip = recent.len().saturating_sub(max.saturating_sub(1));
                recent.into_iter().skip(skip).collect()
            }
            None => Vec::new(),
        };
        let next_key = successor_key(next);
        let wrap = seal_raw(&aes_key(&successor_key(presented))?, &next_key)?;
        let sealed = seal_raw(&aes_key(&next_key)?, plain)?;
        let count = u8::try_from(kept.len() + 1).ok()?;
        let mut out = Vec::with_capacity(2 + usize::from(count) * ENTRY_LEN + sealed.len());
        out.extend_from_slice(&[VERSION, count]);
        for (at, w) in &kept {
            out.extend_from_slice(&at.to_be_bytes());
            out.extend_from_slice(w);
        }
        out.extend_from_slice(&now.to_be_bytes());
        out.extend_from_slice(&wrap);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    /// The current pair, for `presented`, the token `back` generations before the current one (1: the one just
    /// before), if it was used at or after `since` and its wrap is still kept.
    pub fn open(blob: &[u8], presented: &str, back: usize, since: i64) -> Option<Vec<u8>> {
        let (wraps, sealed) = parse(blob)?;
        let first = wraps.len().checked_sub(back)?;
        if wraps.get(first)?.0 < since {
            return None;
        }
        let mut key = successor_key(presented);
        for (_, wrap) in &wraps[first..] {
            key = open_raw(&aes_key(&key)?, wrap)?.try_into().ok()?;
        }
        open_raw(&aes_key(&key)?, sealed)
    }
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
    /// A `totp_factors` row (a TOTP secret), by user id.
    TotpSecret(&'a str),
}

impl Row<'_> {
    fn aad(&self) -> Vec<u8> {
        let (table, id) = match self {
            Row::SigningKey(kid) => ("signing_keys", *kid),
            Row::FormKey(id) => ("form_keys", *id),
            Row::TotpSecret(id) => ("totp_factors", *id),
        };
        [table.as_bytes(), &b"\0"[..], id.as_bytes()].concat()
    }

    /// The v1 form existed for signing keys only.
    fn v1_aad(&self) -> Option<&[u8]> {
        match self {
            Row::SigningKey(kid) => Some(kid.as_bytes()),
            Row::FormKey(_) | Row::TotpSecret(_) => None,
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod grace_tests {
    use super::grace;

    /// Tokens t0..t5 used one after another: each recent one reaches the current pair, none other does.
    #[test]
    fn recent_tokens_walk_to_the_current_pair() {
        let tokens: Vec<String> = (0..6).map(|i| format!("token-{i}")).collect();
        let mut blob: Option<Vec<u8>> = None;
        for i in 0..5 {
            let plain = format!("pair-{}", i + 1);
            let at = 100 + i as i64;
            blob = grace::rotate(
                blob.as_deref(),
                &tokens[i],
                &tokens[i + 1],
                plain.as_bytes(),
                (at, at - 10, 4),
            );
        }
        let blob = blob.unwrap();
        // The current token is t5; t4 is 1 back, t1 is 4 back (the oldest of four kept wraps), t0 is dropped.
        for back in 1..=4 {
            let opened = grace::open(&blob, &tokens[5 - back], back, 0).unwrap();
            assert_eq!(opened, b"pair-5", "{back} back");
        }
        assert_eq!(grace::open(&blob, &tokens[0], 5, 0), None, "beyond the kept wraps");
        assert_eq!(grace::open(&blob, &tokens[3], 1, 0), None, "a token at the wrong place");
        assert_eq!(grace::open(&blob, "forged", 1, 0), None);
        // t2 was used at 102: outside a grace that starts at 103.
        assert_eq!(grace::open(&blob, &tokens[2], 3, 103), None);
        assert!(grace::open(&blob, &tokens[3], 2, 103).is_some());
        assert_eq!(
            grace::open(&blob[..blob.len() - 1], &tokens[4], 1, 0),
            None,
            "truncated"
        );
    }

    /// Wraps used before the grace began are dropped at the next rotation.
    #[test]
    fn old_wraps_are_dropped() {
        let a = grace::rotate(None, "t0", "t1", b"p1", (100, 90, 4)).unwrap();
        let b = grace::rotate(Some(&a), "t1", "t2", b"p2", (200, 190, 4)).unwrap();
        assert_eq!(grace::open(&b, "t0", 2, 0), None);
        assert_eq!(grace::open(&b, "t1", 1, 0).unwrap(), b"p2");
        assert!(b.len() < a.len() + 2, "one wrap, not two");
    }
}
