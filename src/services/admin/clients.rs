//! OAuth 2.0 clients under `/api/admin/clients`: superusers write, read-all operators read. A client's secret
//! is generated here, shown once, and stored as a digest; the audit trail never sees it.

use crate::api_types::{ClientCreated, ClientInput, OAuthClient, rfc3339};
use crate::db::DbConn;
use crate::db::catalog::{self, Page};
use crate::db::clients::{self, ClientRow, ClientSettings};
use crate::services::oauth::{self, CONFIDENTIAL, Grant, PUBLIC, RFC9068};
use crate::services::{AppState, ServiceError};

use super::{Area, Caller, Change, dedup, existing, text, write};

/// Redirect URIs, scopes and claim-filter entries a client may have.
const MAX_LIST: usize = 50;
/// Characters of an audience or a redirect URI.
const MAX_URI: usize = 512;
/// The longest refresh lifetime a client may ask for: a year.
const MAX_REFRESH_TTL: i64 = 366 * 24 * 3600;

fn dto(row: &ClientRow, groups: Vec<i64>, now: i64) -> OAuthClient {
    let list = |json: &str| serde_json::from_str::<Vec<String>>(json).unwrap_or_default();
    OAuthClient {
        client_id: row.client_id.clone(),
        name: row.name.clone(),
        kind: row.kind.clone(),
        grant_types: oauth::words(&row.grant_types),
        scopes: oauth::words(&row.scopes),
        redirect_uris: list(&row.redirect_uris),
        audience: row.audience.clone(),
        claim_filter: row.claim_filter.as_deref().map(list),
        claim_groups: groups,
        access_token_ttl: row.access_token_ttl,
        refresh_token_ttl: row.refresh_token_ttl,
        jwt_profile: row.jwt_profile.clone(),
        introspect: row.introspect != 0,
        signing_alg: row.signing_alg.clone(),
        previous_secret_valid_until: row.previous_until.filter(|u| *u > now).map(rfc3339),
        created_at: rfc3339(row.created_at),
        updated_at: rfc3339(row.updated_at),
    }
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::invalid("invalid_field", message)
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::NotFound(format!("no client {id:?}"))
}

/// The settings `input` asks for, over `base` (the stored ones, or the defaults of a new client of `kind`).
fn settings(
    input: &ClientInput,
    base: ClientSettings,
    public: bool,
    limits: &Limits,
) -> Result<ClientSettings, ServiceError> {
    let max_access_ttl = limits.max_access_ttl;
    let mut s = base;
    if let Some(name) = &input.name {
        text("name", name, 255, true)?;
        s.name = name.trim().to_string();
    }
    if let Some(grants) = &input.grant_types {
        let mut parsed = Vec::new();
        for g in grants {
            let grant = Grant::parse(g).ok_or_else(|| {
                invalid(format!(
                    "grant_types: {g:?} is not one of password, refresh_token, client_credentials"
                ))
            })?;
            if !parsed.contains(&grant) {
                parsed.push(grant);
            }
        }
        s.grant_types = parsed.iter().map(|g| g.name()).collect::<Vec<_>>().join(" ");
    }
    if s.grant_types.is_empty() {
        return Err(invalid("grant_types must name at least one grant"));
    }
    if public && s.grant_types.split(' ').any(|g| g == Grant::ClientCredentials.name()) {
        return Err(invalid(
            "grant_types: a public client cannot use client_credentials: it has no secret",
        ));
    }
    if let Some(scopes) = &input.scopes {
        if scopes.len() > MAX_LIST {
            return Err(invalid(format!("scopes: at most {MAX_LIST}")));
        }
        if let Some(bad) = scopes.iter().find(|s| !oauth::valid_scope_token(s)) {
            return Err(invalid(format!(
                "scopes: {bad:?} is not a scope token (printable ASCII without space, quote or backslash)"
            )));
        }
        s.scopes = oauth::words(&scopes.join(" ")).join(" ");
    }
    if let Some(uris) = &input.redirect_uris {
        if uris.len() > MAX_LIST {
            return Err(invalid(format!("redirect_uris: at most {MAX_LIST}")));
        }
        if let Some(bad) = uris.iter().find(|u| !oauth::valid_redirect_uri(u)) {
            return Err(invalid(format!(
                "redirect_uris: {bad:?} must be an absolute https URL (http only on a loopback address) without a fragment"
            )));
        }
        s.redirect_uris = serde_json::to_string(uris)?;
    }
    if let Some(audience) = &input.audience {
        if let Some(a) = audience {
            text("audience", a, MAX_URI, true)?;
        }
        s.audience = audience.clone();
    }
    if let Some(filter) = &input.claim_filter {
        if let Some(f) = filter {
            if f.len() > MAX_LIST {
                return Err(invalid(format!("claim_filter: at most {MAX_LIST} entries")));
            }
            for name in f {
                text("claim_filter entry", name, 255, true)?;
            }
        }
        s.claim_filter = filter.as_ref().map(serde_json::to_string).transpose()?;
    }
    if let Some(ttl) = input.access_token_ttl {
        if let Some(t) = ttl
            && !(1..=max_access_ttl).contains(&t)
        {
            return Err(invalid(format!(
                "access_token_ttl must be 1 to {max_access_ttl} seconds (tokens.token_duration: a longer token would outlive its signing key)"
            )));
        }
        s.access_token_ttl = ttl;
    }
    if let Some(ttl) = input.refresh_token_ttl {
        if let Some(t) = ttl
            && !(1..=MAX_REFRESH_TTL).contains(&t)
        {
            return Err(invalid(format!(
                "refresh_token_ttl must be 1 to {MAX_REFRESH_TTL} seconds"
            )));
        }
        s.refresh_token_ttl = ttl;
    }
    if let Some(profile) = &input.jwt_profile {
        if profile.as_deref().is_some_and(|p| p != RFC9068) {
            return Err(invalid("jwt_profile must be \"rfc9068\" or null"));
        }
        s.jwt_profile = profile.clone();
    }
    if let Some(introspect) = input.introspect {
        if introspect && public {
            return Err(invalid("a public client cannot introspect: it cannot authenticate"));
        }
        s.introspect = i64::from(introspect);
    }
    if let Some(alg) = &input.signing_alg {
        if let Some(a) = alg
            && !limits.algorithms.contains(&a.as_str())
        {
            return Err(invalid(format!(
                "signing_alg: {a:?} is not one of tokens.algorithms ({})",
                limits.algorithms.join(", ")
            )));
        }
        s.signing_alg = alg.clone();
    }
    Ok(s)
}

