//! Signing keys: generation (aws-lc-rs), PKCS#8 storage form, signing, verification, and the public JWK with
//! its RFC 7638 thumbprint (the `kid`, identical on every replica and across restarts).

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// The JWS algorithms Tessera signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    ES256,
    ES384,
    ES512,
    EdDSA,
    PS256,
    PS384,
    PS512,
    RS256,
}

impl Alg {
    pub const ALL: [Alg; 8] = [
        Alg::ES256,
        Alg::ES384,
        Alg::ES512,
        Alg::EdDSA,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::RS256,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::EdDSA => "EdDSA",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::RS256 => "RS256",
        }
    }

    pub fn parse(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    fn ecdsa(self) -> Option<(&'static signature::EcdsaSigningAlgorithm, &'static str, usize)> {
        match self {
            Alg::ES256 => Some((&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)),
            Alg::ES384 => Some((&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)),
            Alg::ES512 => Some((&signature::ECDSA_P521_SHA512_FIXED_SIGNING, "P-521", 66)),
            _ => None,
        }
    }

    fn rsa_encoding(self) -> Option<(&'static dyn signature::RsaEncoding, &'static signature::RsaParameters)> {
        match self {
            Alg::PS256 => Some((&signature::RSA_PSS_SHA256, &signature::RSA_PSS_2048_8192_SHA256)),
            Alg::PS384 => Some((&signature::RSA_PSS_SHA384, &signature::RSA_PSS_2048_8192_SHA384)),
            Alg::PS512 => Some((&signature::RSA_PSS_SHA512, &signature::RSA_PSS_2048_8192_SHA512)),
            Alg::RS256 => Some((&signature::RSA_PKCS1_SHA256, &signature::RSA_PKCS1_2048_8192_SHA256)),
            _ => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed for {0}")]
    Generate(Alg),
    #[error("stored {0} key is not valid PKCS#8: {1}")]
    Parse(Alg, String),
    #[error("signing failed")]
    Sign,
    #[error("unsupported RSA key size {0}")]
    RsaSize(u32),
    /// A public JWK (of a verification-only key) that does not describe a key of its algorithm.
    #[error("public {0} JWK: {1}")]
    Jwk(Alg, String),
}

/// The public half as JWK members (raw bytes; encodings are chosen when serving).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicJwk {
    Ec { crv: &'static str, x: Vec<u8>, y: Vec<u8> },
    Okp { x: Vec<u8> },
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl PublicJwk {
    /// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic order, base64url.
    pub fn thumbprint(&self) -> String {
        let b = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        let canonical = match self {
            PublicJwk::Ec { crv, x, y } => {
                format!(r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#, b(x), b(y))
            }
            PublicJwk::Okp { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b(x)),
            PublicJwk::Rsa { n, e } => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b(e), b(n)),
        };
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
    /// No private half: the key only verifies (Stoke's imported keys, until they expire).
    VerifyOnly,
}

/// A private signing key with its algorithm, public JWK and kid.
pub struct SigningKey {
    pub alg: Alg,
    pub kid: String,
    pub public: PublicJwk,
    pair: Pair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new key for `alg` (`rsa_bits` applies to the RSA algorithms), and its PKCS#8 DER for storage.
    pub fn generate(alg: Alg, rsa_bits: u32) -> Result<(SigningKey, Vec<u8>), KeyError> {
        let der = if let Some((ec, ..)) = alg.ecdsa() {
            EcdsaKeyPair::generate(ec)
                .and_then(|k| k.to_pkcs8v1())
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| KeyError::Generate(alg))?
        } else if alg == Alg::EdDSA {
            Ed25519KeyPair::generate()
                .and_then(|k| k.to_pkcs8v1())
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| KeyError::Generate(alg))?
        } else {
            let size = match rsa_bits {
                2048 => KeySize::Rsa2048,
                3072 => KeySize::Rsa3072,
                4096 => KeySize::Rsa4096,
                other => return Err(KeyError::RsaSize(other)),
            };
            let pair = RsaKeyPair::generate(size).map_err(|_| KeyError::Generate(alg))?;
            let der: Result<aws_lc_rs::encoding::Pkcs8V1Der<'static>, _> = pair.as_der();
            der.map(|d| d.as_ref().to_vec()).map_err(|_| KeyError::Generate(alg))?
        };
        let key = SigningKey::from_pkcs8(alg, &der)?;
        Ok((key, der))
    }

    /// Loads a stored key.
    pub fn from_pkcs8(alg: Alg, der: &[u8]) -> Result<SigningKey, KeyError> {
        let parse = |e: String| KeyError::Parse(alg, e);
        let (pair, public) = if let Some((ec, crv, len)) = alg.ecdsa() {
            let pair = EcdsaKeyPair::from_pkcs8(ec, der).map_err(|e| parse(e.to_string()))?;
            // Uncompressed point: 0x04 || x || y, each coordinate full length.
            let point = pair.public_key().as_ref();
            if point.len() != 1 + 2 * len {
                return Err(parse("unexpected public point length".into()));
            }
            let public = PublicJwk::Ec {
                crv,
                x: point[1..1 + len].to_vec(),
                y: point[1 + len..].to_vec(),
            };
            (Pair::Ec(pair), public)
        } else if alg == Alg::EdDSA {
            let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|e| parse(e.to_string()))?;
            let public = PublicJwk::Okp {
                x: pair.public_key().as_ref().to_vec(),
            };
            (Pair::Ed(pair), public)
        } else {
            let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| parse(e.to_string()))?;
            let pk = pair.public_key();
            let public = PublicJwk::Rsa {
                n: pk.modulus().big_endian_without_leading_zero().to_vec(),
                e: pk.exponent().big_endian_without_leading_zero().to_vec(),
            };
            (Pair::Rsa(pair), public)
        };
        Ok(SigningKey {
            alg,
            kid: public.thumbprint(),
            public,
            pair,
        })
    }

    /// A key that only verifies, from its public JWK as stored (the `public_jwk` column: members in base64url,
    /// padded or not). Its kid is the JWK's `kid` (Stoke's `p-0`, …), else the thumbprint. It never signs.
    pub fn verify_only(alg: Alg, public_jwk: &str) -> Result<SigningKey, KeyError> {
        let bad = |m: &str| KeyError::Jwk(alg, m.to_string());
        let jwk: serde_json::Value = serde_json::from_str(public_jwk).map_err(|_| bad("not JSON"))?;
        let member = |name: &str| -> Result<Vec<u8>, KeyError> {
            let text = jwk.get(name).and_then(|v| v.as_str()).ok_or_else(|| bad(name))?;
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|_| bad(name))
        };
        let kty = jwk.get("kty").and_then(|v| v.as_str()).unwrap_or_default();
        let public = match (alg.ecdsa(), kty) {
            (Some((_, crv, len)), "EC") => {
                let (x, y) = (member("x")?, member("y")?);
                if jwk.get("crv").and_then(|v| v.as_str()) != Some(crv) || x.len() != len || y.len() != len {
                    return Err(bad("curve or coordinates do not fit the algorithm"));
                }
                PublicJwk::Ec { crv, x, y }
            }
            (None, "OKP") if alg == Alg::EdDSA => {
                let x = member("x")?;
                if jwk.get("crv").and_then(|v| v.as_str()) != Some("Ed25519") || x.len() != 32 {
                    return Err(bad("not an Ed25519 key"));
                }
                PublicJwk::Okp { x }
            }
            (None, "RSA") if alg.rsa_encoding().is_some() => PublicJwk::Rsa {
                n: member("n")?,
                e: member("e")?,
            },
            _ => return Err(bad("key type does not fit the algorithm")),
        };
        let kid = match jwk.get("kid").and_then(|v| v.as_str()) {
            Some(kid) if !kid.is_empty() => kid.to_string(),
            _ => public.thumbprint(),
        };
        Ok(SigningKey {
            alg,
            kid,
            public,
            pair: Pair::VerifyOnly,
        })
    }

    /// Whether this key can sign (false for [`SigningKey::verify_only`] keys).
    pub fn can_sign(&self) -> bool {
        !matches!(self.pair, Pair::VerifyOnly)
    }

    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match &self.pair {
            Pair::VerifyOnly => Err(KeyError::Sign),
            Pair::Ec(k) => k
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Pair::Ed(k) => Ok(k.sign(message).as_ref().to_vec()),
            Pair::Rsa(k) => {
                let (encoding, _) = self.alg.rsa_encoding().ok_or(KeyError::Sign)?;
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(encoding, &rng, message, &mut sig).map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }

    /// Checks a signature made with this key.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match (&self.public, self.alg) {
            (PublicJwk::Ec { .. }, Alg::ES256) => verify_with(&signature::ECDSA_P256_SHA256_FIXED, self, message, sig),
            (PublicJwk::Ec { .. }, Alg::ES384) => verify_with(&signature::ECDSA_P384_SHA384_FIXED, self, message, sig),
            (PublicJwk::Ec { .. }, Alg::ES512) => verify_with(&signature::ECDSA_P521_SHA512_FIXED, self, message, sig),
            (PublicJwk::Okp { .. }, Alg::EdDSA) => verify_with(&signature::ED25519, self, message, sig),
            (PublicJwk::Rsa { n, e }, alg) => match alg.rsa_encoding() {
                Some((_, params)) => signature::RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .verify(params, message, sig)
                .is_ok(),
                None => false,
            },
            _ => false,
        }
    }
}

