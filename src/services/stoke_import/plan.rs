//! The import decided without touching any database: Stoke's rows, Tessera's catalog, and `now` in; what to
//! add, what is there already, and every problem out.
//!
//! Entities are matched by natural key: claims and groups by name, users by username, links by (group, type,
//! resource), keys by kid and key material. What Tessera holds already is left as it is (its copy is the newer:
//! a password rehashed at login, a description edited), so a second run finds nothing to do. What contradicts
//! it is a problem: a claim name held with another `short_name=value` (Tessera's claim of the same pair is taken
//! as Stoke's, whatever its name, since tokens carry only the pair), a username with another email,
//! an email another user has, a kid taken by another key. So are rows Tessera cannot use: a malformed password
//! hash, an unknown `source`, a signing key that does not parse, a non-canonical `stk` value.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::authz::{STK, check_stk_value};
use crate::crypto::keys::Alg;
use crate::crypto::{password, stoke as stoke_keys};
use crate::db::import::{Changes, NewClaim, NewGroup, Target};
use crate::db::keys::KeyRow;
use crate::db::stoke::StokeDump;
use crate::db::users::UserRow;
use crate::services::keyring::jwk;
use crate::user_source::sync;

/// What the import is told besides the two databases.
#[derive(Debug, Clone)]
pub struct Options {
    pub dry_run: bool,
    /// Skip (and list) the rows with problems instead of refusing the whole import.
    pub skip_invalid: bool,
    /// `cluster.instance_id`: Stoke's kids were `<instance_id>-p-N` when it was set.
    pub instance_id: String,
    /// The algorithm Stoke signed with RSA keys (PS256/384/512 from `tokens.num_bits`).
    pub rsa_alg: Alg,
    /// The configured LDAP providers' names (a user whose `LDAP:<name>` names none gets a note).
    pub providers: Vec<String>,
}

/// The outcome of planning (no `Debug`: the users carry password hashes).
#[derive(Default, Clone)]
pub struct Plan {
    pub changes: Changes,
    /// Rows that are in Tessera already, as they are.
    pub unchanged: usize,
    /// Rows with a problem (the import refuses unless `skip_invalid`).
    pub problems: Vec<String>,
    /// Worth saying, not wrong: expired keys left out, users of an unconfigured provider, …
    pub notes: Vec<String>,
}

/// Decides the import of `dump` into `target` at `now`.
pub fn plan(dump: &StokeDump, target: &Target, opts: &Options, now: i64) -> Plan {
    let mut p = Plan::default();
    let claims = plan_claims(dump, target, &mut p);
    let groups = plan_groups(dump, target, &mut p);
    let users = plan_users(dump, target, opts, now, &mut p);
    plan_edges(dump, target, (&claims, &groups, &users), &mut p);
    plan_keys(dump, target, opts, now, &mut p);
    p
}

/// Stoke id → name of each claim that is usable (created or already there).
fn plan_claims(dump: &StokeDump, target: &Target, p: &mut Plan) -> HashMap<i64, String> {
    let mut ok = HashMap::new();
    for c in &dump.claims {
        let label = format!("claim {:?}", c.name);
        if c.name.trim().is_empty() || c.short_name.trim().is_empty() {
            p.problems
                .push(format!("{label}: a claim needs a name and a short_name"));
            continue;
        }
        if c.short_name == STK
            && let Err(e) = check_stk_value(&c.value)
        {
            p.problems.push(format!("{label}: {e}"));
            continue;
        }
        let by_name = target.claims.iter().find(|t| t.1 == c.name);
        let by_value = target.claims.iter().find(|t| t.2 == c.short_name && t.3 == c.value);
        let name = match (by_value, by_name) {
            // What a token carries is `short_name=value`: Tessera's claim of the same pair is Stoke's claim.
            (Some(t), _) => {
                p.unchanged += 1;
                if t.1 != c.name {
                    p.notes.push(format!(
                        "{label} ({}={}) is Tessera's claim {:?}: its groups get that one",
                        c.short_name, c.value, t.1
                    ));
                }
                t.1.clone()
            }
            (None, Some(t)) => {
                p.problems.push(format!(
                    "{label}: Tessera has a claim of this name with {}={}, Stoke's is {}={}",
                    t.2, t.3, c.short_name, c.value
                ));
                continue;
            }
            (None, None) => {
                p.changes.claims.push(NewClaim {
                    name: c.name.clone(),
                    short_name: c.short_name.clone(),
                    value: c.value.clone(),
                    description: c.description.clone(),
                });
                c.name.clone()
            }
        };
        ok.insert(c.id, name);
    }
    ok
}

