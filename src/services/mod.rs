//! Business flows, independent of HTTP: they take a connection (or the pool) and `now`, and return domain
//! results. Routes call them; they call `db/` and `crypto/`, never back up.

pub mod accounts;
pub mod admin;
pub mod api_keys;
pub mod at_rest;
pub mod auth;
pub mod bootstrap;
pub mod dbinit;
pub mod error;
pub mod health;
pub mod keyring;
pub mod mail;
pub mod maintenance;
pub mod mfa;
pub mod oauth;
pub mod oidc;
pub mod passwords;
pub mod rights;
pub mod state;
pub mod stoke_import;
pub mod throttle;
pub mod tokens;

pub use error::ServiceError;
pub use state::AppState;
