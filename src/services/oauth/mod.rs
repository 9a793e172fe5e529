//! Tessera's OAuth 2.0 face (RFC 6749, 7009, 7662, 8414): registered clients, their authentication, and the
//! grants of `/oauth/token` ([`token`]), revocation and introspection ([`introspect`]). The flows fail with
//! [`ServiceError`]; `routes/oauth.rs` turns that into RFC 6749 error codes.

pub mod auth;
pub mod introspect;
pub mod token;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::crypto::keys::Alg;
use crate::db::clients::ClientRow;
use crate::services::ServiceError;
use crate::services::tokens::ClientGrant;
pub use crate::services::tokens::{narrow_scope, words};

pub use auth::{ClientAuth, ClientFailures};

/// The grants `/oauth/token` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Password,
    RefreshToken,
    ClientCredentials,
}

impl Grant {
    pub const ALL: [Grant; 3] = [Grant::Password, Grant::RefreshToken, Grant::ClientCredentials];

    pub fn name(self) -> &'static str {
        match self {
            Grant::Password => "password",
            Grant::RefreshToken => "refresh_token",
            Grant::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(name: &str) -> Option<Grant> {
        Grant::ALL.into_iter().find(|g| g.name() == name)
    }
}

/// A registered client, as the flows use it.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub public: bool,
    pub grants: Vec<Grant>,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub claim_filter: Option<Vec<String>>,
    pub access_ttl: Option<i64>,
    pub refresh_ttl: Option<i64>,
    pub rfc9068: bool,
    pub introspect: bool,
    /// Its access tokens' algorithm; `None` (or one no longer parsed): the configured one.
    pub signing_alg: Option<Alg>,
}

impl Client {
    pub fn from_row(row: &ClientRow) -> Client {
        Client {
            id: row.client_id.clone(),
            public: row.kind == PUBLIC,
            grants: row.grant_types.split_whitespace().filter_map(Grant::parse).collect(),
            scopes: words(&row.scopes),
            audience: row.audience.clone(),
            claim_filter: row.claim_filter.as_deref().and_then(|f| serde_json::from_str(f).ok()),
            access_ttl: row.access_token_ttl,
            refresh_ttl: row.refresh_token_ttl,
            rfc9068: row.jwt_profile.as_deref() == Some(RFC9068),
            introspect: row.introspect != 0,
            signing_alg: row.signing_alg.as_deref().and_then(Alg::parse),
        }
    }

    /// `unauthorized_client` unless the client may use `grant`.
    pub fn allow(&self, grant: Grant) -> Result<(), ServiceError> {
        if self.grants.contains(&grant) {
            Ok(())
        } else {
            Err(ServiceError::invalid(
                "unauthorized_client",
                format!("this client may not use the {} grant", grant.name()),
            ))
        }
    }

    /// The scope granted for a request of `requested` (space-separated; absent: every scope of the client), or
    /// `invalid_scope` when it names one the client does not have. The answer is in the client's order.
    pub fn grant_scope(&self, requested: Option<&str>) -> Result<Vec<String>, ServiceError> {
        let Some(requested) = requested else {
            return Ok(self.scopes.clone());
        };
        narrow_scope(&self.scopes, requested)
    }

    /// What this client adds to a token granted `scope`.
    pub fn grant(&self, scope: Vec<String>) -> ClientGrant {
        ClientGrant {
            client_id: self.id.clone(),
            scope,
            audience: self.audience.clone(),
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            claim_filter: self.claim_filter.clone(),
            rfc9068: self.rfc9068,
            alg: self.signing_alg,
        }
    }

    /// The `sub` of the client's own tokens (`client_credentials`).
    pub fn subject(&self) -> String {
        format!("{CLIENT_SUBJECT_PREFIX}{}", self.id)
    }
}

/// `kind` of a client without a secret.
pub const PUBLIC: &str = "public";
pub const CONFIDENTIAL: &str = "confidential";
/// `jwt_profile` of RFC 9068 access tokens.
pub const RFC9068: &str = "rfc9068";
/// The `sub` of a client's own token starts with this, so it never reads as a user id.
pub const CLIENT_SUBJECT_PREFIX: &str = "client:";

/// A scope token as RFC 6749 §3.3 allows it (printable ASCII but space, `"` and `\`), at most 128 characters.
pub fn valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// An absolute https URL, or http on a loopback host (RFC 8252 native apps), without a fragment.
pub fn valid_redirect_uri(uri: &str) -> bool {
    if uri.len() > 512 || uri.contains('#') || uri.chars().any(|c| c.is_control() || c == ' ') {
        return false;
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host_only = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    match scheme {
        "https" => !host_only.is_empty(),
        "http" => matches!(host_only, "127.0.0.1" | "[::1]" | "localhost"),
        _ => false,
    }
}

/// A new client id: 128 random bits, base64url (22 characters).
pub fn new_client_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
}

/// A new client secret: 256 random bits, base64url (43 characters), and its SHA-256 digest (what is stored).
pub fn new_client_secret() -> (String, Vec<u8>) {
    let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let digest = secret_digest(&secret);
    (secret, digest)
}

pub fn secret_digest(secret: &str) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scopes_narrow_to_what_the_client_has() {
        let allowed = words("read write admin");
        assert_eq!(narrow_scope(&allowed, "write read").unwrap(), ["read", "write"]);
        assert_eq!(narrow_scope(&allowed, "  read  read ").unwrap(), ["read"]);
        assert!(narrow_scope(&allowed, "").unwrap().is_empty());
        assert!(matches!(
            narrow_scope(&allowed, "read delete"),
            Err(ServiceError::Invalid {
                code: "invalid_scope",
                ..
            })
        ));
    }

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert!(valid_scope_token("read:users"));
        assert!(valid_scope_token("https://api.example/x"));
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\tb"] {
            assert!(!valid_scope_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn secrets_have_256_bits_and_only_their_digest_is_kept() {
        let (secret, digest) = new_client_secret();
        assert_eq!(URL_SAFE_NO_PAD.decode(&secret).unwrap().len(), 32);
        assert_eq!(digest, secret_digest(&secret));
        assert_ne!(new_client_secret().0, secret);
    }

    #[test]
    fn redirect_uris_are_https_or_loopback() {
        for ok in [
            "https://app.example/cb",
            "https://app.example:8443/cb?x=1",
            "http://127.0.0.1:5000/cb",
            "http://localhost/cb",
            "http://[::1]:8080/",
        ] {
            assert!(valid_redirect_uri(ok), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#frag",
            "javascript:alert(1)",
            "https://",
            "/relative",
            "https://a b/",
            "http://127.0.0.1.evil.example/",
        ] {
            assert!(!valid_redirect_uri(bad), "{bad}");
        }
    }
}