/// What the server's configuration allows a client.
struct Limits {
    /// `tokens.token_duration`: a longer token would outlive its signing key.
    max_access_ttl: i64,
    /// The algorithms the key ring signs with.
    algorithms: Vec<&'static str>,
}

impl Limits {
    fn of(state: &AppState) -> Limits {
        let ring = state.keys.settings();
        Limits {
            max_access_ttl: state.tokens.token_duration,
            algorithms: std::iter::once(ring.alg)
                .chain(ring.extra.iter().copied())
                .map(|a| a.name())
                .collect(),
        }
    }
}

/// The groups named, sorted and without duplicates, if every one exists; else `unknown_reference`.
fn check_groups(c: &mut DbConn, groups: &[i64]) -> Result<Vec<i64>, ServiceError> {
    let groups = dedup(groups);
    existing(c, catalog::Kind::Group, "claim_groups", &groups)?;
    Ok(groups)
}

pub async fn list(state: &AppState, caller: &Caller, page: Page) -> Result<Vec<OAuthClient>, ServiceError> {
    let now = state.clock.now();
    super::read(state, caller, Area::Operations, move |c| {
        let rows = clients::list(c, page)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let groups = clients::groups_of(c, &row.client_id)?;
            out.push(dto(&row, groups, now));
        }
        Ok(out)
    })
    .await
}

pub async fn get(state: &AppState, caller: &Caller, id: String) -> Result<OAuthClient, ServiceError> {
    let now = state.clock.now();
    super::read(state, caller, Area::Operations, move |c| {
        let row = clients::find(c, &id)?.ok_or_else(|| not_found(&id))?;
        let groups = clients::groups_of(c, &id)?;
        Ok(dto(&row, groups, now))
    })
    .await
}

