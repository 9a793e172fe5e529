//! Reading a provider's claims: the user's profile (Stoke's `*_claim` keys, `id:` for the id_token) and the
//! group links (`resource_spec` `claim=value`) they match.

use serde_json::{Map, Value};

/// The claims of one sign-in: the verified id_token's, and those of the configured source (the id_token
/// again, or UserInfo merged over it).
pub struct SignIn {
    pub id_token: Map<String, Value>,
    pub source: Map<String, Value>,
}

/// What a sign-in says about the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub issuer: String,
    pub subject: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    /// The provider says it checked the email (`email_verified: true`).
    pub email_verified: bool,
}

impl SignIn {
    /// The claim `name` as text: from the source, or from the id_token with an `id:` prefix. Numbers and
    /// booleans read as their JSON text; lists and objects are not text.
    pub fn text(&self, name: &str) -> Option<String> {
        let (claims, name) = match name.strip_prefix("id:") {
            Some(rest) => (&self.id_token, rest),
            None => (&self.source, name),
        };
        claims.get(name).and_then(scalar_text).filter(|s| !s.is_empty())
    }

    pub fn profile(&self, first: &str, last: &str, email: &str) -> Profile {
        let verified_from = if email.starts_with("id:") {
            &self.id_token
        } else {
            &self.source
        };
        let email_verified = match verified_from.get("email_verified") {
            Some(Value::Bool(b)) => *b,
            // Some providers send it as text.
            Some(Value::String(s)) => s == "true",
            _ => false,
        };
        Profile {
            issuer: self.id_token.get("iss").and_then(scalar_text).unwrap_or_default(),
            subject: self.id_token.get("sub").and_then(scalar_text).unwrap_or_default(),
            first_name: self.text(first).unwrap_or_default(),
            last_name: self.text(last).unwrap_or_default(),
            email: self.text(email),
            email_verified,
        }
    }

    /// Whether a group link's `claim=value` matches: a list claim matches when one of its items does; numbers
    /// and booleans compare as their JSON text (`42`, `true`). A spec without `=` matches nothing.
    pub fn matches(&self, spec: &str) -> bool {
        let Some((claim, wanted)) = spec.split_once('=') else {
            return false;
        };
        let (claim, wanted) = (claim.trim(), wanted.trim());
        let (claims, claim) = match claim.strip_prefix("id:") {
            Some(rest) => (&self.id_token, rest),
            None => (&self.source, claim),
        };
        match claims.get(claim) {
            Some(Value::Array(items)) => items.iter().any(|item| scalar_text(item).as_deref() == Some(wanted)),
            Some(value) => scalar_text(value).as_deref() == Some(wanted),
            None => false,
        }
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sign_in(id: Value, source: Value) -> SignIn {
        let obj = |v: Value| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        SignIn {
            id_token: obj(id),
            source: obj(source),
        }
    }

    #[test]
    fn links_match_claims_lists_numbers_and_booleans() {
        let s = sign_in(
            json!({"hd": "corp.example"}),
            json!({"groups": ["staff", "ops", 7], "level": 42, "admin": true, "org": "acme"}),
        );
        for spec in [
            "groups=staff",
            "groups=ops",
            "groups=7",
            "level=42",
            "admin=true",
            "org=acme",
            "id:hd=corp.example",
            " org = acme ",
        ] {
            assert!(s.matches(spec), "{spec}");
        }
        for spec in [
            "groups=Staff",
            "groups",
            "level=42.0",
            "admin=1",
            "org=acme2",
            "hd=corp.example",
            "missing=x",
            "=acme",
            "",
        ] {
            assert!(!s.matches(spec), "{spec}");
        }
    }

    #[test]
    fn the_profile_reads_the_source_or_the_id_token() {
        let s = sign_in(
            json!({"iss": "https://op.example", "sub": "u1", "email": "id@example.com", "email_verified": true}),
            json!({"given_name": "Ada", "family_name": "Lovelace", "email": "ui@example.com", "email_verified": "false"}),
        );
        let p = s.profile("given_name", "family_name", "email");
        assert_eq!((p.first_name.as_str(), p.last_name.as_str()), ("Ada", "Lovelace"));
        assert_eq!((p.email.as_deref(), p.email_verified), (Some("ui@example.com"), false));
        let p = s.profile("given_name", "family_name", "id:email");
        assert_eq!((p.email.as_deref(), p.email_verified), (Some("id@example.com"), true));
        assert_eq!((p.issuer.as_str(), p.subject.as_str()), ("https://op.example", "u1"));
        assert_eq!(s.profile("x", "y", "z").email, None);
    }
}
