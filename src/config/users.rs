//! The `users` section: user providers (LDAP directories and upstream OpenID providers), dbinit files and the
//! admin API's policies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{GoDuration, Secret};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UsersConfig {
    /// Create the `stk` admin claims (S, s, m, u, U, g, G, c, C) and the admin group at start-up if missing.
    pub create_stoke_claims: bool,
    /// A dbinit file applied at start-up (like `--dbinit`).
    pub user_init_file: String,
    /// A directory whose `*.yaml` dbinit files are applied at start-up, in name order.
    pub user_init_dir: String,
    /// A directory whose `*.yaml` files each define one more user provider.
    pub provider_config_dir: String,
    pub providers: Vec<ProviderConfig>,
    pub policy_config: PolicyConfig,
    /// Refuse an OpenID login that matches no `OIDC:<provider>` group link (Stoke does).
    pub oidc_require_group_link: bool,
    /// Stoke's older flat LDAP settings: with `enable_ldap: true` they become one provider named `ldap`.
    pub enable_ldap: bool,
    #[serde(flatten)]
    pub ldap: LdapSettings,
}

impl Default for UsersConfig {
    fn default() -> Self {
        UsersConfig {
            create_stoke_claims: true,
            user_init_file: String::new(),
            user_init_dir: String::new(),
            provider_config_dir: String::new(),
            providers: Vec::new(),
            policy_config: PolicyConfig::default(),
            oidc_require_group_link: true,
            enable_ldap: false,
            ldap: LdapSettings::default(),
        }
    }
}

/// One user source besides the local database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ProviderConfig {
    pub name: String,
    /// `ldap` or `oidc`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub ldap: LdapSettings,
    #[serde(flatten)]
    pub oidc: OidcSettings,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            name: String::new(),
            kind: "ldap".into(),
            ldap: LdapSettings::default(),
            oidc: OidcSettings::default(),
        }
    }
}

impl ProviderConfig {
    pub fn is_oidc(&self) -> bool {
        self.kind.eq_ignore_ascii_case("oidc")
    }
}

/// An upstream OpenID provider (Stoke's key names; `issuer`, `jwks_url`, `client_secret_file`,
/// `link_by_verified_email` and `request_timeout` are Tessera's own).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OidcSettings {
    /// The provider's `/.well-known/openid-configuration`; the endpoints below are read from it when empty.
    pub discovery_url: String,
    pub auth_url: String,
    pub token_url: String,
    pub user_info_url: String,
    /// Without `discovery_url`: the provider's issuer and key set, which verify its id_tokens.
    pub issuer: String,
    pub jwks_url: String,
    /// `code` (authorization code with PKCE); Stoke's `implicit` and `hybrid` are refused.
    pub auth_flow_type: String,
    /// Where the mapped claims come from: `token` (the id_token) or `endpoint` (the UserInfo endpoint).
    pub claims_source: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// A file holding the client secret (instead of `client_secret`).
    pub client_secret_file: String,
    /// This server's `/oidc/<name>`, as registered with the provider.
    pub redirect_uri: String,
    /// The claims that give a user's names and email; `id:` reads the id_token whatever `claims_source` says.
    pub first_name_claim: String,
    pub last_name_claim: String,
    pub email_claim: String,
    /// Scopes to ask for besides `openid` (always asked for).
    pub scopes: Vec<String>,
    /// More parameters of the authorization request (e.g. `prompt`, `hd`).
    pub extra_arguments: BTreeMap<String, String>,
    /// Stoke's key for its signed `state`; Tessera keeps each request's state in the database instead, so it is
    /// read and unused.
    pub state_secret: Secret,
    /// A first login may join an existing account of the same email when the provider says the email is
    /// verified (never an account holding `stk=S`).
    pub link_by_verified_email: bool,
    /// How long one request to the provider may take.
    pub request_timeout: GoDuration,
}

