//! Tessera: a lightweight self-hosted token service, drop-in compatible with Stoke.
//!
//! A request flows one way: `routes` → `services` → `db` / `crypto`. `startup` wires them together; `cli` is
//! the command line on top.

pub mod api_types;
pub mod authz;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credential;
pub mod crypto;
pub mod db;
pub mod error;
pub mod metrics;
pub mod routes;
pub mod services;
pub mod startup;
/// The state every handler sees (it lives with the services it wires together; kept here for embedders).
pub mod state {
    pub use crate::services::state::AppState;
}
pub mod telemetry;
pub mod tls;
pub mod user_source;