fn verify_with(alg: &'static dyn signature::VerificationAlgorithm, key: &SigningKey, msg: &[u8], sig: &[u8]) -> bool {
    let public = match (&key.pair, &key.public) {
        (Pair::Ec(k), _) => k.public_key().as_ref().to_vec(),
        (Pair::Ed(k), _) => k.public_key().as_ref().to_vec(),
        (Pair::VerifyOnly, PublicJwk::Ec { x, y, .. }) => [&[4u8][..], x, y].concat(),
        (Pair::VerifyOnly, PublicJwk::Okp { x }) => x.clone(),
        _ => return false,
    };
    signature::UnparsedPublicKey::new(alg, public).verify(msg, sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_verifies_and_reloads() {
        for alg in Alg::ALL {
            let (key, der) = SigningKey::generate(alg, 2048).unwrap_or_else(|e| unreachable!("{e}"));
            let sig = key.sign(b"message").unwrap_or_default();
            assert!(key.verify(b"message", &sig), "{alg}");
            assert!(!key.verify(b"massage", &sig), "{alg}");
            let again = SigningKey::from_pkcs8(alg, &der).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(again.kid, key.kid, "kid is stable for {alg}");
            assert!(again.verify(b"message", &sig));
        }
    }

    #[test]
    fn ec_coordinates_are_full_length_and_rsa_exponent_is_aqab() {
        let (key, _) = SigningKey::generate(Alg::ES512, 0).unwrap_or_else(|e| unreachable!("{e}"));
        let PublicJwk::Ec { x, y, crv } = &key.public else {
            unreachable!()
        };
        assert_eq!((x.len(), y.len(), *crv), (66, 66, "P-521"));
        let (key, _) = SigningKey::generate(Alg::PS256, 2048).unwrap_or_else(|e| unreachable!("{e}"));
        let PublicJwk::Rsa { e, n } = &key.public else {
            unreachable!()
        };
        assert_eq!(URL_SAFE_NO_PAD.encode(e), "AQAB");
        assert_eq!(n.len(), 256);
    }

    #[test]
    fn verify_only_keys_verify_and_never_sign() {
        for alg in [Alg::ES256, Alg::ES512, Alg::EdDSA, Alg::PS256] {
            let (key, _) = SigningKey::generate(alg, 2048).unwrap_or_else(|e| unreachable!("{e}"));
            let sig = key.sign(b"message").unwrap_or_default();
            let b = |v: &[u8]| base64::engine::general_purpose::URL_SAFE.encode(v);
            let jwk = match &key.public {
                PublicJwk::Ec { crv, x, y } => format!(
                    r#"{{"kty":"EC","kid":"p-0","crv":"{crv}","x":"{}","y":"{}"}}"#,
                    b(x),
                    b(y)
                ),
                PublicJwk::Okp { x } => format!(r#"{{"kty":"OKP","kid":"p-0","crv":"Ed25519","x":"{}"}}"#, b(x)),
                PublicJwk::Rsa { n, e } => format!(r#"{{"kty":"RSA","kid":"p-0","n":"{}","e":"{}"}}"#, b(n), b(e)),
            };
            let only = SigningKey::verify_only(alg, &jwk).unwrap_or_else(|e| unreachable!("{alg}: {e}"));
            assert_eq!(only.kid, "p-0");
            assert!(!only.can_sign() && key.can_sign());
            assert!(only.verify(b"message", &sig), "{alg}");
            assert!(!only.verify(b"massage", &sig), "{alg}");
            assert!(only.sign(b"message").is_err());
        }
        let (ec, _) = SigningKey::generate(Alg::ES256, 0).unwrap_or_else(|e| unreachable!("{e}"));
        let PublicJwk::Ec { x, y, .. } = &ec.public else {
            unreachable!()
        };
        let jwk = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(x),
            URL_SAFE_NO_PAD.encode(y)
        );
        assert!(
            SigningKey::verify_only(Alg::ES384, &jwk).is_err(),
            "a P-256 key is no ES384 key"
        );
        assert!(SigningKey::verify_only(Alg::EdDSA, &jwk).is_err());
        assert!(SigningKey::verify_only(Alg::ES256, "{}").is_err());
        assert_eq!(
            SigningKey::verify_only(Alg::ES256, &jwk)
                .map(|k| k.kid)
                .unwrap_or_default(),
            ec.kid,
            "no kid: the thumbprint"
        );
    }

    #[test]
    fn rfc7638_example_thumbprint() {
        // The RSA key of RFC 7638 section 3.1.
        let n = URL_SAFE_NO_PAD
            .decode("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
            .unwrap_or_default();
        let jwk = PublicJwk::Rsa { n, e: vec![1, 0, 1] };
        assert_eq!(jwk.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}
