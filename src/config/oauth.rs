//! The `oauth` section: Tessera's OAuth 2.0 authorization server (`/oauth/token` and the registered clients).

use serde::{Deserialize, Serialize};

use super::GoDuration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OAuthConfig {
    /// How long a client's previous secret keeps working after `POST /api/admin/clients/{id}/secret`, so the
    /// client can be redeployed with the new one.
    pub secret_rotation_overlap: GoDuration,
    /// Failed client authentications allowed per client id, and per address, within `failure_window` before
    /// that client id or address is refused for the rest of the window (429). 0: no limit.
    pub max_client_failures: u32,
    pub failure_window: GoDuration,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            secret_rotation_overlap: GoDuration::from_secs(24 * 3600),
            max_client_failures: 10,
            failure_window: GoDuration::from_secs(300),
        }
    }
}
