//! User sources besides the local database (DESIGN.md §5.6): LDAP directories and upstream OpenID providers,
//! configured under `users.providers`, in `users.provider_config_dir`, or (LDAP) through Stoke's flat keys (a
//! provider named `ldap`). An OpenID provider checks no password: its users sign in at `/oidc/<name>`.
//!
//! The login flow (services/auth.rs) asks the chosen provider first; [`ldap::Outcome`] says whether the
//! directory vouched for the user, refused the password (401, no fallback), does not know the user, or could not
//! be asked (local users answer then). Group mapping and the local copy of the user live in services/auth.rs.

pub mod ldap;
pub mod oidc;
pub mod sync;

use std::sync::Arc;

use crate::config::Config;

pub use ldap::{DirectoryUser, LdapProvider, Outcome};
pub use oidc::OidcProvider;

/// The configured providers, built once at start-up.
#[derive(Default)]
pub struct Providers {
    list: Vec<Arc<LdapProvider>>,
    oidc: Vec<Arc<OidcProvider>>,
}

impl Providers {
    /// Builds every provider (reads CA and secret files, parses filter templates). Connections are opened and
    /// discovery documents fetched on first use.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let mut providers = Providers::default();
        for p in &config.users.providers {
            let named = |e: String| format!("provider {:?}: {e}", p.name);
            if p.is_oidc() {
                providers
                    .oidc
                    .push(Arc::new(OidcProvider::new(config, p).map_err(named)?));
            } else {
                providers.list.push(Arc::new(LdapProvider::new(p).map_err(named)?));
            }
        }
        Ok(providers)
    }

    /// The OpenID provider `name`.
    pub fn oidc(&self, name: &str) -> Option<Arc<OidcProvider>> {
        self.oidc.iter().find(|p| p.name() == name).cloned()
    }

    pub fn get(&self, name: &str) -> Option<Arc<LdapProvider>> {
        self.list.iter().find(|p| p.name() == name).cloned()
    }

    /// The provider a login that names none uses: the only directory configured, if there is exactly one.
    pub fn only(&self) -> Option<Arc<LdapProvider>> {
        match self.list.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