fn plan_groups(dump: &StokeDump, target: &Target, p: &mut Plan) -> HashMap<i64, String> {
    let mut ok = HashMap::new();
    for g in &dump.groups {
        if g.name.trim().is_empty() {
            p.problems.push(format!("claim group {}: a group needs a name", g.id));
            continue;
        }
        if target.groups.iter().any(|t| t.1 == g.name) {
            p.unchanged += 1;
        } else {
            p.changes.groups.push(NewGroup {
                name: g.name.clone(),
                description: g.description.clone(),
            });
        }
        ok.insert(g.id, g.name.clone());
    }
    ok
}

/// Tessera's `source` for Stoke's: `LOCAL`, `LDAP` for `LDAP` and `LDAP:<provider>`, and `OIDC:<provider>` as it
/// is (such a user is linked again at its first sign-in through that provider, by verified email).
fn source_of(stoke: &str) -> Option<String> {
    let (kind, provider) = stoke.split_once(':').unwrap_or((stoke, ""));
    match kind.trim().to_ascii_uppercase().as_str() {
        "LOCAL" => Some("LOCAL".into()),
        "LDAP" => Some(sync::SOURCE.into()),
        "OIDC" if !provider.trim().is_empty() => Some(crate::user_source::oidc::store::source_of(provider.trim())),
        _ => None,
    }
}

fn plan_users(dump: &StokeDump, target: &Target, opts: &Options, now: i64, p: &mut Plan) -> HashMap<i64, String> {
    let mut ok = HashMap::new();
    for u in &dump.users {
        let label = format!("user {:?}", u.username);
        if u.username.trim().is_empty() {
            p.problems.push(format!("user {}: no username", u.id));
            continue;
        }
        let Some(source) = source_of(&u.source) else {
            p.problems.push(format!(
                "{label}: unknown source {:?} (Tessera knows LOCAL, LDAP:<provider> and OIDC:<provider>)",
                u.source
            ));
            continue;
        };
        if let Some((_, provider)) = u.source.split_once(':')
            && !provider.is_empty()
            && !opts.providers.iter().any(|n| n == provider)
        {
            p.notes.push(format!(
                "{label}: its provider {provider:?} is not configured under users.providers; it cannot log in until it is"
            ));
        }
        let hash = u.password.as_deref().filter(|h| !h.is_empty());
        let salt = u.salt.as_deref().filter(|s| !s.is_empty());
        let bad_hash = match (hash, salt) {
            (None, _) => None,
            (Some(h), _) if h.starts_with('$') => argon2::password_hash::PasswordHash::new(h)
                .err()
                .map(|e| format!("not a valid PHC string: {e}")),
            (Some(h), s) => password::stoke_pair_problem(h, s.unwrap_or_default()),
        };
        if let Some(why) = bad_hash {
            p.problems.push(format!("{label}: malformed password hash: {why}"));
            continue;
        }
        let email = Some(u.email.trim()).filter(|e| !e.is_empty());
        if let Some((_, _, existing)) = target.users.iter().find(|t| t.1 == u.username) {
            if existing.as_deref() == email {
                p.unchanged += 1;
                ok.insert(u.id, u.username.clone());
            } else {
                p.problems.push(format!(
                    "{label}: Tessera has a user of this name with the email {:?}, Stoke's has {:?}",
                    existing.as_deref().unwrap_or(""),
                    u.email
                ));
            }
            continue;
        }
        if let Some(e) = email
            && let Some((_, other, _)) = target.users.iter().find(|t| t.2.as_deref() == Some(e))
        {
            p.problems.push(format!(
                "{label}: the email {e:?} belongs to the Tessera user {other:?}"
            ));
            continue;
        }
        let mut row = UserRow::new_local(
            &u.username,
            email,
            (&u.fname, &u.lname),
            (
                hash,
                if hash.is_some_and(|h| h.starts_with('$')) {
                    None
                } else {
                    salt
                },
            ),
            now,
        );
        row.source = source;
        row.created_at = u.created_at.unwrap_or(now);
        p.changes.users.push(row);
        ok.insert(u.id, u.username.clone());
    }
    ok
}

type Names<'a> = (
    &'a HashMap<i64, String>,
    &'a HashMap<i64, String>,
    &'a HashMap<i64, String>,
);

