//! Stoke's stored forms of its signing keys (`private_keys.text`), read so `import-stoke` can publish their
//! public halves: ECDSA as base64url (padded) of SEC1 DER (RFC 5915), EdDSA as base64url of the 64-byte private
//! key (seed ‖ public key), RSA as base64url of PKCS#1 DER. Only the public half is kept by the import.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use super::keys::{Alg, SigningKey};

/// Reads one of Stoke's stored keys. `rsa_alg` is the algorithm Stoke signed RSA keys with (PS256, PS384 or
/// PS512, from its `tokens.num_bits`); ECDSA keys take theirs from the curve. `Err` says why it does not parse.
pub fn parse_private_key(text: &str, rsa_alg: Alg) -> Result<SigningKey, String> {
    let text = text.trim().trim_end_matches('=');
    let der = URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .map_err(|_| "not base64".to_string())?;
    if der.len() == 64 {
        let pair = Ed25519KeyPair::from_seed_and_public_key(&der[..32], &der[32..])
            .map_err(|e| format!("not an Ed25519 key: {e}"))?;
        let pkcs8 = pair.to_pkcs8v1().map_err(|e| e.to_string())?;
        return SigningKey::from_pkcs8(Alg::EdDSA, pkcs8.as_ref()).map_err(|e| e.to_string());
    }
    let curves = [
        (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, Alg::ES256),
        (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, Alg::ES384),
        (&signature::ECDSA_P521_SHA512_FIXED_SIGNING, Alg::ES512),
    ];
    for (curve, alg) in curves {
        if let Ok(pair) = EcdsaKeyPair::from_private_key_der(curve, &der) {
            let pkcs8 = pair.to_pkcs8v1().map_err(|e| e.to_string())?;
            return SigningKey::from_pkcs8(alg, pkcs8.as_ref()).map_err(|e| e.to_string());
        }
    }
    if let Ok(pair) = RsaKeyPair::from_der(&der) {
        let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().map_err(|e| e.to_string())?;
        return SigningKey::from_pkcs8(rsa_alg, pkcs8.as_ref()).map_err(|e| e.to_string());
    }
    Err("not an ECDSA (SEC1), Ed25519 or RSA (PKCS#1) private key".into())
}

/// The public half of `key` as the points and bytes Stoke's clients compare (tests).
pub fn public_point(key: &SigningKey) -> Vec<u8> {
    match &key.public {
        super::keys::PublicJwk::Ec { x, y, .. } => [&[4u8][..], x, y].concat(),
        super::keys::PublicJwk::Okp { x } => x.clone(),
        super::keys::PublicJwk::Rsa { n, .. } => n.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsBigEndian;
    use aws_lc_rs::signature::KeyPair;
    use base64::engine::general_purpose::URL_SAFE;

    /// Key 2 of the Stoke fixture database (`tests/fixtures/stoke-db`).
    const FIXTURE_KEY: &str = "MHcCAQEEIJl9TB22tVNuoM2TEVuVsVb7PJ07UqGi3SqELlNjtvhtoAoGCCqGSM49AwEHoUQDQgAEY-UV4t9orUi2_FEAiq0xYn0MqwmSlor6QR6CsZlUMlKPssEuA6XdxpvPAkrCGEBnXoVsF00Iaq-S-fGkBd4bPQ==";

    #[test]
    fn every_stoke_form_parses() {
        let ec = parse_private_key(FIXTURE_KEY, Alg::PS256).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(ec.alg, Alg::ES256);
        let sig = ec.sign(b"m").unwrap_or_default();
        assert!(ec.verify(b"m", &sig));

        let ed = Ed25519KeyPair::generate().unwrap_or_else(|e| unreachable!("{e}"));
        let seed = ed.seed().unwrap_or_else(|e| unreachable!("{e}"));
        let seed: aws_lc_rs::encoding::Curve25519SeedBin<'static> =
            seed.as_be_bytes().unwrap_or_else(|e| unreachable!("{e}"));
        let text = URL_SAFE.encode([seed.as_ref(), ed.public_key().as_ref()].concat());
        let parsed = parse_private_key(&text, Alg::PS256).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            (parsed.alg, public_point(&parsed)),
            (Alg::EdDSA, ed.public_key().as_ref().to_vec())
        );

        let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap_or_else(|e| unreachable!("{e}"));
        let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'static> = rsa.as_der().unwrap_or_else(|e| unreachable!("{e}"));
        let text = URL_SAFE.encode(pkcs1_of(pkcs8.as_ref()));
        let parsed = parse_private_key(&text, Alg::PS384).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(parsed.alg, Alg::PS384);
        assert_eq!(
            public_point(&parsed),
            rsa.public_key().modulus().big_endian_without_leading_zero()
        );
    }

    /// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo: its third element, an OCTET STRING.
    fn pkcs1_of(pkcs8: &[u8]) -> Vec<u8> {
        // (tag, header length, content length) of the DER element at the start of `d`.
        fn element(d: &[u8]) -> (u8, usize, usize) {
            match d[1] {
                n if n < 0x80 => (d[0], 2, n as usize),
                n => {
                    let k = (n & 0x7f) as usize;
                    let len = d[2..2 + k].iter().fold(0usize, |a, b| a << 8 | *b as usize);
                    (d[0], 2 + k, len)
                }
            }
        }
        let (_, h, _) = element(pkcs8);
        let mut rest = &pkcs8[h..];
        for _ in 0..2 {
            let (_, h, len) = element(rest);
            rest = &rest[h + len..];
        }
        let (tag, h, len) = element(rest);
        assert_eq!(tag, 0x04);
        rest[h..h + len].to_vec()
    }

    #[test]
    fn garbage_does_not_parse() {
        for text in ["", "garbage!", "AAAA", &URL_SAFE.encode([7u8; 64])] {
            assert!(parse_private_key(text, Alg::PS256).is_err(), "{text:?}");
        }
    }
}
