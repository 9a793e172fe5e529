//! User sources besides the local database (DESIGN.md §5.6): LDAP directories, configured under
//! `users.providers`, in `users.provider_config_dir`, or through Stoke's flat keys (a provider named `ldap`).
//!
//! The login flow (services/auth.rs) asks the chosen provider first; [`ldap::Outcome`] says whether the
//! directory vouched for the user, refused the password (401, no fallback), does not know the user, or could not
//! be asked (local users answer then). Group mapping and the local copy of the user live in services/auth.rs.

pub mod ldap;
pub mod sync;

use std::sync::Arc;

use crate::config::UsersConfig;

pub use ldap::{DirectoryUser, LdapProvider, Outcome};

/// The configured providers, built once at start-up.
#[derive(Default)]
pub struct Providers {
    list: Vec<Arc<LdapProvider>>,
}

impl Providers {
    /// Builds every provider (reads CA files, parses filter templates). Connections are opened on first use.
    pub fn from_config(users: &UsersConfig) -> Result<Self, String> {
        let list = users
            .providers
            .iter()
            .map(|p| {
                LdapProvider::new(p)
                    .map(Arc::new)
                    .map_err(|e| format!("provider {:?}: {e}", p.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Providers { list })
    }

    pub fn get(&self, name: &str) -> Option<Arc<LdapProvider>> {
        self.list.iter().find(|p| p.name() == name).cloned()
    }

    /// The provider a login that names none uses: the only one configured, if there is exactly one.
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