/// Claims of groups, links and memberships between usable ends; an edge of a skipped row is left out with it.
fn plan_edges(dump: &StokeDump, target: &Target, (claims, groups, users): Names<'_>, p: &mut Plan) {
    let claim_id: HashMap<&str, i64> = target.claims.iter().map(|t| (t.1.as_str(), t.0)).collect();
    let group_id: HashMap<&str, i64> = target.groups.iter().map(|t| (t.1.as_str(), t.0)).collect();
    let user_id: HashMap<&str, i64> = target.users.iter().map(|t| (t.1.as_str(), t.0)).collect();
    let group_claims: HashSet<(i64, i64)> = target.group_claims.iter().copied().collect();
    let members: HashSet<(i64, i64)> = target.members.iter().copied().collect();
    for (c, g) in &dump.group_claims {
        let (Some(claim), Some(group)) = (claims.get(c), groups.get(g)) else {
            continue;
        };
        match (group_id.get(group.as_str()), claim_id.get(claim.as_str())) {
            (Some(g), Some(c)) if group_claims.contains(&(*g, *c)) => p.unchanged += 1,
            _ => p.changes.group_claims.push((group.clone(), claim.clone())),
        }
    }
    for l in &dump.links {
        let Some(group) = l.group_id.and_then(|g| groups.get(&g)) else {
            if l.group_id.is_none() {
                p.notes.push(format!(
                    "group link {} ({} {}) belongs to no group and grants nothing: left out",
                    l.id, l.link_type, l.resource_spec
                ));
            }
            continue;
        };
        let there = group_id.get(group.as_str()).is_some_and(|g| {
            target
                .links
                .iter()
                .any(|t| t.0 == Some(*g) && t.1 == l.link_type && t.2 == l.resource_spec)
        });
        if there {
            p.unchanged += 1;
        } else {
            p.changes
                .links
                .push((group.clone(), l.link_type.clone(), l.resource_spec.clone()));
        }
    }
    for (g, u) in &dump.members {
        let (Some(group), Some(user)) = (groups.get(g), users.get(u)) else {
            continue;
        };
        match (user_id.get(user.as_str()), group_id.get(group.as_str())) {
            (Some(u), Some(g)) if members.contains(&(*u, *g)) => p.unchanged += 1,
            _ => p.changes.members.push((user.clone(), group.clone())),
        }
    }
}

/// The members that identify a public key (a JWK without its kid, alg and use), padding ignored.
fn material(jwk: &str) -> Option<Vec<String>> {
    let v: Value = serde_json::from_str(jwk).ok()?;
    let m = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim_end_matches('=')
            .to_string()
    };
    Some(["kty", "crv", "x", "y", "n", "e"].map(m).to_vec())
}

/// Stoke's unexpired keys, as verification-only keys under the kids Stoke served them with.
fn plan_keys(dump: &StokeDump, target: &Target, opts: &Options, now: i64, p: &mut Plan) {
    let mut step = target.keys.iter().map(|k| k.2).min().unwrap_or(0).min(0);
    let mut index = 0usize;
    for k in &dump.keys {
        let Some(expires) = k.expires else {
            p.problems
                .push(format!("Stoke key {}: its expiry date cannot be read", k.id));
            continue;
        };
        if expires <= now {
            p.notes
                .push(format!("Stoke key {}: expired at {}, left out", k.id, rfc3339(expires)));
            continue;
        }
        let kid = match opts.instance_id.as_str() {
            "" => format!("p-{index}"),
            prefix => format!("{prefix}-p-{index}"),
        };
        index += 1;
        let mut key = match stoke_keys::parse_private_key(&k.text, opts.rsa_alg) {
            Ok(key) => key,
            Err(e) => {
                p.problems
                    .push(format!("Stoke key {} ({kid}): does not parse: {e}", k.id));
                continue;
            }
        };
        key.kid = kid.clone();
        let public_jwk = jwk(&key, false).to_string();
        let ours = material(&public_jwk);
        if target.keys.iter().any(|t| material(&t.1) == ours) {
            p.unchanged += 1;
            continue;
        }
        if target.keys.iter().any(|t| t.0 == kid) {
            p.problems.push(format!(
                "Stoke key {} ({kid}): Tessera has another key under this kid",
                k.id
            ));
            continue;
        }
        step -= 1;
        p.changes.keys.push(KeyRow {
            kid,
            algorithm: key.alg.name().to_string(),
            public_jwk,
            // No private half: Tessera only verifies with Stoke's keys; `sign_from = expires_at`, never a signer.
            private_key: String::new(),
            rotation_step: step,
            publish_at: now,
            sign_from: expires,
            expires_at: expires,
            created_at: now,
        });
    }
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| t.to_string())
}