impl Default for OidcSettings {
    fn default() -> Self {
        OidcSettings {
            discovery_url: String::new(),
            auth_url: String::new(),
            token_url: String::new(),
            user_info_url: String::new(),
            issuer: String::new(),
            jwks_url: String::new(),
            auth_flow_type: "code".into(),
            claims_source: "token".into(),
            client_id: String::new(),
            client_secret: Secret::default(),
            client_secret_file: String::new(),
            redirect_uri: String::new(),
            first_name_claim: "given_name".into(),
            last_name_claim: "family_name".into(),
            email_claim: "email".into(),
            scopes: Vec::new(),
            extra_arguments: BTreeMap::new(),
            state_secret: Secret::default(),
            link_by_verified_email: false,
            request_timeout: GoDuration::from_secs(10),
        }
    }
}

/// How to reach and read an LDAP directory (Stoke's key names).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LdapSettings {
    /// `ldap://`, `ldaps://` or `ldapi://`.
    pub server_url: String,
    pub bind_user_dn: String,
    pub bind_user_password: Secret,
    /// A file holding the bind password (instead of `bind_user_password`).
    pub bind_user_password_file: String,
    pub group_search_root: String,
    /// May use `{{ .UserDN }}` and `{{ .Username }}` (both escaped).
    pub group_filter_template: String,
    pub user_search_root: String,
    /// Must select one entry; may use `{{ .Username }}` (escaped).
    pub user_filter_template: String,
    pub ldap_group_name_field: String,
    pub ldap_first_name_field: String,
    pub ldap_last_name_field: String,
    pub ldap_email_field: String,
    /// 0 means no limit.
    pub search_timeout: GoDuration,
    /// PEM file of the CA that signed the directory's certificate.
    pub ldap_ca_cert: String,
    pub skip_certificate_verify: bool,
}

impl Default for LdapSettings {
    fn default() -> Self {
        LdapSettings {
            server_url: String::new(),
            bind_user_dn: String::new(),
            bind_user_password: Secret::default(),
            bind_user_password_file: String::new(),
            group_search_root: String::new(),
            group_filter_template: String::new(),
            user_search_root: String::new(),
            user_filter_template: String::new(),
            ldap_group_name_field: "cn".into(),
            ldap_first_name_field: "givenName".into(),
            ldap_last_name_field: "sn".into(),
            ldap_email_field: "mail".into(),
            search_timeout: GoDuration::default(),
            ldap_ca_cert: String::new(),
            skip_certificate_verify: false,
        }
    }
}

/// Limits on what the admin API may change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyConfig {
    /// Refuse every admin write.
    pub read_only_mode: bool,
    /// Usernames that admin writes may not touch.
    pub protected_users: Vec<String>,
    /// Claim group names that admin writes may not touch.
    pub protected_groups: Vec<String>,
    /// Claim short names that admin writes may not touch.
    pub protected_claims: Vec<String>,
    /// Let a superuser (`stk=S`) write protected entities anyway.
    pub allow_superuser_override: bool,
}

/// Where an OpenID provider's mapped claims come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimsSource {
    /// The verified id_token (Stoke's `token` or `id_token`).
    IdToken,
    /// The UserInfo endpoint, asked with the access token (Stoke's `endpoint` or `user_info`).
    Endpoint,
}

impl ClaimsSource {
    pub fn parse(text: &str) -> Option<ClaimsSource> {
        match text.to_ascii_lowercase().as_str() {
            "token" | "id_token" => Some(ClaimsSource::IdToken),
            "endpoint" | "user_info" | "userinfo" => Some(ClaimsSource::Endpoint),
            _ => None,
        }
    }
}

/// Whether `name` can be the last segment of `/oidc/<name>`.
pub fn oidc_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether Tessera may talk to an OpenID provider at `url`: https, or plain http on a loopback address (a
/// provider in a test or beside the server).
pub fn provider_url_ok(url: &str) -> bool {
    if let Some(rest) = url.strip_prefix("https://") {
        return !rest.is_empty();
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The redirect URI of an OpenID provider: its `redirect_uri`, else `server.public_url` + `/oidc/<name>`.
pub fn oidc_redirect_uri(c: &super::Config, p: &ProviderConfig) -> String {
    if !p.oidc.redirect_uri.is_empty() {
        return p.oidc.redirect_uri.clone();
    }
    match c.server.public_url.trim_end_matches('/') {
        "" => String::new(),
        base => format!("{base}/oidc/{}", p.name),
    }
}