/// Registers a client; the answer carries its secret (confidential clients), the only time it is shown.
pub async fn create(state: &AppState, caller: &Caller, input: ClientInput) -> Result<ClientCreated, ServiceError> {
    let kind = match input.kind.as_deref() {
        Some(k @ (CONFIDENTIAL | PUBLIC)) => k.to_string(),
        _ => return Err(invalid("type must be \"confidential\" or \"public\"")),
    };
    if input.name.is_none() || input.grant_types.is_none() {
        return Err(invalid("name and grant_types are required"));
    }
    let public = kind == PUBLIC;
    let now = state.clock.now();
    let base = ClientSettings {
        name: String::new(),
        grant_types: String::new(),
        scopes: String::new(),
        redirect_uris: "[]".into(),
        audience: None,
        claim_filter: None,
        access_token_ttl: None,
        refresh_token_ttl: None,
        jwt_profile: None,
        introspect: 0,
        signing_alg: None,
        updated_at: now,
    };
    let s = settings(&input, base, public, &Limits::of(state))?;
    let (secret, digest) = match public {
        true => (None, None),
        false => {
            let (secret, digest) = oauth::new_client_secret();
            (Some(secret), Some(digest))
        }
    };
    let row = ClientRow {
        client_id: oauth::new_client_id(),
        name: s.name,
        kind,
        grant_types: s.grant_types,
        scopes: s.scopes,
        redirect_uris: s.redirect_uris,
        audience: s.audience,
        claim_filter: s.claim_filter,
        access_token_ttl: s.access_token_ttl,
        refresh_token_ttl: s.refresh_token_ttl,
        jwt_profile: s.jwt_profile,
        introspect: s.introspect,
        signing_alg: s.signing_alg,
        secret_digest: digest,
        previous_digest: None,
        previous_until: None,
        created_at: now,
        updated_at: now,
    };
    let groups = input.claim_groups.clone().unwrap_or_default();
    let change = Change::new("client.create", &row.client_id);
    let client = write(state, caller, Area::Operations, change, move |c, _, now| {
        let groups = check_groups(c, &groups)?;
        clients::insert(c, &row, &groups)?;
        Ok(dto(&row, groups, now))
    })
    .await?;
    Ok(ClientCreated {
        client,
        client_secret: secret,
    })
}

/// Changes a client's settings (its type stays; its secret changes only by rotation).
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: String,
    input: ClientInput,
) -> Result<OAuthClient, ServiceError> {
    let limits = Limits::of(state);
    let change = Change::new("client.update", &id);
    write(state, caller, Area::Operations, change, move |c, _, now| {
        let row = clients::find(c, &id)?.ok_or_else(|| not_found(&id))?;
        if input.kind.as_deref().is_some_and(|k| k != row.kind) {
            return Err(invalid("type: a client's type cannot change: register a new client"));
        }
        let base = row.settings(now);
        let s = settings(&input, base, row.kind == PUBLIC, &limits)?;
        clients::update(c, &id, &s)?;
        if let Some(groups) = &input.claim_groups {
            let groups = check_groups(c, groups)?;
            clients::set_groups(c, &id, &groups)?;
        }
        let row = clients::find(c, &id)?.ok_or_else(|| not_found(&id))?;
        let groups = clients::groups_of(c, &id)?;
        Ok(dto(&row, groups, now))
    })
    .await
}

/// Deletes a client; its sessions end with it.
pub async fn delete(state: &AppState, caller: &Caller, id: String) -> Result<(), ServiceError> {
    let change = Change::new("client.delete", &id);
    write(state, caller, Area::Operations, change, move |c, _, _| {
        if !clients::delete(c, &id)? {
            return Err(not_found(&id));
        }
        Ok(())
    })
    .await
}

/// A new secret for a confidential client, shown once; the current one keeps working for
/// `oauth.secret_rotation_overlap`.
pub async fn rotate_secret(state: &AppState, caller: &Caller, id: String) -> Result<ClientCreated, ServiceError> {
    let overlap = i64::try_from(state.config.oauth.secret_rotation_overlap.as_secs()).unwrap_or(i64::MAX);
    let (secret, digest) = oauth::new_client_secret();
    let change = Change::new("client.rotate_secret", &id);
    let client = write(state, caller, Area::Operations, change, move |c, _, now| {
        let row = clients::find(c, &id)?.ok_or_else(|| not_found(&id))?;
        if row.kind == PUBLIC {
            return Err(invalid("a public client has no secret"));
        }
        clients::rotate_secret(c, &id, &digest, now.saturating_add(overlap), now)?;
        let row = clients::find(c, &id)?.ok_or_else(|| not_found(&id))?;
        let groups = clients::groups_of(c, &id)?;
        Ok(dto(&row, groups, now))
    })
    .await?;
    Ok(ClientCreated {
        client,
        client_secret: Some(secret),
    })
}

/// Every scope some client has, for the metadata's `scopes_supported`.
pub async fn all_scopes(state: &AppState) -> Result<Vec<String>, ServiceError> {
    let lists = state.db.run(clients::all_scopes).await?;
    let mut out: Vec<String> = lists.iter().flat_map(|l| oauth::words(l)).collect();
    out.sort_unstable();
    out.dedup();
    Ok(out)
}
