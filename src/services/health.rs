//! Readiness: what `/readyz` reports, so a load balancer sends requests only to a replica that can serve them.

use crate::db::DbError;
use crate::services::AppState;

/// Why a replica cannot serve yet.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// No key of the ring may sign now (it is being loaded, or the database lost every key).
    #[error("no signing key")]
    NoSigningKey,
    #[error(transparent)]
    Database(#[from] DbError),
}

/// Ready when a key may sign now and the database answers.
pub async fn ready(state: &AppState) -> Result<(), NotReady> {
    if state.keys.current().signer(state.clock.now()).is_none() {
        return Err(NotReady::NoSigningKey);
    }
    Ok(state.db.ping().await?)
}
