//! dbinit files (Stoke's format): read, checked as a whole and turned into a [`Plan`] that `db::dbinit` writes
//! in one transaction, at most once per (file name, content hash).
//!
//! Accepted beyond Stoke: Stoke's one-line shorthands (`claim: "name,description,short_name,value"`,
//! `group: "name,description"`, `user: "username,first_name,last_name,email"`, `link: "type,resource"` or
//! `"type,provider,resource"`) are applied, links may be plain strings (an LDAP group name, linked for every
//! LDAP provider) or `{type, provider?, resource}` / `{type, resource_spec}` maps, and `password_hash` may be a
//! PHC string. Entities that exist already (by name or username) are updated, so an edited file re-applies.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::db::clients::ClientRow;
use crate::db::dbinit::{self as db, Plan, PlanClaim, PlanClient, PlanGroup, PlanLink, PlanUser};
use crate::db::{DbConn, DbError};
use crate::services::oauth::{self, CONFIDENTIAL, Grant, PUBLIC, RFC9068};

/// A dbinit file that could not be applied; nothing of it was written.
#[derive(Debug, thiserror::Error)]
pub enum DbInitError {
    #[error("{file}: {}", problems.join("; "))]
    Invalid { file: String, problems: Vec<String> },
    #[error("{file}: {source}")]
    Database { file: String, source: DbError },
}

/// What applying a file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// This exact content was applied before.
    AlreadyApplied,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InitFile {
    claims: Vec<InitClaim>,
    groups: Vec<InitGroup>,
    users: Vec<InitUser>,
    clients: Vec<InitClient>,
}

