//! Keys, the audit trail and the overview's status: for superusers and read-all operators (the status shows its other
//! parts to other admins too).

use crate::api_types::{AdminStatus, AuditEntry, AuditQuery, KeyInfo, KeyRingInfo, rfc3339};
use crate::db::audit::{self, AuditRow};
use crate::db::catalog::{self, Page};
use crate::services::AppState;

use super::{Area, Caller, ServiceError};

pub fn audit_dto(r: AuditRow) -> AuditEntry {
    AuditEntry {
        id: r.id,
        at: rfc3339(r.at),
        actor: r.actor,
        action: r.action,
        target: r.target,
        target_name: None,
        detail: r.detail,
    }
}

/// What kind of entity an action's target is the id of, if any (`user.delete` → a user).
fn target_kind(action: &str) -> Option<catalog::Kind> {
    let (subject, _) = action.split_once('.')?;
    match subject {
        "user" => Some(catalog::Kind::User),
        "claim" => Some(catalog::Kind::Claim),
        "claim_group" => Some(catalog::Kind::Group),
        "group_link" => Some(catalog::Kind::Link),
        _ => None,
    }
}

/// The audit entries `query` selects, a page at a time, newest first, with the names of their targets.
pub async fn audit_trail(
    state: &AppState,
    caller: &Caller,
    page: Page,
    query: &AuditQuery,
) -> Result<Vec<AuditEntry>, ServiceError> {
    let filter = audit_filter(query)?;
    super::read(state, caller, Area::Operations, move |c| {
        let rows = audit::list(c, &filter, page.offset, page.limit)?;
        let mut entries: Vec<AuditEntry> = rows.into_iter().map(audit_dto).collect();
        for kind in [
            catalog::Kind::User,
            catalog::Kind::Claim,
            catalog::Kind::Group,
            catalog::Kind::Link,
        ] {
            let of_kind = |e: &AuditEntry| target_kind(&e.action) == Some(kind);
            let ids: Vec<i64> = entries
                .iter()
                .filter(|e| of_kind(e))
                .filter_map(|e| e.target.parse().ok())
                .collect();
            let names = catalog::display_names(c, kind, &ids)?;
            for entry in entries.iter_mut().filter(|e| of_kind(e)) {
                let id = entry.target.parse::<i64>().ok();
                entry.target_name = names.iter().find(|(n, _)| Some(*n) == id).map(|(_, name)| name.clone());
            }
        }
        Ok(entries)
    })
    .await
}

/// The query as a filter: text at most 255 characters, times as RFC 3339 or Unix seconds.
fn audit_filter(q: &AuditQuery) -> Result<audit::Filter, ServiceError> {
    let text = |name: &str, v: &Option<String>| -> Result<Option<String>, ServiceError> {
        match v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            Some(v) if v.chars().count() > 255 => Err(ServiceError::invalid(
                "invalid_query",
                format!("{name} is longer than 255 characters"),
            )),
            other => Ok(other.map(str::to_string)),
        }
    };
    let time = |name: &str, v: &Option<String>| -> Result<Option<i64>, ServiceError> {
        let Some(v) = text(name, v)? else { return Ok(None) };
        if let Ok(seconds) = v.parse::<i64>() {
            return Ok(Some(seconds));
        }
        time::OffsetDateTime::parse(&v, &time::format_description::well_known::Rfc3339)
            .map(|t| Some(t.unix_timestamp()))
            .map_err(|_| {
                ServiceError::invalid(
                    "invalid_query",
                    format!("{name} {v:?} is not a time (RFC 3339, e.g. 2026-12-01T00:00:00Z, or Unix seconds)"),
                )
            })
    };
    Ok(audit::Filter {
        actor: text("actor", &q.actor)?,
        action: text("action", &q.action)?,
        target: text("target", &q.target)?,
        since: time("since", &q.since)?,
        until: time("until", &q.until)?,
    })
}

/// Counted up to this many (the overview says "1000+").
const STATUS_CAP: i64 = 1000;

/// The overview: each part only for a caller who may read its area ([`Caller::may`], the rule every admin read
/// goes through).
pub async fn status(state: &AppState, caller: &Caller) -> Result<AdminStatus, ServiceError> {
    caller.require(Area::Totals, false)?;
    let now = state.clock.now();
    let ready = crate::services::health::ready(state).await.is_ok();
    let operator = caller.may(Area::Operations, false);
    let ring = state.keys.current();
    let signing_key = ring.signer(now).filter(|_| operator).map(|k| key_info(k, true));
    let failed_logins_last_hour = if operator {
        let filter = audit::Filter {
            action: Some("login.failed".into()),
            since: Some(now - 3600),
            ..audit::Filter::default()
        };
        Some(
            state
                .db
                .run(move |c| audit::list(c, &filter, 0, STATUS_CAP))
                .await?
                .len(),
        )
    } else {
        None
    };
    let locks = if caller.may(Area::Users, false) {
        Some(
            state
                .db
                .run(move |c| crate::db::throttle::locked(c, now, STATUS_CAP))
                .await?
                .len(),
        )
    } else {
        None
    };
    Ok(AdminStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        ready,
        database: state.db.backend().name().into(),
        signing_key,
        next_rotation: operator.then(|| rfc3339(state.keys.next_rotation(now))),
        failed_logins_last_hour,
        locks,
    })
}

fn key_info(k: &crate::services::keyring::LiveKey, signing: bool) -> KeyInfo {
    KeyInfo {
        kid: k.key.kid.clone(),
        alg: k.key.alg.name().to_string(),
        published_at: rfc3339(k.publish_at),
        signs_from: rfc3339(k.sign_from),
        expires_at: rfc3339(k.expires_at),
        signing,
    }
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
        .map(|k| key_info(k, signing.contains(&k.key.kid.as_str())))
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
