//! The `users` section: user providers (LDAP), dbinit files and the admin API's policies.

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
    /// `ldap` (the only kind so far).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub ldap: LdapSettings,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            name: String::new(),
            kind: "ldap".into(),
            ldap: LdapSettings::default(),
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
