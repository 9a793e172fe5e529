//! Keys and the audit trail, for superusers and read-all operators.

use crate::api_types::{AuditEntry, KeyInfo, KeyRingInfo, rfc3339};
use crate::db::audit::{self, AuditRow};
use crate::db::catalog::Page;
use crate::services::AppState;

use super::{Area, Caller, ServiceError};

pub fn audit_dto(r: AuditRow) -> AuditEntry {
    AuditEntry {
        id: r.id,
        at: rfc3339(r.at),
        actor: r.actor,
        action: r.action,
        target: r.target,
        detail: r.detail,
    }
}

pub async fn audit_trail(state: &AppState, caller: &Caller, page: Page) -> Result<Vec<AuditEntry>, ServiceError> {
    let rows = super::read(state, caller, Area::Operations, move |c| {
        Ok(audit::list(c, page.offset, page.limit)?)
    })
    .await?;
    Ok(rows.into_iter().map(audit_dto).collect())
}

/// Public metadata of the ring and when it next rotates.
pub fn key_ring(state: &AppState, caller: &Caller) -> Result<KeyRingInfo, ServiceError> {
    caller.require(Area::Operations, false)?;
    let ring = state.keys.current();
    let now = state.clock.now();
    let signing = ring.signing_kids(now);
    let settings = state.keys.settings();
    let keys = ring
        .keys
        .iter()
        .map(|k| KeyInfo {
            kid: k.key.kid.clone(),
            alg: k.key.alg.name().to_string(),
            published_at: rfc3339(k.publish_at),
            signs_from: rfc3339(k.sign_from),
            expires_at: rfc3339(k.expires_at),
            signing: signing.contains(&k.key.kid.as_str()),
        })
        .collect();
    let next = state.keys.next_rotation(now);
    Ok(KeyRingInfo {
        keys,
        next_rotation: rfc3339(next),
        key_duration_seconds: settings.key_duration,
        token_duration_seconds: settings.token_duration,
    })
}

/// Creates a successor key now (superusers only); it signs after one token lifetime, once every client
/// had time to fetch it.
pub async fn rotate_keys(state: &AppState, caller: &Caller) -> Result<String, ServiceError> {
    caller.require(Area::Operations, true)?;
    super::writable(state)?;
    let keys = state.keys.clone();
    let now = state.clock.now();
    let kid = tokio::task::spawn_blocking(move || keys.rotate_now(now))
        .await
        .map_err(ServiceError::internal)?
        .map_err(|e| match e {
            crate::services::keyring::RingError::Db(db) => ServiceError::from(db),
            other => ServiceError::internal(other),
        })?;
    let (actor, target) = (caller.actor.clone(), kid.clone());
    state
        .db
        .write(move |c| Ok::<_, ServiceError>(audit::record(c, now, &actor, "keys.rotate", &target, "")?))
        .await?;
    Ok(kid)
}