/// An OAuth client (Tessera's addition). Its secret is given as the SHA-256 (hex) of the secret, never the
/// secret itself: `printf %s "$secret" | sha256sum`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InitClient {
    client_id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    client_secret_sha256: String,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    redirect_uris: Vec<String>,
    audience: String,
    claim_filter: Option<Vec<String>>,
    /// Group names defined in this file.
    groups: Vec<String>,
    access_token_ttl: String,
    refresh_token_ttl: String,
    jwt_profile: String,
    introspect: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InitClaim {
    name: String,
    description: String,
    short_name: String,
    value: String,
    claim: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InitGroup {
    name: String,
    description: String,
    claims: Vec<String>,
    links: Vec<InitLink>,
    group: Option<String>,
    /// Limits the group to logins of these credential kinds (`password`, `api_key`, …).
    credentials: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum InitLink {
    Plain(String),
    Map(LinkMap),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LinkMap {
    #[serde(rename = "type")]
    kind: String,
    provider: String,
    resource: String,
    resource_spec: String,
    link: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct InitUser {
    username: String,
    first_name: String,
    last_name: String,
    email: String,
    password_hash: String,
    password_salt: String,
    groups: Vec<String>,
    user: Option<String>,
}

/// Reads and checks one dbinit file without a database (`tessera validate`): the problems `serve` would refuse
/// it for, short of conflicts with the data already stored.
pub fn check_file(path: &Path) -> Result<(), Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("cannot read: {e}")])?;
    let mut parsed = parse(&text).map_err(|p| vec![p])?;
    let problems = normalize(&mut parsed);
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// Reads, checks and applies one dbinit file.
pub fn apply_file(conn: &mut DbConn, path: &Path, now: i64) -> Result<Applied, DbInitError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| DbInitError::Invalid {
        file: file.clone(),
        problems: vec![format!("cannot read: {e}")],
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.clone());
    apply_text(conn, &name, &text, now).map_err(|e| match e {
        DbInitError::Invalid { problems, .. } => DbInitError::Invalid {
            file: file.clone(),
            problems,
        },
        DbInitError::Database { source, .. } => DbInitError::Database {
            file: file.clone(),
            source,
        },
    })
}

/// Applies dbinit text recorded under `name`.
pub fn apply_text(conn: &mut DbConn, name: &str, text: &str, now: i64) -> Result<Applied, DbInitError> {
    let invalid = |problems: Vec<String>| DbInitError::Invalid {
        file: name.to_string(),
        problems,
    };
    let mut parsed = parse(text).map_err(|p| invalid(vec![p]))?;
    let problems = normalize(&mut parsed);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let hash = crate::crypto::sha256_hex(text.as_bytes());
    match db::apply(conn, name, &hash, &plan(parsed, now), now) {
        Ok(true) => Ok(Applied::Applied),
        Ok(false) => Ok(Applied::AlreadyApplied),
        Err(e) if e.is_unique_violation() => Err(invalid(vec![format!(
            "conflicts with existing data (a username, email, claim name or claim short_name/value pair is taken): {e}"
        )])),
        Err(source) => Err(DbInitError::Database {
            file: name.to_string(),
            source,
        }),
    }
}

/// The plan of a checked file (after [`normalize`] found no problem).
fn plan(f: InitFile, now: i64) -> Plan {
    Plan {
        clients: f.clients.into_iter().map(|c| plan_client(c, now)).collect(),
        claims: f
            .claims
            .into_iter()
            .map(|c| PlanClaim {
                name: c.name,
                description: c.description,
                short_name: c.short_name,
                value: c.value,
            })
            .collect(),
        groups: f
            .groups
            .into_iter()
            .map(|g| PlanGroup {
                links: g.links.iter().filter_map(|l| resolve_link(l).ok()).collect(),
                credentials: crate::credential::normalise(g.credentials.as_deref()).ok().flatten(),
                name: g.name,
                description: g.description,
                claims: g.claims,
            })
            .collect(),
        users: f
            .users
            .into_iter()
            .map(|u| PlanUser {
                username: u.username,
                first_name: u.first_name,
                last_name: u.last_name,
                email: u.email,
                password_hash: u.password_hash,
                password_salt: u.password_salt,
                groups: u.groups,
            })
            .collect(),
    }
}

/// A checked client as a row (its `created_at` is kept when the client exists already).
fn plan_client(c: InitClient, now: i64) -> PlanClient {
    let digest = hex_digest(&c.client_secret_sha256);
    let ttl = |t: &str| t.parse::<i64>().ok();
    let row = ClientRow {
        client_id: c.client_id,
        name: c.name,
        kind: c.kind,
        grant_types: oauth::words(&c.grant_types.join(" ")).join(" "),
        scopes: oauth::words(&c.scopes.join(" ")).join(" "),
        redirect_uris: serde_json::to_string(&c.redirect_uris).unwrap_or_else(|_| "[]".into()),
        audience: Some(c.audience).filter(|a| !a.is_empty()),
        claim_filter: c.claim_filter.and_then(|f| serde_json::to_string(&f).ok()),
        access_token_ttl: ttl(&c.access_token_ttl),
        refresh_token_ttl: ttl(&c.refresh_token_ttl),
        jwt_profile: Some(c.jwt_profile).filter(|p| !p.is_empty()),
        introspect: i64::from(c.introspect == "true"),
        signing_alg: None,
        secret_digest: digest,
        previous_digest: None,
        previous_until: None,
        created_at: now,
        updated_at: now,
    };
    PlanClient { row, groups: c.groups }
}

/// 64 hex digits as 32 bytes.
fn hex_digest(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Every problem of a client entry, checked by the same rules as `/api/admin/clients` where they apply.
fn client_problems(i: usize, c: &InitClient, group_names: &HashSet<String>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut bad = |p: String| problems.push(format!("clients[{i}] ({:?}): {p}", c.client_id));
    let id_ok = (1..=64).contains(&c.client_id.len())
        && c.client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
    if !id_ok {
        bad("client_id must be 1 to 64 of A-Z a-z 0-9 . _ ~ -".into());
    }
    if c.name.trim().is_empty() {
        bad("a client needs a name".into());
    }
    let public = match c.kind.as_str() {
        PUBLIC => true,
        CONFIDENTIAL => false,
        other => {
            bad(format!("type {other:?} is not confidential or public"));
            false
        }
    };
    match (public, c.client_secret_sha256.is_empty()) {
        (true, false) => bad("a public client has no secret".into()),
        (false, true) => bad("a confidential client needs client_secret_sha256".into()),
        (false, false) if hex_digest(&c.client_secret_sha256).is_none() => {
            bad("client_secret_sha256 must be the 64 hex digits of the secret's SHA-256".into())
        }
        _ => {}
    }
    if c.grant_types.is_empty() {
        bad("grant_types must name at least one grant".into());
    }
    for g in &c.grant_types {
        match Grant::parse(g) {
            None => bad(format!(
                "grant type {g:?} is not one of password, refresh_token, client_credentials"
            )),
            Some(Grant::ClientCredentials) if public => bad("a public client cannot use client_credentials".into()),
            Some(_) => {}
        }
    }
    for scope in c.scopes.iter().filter(|s| !oauth::valid_scope_token(s)) {
        bad(format!("scope {scope:?} is not a scope token"));
    }
    for uri in c.redirect_uris.iter().filter(|u| !oauth::valid_redirect_uri(u)) {
        bad(format!(
            "redirect URI {uri:?} must be https (http only on loopback), without a fragment"
        ));
    }
    for (key, ttl) in [
        ("access_token_ttl", &c.access_token_ttl),
        ("refresh_token_ttl", &c.refresh_token_ttl),
    ] {
        if !ttl.is_empty() && !ttl.parse::<i64>().is_ok_and(|t| t > 0) {
            bad(format!("{key} must be a positive number of seconds"));
        }
    }
    if !c.jwt_profile.is_empty() && c.jwt_profile != RFC9068 {
        bad("jwt_profile must be rfc9068 or absent".into());
    }
    if !matches!(c.introspect.as_str(), "" | "true" | "false") || (public && c.introspect == "true") {
        bad("introspect must be true or false, and only a confidential client may introspect".into());
    }
    for group in c.groups.iter().filter(|g| !group_names.contains(*g)) {
        bad(format!("group {group:?} is not defined in this file's groups section"));
    }
    problems
}

fn parse(text: &str) -> Result<InitFile, String> {
    if text.trim().is_empty() {
        return Ok(InitFile::default());
    }
    let mut tree: Value = serde_yaml_ng::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    stringify_scalars(&mut tree);
    serde_path_to_error::deserialize::<_, InitFile>(tree).map_err(|e| {
        let path = e.path().to_string();
        format!("{path}: {}", e.into_inner())
    })
}

/// Every dbinit field is text; YAML reads `value: 1` or `value: yes` as a number or a boolean.
fn stringify_scalars(v: &mut Value) {
    match v {
        Value::Number(n) => *v = Value::String(n.to_string()),
        Value::Bool(b) => *v = Value::String(b.to_string()),
        Value::Sequence(items) => items.iter_mut().for_each(stringify_scalars),
        Value::Mapping(map) => map.iter_mut().for_each(|(_, v)| stringify_scalars(v)),
        _ => {}
    }
}

fn split_shorthand(s: &str) -> Vec<String> {
    s.split(',').map(|p| p.trim().to_string()).collect()
}

/// Expands shorthands and checks the file as a whole; returns every problem found.
fn normalize(f: &mut InitFile) -> Vec<String> {
    let mut problems = Vec::new();
    let mut claim_names = HashSet::new();
    for (i, c) in f.claims.iter_mut().enumerate() {
        if let Some(s) = c.claim.take() {
            match split_shorthand(&s).as_slice() {
                [name, description, short_name, value] => {
                    (c.name, c.description, c.short_name, c.value) =
                        (name.clone(), description.clone(), short_name.clone(), value.clone());
                }
                _ => problems.push(format!(
                    "claims[{i}]: bad claim shorthand {s:?}, expected \"name,description,short_name,value\""
                )),
            }
        }
        if c.name.is_empty() || c.short_name.is_empty() {
            problems.push(format!("claims[{i}]: a claim needs name and short_name"));
        } else if !claim_names.insert(c.name.clone()) {
            problems.push(format!("claims[{i}]: claim {:?} is defined twice", c.name));
        }
    }
    let mut group_names = HashSet::new();
    for (i, g) in f.groups.iter_mut().enumerate() {
        if let Some(s) = g.group.take() {
            match split_shorthand(&s).as_slice() {
                [name, description] => (g.name, g.description) = (name.clone(), description.clone()),
                _ => problems.push(format!(
                    "groups[{i}]: bad group shorthand {s:?}, expected \"name,description\""
                )),
            }
        }
        if g.name.is_empty() {
            problems.push(format!("groups[{i}]: a group needs a name"));
        } else if !group_names.insert(g.name.clone()) {
            problems.push(format!("groups[{i}]: group {:?} is defined twice", g.name));
        }
        for claim in &g.claims {
            if !claim_names.contains(claim) {
                problems.push(format!(
                    "groups[{i}] ({:?}): claim {claim:?} is not defined in this file's claims section",
                    g.name
                ));
            }
        }
        for (j, link) in g.links.iter().enumerate() {
            if let Err(p) = resolve_link(link) {
                problems.push(format!("groups[{i}].links[{j}]: {p}"));
            }
        }
        if let Err(p) = crate::credential::normalise(g.credentials.as_deref()) {
            problems.push(format!("groups[{i}] ({:?}).credentials: {p}", g.name));
        }
    }
    let mut usernames = HashSet::new();
    for (i, u) in f.users.iter_mut().enumerate() {
        if let Some(s) = u.user.take() {
            match split_shorthand(&s).as_slice() {
                [username, first, last, email] => {
                    (u.username, u.first_name, u.last_name, u.email) =
                        (username.clone(), first.clone(), last.clone(), email.clone());
                }
                _ => problems.push(format!(
                    "users[{i}]: bad user shorthand {s:?}, expected \"username,first_name,last_name,email\""
                )),
            }
        }
        if u.username.is_empty() {
            problems.push(format!("users[{i}]: a user needs a username"));
        } else if !usernames.insert(u.username.clone()) {
            problems.push(format!("users[{i}]: user {:?} is defined twice", u.username));
        }
        let phc = u.password_hash.starts_with('$');
        if !u.password_hash.is_empty() && !phc && u.password_salt.is_empty() {
            problems.push(format!(
                "users[{i}] ({:?}): password_hash is neither a PHC string ($argon2id$…) nor paired with password_salt",
                u.username
            ));
        }
        if phc && argon2::password_hash::PasswordHash::new(&u.password_hash).is_err() {
            problems.push(format!(
                "users[{i}] ({:?}): password_hash is not a valid PHC string",
                u.username
            ));
        }
        for group in &u.groups {
            if !group_names.contains(group) {
                problems.push(format!(
                    "users[{i}] ({:?}): group {group:?} is not defined in this file's groups section",
                    u.username
                ));
            }
        }
    }
    let mut client_ids = HashSet::new();
    for (i, c) in f.clients.iter().enumerate() {
        problems.extend(client_problems(i, c, &group_names));
        if !client_ids.insert(c.client_id.clone()) {
            problems.push(format!("clients[{i}]: client {:?} is defined twice", c.client_id));
        }
    }
    problems
}

fn resolve_link(link: &InitLink) -> Result<PlanLink, String> {
    match link {
        InitLink::Plain(resource) if !resource.trim().is_empty() => Ok(PlanLink {
            link_type: "LDAP:".into(),
            resource_spec: resource.trim().into(),
        }),
        InitLink::Plain(_) => Err("an empty link".into()),
        InitLink::Map(m) => {
            let (kind, provider, resource) = match &m.link {
                Some(s) => match split_shorthand(s).as_slice() {
                    [kind, resource] => (kind.clone(), String::new(), resource.clone()),
                    [kind, provider, resource] => (kind.clone(), provider.clone(), resource.clone()),
                    _ => {
                        return Err(format!(
                            "bad link shorthand {s:?}, expected \"type,resource\" or \"type,provider,resource\""
                        ));
                    }
                },
                None => {
                    let resource = if m.resource.is_empty() {
                        m.resource_spec.clone()
                    } else {
                        m.resource.clone()
                    };
                    (m.kind.clone(), m.provider.clone(), resource)
                }
            };
            if kind.is_empty() || resource.is_empty() {
                return Err("a link needs a type and a resource".into());
            }
            let link_type = match kind.split_once(':') {
                Some((k, p)) if provider.is_empty() => format!("{}:{p}", k.to_ascii_uppercase()),
                _ => format!("{}:{provider}", kind.to_ascii_uppercase()),
            };
            Ok(PlanLink {
                link_type,
                resource_spec: resource,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(mut f) => normalize(&mut f),
            Err(p) => vec![p],
        }
    }

    #[test]
    fn stoke_readme_file_is_valid() {
        let text = include_str!("../../tests/fixtures/stoke-dbinit.yaml");
        assert_eq!(problems(text), Vec::<String>::new());
    }

    #[test]
    fn shorthands_expand() {
        let text = "claims:\n  - claim: \"Read, reads things, rd, 1\"\ngroups:\n  - group: \"Readers, people who read\"\n    claims: [Read]\n    links:\n      - link: \"ldap,corp,readers\"\n      - link: \"ldap,others\"\nusers:\n  - user: \"ann,Ann,Lee,ann@example.com\"\n    groups: [Readers]\n";
        let mut f = parse(text).unwrap_or_default();
        assert_eq!(normalize(&mut f), Vec::<String>::new());
        assert_eq!(f.claims[0].short_name, "rd");
        assert_eq!(f.groups[0].name, "Readers");
        assert_eq!(f.users[0].email, "ann@example.com");
        let links: Vec<String> = f.groups[0]
            .links
            .iter()
            .filter_map(|l| resolve_link(l).ok())
            .map(|l| l.link_type)
            .collect();
        assert_eq!(links, vec!["LDAP:corp", "LDAP:"]);
    }

    #[test]
    fn undefined_references_are_named() {
        let text = "groups:\n  - name: G\n    claims: [Nope]\nusers:\n  - username: u\n    groups: [Missing]\n";
        let p = problems(text);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("\"Nope\""));
        assert!(p[1].contains("\"Missing\""));
    }

    #[test]
    fn bad_shorthand_and_bad_types_are_refused() {
        assert!(!problems("claims:\n  - claim: \"a,b\"\n").is_empty());
        assert!(!problems("users: 5\n").is_empty());
        assert!(!problems("users: [\n").is_empty());
    }
}
