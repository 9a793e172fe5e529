//! TokTok's optional encrypted forms (`registration.rsa_encryption`, off by default): clients fetch an RSA
//! public key (`GET /api/public_key`) and send login and register bodies as
//! `{"encrypted": base64(RSA-OAEP-SHA256(json body))}`. This hides the body from nothing that TLS does not
//! already hide it from; TLS is the real protection. One RSA-2048 key, kept in the database so every replica
//! decrypts what any replica's key encrypted, under the key-encryption key ([`crate::services::at_rest`]) with
//! its id as associated data. A 2048-bit key takes at most 190 bytes of plaintext.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::crypto::seal::Row;
use crate::db::accounts as accounts_db;
use crate::db::{DbConn, DbError};
use crate::services::at_rest::Kek;

const KEY_ID: &str = "rsa-oaep-256";

/// The decrypting key and its public form.
pub struct FormKey {
    key: OaepPrivateDecryptingKey,
    /// base64url SHA-256 of the public key (SPKI DER).
    pub kid: String,
    /// The public key as PEM (SubjectPublicKeyInfo), what WebCrypto's `importKey("spki")` and JSEncrypt read.
    pub pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FormKeyError {
    #[error("encrypted forms key: {0}")]
    Key(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl FormKey {
    /// Reads the shared key, creating it when this is the first replica to need it.
    pub fn load_or_create(c: &mut DbConn, now: i64, kek: &Kek) -> Result<FormKey, FormKeyError> {
        let key_err = |e: &dyn std::fmt::Display| FormKeyError::Key(e.to_string());
        if accounts_db::form_key(c, KEY_ID)?.is_none() {
            let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).map_err(|e| key_err(&e))?;
            let der: Pkcs8V1Der = key.as_der().map_err(|e| key_err(&e))?;
            let stored = kek.store(Row::FormKey(KEY_ID), der.as_ref()).map_err(|e| key_err(&e))?;
            accounts_db::insert_form_key(c, KEY_ID, &stored, now)?;
        }
        // Whoever won the insert, everyone uses the stored key.
        let der = open_stored(c, kek)?.ok_or_else(|| FormKeyError::Key("key vanished".into()))?;
        let key = PrivateDecryptingKey::from_pkcs8(&der).map_err(|e| key_err(&e))?;
        let spki: PublicKeyX509Der = key.public_key().as_der().map_err(|e| key_err(&e))?;
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(spki.as_ref()));
        let pem = pem("PUBLIC KEY", spki.as_ref());
        let key = OaepPrivateDecryptingKey::new(key).map_err(|e| key_err(&e))?;
        Ok(FormKey { key, kid, pem })
    }

    /// The plain body of an encrypted form: `Ok(None)` when `body` is not one (a plain JSON body passes
    /// through), `Err` when it is one that does not decrypt.
    pub fn open(&self, body: &[u8]) -> Result<Option<Vec<u8>>, &'static str> {
        let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
            return Ok(None);
        };
        let Some(encrypted) = map.get("encrypted") else {
            return Ok(None);
        };
        let text = encrypted.as_str().ok_or("encrypted must be a base64 string")?;
        let cipher = [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text.trim()).ok())
            .ok_or("encrypted is not base64")?;
        let mut plain = vec![0u8; self.key.min_output_size()];
        let plain = self
            .key
            .decrypt(&OAEP_SHA256_MGF1SHA256, &cipher, &mut plain, None)
            .map_err(|_| "the body does not decrypt with this server's key (fetch /api/public_key again)")?;
        Ok(Some(plain.to_vec()))
    }
}

/// Checks that the stored key (if there is one) opens, and re-writes it in the current form when it is not
/// (stored in the clear, or under an older key-encryption key): at every start, even with encrypted forms
/// off, so no private key stays in the clear.
pub fn protect_stored(c: &mut DbConn, kek: &Kek) -> Result<(), FormKeyError> {
    open_stored(c, kek).map(drop)
}

/// The DER of the stored key, re-written first when it is not in the current form.
fn open_stored(c: &mut DbConn, kek: &Kek) -> Result<Option<Vec<u8>>, FormKeyError> {
    let Some(stored) = accounts_db::form_key(c, KEY_ID)? else {
        return Ok(None);
    };
    let (der, rewrite) = kek
        .open(Row::FormKey(KEY_ID), &stored)
        .map_err(|message| FormKeyError::Key(format!("the stored key {message}")))?;
    if let Some(new) = rewrite {
        accounts_db::replace_form_key(c, KEY_ID, &stored, &new)?;
        tracing::info!("encrypted-forms key re-written encrypted in the current form");
    }
    Ok(Some(der))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
